//! `herald serve`: validate config, open the store (or the broker's shared
//! log in cluster mode), serve until a signal,
//! drain with a deadline, flush the store, exit.

use std::io::Write;
use std::process::ExitCode;
use std::sync::Arc;

use herald_core::{Fanout, Hub, Log};
use herald_server::Server;
use herald_store::RedbLog;
use tokio_util::sync::CancellationToken;

use crate::config::{self, Config, Overrides};

/// Exit code when the store cannot be opened (sysexits EX_IOERR).
const EX_IOERR: u8 = 74;
/// Exit code when the broker does not answer (sysexits EX_UNAVAILABLE).
const EX_UNAVAILABLE: u8 = 69;

/// Arguments of `herald serve`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// TOML configuration file (see herald.example.toml); flags and HERALD_* variables override it.
    #[arg(long, env = "HERALD_CONFIG")]
    config: Option<std::path::PathBuf>,
    #[command(flatten)]
    overrides: Overrides,
}

/// Runs `herald serve`.
pub fn run(args: Args) -> ExitCode {
    let config = match config::load(args.config.as_deref(), args.overrides) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("herald: bad configuration: {e}");
            return ExitCode::from(crate::EX_USAGE);
        }
    };
    init_tracing(config.json_logs);
    let rt = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("herald: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    rt.block_on(serve(config))
}

fn init_tracing(json: bool) {
    let filter = tracing_subscriber::EnvFilter::try_from_env("HERALD_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    if json {
        builder.json().init();
    } else {
        builder.init();
    }
}

async fn serve(config: Config) -> ExitCode {
    let fanout = Arc::new(Fanout::new(config.ring_capacity));
    // Webhook subscriptions live in the history file, beside the events; in a
    // cluster, in the broker, shared by every node (docs/OPERATIONS.md).
    let (log, webhook_store): (Arc<dyn Log>, Arc<dyn herald_core::WebhookStore>) =
        match &config.broker {
            None => match RedbLog::open(&config.data_dir, config.store.clone(), fanout.clone()) {
                Ok(log) => (log.clone(), log),
                Err(e) => {
                    eprintln!("herald: cannot open the store: {e}");
                    return ExitCode::from(EX_IOERR);
                }
            },
            Some(broker) => match herald_broker::open(broker.clone(), fanout.clone()).await {
                Ok(log) => match herald_broker::open_webhook_store(broker).await {
                    Ok(store) => (log, store),
                    Err(e) => {
                        eprintln!("herald: cannot open the shared webhook subscriptions: {e}");
                        log.close().await;
                        return ExitCode::from(EX_UNAVAILABLE);
                    }
                },
                Err(e) => {
                    eprintln!("herald: cannot open the shared log: {e}");
                    return ExitCode::from(EX_UNAVAILABLE);
                }
            },
        };
    let listener = match listen(config.listen, config.listen_backlog) {
        Ok(l) => l,
        Err(e) => {
            eprintln!("herald: cannot listen on {}: {e}", config.listen);
            log.close().await;
            return ExitCode::from(EX_IOERR);
        }
    };
    let hub = Hub::new(log.clone(), fanout.clone(), config.limits.clone());
    let shutdown = CancellationToken::new();
    let server = Server::with_store(
        listener,
        hub,
        config.server.clone(),
        shutdown.clone(),
        webhook_store,
    );
    let addr = match server.local_addr() {
        Ok(a) => a,
        Err(e) => {
            eprintln!("herald: {e}");
            return ExitCode::FAILURE;
        }
    };
    match &config.auth.verifier {
        Some(v) => tracing::info!(
            algorithms = ?v.accepted_algorithms(),
            anonymous_subscribe = config.auth.anonymous_subscribe,
            "token verification keys loaded"
        ),
        None if !config.server.dev => tracing::warn!(
            anonymous_subscribe = config.auth.anonymous_subscribe,
            "no token verification key configured (jwt_secret, jwt_public_keys, jwks_file, jwks_url): nobody can publish"
        ),
        None => {}
    }
    if config.server.dev {
        tracing::warn!(
            "DEVELOPMENT MODE: anyone can publish and subscribe to every topic. Never run --dev in production."
        );
    }
    if config.server.webhooks.allow_private {
        tracing::warn!(
            "webhook_allow_private is on: webhook callbacks and WebSub topic URLs may reach loopback and private addresses"
        );
    }
    if config.server.ws_echo {
        tracing::warn!("GET /ws/echo is on: a WebSocket echo for conformance suites only");
    }
    let head = log.last_seq();
    let history = match &config.broker {
        Some(b) => herald_broker::redacted(&b.url),
        None => config.data_dir.display().to_string(),
    };
    tracing::info!(%addr, %history, epoch = format!("{:x}", log.epoch()), last_seq = head, "herald started");
    let scheme = match &config.server.tls {
        Some(tls) => {
            tracing::info!(
                cert = %tls.cert_path().display(),
                reload_secs = tls.reload_interval().as_secs(),
                "TLS on: ALPN h2, http/1.1; the certificate reloads when its files change or on SIGHUP"
            );
            "https"
        }
        None => "http",
    };
    {
        let mut out = std::io::stdout().lock();
        let _ = writeln!(out, "herald: listening on {scheme}://{addr}");
        let _ = out.flush();
    }
    if let Some(verifier) = config.auth.verifier.clone() {
        // Keeps JWKS keys fresh (returns at once when there is no JWKS).
        tokio::spawn(verifier.run_refresh(shutdown.clone()));
    }
    tokio::spawn(watch_signals(shutdown));
    let drained = server.run().await;
    if !drained {
        tracing::warn!("shutdown deadline passed with connections still open; closing them");
    }
    fanout.close();
    log.close().await;
    tracing::info!("herald stopped");
    ExitCode::SUCCESS
}

/// The listening socket, with `backlog` as its accept queue (tokio's own
/// `bind` fixes it at 1,024, which a reconnect storm overflows).
fn listen(addr: std::net::SocketAddr, backlog: u32) -> std::io::Result<tokio::net::TcpListener> {
    let socket = if addr.is_ipv4() {
        tokio::net::TcpSocket::new_v4()?
    } else {
        tokio::net::TcpSocket::new_v6()?
    };
    // As tokio's `bind` does: a restarted hub can take its port back at once.
    #[cfg(unix)]
    socket.set_reuseaddr(true)?;
    socket.bind(addr)?;
    socket.listen(backlog)
}

/// Cancels `shutdown` on SIGINT or SIGTERM; a second signal exits at once.
async fn watch_signals(shutdown: CancellationToken) {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        let (Ok(mut term), Ok(mut int)) = (
            signal(SignalKind::terminate()),
            signal(SignalKind::interrupt()),
        ) else {
            tracing::error!("cannot install signal handlers");
            return;
        };
        tokio::select! { _ = term.recv() => {}, _ = int.recv() => {} }
        tracing::info!("signal received: shutting down (send it again to exit at once)");
        shutdown.cancel();
        tokio::select! { _ = term.recv() => {}, _ = int.recv() => {} }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
        shutdown.cancel();
        let _ = tokio::signal::ctrl_c().await;
    }
    tracing::warn!("second signal: exiting without draining");
    std::process::exit(1);
}
