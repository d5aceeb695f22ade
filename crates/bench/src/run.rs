//! One run, phase by phase: connect every subscriber, hold them idle,
//! publish, wait for the deliveries (or the timeout), then add it all up.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use hdrhistogram::Histogram;
use tokio::sync::{Notify, Semaphore, mpsc};
use tokio::task::JoinHandle;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::args::{Plan, Role};
use crate::progress::Progress;
use crate::publisher::{self, PubResult};
use crate::report::{Report, ServerCost};
use crate::sequence::expected_on_topic;
use crate::server_stats::{ProcReader, ProcSample};
use crate::storm::{self, StormSignals};
use crate::subscriber::{self, SubResult, SubSpec};
use crate::workers::{self, Fleet, Line, Summary};

/// Latency histograms are sharded so subscribers on different threads rarely
/// meet on a lock; each subscriber records one read's events under one lock.
const SHARDS: usize = 64;
/// Highest latency recorded, µs (one hour); higher values are clamped.
const MAX_LATENCY_US: u64 = 3_600_000_000;
/// Subscribers per source address at most (ephemeral ports of one address).
const SOURCES: u8 = 253;
/// Width of one interval of the deliveries-over-time series, µs.
pub(crate) const TIMELINE_US: u64 = 100_000;
/// Intervals kept at most (an hour; later deliveries are not plotted).
const TIMELINE_MAX: usize = 36_000;

/// One shard of what subscribers record: latencies, and deliveries per
/// [`TIMELINE_US`] interval since time zero.
#[derive(Clone)]
struct Shard {
    latencies: Histogram<u64>,
    timeline: Vec<u64>,
}

/// What every task of a run shares.
pub(crate) struct Ctx {
    pub(crate) plan: Plan,
    /// Time zero: send and receive times are µs since this instant...
    start: Instant,
    /// ...or, when workers share the run, since this wall-clock time (µs
    /// since the Unix epoch), the same in every process.
    clock_base_us: Option<u64>,
    /// Ends every subscriber and publisher.
    pub(crate) cancel: CancellationToken,
    /// Bounds the subscribers connecting at once.
    pub(crate) connect_gate: Semaphore,
    shards: Vec<Mutex<Shard>>,
    /// Subscribers that have their last expected event (or gave up).
    pub(crate) finished: AtomicU64,
    finished_changed: Notify,
    /// Subscribers connected so far (progress).
    pub(crate) connected: AtomicU64,
    /// Deliveries recorded so far (progress).
    pub(crate) delivered: AtomicU64,
    /// Events the server accepted so far (progress).
    pub(crate) published: AtomicU64,
    /// `--storm`: the drop and reconnect signals.
    pub(crate) storm: Option<StormSignals>,
}

impl Ctx {
    /// µs since the run started.
    pub(crate) fn now_us(&self) -> u64 {
        match self.clock_base_us {
            Some(base) => workers::unix_us().saturating_sub(base),
            None => u64::try_from(self.start.elapsed().as_micros()).unwrap_or(u64::MAX),
        }
    }

    /// Records latencies (µs) of subscriber `id`, received at `now_us`.
    pub(crate) fn record(&self, id: u64, latencies: &[u64], now_us: u64) {
        let n = latencies.len() as u64;
        self.delivered.fetch_add(n, Ordering::Relaxed);
        let bucket = usize::try_from(now_us / TIMELINE_US).unwrap_or(usize::MAX);
        let shard = &self.shards[(id % SHARDS as u64) as usize];
        let mut s = shard.lock().unwrap_or_else(|p| p.into_inner());
        for &l in latencies {
            s.latencies.saturating_record(l.max(1));
        }
        if bucket < TIMELINE_MAX {
            if s.timeline.len() <= bucket {
                s.timeline.resize(bucket + 1, 0);
            }
            s.timeline[bucket] += n;
        }
    }

    /// A subscriber is done waiting.
    pub(crate) fn finished(&self) {
        self.finished.fetch_add(1, Ordering::AcqRel);
        self.finished_changed.notify_one();
    }
}

/// Why a run stopped before it could report.
#[derive(Debug)]
pub(crate) struct Abort(pub String);

