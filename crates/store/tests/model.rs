//! Retention keeps exactly what its settings say, and survives reopening:
//! random operations applied to `MemoryLog` (the reference model) and to
//! `RedbLog` must give identical answers; reopening the `RedbLog` must change
//! nothing.

mod common;

use std::sync::Arc;
use std::time::Duration;

use herald_core::{Draft, Fanout, Log, MemoryLog, Pattern, Retention, ScanPage, Selector, Topic};
use herald_store::RedbLog;
use proptest::prelude::*;

use common::{keys, opts, topic};

const TOPICS: [&str; 4] = ["a", "b", "c", "never-published"];
const IDS: [&str; 6] = ["id0", "id1", "id2", "id3", "id4", "unused"];

#[derive(Debug, Clone)]
struct Spec {
    topics: Vec<usize>,
    data: String,
    id: Option<usize>,
    kind: bool,
    retry: Option<u32>,
    private: bool,
}

#[derive(Debug, Clone)]
enum Op {
    /// Append a batch after the clock moved on by this many ms.
    Append(Vec<Spec>, u64),
    /// Read these topics after this seq, at most this many.
    Read(Vec<usize>, u64, usize),
    Lookup(usize),
    /// Scan with these exact topics and a pattern matching those topics,
    /// after this seq, at most this many matches.
    Scan(Vec<usize>, Vec<usize>, u64, usize),
    /// Age trim after the clock moved on by this many ms.
    Trim(u64),
    Reopen,
}

fn distinct(mut v: Vec<usize>) -> Vec<usize> {
    let mut seen = Vec::new();
    v.retain(|i| {
        let new = !seen.contains(i);
        seen.push(*i);
        new
    });
    v
}

fn spec() -> impl Strategy<Value = Spec> {
    let data = prop_oneof![
        Just(String::new()),
        Just("x".to_string()),
        Just("line1\nline2\n\nend".to_string()),
        "[a-z \n]{0,60}",
    ];
    (
        prop::collection::vec(0..3usize, 1..=3),
        data,
        prop::option::weighted(0.4, 0..5usize),
        any::<bool>(),
        prop::option::of(0..5000u32),
        any::<bool>(),
    )
        .prop_map(|(topics, data, id, kind, retry, private)| Spec {
            topics: distinct(topics),
            data,
            id,
            kind,
            retry,
            private,
        })
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        8 => (prop::collection::vec(spec(), 1..=4), 0..60u64).prop_map(|(s, dt)| Op::Append(s, dt)),
        4 => (prop::collection::vec(0..4usize, 0..=3), 0..30u64, prop_oneof![0..6usize, Just(usize::MAX)])
            .prop_map(|(t, after, limit)| Op::Read(distinct(t), after, limit)),
        2 => (0..6usize).prop_map(Op::Lookup),
        3 => (prop::collection::vec(0..4usize, 0..=2), prop::collection::vec(0..4usize, 0..=2), 0..30u64, prop_oneof![1..4usize, Just(usize::MAX)])
            .prop_map(|(t, p, after, limit)| Op::Scan(distinct(t), distinct(p), after, limit)),
        1 => (0..250u64).prop_map(Op::Trim),
        1 => Just(Op::Reopen),
    ]
}

fn retention() -> impl Strategy<Value = Retention> {
    (
        prop_oneof![Just(0u64), 1..4u64],
        prop_oneof![Just(u64::MAX), 150..700u64],
        prop::option::of(50..300u64),
    )
        .prop_map(|(n, bytes, age)| Retention {
            max_events_per_topic: n,
            max_bytes: bytes,
            max_age: age.map(Duration::from_millis),
        })
}

fn to_draft(s: &Spec) -> Draft {
    let mut d = common::draft(
        &s.topics.iter().map(|&i| TOPICS[i]).collect::<Vec<_>>(),
        &s.data,
        s.id.map(|i| IDS[i]),
    );
    d.kind = s.kind.then(|| Box::from("kind"));
    d.retry = s.retry;
    d.private = s.private;
    d
}

/// Exact topics `exact` and one pattern matching the topics `pattern`.
fn scan_selector(exact: &[usize], pattern: &[usize]) -> Selector {
    let names: Vec<&'static str> = pattern.iter().map(|&i| TOPICS[i]).collect();
    let label = format!("topics:{names:?}");
    let p = Pattern::custom(label, move |t: &str| names.contains(&t));
    Selector::new(exact.iter().map(|&i| topic(TOPICS[i])), [p])
}

