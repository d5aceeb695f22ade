//! The follower: the one task per node that reads the JetStream stream in
//! order (an ordered consumer from the next undelivered sequence, recreated
//! after any trouble) and hands every message to the node's fan-out. Once a
//! second it checks the stream: a missing or recreated stream, or one whose
//! last sequence is below what this node delivered, starts a new epoch.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use async_nats::jetstream::{consumer, stream};
use futures_util::StreamExt;
use tokio::time::Instant;

use super::{EPOCH_TAG, Inner, ensure_ids, ensure_stream, epoch_of};
use crate::progress::{Backoff, new_epoch};

/// How often the stream is checked.
const CHECK_EVERY: Duration = Duration::from_secs(1);

/// A stream check in flight (see `follow`).
type Check<'a> = Pin<Box<dyn Future<Output = Result<stream::Info, String>> + Send + 'a>>;

/// Runs until the log is closed.
pub(super) async fn run(inner: Arc<Inner>) {
    let mut backoff = Backoff::new(inner.opts.reconnect_min, inner.opts.reconnect_max);
    while !inner.closed.load(Ordering::Acquire) {
        match follow(&inner, &mut backoff).await {
            Ok(()) => continue,
            Err(e) => {
                inner.progress.mark_down(e);
                tokio::select! {
                    _ = tokio::time::sleep(backoff.next_delay()) => {}
                    _ = inner.stop.notified() => break,
                }
            }
        }
    }
    tracing::debug!("JetStream follower stopped");
}

/// Checks the stream, then reads it from the next undelivered sequence until
/// something goes wrong (`Err`), or the log closes, the epoch changes or the
/// client reconnected (`Ok`: the caller starts again at once).
async fn follow(inner: &Inner, backoff: &mut Backoff) -> Result<(), String> {
    check_stream(inner).await?;
    let epoch = inner.progress.epoch();
    // A consumer does not survive a server restart: after a reconnection it
    // is recreated at once rather than when its heartbeats are missed.
    let stats = inner.client.statistics();
    let connects = stats.connects.load(Ordering::Relaxed);
    let stream = inner
        .js
        .get_stream(&inner.opts.stream)
        .await
        .map_err(|e| format!("nats: stream {}: {e}", inner.opts.stream))?;
    let consumer = stream
        .create_consumer(consumer::pull::OrderedConfig {
            deliver_policy: consumer::DeliverPolicy::ByStartSequence {
                start_sequence: inner.progress.delivered() + 1,
            },
            ..Default::default()
        })
        .await
        .map_err(|e| format!("nats: cannot follow the stream: {e}"))?;
    let mut messages = consumer
        .messages()
        .await
        .map_err(|e| format!("nats: cannot follow the stream: {e}"))?;
    inner.progress.mark_up();
    backoff.reset();
    // The periodic stream check is a broker round trip that can take long
    // when the JetStream API is busy (every history read creates and deletes
    // a consumer): it runs beside the delivery loop, never inside it, so the
    // last event of a burst is never held behind it.
    let mut next_check = Instant::now() + CHECK_EVERY;
    let mut checking: Option<Check<'_>> = None;
    let mut asked_at = 0;
    loop {
        tokio::select! {
            msg = messages.next() => match msg {
                Some(Ok(msg)) => {
                    let seq = msg.info().map_err(|e| format!("nats: {e}"))?.stream_sequence;
                    deliver(inner, epoch, seq, &msg.payload);
                }
                Some(Err(e)) => return Err(format!("nats: following the stream: {e}")),
                None => return Err("nats: the stream's consumer ended".into()),
            },
            _ = tokio::time::sleep_until(next_check), if checking.is_none() => {
                if inner.closed.load(Ordering::Acquire) {
                    return Ok(());
                }
                // Delivered before the question: the answer's last sequence
                // covers it, unless the stream lost events. (Events delivered
                // while the answer travels may be newer than it.)
                asked_at = inner.progress.delivered();
                checking = Some(Box::pin(ensure_stream(&inner.js, &inner.opts)));
            }
            info = async { checking.as_mut().expect("guarded").await }, if checking.is_some() => {
                checking = None;
                inner.check_now.store(false, Ordering::Release);
                let info = info?;
                inner.events.store(info.state.messages, Ordering::Relaxed);
                compare(inner, info, asked_at).await?;
                if inner.progress.epoch() != epoch
                    || stats.connects.load(Ordering::Relaxed) != connects
                {
                    // Not an outage: follow again from the next undelivered sequence.
                    return Ok(());
                }
                next_check = Instant::now() + CHECK_EVERY;
            }
            // Reconnected: check the stream (lost with a broker restarted
            // without its data?) and follow it again now.
            _ = inner.link.reconnected.notified() => return Ok(()),
            _ = inner.stop.notified() => return Ok(()),
        }
    }
}

/// Hands one message to the fan-out. A sequence past a gap means retention
/// removed messages before this node read them: local subscriptions end and
/// resume from history (told "expired" if their events are gone).
fn deliver(inner: &Inner, epoch: u64, seq: u64, payload: &[u8]) {
    let delivered = inner.progress.delivered();
    if seq <= delivered {
        return;
    }
    if seq != delivered + 1 {
        tracing::error!(
            from = delivered + 1,
            to = seq - 1,
            "events left the JetStream stream before this node read them; \
             ending local subscriptions so they resume from history"
        );
        inner.fanout.close();
    }
    match herald_store::event_codec::decode(seq, epoch, payload) {
        Ok(ev) => inner.fanout.deliver(&[Arc::new(ev)]),
        Err(e) => tracing::error!(seq, error = %e, "skipping a message that does not decode"),
    }
    inner.progress.set_delivered(seq);
}

/// Compares the stream with what this node follows; recreates a missing
/// stream and moves to a new epoch when the history was lost.
async fn check_stream(inner: &Inner) -> Result<(), String> {
    inner.check_now.store(false, Ordering::Release);
    let delivered = inner.progress.delivered();
    let info = ensure_stream(&inner.js, &inner.opts).await?;
    compare(inner, info, delivered).await
}

/// Acts on the stream's `info`, asked for when this node had delivered
/// through `delivered`: a new epoch when the history was lost. Sends
/// nothing to the broker unless the epoch changes (rare), so the delivery
/// loop can await it between two messages.
async fn compare(inner: &Inner, info: stream::Info, delivered: u64) -> Result<(), String> {
    let ours = inner.progress.epoch();
    let mut epoch = epoch_of(&info);
    if epoch == ours && info.state.last_sequence < delivered {
        tracing::warn!(
            last = info.state.last_sequence,
            delivered,
            "the JetStream stream is shorter than what this node delivered: starting a new epoch"
        );
        let mut config = info.config.clone();
        epoch = new_epoch();
        config.description = Some(format!("{EPOCH_TAG}{epoch:x}"));
        inner
            .js
            .update_stream(config)
            .await
            .map_err(|e| format!("nats: cannot record the new epoch: {e}"))?;
    }
    if epoch != ours {
        tracing::warn!(
            old = format!("{ours:x}"),
            new = format!("{epoch:x}"),
            "the JetStream stream was lost or recreated: new epoch; clients resuming are told to reset"
        );
        // The id index may have gone with the stream.
        ensure_ids(&inner.js, &inner.opts).await?;
        inner.progress.reset(epoch, info.state.last_sequence);
        inner.fanout.close();
    }
    inner.progress.mark_up();
    inner.link.stale.store(false, Ordering::Release);
    Ok(())
}
