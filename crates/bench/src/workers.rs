//! Several processes: one process may open at most 20,000 files here, so a
//! run with more subscribers than one process can hold starts worker
//! processes (`herald bench` again, with hidden flags) that each open their
//! share of the subscribers, while the parent publishes, samples the server
//! and adds everything up.
//!
//! The parent and its workers speak JSON lines: a worker prints `connected`
//! once its subscribers are connected and `finished` once each has its last
//! expected event; it ends when the parent writes `stop` (or closes its
//! stdin), printing its `result`: the summed counts, its latencies as
//! (value, count) pairs and its deliveries per interval. Every
//! [`PROGRESS_EVERY`] it also prints `progress` (its connected subscribers
//! and deliveries so far), which the parent adds up for its progress bars.
//! Send times are µs since a wall-clock base the parent hands every worker,
//! so latencies and intervals mean the same in every process.

use std::collections::VecDeque;
use std::process::Stdio;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use hdrhistogram::Histogram;
use serde::{Deserialize, Serialize};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::process::{Child, ChildStdin, Command};
use tokio::sync::mpsc;

use crate::run::Ctx;
use crate::subscriber::SubResult;

/// Subscribers one process opens at most (the file limit is 20,000).
pub(crate) const PER_PROCESS: u64 = 18_000;
/// How often a worker reports its progress.
pub(crate) const PROGRESS_EVERY: Duration = Duration::from_millis(250);

/// Serializes a worker's stdout, so concurrent lines never interleave.
static STDOUT: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// Adds `other` into `into`, interval by interval.
pub(crate) fn add_series(into: &mut Vec<u64>, other: &[u64]) {
    if into.len() < other.len() {
        into.resize(other.len(), 0);
    }
    for (a, b) in into.iter_mut().zip(other) {
        *a += b;
    }
}

/// What subscribers saw, summed: over one process's subscribers, or over
/// every worker's.
#[derive(Debug, Default, Clone, Serialize, Deserialize)]
pub(crate) struct Summary {
    pub(crate) expected: u64,
    pub(crate) deliveries: u64,
    pub(crate) lost: u64,
    pub(crate) duplicated: u64,
    pub(crate) out_of_order: u64,
    pub(crate) unexpected: u64,
    pub(crate) closed_early: u64,
    pub(crate) first_stream_error: Option<String>,
    /// When the last event arrived, µs on the run's clock.
    pub(crate) last_rx_us: u64,
    /// Latencies as (µs, count) pairs.
    pub(crate) latencies: Vec<(u64, u64)>,
    /// Deliveries per `run::TIMELINE_US` interval of the run's clock.
    #[serde(default)]
    pub(crate) timeline: Vec<u64>,
}

impl Summary {
    /// Sums connected subscribers' results and takes `latencies`.
    pub(crate) fn of(
        subs: &[SubResult],
        latencies: &Histogram<u64>,
        timeline: Vec<u64>,
    ) -> Summary {
        let mut s = Summary {
            timeline,
            latencies: latencies
                .iter_recorded()
                .map(|v| (v.value_iterated_to(), v.count_at_value()))
                .collect(),
            ..Summary::default()
        };
        for r in subs.iter().filter(|r| r.connect_error.is_none()) {
            s.expected += r.expected;
            s.deliveries += r.delivered;
            s.lost += r.lost;
            s.duplicated += r.duplicated;
            s.out_of_order += r.out_of_order;
            s.unexpected += r.unexpected;
            s.closed_early += u64::from(r.stream_error.is_some());
            if s.first_stream_error.is_none() {
                s.first_stream_error.clone_from(&r.stream_error);
            }
            s.last_rx_us = s.last_rx_us.max(r.last_rx_us);
        }
        s
    }

    /// Adds another process's summary.
    pub(crate) fn add(&mut self, o: Summary) {
        self.expected += o.expected;
        self.deliveries += o.deliveries;
        self.lost += o.lost;
        self.duplicated += o.duplicated;
        self.out_of_order += o.out_of_order;
        self.unexpected += o.unexpected;
        self.closed_early += o.closed_early;
        if self.first_stream_error.is_none() {
            self.first_stream_error = o.first_stream_error;
        }
        self.last_rx_us = self.last_rx_us.max(o.last_rx_us);
        self.latencies.extend(o.latencies);
        add_series(&mut self.timeline, &o.timeline);
    }

