//! `kluis`: the Kluis document vault (server and command line).

use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    gateway::alloc::tune();
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("kluis: error: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    runtime.block_on(run())
}

async fn run() -> ExitCode {
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
