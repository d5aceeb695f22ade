//! The catch-up/live merge yields, to every subscriber, exactly the events
//! that match its topics and follow its start position: each once, in `seq`
//! order, however publishes, subscribes and partial reads interleave, and
//! however often a tiny ring makes it fall behind and go back to the log.
//!
//! 1. A property test (current-thread runtime, deterministic) checks random
//!    interleavings against a model: the log's full event list.
//! 2. A stress test (two worker threads) runs concurrent publishers into
//!    overlapping topics against multi-topic subscribers, some of which join
//!    mid-stream, with rings from 1 to 1024 slots.
//! 3. A targeted race (two worker threads) for the high-water mark that
//!    orders events across rings: without it a subscriber merging rings
//!    yields `seq` n+1 from one ring before n lands in another, and loses n.

use std::cell::RefCell;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use bytes::Bytes;
use futures_util::FutureExt;
use herald_core::{
    Draft, Event, Fanout, Hub, Limits, MemoryLog, Pattern, Position, Resume, Retention, Selector,
    Subscription, Topic,
};
use proptest::prelude::*;
use proptest::test_runner::{Config, TestCaseError, TestRunner};

const EPOCH: u64 = 0x5eed_0001;

/// Topic `i` is bit `i` of a mask.
const TOPICS: [&str; 8] = ["/a", "/b", "/c", "/d", "/e", "/f", "/g", "/h"];

fn topics(mask: u8) -> Vec<Topic> {
    TOPICS
        .iter()
        .enumerate()
        .filter(|(i, _)| mask & (1 << i) != 0)
        .map(|(_, t)| Topic::parse(t, 64).unwrap())
        .collect()
}

/// A selector for the topics of `mask`: those in `patterned` through a
/// pattern (the hub-wide ring and log scans), the others exactly.
fn selector(mask: u8, patterned: u8) -> Selector {
    let through_pattern = mask & patterned;
    let pattern_topics = topics(through_pattern);
    let patterns = (through_pattern != 0).then(|| {
        Pattern::custom(format!("mask:{through_pattern}"), move |t: &str| {
            pattern_topics.iter().any(|x| x.as_str() == t)
        })
    });
    Selector::new(topics(mask & !patterned), patterns)
}

fn mask_of(ev: &Event) -> u8 {
    ev.topics.iter().fold(0, |m, t| {
        m | 1
            << TOPICS
                .iter()
                .position(|x| *x == t.as_str())
                .expect("a known topic")
    })
}

fn draft(mask: u8, data: &str) -> Draft {
    Draft::new(
        topics(mask),
        Bytes::from(data.to_string()),
        None,
        None,
        None,
        &Limits::default(),
    )
    .unwrap()
}

fn hub(capacity: usize) -> Hub {
    let fanout = Arc::new(Fanout::new(capacity));
    let retention = Retention {
        max_events_per_topic: 0,
        max_bytes: u64::MAX,
        max_age: None,
    };
    let log = Arc::new(MemoryLog::new(EPOCH, retention, fanout.clone()));
    Hub::new(log, fanout, Limits::default())
}

/// The model's answer: seqs of `log` (seq, mask) matching `mask` after `start`.
fn expected(log: &[(u64, u8)], mask: u8, start: u64) -> Vec<u64> {
    log.iter()
        .filter(|(seq, m)| *seq > start && m & mask != 0)
        .map(|(seq, _)| *seq)
        .collect()
}

// ---------------------------------------------------------------------------
// 1. Random interleavings on one thread.
// ---------------------------------------------------------------------------

/// Topics used by the property test: three, so that selectors overlap often.
const PROP_MASKS: u8 = 0b111;

#[derive(Debug, Clone)]
enum Start {
    Now,
    /// After the event at this index of the log (mod its length); `Zero` if the log is empty.
    Event(usize),
    /// `{epoch:x}-0`: the whole history.
    Zero,
}

#[derive(Debug, Clone, Copy)]
enum How {
    TryNext,
    /// `next()` polled once (dropped if pending: exercises cancel-safety).
    NowOrNever,
    /// `next()` under a 1 ms timeout.
    Timeout,
}

