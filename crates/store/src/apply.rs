//! What one append or one trim does to the tables, inside the writer's open
//! write transaction. Each step mirrors `herald_core::MemoryLog` (the reference
//! model the property tests compare against), with the model's in-memory
//! queues replaced by the `topic_index` table: a topic's oldest event is the
//! first `(topic, _)` key, so count trimming costs O(events trimmed).

use std::sync::Arc;

use herald_core::{AppendError, Draft, Event, EventId, RecordOp, Retention, Topic, Trim};
use redb::{ReadableTable, Table, WriteTransaction};

use crate::codec;
use crate::error::Fault;
use crate::tables::{
    EVENTS, IDS, META, Meta, Shape, TOPIC_COUNTS, TOPIC_INDEX, TOPIC_MARKS, WEBHOOKS,
};

/// The tables of one write transaction, and the meta record as it changes.
pub(crate) struct Tables<'t> {
    events: Table<'t, u64, &'static [u8]>,
    index: Table<'t, (&'static str, u64), ()>,
    ids: Table<'t, &'static str, u64>,
    counts: Table<'t, &'static str, u64>,
    marks: Table<'t, &'static str, u64>,
    meta_table: Table<'t, &'static str, u64>,
    webhooks: Table<'t, u64, &'static [u8]>,
    /// The meta record including this transaction's changes; written back by `finish`.
    meta: Meta,
    /// Whether anything was written: a transaction that changed nothing is
    /// aborted instead of committed, which saves an `fsync`.
    changed: bool,
}

/// The result of applying a transaction's operations.
pub(crate) struct Applied {
    /// The meta record to cache once the commit succeeds.
    pub(crate) meta: Meta,
    /// The shape of the history after the transaction.
    pub(crate) shape: Shape,
    /// Whether the transaction must be committed.
    pub(crate) changed: bool,
}