/// Runs `plan` to its report (`None` for a worker, which prints its lines).
pub(crate) async fn execute(mut plan: Plan) -> Result<Option<Report>, Abort> {
    if let Role::Parent { .. } = plan.role {
        plan.clock_base_us = Some(workers::unix_us());
    }
    let sub_addr = plan.sub_url.resolve().await.map_err(Abort)?;
    let pub_addr = plan.pub_url.resolve().await.map_err(Abort)?;
    let proc = if plan.server_pids.is_empty() {
        None
    } else {
        Some(ProcReader::new(&plan.server_pids).map_err(Abort)?)
    };
    let sample = |p: &Option<ProcReader>| -> Result<Option<ProcSample>, Abort> {
        p.as_ref().map(|r| r.sample().map_err(Abort)).transpose()
    };
    let histogram = Histogram::new_with_bounds(1, MAX_LATENCY_US, 3)
        .map_err(|e| Abort(format!("histogram: {e}")))?;
    let shard = Shard {
        latencies: histogram.clone(),
        timeline: Vec::new(),
    };
    let ctx = Arc::new(Ctx {
        connect_gate: Semaphore::new(plan.connect_concurrency),
        clock_base_us: plan.clock_base_us,
        storm: plan.storm.map(|s| StormSignals::new(&s)),
        plan,
        start: Instant::now(),
        cancel: CancellationToken::new(),
        shards: (0..SHARDS).map(|_| Mutex::new(shard.clone())).collect(),
        finished: AtomicU64::new(0),
        finished_changed: Notify::new(),
        connected: AtomicU64::new(0),
        delivered: AtomicU64::new(0),
        published: AtomicU64::new(0),
    });
    let plan = &ctx.plan;
    if let Role::Worker { .. } = plan.role {
        worker(&ctx, sub_addr).await;
        return Ok(None);
    }
    let progress = Progress::new(plan.quiet);
    let baseline = sample(&proc)?;

    // Connect: here, or in the workers.
    let mut fleet = None;
    let connect_bar = {
        let c = ctx.clone();
        progress.phase("connect", plan.subscribers, move || {
            c.connected.load(Ordering::Relaxed)
        })
    };
    let (subs, connected, connect_secs) = match plan.role {
        Role::Parent { workers } => {
            let started = Instant::now();
            let mut f = Fleet::start(
                workers,
                &workers::passed_args(),
                plan.run_id,
                plan.clock_base_us.unwrap_or_default(),
                &ctx,
            )
            .map_err(Abort)?;
            let (ok, _failed, first_error) = f.connected().await.map_err(Abort)?;
            fleet = Some(f);
            let connected = Connected { ok, first_error };
            (Vec::new(), connected, started.elapsed().as_secs_f64())
        }
        _ => connect_all(&ctx, sub_addr).await,
    };
    let failures = plan.subscribers - connected.ok;
    connect_bar.done(&format!("in {connect_secs:.2} s"));
    progress.println(&format!(
        "herald bench: {}/{} subscribers connected in {connect_secs:.2} s",
        connected.ok, plan.subscribers
    ));
    if failures > plan.max_connect_failures {
        ctx.cancel.cancel();
        return Err(Abort(format!(
            "{failures} of {} subscribers failed to connect (allowed: {}, --max-connect-failures); first error: {}",
            plan.subscribers,
            plan.max_connect_failures,
            connected.first_error.unwrap_or_default()
        )));
    }

    // Idle.
    tokio::time::sleep(plan.idle).await;
    let idle = sample(&proc)?;

    // Publish and deliver.
    let publish_start_us = ctx.now_us();
    let bars = (
        {
            let c = ctx.clone();
            progress.phase("publish", plan.events, move || {
                c.published.load(Ordering::Relaxed)
            })
        },
        {
            let c = ctx.clone();
            progress.phase(
                "deliver",
                expected_deliveries(plan, plan.events),
                move || c.delivered.load(Ordering::Relaxed),
            )
        },
    );
    let (publishers, publish_end) = start_publishing(&ctx, pub_addr, 0..plan.events);
    let deadline = Instant::now() + plan.timeout;
    let mut timed_out = match fleet.as_mut() {
        Some(f) => tokio::time::timeout_at(deadline, f.finished())
            .await
            .map_or(true, |all| !all),
        None => wait_finished(&ctx, connected.ok, deadline).await,
    };
    bars.0.done("");
    bars.1.done(if timed_out { "timed out" } else { "" });
    let mut publishers = Some(publishers);
    let mut pubs = Vec::new();
    let mut storm_figures = None;
    // A storm starts once the first events are all delivered (not after a timeout).
    if let (Some(settings), false) = (plan.storm, timed_out) {
        pubs = join_until(publishers.take().unwrap_or_default(), deadline).await;
        let (figures, away_pubs, storm_timed_out) =
            storm::run(&ctx, &settings, pub_addr, connected.ok, &progress).await;
        pubs.extend(away_pubs);
        timed_out |= storm_timed_out;
        storm_figures = Some(figures);
    }
    let after = sample(&proc)?;
    ctx.cancel.cancel();
    if let Some(publishers) = publishers {
        pubs = join_all(publishers).await;
    }
    let publish_end_us = publish_end.load(Ordering::Acquire);
    let summary = match fleet {
        Some(f) => f.stop().await.map_err(Abort)?,
        None => {
            let results = join_all(subs).await;
            if let Some(figures) = storm_figures.as_mut() {
                storm::add_up(figures, &results);
            }
            let (latencies, timeline) = merged(&ctx);
            Summary::of(&results, &latencies, timeline)
        }
    };

    let mut report = add_up(&ctx, &summary, &pubs, &histogram);
    report.storm = storm_figures;
    report.connected = connected.ok;
    report.connect_failures = failures;
    report.connect_per_sec = connected.ok as f64 / connect_secs.max(1e-9);
    report.timed_out = timed_out;
    report.delivery_secs = summary.last_rx_us.saturating_sub(publish_start_us) as f64 / 1e6;
    if report.delivery_secs > 0.0 {
        report.deliveries_per_sec = report.deliveries as f64 / report.delivery_secs;
    }
    let publish_secs = publish_end_us.saturating_sub(publish_start_us) as f64 / 1e6;
    if publish_secs > 0.0 {
        // The first events only: a storm's away events are timed apart.
        let away = report.storm.as_ref().map_or(0, |s| s.away_published);
        report.publish_per_sec = report.published.saturating_sub(away) as f64 / publish_secs;
    }
    if let (Some(b), Some(i), Some(a)) = (baseline, idle, after) {
        report.server = Some(ServerCost {
            rss_baseline_kib: b.rss_kib,
            rss_idle_kib: i.rss_kib,
            rss_kib_per_conn: (connected.ok > 0)
                .then(|| (i.rss_kib as f64 - b.rss_kib as f64) / connected.ok as f64),
            cpu_us: a.cpu_us.saturating_sub(i.cpu_us),
            writes: a.syscw.zip(i.syscw).map(|(a, i)| a.saturating_sub(i)),
        });
    }
    if let Some(path) = &plan.plot {
        let latencies = summary.histogram(&histogram);
        crate::plot::write(
            path,
            &plan.label,
            &latencies,
            &summary.timeline,
            publish_start_us,
        )
        .map_err(|e| Abort(format!("--plot {}: {e}", path.display())))?;
        progress.println(&format!("herald bench: plot written to {}", path.display()));
    }
    Ok(Some(report))
}

