//! The writer thread: the only code that writes the history file.
//!
//! It takes the first waiting command, drains whatever else is waiting (up to
//! `max_batch_events` events) into a group, and applies the whole group in
//! ONE write transaction with an `fsync` on commit: publishers that arrive
//! together share one disk flush; after a group of several it lingers up to
//! `commit_linger` for more, so publishers taking turns share it too. Each append is checked on its own inside the
//! transaction, so a duplicate id fails that batch alone. Only after the commit
//! does it publish `last_seq`, answer the appenders and hand the events to the
//! fan-out (in `seq` order, as the `Log` contract requires). A storage error
//! aborts the transaction: every request in the group fails and nothing of it
//! is stored. A dedicated OS thread (not a tokio worker) because every commit
//! blocks on the disk.

use std::path::PathBuf;
use std::sync::mpsc::{Receiver, RecvTimeoutError};
use std::sync::{Arc, mpsc};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use herald_core::{AppendError, Draft, Event, Fanout, RecordOp, Topic, Trim};
use redb::Database;
use tokio::sync::oneshot;
use tokio::time::Instant;

use crate::StoreOptions;
use crate::apply::{Applied, Tables};
use crate::error::{Fault, StoreError};
use crate::stats::Counters;
use crate::tables::{Meta, begin_durable};

/// The answer to one append.
pub(crate) type AppendResult = Result<Vec<Arc<Event>>, AppendError>;

/// What the writer thread is asked to do.
pub(crate) enum Command {
    /// Store a batch and answer with the committed events.
    Append {
        batch: Vec<Draft>,
        now_ms: u64,
        reply: oneshot::Sender<AppendResult>,
    },
    /// Apply byte and age retention as of `now_ms`.
    Trim {
        now_ms: u64,
        reply: oneshot::Sender<Result<(), String>>,
    },
    /// Change webhook subscription records (committed with the group).
    Records {
        ops: Vec<RecordOp>,
        reply: oneshot::Sender<Result<(), String>>,
    },
    /// Remove part of one topic's history (the admin API).
    TrimTopic {
        topic: Topic,
        trim: Trim,
        reply: oneshot::Sender<Result<u64, AppendError>>,
    },
    /// Finish what was sent before, then stop.
    Close { reply: oneshot::Sender<()> },
}

/// Shortest sweep period: a zero `trim_interval` must not spin.
const MIN_TRIM_INTERVAL: Duration = Duration::from_millis(10);

/// The writer thread's state.
pub(crate) struct Writer {
    pub(crate) db: Arc<Database>,
    /// The data dir and the history file, for error messages.
    pub(crate) dir: PathBuf,
    pub(crate) path: PathBuf,
    /// The committed meta record (the next transaction starts from it).
    pub(crate) meta: Meta,
    pub(crate) opts: StoreOptions,
    pub(crate) fanout: Arc<Fanout>,
    pub(crate) counters: Arc<Counters>,
    pub(crate) rx: Receiver<Command>,
    /// How many commands the last group held (decides whether to linger).
    pub(crate) last_group: usize,
}

impl Writer {
    /// Serves commands until `Close` or until every sender is gone.
    pub(crate) fn run(mut self) {
        let interval = self.opts.trim_interval.max(MIN_TRIM_INTERVAL);
        let mut next_sweep = Instant::now().checked_add(interval);
        loop {
            let now = Instant::now();
            if next_sweep.is_some_and(|at| at <= now) {
                self.sweep();
                next_sweep = Instant::now().checked_add(interval);
            }
            let got = match next_sweep {
                Some(at) => self.rx.recv_timeout(at.saturating_duration_since(now)),
                None => self.rx.recv().map_err(|_| RecvTimeoutError::Disconnected),
            };
            match got {
                Ok(Command::Close { reply }) => return self.shut_down(reply),
                Ok(first) => {
                    if let Some(reply) = self.serve(first) {
                        return self.shut_down(reply);
                    }
                }
                Err(RecvTimeoutError::Timeout) => {}
                Err(RecvTimeoutError::Disconnected) => return,
            }
        }
    }

