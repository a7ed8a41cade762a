//! The `hls` profile (pure planning): an adaptive ladder never above the source, written by ONE
//! ffmpeg run (one decode, one encode per rung) as a master playlist, one media playlist
//! per rung and their segments, all flat in the output folder:
//! `master.m3u8`, `stream_{i}.m3u8`, `stream_{i}_{NNN}.ts`.

use serde::{Deserialize, Serialize};

use super::args::{QUIET_ARGS, SAFE_INPUT_ARGS, file_url, strings};
use super::codecs::EncodeSettings;
use super::planner::{OptionError, Paths, Plan, PlanError, PlannedRun, checked_duration};
use super::probe::MediaInfo;

/// One rung of the ladder.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rung {
    pub height: u32,
    /// Target video bitrate, kbit/s.
    pub video_kbps: u32,
}

/// The default ladder: (height, kbit/s), in the spirit of common streaming ladders.
pub const DEFAULT_LADDER: [Rung; 4] = [
    Rung {
        height: 360,
        video_kbps: 800,
    },
    Rung {
        height: 480,
        video_kbps: 1400,
    },
    Rung {
        height: 720,
        video_kbps: 2800,
    },
    Rung {
        height: 1080,
        video_kbps: 5000,
    },
];

/// Options of the `hls` profile. Unknown fields are refused.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct HlsOptions {
    /// Rung heights to offer (each must be one of the default ladder's); rungs above the
    /// source are dropped. Default: every rung up to the source.
    pub heights: Option<Vec<u32>>,
    /// Target segment length, `2..=30` seconds.
    #[serde(with = "super::units::seconds")]
    pub segment_seconds: f64,
}

impl Default for HlsOptions {
    fn default() -> Self {
        HlsOptions {
            heights: None,
            segment_seconds: 6.0,
        }
    }
}

impl HlsOptions {
    /// The profile's name, as the API spells it.
    pub const NAME: &str = "hls";

    /// The options' JSON Schema.
    pub fn schema() -> serde_json::Value {
        use serde_json::json;
        let heights: Vec<u32> = DEFAULT_LADDER.iter().map(|r| r.height).collect();
        super::schema::object(
            "An adaptive HLS ladder never above the source: a master playlist, one playlist per rung and its segments.",
            json!({
                "heights": {"type": "array", "minItems": 1,
                            "items": {"type": "integer", "enum": heights},
                            "description": "Rung heights to offer; rungs above the source are dropped. Default: every rung up to the source."},
                "segment_seconds": {"type": "number", "minimum": 2, "maximum": 30,
                                    "default": super::units::Seconds(HlsOptions::default().segment_seconds),
                                    "description": "Target segment length in seconds."}
            }),
        )
    }

    pub fn validate(&self) -> Result<(), OptionError> {
        if !(2.0..=30.0).contains(&self.segment_seconds) {
            return Err(OptionError {
                option: "segment_seconds",
                message: "must be from 2 to 30".into(),
            });
        }
        if let Some(h) = &self.heights {
            let known: Vec<u32> = DEFAULT_LADDER.iter().map(|r| r.height).collect();
            if h.is_empty() || h.iter().any(|x| !known.contains(x)) {
                return Err(OptionError {
                    option: "heights",
                    message: format!("must be a non-empty list of {known:?}"),
                });
            }
        }
        Ok(())
    }
}

/// The rungs for a source `source_height` lines tall: the asked ones not above the source;
/// a source below the smallest rung gets one rung at its own (even) height.
pub fn ladder(source_height: u32, opts: &HlsOptions) -> Vec<Rung> {
    let mut rungs: Vec<Rung> = DEFAULT_LADDER
        .iter()
        .copied()
        .filter(|r| opts.heights.as_ref().is_none_or(|h| h.contains(&r.height)))
        .filter(|r| r.height <= source_height)
        .collect();
    if rungs.is_empty() {
        let height = (source_height.max(2) / 2) * 2;
        let share = f64::from(height) / 360.0;
        rungs.push(Rung {
            height,
            video_kbps: ((800.0 * share) as u32).max(150),
        });
    }
    rungs
}

/// Plans the `hls` profile with the default [`EncodeSettings`]: one run whose `output` is
/// the master playlist (every file it writes to `out_dir` is an output of the task), and
/// the result `{"master": "master.m3u8", "ladder": [{"height", "video_kbps"}, ...]}`. The
/// file names are fixed, so `stem` is not used.
pub fn plan_hls(
    info: &MediaInfo,
    opts: &HlsOptions,
    paths: &Paths,
    _stem: &str,
) -> Result<Plan, PlanError> {
    let (run, rungs) = ladder_run(info, opts, paths, &EncodeSettings::default())?;
    let ladder: Vec<serde_json::Value> = rungs
        .iter()
        .map(|r| serde_json::json!({"height": r.height, "video_kbps": r.video_kbps}))
        .collect();
    Ok(Plan {
        width: 0,
        height: 0,
        runs: vec![run],
        result: Some(serde_json::json!({"master": "master.m3u8", "ladder": ladder})),
    })
}