#[derive(Debug, Clone)]
enum Op {
    /// One batch; each entry is an event's topic mask.
    Publish(Vec<u8>),
    /// One large batch (more than a catch-up page, sometimes) with rotating topics.
    Burst(usize),
    Subscribe {
        mask: u8,
        /// Topics of `mask` matched through a pattern rather than exactly.
        patterned: u8,
        from: Start,
    },
    /// Take up to `k` events from subscriber `sub` (mod the number alive).
    Drain { sub: usize, k: usize, how: How },
    /// Drop subscriber `sub` (mod the number alive).
    Drop(usize),
}

fn op() -> impl Strategy<Value = Op> {
    let mask = 1..=PROP_MASKS;
    let from = prop_oneof![
        2 => Just(Start::Now),
        3 => any::<usize>().prop_map(Start::Event),
        1 => Just(Start::Zero),
    ];
    let how = prop_oneof![
        Just(How::TryNext),
        Just(How::NowOrNever),
        Just(How::Timeout)
    ];
    prop_oneof![
        6 => prop::collection::vec(mask.clone(), 1..=5).prop_map(Op::Publish),
        1 => (200usize..=300).prop_map(Op::Burst),
        3 => (mask, prop_oneof![2 => Just(0u8), 1 => 1..=PROP_MASKS], from)
            .prop_map(|(mask, patterned, from)| Op::Subscribe { mask, patterned, from }),
        6 => (any::<usize>(), 0usize..=6, how).prop_map(|(sub, k, how)| Op::Drain { sub, k, how }),
        1 => any::<usize>().prop_map(Op::Drop),
    ]
}

#[derive(Debug, Clone)]
struct Case {
    capacity: usize,
    ops: Vec<Op>,
}

fn case() -> impl Strategy<Value = Case> {
    (1usize..=4, prop::collection::vec(op(), 1..40))
        .prop_map(|(capacity, ops)| Case { capacity, ops })
}

struct Subscriber {
    sub: Subscription,
    mask: u8,
    start: u64,
    got: Vec<u64>,
}

impl Subscriber {
    fn take(&mut self, ev: Arc<Event>, log: &[(u64, u8)]) -> Result<(), TestCaseError> {
        let want = expected(log, self.mask, self.start);
        prop_assert!(
            want.get(self.got.len()) == Some(&ev.seq),
            "subscriber {:03b} from {} yielded seq {} after {:?}; expected next {:?}",
            self.mask,
            self.start,
            ev.seq,
            self.got,
            want.get(self.got.len())
        );
        prop_assert_eq!(
            mask_of(&ev),
            log[ev.seq as usize - 1].1,
            "event {} has other topics",
            ev.seq
        );
        self.got.push(ev.seq);
        prop_assert_eq!(self.sub.last_seq(), ev.seq);
        Ok(())
    }
}

/// What a case exercised, summed over all cases to show the test is not vacuous.
#[derive(Debug, Default)]
struct Coverage {
    cases: u64,
    lagged_cases: u64,
    multi_page: u64,
    /// Subscriptions with a pattern.
    patterned: u64,
    resumed: u64,
    yielded: u64,
}

/// Publishes one batch with these topic masks and records it in the model.
async fn publish(hub: &Hub, masks: Vec<u8>, log: &mut Vec<(u64, u8)>) -> Result<(), TestCaseError> {
    let batch = masks.iter().map(|&m| draft(m, "x")).collect();
    let evs = hub
        .publish(batch, 0)
        .await
        .map_err(|e| TestCaseError::fail(e.to_string()))?;
    for (ev, m) in evs.iter().zip(masks) {
        prop_assert_eq!(ev.seq, log.len() as u64 + 1, "seqs are dense and in order");
        log.push((ev.seq, m));
    }
    Ok(())
}