    /// The latencies as one histogram.
    pub(crate) fn histogram(&self, empty: &Histogram<u64>) -> Histogram<u64> {
        let mut h = empty.clone();
        for &(v, n) in &self.latencies {
            h.saturating_record_n(v.max(1), n);
        }
        h
    }
}

/// One line from a worker.
#[derive(Debug, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub(crate) enum Line {
    /// Its subscribers are connected (or failed to).
    Connected {
        ok: u64,
        failed: u64,
        first_error: Option<String>,
    },
    /// Each of its subscribers has its last expected event.
    Finished,
    /// Its counts so far (for the parent's progress bars).
    Progress { connected: u64, delivered: u64 },
    /// Its final counts.
    Result(Summary),
}

impl Line {
    /// Prints the line on stdout (the parent reads it).
    pub(crate) async fn send(&self) {
        let mut text = serde_json::to_string(self).unwrap_or_default();
        text.push('\n');
        let _one_at_a_time = STDOUT.lock().await;
        let mut out = tokio::io::stdout();
        let _ = out.write_all(text.as_bytes()).await;
        let _ = out.flush().await;
    }
}

/// This process's `bench` arguments, minus `--workers` (which the parent
/// gives each worker itself).
pub(crate) fn passed_args() -> Vec<String> {
    let all: Vec<String> = std::env::args().collect();
    let start = all
        .iter()
        .position(|a| a == "bench")
        .map_or(all.len(), |i| i + 1);
    let mut out = Vec::new();
    let mut skip_value = false;
    for a in &all[start..] {
        if std::mem::take(&mut skip_value) {
            continue;
        }
        if a == "--workers" {
            skip_value = true;
        } else if !a.starts_with("--workers=") {
            out.push(a.clone());
        }
    }
    out
}

/// µs since the Unix epoch.
pub(crate) fn unix_us() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_micros()).unwrap_or(u64::MAX))
}

/// Waits for `stop` (or the end of stdin): the worker's cue to finish.
pub(crate) async fn stopped() {
    let mut lines = BufReader::new(tokio::io::stdin()).lines();
    while let Ok(Some(line)) = lines.next_line().await {
        if line.trim() == "stop" {
            return;
        }
    }
}

/// The parent's handle on its workers.
pub(crate) struct Fleet {
    workers: Vec<Worker>,
    /// Every worker's lines but `progress`, tagged with its index (a read
    /// error or the end of its output comes as an error).
    lines: mpsc::UnboundedReceiver<(usize, Result<Line, String>)>,
    /// Lines that came while their worker's previous one was still unread.
    pending: Vec<VecDeque<Result<Line, String>>>,
}

struct Worker {
    child: Child,
    stdin: Option<ChildStdin>,
}

