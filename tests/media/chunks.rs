//! Chunked encodes with the real ffmpeg: a convert split at the source's keyframes, its
//! chunks encoded apart (in reverse order, as workers may finish them), the audio encoded
//! once, the join by stream copy; checked against the same encode run whole: frame count,
//! duration within one frame, the same strictly increasing timestamps, the same audio
//! samples, and per-frame SSIM at the seams no worse than 0.005 below the median.

use std::path::{Path, PathBuf};
use std::process::Command;

use reelforge::domain::Profile;
use reelforge::media::codecs::Quality;
use reelforge::media::convert::{ConvertOptions, plan_convert};
use reelforge::media::formats::Format;
use reelforge::media::{ChunkSettings, ChunkedPlan, Paths, VideoFrames};
use reelforge::media::{chunkable_encode, chunks};
use reelforge_testkit::plans::{ffmpeg, probe, run_ffmpeg, scratch};

use crate::clip;

/// 20 s, 320x180, 30 fps, a keyframe every 2 s exactly; H.264 + AAC stereo 48 kHz.
fn source() -> PathBuf {
    clip(
        "gop2s_20s.mp4",
        "-f lavfi -i testsrc2=s=320x180:r=30:d=20 -f lavfi -i sine=f=440:r=48000:d=20 -ac 2 \
         -c:v libx264 -preset ultrafast -g 60 -keyint_min 60 -sc_threshold 0 -pix_fmt yuv420p \
         -c:a aac -shortest",
    )
}

/// Short thresholds, so a 20 s clip is split in three (cuts before 6 s and 12 s).
const SETTINGS: ChunkSettings = ChunkSettings {
    threshold: 5.0,
    length: 6.0,
};

fn ffprobe(args: &[&str], path: &Path) -> Vec<String> {
    let out = Command::new("ffprobe")
        .args(["-v", "error"])
        .args(args)
        .args(["-of", "csv=p=0"])
        .arg(path)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| l.trim().trim_end_matches(',').to_owned())
        .filter(|l| !l.is_empty())
        .collect()
}

/// Presentation times of the video frames, decoded, in output order.
fn video_times(path: &Path) -> Vec<f64> {
    let lines = ffprobe(
        &["-select_streams", "v:0", "-show_entries", "frame=pts_time"],
        path,
    );
    lines.iter().map(|l| l.parse().unwrap()).collect()
}

/// Decoding times of the video packets, in file order.
fn video_dts(path: &Path) -> Vec<f64> {
    let lines = ffprobe(
        &["-select_streams", "v:0", "-show_entries", "packet=dts_time"],
        path,
    );
    lines.iter().map(|l| l.parse().unwrap()).collect()
}

fn audio_samples(path: &Path) -> u64 {
    let lines = ffprobe(
        &[
            "-select_streams",
            "a:0",
            "-show_entries",
            "frame=nb_samples",
        ],
        path,
    );
    lines.iter().map(|l| l.parse::<u64>().unwrap()).sum()
}

/// Per-frame SSIM (All) of `a` against `b`, frame by frame from each one's start.
fn ssim(a: &Path, b: &Path) -> Vec<f64> {
    let stats = a.with_extension("ssim.txt");
    let graph = format!(
        "[0:v]setpts=PTS-STARTPTS[a];[1:v]setpts=PTS-STARTPTS[b];[a][b]ssim=stats_file={}",
        stats.display()
    );
    // testkit's ffmpeg splits on whitespace: temp paths and the graph have none.
    ffmpeg(&format!(
        "-i {} -i {} -lavfi {graph} -f null -",
        a.display(),
        b.display()
    ));
    std::fs::read_to_string(&stats)
        .unwrap()
        .lines()
        .filter_map(|l| l.split_once("All:"))
        .map(|(_, v)| v.split_whitespace().next().unwrap().parse().unwrap())
        .collect()
}

/// The chunked plan of `opts` over `input`, run: chunks in reverse order, then the audio,
/// then the join. Returns the plan and the joined output.
fn run_chunked(input: &Path, opts: &ConvertOptions, dir: &Path, out_dir: &Path) -> ChunkedPlan {
    let info = probe(input);
    let profile = Profile::Convert(opts.clone());
    let chunkable = chunkable_encode(&profile, &info, &SETTINGS)
        .unwrap()
        .expect("a 20 s encode over a 5 s threshold is chunkable");
    let packets = Command::new("ffprobe")
        .args(chunks::packet_args(input, chunkable.video_index()))
        .output()
        .unwrap();
    assert!(packets.status.success());
    let frames = VideoFrames::parse(&packets.stdout);
    let work = dir.join("chunks");
    std::fs::create_dir_all(&work).unwrap();
    let plan = chunkable
        .plan(&frames, &SETTINGS, input, &work, out_dir, "clip")
        .unwrap()
        .expect("keyframes every 2 s give cuts");
    for chunk in plan.chunks.iter().rev() {
        run_ffmpeg(&chunk.argv, dir);
    }
    if let Some(audio) = &plan.audio {
        run_ffmpeg(&audio.argv, dir);
    }
    std::fs::write(work.join(chunks::JOIN_LIST), &plan.list).unwrap();
    run_ffmpeg(&plan.join.argv, dir);
    plan
}