async fn run(case: &Case, cov: &mut Coverage) -> Result<(), TestCaseError> {
    let hub = hub(case.capacity);
    // The model: every committed event as (seq, topic mask), in seq order.
    let mut log: Vec<(u64, u8)> = Vec::new();
    let mut subs: Vec<Subscriber> = Vec::new();
    for op in &case.ops {
        match op {
            Op::Publish(masks) => publish(&hub, masks.clone(), &mut log).await?,
            Op::Burst(n) => {
                let masks = (0..*n)
                    .map(|i| (i % PROP_MASKS as usize) as u8 + 1)
                    .collect();
                publish(&hub, masks, &mut log).await?;
            }
            Op::Subscribe {
                mask,
                patterned,
                from,
            } => {
                let head = hub.head();
                prop_assert_eq!(
                    head,
                    Position {
                        epoch: EPOCH,
                        seq: log.len() as u64
                    }
                );
                let (resume, start) = match from {
                    Start::Now => (Resume::Now, head.seq),
                    Start::Event(i) if !log.is_empty() => {
                        let seq = log[i % log.len()].0;
                        (
                            Resume::After(Position { epoch: EPOCH, seq }.to_string()),
                            seq,
                        )
                    }
                    Start::Event(_) | Start::Zero => (Resume::After(format!("{EPOCH:x}-0")), 0),
                };
                let sub = hub
                    .subscribe(&selector(*mask, *patterned), resume)
                    .await
                    .map_err(|e| TestCaseError::fail(e.to_string()))?;
                prop_assert_eq!(sub.reset(), None);
                if mask & patterned != 0 {
                    cov.patterned += 1;
                }
                prop_assert_eq!(sub.last_seq(), start);
                if start < head.seq {
                    cov.resumed += 1;
                    if expected(&log, *mask, start).len() > 256 {
                        cov.multi_page += 1;
                    }
                }
                subs.push(Subscriber {
                    sub,
                    mask: *mask,
                    start,
                    got: Vec::new(),
                });
            }
            Op::Drain { sub, k, how } => {
                if subs.is_empty() {
                    continue;
                }
                let n = subs.len();
                let s = &mut subs[sub % n];
                for _ in 0..*k {
                    let ev = match how {
                        How::TryNext => s.sub.try_next(),
                        How::NowOrNever => match s.sub.next().now_or_never() {
                            Some(r) => {
                                Some(r.map_err(|e| TestCaseError::fail(format!("ended: {e}")))?)
                            }
                            None => None,
                        },
                        How::Timeout => {
                            match tokio::time::timeout(Duration::from_millis(1), s.sub.next()).await
                            {
                                Ok(r) => {
                                    Some(r.map_err(|e| TestCaseError::fail(format!("ended: {e}")))?)
                                }
                                Err(_) => None,
                            }
                        }
                    };
                    match ev {
                        Some(ev) => s.take(ev, &log)?,
                        None => break,
                    }
                }
            }
            Op::Drop(i) => {
                if !subs.is_empty() {
                    let n = subs.len();
                    cov.yielded += subs.remove(i % n).got.len() as u64;
                }
            }
        }
    }
    // Drain everything: exactly the rest of the expected events, then nothing.
    for s in &mut subs {
        let want = expected(&log, s.mask, s.start);
        while s.got.len() < want.len() {
            match tokio::time::timeout(Duration::from_secs(5), s.sub.next()).await {
                Ok(Ok(ev)) => s.take(ev, &log)?,
                Ok(Err(e)) => return Err(TestCaseError::fail(format!("ended early: {e}"))),
                Err(_) => {
                    return Err(TestCaseError::fail(format!(
                        "subscriber {:03b} from {} stalled after {:?}; expected {:?}",
                        s.mask, s.start, s.got, want
                    )));
                }
            }
        }
        prop_assert_eq!(&s.got, &want);
        prop_assert!(s.sub.try_next().is_none(), "an event beyond the log");
        prop_assert!(
            s.sub.next().now_or_never().is_none(),
            "an event beyond the log"
        );
        cov.yielded += s.got.len() as u64;
    }
    cov.cases += 1;
    if hub.fanout().lagged() > 0 {
        cov.lagged_cases += 1;
    }
    Ok(())
}