/// Deliveries expected when `events` are published: every subscriber gets
/// its topic's share.
pub(crate) fn expected_deliveries(plan: &Plan, events: u64) -> u64 {
    let (per_topic, extra) = (
        plan.subscribers / plan.topics,
        plan.subscribers % plan.topics,
    );
    (0..plan.topics)
        .map(|t| (per_topic + u64::from(t < extra)) * expected_on_topic(events, plan.topics, t))
        .sum()
}

/// A worker: connects its share of the subscribers, says so, says when they
/// all have their events, and on `stop` prints what they saw.
async fn worker(ctx: &Arc<Ctx>, addr: SocketAddr) {
    let reporter = {
        let c = ctx.clone();
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(workers::PROGRESS_EVERY);
            loop {
                tokio::select! {
                    () = c.cancel.cancelled() => break,
                    _ = tick.tick() => {}
                }
                Line::Progress {
                    connected: c.connected.load(Ordering::Relaxed),
                    delivered: c.delivered.load(Ordering::Relaxed),
                }
                .send()
                .await;
            }
        })
    };
    let (subs, connected, _) = connect_all(ctx, addr).await;
    let mine = subs.len() as u64;
    Line::Connected {
        ok: connected.ok,
        failed: mine - connected.ok,
        first_error: connected.first_error,
    }
    .send()
    .await;
    let stop = workers::stopped();
    tokio::pin!(stop);
    tokio::select! {
        () = &mut stop => {}
        _ = wait_finished(ctx, mine, Instant::now() + Duration::from_secs(86_400 * 365)) => {
            Line::Finished.send().await;
            stop.await;
        }
    }
    ctx.cancel.cancel();
    let _ = reporter.await;
    let results = join_all(subs).await;
    let (latencies, timeline) = merged(ctx);
    Line::Result(Summary::of(&results, &latencies, timeline))
        .send()
        .await;
}

