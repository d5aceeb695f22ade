//! The follower: the one task per node that reads the Redis stream in order
//! (`XREAD BLOCK`, its own connection) and hands every entry to the node's
//! fan-out. It also notices a lost or reset stream (the epoch changed, or the
//! counter went below what this node delivered: a broker restarted from an
//! older snapshot), trims by age when nobody publishes, and reports whether
//! Redis answers.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use redis::Value;
use redis::aio::ConnectionManager;
use tokio::time::Instant;

use super::{Inner, init, reply, scripts, timed};
use crate::progress::Backoff;

/// How long one `XREAD` blocks: also the longest a lost stream goes unnoticed
/// on a quiet node.
pub(super) const BLOCK: Duration = Duration::from_secs(1);
/// Entries per `XREAD`.
const COUNT: usize = 1024;
/// How often the stream's epoch and counter are checked on a busy node.
const CHECK_EVERY: Duration = Duration::from_secs(1);
/// How often age retention runs when nobody publishes.
const TRIM_EVERY: Duration = Duration::from_secs(5);

/// Runs until the log is closed.
pub(super) async fn run(inner: Arc<Inner>, mut conn: ConnectionManager) {
    let mut backoff = Backoff::new(inner.opts.reconnect_min, inner.opts.reconnect_max);
    let mut next_check = Instant::now();
    let mut next_trim = Instant::now();
    while !inner.closed.load(Ordering::Acquire) {
        if inner.check_now.swap(false, Ordering::AcqRel) || Instant::now() >= next_check {
            // On the command connection: this also reconnects it after an
            // outage before a publish has to find out it was broken.
            if let Err(e) = check_stream(&inner, &mut inner.conn.clone()).await {
                inner.progress.mark_down(e);
                pause(&inner, backoff.next_delay()).await;
                continue;
            }
            next_check = Instant::now() + CHECK_EVERY;
        }
        if Instant::now() >= next_trim {
            trim(&inner, &mut conn).await;
            next_trim = Instant::now() + TRIM_EVERY;
        }
        let mut cmd = redis::cmd("XREAD");
        cmd.arg("COUNT")
            .arg(COUNT)
            .arg("BLOCK")
            .arg(BLOCK.as_millis() as u64)
            .arg("STREAMS")
            .arg(&inner.keys.log)
            .arg(format!("0-{}", inner.progress.delivered()));
        let read = tokio::select! {
            r = timed(BLOCK + inner.opts.timeout, cmd.query_async::<Value>(&mut conn)) => r,
            _ = inner.stop.notified() => break,
        };
        match read.and_then(|v| reply::xread_entries(&v)) {
            Ok(entries) => {
                inner.progress.mark_up();
                backoff.reset();
                deliver(&inner, &entries);
            }
            Err(e) => {
                inner.progress.mark_down(e);
                // Whatever happened while Redis was away, look before reading on.
                next_check = Instant::now();
                pause(&inner, backoff.next_delay()).await;
            }
        }
    }
    tracing::debug!("Redis follower stopped");
}

async fn pause(inner: &Inner, delay: Duration) {
    tokio::select! {
        _ = tokio::time::sleep(delay) => {}
        _ = inner.stop.notified() => {}
    }
}

/// Hands entries to the fan-out in order. An entry past a gap means the ones
/// in between were trimmed before this node read them: local subscribers
/// would miss them, so they are ended and resume from the history (which says
/// "expired" if the events are gone).
fn deliver(inner: &Inner, entries: &[reply::Entry]) {
    let epoch = inner.progress.epoch();
    let mut delivered = inner.progress.delivered();
    let mut batch = Vec::with_capacity(entries.len());
    for entry in entries {
        if entry.seq <= delivered {
            continue;
        }
        if entry.seq != delivered + 1 {
            tracing::error!(
                from = delivered + 1,
                to = entry.seq - 1,
                "events were trimmed from the Redis stream before this node read them; \
                 ending local subscriptions so they resume from history"
            );
            inner.fanout.deliver(&batch);
            batch.clear();
            inner.fanout.close();
        }
        match reply::decode(entry, epoch) {
            Ok(ev) => batch.push(ev),
            Err(e) => tracing::error!(error = %e, "skipping an entry that does not decode"),
        }
        delivered = entry.seq;
    }
    inner.fanout.deliver(&batch);
    inner.progress.set_delivered(delivered);
}

/// Compares the stream's epoch and counter with what this node follows, and
/// starts a new epoch when the history was lost.
async fn check_stream(inner: &Inner, conn: &mut ConnectionManager) -> Result<(), String> {
    let ours = inner.progress.epoch();
    let (epoch, counter) = init(conn, &inner.keys, "", inner.opts.timeout).await?;
    inner.progress.mark_up();
    if epoch != ours {
        tracing::warn!(
            old = format!("{ours:x}"),
            new = format!("{epoch:x}"),
            "the Redis stream was lost or recreated: new epoch; clients resuming are told to reset"
        );
        restart(inner, epoch, counter);
    } else if counter < inner.progress.delivered() {
        tracing::warn!(
            counter,
            delivered = inner.progress.delivered(),
            "the Redis stream is shorter than what this node delivered (restored from an older snapshot?): starting a new epoch"
        );
        let (epoch, counter) =
            init(conn, &inner.keys, &ours.to_string(), inner.opts.timeout).await?;
        restart(inner, epoch, counter);
    }
    Ok(())
}

/// Follows `epoch` from `counter` on; every local subscription ends (their
/// positions belong to the old epoch).
fn restart(inner: &Inner, epoch: u64, counter: u64) {
    inner.progress.reset(epoch, counter);
    inner.fanout.close();
}

async fn trim(inner: &Inner, conn: &mut ConnectionManager) {
    let cutoff = match inner.opts.max_age {
        Some(age) => now_ms().saturating_sub(age.as_millis() as u64),
        None => 0,
    };
    let mut inv = scripts::TRIM.prepare_invoke();
    inv.key(&inner.keys.log)
        .key(&inner.keys.seq)
        .key(&inner.keys.epoch)
        .key(&inner.keys.ids)
        .arg(inner.progress.epoch().to_string())
        .arg(cutoff.to_string());
    match timed(inner.opts.timeout, inv.invoke_async::<u64>(conn)).await {
        Ok(len) => inner.events.store(len, Ordering::Relaxed),
        Err(e) => tracing::debug!(error = %e, "age trim failed; next try later"),
    }
}

fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}
