//! What a token allows: the topics it may publish to and subscribe to.

use crate::pattern::TopicPattern;

/// The `herald` claim of a token: selectors for publishing and subscribing.
///
/// In a token: `"herald": {"publish": ["/a/*"], "subscribe": ["*"]}`. Both
/// lists may be absent (nothing granted). Unknown members are ignored, so
/// issuers may add fields that later hubs understand; a member that is
/// present but malformed rejects the whole token.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Grants {
    /// Topics this token may publish to.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub publish: Vec<TopicPattern>,
    /// Topics this token may subscribe to (and read private events of).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub subscribe: Vec<TopicPattern>,
    /// Whether this token may use the admin API (`/admin/…`) and read the
    /// reserved `$herald/stats` topic.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub admin: bool,
    /// Whether this token may see who (the `payload` claims of subscribers)
    /// is subscribed to the topics it may subscribe to; everyone who may
    /// subscribe to a topic may see how many are.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub presence: bool,
}

impl Grants {
    /// Grants that allow nothing (an anonymous client's).
    pub fn none() -> Self {
        Grants::default()
    }

    /// Whether this token may publish to `topic`.
    pub fn can_publish(&self, topic: &str) -> bool {
        self.publish.iter().any(|p| p.matches(topic))
    }

    /// Whether this token may publish an event to all of `topics` (an event
    /// with several topics needs a grant for each one).
    pub fn can_publish_all<'a>(&self, topics: impl IntoIterator<Item = &'a str>) -> bool {
        topics.into_iter().all(|t| self.can_publish(t))
    }

    /// Whether this token may read private events of `topic`.
    pub fn can_subscribe(&self, topic: &str) -> bool {
        self.subscribe.iter().any(|p| p.matches(topic))
    }

    /// Whether this token may read a private event published to `topics`:
    /// a grant for any one of them is enough (as in Mercure).
    pub fn can_subscribe_any<'a>(&self, topics: impl IntoIterator<Item = &'a str>) -> bool {
        topics.into_iter().any(|t| self.can_subscribe(t))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn grants(publish: &[&str], subscribe: &[&str]) -> Grants {
        let parse = |v: &[&str]| v.iter().map(|s| TopicPattern::parse(s).unwrap()).collect();
        Grants {
            publish: parse(publish),
            subscribe: parse(subscribe),
            ..Grants::default()
        }
    }

    #[test]
    fn publish_needs_every_topic_subscribe_any() {
        let g = grants(&["/a/*"], &["/u/42/**"]);
        assert!(g.can_publish("/a/1"));
        assert!(!g.can_publish("/b/1"));
        assert!(g.can_publish_all(["/a/1", "/a/2"]));
        assert!(!g.can_publish_all(["/a/1", "/b/2"]));
        assert!(g.can_subscribe_any(["/books/1", "/u/42/books/1"]));
        assert!(!g.can_subscribe_any(["/books/1"]));
        assert!(!Grants::none().can_subscribe("/x"));
        assert!(!Grants::none().can_publish("/x"));
    }

    #[test]
    fn claim_shape() {
        let g: Grants = serde_json::from_str(r#"{"publish":["*"],"future":{"x":1}}"#).unwrap();
        assert!(g.can_publish("/anything"));
        assert!(g.subscribe.is_empty());
        assert!(serde_json::from_str::<Grants>(r#"{"publish":"*"}"#).is_err());
        assert!(serde_json::from_str::<Grants>(r#"{"subscribe":[""]}"#).is_err());
        assert_eq!(
            serde_json::to_string(&grants(&["/a"], &[])).unwrap(),
            r#"{"publish":["/a"]}"#
        );
    }
}