/// The shards merged: one latency histogram, one deliveries-per-interval series.
fn merged(ctx: &Ctx) -> (Histogram<u64>, Vec<u64>) {
    let mut all = ctx.shards[0]
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .clone();
    for shard in &ctx.shards[1..] {
        let s = shard.lock().unwrap_or_else(|p| p.into_inner());
        let _ = all.latencies.add(&s.latencies);
        workers::add_series(&mut all.timeline, &s.timeline);
    }
    (all.latencies, all.timeline)
}

/// Outcome of the connect phase.
struct Connected {
    ok: u64,
    first_error: Option<String>,
}

/// Spawns every subscriber and waits until each has connected or failed.
async fn connect_all(
    ctx: &Arc<Ctx>,
    addr: SocketAddr,
) -> (Vec<JoinHandle<SubResult>>, Connected, f64) {
    let plan = &ctx.plan;
    let spread = plan.spread && addr.ip().is_loopback() && addr.is_ipv4();
    let (ready_tx, mut ready_rx) = mpsc::unbounded_channel();
    let started = Instant::now();
    let mut handles = Vec::with_capacity(plan.subscribers as usize);
    let (share, of) = match plan.role {
        Role::Worker { index, workers } => (u64::from(index), u64::from(workers)),
        _ => (0, 1),
    };
    let total_events = plan.events + plan.storm.map_or(0, |s| s.away_events);
    for i in (share..plan.subscribers).step_by(of as usize) {
        let t = i % plan.topics;
        let source = spread
            .then(|| IpAddr::V4(Ipv4Addr::new(127, 0, 0, 2 + (i % u64::from(SOURCES)) as u8)));
        let spec = SubSpec {
            topic: t,
            expected: expected_on_topic(total_events, plan.topics, t),
            first_goal: expected_on_topic(plan.events, plan.topics, t),
            addr,
            source,
            transport: plan.transport,
            authority: plan.sub_url.authority.clone(),
            target: plan.sub_url.target(&plan.topic(t)),
        };
        handles.push(tokio::spawn(subscriber::run(
            i,
            spec,
            ctx.clone(),
            ready_tx.clone(),
        )));
    }
    drop(ready_tx);
    let mut connected = Connected {
        ok: 0,
        first_error: None,
    };
    while let Some(outcome) = ready_rx.recv().await {
        match outcome {
            Ok(()) => {
                connected.ok += 1;
                ctx.connected.fetch_add(1, Ordering::Relaxed);
            }
            Err(e) => {
                connected.first_error.get_or_insert(e);
            }
        }
    }
    (handles, connected, started.elapsed().as_secs_f64())
}

/// The runtime the publishers (and the ticker that paces them) run on: one
/// thread of their own, so that "as fast as possible" is not slowed by the
/// load generator itself. On the subscribers' runtime a publisher's answer
/// would wait in the same queue as thousands of readers woken by the event
/// it published, and the next publish behind them. Built on first use, kept
/// for the life of the process; the subscribers' runtime when it cannot be
/// built.
fn publish_runtime() -> tokio::runtime::Handle {
    static RT: OnceLock<Option<tokio::runtime::Runtime>> = OnceLock::new();
    let rt = RT.get_or_init(|| {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .thread_name("bench-publish")
            .enable_all()
            .build()
            .ok()
    });
    match rt {
        Some(rt) => rt.handle().clone(),
        None => tokio::runtime::Handle::current(),
    }
}

/// Starts the publishers (and, when paced, the ticker that feeds them) on
/// [`publish_runtime`]. The returned cell receives the time the last publish
/// was answered.
pub(crate) fn start_publishing(
    ctx: &Arc<Ctx>,
    addr: SocketAddr,
    seqs: std::ops::Range<u64>,
) -> (Vec<JoinHandle<PubResult>>, Arc<AtomicU64>) {
    let plan = &ctx.plan;
    let rt = publish_runtime();
    let mut senders = Vec::new();
    let mut handles = Vec::new();
    for _ in 0..plan.publishers {
        let (tx, rx) = mpsc::unbounded_channel();
        senders.push(tx);
        handles.push(rt.spawn(publisher::run(addr, rx, ctx.clone())));
    }
    let route = |seq: u64| plan.publisher_of(seq);
    match plan.period {
        None => {
            for seq in seqs {
                let _ = senders[route(seq)].send(seq);
            }
        }
        Some(period) => {
            let ctx2 = ctx.clone();
            let cancel = ctx.cancel.clone();
            rt.spawn(async move {
                let mut tick = tokio::time::interval(period);
                for seq in seqs {
                    tokio::select! {
                        () = cancel.cancelled() => break,
                        _ = tick.tick() => {}
                    }
                    let _ = senders[ctx2.plan.publisher_of(seq)].send(seq);
                }
            });
            return finish_marker(ctx, handles);
        }
    }
    drop(senders);
    finish_marker(ctx, handles)
}

