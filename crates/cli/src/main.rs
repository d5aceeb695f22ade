//! The `herald` binary: a short boot script (STYLE.md 4). Parse the command
//! line, validate config once (exit 64 on bad config), then hand over.

// A binary exports nothing; `pub` here only marks what other modules use.
#![allow(unreachable_pub)]

mod commands;
mod config;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

#[global_allocator]
static ALLOC: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

/// Exit code for a bad command line or configuration (sysexits EX_USAGE).
const EX_USAGE: u8 = 64;

/// Herald: a server-push hub.
#[derive(Parser)]
#[command(name = "herald", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the hub.
    Serve(Box<commands::serve::Args>),
    /// Publish one event.
    Pub(commands::publish::Args),
    /// Subscribe and print events as they arrive (reconnects and resumes by itself).
    Sub(commands::subscribe::Args),
    /// Mint a token for development and scripts, signed with the configured secret or --private-key.
    Token(Box<commands::token::Args>),
    /// Load-test a hub: SSE subscribers, publishing, latency, loss and server cost.
    Bench(Box<herald_bench::Args>),
}

fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            let _ = e.print();
            return if e.use_stderr() {
                ExitCode::from(EX_USAGE)
            } else {
                ExitCode::SUCCESS
            };
        }
    };
    match cli.command {
        Command::Serve(args) => commands::serve::run(*args),
        Command::Pub(args) => commands::publish::run(args),
        Command::Sub(args) => commands::subscribe::run(args),
        Command::Token(args) => commands::token::run(*args),
        Command::Bench(args) => herald_bench::run(*args),
    }
}
