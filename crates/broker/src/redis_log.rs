//! [`RedisLog`]: the ordered log is one Redis stream shared by every node.
//!
//! An append is one Lua script (see `scripts.rs`): check the epoch, check the
//! publisher ids against the index, take `seq`s from the counter, `XADD` each
//! event as entry `0-{seq}`, trim by count (`MAXLEN ~`) and age, and keep the
//! id index in step. Every node's follower (`follow.rs`) reads the stream
//! with `XREAD BLOCK` and hands each entry to its own fan-out; `append`
//! returns once Redis acknowledged the script and this node's follower
//! delivered the events. History reads (`XRANGE`) go to Redis directly.

mod follow;
mod records;
mod reply;
mod scripts;

pub use records::RedisRecords;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use herald_core::{AppendError, Draft, Event, EventId, Fanout, ReadError, ScanPage};
use redis::Value;
use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use tokio::sync::Notify;

use crate::progress::{Progress, new_epoch};
use crate::{BrokerError, BrokerOptions};
use crate::{duplicate_in_batch, with_seq};

/// Stream entries read per history round trip.
const READ_PAGE: usize = 512;

/// The Redis keys of one shared log, all under one hash tag.
struct Keys {
    log: String,
    seq: String,
    epoch: String,
    ids: String,
}

impl Keys {
    fn new(name: &str) -> Keys {
        Keys {
            log: format!("{{{name}}}:log"),
            seq: format!("{{{name}}}:seq"),
            epoch: format!("{{{name}}}:epoch"),
            ids: format!("{{{name}}}:ids"),
        }
    }
}

/// A [`Log`] over a Redis stream. Cheap to share (`Arc`).
pub struct RedisLog {
    inner: Arc<Inner>,
}

struct Inner {
    keys: Keys,
    opts: BrokerOptions,
    /// Commands (appends, reads, lookups); reconnects by itself.
    conn: ConnectionManager,
    progress: Progress,
    fanout: Arc<Fanout>,
    /// Set by `close`: appends fail, the follower stops.
    closed: AtomicBool,
    /// Wakes the follower at close.
    stop: Notify,
    /// Set when an append found the stream reset: the follower re-checks it.
    check_now: AtomicBool,
    /// Entries in the stream, as the follower last saw (metrics).
    events: AtomicU64,
    /// Appends this node committed (metrics).
    commits: AtomicU64,
}

impl RedisLog {
    /// Connects, creates the epoch if the stream is new, and starts the
    /// follower from the stream's current end.
    pub async fn open(
        opts: BrokerOptions,
        fanout: Arc<Fanout>,
    ) -> Result<Arc<RedisLog>, BrokerError> {
        let unreachable = crate::unreachable_error(&opts);
        let client =
            redis::Client::open(opts.url.as_str()).map_err(|e| unreachable(e.to_string()))?;
        let conn = connect(&client, &opts, opts.timeout)
            .await
            .map_err(&unreachable)?;
        // The follower's XREAD BLOCK holds its connection: give it its own.
        let follow_conn = connect(&client, &opts, follow::BLOCK + opts.timeout)
            .await
            .map_err(&unreachable)?;
        let keys = Keys::new(&opts.stream);
        let (epoch, counter) = init(&mut conn.clone(), &keys, "", opts.timeout)
            .await
            .map_err(&unreachable)?;
        tracing::info!(
            url = %crate::redacted(&opts.url),
            stream = %keys.log,
            epoch = format!("{epoch:x}"),
            last_seq = counter,
            "following the Redis stream"
        );
        let inner = Arc::new(Inner {
            keys,
            opts,
            conn,
            progress: Progress::new(epoch, counter),
            fanout,
            closed: AtomicBool::new(false),
            stop: Notify::new(),
            check_now: AtomicBool::new(false),
            events: AtomicU64::new(0),
            commits: AtomicU64::new(0),
        });
        tokio::spawn(follow::run(inner.clone(), follow_conn));
        Ok(Arc::new(RedisLog { inner }))
    }
}

async fn connect(
    client: &redis::Client,
    opts: &BrokerOptions,
    response_timeout: Duration,
) -> Result<ConnectionManager, String> {
    let config = ConnectionManagerConfig::new()
        .set_connection_timeout(Some(opts.timeout))
        .set_response_timeout(Some(response_timeout))
        .set_min_delay(opts.reconnect_min)
        .set_max_delay(opts.reconnect_max)
        .set_number_of_retries(2);
    match tokio::time::timeout(
        opts.timeout,
        client.get_connection_manager_with_config(config),
    )
    .await
    {
        Ok(Ok(c)) => Ok(c),
        Ok(Err(e)) => Err(e.to_string()),
        Err(_) => Err(format!("no answer within {:?}", opts.timeout)),
    }
}