/// Wraps the publisher handles so the last one to end stamps the end time.
fn finish_marker(
    ctx: &Arc<Ctx>,
    handles: Vec<JoinHandle<PubResult>>,
) -> (Vec<JoinHandle<PubResult>>, Arc<AtomicU64>) {
    let end = Arc::new(AtomicU64::new(0));
    let left = Arc::new(AtomicU64::new(handles.len() as u64));
    let wrapped = handles
        .into_iter()
        .map(|h| {
            let (ctx, end, left) = (ctx.clone(), end.clone(), left.clone());
            tokio::spawn(async move {
                let r = h.await.unwrap_or_default();
                if left.fetch_sub(1, Ordering::AcqRel) == 1 {
                    end.store(ctx.now_us(), Ordering::Release);
                }
                r
            })
        })
        .collect();
    (wrapped, end)
}

/// Waits until `n` subscribers finished or the deadline; true on timeout.
pub(crate) async fn wait_finished(ctx: &Ctx, n: u64, deadline: Instant) -> bool {
    loop {
        let notified = ctx.finished_changed.notified();
        if ctx.finished.load(Ordering::Acquire) >= n {
            return false;
        }
        tokio::select! {
            () = notified => {}
            () = tokio::time::sleep_until(deadline) => return true,
        }
    }
}

/// Awaits every task until `deadline`, aborting those still running then.
pub(crate) async fn join_until<T: Default>(
    handles: Vec<JoinHandle<T>>,
    deadline: Instant,
) -> Vec<T> {
    let mut out = Vec::with_capacity(handles.len());
    for h in handles {
        let abort = h.abort_handle();
        match tokio::time::timeout_at(deadline, h).await {
            Ok(r) => out.push(r.unwrap_or_default()),
            Err(_) => {
                abort.abort();
                out.push(T::default());
            }
        }
    }
    out
}

/// Awaits every task, giving each a few seconds after cancellation.
async fn join_all<T: Default>(handles: Vec<JoinHandle<T>>) -> Vec<T> {
    let mut out = Vec::with_capacity(handles.len());
    for h in handles {
        let abort = h.abort_handle();
        match tokio::time::timeout(Duration::from_secs(5), h).await {
            Ok(r) => out.push(r.unwrap_or_default()),
            Err(_) => {
                abort.abort();
                out.push(T::default());
            }
        }
    }
    out
}

/// The report of the subscribers' summed results, the publishers' results
/// and the latencies.
fn add_up(ctx: &Ctx, s: &Summary, pubs: &[PubResult], empty: &Histogram<u64>) -> Report {
    let plan = &ctx.plan;
    let mut r = Report {
        label: plan.label.clone(),
        subscribers: plan.subscribers,
        topics: plan.topics,
        events: plan.events,
        rate: plan.rate,
        size: plan.size,
        ..Report::default()
    };
    r.expected = s.expected;
    r.deliveries = s.deliveries;
    r.lost = s.lost;
    r.duplicated = s.duplicated;
    r.out_of_order = s.out_of_order;
    r.unexpected = s.unexpected;
    r.closed_early = s.closed_early;
    r.first_stream_error.clone_from(&s.first_stream_error);
    for p in pubs {
        r.published += p.accepted;
        r.publish_failed += p.failed;
        if r.first_publish_error.is_none() {
            r.first_publish_error.clone_from(&p.first_error);
        }
    }
    let all = s.histogram(empty);
    if !all.is_empty() {
        let ms = |v: u64| v as f64 / 1000.0;
        r.p50_ms = ms(all.value_at_quantile(0.50));
        r.p90_ms = ms(all.value_at_quantile(0.90));
        r.p99_ms = ms(all.value_at_quantile(0.99));
        r.max_ms = ms(all.max());
    }
    r
}