#[test]
fn every_subscriber_gets_each_matching_event_once_in_order() {
    let mut runner = TestRunner::new(Config::with_cases(256));
    let cov = RefCell::new(Coverage::default());
    let result = runner.run(&case(), |case| {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .build()
            .unwrap();
        rt.block_on(run(&case, &mut cov.borrow_mut()))
    });
    let cov = cov.into_inner();
    if let Err(e) = result {
        panic!("{e}");
    }
    // The test must have exercised what it is about (counts include shrinking runs).
    assert!(cov.cases >= 256, "{cov:?}");
    assert!(
        cov.lagged_cases * 4 >= cov.cases,
        "too few cases fell behind a ring: {cov:?}"
    );
    assert!(
        cov.resumed * 2 >= cov.cases,
        "too few resumed subscriptions: {cov:?}"
    );
    assert!(
        cov.multi_page > 0,
        "no catch-up spanned more than one page: {cov:?}"
    );
    assert!(cov.yielded >= 10 * cov.cases, "{cov:?}");
    assert!(
        cov.patterned * 4 >= cov.cases,
        "too few pattern subscriptions: {cov:?}"
    );
}

/// A fixed interleaving that needs several catch-up pages after a lag, with a
/// multi-topic selector and `try_next` reading a little between bursts.
#[tokio::test(flavor = "current_thread")]
async fn a_slow_multi_topic_subscriber_catches_up_across_pages() {
    let hub = hub(2);
    let mut sub = hub
        .subscribe(&Selector::exact(topics(0b101)), Resume::Now)
        .await
        .unwrap();
    let mut log = Vec::new();
    let mut got = Vec::new();
    for round in 0..3 {
        let masks = (0..600)
            .map(|i| [0b001, 0b010, 0b100, 0b110][(i + round) % 4])
            .collect();
        publish(&hub, masks, &mut log).await.unwrap();
        // Read a little only: the ring (2 slots) is far behind.
        for _ in 0..3 {
            if let Some(ev) = sub.try_next() {
                got.push(ev.seq);
            }
        }
    }
    let want = expected(&log, 0b101, 0);
    assert!(want.len() > 3 * 256);
    while got.len() < want.len() {
        let ev = tokio::time::timeout(Duration::from_secs(5), sub.next())
            .await
            .unwrap()
            .unwrap();
        got.push(ev.seq);
    }
    assert_eq!(got, want);
    assert_eq!(hub.fanout().lagged(), 1, "lagged once, counted once");
    assert!(sub.try_next().is_none());
    assert!(sub.next().now_or_never().is_none());
}

// ---------------------------------------------------------------------------
// 2. Concurrent publishers and subscribers on two worker threads.
// ---------------------------------------------------------------------------

const PUBLISHERS: u64 = 3;
const BATCHES: u64 = 250;
/// The sentinel's topics: all of them, so every subscriber sees it last.
const ALL: u8 = 0b1111;

/// A tiny deterministic generator (xorshift64*), so a failure can be rerun.
struct Rng(u64);

impl Rng {
    fn below(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d) % n
    }
}

/// Reads until the sentinel (data `end`), in the way `style` says: 0 = `next()`
/// only, 1 = `next()` then up to 8 `try_next()` (as transports coalesce), 2 =
/// slow (yields to the runtime several times per event).
async fn consume(mut sub: Subscription, style: u8) -> Vec<u64> {
    let mut got = Vec::new();
    loop {
        let ev = match tokio::time::timeout(Duration::from_secs(20), sub.next()).await {
            Ok(Ok(ev)) => ev,
            Ok(Err(e)) => panic!("subscription ended: {e}"),
            Err(_) => panic!(
                "subscription stalled after {} events (last {:?})",
                got.len(),
                got.last()
            ),
        };
        let mut batch = vec![ev];
        if style == 1 {
            while batch.len() < 8 {
                match sub.try_next() {
                    Some(ev) => batch.push(ev),
                    None => break,
                }
            }
        }
        for ev in batch {
            got.push(ev.seq);
            if &ev.data[..] == b"end" {
                return got;
            }
        }
        if style == 2 {
            for _ in 0..3 {
                tokio::task::yield_now().await;
            }
        }
    }
}

