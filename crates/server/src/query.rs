//! Query-string parsing shared by every route.

use herald_core::{Limits, Resume, Selector, Topic};

use crate::rejection::Rejection;

/// A decoded query string: `(name, value)` pairs in order.
pub struct Query {
    pairs: Vec<(String, String)>,
    /// The first parameter whose percent-decoded bytes are not UTF-8.
    not_utf8: Option<String>,
}

impl Query {
    /// Decodes `application/x-www-form-urlencoded` pairs (`+` is a space).
    /// Bytes that are not UTF-8 after decoding become U+FFFD, and the query
    /// remembers it: [`Query::topics`] and [`Query::resume`] then refuse it,
    /// so two different byte strings never name the same topic.
    pub fn parse(raw: Option<&str>) -> Query {
        let pairs: Vec<(String, String)> = raw
            .map(|q| form_urlencoded::parse(q.as_bytes()).into_owned().collect())
            .unwrap_or_default();
        let not_utf8 = raw.and_then(|q| {
            q.split('&').find_map(|pair| {
                let bytes: Vec<u8> = percent_encoding::percent_decode(pair.as_bytes()).collect();
                std::str::from_utf8(&bytes)
                    .is_err()
                    .then(|| pair.split('=').next().unwrap_or_default().to_string())
            })
        });
        Query { pairs, not_utf8 }
    }

    pub(crate) fn check_utf8(&self) -> Result<(), Rejection> {
        match &self.not_utf8 {
            None => Ok(()),
            Some(name) => Err(Rejection::bad_request(
                "invalid_query",
                format!("the query parameter {name:?} is not UTF-8 once percent-decoded"),
            )),
        }
    }

    /// Every value of `name`.
    pub fn all<'a, 'n>(&'a self, name: &'n str) -> impl Iterator<Item = &'a str> + use<'a, 'n> {
        self.pairs
            .iter()
            .filter(move |(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    /// Every parameter name, in order (repeated names repeat).
    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.pairs.iter().map(|(k, _)| k.as_str())
    }

    /// The first value of `name`.
    pub fn first(&self, name: &str) -> Option<&str> {
        self.pairs
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    /// The `topic` parameters as validated topics.
    pub fn topics(&self, limits: &Limits) -> Result<Vec<Topic>, Rejection> {
        self.check_utf8()?;
        let topics: Vec<Topic> = self
            .all("topic")
            .map(|t| Topic::parse(t, limits.max_topic_len))
            .collect::<Result<_, _>>()?;
        if topics.is_empty() {
            return Err(Rejection::bad_request(
                "missing_topic",
                "name at least one topic with ?topic=NAME (repeat it for more)",
            ));
        }
        if topics.len() > limits.max_topics {
            return Err(Rejection::bad_request(
                "invalid_topic",
                format!(
                    "at most {} topics per request; this one names {}",
                    limits.max_topics,
                    topics.len()
                ),
            ));
        }
        Ok(topics)
    }

    /// The subscription's selector.
    pub fn selector(&self, limits: &Limits) -> Result<Selector, Rejection> {
        Ok(Selector::exact(self.topics(limits)?))
    }

    /// Where to resume: the `Last-Event-ID` header wins over the query
    /// parameters `last_event_id`, `lastEventID` and `lastEventId` (the URL's
    /// cursor is reused on every reconnection, the header is current).
    pub fn resume(&self, header: Option<&str>) -> Result<Resume, Rejection> {
        self.check_utf8()?;
        let cursor = header.filter(|h| !h.is_empty()).or_else(|| {
            ["last_event_id", "lastEventID", "lastEventId"]
                .iter()
                .find_map(|k| self.first(k))
        });
        resume_cursor(cursor)
    }
}

/// Where to resume from a client's cursor (`None` or empty: from now).
pub fn resume_cursor(cursor: Option<&str>) -> Result<Resume, Rejection> {
    match cursor {
        None | Some("") => Ok(Resume::Now),
        Some(c) if c.len() > 1024 || c.contains(['\r', '\n', '\0']) => Err(Rejection::bad_request(
            "invalid_last_event_id",
            "Last-Event-ID must be at most 1024 bytes without CR, LF or NUL",
        )),
        Some(c) => Ok(Resume::After(c.to_string())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_wins_and_aliases_work() {
        let q = Query::parse(Some("topic=a&topic=b%2Fc&lastEventId=x-1"));
        let l = Limits::default();
        assert_eq!(q.topics(&l).unwrap().len(), 2);
        assert_eq!(q.resume(None).unwrap(), Resume::After("x-1".into()));
        assert_eq!(q.resume(Some("h")).unwrap(), Resume::After("h".into()));
        assert_eq!(Query::parse(None).resume(None).unwrap(), Resume::Now);
        assert!(Query::parse(None).topics(&l).is_err());
        assert!(Query::parse(Some("topic=%0a")).topics(&l).is_err());
    }
}
