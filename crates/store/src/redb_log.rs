//! [`RedbLog`]: the embedded durable [`Log`]. Appends go to the writer thread
//! (see `writer.rs`); reads run here, on tokio's blocking pool.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, RwLock, mpsc};
use std::thread::JoinHandle;

use herald_core::{
    AppendError, BoxFuture, Draft, Event, Fanout, Log, ReadError, RecordError, RecordOp, ScanPage,
    Selector, Topic, WebhookStore,
};
use redb::Database;
use tokio::sync::oneshot;

use crate::error::{Fault, StoreError};
use crate::stats::{Counters, StoreStats};
use crate::tables::{Meta, Shape};
use crate::writer::{self, Command, Writer};
use crate::{StoreOptions, read};

/// The history file's name inside the data dir.
const FILE_NAME: &str = "history.redb";

/// The embedded durable log: one redb file, one writer thread with group
/// commit, reads from snapshots.
pub struct RedbLog {
    /// The data dir and its history file, named in every error.
    dir: PathBuf,
    path: PathBuf,
    /// Chosen when the file was created; never changes.
    epoch: u64,
    /// The handle reads use. Taken by `close` so the file's lock is released
    /// even while others still hold this `RedbLog`.
    db: RwLock<Option<Arc<Database>>>,
    /// Commands to the writer thread.
    tx: mpsc::Sender<Command>,
    /// Set by `close`: later appends fail at once instead of queueing.
    closed: AtomicBool,
    /// What `stats` and `last_seq` read.
    counters: Arc<Counters>,
    /// The writer thread, joined by `close`.
    writer: Mutex<Option<JoinHandle<()>>>,
}

impl RedbLog {
    /// Opens or creates `dir/history.redb` (creating `dir`) and starts the
    /// writer thread, which hands every commit to `fanout`.
    pub fn open(
        dir: &Path,
        opts: StoreOptions,
        fanout: Arc<Fanout>,
    ) -> Result<Arc<RedbLog>, StoreError> {
        std::fs::create_dir_all(dir).map_err(|source| StoreError::Io {
            path: dir.to_path_buf(),
            source,
        })?;
        let path = dir.join(FILE_NAME);
        let db =
            Database::create(&path).map_err(|e| StoreError::from_fault(dir, &path, e.into()))?;
        RedbLog::start(db, dir, path, opts, fanout)
    }

    /// Loads (or initialises) `db`, the history file `path` in `dir`, and
    /// starts its writer thread. Tests pass a database on a failing backend.
    fn start(
        db: Database,
        dir: &Path,
        path: PathBuf,
        opts: StoreOptions,
        fanout: Arc<Fanout>,
    ) -> Result<Arc<RedbLog>, StoreError> {
        let fail = |f: Fault| StoreError::from_fault(dir, &path, f);
        let db = Arc::new(db);
        let meta = Meta::load_or_create(&db).map_err(fail)?;
        let shape = Shape::read(&db).map_err(fail)?;
        let counters = Arc::new(Counters::new(&meta, &shape));
        let (tx, rx) = writer::channel();
        let w = Writer {
            db: db.clone(),
            dir: dir.to_path_buf(),
            path: path.clone(),
            meta,
            opts,
            fanout,
            counters: counters.clone(),
            rx,
            last_group: 0,
        };
        let handle = std::thread::Builder::new()
            .name("herald-store-writer".into())
            .spawn(move || w.run())
            .map_err(StoreError::Spawn)?;
        tracing::info!(path = %path.display(), epoch = format_args!("{:x}", meta.epoch), last_seq = meta.next_seq.saturating_sub(1), "history opened");
        Ok(Arc::new(RedbLog {
            dir: dir.to_path_buf(),
            path,
            epoch: meta.epoch,
            db: RwLock::new(Some(db)),
            tx,
            closed: AtomicBool::new(false),
            counters,
            writer: Mutex::new(Some(handle)),
        }))
    }