impl<'t> Tables<'t> {
    /// Opens every table in `txn`, starting from the committed `meta`.
    pub(crate) fn open(txn: &'t WriteTransaction, meta: Meta) -> Result<Tables<'t>, Fault> {
        Ok(Tables {
            events: txn.open_table(EVENTS)?,
            index: txn.open_table(TOPIC_INDEX)?,
            ids: txn.open_table(IDS)?,
            counts: txn.open_table(TOPIC_COUNTS)?,
            marks: txn.open_table(TOPIC_MARKS)?,
            meta_table: txn.open_table(META)?,
            webhooks: txn.open_table(WEBHOOKS)?,
            meta,
            changed: false,
        })
    }

    /// Appends `batch` as `MemoryLog::append` does: all or nothing (a
    /// duplicate id refuses the batch before anything is written), then count
    /// and global retention. The outer error is a storage failure, which fails
    /// the whole transaction.
    pub(crate) fn append(
        &mut self,
        batch: Vec<Draft>,
        now_ms: u64,
        r: &Retention,
    ) -> Result<Result<Vec<Arc<Event>>, AppendError>, Fault> {
        let mut seen: Vec<&str> = Vec::new();
        for d in &batch {
            if let Some(id) = d.id.as_deref() {
                if seen.contains(&id) || self.ids.get(id)?.is_some() {
                    return Ok(Err(AppendError::DuplicateId(id.to_string())));
                }
                seen.push(id);
            }
        }
        let mut out = Vec::with_capacity(batch.len());
        for d in batch {
            let seq = self.meta.next_seq;
            self.meta.next_seq += 1;
            let ev = Arc::new(Event::from_draft(d, seq, self.meta.epoch, now_ms));
            self.insert(&ev)?;
            out.push(ev);
        }
        self.trim_topics(r, &out)?;
        self.trim_global(r, now_ms)?;
        Ok(Ok(out))
    }

    fn insert(&mut self, ev: &Event) -> Result<(), Fault> {
        self.changed = true;
        self.events.insert(ev.seq, codec::encode(ev)?.as_slice())?;
        for t in distinct(&ev.topics) {
            self.index.insert((t, ev.seq), ())?;
            let n = self.count(t)?;
            self.counts.insert(t, n + 1)?;
        }
        if let EventId::Publisher(id) = &ev.id {
            self.ids.insert(&**id, ev.seq)?;
        }
        self.meta.bytes += ev.stored_size();
        Ok(())
    }

    /// Per-topic count retention for the topics `batch` touched.
    fn trim_topics(&mut self, r: &Retention, batch: &[Arc<Event>]) -> Result<(), Fault> {
        if r.max_events_per_topic == 0 {
            return Ok(());
        }
        let mut touched: Vec<&Topic> = batch.iter().flat_map(|e| e.topics.iter()).collect();
        touched.sort();
        touched.dedup();
        for t in touched {
            let t = t.as_str();
            let mut n = self.count(t)?;
            while n > r.max_events_per_topic {
                let Some(seq) = self.oldest_of(t)? else { break };
                self.index.remove((t, seq))?;
                n -= 1;
                self.counts.insert(t, n)?;
                let mark = self.marks.get(t)?.map_or(0, |g| g.value());
                self.marks.insert(t, mark.max(seq))?;
                if !self.still_indexed(seq)? {
                    self.remove_event(seq)?;
                }
            }
        }
        Ok(())
    }

    /// Byte and age retention: removes the oldest events while any is too old
    /// at `now_ms` or the history is over its byte bound.
    pub(crate) fn trim_global(&mut self, r: &Retention, now_ms: u64) -> Result<(), Fault> {
        let cutoff = r
            .max_age
            .map(|a| now_ms.saturating_sub(a.as_millis() as u64));
        loop {
            let Some((seq, ev)) = self.first_event()? else {
                break;
            };
            let too_old = cutoff.is_some_and(|c| ev.time_ms < c);
            if !too_old && self.meta.bytes <= r.max_bytes {
                break;
            }
            for t in distinct(&ev.topics) {
                if self.index.remove((t, seq))?.is_none() {
                    continue; // count retention already took it off this topic
                }
                let n = self.count(t)?.saturating_sub(1);
                if n == 0 {
                    // The global mark now covers this topic.
                    self.counts.remove(t)?;
                    self.marks.remove(t)?;
                } else {
                    self.counts.insert(t, n)?;
                }
            }
            self.meta.global_mark = seq;
            self.remove_event(seq)?;
        }
        Ok(())
    }

    /// Applies webhook record changes, in order.
    pub(crate) fn records(&mut self, ops: Vec<RecordOp>) -> Result<(), Fault> {
        for op in ops {
            self.changed = true;
            match op {
                RecordOp::Put(id, bytes) => {
                    self.webhooks.insert(id, &*bytes)?;
                }
                RecordOp::Delete(id) => {
                    self.webhooks.remove(id)?;
                }
            }
        }
        Ok(())
    }

    /// Removes the oldest events of topic `t` as `trim` says (the admin API),
    /// raising its trim mark to the highest removed; returns how many left.
    pub(crate) fn trim_topic(&mut self, t: &str, trim: Trim) -> Result<u64, Fault> {
        let seqs: Vec<u64> = self
            .index
            .range((t, 0)..=(t, u64::MAX))?
            .map(|e| e.map(|(k, _)| k.value().1))
            .collect::<Result<_, _>>()?;
        let n = trim.count(&seqs);
        let Some(&last) = seqs[..n].last() else {
            return Ok(0);
        };
        for &seq in &seqs[..n] {
            self.index.remove((t, seq))?;
            if !self.still_indexed(seq)? {
                self.remove_event(seq)?;
            }
        }
        let left = seqs.len() - n;
        if left == 0 {
            self.counts.remove(t)?;
        } else {
            self.counts.insert(t, left as u64)?;
        }
        let mark = self.marks.get(t)?.map_or(0, |g| g.value());
        self.marks.insert(t, mark.max(last))?;
        self.changed = true;
        Ok(n as u64)
    }

    /// Writes the meta record back and says whether to commit.
    pub(crate) fn finish(mut self) -> Result<Applied, Fault> {
        if self.changed {
            self.meta.store(&mut self.meta_table)?;
        }
        Ok(Applied {
            meta: self.meta,
            shape: Shape::of(&self.events, &self.counts)?,
            changed: self.changed,
        })
    }

    fn count(&self, t: &str) -> Result<u64, Fault> {
        Ok(self.counts.get(t)?.map_or(0, |g| g.value()))
    }

    fn oldest_of(&self, t: &str) -> Result<Option<u64>, Fault> {
        let mut range = self.index.range((t, 0)..=(t, u64::MAX))?;
        Ok(range.next().transpose()?.map(|(k, _)| k.value().1))
    }

    fn first_event(&self) -> Result<Option<(u64, Event)>, Fault> {
        let Some((k, v)) = self.events.first()? else {
            return Ok(None);
        };
        let seq = k.value();
        Ok(Some((seq, codec::decode(seq, self.meta.epoch, v.value())?)))
    }

    /// Whether any of the event's topics still lists it.
    fn still_indexed(&self, seq: u64) -> Result<bool, Fault> {
        let Some(v) = self.events.get(seq)? else {
            return Ok(false);
        };
        let ev = codec::decode(seq, self.meta.epoch, v.value())?;
        for t in distinct(&ev.topics) {
            if self.index.get((t, seq))?.is_some() {
                return Ok(true);
            }
        }
        Ok(false)
    }

    fn remove_event(&mut self, seq: u64) -> Result<(), Fault> {
        self.changed = true;
        let Some(v) = self.events.remove(seq)? else {
            return Ok(());
        };
        let ev = codec::decode(seq, self.meta.epoch, v.value())?;
        drop(v);
        self.meta.bytes = self.meta.bytes.saturating_sub(ev.stored_size());
        if let EventId::Publisher(id) = &ev.id {
            self.ids.remove(&**id)?;
        }
        Ok(())
    }
}

/// The event's topics without repeats (a hand-built `Draft` may repeat one;
/// the index holds each (topic, seq) once, so counts must too).
fn distinct(topics: &[Topic]) -> Vec<&str> {
    let mut out: Vec<&str> = Vec::with_capacity(topics.len());
    for t in topics {
        if !out.contains(&t.as_str()) {
            out.push(t.as_str());
        }
    }
    out
}
