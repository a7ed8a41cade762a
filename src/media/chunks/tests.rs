use super::super::codecs::{Quality, Rate};
use super::super::compress::{CompressOptions, compress_job};
use super::super::convert::{ConvertOptions, convert_job};
use super::super::testutil::{arg_after, fixture, has_flag};
use super::super::{FORBIDDEN_DEMUXERS, INPUT_FORMAT_WHITELIST};
use super::*;

/// `seconds` of `fps` frames, a keyframe every `gop` frames, listed as ffprobe does
/// (decode order: each B-frame pair after the frame it precedes).
fn packets(seconds: u32, fps: u32, gop: u32) -> String {
    let mut csv = String::new();
    let n = seconds * fps;
    let mut order: Vec<u32> = (0..n).collect();
    for pair in order.chunks_mut(3) {
        pair.rotate_right(1);
    }
    for i in order {
        let key = if i % gop == 0 { "K_" } else { "__" };
        csv.push_str(&format!("{:.6},{key}\n", f64::from(i) / f64::from(fps)));
        if i == 7 {
            csv.push_str("\nN/A,__\n");
        }
    }
    csv
}

fn frames() -> VideoFrames {
    VideoFrames::parse(packets(20, 30, 60).as_bytes())
}

fn mp4_job() -> Job {
    let mut opts = ConvertOptions::new(Format::Mp4);
    opts.quality = Some(Quality::Medium);
    convert_job(&fixture("long"), &opts).unwrap()
}

fn plan(job: &Job, cuts: &[f64]) -> ChunkedPlan {
    let mut bounds = vec![job.start];
    bounds.extend(cuts.iter().map(|c| Some(*c)));
    bounds.push(job.end);
    plan_chunked(
        job,
        &bounds,
        Path::new("/scratch/t1/input"),
        Path::new("/scratch/t1/chunks"),
        Path::new("/scratch/t1/out"),
        "My clip",
    )
    .unwrap()
}

fn close(a: f64, b: f64) -> bool {
    (a - b).abs() < 1e-6
}

#[test]
fn packets_are_read_in_presentation_order() {
    let frames = frames();
    assert_eq!(
        frames.len(),
        600,
        "the N/A line and the blank line are skipped"
    );
    let times: Vec<f64> = frames.frames.iter().map(|f| f.0).collect();
    assert!(times.windows(2).all(|w| w[0] < w[1]));
    let keys = frames.frames.iter().filter(|f| f.1).count();
    assert_eq!(keys, 10);
    assert!(VideoFrames::parse(b"garbage\n,\n").is_empty());
}

#[test]
fn cuts_fall_between_a_keyframe_and_the_frame_before_it() {
    let cuts = frames().cut_points(0.0, 20.0, 6.0);
    assert_eq!(cuts.len(), 2, "{cuts:?}");
    // Keyframes at 6 s and 12 s; the next one (18 s) would leave a 2 s chunk.
    assert!(close(cuts[0], (5.966667 + 6.0) / 2.0), "{cuts:?}");
    assert!(close(cuts[1], (11.966667 + 12.0) / 2.0), "{cuts:?}");
}

#[test]
fn a_chunk_waits_for_the_next_keyframe() {
    // Keyframes every 2 s: a 5 s length ends chunks at 6 s, then 12 s (6 s after 6 s);
    // 18 s would leave a 2 s chunk, under half the length.
    let cuts = frames().cut_points(0.0, 20.0, 5.0);
    let keyframes: Vec<f64> = cuts.iter().map(|c| c.ceil()).collect();
    assert_eq!(keyframes, [6.0, 12.0]);
    let cuts = frames().cut_points(0.0, 21.0, 5.0);
    assert_eq!(
        cuts.iter().map(|c| c.ceil()).collect::<Vec<_>>(),
        [6.0, 12.0, 18.0]
    );
}

#[test]
fn cuts_stay_inside_a_trimmed_window() {
    let cuts = frames().cut_points(3.0, 15.0, 4.0);
    let keyframes: Vec<f64> = cuts.iter().map(|c| c.ceil()).collect();
    // Chunks start at 3 s, 8 s; 12 s would leave 3 s ≥ 2 s: kept; 16 s is past the end.
    assert_eq!(keyframes, [8.0, 12.0]);
}