/// Runs the INIT script: returns the stream's epoch and counter.
async fn init(
    conn: &mut ConnectionManager,
    keys: &Keys,
    replace: &str,
    limit: Duration,
) -> Result<(u64, u64), String> {
    let mut inv = scripts::INIT.prepare_invoke();
    inv.key(&keys.log)
        .key(&keys.seq)
        .key(&keys.epoch)
        .key(&keys.ids)
        .arg(new_epoch().to_string())
        .arg(replace);
    let v: Value = timed(limit, inv.invoke_async(conn)).await?;
    match reply::items(&v) {
        Some([e, c]) => match (reply::number(e), reply::number(c)) {
            (Some(e), Some(c)) => Ok((e, c)),
            _ => Err(format!("unexpected INIT reply {}", reply::brief(&v))),
        },
        _ => Err(format!("unexpected INIT reply {}", reply::brief(&v))),
    }
}

/// Runs `fut` with a deadline; either failure becomes a message.
async fn timed<T>(
    limit: Duration,
    fut: impl std::future::Future<Output = redis::RedisResult<T>>,
) -> Result<T, String> {
    match tokio::time::timeout(limit, fut).await {
        Ok(Ok(v)) => Ok(v),
        Ok(Err(e)) => Err(format!("redis: {e}")),
        Err(_) => Err(format!("redis did not answer within {limit:?}")),
    }
}

impl Inner {
    async fn append(&self, batch: Vec<Draft>, now_ms: u64) -> Result<Vec<Arc<Event>>, AppendError> {
        if self.closed.load(Ordering::Acquire) {
            return Err(AppendError::Unavailable("log is closed".into()));
        }
        duplicate_in_batch(&batch)?;
        let epoch = self.progress.epoch();
        let events: Vec<Event> = batch
            .into_iter()
            .map(|d| Event::from_draft(d, 0, epoch, now_ms))
            .collect();
        let cutoff = self
            .opts
            .max_age
            .map_or(0, |a| now_ms.saturating_sub(a.as_millis() as u64));
        let mut inv = scripts::APPEND.prepare_invoke();
        inv.key(&self.keys.log)
            .key(&self.keys.seq)
            .key(&self.keys.epoch)
            .key(&self.keys.ids)
            .arg(epoch.to_string())
            .arg(self.progress.delivered().to_string())
            .arg(self.opts.max_events.to_string())
            .arg(cutoff.to_string())
            .arg(now_ms.to_string());
        for ev in &events {
            let bytes = herald_store::event_codec::encode(ev).map_err(AppendError::Unavailable)?;
            match &ev.id {
                EventId::Publisher(id) => inv.arg(id.as_bytes()),
                EventId::Hub(_) => inv.arg(""),
            };
            inv.arg(bytes);
        }
        let v: Value =
            match timed(self.opts.timeout, inv.invoke_async(&mut self.conn.clone())).await {
                Ok(v) => v,
                Err(e) => {
                    self.progress.mark_down(e.clone());
                    return Err(AppendError::Unavailable(e));
                }
            };
        let first = match reply::items(&v) {
            Some([ok, first]) if reply::text(ok) == Some("ok") => reply::number(first),
            Some([dup, id]) if reply::text(dup) == Some("dup") => {
                return Err(AppendError::DuplicateId(
                    reply::text(id).unwrap_or_default().to_string(),
                ));
            }
            Some([reset]) if matches!(reply::text(reset), Some("epoch" | "lost")) => {
                self.check_now.store(true, Ordering::Release);
                return Err(AppendError::Unavailable(
                    "the Redis stream was reset (lost or recreated); retry in a moment".into(),
                ));
            }
            _ => None,
        };
        let Some(first) = first else {
            return Err(AppendError::Unavailable(format!(
                "unexpected APPEND reply {}",
                reply::brief(&v)
            )));
        };
        self.commits.fetch_add(1, Ordering::Relaxed);
        let out: Vec<Arc<Event>> = events
            .into_iter()
            .enumerate()
            .map(|(i, ev)| Arc::new(with_seq(ev, first + i as u64, epoch)))
            .collect();
        let last = first + out.len() as u64 - 1;
        if !self
            .progress
            .wait_delivered(epoch, last, self.opts.timeout)
            .await
        {
            tracing::warn!(
                seq = last,
                "event stored in Redis but not yet delivered by this node's follower"
            );
        }
        Ok(out)
    }

