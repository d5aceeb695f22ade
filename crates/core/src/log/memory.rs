//! [`MemoryLog`]: the reference implementation of [`Log`], kept in memory.
//! Tests use it directly and as the model that durable logs are checked against.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard};

use crate::event::{Draft, Event, EventId};
use crate::fanout::Fanout;
use crate::log::{
    AppendError, BoxFuture, Log, LogStats, ReadError, Retention, SCAN_BUDGET, ScanPage,
    replay_floor,
};
use crate::topic::{Selector, Topic};

/// An in-memory [`Log`] with the same retention rules as the durable one.
pub struct MemoryLog {
    epoch: u64,
    retention: Retention,
    fanout: Arc<Fanout>,
    state: Mutex<State>,
}

#[derive(Default)]
struct State {
    next_seq: u64,
    closed: bool,
    events: BTreeMap<u64, Arc<Event>>,
    by_topic: HashMap<Topic, VecDeque<u64>>,
    topic_marks: HashMap<Topic, u64>,
    global_mark: u64,
    ids: HashMap<Arc<str>, u64>,
    bytes: u64,
}

impl MemoryLog {
    /// An empty log with this epoch, handing commits to `fanout`.
    pub fn new(epoch: u64, retention: Retention, fanout: Arc<Fanout>) -> MemoryLog {
        MemoryLog {
            epoch,
            retention,
            fanout,
            state: Mutex::new(State {
                next_seq: 1,
                ..State::default()
            }),
        }
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Removes events older than the age bound at `now_ms` (the durable log does
    /// this on a timer; tests call it directly).
    pub fn trim_by_age(&self, now_ms: u64) {
        let mut st = self.lock();
        st.trim_global(&self.retention, now_ms);
    }

    fn append_now(&self, batch: Vec<Draft>, now_ms: u64) -> Result<Vec<Arc<Event>>, AppendError> {
        let mut st = self.lock();
        if st.closed {
            return Err(AppendError::Unavailable("log is closed".into()));
        }
        let mut seen: Vec<&str> = Vec::new();
        for d in &batch {
            if let Some(id) = d.id.as_deref() {
                if st.ids.contains_key(id) || seen.contains(&id) {
                    return Err(AppendError::DuplicateId(id.to_string()));
                }
                seen.push(id);
            }
        }
        let mut out = Vec::with_capacity(batch.len());
        for d in batch {
            let seq = st.next_seq;
            st.next_seq += 1;
            let ev = Arc::new(Event::from_draft(d, seq, self.epoch, now_ms));
            st.insert(ev.clone());
            out.push(ev);
        }
        st.trim_topics(&self.retention, &out);
        st.trim_global(&self.retention, now_ms);
        // Still under the lock: commits reach the fan-out in seq order.
        self.fanout.deliver(&out);
        Ok(out)
    }

    fn read_now(
        &self,
        topics: &[Topic],
        after: u64,
        limit: usize,
    ) -> Result<Vec<Arc<Event>>, ReadError> {
        let st = self.lock();
        let mut floor = st.global_mark;
        for t in topics {
            floor = floor.max(replay_floor(
                st.global_mark,
                st.topic_marks.get(t).copied().unwrap_or(0),
            ));
        }
        if after < floor {
            return Err(ReadError::Expired { oldest_kept: floor });
        }
        let mut seqs: Vec<u64> = Vec::new();
        for t in topics {
            if let Some(q) = st.by_topic.get(t) {
                let start = q.partition_point(|&s| s <= after);
                seqs.extend(q.iter().skip(start).take(limit));
            }
        }
        seqs.sort_unstable();
        seqs.dedup();
        seqs.truncate(limit);
        Ok(seqs
            .iter()
            .filter_map(|s| st.events.get(s).cloned())
            .collect())
    }

    fn scan_now(
        &self,
        selector: &Selector,
        after: u64,
        limit: usize,
    ) -> Result<ScanPage, ReadError> {
        let st = self.lock();
        let mut floor = st.global_mark;
        for (t, &mark) in &st.topic_marks {
            if selector.matches(std::iter::once(t)) {
                floor = floor.max(replay_floor(st.global_mark, mark));
            }
        }
        if after < floor {
            return Err(ReadError::Expired { oldest_kept: floor });
        }
        let mut page = ScanPage {
            through: after,
            ..ScanPage::default()
        };
        for (examined, (&seq, ev)) in st.events.range(after.saturating_add(1)..).enumerate() {
            if page.events.len() >= limit || examined >= SCAN_BUDGET {
                page.more = true;
                break;
            }
            page.through = seq;
            if selector.matches(ev.topics.iter()) {
                page.events.push(ev.clone());
            }
        }
        Ok(page)
    }
}

impl State {
    fn insert(&mut self, ev: Arc<Event>) {
        self.bytes += ev.stored_size();
        for t in ev.topics.iter() {
            self.by_topic
                .entry(t.clone())
                .or_default()
                .push_back(ev.seq);
        }
        if let crate::EventId::Publisher(id) = &ev.id {
            self.ids.insert(id.clone(), ev.seq);
        }
        self.events.insert(ev.seq, ev);
    }

    fn trim_topics(&mut self, r: &Retention, batch: &[Arc<Event>]) {
        if r.max_events_per_topic == 0 {
            return;
        }
        let mut touched: Vec<&Topic> = batch.iter().flat_map(|e| e.topics.iter()).collect();
        touched.sort();
        touched.dedup();
        for t in touched {
            while let Some(q) = self.by_topic.get_mut(t) {
                if q.len() as u64 <= r.max_events_per_topic {
                    break;
                }
                let Some(seq) = q.pop_front() else { break };
                let mark = self.topic_marks.entry(t.clone()).or_insert(0);
                *mark = (*mark).max(seq);
                if !self.still_indexed(seq) {
                    self.remove_event(seq);
                }
            }
        }
    }

    fn still_indexed(&self, seq: u64) -> bool {
        let Some(ev) = self.events.get(&seq) else {
            return false;
        };
        ev.topics.iter().any(|t| {
            self.by_topic
                .get(t)
                .is_some_and(|q| q.binary_search(&seq).is_ok())
        })
    }

    fn trim_global(&mut self, r: &Retention, now_ms: u64) {
        let cutoff = r
            .max_age
            .map(|a| now_ms.saturating_sub(a.as_millis() as u64));
        while let Some((&seq, ev)) = self.events.first_key_value() {
            let too_old = cutoff.is_some_and(|c| ev.time_ms < c);
            if !too_old && self.bytes <= r.max_bytes {
                break;
            }
            let topics = ev.topics.clone();
            for t in topics.iter() {
                if let Some(q) = self.by_topic.get_mut(t) {
                    if q.front() == Some(&seq) {
                        q.pop_front();
                    }
                    if q.is_empty() {
                        // The global mark now covers this topic.
                        self.by_topic.remove(t);
                        self.topic_marks.remove(t);
                    }
                }
            }
            self.global_mark = seq;
            self.remove_event(seq);
        }
    }

    fn remove_event(&mut self, seq: u64) {
        if let Some(ev) = self.events.remove(&seq) {
            self.bytes -= ev.stored_size();
            if let EventId::Publisher(id) = &ev.id {
                self.ids.remove(id);
            }
        }
    }
}

impl Log for MemoryLog {
    fn epoch(&self) -> u64 {
        self.epoch
    }

    fn last_seq(&self) -> u64 {
        self.lock().next_seq - 1
    }

    fn append(
        &self,
        batch: Vec<Draft>,
        now_ms: u64,
    ) -> BoxFuture<'_, Result<Vec<Arc<Event>>, AppendError>> {
        let r = self.append_now(batch, now_ms);
        Box::pin(async move { r })
    }

    fn read(
        &self,
        topics: Vec<Topic>,
        after: u64,
        limit: usize,
    ) -> BoxFuture<'_, Result<Vec<Arc<Event>>, ReadError>> {
        let r = self.read_now(&topics, after, limit);
        Box::pin(async move { r })
    }

    fn scan(
        &self,
        selector: Selector,
        after: u64,
        limit: usize,
    ) -> BoxFuture<'_, Result<ScanPage, ReadError>> {
        let r = self.scan_now(&selector, after, limit);
        Box::pin(async move { r })
    }

    fn lookup_id(&self, id: String) -> BoxFuture<'_, Result<Option<u64>, ReadError>> {
        let r = self.lock().ids.get(id.as_str()).copied();
        Box::pin(async move { Ok(r) })
    }

    fn close(&self) -> BoxFuture<'_, ()> {
        self.lock().closed = true;
        Box::pin(async {})
    }

    fn stats(&self) -> LogStats {
        let st = self.lock();
        LogStats {
            events: st.events.len() as u64,
            bytes: st.bytes,
            topics: st.by_topic.len() as u64,
            commits: 0,
        }
    }
}
