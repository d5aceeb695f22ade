//! Verification of intent (WebSub section 5.3): before a subscription is
//! activated, changed or removed, the hub `GET`s the callback with
//! `hub.mode`, `hub.topic`, `hub.challenge` and (subscribe) `hub.lease_seconds`
//! added to its query string; only a 2xx whose body is exactly the challenge
//! confirms. Anything else (404, other statuses, redirects, another body, a
//! timeout, a refused address) is a failed verification.

use std::sync::atomic::Ordering;

use super::Webhooks;
use super::guard::check_url;

/// Longest verification answer read (a challenge is 32 characters).
const MAX_ANSWER: usize = 4096;

/// What the subscriber is asked to confirm.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Intent {
    /// A subscription (or renewal) with this lease, in seconds.
    Subscribe(u64),
    /// An unsubscription.
    Unsubscribe,
}

/// Asks `callback` to confirm `intent` on `topic`. `Err` says why it failed
/// (logged by the caller); failures are counted here.
pub(crate) async fn verify(
    w: &Webhooks,
    callback: &str,
    topic: &str,
    intent: Intent,
) -> Result<(), String> {
    let result = attempt(w, callback, topic, intent).await;
    if result.is_err() {
        w.stats
            .verification_failures
            .fetch_add(1, Ordering::Relaxed);
    }
    result
}

async fn attempt(w: &Webhooks, callback: &str, topic: &str, intent: Intent) -> Result<(), String> {
    let mut url = check_url(callback, w.opts.allow_private).map_err(|e| e.to_string())?;
    let challenge = format!("{:032x}", rand::random::<u128>());
    {
        let mut q = url.query_pairs_mut();
        match intent {
            Intent::Subscribe(lease) => {
                q.append_pair("hub.mode", "subscribe");
                q.append_pair("hub.topic", topic);
                q.append_pair("hub.challenge", &challenge);
                q.append_pair("hub.lease_seconds", &lease.to_string());
            }
            Intent::Unsubscribe => {
                q.append_pair("hub.mode", "unsubscribe");
                q.append_pair("hub.topic", topic);
                q.append_pair("hub.challenge", &challenge);
            }
        }
    }
    let mut resp = w.client()?.get(url).send().await.map_err(|e| {
        format!(
            "verification request failed: {}",
            super::delivery::describe(e)
        )
    })?;
    let status = resp.status();
    if !status.is_success() {
        return Err(format!(
            "the callback answered {status} to the verification"
        ));
    }
    let mut body = Vec::new();
    while let Some(chunk) = resp
        .chunk()
        .await
        .map_err(|e| format!("reading the verification answer failed: {e}"))?
    {
        body.extend_from_slice(&chunk);
        if body.len() > MAX_ANSWER {
            return Err("the verification answer is not the challenge (too long)".into());
        }
    }
    if body != challenge.as_bytes() {
        return Err("the verification answer's body is not exactly the challenge".into());
    }
    Ok(())
}
