//! `herald sub TOPIC...`: print events as they arrive; reconnect and resume.

use std::io::Write;
use std::process::ExitCode;

use herald_client::{Client, Transport};

/// The `--transport` values.
#[derive(Debug, Clone, Copy, clap::ValueEnum)]
enum TransportArg {
    /// Server-Sent Events.
    Sse,
    /// Long-polling.
    Poll,
    /// WebSocket.
    Ws,
}

/// Arguments of `herald sub`.
#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(flatten)]
    hub: super::HubArg,
    /// Resume after this event id (replays what came after it).
    #[arg(long)]
    last_event_id: Option<String>,
    /// Print each event as a JSON line ({"id","type","data"}) instead of text.
    #[arg(long)]
    json: bool,
    /// Exit after this many events.
    #[arg(long)]
    count: Option<u64>,
    /// How to receive events: sse, poll (long-polling) or ws (WebSocket).
    #[arg(long, value_enum, default_value = "sse")]
    transport: TransportArg,
    /// Topics to subscribe to.
    #[arg(required = true)]
    topics: Vec<String>,
}

/// Runs `herald sub`.
pub fn run(args: Args) -> ExitCode {
    let rt = match super::client_runtime() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("herald sub: {e}");
            return ExitCode::FAILURE;
        }
    };
    let result: Result<(), String> = rt.block_on(async {
        let client = Client::with_token(&args.hub.hub, args.hub.token.as_deref())
            .map_err(|e| e.to_string())?;
        let transport = match args.transport {
            TransportArg::Sse => Transport::Sse,
            TransportArg::Poll => Transport::Poll,
            TransportArg::Ws => Transport::Ws,
        };
        let mut events = client.subscribe(&args.topics, args.last_event_id.clone(), transport);
        let mut seen = 0u64;
        while args.count.is_none_or(|c| seen < c) {
            let ev = tokio::select! {
                r = events.next() => r.map_err(|e| e.to_string())?,
                _ = tokio::signal::ctrl_c() => return Ok(()),
            };
            seen += 1;
            let line = if args.json {
                serde_json::json!({"id": ev.id, "type": ev.kind, "data": ev.data}).to_string()
            } else {
                format!("{} {} {}", ev.id, ev.kind, ev.data)
            };
            let mut out = std::io::stdout().lock();
            writeln!(out, "{line}")
                .and_then(|()| out.flush())
                .map_err(|e| e.to_string())?;
        }
        Ok(())
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("herald sub: {e}");
            ExitCode::FAILURE
        }
    }
}
