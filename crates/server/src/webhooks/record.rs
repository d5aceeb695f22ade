//! The durable record of one webhook subscription, encoded as JSON for the
//! [`herald_core::WebhookStore`] (small, readable with any redb or Redis
//! tool, and tolerant of fields added later).

use bytes::Bytes;
use herald_auth::Grants;
use serde::{Deserialize, Serialize};

/// Which front door created the subscription (it decides the wire details).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Origin {
    /// `POST /websub`: verified intent, identity (topic, callback).
    WebSub,
    /// `POST /webhooks`: the native JSON API.
    Api,
}

/// What a delivery's body is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Format {
    /// The event's data, with the content type it was published with.
    #[default]
    Raw,
    /// The event as Herald's JSON object (`application/json`).
    Json,
}

/// One webhook subscription and how far its deliveries got.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Record {
    /// Random, stable; the key in the store and the API's id.
    pub id: u64,
    /// The front door that created it.
    pub origin: Origin,
    /// Topics whose events are delivered (WebSub: exactly one).
    pub topics: Vec<String>,
    /// Where deliveries are POSTed (query string kept).
    pub callback: String,
    /// HMAC key for `X-Hub-Signature` (none: deliveries are not signed).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secret: Option<String>,
    /// The hub URL put in `Link: <…>; rel="hub"` (the one the subscriber used).
    pub hub_url: String,
    /// Body format.
    #[serde(default)]
    pub format: Format,
    /// Which private events the owner may read (`None`: every one, dev mode).
    pub grants: Option<Grants>,
    /// The creating token's `sub` ("" for a token without one; `None` when
    /// created anonymously or in dev mode): API listing and deletion.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub owner: Option<String>,
    /// When the lease ends (ms since the Unix epoch); the record is then removed.
    pub expires_ms: u64,
    /// Highest `seq` delivered (or skipped as not visible); deliveries resume after it.
    pub cursor: u64,
    /// Failed attempts in a row on the event at the head of the queue.
    #[serde(default)]
    pub failures: u32,
    /// When the current run of failures began.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub failing_since_ms: Option<u64>,
    /// Earliest time of the next attempt while failing (ms since the Unix epoch).
    #[serde(default)]
    pub next_attempt_ms: u64,
    /// Set when retention removed events this subscription had not received;
    /// the next delivery says so (`Herald-Continuity: broken`) and clears it.
    #[serde(default)]
    pub continuity_broken: bool,
    /// When it was created.
    pub created_ms: u64,
    /// In a cluster: which node delivers it, until when (see `cluster.rs`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lease: Option<Lease>,
}

/// A node's claim on delivering a subscription in a cluster. Only the holder
/// delivers and writes the delivery state (cursor, failures); it renews the
/// claim before `until_ms`, and another node takes it once that has passed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Lease {
    /// The holding node (a random number each node process picks at start).
    pub holder: u64,
    /// When the claim ends unless renewed (ms since the Unix epoch, the
    /// holder's clock: nodes' clocks must agree to well within the lease).
    pub until_ms: u64,
}

impl Record {
    /// The stored bytes.
    pub fn encode(&self) -> Bytes {
        // A struct of strings and numbers always serializes.
        Bytes::from(serde_json::to_vec(self).unwrap_or_default())
    }

    /// Reads stored bytes back.
    pub fn decode(bytes: &[u8]) -> Result<Record, serde_json::Error> {
        serde_json::from_slice(bytes)
    }

    /// The id as the API shows it.
    pub fn public_id(&self) -> String {
        format!("{:016x}", self.id)
    }

    /// Parses an id as the API shows it.
    pub fn parse_id(s: &str) -> Option<u64> {
        (s.len() == 16).then(|| u64::from_str_radix(s, 16).ok())?
    }

    /// The record as the API answers it (never the secret).
    pub fn to_json(&self) -> serde_json::Value {
        serde_json::json!({
            "id": self.public_id(),
            "origin": self.origin,
            "topics": self.topics,
            "callback": self.callback,
            "format": self.format,
            "signed": self.secret.is_some(),
            "expires_ms": self.expires_ms,
            "cursor": self.cursor,
            "failures": self.failures,
            "next_attempt_ms": self.next_attempt_ms,
            "created_ms": self.created_ms,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_and_ids_parse() {
        let r = Record {
            id: 0xab,
            origin: Origin::WebSub,
            topics: vec!["https://a/t".into()],
            callback: "https://cb/x?y=1".into(),
            secret: Some("s".into()),
            hub_url: "https://hub/websub".into(),
            format: Format::Raw,
            grants: Some(Grants::none()),
            owner: None,
            expires_ms: 5,
            cursor: 9,
            failures: 2,
            failing_since_ms: Some(1),
            next_attempt_ms: 3,
            continuity_broken: true,
            created_ms: 0,
            lease: Some(Lease {
                holder: 7,
                until_ms: 8,
            }),
        };
        assert_eq!(Record::decode(&r.encode()).unwrap(), r);
        assert_eq!(Record::parse_id(&r.public_id()), Some(0xab));
        assert_eq!(Record::parse_id("zz"), None);
        assert!(r.to_json().get("secret").is_none());
    }
}