    /// The store's size and activity, from atomics (no disk access).
    pub fn stats(&self) -> StoreStats {
        self.counters.snapshot()
    }

    /// Removes events older than the age bound at `now_ms` (and any over the
    /// byte bound), as the writer's timer does every `trim_interval`. For
    /// tests and operators who want the sweep at a time of their choosing.
    pub async fn trim_by_age(&self, now_ms: u64) -> Result<(), StoreError> {
        let (reply, answer) = oneshot::channel();
        self.send(Command::Trim { now_ms, reply })
            .map_err(|_| StoreError::Closed)?;
        match answer.await {
            Ok(Ok(())) => Ok(()),
            Ok(Err(msg)) => Err(StoreError::WriteFailed(msg)),
            Err(_) => Err(StoreError::Closed),
        }
    }

    /// Sends to the writer unless the store is closed.
    fn send(&self, cmd: Command) -> Result<(), ()> {
        if self.closed.load(Ordering::Acquire) {
            return Err(());
        }
        self.tx.send(cmd).map_err(|_| ())
    }

    /// The database handle for a read, if the store is open.
    fn db(&self) -> Option<Arc<Database>> {
        self.db.read().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// Runs `f` on the blocking pool with the database, mapping every failure
    /// to `ReadError::Unavailable`.
    async fn with_db<T: Send + 'static>(
        &self,
        f: impl FnOnce(&Database) -> Result<Result<T, ReadError>, Fault> + Send + 'static,
    ) -> Result<T, ReadError> {
        let db = self
            .db()
            .ok_or_else(|| ReadError::Unavailable(StoreError::Closed.to_string()))?;
        let joined = tokio::task::spawn_blocking(move || f(&db)).await;
        match joined {
            Ok(Ok(r)) => r,
            Ok(Err(fault)) => Err(ReadError::Unavailable(
                StoreError::from_fault(&self.dir, &self.path, fault).to_string(),
            )),
            Err(e) => Err(ReadError::Unavailable(format!(
                "history read task failed: {e}"
            ))),
        }
    }
}

/// Milliseconds `catch_up_to` waits at most for the writer to publish a
/// commit a reader already saw (a position ahead of everything committed
/// waits this long once, then resets as `unknown`).
const CATCH_UP_POLLS: u32 = 100;

impl Log for RedbLog {
    fn epoch(&self) -> u64 {
        self.epoch
    }

    fn last_seq(&self) -> u64 {
        self.counters.last_seq()
    }

