//! Errors become HTTP responses here, in one place: a status, a stable code, and
//! a message that tells the client what to fix. Body: `{"error": code, "message": …}`.

use bytes::Bytes;
use http_body_util::Full;
use hyper::{Response, StatusCode, header};

use herald_core::{AppendError, DraftError, PublishError, SubscribeError, TopicError};

/// A refused request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rejection {
    /// HTTP status.
    pub status: StatusCode,
    /// Stable machine-readable code.
    pub code: &'static str,
    /// What to fix, for a person.
    pub message: String,
    /// Seconds after which the client may try again (`Retry-After`).
    pub retry_after: Option<u64>,
    /// The methods the route answers (`Allow`, for 405).
    pub allow: Option<&'static str>,
}

impl Rejection {
    /// A rejection with this status, code and message.
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Rejection {
        Rejection {
            status,
            code,
            message: message.into(),
            retry_after: None,
            allow: None,
        }
    }

    /// 405 for a route that answers only `allow` (sent as the `Allow`
    /// header RFC 9110 asks for).
    pub fn method_not_allowed(allow: &'static str) -> Rejection {
        Rejection {
            allow: Some(allow),
            ..Rejection::new(
                StatusCode::METHOD_NOT_ALLOWED,
                "method_not_allowed",
                format!("this route answers {allow}"),
            )
        }
    }

    /// The same, telling the client to wait `secs` seconds before retrying.
    pub fn retry_after(mut self, secs: u64) -> Rejection {
        self.retry_after = Some(secs);
        self
    }

    /// 400 with the given code.
    pub fn bad_request(code: &'static str, message: impl Into<String>) -> Rejection {
        Rejection::new(StatusCode::BAD_REQUEST, code, message)
    }

    /// The JSON body.
    pub fn body(&self) -> Bytes {
        let v = serde_json::json!({"error": self.code, "message": self.message});
        Bytes::from(v.to_string())
    }

    /// As a hyper response.
    pub fn into_response(self) -> Response<Full<Bytes>> {
        let mut r = Response::new(Full::new(self.body()));
        *r.status_mut() = self.status;
        r.headers_mut().insert(
            header::CONTENT_TYPE,
            header::HeaderValue::from_static("application/json"),
        );
        if let Some(secs) = self.retry_after {
            r.headers_mut()
                .insert(header::RETRY_AFTER, header::HeaderValue::from(secs));
        }
        if let Some(allow) = self.allow {
            r.headers_mut()
                .insert(header::ALLOW, header::HeaderValue::from_static(allow));
        }
        r
    }

    /// As a complete HTTP/1.1 response, for the lean path (connection closes after it).
    pub fn to_http1(&self) -> Vec<u8> {
        let body = self.body();
        let retry = self
            .retry_after
            .map(|s| format!("Retry-After: {s}\r\n"))
            .unwrap_or_default();
        let mut out = format!(
            "HTTP/1.1 {} {}\r\nContent-Type: application/json\r\nContent-Length: {}\r\n{retry}Connection: close\r\n\r\n",
            self.status.as_u16(),
            self.status.canonical_reason().unwrap_or(""),
            body.len()
        )
        .into_bytes();
        out.extend_from_slice(&body);
        out
    }
}

impl From<TopicError> for Rejection {
    fn from(e: TopicError) -> Self {
        Rejection::bad_request("invalid_topic", e.to_string())
    }
}

impl From<DraftError> for Rejection {
    fn from(e: DraftError) -> Self {
        let code = match e {
            DraftError::DataTooLarge { .. } => {
                return Rejection::new(
                    StatusCode::PAYLOAD_TOO_LARGE,
                    "data_too_large",
                    e.to_string(),
                );
            }
            DraftError::Topic(_) | DraftError::NoTopic | DraftError::TooManyTopics { .. } => {
                "invalid_topic"
            }
            DraftError::DataNotUtf8 => "invalid_data",
            DraftError::BadField { field: "id", .. } | DraftError::IdLooksGenerated => "invalid_id",
            DraftError::BadField { .. } => "invalid_type",
        };
        Rejection::bad_request(code, e.to_string())
    }
}

impl From<PublishError> for Rejection {
    fn from(e: PublishError) -> Self {
        match e {
            PublishError::Empty => Rejection::bad_request("empty_batch", e.to_string()),
            PublishError::BatchTooLarge { .. } => Rejection::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                "batch_too_large",
                e.to_string(),
            ),
            PublishError::Append(AppendError::DuplicateId(_)) => {
                Rejection::new(StatusCode::CONFLICT, "duplicate_id", e.to_string())
            }
            PublishError::Append(AppendError::Unavailable(_)) => {
                tracing::error!(error = %e, "publish failed: store unavailable");
                Rejection::new(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "store_unavailable",
                    e.to_string(),
                )
            }
        }
    }
}

impl From<SubscribeError> for Rejection {
    fn from(e: SubscribeError) -> Self {
        match e {
            SubscribeError::NoTopic | SubscribeError::TooManyTopics { .. } => {
                Rejection::bad_request("invalid_topic", e.to_string())
            }
            SubscribeError::Store(_) => {
                tracing::error!(error = %e, "subscribe failed: store unavailable");
                Rejection::new(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "store_unavailable",
                    e.to_string(),
                )
            }
        }
    }
}
