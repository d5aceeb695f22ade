//! The webhook settings, checked and turned into [`WebhookOptions`].

use std::time::Duration;

use herald_server::webhooks::{Algorithm, WebhookOptions};

use super::{BadConfig, Settings};

/// Checks the `webhook_*` and `websub_*` settings.
pub(super) fn validate(s: &Settings) -> Result<WebhookOptions, BadConfig> {
    let positive = [
        ("webhook_timeout_ms", s.webhook_timeout_ms),
        ("webhook_concurrency", s.webhook_concurrency as u64),
        (
            "webhook_failing_concurrency",
            s.webhook_failing_concurrency as u64,
        ),
        ("webhook_backoff_base_ms", s.webhook_backoff_base_ms),
        ("webhook_lease_min_secs", s.webhook_lease_min_secs),
        (
            "webhook_max_subscriptions",
            s.webhook_max_subscriptions as u64,
        ),
    ];
    if let Some((name, _)) = positive.iter().find(|(_, v)| *v == 0) {
        return Err(BadConfig(format!("{name} must be greater than 0")));
    }
    if !(s.webhook_lease_min_secs <= s.webhook_lease_default_secs
        && s.webhook_lease_default_secs <= s.webhook_lease_max_secs)
    {
        return Err(BadConfig(format!(
            "webhook leases must satisfy webhook_lease_min_secs ({}) <= webhook_lease_default_secs ({}) <= webhook_lease_max_secs ({})",
            s.webhook_lease_min_secs, s.webhook_lease_default_secs, s.webhook_lease_max_secs
        )));
    }
    if s.broker_webhook_lease_ms < 300 {
        return Err(BadConfig(format!(
            "broker_webhook_lease_ms ({}) must be at least 300 (it is renewed every third of it)",
            s.broker_webhook_lease_ms
        )));
    }
    if s.webhook_backoff_max_ms < s.webhook_backoff_base_ms {
        return Err(BadConfig(format!(
            "webhook_backoff_max_ms ({}) must be at least webhook_backoff_base_ms ({})",
            s.webhook_backoff_max_ms, s.webhook_backoff_base_ms
        )));
    }
    let signature: Algorithm = s
        .webhook_signature
        .parse()
        .map_err(|e| BadConfig(format!("webhook_signature: {e}")))?;
    let hub_url = match s.websub_hub_url.as_str() {
        "" => None,
        u if (u.starts_with("https://") || u.starts_with("http://"))
            && !u.contains(['<', '>', ' ']) =>
        {
            Some(u.to_string())
        }
        u => {
            return Err(BadConfig(format!(
                "websub_hub_url = {u:?} must be an absolute http(s) URL, e.g. https://push.example/websub"
            )));
        }
    };
    Ok(WebhookOptions {
        allow_private: s.webhook_allow_private,
        lease_default: Duration::from_secs(s.webhook_lease_default_secs),
        lease_min: Duration::from_secs(s.webhook_lease_min_secs),
        lease_max: Duration::from_secs(s.webhook_lease_max_secs),
        timeout: Duration::from_millis(s.webhook_timeout_ms),
        concurrency: s.webhook_concurrency,
        failing_concurrency: s.webhook_failing_concurrency,
        backoff_base: Duration::from_millis(s.webhook_backoff_base_ms),
        backoff_max: Duration::from_millis(s.webhook_backoff_max_ms),
        max_failures: s.webhook_max_failures,
        max_failing: Duration::from_secs(s.webhook_max_failing_secs),
        signature,
        max_subscriptions: s.webhook_max_subscriptions,
        hub_url,
        cluster_lease: Duration::from_millis(s.broker_webhook_lease_ms),
    })
}