    /// A reader can see a commit a moment before the writer publishes its
    /// new `last_seq` (and hands the events to the rings): a client given
    /// such an event from history may resume from it at once. Wait (briefly,
    /// bounded) for the writer instead of calling the position unknown.
    fn catch_up_to(&self, seq: u64) -> BoxFuture<'_, u64> {
        Box::pin(async move {
            for _ in 0..CATCH_UP_POLLS {
                let last = self.counters.last_seq();
                if last >= seq {
                    return last;
                }
                tokio::time::sleep(std::time::Duration::from_millis(1)).await;
            }
            self.counters.last_seq()
        })
    }

    fn append(
        &self,
        batch: Vec<Draft>,
        now_ms: u64,
    ) -> BoxFuture<'_, Result<Vec<Arc<Event>>, AppendError>> {
        // Sent now, not on first poll: appends are ordered as they were called.
        let (reply, answer) = oneshot::channel();
        let sent = self.send(Command::Append {
            batch,
            now_ms,
            reply,
        });
        Box::pin(async move {
            let closed = || AppendError::Unavailable(StoreError::Closed.to_string());
            sent.map_err(|()| closed())?;
            answer.await.map_err(|_| closed())?
        })
    }

    fn read(
        &self,
        topics: Vec<Topic>,
        after: u64,
        limit: usize,
    ) -> BoxFuture<'_, Result<Vec<Arc<Event>>, ReadError>> {
        let epoch = self.epoch;
        Box::pin(self.with_db(move |db| read::read(db, epoch, &topics, after, limit)))
    }

    fn scan(
        &self,
        selector: Selector,
        after: u64,
        limit: usize,
    ) -> BoxFuture<'_, Result<ScanPage, ReadError>> {
        let epoch = self.epoch;
        Box::pin(self.with_db(move |db| read::scan(db, epoch, &selector, after, limit)))
    }

    fn lookup_id(&self, id: String) -> BoxFuture<'_, Result<Option<u64>, ReadError>> {
        Box::pin(self.with_db(move |db| read::lookup_id(db, &id).map(Ok)))
    }

    /// Lets the writer commit everything sent before, stops it, and releases
    /// the file (so the data dir can be opened again). Idempotent.
    fn close(&self) -> BoxFuture<'_, ()> {
        Box::pin(async move {
            self.closed.store(true, Ordering::Release);
            let (reply, done) = oneshot::channel();
            if self.tx.send(Command::Close { reply }).is_ok() {
                let _ = done.await;
            }
            self.db.write().unwrap_or_else(|e| e.into_inner()).take();
            let handle = self.writer.lock().unwrap_or_else(|e| e.into_inner()).take();
            if let Some(h) = handle
                && let Ok(Err(_)) = tokio::task::spawn_blocking(move || h.join()).await
            {
                tracing::error!("history writer thread panicked");
            }
        })
    }

    fn timings(&self) -> Option<herald_core::LogTimings> {
        Some(herald_core::LogTimings {
            append: self.counters.append.snapshot(),
            commit: self.counters.commit.snapshot(),
        })
    }

    fn ready(&self) -> Result<(), String> {
        if self.closed.load(Ordering::Acquire) {
            return Err(StoreError::Closed.to_string());
        }
        let writer_alive = self
            .writer
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .as_ref()
            .is_some_and(|h| !h.is_finished());
        if !writer_alive {
            return Err("the history writer thread has stopped".into());
        }
        match self.counters.fault() {
            Some(f) => Err(format!("the last history write failed: {f}")),
            None => Ok(()),
        }
    }

    fn topics(
        &self,
        after: Option<Topic>,
        limit: usize,
    ) -> BoxFuture<'_, Result<Vec<herald_core::TopicHistory>, ReadError>> {
        Box::pin(self.with_db(move |db| read::topics(db, after.as_ref(), limit).map(Ok)))
    }

    fn trim(
        &self,
        topic: Topic,
        trim: herald_core::Trim,
    ) -> BoxFuture<'_, Result<u64, AppendError>> {
        let (reply, answer) = oneshot::channel();
        let sent = self.send(Command::TrimTopic { topic, trim, reply });
        Box::pin(async move {
            let closed = || AppendError::Unavailable(StoreError::Closed.to_string());
            sent.map_err(|()| closed())?;
            answer.await.map_err(|_| closed())?
        })
    }

    fn stats(&self) -> herald_core::LogStats {
        let st = self.stats();
        herald_core::LogStats {
            events: st.events,
            bytes: st.bytes,
            topics: st.topics,
            commits: st.commits,
        }
    }
}

/// Webhook records live in the history file's `webhooks` table; changes go
/// through the writer thread like appends (and share their group commits).
impl WebhookStore for RedbLog {
    fn load(&self) -> BoxFuture<'_, Result<Vec<(u64, bytes::Bytes)>, RecordError>> {
        Box::pin(async move {
            self.with_db(|db| read::webhook_records(db).map(Ok))
                .await
                .map_err(|e| RecordError(e.to_string()))
        })
    }

    fn apply(&self, ops: Vec<RecordOp>) -> BoxFuture<'_, Result<(), RecordError>> {
        let (reply, answer) = oneshot::channel();
        let sent = self.send(Command::Records { ops, reply });
        Box::pin(async move {
            let closed = || RecordError(StoreError::Closed.to_string());
            sent.map_err(|()| closed())?;
            answer.await.map_err(|_| closed())?.map_err(RecordError)
        })
    }
}

#[cfg(test)]
mod tests;
