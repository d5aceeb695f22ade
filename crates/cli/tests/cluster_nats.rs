//! Three herald nodes over one NATS JetStream (`--broker nats://…`): cross-node
//! delivery, a node killed mid-stream, NATS restarted with and without its
//! data, and a long mixed run compared event by event.

mod cluster;
mod common;

use cluster::broker::{Kind, available};

#[test]
fn nats_publish_on_any_node_reaches_every_node() {
    if available(Kind::Nats) {
        cluster::cross_node_delivery(Kind::Nats);
    }
}

#[test]
fn nats_burst_reaches_every_node_promptly() {
    if available(Kind::Nats) {
        cluster::burst_reaches_every_node_promptly(Kind::Nats);
    }
}

#[test]
fn nats_node_killed_mid_stream_resumes_on_another_without_loss() {
    if available(Kind::Nats) {
        cluster::node_killed_mid_stream(Kind::Nats);
    }
}

#[test]
fn nats_restart_keeping_data_loses_nothing() {
    if available(Kind::Nats) {
        cluster::broker_restart(Kind::Nats, false);
    }
}

#[test]
fn nats_restart_losing_data_changes_the_epoch() {
    if available(Kind::Nats) {
        cluster::broker_restart(Kind::Nats, true);
    }
}

#[test]
fn nats_mixed_run_delivers_every_event_once_in_order() {
    if available(Kind::Nats) {
        cluster::mixed_run(Kind::Nats);
    }
}

#[test]
fn nats_sessions_on_another_or_dead_node_are_unknown_and_resume_by_position() {
    if available(Kind::Nats) {
        cluster::sessions::sessions_answer_cleanly_on_another_node(Kind::Nats);
    }
}

#[test]
fn nats_node_stops_on_sigterm_with_the_broker_gone() {
    if available(Kind::Nats) {
        cluster::stops_with_the_broker_gone(Kind::Nats);
    }
}