/// The single ffmpeg run (one decode, one encode per rung) and its rungs.
pub fn ladder_run(
    info: &MediaInfo,
    opts: &HlsOptions,
    paths: &Paths,
    encode: &EncodeSettings,
) -> Result<(PlannedRun, Vec<Rung>), PlanError> {
    opts.validate()?;
    let video = info.video.as_ref().ok_or(PlanError::NoVideo)?;
    checked_duration(info.duration)?;
    let rungs = ladder(video.display_height(), opts);
    let has_audio = info.audio.is_some();
    let mut argv = strings(&QUIET_ARGS).collect::<Vec<_>>();
    argv.push("-y".into());
    argv.extend(strings(&SAFE_INPUT_ARGS));
    argv.push("-i".into());
    argv.push(file_url(&paths.input).to_string_lossy().into_owned());
    argv.extend([
        "-filter_complex".to_string(),
        ladder_graph(video.index, &rungs),
    ]);
    for i in 0..rungs.len() {
        argv.extend(["-map".to_string(), format!("[v{i}]")]);
        if let Some(a) = &info.audio {
            argv.extend(["-map".to_string(), format!("0:{}", a.index)]);
        }
    }
    argv.extend(video_args(&rungs, encode, opts.segment_seconds));
    if has_audio {
        argv.extend(strings(&["-c:a", "aac", "-b:a"]));
        argv.push(format!("{}k", encode.audio_bitrate_kbps));
        argv.extend(strings(&["-ar", "48000", "-ac", "2"]));
    }
    argv.extend(muxer_args(
        rungs.len(),
        has_audio,
        opts.segment_seconds,
        paths,
    ));
    let run = PlannedRun {
        argv,
        output: paths.out_dir.join("master.m3u8"),
        output_name: "master.m3u8".into(),
        expected_duration: info.duration,
    };
    Ok((run, rungs))
}

/// The input's video split once per rung, each scaled to the rung's height: `[v{i}]`.
fn ladder_graph(video_index: usize, rungs: &[Rung]) -> String {
    let mut graph = format!("[0:{video_index}]split={}", rungs.len());
    for i in 0..rungs.len() {
        graph.push_str(&format!("[s{i}]"));
    }
    for (i, r) in rungs.iter().enumerate() {
        graph.push_str(&format!(
            ";[s{i}]scale=-2:{},setsar=1,format=yuv420p[v{i}]",
            r.height
        ));
    }
    graph
}

/// x264 for every rung at its bitrate (bounded by a VBV buffer), with a keyframe at
/// every segment boundary.
fn video_args(rungs: &[Rung], encode: &EncodeSettings, segment_seconds: f64) -> Vec<String> {
    let mut argv: Vec<String> = strings(&["-map_metadata", "-1", "-c:v", "libx264", "-preset"])
        .chain([encode.preset.clone()])
        .chain(strings(&["-sc_threshold", "0"]))
        .collect();
    for (i, r) in rungs.iter().enumerate() {
        argv.extend([
            format!("-b:v:{i}"),
            format!("{}k", r.video_kbps),
            format!("-maxrate:v:{i}"),
            format!("{}k", r.video_kbps * 107 / 100),
            format!("-bufsize:v:{i}"),
            format!("{}k", r.video_kbps * 3 / 2),
        ]);
    }
    argv.extend([
        "-force_key_frames".to_string(),
        format!("expr:gte(t,n_forced*{segment_seconds})"),
    ]);
    argv
}

/// The HLS muxer: VOD playlists, one variant stream per rung, flat in `out_dir`.
fn muxer_args(rungs: usize, has_audio: bool, segment_seconds: f64, paths: &Paths) -> Vec<String> {
    let out = |name: &str| paths.out_dir.join(name).to_string_lossy().into_owned();
    let stream_map: Vec<String> = (0..rungs)
        .map(|i| {
            if has_audio {
                format!("v:{i},a:{i}")
            } else {
                format!("v:{i}")
            }
        })
        .collect();
    vec![
        "-f".to_string(),
        "hls".into(),
        "-hls_time".into(),
        segment_seconds.to_string(),
        "-hls_playlist_type".into(),
        "vod".into(),
        "-hls_flags".into(),
        "independent_segments".into(),
        "-hls_segment_filename".into(),
        out("stream_%v_%03d.ts"),
        "-master_pl_name".into(),
        "master.m3u8".into(),
        "-var_stream_map".into(),
        stream_map.join(" "),
        "-progress".into(),
        "pipe:1".into(),
        "-nostats".into(),
        out("stream_%v.m3u8"),
    ]
}

#[cfg(test)]
mod tests;
