//! `herald bench`: a load generator for server-push hubs.
//!
//! # Layout
//!
//! - [`Args`] (`args.rs`): the command line, validated once into a `Plan`.
//! - `run.rs`: the phases of a run. Connect every subscriber (bounded
//!   concurrency, source addresses spread over 127.0.0.2–254), hold them idle,
//!   publish, wait until each subscriber has its last event or the timeout,
//!   then add up. `Ctx` is what the tasks share: the plan, time zero, the
//!   cancellation token and the sharded latency histograms.
//! - `subscriber.rs`: one subscriber. Over SSE, a lean raw socket whose bytes
//!   go through `chunked.rs` (only if the server frames the body) and
//!   `sse.rs` (the event-stream parser); over WebSocket (`subscriber/ws.rs`,
//!   tokio-websockets on the subscriber's own socket: Herald's JSON event
//!   objects or raw messages) or long-polling (`subscriber/poll.rs`, Herald's
//!   `/poll` on a keep-alive connection, cursor from a first short poll).
//!   Each event's `payload.rs` data gives its sequence number and send time;
//!   `sequence.rs` counts lost, duplicated and reordered events.
//! - `publisher.rs`: keep-alive HTTP/1.1 publishers (hyper's client); topic
//!   `t` always goes through publisher `t % P`, one event at a time, so each
//!   topic's order is the sequence order. The body is the raw data, a GRIP
//!   item (Pushpin) or a Herald JSON batch. Publishers run on a one-thread
//!   runtime of their own (`run::publish_runtime`), not among the readers.
//! - `server_stats.rs`: the server's CPU, RSS and write syscalls from /proc,
//!   added up over its processes (nginx's workers, Pushpin's parts).
//! - `report.rs`: the table and the JSON line.
//! - `progress.rs`: indicatif bars on stderr (a terminal only, not with
//!   `--quiet`), one per phase, following the run's counters.
//! - `plot.rs`: `--plot FILE.svg` (plotters' SVG backend): the latency
//!   percentile curve and deliveries per second over time.
//! - `storm.rs`: `--storm`, the reconnect storm: drop every subscriber,
//!   publish while they are away, reconnect all with `Last-Event-ID`, time
//!   the catch-up.
//! - `workers.rs`: runs too big for one process (20,000 files each): worker
//!   processes hold the subscribers and report over JSON lines.
//!
//! URL templates (`target.rs`) make the same run drive other hubs (nchan,
//! Pushpin) as well as Herald.

mod args;
mod chunked;
mod payload;
mod plot;
mod progress;
mod publisher;
mod report;
mod run;
mod sequence;
mod server_stats;
mod sse;
mod storm;
mod subscriber;
mod target;
mod workers;

use std::process::ExitCode;

pub use args::Args;

/// Exit code for bad arguments (sysexits EX_USAGE), as the rest of `herald`.
const EX_USAGE: u8 = 64;

/// Runs `herald bench`: prints the table and the JSON line on stdout,
/// progress and errors on stderr. Exits 64 on bad arguments, 1 when the run
/// could not be carried out (server unreachable, too many failed connects).
pub fn run(args: Args) -> ExitCode {
    let plan = match args.plan() {
        Ok(p) => p,
        Err(e) => {
            eprintln!("herald bench: {e}");
            return ExitCode::from(EX_USAGE);
        }
    };
    let rt = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("herald bench: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let outcome = rt.block_on(run::execute(plan));
    rt.shutdown_background();
    match outcome {
        Ok(None) => ExitCode::SUCCESS,
        Ok(Some(report)) => {
            print!("{}", report.table());
            println!("{}", report.json());
            ExitCode::SUCCESS
        }
        Err(run::Abort(e)) => {
            eprintln!("herald bench: {e}");
            ExitCode::FAILURE
        }
    }
}