type ScanKey = (Vec<common::Key>, u64, bool);

fn scan_keys<E: Clone>(r: &Result<ScanPage, E>) -> Result<ScanKey, E> {
    r.as_ref()
        .map(|p| {
            let evs = p.events.iter().map(|e| common::key(e)).collect();
            (evs, p.through, p.more)
        })
        .map_err(E::clone)
}

async fn run(retention: Retention, ops: Vec<Op>) -> Result<(), TestCaseError> {
    let dir = tempfile::tempdir().map_err(|e| TestCaseError::fail(e.to_string()))?;
    let open = || {
        RedbLog::open(
            dir.path(),
            opts(retention.clone()),
            Arc::new(Fanout::new(16)),
        )
    };
    let mut store = open().map_err(|e| TestCaseError::fail(e.to_string()))?;
    let epoch = store.epoch();
    let model = MemoryLog::new(epoch, retention.clone(), Arc::new(Fanout::new(16)));
    let mut now = 1_000_000u64;
    for op in ops {
        match op {
            Op::Append(specs, dt) => {
                now += dt;
                let batch: Vec<Draft> = specs.iter().map(to_draft).collect();
                let want = model.append(batch.clone(), now).await;
                let got = store.append(batch, now).await;
                prop_assert_eq!(keys(&got), keys(&want), "append");
            }
            Op::Read(t, after, limit) => {
                let topics: Vec<Topic> = t.iter().map(|&i| topic(TOPICS[i])).collect();
                let want = model.read(topics.clone(), after, limit).await;
                let got = store.read(topics, after, limit).await;
                prop_assert_eq!(
                    keys(&got),
                    keys(&want),
                    "read {:?} after {} limit {}",
                    t,
                    after,
                    limit
                );
            }
            Op::Scan(exact, pattern, after, limit) => {
                let selector = scan_selector(&exact, &pattern);
                let want = model.scan(selector.clone(), after, limit).await;
                let got = store.scan(selector, after, limit).await;
                prop_assert_eq!(
                    scan_keys(&got),
                    scan_keys(&want),
                    "scan {:?} {:?} after {} limit {}",
                    exact,
                    pattern,
                    after,
                    limit
                );
            }
            Op::Lookup(i) => {
                let want = model.lookup_id(IDS[i].to_string()).await;
                prop_assert_eq!(
                    store.lookup_id(IDS[i].to_string()).await,
                    want,
                    "lookup {}",
                    IDS[i]
                );
            }
            Op::Trim(dt) => {
                now += dt;
                model.trim_by_age(now);
                store
                    .trim_by_age(now)
                    .await
                    .map_err(|e| TestCaseError::fail(e.to_string()))?;
            }
            Op::Reopen => {
                let before = store.stats();
                store.close().await;
                drop(store);
                store = open().map_err(|e| TestCaseError::fail(e.to_string()))?;
                prop_assert_eq!(store.epoch(), epoch);
                prop_assert_eq!(
                    store.stats(),
                    herald_store::StoreStats {
                        commits: 0,
                        ..before
                    }
                );
            }
        }
        prop_assert_eq!(store.last_seq(), model.last_seq());
    }
    // Everything still retained, from every position, agrees too.
    let all: Vec<Topic> = TOPICS.iter().map(|t| topic(t)).collect();
    for after in 0..=model.last_seq() {
        let want = model.read(all.clone(), after, usize::MAX).await;
        prop_assert_eq!(
            keys(&store.read(all.clone(), after, usize::MAX).await),
            keys(&want)
        );
    }
    store.close().await;
    Ok(())
}

proptest! {
    // Few cases by default: every append is an fsync. `PROPTEST_CASES=1000`
    // for a deeper run.
    #![proptest_config(ProptestConfig {
        cases: std::env::var("PROPTEST_CASES").ok().and_then(|c| c.parse().ok()).unwrap_or(64),
        ..ProptestConfig::default()
    })]

    #[test]
    fn redb_log_matches_the_memory_model(
        retention in retention(),
        ops in prop::collection::vec(op(), 1..40),
    ) {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| TestCaseError::fail(e.to_string()))?;
        rt.block_on(run(retention, ops))?;
    }
}