#[test]
fn trim_bounds_move_between_frames() {
    let frames = frames();
    assert!(close(frames.between_frames(1.5), (1.466667 + 1.5) / 2.0));
    assert!(close(frames.between_frames(1.51), (1.5 + 1.533333) / 2.0));
    assert!(close(frames.between_frames(0.0), 0.0), "no frame before");
    assert!(close(frames.between_frames(25.0), 25.0), "no frame after");
}

#[test]
fn no_keyframes_or_no_length_means_no_cut() {
    let all_deltas = VideoFrames::parse(b"0.0,K_\n0.5,__\n1.0,__\n100.0,__\n");
    assert!(all_deltas.cut_points(0.0, 200.0, 10.0).is_empty());
    assert!(frames().cut_points(0.0, 20.0, 0.0).is_empty());
    assert!(frames().cut_points(0.0, 20.0, f64::NAN).is_empty());
    assert!(VideoFrames::default().cut_points(0.0, 20.0, 5.0).is_empty());
}

#[test]
fn encodes_that_keep_every_frame_in_a_joinable_codec_are_chunkable() {
    assert!(chunkable(&mp4_job()));
    let info = fixture("long");
    let mut webm = ConvertOptions::new(Format::Webm);
    webm.max_height = Some(360);
    assert!(chunkable(&convert_job(&info, &webm).unwrap()));
    let compress = CompressOptions {
        target_size_mb: Some(1.0),
        ..CompressOptions::default()
    };
    assert!(chunkable(&compress_job(&info, &compress).unwrap()));

    let mut fps = ConvertOptions::new(Format::Mp4);
    fps.fps = Some(Rate::whole(10));
    assert!(!chunkable(&convert_job(&info, &fps).unwrap()), "fps change");
    let remux = convert_job(&info, &ConvertOptions::new(Format::Mp4)).unwrap();
    assert!(remux.remux);
    assert!(!chunkable(&remux), "remux");
    for format in [
        Format::Avi,
        Format::Mpeg,
        Format::Wmv,
        Format::Gif,
        Format::Mp3,
    ] {
        let job = convert_job(&info, &ConvertOptions::new(format)).unwrap();
        assert!(!chunkable(&job), "{format}");
    }
}

#[test]
fn each_chunk_encodes_its_window_of_video_only_from_zero() {
    let job = mp4_job();
    let plan = plan(&job, &[14.983333, 29.983333]);
    assert_eq!(plan.chunks.len(), 3);
    let windows: Vec<(bool, bool)> = plan
        .chunks
        .iter()
        .map(|c| (has_flag(&c.argv, "-ss"), has_flag(&c.argv, "-to")))
        .collect();
    assert_eq!(windows, [(false, true), (true, true), (true, false)]);
    assert_eq!(arg_after(&plan.chunks[0].argv, "-to"), "14.983333");
    assert_eq!(arg_after(&plan.chunks[1].argv, "-ss"), "14.983333");
    assert_eq!(arg_after(&plan.chunks[1].argv, "-to"), "29.983333");
    assert_eq!(arg_after(&plan.chunks[2].argv, "-ss"), "29.983333");
    for (i, chunk) in plan.chunks.iter().enumerate() {
        let argv = &chunk.argv;
        assert_eq!(arg_after(argv, "-format_whitelist"), INPUT_FORMAT_WHITELIST);
        assert_eq!(arg_after(argv, "-i"), "file:/scratch/t1/input");
        assert_eq!(arg_after(argv, "-vf"), "setpts=PTS-STARTPTS");
        assert_eq!(arg_after(argv, "-c:v"), "libx264");
        assert!(has_flag(argv, "-an") && !has_flag(argv, "-c:a"), "{argv:?}");
        assert!(!has_flag(argv, "-movflags"), "the join writes the index");
        assert_eq!(chunk.output_name, format!("chunk_{i:04}.mp4"));
        assert_eq!(
            argv.last().map(String::as_str),
            Some(format!("file:/scratch/t1/chunks/chunk_{i:04}.mp4").as_str())
        );
    }
    let durations: Vec<f64> = plan.chunks.iter().map(|c| c.expected_duration).collect();
    let total: f64 = durations.iter().sum();
    assert!(close(total, job.expected_duration), "{durations:?}");
    assert!(close(durations[1], 15.0));
}

