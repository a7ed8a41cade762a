//! Thin entry point: parse the command line, set up logging, run, and report a failure as
//! one line.

use clap::Parser;

#[tokio::main]
async fn main() -> std::process::ExitCode {
    reelforge::os::return_large_allocations();
    reelforge::os::owner_only_files();
    let cli = reelforge::cli::Cli::parse();
    reelforge::telemetry::init_logging(&cli.log_format);
    reelforge::install_crypto_provider();
    match reelforge::cli::run(cli).await {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("reelforge: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}
