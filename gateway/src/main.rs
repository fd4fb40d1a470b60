//! `kluis`: the Kluis document vault (server and command line).

use std::process::ExitCode;

use clap::Parser;

#[tokio::main]
async fn main() -> ExitCode {
    let cli = gateway::cli::Cli::parse();
    gateway::init_tracing();
    match gateway::cli::run(cli).await {
        Ok(code) => code,
        Err(e) => {
            eprintln!("kluis: error: {e:#}");
            ExitCode::FAILURE
        }
    }
}