#[test]
fn scaling_stays_in_the_chain_after_the_timestamp_reset() {
    let mut opts = ConvertOptions::new(Format::Mp4);
    opts.max_height = Some(360);
    let job = convert_job(&fixture("landscape"), &opts).unwrap();
    let plan = plan(&job, &[1.0]);
    let chain = arg_after(&plan.chunks[1].argv, "-vf");
    assert!(chain.starts_with("setpts=PTS-STARTPTS,scale="), "{chain}");
}

#[test]
fn the_audio_is_encoded_once_over_the_whole_window() {
    let mut opts = ConvertOptions::new(Format::Mp4);
    opts.quality = Some(Quality::Medium);
    opts.start = Some(2.0);
    opts.end = Some(40.0);
    let job = convert_job(&fixture("long"), &opts).unwrap();
    let plan = plan(&job, &[20.5]);
    let audio = plan.audio.as_ref().unwrap();
    assert_eq!(arg_after(&audio.argv, "-ss"), "2");
    assert_eq!(arg_after(&audio.argv, "-to"), "40");
    assert_eq!(arg_after(&audio.argv, "-c:a"), "aac");
    assert!(has_flag(&audio.argv, "-vn") && !has_flag(&audio.argv, "-c:v"));
    assert!(close(audio.expected_duration, 38.0));
    // The trim bounds the first and last chunks.
    assert_eq!(arg_after(&plan.chunks[0].argv, "-ss"), "2");
    assert_eq!(arg_after(&plan.chunks[1].argv, "-to"), "40");
    assert!(close(plan.chunks[0].expected_duration, 18.5));
}

#[test]
fn the_join_copies_the_listed_chunks_and_the_audio() {
    let plan = plan(&mp4_job(), &[14.983333, 29.983333]);
    assert_eq!(
        plan.list,
        "ffconcat version 1.0\nfile 'chunk_0000.mp4'\nfile 'chunk_0001.mp4'\n\
         file 'chunk_0002.mp4'\n"
    );
    let argv = &plan.join.argv;
    assert_eq!(
        &argv[4..12],
        [
            "-protocol_whitelist",
            "file",
            "-format_whitelist",
            JOIN_FORMAT_WHITELIST,
            "-f",
            "concat",
            "-safe",
            "1"
        ]
    );
    let inputs: Vec<&str> = (0..argv.len())
        .filter(|i| argv[*i] == "-i")
        .map(|i| argv[i + 1].as_str())
        .collect();
    assert_eq!(
        inputs,
        [
            "file:/scratch/t1/chunks/chunks.ffconcat",
            "file:/scratch/t1/chunks/audio.mp4"
        ]
    );
    assert_eq!(arg_after(argv, "-c"), "copy");
    assert_eq!(arg_after(argv, "-movflags"), "+faststart");
    assert_eq!(plan.join.output_name, "My_clip.mp4");
    assert_eq!(
        argv.last().map(String::as_str),
        Some("file:/scratch/t1/out/My_clip.mp4")
    );
}

#[test]
fn the_join_whitelist_opens_no_playlist_of_an_upload() {
    for name in JOIN_FORMAT_WHITELIST.split(',').filter(|n| *n != "concat") {
        assert!(!FORBIDDEN_DEMUXERS.contains(&name), "{name}");
        assert!(INPUT_FORMAT_WHITELIST.split(',').any(|n| n == name));
    }
}

#[test]
fn a_video_without_audio_joins_video_only() {
    let mut opts = ConvertOptions::new(Format::Mkv);
    opts.quality = Some(Quality::Low);
    let job = convert_job(&fixture("no_audio"), &opts).unwrap();
    let plan = plan(&job, &[1.0]);
    assert!(plan.audio.is_none());
    assert!(!plan.join.argv.iter().any(|a| a == "1:a"));
    assert_eq!(arg_after(&plan.join.argv, "-f"), "concat");
    assert!(!has_flag(&plan.join.argv, "-movflags"));
}