impl Fleet {
    /// Starts `n` workers: this executable with `bench`, the same flags
    /// (`args`), and each worker's index, the run id and the clock base.
    /// Their `progress` lines are added into `ctx`'s counters.
    pub(crate) fn start(
        n: u32,
        args: &[String],
        run_id: u16,
        clock_base_us: u64,
        ctx: &Arc<Ctx>,
    ) -> Result<Fleet, String> {
        let exe = std::env::current_exe().map_err(|e| format!("cannot find herald: {e}"))?;
        let (tx, lines) = mpsc::unbounded_channel();
        let mut workers = Vec::new();
        for i in 0..n {
            let mut child = Command::new(&exe)
                .arg("bench")
                .args(args)
                .args(["--workers", &n.to_string()])
                .args(["--worker-index", &i.to_string()])
                .args(["--run-id", &run_id.to_string()])
                .args(["--clock-base-us", &clock_base_us.to_string()])
                .stdin(Stdio::piped())
                .stdout(Stdio::piped())
                .stderr(Stdio::inherit())
                .kill_on_drop(true)
                .spawn()
                .map_err(|e| format!("cannot start worker {i}: {e}"))?;
            let stdin = child.stdin.take();
            let stdout = child
                .stdout
                .take()
                .ok_or_else(|| format!("worker {i} has no stdout"))?;
            let (tx, ctx, i) = (tx.clone(), ctx.clone(), i as usize);
            tokio::spawn(async move {
                let mut lines = BufReader::new(stdout).lines();
                let (mut connected, mut delivered) = (0, 0);
                loop {
                    let line = match lines.next_line().await {
                        Ok(Some(line)) => line,
                        Ok(None) => {
                            let _ = tx.send((i, Err(format!("worker {i} ended early"))));
                            return;
                        }
                        Err(e) => {
                            let _ = tx.send((i, Err(format!("worker {i}: {e}"))));
                            return;
                        }
                    };
                    match serde_json::from_str(&line) {
                        Ok(Line::Progress {
                            connected: c,
                            delivered: d,
                        }) => {
                            ctx.connected
                                .fetch_add(c.saturating_sub(connected), Ordering::Relaxed);
                            ctx.delivered
                                .fetch_add(d.saturating_sub(delivered), Ordering::Relaxed);
                            (connected, delivered) = (c.max(connected), d.max(delivered));
                        }
                        Ok(other) => {
                            let _ = tx.send((i, Ok(other)));
                        }
                        Err(e) => {
                            let _ = tx.send((i, Err(format!("worker {i} said {line:?}: {e}"))));
                            return;
                        }
                    }
                }
            });
            workers.push(Worker { child, stdin });
        }
        let pending = (0..n).map(|_| VecDeque::new()).collect();
        Ok(Fleet {
            workers,
            lines,
            pending,
        })
    }

    /// Reads lines until every worker gave one that `wanted` keeps; other
    /// lines are skipped. Returns them in worker order.
    async fn one_each<T>(&mut self, wanted: impl Fn(Line) -> Option<T>) -> Result<Vec<T>, String> {
        let mut got: Vec<Option<T>> = (0..self.workers.len()).map(|_| None).collect();
        for (i, queue) in self.pending.iter_mut().enumerate() {
            while got[i].is_none() {
                match queue.pop_front() {
                    Some(line) => got[i] = wanted(line?),
                    None => break,
                }
            }
        }
        while got.iter().any(Option::is_none) {
            let (i, line) = self
                .lines
                .recv()
                .await
                .ok_or_else(|| "the workers' output ended".to_string())?;
            if got[i].is_none() {
                got[i] = wanted(line?);
            } else {
                self.pending[i].push_back(line);
            }
        }
        Ok(got.into_iter().flatten().collect())
    }

    /// Waits for every worker's `connected`: (ok, failed, first error).
    pub(crate) async fn connected(&mut self) -> Result<(u64, u64, Option<String>), String> {
        let lines = self
            .one_each(|l| match l {
                Line::Connected {
                    ok,
                    failed,
                    first_error,
                } => Some(Ok((ok, failed, first_error))),
                other => Some(Err(format!("a worker said {other:?} before connecting"))),
            })
            .await?;
        let (mut ok, mut failed, mut first) = (0, 0, None);
        for line in lines {
            let (o, f, e) = line?;
            ok += o;
            failed += f;
            if first.is_none() {
                first = e;
            }
        }
        Ok((ok, failed, first))
    }

    /// Waits until every worker said `finished`; false if one ended first.
    pub(crate) async fn finished(&mut self) -> bool {
        let lines = self.one_each(|l| Some(matches!(l, Line::Finished))).await;
        matches!(lines, Ok(all) if all.iter().all(|&f| f))
    }

    /// Tells every worker to stop and sums their results.
    pub(crate) async fn stop(mut self) -> Result<Summary, String> {
        for w in &mut self.workers {
            if let Some(mut stdin) = w.stdin.take() {
                let _ = stdin.write_all(b"stop\n").await;
            }
        }
        let results = self
            .one_each(|l| match l {
                Line::Result(s) => Some(s),
                _ => None,
            })
            .await?;
        let mut total = Summary::default();
        for s in results {
            total.add(s);
        }
        for w in &mut self.workers {
            let _ = w.child.wait().await;
        }
        Ok(total)
    }
}
