//! Three herald nodes over one Redis (`--broker redis://…`): cross-node
//! delivery, a node killed mid-stream, Redis restarted with and without its
//! data, and a long mixed run compared event by event.

mod cluster;
mod common;

use cluster::broker::{Kind, available};

#[test]
fn redis_publish_on_any_node_reaches_every_node() {
    if available(Kind::Redis) {
        cluster::cross_node_delivery(Kind::Redis);
    }
}

#[test]
fn redis_burst_reaches_every_node_promptly() {
    if available(Kind::Redis) {
        cluster::burst_reaches_every_node_promptly(Kind::Redis);
    }
}

#[test]
fn redis_node_killed_mid_stream_resumes_on_another_without_loss() {
    if available(Kind::Redis) {
        cluster::node_killed_mid_stream(Kind::Redis);
    }
}

#[test]
fn redis_restart_keeping_data_loses_nothing() {
    if available(Kind::Redis) {
        cluster::broker_restart(Kind::Redis, false);
    }
}

#[test]
fn redis_restart_losing_data_changes_the_epoch() {
    if available(Kind::Redis) {
        cluster::broker_restart(Kind::Redis, true);
    }
}

#[test]
fn redis_mixed_run_delivers_every_event_once_in_order() {
    if available(Kind::Redis) {
        cluster::mixed_run(Kind::Redis);
    }
}

#[test]
fn redis_sessions_on_another_or_dead_node_are_unknown_and_resume_by_position() {
    if available(Kind::Redis) {
        cluster::sessions::sessions_answer_cleanly_on_another_node(Kind::Redis);
    }
}

#[test]
fn redis_node_stops_on_sigterm_with_the_broker_gone() {
    if available(Kind::Redis) {
        cluster::stops_with_the_broker_gone(Kind::Redis);
    }
}