    /// Builds a group from `first` and everything waiting behind it, and
    /// commits it. Returns the reply of a `Close` met while draining.
    fn serve(&mut self, first: Command) -> Option<oneshot::Sender<()>> {
        let max = self.opts.max_batch_events.max(1);
        let (mut ops, mut replies) = (Vec::new(), Vec::new());
        let mut events = 0;
        let mut close = None;
        let mut lingered = None;
        let mut next = Some(first);
        while let Some(cmd) = next.take() {
            match cmd {
                Command::Append {
                    batch,
                    now_ms,
                    reply,
                } => {
                    events += batch.len();
                    ops.push(Op::Append(batch, now_ms));
                    replies.push(Reply::Append(reply));
                }
                Command::Trim { now_ms, reply } => {
                    ops.push(Op::Trim(now_ms));
                    replies.push(Reply::Trim(reply));
                }
                Command::Records {
                    ops: changes,
                    reply,
                } => {
                    ops.push(Op::Records(changes));
                    replies.push(Reply::Trim(reply));
                }
                Command::TrimTopic { topic, trim, reply } => {
                    ops.push(Op::TrimTopic(topic, trim));
                    replies.push(Reply::TrimTopic(reply));
                }
                Command::Close { reply } => {
                    close = Some(reply);
                    break;
                }
            }
            if events < max {
                next = self
                    .rx
                    .try_recv()
                    .ok()
                    .or_else(|| self.linger(&mut lingered));
            }
        }
        self.last_group = replies.len();
        self.commit_group(ops, replies);
        close
    }