    /// Examines retained events after `after` in order, keeping those
    /// `matches` accepts, until `limit` kept or `budget` examined.
    async fn scan_with(
        &self,
        matches: &(dyn Fn(&Event) -> bool + Sync),
        after: u64,
        limit: usize,
        budget: usize,
    ) -> Result<ScanPage, ReadError> {
        let epoch = self.progress.epoch();
        let mut page = ScanPage {
            through: after,
            ..ScanPage::default()
        };
        let mut examined = 0;
        loop {
            let (floor, entries) = self.read_page(epoch, page.through).await?;
            if page.through < floor {
                return Err(ReadError::Expired { oldest_kept: floor });
            }
            let full = entries.len() == READ_PAGE;
            for entry in &entries {
                if page.events.len() >= limit || examined >= budget {
                    page.more = true;
                    return Ok(page);
                }
                examined += 1;
                page.through = entry.seq;
                let ev = reply::decode(entry, epoch).map_err(ReadError::Unavailable)?;
                if matches(&ev) {
                    page.events.push(ev);
                }
            }
            if !full {
                return Ok(page);
            }
        }
    }

    /// One page of entries after `after`, with the trim mark (the highest
    /// `seq` no longer retained).
    async fn read_page(
        &self,
        epoch: u64,
        after: u64,
    ) -> Result<(u64, Vec<reply::Entry>), ReadError> {
        let mut inv = scripts::READ.prepare_invoke();
        inv.key(&self.keys.log)
            .key(&self.keys.seq)
            .key(&self.keys.epoch)
            .arg(epoch.to_string())
            .arg(format!("0-{}", after + 1))
            .arg(READ_PAGE);
        let v: Value = timed(self.opts.timeout, inv.invoke_async(&mut self.conn.clone()))
            .await
            .map_err(ReadError::Unavailable)?;
        let unexpected =
            || ReadError::Unavailable(format!("unexpected READ reply {}", reply::brief(&v)));
        match reply::items(&v) {
            Some([first, counter, entries]) => {
                let floor = match first {
                    Value::Nil => reply::number(counter).ok_or_else(unexpected)?,
                    id => reply::text(id)
                        .and_then(reply::seq_of)
                        .ok_or_else(unexpected)?
                        .saturating_sub(1),
                };
                let page = reply::entries(entries).map_err(ReadError::Unavailable)?;
                Ok((floor, page))
            }
            Some([_]) => {
                self.check_now.store(true, Ordering::Release);
                Err(ReadError::Unavailable(
                    "the Redis stream was reset (lost or recreated)".into(),
                ))
            }
            _ => Err(unexpected()),
        }
    }

    async fn lookup_id(&self, id: String) -> Result<Option<u64>, ReadError> {
        let mut cmd = redis::cmd("ZSCORE");
        cmd.arg(&self.keys.ids).arg(id);
        let v: Value = timed(self.opts.timeout, cmd.query_async(&mut self.conn.clone()))
            .await
            .map_err(ReadError::Unavailable)?;
        Ok(match v {
            Value::Nil => None,
            Value::Double(d) => Some(d as u64),
            other => reply::number(&other),
        })
    }

    /// Stops the follower; later appends fail.
    async fn close(&self) {
        self.closed.store(true, Ordering::Release);
        self.stop.notify_one();
    }

    fn health(&self) -> Result<(), String> {
        self.progress.health()
    }

    async fn catch_up_to(&self, seq: u64) -> u64 {
        let delivered = self.progress.delivered();
        if seq <= delivered {
            return delivered;
        }
        let mut cmd = redis::cmd("GET");
        cmd.arg(&self.keys.seq);
        let epoch = self.progress.epoch();
        let counter: Result<Value, String> =
            timed(self.opts.timeout, cmd.query_async(&mut self.conn.clone())).await;
        // Wait unless Redis says the position does not exist yet (as NatsLog).
        let may_exist = match counter.ok().as_ref().map(reply::number) {
            Some(Some(c)) => c >= seq,
            _ => true,
        };
        if may_exist {
            self.progress
                .wait_delivered(epoch, seq, self.opts.timeout)
                .await;
        }
        self.progress.delivered()
    }
}

broker_log!(RedisLog);
