//! `herald pub TOPIC DATA`: publish one event, print its id.

use std::process::ExitCode;

use herald_client::{Client, PublishOptions};

/// Arguments of `herald pub`.
#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(flatten)]
    hub: super::HubArg,
    /// Event type.
    #[arg(long = "type")]
    kind: Option<String>,
    /// Your own event id (unique); by default the hub assigns one.
    #[arg(long)]
    id: Option<String>,
    /// Topic to publish to.
    topic: String,
    /// The event's data ("-" reads it from standard input).
    data: String,
}

/// Runs `herald pub`.
pub fn run(args: Args) -> ExitCode {
    let data = if args.data == "-" {
        match std::io::read_to_string(std::io::stdin()) {
            Ok(d) => d,
            Err(e) => {
                eprintln!("herald pub: cannot read standard input: {e}");
                return ExitCode::FAILURE;
            }
        }
    } else {
        args.data
    };
    let opts = PublishOptions {
        kind: args.kind,
        id: args.id,
        retry: None,
    };
    let result = super::client_runtime()
        .map_err(|e| e.to_string())
        .and_then(|rt| {
            rt.block_on(async {
                let client = Client::with_token(&args.hub.hub, args.hub.token.as_deref())
                    .map_err(|e| e.to_string())?;
                client
                    .publish(&args.topic, &data, &opts)
                    .await
                    .map_err(|e| e.to_string())
            })
        });
    match result {
        Ok(id) => {
            println!("{id}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("herald pub: {e}");
            ExitCode::FAILURE
        }
    }
}
