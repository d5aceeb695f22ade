//! Reading Redis replies: stream entries (`XRANGE`/`XREAD`) and script
//! results, in RESP2 or RESP3 shape. Anything unexpected is an error naming
//! what was found, never a panic.

use std::sync::Arc;

use herald_core::Event;
use redis::Value;

/// One stream entry: its `seq` and the event bytes.
pub(super) struct Entry {
    pub(super) seq: u64,
    pub(super) data: Vec<u8>,
}

/// A bulk or simple string's text.
pub(super) fn text(v: &Value) -> Option<&str> {
    match v {
        Value::BulkString(b) => std::str::from_utf8(b).ok(),
        Value::SimpleString(s) => Some(s),
        _ => None,
    }
}

/// A reply described for an error message, cut to a readable length (a
/// reply can hold whole events).
pub(super) fn brief(v: &Value) -> String {
    let mut s = format!("{v:?}");
    if s.len() > 160 {
        let cut = (0..=160)
            .rev()
            .find(|&i| s.is_char_boundary(i))
            .unwrap_or(0);
        s.truncate(cut);
        s.push('…');
    }
    s
}

/// An integer sent as an integer or as text.
pub(super) fn number(v: &Value) -> Option<u64> {
    match v {
        Value::Int(i) => u64::try_from(*i).ok(),
        other => text(other)?.parse().ok(),
    }
}

/// The `seq` of a stream entry id `0-{seq}`.
pub(super) fn seq_of(id: &str) -> Option<u64> {
    id.strip_prefix("0-")?.parse().ok()
}

/// The elements of an array reply.
pub(super) fn items(v: &Value) -> Option<&[Value]> {
    match v {
        Value::Array(a) | Value::Set(a) => Some(a),
        _ => None,
    }
}

/// The entries of an `XRANGE` reply (`[[id, [field, value, …]], …]`).
pub(super) fn entries(v: &Value) -> Result<Vec<Entry>, String> {
    let list = match v {
        Value::Nil => return Ok(Vec::new()),
        other => {
            items(other).ok_or_else(|| format!("expected stream entries, got {}", brief(other)))?
        }
    };
    list.iter().map(entry).collect()
}

fn entry(v: &Value) -> Result<Entry, String> {
    let bad = || format!("malformed stream entry {}", brief(v));
    let [id, fields] = items(v).ok_or_else(bad)? else {
        return Err(bad());
    };
    let seq = text(id).and_then(seq_of).ok_or_else(bad)?;
    let fields: Vec<(&Value, &Value)> = match fields {
        Value::Map(m) => m.iter().map(|(k, v)| (k, v)).collect(),
        other => {
            let f = items(other).ok_or_else(bad)?;
            f.chunks_exact(2).map(|kv| (&kv[0], &kv[1])).collect()
        }
    };
    let data = fields
        .into_iter()
        .find(|(k, _)| text(k) == Some("d"))
        .and_then(|(_, v)| match v {
            Value::BulkString(b) => Some(b.clone()),
            _ => None,
        })
        .ok_or_else(bad)?;
    Ok(Entry { seq, data })
}

/// The entries of an `XREAD` reply for one stream (nil when it timed out).
pub(super) fn xread_entries(v: &Value) -> Result<Vec<Entry>, String> {
    match v {
        Value::Nil => Ok(Vec::new()),
        Value::Map(streams) => match streams.first() {
            Some((_, e)) => entries(e),
            None => Ok(Vec::new()),
        },
        other => {
            let streams =
                items(other).ok_or_else(|| format!("unexpected XREAD reply {}", brief(other)))?;
            match streams.first().and_then(items) {
                Some([_, e]) => entries(e),
                Some(_) => Err(format!("unexpected XREAD reply {}", brief(other))),
                None => Ok(Vec::new()),
            }
        }
    }
}

/// Decodes an entry into the event it stores, in `epoch`.
pub(super) fn decode(entry: &Entry, epoch: u64) -> Result<Arc<Event>, String> {
    herald_store::event_codec::decode(entry.seq, epoch, &entry.data)
        .map(Arc::new)
        .map_err(|e| format!("stream entry 0-{}: {e}", entry.seq))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bulk(s: &str) -> Value {
        Value::BulkString(s.as_bytes().to_vec())
    }

    #[test]
    fn parses_resp2_and_resp3_entries() {
        let e = Value::Array(vec![
            bulk("0-7"),
            Value::Array(vec![bulk("t"), bulk("5"), bulk("d"), bulk("xy")]),
        ]);
        let got = entries(&Value::Array(vec![e.clone()])).unwrap();
        assert_eq!((got[0].seq, got[0].data.as_slice()), (7, &b"xy"[..]));
        let r2 = Value::Array(vec![Value::Array(vec![
            bulk("k"),
            Value::Array(vec![e.clone()]),
        ])]);
        assert_eq!(xread_entries(&r2).unwrap()[0].seq, 7);
        let r3 = Value::Map(vec![(bulk("k"), Value::Array(vec![e]))]);
        assert_eq!(xread_entries(&r3).unwrap()[0].seq, 7);
        assert!(xread_entries(&Value::Nil).unwrap().is_empty());
    }

    #[test]
    fn malformed_replies_are_errors() {
        assert!(entries(&Value::Int(3)).is_err());
        let no_data = Value::Array(vec![Value::Array(vec![
            bulk("0-1"),
            Value::Array(vec![bulk("t"), bulk("5")]),
        ])]);
        assert!(entries(&no_data).is_err());
        let bad_id = Value::Array(vec![Value::Array(vec![
            bulk("17-1"),
            Value::Array(vec![bulk("d"), bulk("x")]),
        ])]);
        assert!(entries(&bad_id).is_err());
    }
}
