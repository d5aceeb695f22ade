//! Configuration of `herald serve`, layered: defaults < TOML file (`--config`)
//! < `HERALD_*` environment variables < flags. Validated once, at start.
//!
//! Every setting is declared once, in the [`settings!`] table below, which
//! generates the TOML schema ([`Settings`]), the flags and their environment
//! variables ([`Overrides`]), and the layering.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use herald_core::{Limits, Retention};

mod auth;
mod tls;
mod webhooks;
pub use auth::AuthSettings;
use herald_broker::BrokerOptions;
use herald_server::ServerOptions;
use herald_store::StoreOptions;

macro_rules! settings {
    ($( $(#[doc = $doc:literal])* $name:ident : $ty:ty = $default:expr, $env:literal $(, $extra:meta)*; )*) => {
        /// Every setting of `herald serve`, as written in the TOML file.
        #[derive(Debug, Clone, serde::Deserialize)]
        #[serde(default, deny_unknown_fields)]
        pub struct Settings {
            $( $(#[doc = $doc])* pub $name: $ty, )*
        }

        impl Default for Settings {
            fn default() -> Self {
                Settings { $( $name: $default, )* }
            }
        }

        /// Settings given as flags or `HERALD_*` environment variables.
        #[derive(Debug, Clone, Default, clap::Args)]
        pub struct Overrides {
            $( $(#[doc = $doc])* #[arg(long, env = $env $(, $extra)*)] pub $name: Option<$ty>, )*
        }

        impl Settings {
            /// Every setting's name, as the TOML file spells it.
            #[cfg(test)]
            const NAMES: &'static [&'static str] = &[$( stringify!($name), )*];

            fn apply(&mut self, o: Overrides) {
                $( if let Some(v) = o.$name { self.$name = v; } )*
            }
        }
    };
}

settings! {
    /// Address to listen on (IP:PORT; port 0 picks a free one).
    listen: String = "127.0.0.1:8080".into(), "HERALD_LISTEN";
    /// Connections the kernel queues before the hub accepts them (a reconnect
    /// storm overflows a short queue; the kernel caps it at net.core.somaxconn).
    listen_backlog: u32 = 4096, "HERALD_LISTEN_BACKLOG";
    /// Directory of the embedded durable store.
    data_dir: PathBuf = PathBuf::from("herald-data"), "HERALD_DATA_DIR";
    /// Development mode: anyone may publish and subscribe (never in production).
    dev: bool = false, "HERALD_DEV", num_args = 0..=1, default_missing_value = "true", value_parser = clap::builder::BoolishValueParser::new();
    /// Seconds between heartbeat comments on idle streams.
    heartbeat_secs: u64 = 15, "HERALD_HEARTBEAT_SECS";
    /// Reconnection delay sent to SSE clients, in ms (jittered ±20%).
    sse_retry_ms: u32 = 3000, "HERALD_SSE_RETRY_MS";
    /// Largest request body, in bytes.
    max_body_bytes: usize = 1024 * 1024 + 64 * 1024, "HERALD_MAX_BODY_BYTES";
    /// Largest request head, in bytes.
    max_header_bytes: usize = 8192, "HERALD_MAX_HEADER_BYTES";
    /// Seconds a client may take to send its request head.
    header_timeout_secs: u64 = 10, "HERALD_HEADER_TIMEOUT_SECS";
    /// Seconds a stream may wait on a client that does not read before disconnecting it.
    write_timeout_secs: u64 = 30, "HERALD_WRITE_TIMEOUT_SECS";
    /// Seconds allowed for draining connections at shutdown.
    shutdown_grace_secs: u64 = 10, "HERALD_SHUTDOWN_GRACE_SECS";
    /// Longest topic name, in bytes.
    max_topic_len: usize = 1024, "HERALD_MAX_TOPIC_LEN";
    /// Most topics per event or per subscription.
    max_topics: usize = 64, "HERALD_MAX_TOPICS";
    /// Largest event payload, in bytes.
    max_data_bytes: usize = 1024 * 1024, "HERALD_MAX_DATA_BYTES";
    /// Longest publisher-supplied id, in bytes.
    max_id_len: usize = 256, "HERALD_MAX_ID_LEN";
    /// Longest event type, in bytes.
    max_type_len: usize = 128, "HERALD_MAX_TYPE_LEN";
    /// Most events per publish batch.
    max_batch: usize = 1000, "HERALD_MAX_BATCH";
    /// History kept per topic, in events (0 = no per-topic bound).
    retention_events_per_topic: u64 = 10_000, "HERALD_RETENTION_EVENTS_PER_TOPIC";
    /// History kept in all, in bytes.
    retention_max_bytes: u64 = 1 << 30, "HERALD_RETENTION_MAX_BYTES";
    /// History kept, in seconds of age (0 = no age bound).
    retention_max_age_secs: u64 = 7 * 24 * 3600, "HERALD_RETENTION_MAX_AGE_SECS";
    /// Longest wait, in microseconds, for more publishers to join a group commit
    /// when publishers take turns (0 = commit at once; a lone publisher never waits).
    store_commit_linger_us: u64 = herald_store::DEFAULT_COMMIT_LINGER_US, "HERALD_STORE_COMMIT_LINGER_US";
    /// Longest a long-poll is held, in seconds (caps the client's timeout).
    poll_timeout_max_secs: u64 = 30, "HERALD_POLL_TIMEOUT_MAX_SECS";
    /// Most events in one poll answer (caps the client's max).
    poll_max_events: usize = 1000, "HERALD_POLL_MAX_EVENTS";
    /// Bytes after which a forever-iframe stream ends (the page reopens it).
    iframe_max_bytes: usize = 128 * 1024, "HERALD_IFRAME_MAX_BYTES";
    /// Largest WebSocket message a client may send, in bytes (larger: close 1009).
    ws_max_message_bytes: usize = 1024 * 1024 + 64 * 1024, "HERALD_WS_MAX_MESSAGE_BYTES";
    /// Serve GET /ws/echo (WebSocket echo for conformance suites; never in production).
    ws_echo: bool = false, "HERALD_WS_ECHO", num_args = 0..=1, default_missing_value = "true", value_parser = clap::builder::BoolishValueParser::new();
    /// Longest a BOSH request is held, in seconds (caps a session's wait).
    bosh_wait_max_secs: u64 = 60, "HERALD_BOSH_WAIT_MAX_SECS";
    /// Most BOSH requests a session may have held at once (caps its hold).
    bosh_hold_max: usize = 2, "HERALD_BOSH_HOLD_MAX";
    /// Seconds with no request held after which a BOSH session ends.
    bosh_inactivity_secs: u64 = 60, "HERALD_BOSH_INACTIVITY_SECS";
    /// Shortest interval between empty polls of a polling BOSH session, in seconds.
    bosh_polling_secs: u64 = 2, "HERALD_BOSH_POLLING_SECS";
    /// Most BOSH sessions open at once.
    bosh_max_sessions: usize = 10_000, "HERALD_BOSH_MAX_SESSIONS";
    /// Events a subscriber may fall behind live delivery before it catches up from the store.
    ring_capacity: usize = 512, "HERALD_RING_CAPACITY";
    /// Log format: text or json.
    log_format: String = "text".into(), "HERALD_LOG_FORMAT";
    /// Shared secret for HS256/384/512 tokens, at least 32 bytes ("" = none).
    jwt_secret: String = String::new(), "HERALD_JWT_SECRET", hide_env_values = true;
    /// PEM public key files (RSA, EC P-256/P-384, Ed25519) that verify tokens.
    jwt_public_keys: Vec<PathBuf> = Vec::new(), "HERALD_JWT_PUBLIC_KEYS", value_delimiter = ',';
    /// JWKS file of verification keys, looked up by kid ("" = none).
    jwks_file: PathBuf = PathBuf::new(), "HERALD_JWKS_FILE";
    /// JWKS URL of verification keys, looked up by kid (https; "" = none).
    jwks_url: String = String::new(), "HERALD_JWKS_URL";
    /// Seconds between reloads of the JWKS file and URL.
    jwks_refresh_secs: u64 = 300, "HERALD_JWKS_REFRESH_SECS";
    /// Accepted token algorithms (empty = every one that fits a configured key).
    jwt_algorithms: Vec<String> = Vec::new(), "HERALD_JWT_ALGORITHMS", value_delimiter = ',';
    /// Required token audience (aud) ("" = not checked).
    jwt_audience: String = String::new(), "HERALD_JWT_AUDIENCE";
    /// Required token issuer (iss) ("" = not checked).
    jwt_issuer: String = String::new(), "HERALD_JWT_ISSUER";
    /// Seconds of clock skew tolerated for a token's nbf (exp is never extended).
    jwt_leeway_secs: u64 = 5, "HERALD_JWT_LEEWAY_SECS";
    /// Refuse tokens without an exp claim.
    jwt_require_exp: bool = true, "HERALD_JWT_REQUIRE_EXP", num_args = 0..=1, default_missing_value = "true", value_parser = clap::builder::BoolishValueParser::new();
    /// Cookie that may carry the token, for EventSource ("" = cookies are not read).
    token_cookie: String = herald_auth::DEFAULT_COOKIE.into(), "HERALD_TOKEN_COOKIE";
    /// Accept tokens in the access_token query parameter (they end up in logs).
    token_query: bool = false, "HERALD_TOKEN_QUERY", num_args = 0..=1, default_missing_value = "true", value_parser = clap::builder::BoolishValueParser::new();
    /// Most connections open at once (more are answered 503).
    max_connections: usize = 50_000, "HERALD_MAX_CONNECTIONS";
    /// Most connections open at once from one client address (more are answered 429).
    max_connections_per_address: usize = 1_000, "HERALD_MAX_CONNECTIONS_PER_ADDRESS";
    /// Events per second one client address may publish (0 = no limit; --dev turns it off).
    publish_rate_per_address: u32 = 5_000, "HERALD_PUBLISH_RATE_PER_ADDRESS";
    /// Events per second one token (its sub) may publish (0 = no limit; --dev turns it off).
    publish_rate_per_token: u32 = 1_000, "HERALD_PUBLISH_RATE_PER_TOKEN";
    /// Origins whose pages may use the hub cross-origin, with credentials ("*": any origin, without credentials).
    cors_origins: Vec<String> = Vec::new(), "HERALD_CORS_ORIGINS", value_delimiter = ',';
    /// Let clients without a token subscribe (they receive public events only).
    anonymous_subscribe: bool = false, "HERALD_ANONYMOUS_SUBSCRIBE", num_args = 0..=1, default_missing_value = "true", value_parser = clap::builder::BoolishValueParser::new();
    /// PEM certificate chain, leaf first: serve HTTPS with HTTP/2 and HTTP/1.1 (needs tls_key; "" = plain HTTP).
    tls_cert: PathBuf = PathBuf::new(), "HERALD_TLS_CERT";
    /// PEM private key of tls_cert (PKCS#8, PKCS#1 RSA or SEC1 EC) ("" = none).
    tls_key: PathBuf = PathBuf::new(), "HERALD_TLS_KEY";
    /// Seconds between looks at tls_cert and tls_key for a new certificate (0 = only on SIGHUP).
    tls_reload_secs: u64 = 10, "HERALD_TLS_RELOAD_SECS";
    /// Let webhook callbacks and WebSub topic URLs reach loopback, private, link-local or multicast addresses.
    webhook_allow_private: bool = false, "HERALD_WEBHOOK_ALLOW_PRIVATE", num_args = 0..=1, default_missing_value = "true", value_parser = clap::builder::BoolishValueParser::new();
    /// Webhook lease granted when none is asked for, in seconds.
    webhook_lease_default_secs: u64 = 10 * 24 * 3600, "HERALD_WEBHOOK_LEASE_DEFAULT_SECS";
    /// Shortest webhook lease granted, in seconds.
    webhook_lease_min_secs: u64 = 60, "HERALD_WEBHOOK_LEASE_MIN_SECS";
    /// Longest webhook lease granted, in seconds.
    webhook_lease_max_secs: u64 = 30 * 24 * 3600, "HERALD_WEBHOOK_LEASE_MAX_SECS";
    /// Time allowed for one webhook request (delivery, verification, topic fetch), in ms.
    webhook_timeout_ms: u64 = 10_000, "HERALD_WEBHOOK_TIMEOUT_MS";
    /// Webhook deliveries in flight at once to healthy subscribers.
    webhook_concurrency: usize = 64, "HERALD_WEBHOOK_CONCURRENCY";
    /// Webhook deliveries in flight at once to failing (demoted) subscribers.
    webhook_failing_concurrency: usize = 4, "HERALD_WEBHOOK_FAILING_CONCURRENCY";
    /// Wait after a failed webhook delivery, in ms; doubles with each failure in a row.
    webhook_backoff_base_ms: u64 = 1000, "HERALD_WEBHOOK_BACKOFF_BASE_MS";
    /// Longest wait between webhook delivery attempts, in ms.
    webhook_backoff_max_ms: u64 = 3_600_000, "HERALD_WEBHOOK_BACKOFF_MAX_MS";
    /// Failed webhook deliveries in a row after which the subscription is dropped (0 = no bound).
    webhook_max_failures: u32 = 50, "HERALD_WEBHOOK_MAX_FAILURES";
    /// Seconds of failing after which a webhook subscription is dropped (0 = no bound).
    webhook_max_failing_secs: u64 = 3 * 24 * 3600, "HERALD_WEBHOOK_MAX_FAILING_SECS";
    /// HMAC of X-Hub-Signature: sha1, sha256, sha384 or sha512.
    webhook_signature: String = "sha256".into(), "HERALD_WEBHOOK_SIGNATURE";
    /// Most webhook subscriptions at once.
    webhook_max_subscriptions: usize = 10_000, "HERALD_WEBHOOK_MAX_SUBSCRIPTIONS";
    /// Public URL of the WebSub hub, for Link rel="hub" ("" = the request's scheme and Host + /websub).
    websub_hub_url: String = String::new(), "HERALD_WEBSUB_HUB_URL";
    /// Most Bayeux sessions open at once (more: the handshake fails).
    bayeux_max_sessions: usize = 10_000, "HERALD_BAYEUX_MAX_SESSIONS";
    /// Longest a Bayeux /meta/connect is held, in ms (advertised as advice.timeout).
    bayeux_connect_timeout_ms: u64 = 25_000, "HERALD_BAYEUX_CONNECT_TIMEOUT_MS";
    /// Milliseconds a Bayeux session lives with no connect held (maxInterval).
    bayeux_max_interval_ms: u64 = 10_000, "HERALD_BAYEUX_MAX_INTERVAL_MS";
    /// Most Bayeux messages in one request or WebSocket frame.
    bayeux_max_messages: usize = 100, "HERALD_BAYEUX_MAX_MESSAGES";
    /// Most subscriptions one Bayeux session may hold.
    bayeux_max_subscriptions: usize = 100, "HERALD_BAYEUX_MAX_SUBSCRIPTIONS";
    /// Most events delivered in one Bayeux response or frame (the rest wait for the next).
    bayeux_max_deliveries: usize = 100, "HERALD_BAYEUX_MAX_DELIVERIES";
    /// Serve the Mercure protocol at /.well-known/mercure.
    mercure: bool = true, "HERALD_MERCURE", num_args = 0..=1, default_missing_value = "true", value_parser = clap::builder::BoolishValueParser::new();
    /// Mercure generation spoken: "1.0" (draft-08: match=, at+jwt tokens) or "0.x" (draft-07: topic= with URI templates, the mercure claim).
    mercure_generation: String = "1.0".into(), "HERALD_MERCURE_GENERATION";
    /// Let Mercure subscribers without a token subscribe (public updates only).
    mercure_anonymous: bool = false, "HERALD_MERCURE_ANONYMOUS", num_args = 0..=1, default_missing_value = "true", value_parser = clap::builder::BoolishValueParser::new();
    /// Publish Mercure subscription events and serve the subscriptions API.
    mercure_subscriptions: bool = false, "HERALD_MERCURE_SUBSCRIPTIONS", num_args = 0..=1, default_missing_value = "true", value_parser = clap::builder::BoolishValueParser::new();
    /// The hub's public URL, e.g. https://example.com/.well-known/mercure: token aud (1.0), base of relative topics ("" = from each request's Host).
    mercure_hub_url: String = String::new(), "HERALD_MERCURE_HUB_URL";
    /// Serve the RFC 9728 metadata document of the hub (1.0).
    mercure_metadata: bool = true, "HERALD_MERCURE_METADATA", num_args = 0..=1, default_missing_value = "true", value_parser = clap::builder::BoolishValueParser::new();
    /// authorization_servers listed in the Mercure metadata document.
    mercure_authorization_servers: Vec<String> = Vec::new(), "HERALD_MERCURE_AUTHORIZATION_SERVERS", value_delimiter = ',';
    /// Cookie that may carry Mercure tokens ("" = __Secure-mercure_access_token in 1.0, mercureAuthorization in 0.x).
    mercure_cookie: String = String::new(), "HERALD_MERCURE_COOKIE";
    // Operations: draining, presence, the stats feed, the admin API.
    /// Reconnection delay (SSE retry:) sent to streams ended by POST /admin/drain, in ms.
    drain_retry_ms: u32 = 1000, "HERALD_DRAIN_RETRY_MS";
    /// Publish join and leave events on $herald/presence/<topic> (coalesced per second).
    presence_events: bool = false, "HERALD_PRESENCE_EVENTS", num_args = 0..=1, default_missing_value = "true", value_parser = clap::builder::BoolishValueParser::new();
    /// Milliseconds between $herald/stats snapshots for admin subscribers (0 = off).
    stats_interval_ms: u64 = 1000, "HERALD_STATS_INTERVAL_MS";
    /// Most items one admin listing returns (a request's limit is capped to it).
    admin_page_max: usize = 1000, "HERALD_ADMIN_PAGE_MAX";
    /// Cluster mode: the shared log, redis://HOST:PORT or nats://HOST:PORT ("" = the embedded store in data_dir).
    broker: String = String::new(), "HERALD_BROKER", hide_env_values = true;
    /// Name of the shared log (Redis key prefix or JetStream stream): nodes sharing it form one cluster.
    broker_stream: String = "herald".into(), "HERALD_BROKER_STREAM";
    /// Most events the broker's stream keeps (0 = no count bound; age is retention_max_age_secs).
    broker_max_events: u64 = 1_000_000, "HERALD_BROKER_MAX_EVENTS";
    /// Longest one broker operation may take, in ms (a publish then answers 503).
    broker_timeout_ms: u64 = 5_000, "HERALD_BROKER_TIMEOUT_MS";
    /// First delay before reconnecting to the broker, in ms (doubles on each failure).
    broker_reconnect_min_ms: u64 = 100, "HERALD_BROKER_RECONNECT_MIN_MS";
    /// Longest delay between reconnection attempts, in ms.
    broker_reconnect_max_ms: u64 = 5_000, "HERALD_BROKER_RECONNECT_MAX_MS";
    /// In a cluster: how long a node's claim on delivering a webhook subscription lasts without renewal, in ms (another node takes over within it when the node dies).
    broker_webhook_lease_ms: u64 = 15_000, "HERALD_BROKER_WEBHOOK_LEASE_MS";
}

/// A setting that cannot work, with what to change.
#[derive(Debug)]
pub struct BadConfig(pub String);

impl std::error::Error for BadConfig {}

impl std::fmt::Display for BadConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// Everything `serve` needs, validated.
#[derive(Debug, Clone)]
pub struct Config {
    /// Where to listen.
    pub listen: SocketAddr,
    /// The listening socket's accept queue length.
    pub listen_backlog: u32,
    /// Where the store lives.
    pub data_dir: PathBuf,
    /// HTTP server options.
    pub server: ServerOptions,
    /// Limits on events and subscriptions.
    pub limits: Limits,
    /// Store options (retention).
    pub store: StoreOptions,
    /// Ring slots per topic.
    pub ring_capacity: usize,
    /// JSON logs.
    pub json_logs: bool,
    /// Token verification and where tokens come from.
    pub auth: AuthSettings,
    /// Cluster mode: the broker holding the shared log (`None` = embedded store).
    pub broker: Option<BrokerOptions>,
}

/// Layers the file (if any) and the overrides over the defaults, then validates.
pub fn load(file: Option<&std::path::Path>, overrides: Overrides) -> Result<Config, BadConfig> {
    let mut s = match file {
        Some(path) => {
            let text = std::fs::read_to_string(path).map_err(|e| {
                BadConfig(format!("cannot read config file {}: {e}", path.display()))
            })?;
            toml::from_str::<Settings>(&text)
                .map_err(|e| BadConfig(format!("config file {}: {e}", path.display())))?
        }
        None => Settings::default(),
    };
    s.apply(overrides);
    validate(s)
}

/// `*`, or `scheme://host[:port]` as browsers send it in `Origin`.
fn valid_origin(o: &str) -> bool {
    if o == "*" {
        return true;
    }
    let Some((scheme, authority)) = o.split_once("://") else {
        return false;
    };
    !scheme.is_empty()
        && scheme
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "+-.".contains(c))
        && !authority.is_empty()
        && !authority.contains(['/', '?', '#', ' ', '@'])
}

/// The Mercure settings, validated.
fn mercure(s: &Settings) -> Result<herald_server::protocols::mercure::MercureOptions, BadConfig> {
    use herald_server::protocols::mercure::{Generation, HUB_PATH, MercureOptions};
    let generation = match s.mercure_generation.as_str() {
        "1.0" | "1" => Generation::V1,
        "0.x" | "0" => Generation::Legacy,
        other => {
            return Err(BadConfig(format!(
                "mercure_generation = {other:?}: use \"1.0\" (draft-08) or \"0.x\" (draft-07)"
            )));
        }
    };
    let hub_url = if s.mercure_hub_url.is_empty() {
        None
    } else {
        let u = url::Url::parse(&s.mercure_hub_url)
            .ok()
            .filter(|u| matches!(u.scheme(), "http" | "https") && u.path() == HUB_PATH);
        Some(u.ok_or_else(|| {
            BadConfig(format!(
                "mercure_hub_url = {:?}: write the hub's public URL, http(s)://HOST{HUB_PATH}",
                s.mercure_hub_url
            ))
        })?)
    };
    if s.mercure_cookie.contains([';', '=', ',', ' ']) {
        return Err(BadConfig(
            "mercure_cookie must be a cookie name (no ; = , or space)".into(),
        ));
    }
    Ok(MercureOptions {
        enabled: s.mercure,
        generation,
        anonymous: s.mercure_anonymous,
        subscriptions: s.mercure_subscriptions,
        hub_url,
        metadata: s.mercure_metadata,
        authorization_servers: s.mercure_authorization_servers.clone(),
        cookie: (!s.mercure_cookie.is_empty()).then(|| s.mercure_cookie.clone()),
    })
}

fn validate(s: Settings) -> Result<Config, BadConfig> {
    let listen: SocketAddr = s.listen.parse().map_err(|_| {
        BadConfig(format!(
            "listen = {:?} is not an IP:PORT address (for example 127.0.0.1:8080)",
            s.listen
        ))
    })?;
    let positive = [
        ("heartbeat_secs", s.heartbeat_secs as usize),
        ("header_timeout_secs", s.header_timeout_secs as usize),
        ("write_timeout_secs", s.write_timeout_secs as usize),
        ("max_topic_len", s.max_topic_len),
        ("max_topics", s.max_topics),
        ("max_id_len", s.max_id_len),
        ("max_type_len", s.max_type_len),
        ("max_batch", s.max_batch),
        ("ring_capacity", s.ring_capacity),
        ("max_body_bytes", s.max_body_bytes),
        ("poll_max_events", s.poll_max_events),
        ("iframe_max_bytes", s.iframe_max_bytes),
        ("ws_max_message_bytes", s.ws_max_message_bytes),
        ("bosh_max_sessions", s.bosh_max_sessions),
        ("max_connections", s.max_connections),
        ("listen_backlog", s.listen_backlog as usize),
        ("max_connections_per_address", s.max_connections_per_address),
        ("bosh_inactivity_secs", s.bosh_inactivity_secs as usize),
        ("bayeux_max_sessions", s.bayeux_max_sessions),
        (
            "bayeux_connect_timeout_ms",
            s.bayeux_connect_timeout_ms as usize,
        ),
        ("bayeux_max_interval_ms", s.bayeux_max_interval_ms as usize),
        ("bayeux_max_messages", s.bayeux_max_messages),
        ("bayeux_max_subscriptions", s.bayeux_max_subscriptions),
        ("bayeux_max_deliveries", s.bayeux_max_deliveries),
        ("admin_page_max", s.admin_page_max),
    ];
    if let Some((name, _)) = positive.iter().find(|(_, v)| *v == 0) {
        return Err(BadConfig(format!("{name} must be greater than 0")));
    }
    if let Some(bad) = s.cors_origins.iter().find(|o| !valid_origin(o)) {
        return Err(BadConfig(format!(
            "cors_origins: {bad:?} is not an origin; write scheme://host[:port] with no path or trailing slash (e.g. https://app.example), or *"
        )));
    }
    if s.max_header_bytes < 1024 {
        return Err(BadConfig("max_header_bytes must be at least 1024".into()));
    }
    if s.ring_capacity > 1 << 20 {
        return Err(BadConfig("ring_capacity must be at most 1048576".into()));
    }
    if s.max_data_bytes > s.max_body_bytes {
        return Err(BadConfig(format!(
            "max_data_bytes ({}) must not exceed max_body_bytes ({})",
            s.max_data_bytes, s.max_body_bytes
        )));
    }
    if s.store_commit_linger_us > 100_000 {
        return Err(BadConfig(format!(
            "store_commit_linger_us = {} is too long: use at most 100000 (0.1 s; 200 is the default)",
            s.store_commit_linger_us
        )));
    }
    if s.retention_max_bytes == 0 {
        return Err(BadConfig(
            "retention_max_bytes must be greater than 0".into(),
        ));
    }
    let json_logs = match s.log_format.as_str() {
        "text" => false,
        "json" => true,
        other => {
            return Err(BadConfig(format!(
                "log_format = {other:?}: use \"text\" or \"json\""
            )));
        }
    };
    let mercure = mercure(&s)?;
    let auth = auth::validate(&s)?;
    let tls = tls::validate(&s)?;
    let webhooks = webhooks::validate(&s)?;
    let broker = broker(&s)?;
    let retention = Retention {
        max_events_per_topic: s.retention_events_per_topic,
        max_bytes: s.retention_max_bytes,
        max_age: (s.retention_max_age_secs > 0)
            .then(|| Duration::from_secs(s.retention_max_age_secs)),
    };
    Ok(Config {
        listen,
        listen_backlog: s.listen_backlog,
        data_dir: s.data_dir,
        server: ServerOptions {
            dev: s.dev,
            heartbeat: Duration::from_secs(s.heartbeat_secs),
            sse_retry_ms: s.sse_retry_ms,
            max_header_bytes: s.max_header_bytes,
            header_timeout: Duration::from_secs(s.header_timeout_secs),
            max_body_bytes: s.max_body_bytes,
            write_timeout: Duration::from_secs(s.write_timeout_secs),
            shutdown_grace: Duration::from_secs(s.shutdown_grace_secs),
            poll_timeout_max: Duration::from_secs(s.poll_timeout_max_secs),
            poll_max_events: s.poll_max_events,
            iframe_max_bytes: s.iframe_max_bytes,
            ws_max_message: s.ws_max_message_bytes,
            ws_echo: s.ws_echo,
            bosh_wait_max: Duration::from_secs(s.bosh_wait_max_secs),
            bosh_hold_max: s.bosh_hold_max,
            bosh_inactivity: Duration::from_secs(s.bosh_inactivity_secs),
            bosh_polling: Duration::from_secs(s.bosh_polling_secs),
            bosh_max_sessions: s.bosh_max_sessions,
            cors_origins: s.cors_origins.clone(),
            max_connections: s.max_connections,
            max_connections_per_address: s.max_connections_per_address,
            publish_rate_per_address: s.publish_rate_per_address,
            publish_rate_per_token: s.publish_rate_per_token,
            auth: herald_server::auth::AuthOptions {
                verifier: auth.verifier.clone(),
                sources: auth.sources.clone(),
                anonymous_subscribe: auth.anonymous_subscribe,
            },
            tls,
            webhooks,
            bayeux_max_sessions: s.bayeux_max_sessions,
            bayeux_connect_timeout: Duration::from_millis(s.bayeux_connect_timeout_ms),
            bayeux_max_interval: Duration::from_millis(s.bayeux_max_interval_ms),
            bayeux_max_messages: s.bayeux_max_messages,
            bayeux_max_subscriptions: s.bayeux_max_subscriptions,
            bayeux_max_deliveries: s.bayeux_max_deliveries,
            mercure,
            drain_retry_ms: s.drain_retry_ms,
            presence_events: s.presence_events,
            stats_interval: Duration::from_millis(s.stats_interval_ms),
            admin_page_max: s.admin_page_max,
        },
        limits: Limits {
            max_topic_len: s.max_topic_len,
            max_topics: s.max_topics,
            max_data_len: s.max_data_bytes,
            max_id_len: s.max_id_len,
            max_type_len: s.max_type_len,
            max_batch: s.max_batch,
        },
        store: StoreOptions {
            retention,
            commit_linger: Duration::from_micros(s.store_commit_linger_us),
            ..StoreOptions::default()
        },
        ring_capacity: s.ring_capacity,
        json_logs,
        auth,
        broker,
    })
}

/// The broker settings, when `broker` is set.
fn broker(s: &Settings) -> Result<Option<BrokerOptions>, BadConfig> {
    if s.broker.is_empty() {
        return Ok(None);
    }
    if !["redis://", "nats://"]
        .iter()
        .any(|p| s.broker.starts_with(p))
    {
        return Err(BadConfig(format!(
            "broker = {:?}: use redis://HOST:PORT or nats://HOST:PORT (or \"\" for the embedded store)",
            herald_broker::redacted(&s.broker)
        )));
    }
    if s.broker_timeout_ms == 0 || s.broker_reconnect_min_ms == 0 {
        return Err(BadConfig(
            "broker_timeout_ms and broker_reconnect_min_ms must be greater than 0".into(),
        ));
    }
    let ms = Duration::from_millis;
    Ok(Some(BrokerOptions {
        url: s.broker.clone(),
        stream: s.broker_stream.clone(),
        max_events: s.broker_max_events,
        max_age: (s.retention_max_age_secs > 0)
            .then(|| Duration::from_secs(s.retention_max_age_secs)),
        timeout: ms(s.broker_timeout_ms),
        reconnect_min: ms(s.broker_reconnect_min_ms),
        reconnect_max: ms(s.broker_reconnect_max_ms),
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn layers_file_then_overrides() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("h.toml");
        std::fs::write(
            &path,
            "listen = \"127.0.0.1:9000\"\nheartbeat_secs = 5\nmax_topics = 7\n",
        )
        .unwrap();
        let o = Overrides {
            heartbeat_secs: Some(2),
            ..Overrides::default()
        };
        let c = load(Some(&path), o).unwrap();
        assert_eq!(c.listen.port(), 9000);
        assert_eq!(c.server.heartbeat, Duration::from_secs(2));
        assert_eq!(c.limits.max_topics, 7);
        assert_eq!(c.ring_capacity, 512);
    }

    #[test]
    fn rejects_bad_values_with_the_setting_named() {
        let bad = |o: Overrides| load(None, o).unwrap_err().0;
        assert!(
            bad(Overrides {
                listen: Some("nope".into()),
                ..Default::default()
            })
            .contains("listen")
        );
        assert!(
            bad(Overrides {
                max_topics: Some(0),
                ..Default::default()
            })
            .contains("max_topics")
        );
        assert!(
            bad(Overrides {
                log_format: Some("xml".into()),
                ..Default::default()
            })
            .contains("log_format")
        );
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("h.toml");
        std::fs::write(&path, "no_such_setting = 1\n").unwrap();
        assert!(
            load(Some(&path), Overrides::default())
                .unwrap_err()
                .0
                .contains("no_such_setting")
        );
    }
}

#[cfg(test)]
mod broker_settings {
    use super::*;

    #[test]
    fn broker_url_is_checked_and_mapped() {
        let with = |url: &str| {
            load(
                None,
                Overrides {
                    broker: Some(url.into()),
                    broker_max_events: Some(7),
                    ..Default::default()
                },
            )
        };
        assert!(load(None, Overrides::default()).unwrap().broker.is_none());
        let b = with("redis://127.0.0.1:6379").unwrap().broker.unwrap();
        assert_eq!(
            (b.url.as_str(), b.max_events),
            ("redis://127.0.0.1:6379", 7)
        );
        assert_eq!(b.max_age, Some(Duration::from_secs(7 * 24 * 3600)));
        assert!(with("nats://127.0.0.1:4222").is_ok());
        assert!(
            with("http://127.0.0.1:6379")
                .unwrap_err()
                .0
                .contains("broker")
        );
    }
}

#[cfg(test)]
mod example_file {
    use super::*;

    /// The documented example must parse and say exactly the defaults.
    #[test]
    fn example_config_is_valid_and_matches_the_defaults() {
        let text = include_str!("../../../herald.example.toml");
        let s: Settings = toml::from_str(text).unwrap();
        assert_eq!(format!("{s:?}"), format!("{:?}", Settings::default()));
    }

    /// herald.example.toml documents every option: each setting is written
    /// out (with its default), none is left to be found in the code.
    #[test]
    fn example_config_names_every_setting() {
        let text = include_str!("../../../herald.example.toml");
        let table: toml::Table = toml::from_str(text).unwrap();
        let missing: Vec<&str> = Settings::NAMES
            .iter()
            .copied()
            .filter(|n| !table.contains_key(*n))
            .collect();
        assert!(
            missing.is_empty(),
            "herald.example.toml does not set {missing:?}"
        );
        assert!(Settings::NAMES.len() > 50, "{:?}", Settings::NAMES);
    }
}
