//! Thumbnails: count, explicit times, width and every image format.

use reelforge::media::Paths;
use reelforge::media::probe::MediaInfo;
use reelforge::media::thumbnail::{ImageFormat, ThumbnailOptions, plan_thumbnails};
use reelforge_testkit::plans::{probe, probe_output_json, run_plan, scratch};

use crate::medium_mp4;

fn run(info: &MediaInfo, opts: &ThumbnailOptions) -> Vec<serde_json::Value> {
    let input = medium_mp4();
    let (dir, out_dir) = scratch();
    let paths = Paths {
        input,
        out_dir: out_dir.clone(),
        logo: None,
    };
    let plan = plan_thumbnails(info, opts, &paths, "clip").unwrap();
    run_plan(&plan, dir.path());
    // Exactly the planned files, nothing else.
    let mut names: Vec<String> = std::fs::read_dir(&out_dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    let planned: Vec<String> = plan.runs.iter().map(|r| r.output_name.clone()).collect();
    assert_eq!(names, planned);
    plan.runs
        .iter()
        .map(|r| {
            let json = probe_output_json(&r.output);
            let stream = &json["streams"][0];
            assert_eq!(stream["width"], plan.width);
            assert_eq!(stream["height"], plan.height);
            json
        })
        .collect()
}

#[test]
fn count_width_and_formats() {
    let info = probe(&medium_mp4());
    let cases = [
        (
            ThumbnailOptions {
                count: Some(3),
                width: Some(160),
                ..ThumbnailOptions::default()
            },
            3,
            "mjpeg",
            (160, 90),
        ),
        (
            ThumbnailOptions {
                at: Some(vec![0.0, 1.5, 2.99]),
                format: ImageFormat::Png,
                ..ThumbnailOptions::default()
            },
            3,
            "png",
            (320, 180),
        ),
        (
            ThumbnailOptions {
                count: Some(2),
                format: ImageFormat::Webp,
                width: Some(100),
                ..ThumbnailOptions::default()
            },
            2,
            "webp",
            (100, 56),
        ),
        (ThumbnailOptions::default(), 1, "mjpeg", (320, 180)),
    ];
    for (opts, count, codec, size) in cases {
        let outputs = run(&info, &opts);
        assert_eq!(outputs.len(), count, "{opts:?}");
        for json in outputs {
            let stream = &json["streams"][0];
            assert_eq!(stream["codec_name"], codec, "{opts:?}");
            assert_eq!(
                (stream["width"].clone(), stream["height"].clone()),
                (size.0.into(), size.1.into())
            );
        }
    }
}