fn run_whole(input: &Path, opts: &ConvertOptions, dir: &Path) -> PathBuf {
    let out_dir = dir.join("whole");
    std::fs::create_dir_all(&out_dir).unwrap();
    let paths = Paths {
        input: input.to_path_buf(),
        out_dir,
        logo: None,
    };
    let plan = plan_convert(&probe(input), opts, &paths, "clip").unwrap();
    run_ffmpeg(&plan.runs[0].argv, dir);
    plan.runs[0].output.clone()
}

/// The frame index where each chunk after the first starts in the joined video.
fn seams(plan: &ChunkedPlan) -> Vec<usize> {
    let mut at = 0;
    let mut seams = vec![];
    for chunk in &plan.chunks[..plan.chunks.len() - 1] {
        at += video_times(&chunk.output).len();
        seams.push(at);
    }
    seams
}

fn median(values: &[f64]) -> f64 {
    let mut sorted = values.to_vec();
    sorted.sort_by(f64::total_cmp);
    sorted[sorted.len() / 2]
}

/// Every check of the chunked output against the whole one; `reference` is what SSIM
/// compares both with (the source, or the whole encode when sizes differ).
fn check_join(plan: &ChunkedPlan, whole: &Path, reference: &Path, fps: f64) {
    let joined = &plan.join.output;
    let (times, whole_times) = (video_times(joined), video_times(whole));
    assert_eq!(times.len(), whole_times.len(), "frame count");
    let frame = 1.0 / fps;
    let duration = |t: &[f64]| t.last().unwrap() - t[0] + frame;
    assert!(
        (duration(&times) - duration(&whole_times)).abs() <= frame + 1e-6,
        "duration {} vs {}",
        duration(&times),
        duration(&whole_times)
    );
    assert!(times.windows(2).all(|w| w[1] > w[0]), "pts increase");
    // Each frame at the whole encode's time, both counted from the first frame; within
    // 2 ms, as WebM keeps milliseconds (a repeated or lost frame would be 33 ms off).
    for (i, (a, b)) in times.iter().zip(&whole_times).enumerate() {
        let (a, b) = (a - times[0], b - whole_times[0]);
        assert!((a - b).abs() < 0.002, "frame {i}: {a} vs {b}");
    }
    let dts = video_dts(joined);
    assert!(dts.windows(2).all(|w| w[1] > w[0]), "dts increase");
    assert_eq!(audio_samples(joined), audio_samples(whole), "audio samples");

    let seams = seams(plan);
    assert_eq!(seams.len(), plan.chunks.len() - 1);
    let scores = ssim(joined, reference);
    assert_eq!(scores.len(), times.len());
    let floor = median(&scores) - 0.005;
    for &seam in &seams {
        for i in [seam - 1, seam] {
            assert!(
                scores[i] >= floor,
                "frame {i} at a seam: SSIM {} < {floor}",
                scores[i]
            );
        }
    }
    // A duplicated or dropped frame would shift every later frame against the
    // reference: the moving test pattern would collapse SSIM after the seam.
    let whole_scores = ssim(whole, reference);
    let (a, b) = (median(&scores), median(&whole_scores));
    assert!((a - b).abs() < 0.01, "median SSIM {a} vs whole {b}");
}

#[test]
fn a_chunked_mp4_convert_joins_frame_exact() {
    let input = source();
    let (dir, out_dir) = scratch();
    let mut opts = ConvertOptions::new(Format::Mp4);
    opts.quality = Some(Quality::Medium);
    let plan = run_chunked(&input, &opts, dir.path(), &out_dir);
    assert_eq!(plan.chunks.len(), 3);
    let frames: Vec<usize> = plan
        .chunks
        .iter()
        .map(|c| video_times(&c.output).len())
        .collect();
    assert_eq!(frames, [180, 180, 240], "cuts just before 6 s and 12 s");
    let whole = run_whole(&input, &opts, dir.path());
    check_join(&plan, &whole, &input, 30.0);
}

#[test]
fn a_chunked_trimmed_scaled_webm_joins_frame_exact() {
    let input = source();
    let (dir, out_dir) = scratch();
    let mut opts = ConvertOptions::new(Format::Webm);
    opts.max_height = Some(144);
    opts.start = Some(1.5);
    opts.end = Some(17.0);
    let plan = run_chunked(&input, &opts, dir.path(), &out_dir);
    assert_eq!(plan.chunks.len(), 2, "cut before 8 s; 14 s would leave 3 s");
    let whole = run_whole(&input, &opts, dir.path());
    // The source's frames of the window, at the output's size, kept without loss.
    let reference = dir.path().join("reference.mkv");
    ffmpeg(&format!(
        "-ss 1.5 -to 17 -i {} -vf scale=256:144 -c:v libx264 -qp 0 -an {}",
        input.display(),
        reference.display()
    ));
    check_join(&plan, &whole, &reference, 30.0);
}
