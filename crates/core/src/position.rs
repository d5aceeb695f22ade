//! Places in the log, and how a client's resume cursor maps onto one.
//!
//! Hub-generated event ids are `{epoch:x}-{seq}`: the log's epoch (a random
//! number chosen when the log was created) and the event's sequence number. The
//! epoch lets the hub tell a cursor from a wiped data directory or a recreated
//! broker stream apart from a valid one, so continuity is never claimed falsely.

use std::fmt;

/// A place in one epoch of the log: "everything up to and including `seq`".
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Position {
    /// The log's epoch.
    pub epoch: u64,
    /// The sequence number (0 = before the first event).
    pub seq: u64,
}

impl Position {
    /// Parses the hub-id syntax `{epoch:x}-{seq}` (lower-case hex, decimal).
    /// Returns `None` for anything else, which may still be a publisher's id.
    pub fn parse(s: &str) -> Option<Position> {
        let (e, q) = s.split_once('-')?;
        if e.is_empty() || e.len() > 16 || q.is_empty() || q.len() > 20 {
            return None;
        }
        if !e
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
            || !q.bytes().all(|b| b.is_ascii_digit())
        {
            return None;
        }
        Some(Position {
            epoch: u64::from_str_radix(e, 16).ok()?,
            seq: q.parse().ok()?,
        })
    }
}

impl fmt::Display for Position {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:x}-{}", self.epoch, self.seq)
    }
}

/// Where a subscription starts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Resume {
    /// Only events published from now on.
    Now,
    /// Every retained event after this client-supplied cursor (a hub id or a
    /// publisher-supplied id), then live.
    After(String),
    /// Every retained event, then live (Mercure's `earliest`): when retention
    /// already removed the oldest events, from the oldest one kept, without a reset.
    Earliest,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_and_rejects_other_shapes() {
        let p = Position {
            epoch: 0xabc123,
            seq: 42,
        };
        assert_eq!(p.to_string(), "abc123-42");
        assert_eq!(Position::parse("abc123-42"), Some(p));
        for bad in [
            "",
            "-1",
            "abc-",
            "ABC-1",
            "x-1",
            "1-1-1",
            "1--1",
            "1-+1",
            "urn:uuid:1",
        ] {
            assert_eq!(Position::parse(bad), None, "{bad}");
        }
    }
}