async fn stress(capacity: usize, seed: u64) {
    let hub = hub(capacity);
    // (mask, style) of subscribers that start before anything is published.
    let early: [(u8, u8); 6] = [
        (0b0011, 0),
        (0b0110, 1),
        (0b1101, 2),
        (ALL, 0),
        (0b1000, 1),
        (0b0101, 0),
    ];
    let mut readers = Vec::new();
    for (mask, style) in early {
        let sub = hub
            .subscribe(&Selector::exact(topics(mask)), Resume::Now)
            .await
            .unwrap();
        readers.push((mask, 0, tokio::spawn(consume(sub, style))));
    }
    let mut publishers = Vec::new();
    for p in 0..PUBLISHERS {
        let hub = hub.clone();
        publishers.push(tokio::spawn(async move {
            let mut rng = Rng(seed ^ (p + 1).wrapping_mul(0x9e37_79b9_7f4a_7c15));
            let mut out = Vec::new();
            for _ in 0..BATCHES {
                let n = rng.below(3) + 1;
                let masks: Vec<u8> = (0..n).map(|_| rng.below(ALL as u64) as u8 + 1).collect();
                let batch = masks.iter().map(|&m| draft(m, "x")).collect();
                let evs = hub.publish(batch, 0).await.unwrap();
                out.extend(evs.iter().map(|e| (e.seq, mask_of(e))));
                if rng.below(4) == 0 {
                    tokio::task::yield_now().await;
                }
            }
            out
        }));
    }
    // Subscribers that join mid-stream: from now, from the start, and from an
    // event already published.
    while hub.head().seq < PUBLISHERS * BATCHES / 2 {
        tokio::task::yield_now().await;
    }
    for (mask, resume) in [
        (0b0111, Resume::Now),
        (0b1010, Resume::After(format!("{EPOCH:x}-0"))),
        (
            0b1110,
            Resume::After(format!("{EPOCH:x}-{}", hub.head().seq / 3)),
        ),
    ] {
        let sub = hub
            .subscribe(&Selector::exact(topics(mask)), resume)
            .await
            .unwrap();
        assert_eq!(sub.reset(), None);
        // The start position: nothing at or below it is owed.
        let start = sub.last_seq();
        readers.push((mask, start, tokio::spawn(consume(sub, 1))));
    }
    let mut log = Vec::new();
    for p in publishers {
        log.extend(p.await.unwrap());
    }
    let end = hub.publish(vec![draft(ALL, "end")], 0).await.unwrap();
    log.extend(end.iter().map(|e| (e.seq, mask_of(e))));
    log.sort_unstable();
    assert!(
        log.iter()
            .enumerate()
            .all(|(i, (seq, _))| *seq == i as u64 + 1)
    );
    for (mask, start, reader) in readers {
        let got = reader.await.unwrap();
        let want = expected(&log, mask, start);
        if got != want {
            let first = got.iter().zip(&want).position(|(g, w)| g != w);
            panic!(
                "capacity {capacity}, seed {seed:#x}: subscriber {mask:04b} from {start} got {} events, want {}; first difference at {first:?}: got {:?}, want {:?}",
                got.len(),
                want.len(),
                first.map(|i| &got[i.saturating_sub(2)..(i + 3).min(got.len())]),
                first.map(|i| &want[i.saturating_sub(2)..(i + 3).min(want.len())]),
            );
        }
    }
}

#[test]
fn concurrent_publishers_and_multi_topic_subscribers_lose_and_repeat_nothing() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_time()
        .build()
        .unwrap();
    rt.block_on(async {
        for (i, capacity) in [1, 2, 4, 16, 1024].into_iter().enumerate() {
            let run = stress(capacity, 0x5eed + i as u64);
            tokio::time::timeout(Duration::from_secs(60), run)
                .await
                .expect("the stress run finished in time");
        }
    });
}

