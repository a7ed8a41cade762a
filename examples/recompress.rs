//! `recompress SRC FORMAT WORK_DIR OUT`: the archive profile's recompression,
//! as the benchmark runs it (default limits, no cancellation).

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::atomic::AtomicBool;
use std::time::Instant;

use reelforge::archive::{ArchiveFormat, ExtractLimits, recompress};

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [src, format, work, out] = args.as_slice() else {
        eprintln!("usage: recompress SRC FORMAT WORK_DIR OUT");
        return ExitCode::from(2);
    };
    let format: ArchiveFormat = match format.parse() {
        Ok(f) => f,
        Err(e) => {
            eprintln!("{format}: {e}");
            return ExitCode::from(2);
        }
    };
    let limits = ExtractLimits::default();
    let start = Instant::now();
    match recompress(
        &PathBuf::from(src),
        format,
        &PathBuf::from(work),
        &PathBuf::from(out),
        &limits,
        &AtomicBool::new(false),
    ) {
        Ok(summary) => {
            println!(
                "entries={} files={} dirs={} bytes={} seconds={:.3}",
                summary.entries,
                summary.files,
                summary.dirs,
                summary.total_bytes,
                start.elapsed().as_secs_f64()
            );
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("{}: {e}", e.code());
            ExitCode::FAILURE
        }
    }
}
