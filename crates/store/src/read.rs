//! Reads: one read transaction (a consistent snapshot) per call, run on
//! tokio's blocking pool so a slow disk never stalls the runtime, and
//! concurrently with the writer (redb readers never wait for writers).

use std::collections::BTreeSet;
use std::ops::Bound;
use std::sync::Arc;

use herald_core::{Event, ReadError, SCAN_BUDGET, ScanPage, Selector, Topic, log::replay_floor};
use redb::{Database, ReadableDatabase, ReadableTable};

use crate::codec;
use crate::error::Fault;
use crate::tables::{EVENTS, IDS, META, TOPIC_INDEX, TOPIC_MARKS};

/// Up to `limit` retained events after `after` on any of `topics`, in `seq`
/// order, each once; `Expired` when retention removed events after `after`
/// on one of them (the same answer `MemoryLog::read` gives). The outer error
/// is a storage failure.
pub(crate) fn read(
    db: &Database,
    epoch: u64,
    topics: &[Topic],
    after: u64,
    limit: usize,
) -> Result<Result<Vec<Arc<Event>>, ReadError>, Fault> {
    let txn = db.begin_read()?;
    let meta = txn.open_table(META)?;
    let global_mark = meta.get("global_mark")?.map_or(0, |g| g.value());
    let marks = txn.open_table(TOPIC_MARKS)?;
    let mut floor = global_mark;
    for t in topics {
        let mark = marks.get(t.as_str())?.map_or(0, |g| g.value());
        floor = floor.max(replay_floor(global_mark, mark));
    }
    if after < floor {
        return Ok(Err(ReadError::Expired { oldest_kept: floor }));
    }
    let index = txn.open_table(TOPIC_INDEX)?;
    // Each topic contributes at most `limit` seqs: the first `limit` of the
    // union are among them.
    let mut seqs = BTreeSet::new();
    for t in topics {
        let t = t.as_str();
        let range = index.range((Bound::Excluded((t, after)), Bound::Included((t, u64::MAX))))?;
        for entry in range.take(limit) {
            seqs.insert(entry?.0.value().1);
        }
    }
    let events = txn.open_table(EVENTS)?;
    let mut out = Vec::with_capacity(seqs.len().min(limit));
    for seq in seqs.into_iter().take(limit) {
        let v = events.get(seq)?.ok_or_else(|| {
            Fault::Corrupt(format!(
                "topic index names event {seq}, which is not stored"
            ))
        })?;
        out.push(Arc::new(codec::decode(seq, epoch, v.value())?));
    }
    Ok(Ok(out))
}

/// Retained events after `after` matching `selector`, examined in `seq`
/// order (see `Log::scan`); `Expired` when retention removed events after
/// `after` from a topic the selector matches.
pub(crate) fn scan(
    db: &Database,
    epoch: u64,
    selector: &Selector,
    after: u64,
    limit: usize,
) -> Result<Result<ScanPage, ReadError>, Fault> {
    let txn = db.begin_read()?;
    let meta = txn.open_table(META)?;
    let global_mark = meta.get("global_mark")?.map_or(0, |g| g.value());
    let marks = txn.open_table(TOPIC_MARKS)?;
    let mut floor = global_mark;
    for entry in marks.iter()? {
        let (topic, mark) = entry?;
        let mark = mark.value();
        if mark > floor
            && let Ok(topic) = Topic::parse(topic.value(), usize::MAX)
            && selector.matches(std::iter::once(&topic))
        {
            floor = replay_floor(global_mark, mark);
        }
    }
    if after < floor {
        return Ok(Err(ReadError::Expired { oldest_kept: floor }));
    }
    let events = txn.open_table(EVENTS)?;
    let mut page = ScanPage {
        through: after,
        ..ScanPage::default()
    };
    for (examined, entry) in events.range(after.saturating_add(1)..)?.enumerate() {
        if page.events.len() >= limit || examined >= SCAN_BUDGET {
            page.more = true;
            break;
        }
        let (seq, bytes) = entry?;
        let seq = seq.value();
        page.through = seq;
        let ev = codec::decode(seq, epoch, bytes.value())?;
        if selector.matches(ev.topics.iter()) {
            page.events.push(Arc::new(ev));
        }
    }
    Ok(Ok(page))
}

/// The `seq` of the retained event with publisher id `id`.
pub(crate) fn lookup_id(db: &Database, id: &str) -> Result<Option<u64>, Fault> {
    let txn = db.begin_read()?;
    let ids = txn.open_table(IDS)?;
    Ok(ids.get(id)?.map(|g| g.value()))
}