    /// When the queue is empty: waits for one more command until the linger
    /// deadline (set at the first call of a group), but only if the last group
    /// had several commands, i.e. publishers are taking turns and the next
    /// ones are on their way. A lone publisher is never delayed.
    fn linger(&self, deadline: &mut Option<Instant>) -> Option<Command> {
        if self.last_group < 2 || self.opts.commit_linger.is_zero() {
            return None;
        }
        let until = *deadline.get_or_insert_with(|| Instant::now() + self.opts.commit_linger);
        let left = until.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return None;
        }
        self.rx.recv_timeout(left).ok()
    }

    /// Applies, commits, publishes `last_seq`, answers, delivers: in that order.
    fn commit_group(&mut self, ops: Vec<Op>, replies: Vec<Reply>) {
        let (results, removed) = match self.transact(ops) {
            Ok(r) => r,
            Err(fault) => {
                let e = StoreError::from_fault(&self.dir, &self.path, fault);
                tracing::error!(error = %e, "history write failed; its publishers get an error");
                let msg = e.to_string();
                for r in replies {
                    r.fail(&msg);
                }
                return;
            }
        };
        let committed: Vec<Arc<Event>> = results.iter().flatten().flatten().cloned().collect();
        // Answer first: the events are durable and `last_seq` is published, so
        // any reader finds them; waking the appenders before the subscribers
        // keeps a publisher's answer from queueing behind a large fan-out on
        // the runtime (its next request comes sooner, and events pile up into
        // coalesced writes instead of pacing the publishers).
        let mut removed = removed.into_iter();
        for (r, result) in replies.into_iter().zip(results) {
            match r {
                Reply::TrimTopic(tx) => {
                    let _ = tx.send(Ok(removed.next().unwrap_or(0)));
                }
                r => r.answer(result),
            }
        }
        if !committed.is_empty() {
            self.fanout.deliver(&committed);
        }
    }

    /// Runs `ops` in one durable transaction; on success the new state is
    /// cached and published. Nothing is cached if anything fails.
    /// Returns each op's result and, in order, the counts of its topic trims.
    fn transact(&mut self, ops: Vec<Op>) -> Result<(Vec<AppendResult>, Vec<u64>), Fault> {
        let r = self.transact_timed(ops);
        self.counters.set_fault(r.as_ref().err());
        r
    }

    fn transact_timed(&mut self, ops: Vec<Op>) -> Result<(Vec<AppendResult>, Vec<u64>), Fault> {
        let started = Instant::now();
        let txn = begin_durable(&self.db)?;
        let mut removed = Vec::new();
        let (results, applied) = {
            let mut tables = Tables::open(&txn, self.meta)?;
            let mut results = Vec::with_capacity(ops.len());
            for op in ops {
                results.push(match op {
                    Op::Append(batch, now_ms) => {
                        tables.append(batch, now_ms, &self.opts.retention)?
                    }
                    Op::Trim(now_ms) => tables
                        .trim_global(&self.opts.retention, now_ms)
                        .map(|()| Ok(Vec::new()))?,
                    Op::Records(changes) => tables.records(changes).map(|()| Ok(Vec::new()))?,
                    Op::TrimTopic(topic, trim) => {
                        removed.push(tables.trim_topic(topic.as_str(), trim)?);
                        Ok(Vec::new())
                    }
                });
            }
            (results, tables.finish()?)
        };
        let Applied {
            meta,
            shape,
            changed,
        } = applied;
        if changed {
            let applied_at = Instant::now();
            self.counters.append.observe(applied_at - started);
            txn.commit()?;
            self.counters.commit.observe(applied_at.elapsed());
            self.counters.count_commit();
        } else {
            txn.abort()?;
        }
        self.meta = meta;
        self.counters.publish(&meta, &shape);
        Ok((results, removed))
    }

    /// The periodic age sweep, by the wall clock (event times are wall-clock).
    fn sweep(&mut self) {
        if self.opts.retention.max_age.is_none() {
            return;
        }
        let now_ms = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_millis() as u64);
        if let Err(fault) = self.transact(vec![Op::Trim(now_ms)]) {
            let e = StoreError::from_fault(&self.dir, &self.path, fault);
            tracing::warn!(error = %e, "history age sweep failed; it is retried");
        }
    }

    /// Releases the file, drops whatever is still queued (those requesters
    /// see the store closed), then confirms.
    fn shut_down(self, reply: oneshot::Sender<()>) {
        let Writer { db, rx, .. } = self;
        drop(db);
        let mut waiting = vec![reply];
        while let Ok(cmd) = rx.try_recv() {
            if let Command::Close { reply } = cmd {
                waiting.push(reply);
            }
        }
        drop(rx);
        for r in waiting {
            let _ = r.send(());
        }
    }
}

/// A request's operation, moved into the transaction.
enum Op {
    Append(Vec<Draft>, u64),
    Trim(u64),
    Records(Vec<RecordOp>),
    TrimTopic(Topic, Trim),
}

/// A request's reply channel, kept until after the commit. `Trim` also
/// answers record changes: both only say whether the commit happened.
enum Reply {
    Append(oneshot::Sender<AppendResult>),
    TrimTopic(oneshot::Sender<Result<u64, AppendError>>),
    Trim(oneshot::Sender<Result<(), String>>),
}

impl Reply {
    /// Answers with the request's result (a gone requester is fine: a dropped
    /// append may or may not have been stored, as the `Log` trait says).
    fn answer(self, result: AppendResult) {
        match self {
            Reply::Append(tx) => {
                let _ = tx.send(result);
            }
            Reply::Trim(tx) => {
                let _ = tx.send(Ok(()));
            }
            // Answered by `commit_group` with its count.
            Reply::TrimTopic(tx) => {
                let _ = tx.send(Ok(0));
            }
        }
    }

    /// Answers that the group's transaction failed.
    fn fail(self, msg: &str) {
        match self {
            Reply::Append(tx) => {
                let _ = tx.send(Err(AppendError::Unavailable(msg.to_string())));
            }
            Reply::Trim(tx) => {
                let _ = tx.send(Err(msg.to_string()));
            }
            Reply::TrimTopic(tx) => {
                let _ = tx.send(Err(AppendError::Unavailable(msg.to_string())));
            }
        }
    }
}

