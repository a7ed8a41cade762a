//! Thin entry point: parse the command line, set up logging, run, and report a failure as
//! one line.

use clap::Parser;

#[tokio::main]
async fn main() -> std::process::ExitCode {
    reelforge::os::return_large_allocations();
    let cli = reelforge::cli::Cli::parse();
    if cli.command.is_service() {
        reelforge::os::owner_only_files();
    }
    reelforge::telemetry::init_logging(&cli.log_format);
    reelforge::install_crypto_provider();
    match reelforge::cli::run(cli).await {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("reelforge: {e:#}");
            // A client command's failure says what kind it was (`reelforge --help`).
            match e.downcast_ref::<reelforge::client::ClientError>() {
                Some(c) => std::process::ExitCode::from(c.exit as u8),
                None => std::process::ExitCode::FAILURE,
            }
        }
    }
}
