//! `chunk_plan INPUT WORK_DIR OUT_DIR OPTIONS_JSON THRESHOLD LENGTH`: the `convert` profile's
//! plans for INPUT, whole and chunked, as `bench/chunks` runs them. Probes INPUT with
//! ffprobe (the service's argv), lists its video packets, and prints one JSON object:
//! `{"whole": ARGV, "chunks": [ARGV…], "audio": ARGV|null, "join": ARGV, "list": TEXT,
//! "seconds": [chunk seconds…]}` (`chunks` empty when the input is not split).

use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode};

use reelforge::domain::Profile;
use reelforge::media::convert::{ConvertOptions, plan_convert};
use reelforge::media::probe::{ffprobe_args, parse_ffprobe};
use reelforge::media::{ChunkSettings, Paths, VideoFrames, chunkable_encode, chunks};

fn ffprobe(args: Vec<std::ffi::OsString>) -> Result<Vec<u8>, String> {
    let out = Command::new("ffprobe")
        .args(args)
        .output()
        .map_err(|e| format!("ffprobe: {e}"))?;
    if !out.status.success() {
        return Err(String::from_utf8_lossy(&out.stderr).into_owned());
    }
    Ok(out.stdout)
}

fn plans(args: &[String]) -> Result<serde_json::Value, String> {
    let [input, work, out_dir, options, threshold, length] = args else {
        return Err(
            "usage: chunk_plan INPUT WORK_DIR OUT_DIR OPTIONS_JSON THRESHOLD LENGTH".to_owned(),
        );
    };
    let input = PathBuf::from(input);
    let options: ConvertOptions = serde_json::from_str(options).map_err(|e| e.to_string())?;
    let number = |s: &str| s.parse::<f64>().map_err(|e| format!("{s}: {e}"));
    let settings = ChunkSettings {
        threshold: number(threshold)?,
        length: number(length)?,
    };
    let info = parse_ffprobe(&ffprobe(ffprobe_args(&input))?).map_err(|e| e.to_string())?;
    let paths = Paths {
        input: input.clone(),
        out_dir: PathBuf::from(out_dir),
        logo: None,
    };
    let whole = plan_convert(&info, &options, &paths, "clip").map_err(|e| e.to_string())?;
    let profile = Profile::Convert(options);
    let chunkable = chunkable_encode(&profile, &info, &settings).map_err(|e| e.to_string())?;
    let chunked = match chunkable {
        Some(c) => {
            let packets = ffprobe(chunks::packet_args(&input, c.video_index()))?;
            let frames = VideoFrames::parse(&packets);
            c.plan(
                &frames,
                &settings,
                &input,
                Path::new(work),
                Path::new(out_dir),
                "clip",
            )
            .map_err(|e| e.to_string())?
        }
        None => None,
    };
    let mut json = serde_json::json!({ "whole": whole.runs[0].argv, "chunks": [] });
    if let Some(plan) = chunked {
        let argvs: Vec<&Vec<String>> = plan.chunks.iter().map(|c| &c.argv).collect();
        let seconds: Vec<f64> = plan.chunks.iter().map(|c| c.expected_duration).collect();
        json["chunks"] = serde_json::json!(argvs);
        json["seconds"] = serde_json::json!(seconds);
        json["audio"] = serde_json::json!(plan.audio.map(|a| a.argv));
        json["join"] = serde_json::json!(plan.join.argv);
        json["list"] = serde_json::json!(plan.list);
    }
    Ok(json)
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match plans(&args) {
        Ok(json) => {
            println!("{json}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("chunk_plan: {e}");
            ExitCode::from(2)
        }
    }
}