/// Opens a channel to a writer (the sender goes to `RedbLog`).
pub(crate) fn channel() -> (mpsc::Sender<Command>, Receiver<Command>) {
    mpsc::channel()
}

#[cfg(test)]
mod tests {
    //! The commit linger, driven on a writer without its thread so the queue's
    //! contents are known when each group is built.

    use std::thread;

    use bytes::Bytes;
    use herald_core::Topic;

    use super::*;
    use crate::tables::Shape;

    fn writer(linger: Duration) -> (Writer, mpsc::Sender<Command>, tempfile::TempDir) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("history.redb");
        let db = Arc::new(Database::create(&path).unwrap());
        let meta = Meta::load_or_create(&db).unwrap();
        let shape = Shape::read(&db).unwrap();
        let (tx, rx) = channel();
        let w = Writer {
            db,
            dir: dir.path().to_path_buf(),
            path,
            meta,
            opts: StoreOptions {
                commit_linger: linger,
                ..StoreOptions::default()
            },
            fanout: Arc::new(Fanout::new(16)),
            counters: Arc::new(Counters::new(&meta, &shape)),
            rx,
            last_group: 0,
        };
        (w, tx, dir)
    }

    fn append(tx: &mpsc::Sender<Command>) -> oneshot::Receiver<AppendResult> {
        let (reply, rx) = oneshot::channel();
        let draft = Draft {
            topics: vec![Topic::parse("t", 16).unwrap()],
            data: Bytes::from_static(b"x"),
            kind: None,
            id: None,
            retry: None,
            private: false,
            content_type: None,
        };
        tx.send(Command::Append {
            batch: vec![draft],
            now_ms: 1,
            reply,
        })
        .unwrap();
        rx
    }

    /// Serves the next group and returns how many commands it held.
    fn serve_next(w: &mut Writer) -> usize {
        let first = w.rx.recv().unwrap();
        assert!(w.serve(first).is_none());
        w.last_group
    }

    fn seq(mut rx: oneshot::Receiver<AppendResult>) -> u64 {
        rx.try_recv().unwrap().unwrap()[0].seq
    }

    #[test]
    fn after_a_shared_group_the_writer_waits_for_the_next_publisher() {
        let (mut w, tx, _dir) = writer(Duration::from_secs(2));
        let (a, b) = (append(&tx), append(&tx));
        assert_eq!(serve_next(&mut w), 2, "both waiting appends share a group");
        let c = append(&tx);
        let late = tx.clone();
        let sender = thread::spawn(move || {
            thread::sleep(Duration::from_millis(50));
            append(&late)
        });
        assert_eq!(serve_next(&mut w), 2, "the late append joined the group");
        let d = sender.join().unwrap();
        assert_eq!([seq(a), seq(b), seq(c), seq(d)], [1, 2, 3, 4]);
        assert_eq!(w.counters.snapshot().commits, 2);
    }

    #[test]
    fn a_lone_publisher_is_not_held_back() {
        let (mut w, tx, _dir) = writer(Duration::from_secs(30));
        let a = append(&tx);
        let late = tx.clone();
        let sender = thread::spawn(move || {
            thread::sleep(Duration::from_millis(300));
            append(&late)
        });
        assert_eq!(serve_next(&mut w), 1, "a group of one commits at once");
        let b = sender.join().unwrap();
        assert_eq!(serve_next(&mut w), 1);
        assert_eq!([seq(a), seq(b)], [1, 2]);
    }

    #[test]
    fn zero_linger_never_waits() {
        let (mut w, tx, _dir) = writer(Duration::ZERO);
        let (_a, _b) = (append(&tx), append(&tx));
        assert_eq!(serve_next(&mut w), 2);
        let _c = append(&tx);
        let late = tx.clone();
        let sender = thread::spawn(move || {
            thread::sleep(Duration::from_millis(300));
            append(&late)
        });
        assert_eq!(serve_next(&mut w), 1);
        let _d = sender.join().unwrap();
    }
}
