//! One module per subcommand.

pub mod publish;
pub mod serve;
pub mod subscribe;
pub mod token;

/// A runtime for the client commands.
pub fn client_runtime() -> std::io::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
}

/// The hub URL flag shared by the client commands.
#[derive(Debug, clap::Args)]
pub struct HubArg {
    /// The hub's base URL.
    #[arg(long, env = "HERALD_URL", default_value = "http://127.0.0.1:8080")]
    pub hub: String,
    /// Token sent as Authorization: Bearer (mint one with `herald token`).
    #[arg(long, env = "HERALD_TOKEN", hide_env_values = true)]
    pub token: Option<String>,
}