/// Reads until the sentinel by polling `next()` once at a time and yielding
/// in between, so that it sits at the live edge, stepping through its rings
/// while deliveries land. Publishes the highest `seq` it yielded in `progress`.
async fn spin(mut sub: Subscription, progress: Arc<AtomicU64>) -> Vec<u64> {
    let mut got = Vec::new();
    // A stall is 20 s without an event (a loaded machine may take longer than
    // that for the whole run).
    let mut deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    loop {
        match sub.next().now_or_never() {
            Some(Ok(ev)) => {
                deadline = tokio::time::Instant::now() + Duration::from_secs(20);
                got.push(ev.seq);
                progress.store(ev.seq, Ordering::Release);
                if &ev.data[..] == b"end" {
                    return got;
                }
            }
            Some(Err(e)) => panic!("subscription ended: {e}"),
            None => {
                assert!(
                    tokio::time::Instant::now() < deadline,
                    "stalled after {} events",
                    got.len()
                );
                tokio::task::yield_now().await;
            }
        }
    }
}

/// Pairs of events, `seq` n to `/x` and n+1 to `/y`, published one pair at a
/// time when the subscriber has caught up, to a subscriber whose selector is
/// `/x`, sixty idle topics, then `/y`. A merge step that finds `/x` empty and
/// then, sixty rings later, n+1 in `/y` must not yield n+1 before it has
/// looked at `/x` again: the high-water mark holds n+1 back.
async fn live_ordering(pairs: u64) {
    let t = |s: &str| Topic::parse(s, 64).unwrap();
    let (x, y) = (t("/x"), t("/y"));
    let mut selector = vec![x.clone()];
    selector.extend((0..60).map(|i| t(&format!("/idle/{i}"))));
    selector.push(y.clone());
    let hub = hub(1 << 14);
    let sub = hub
        .subscribe(&Selector::exact(selector), Resume::Now)
        .await
        .unwrap();
    let progress = Arc::new(AtomicU64::new(0));
    let reader = tokio::spawn(spin(sub, progress.clone()));
    let publisher = tokio::spawn({
        let hub = hub.clone();
        async move {
            let draft = |t: &Topic| {
                Draft::new(
                    vec![t.clone()],
                    Bytes::from_static(b"x"),
                    None,
                    None,
                    None,
                    &Limits::default(),
                )
                .unwrap()
            };
            for _ in 0..pairs {
                let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
                while progress.load(Ordering::Acquire) < hub.head().seq {
                    assert!(
                        tokio::time::Instant::now() < deadline,
                        "the subscriber stopped reading"
                    );
                    tokio::task::yield_now().await;
                }
                hub.publish(vec![draft(&x), draft(&y)], 0).await.unwrap();
            }
            let end = Draft::new(
                vec![x, y],
                Bytes::from_static(b"end"),
                None,
                None,
                None,
                &Limits::default(),
            );
            hub.publish(vec![end.unwrap()], 0).await.unwrap();
        }
    });
    publisher.await.unwrap();
    let got = reader.await.unwrap();
    let want: Vec<u64> = (1..=2 * pairs + 1).collect();
    if got != want {
        let first = got.iter().zip(&want).position(|(g, w)| g != w);
        panic!(
            "got {} events, want {}; first difference at {first:?}: got {:?}",
            got.len(),
            want.len(),
            first.map(|i| &got[i.saturating_sub(2)..(i + 3).min(got.len())])
        );
    }
}

#[test]
fn multi_ring_merge_never_overtakes_a_delivery_in_progress() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_time()
        .build()
        .unwrap();
    rt.block_on(async {
        tokio::time::timeout(Duration::from_secs(180), live_ordering(4000))
            .await
            .expect("the run finished in time");
    });
}

#[test]
fn the_model_and_helpers_agree_with_the_log() {
    // Guards the helpers the tests above rely on.
    assert_eq!(
        topics(0b101).iter().map(|t| t.as_str()).collect::<Vec<_>>(),
        ["/a", "/c"]
    );
    assert_eq!(
        mask_of(&Event::from_draft(draft(0b1010, "x"), 1, EPOCH, 0)),
        0b1010
    );
    assert_eq!(
        expected(&[(1, 0b01), (2, 0b10), (3, 0b11)], 0b10, 1),
        [2, 3]
    );
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    rt.block_on(async {
        let hub = hub(1);
        hub.publish(vec![draft(0b11, "x")], 0).await.unwrap();
        let page = hub.log().read(topics(0b10), 0, 10).await.unwrap();
        assert_eq!(page.len(), 1);
    });
}
