//! The `idrl` profile, the default profile: the input is cut into parts of
//! `segment_seconds`, each with a logo card (bumper) before and after it, 16:9 H.264/AAC.
//! (16:9 is the default `aspect`; `fit` crops or letterboxes into it.) Pure planning:
//! from (probe result, options, paths) to one ffmpeg argv per part.
//!
//! Each part is one ffmpeg run: exact durations, one encoder alive at a time. The
//! measurements against one decode for all parts are in docs/benchmarks.md ("idrl: one
//! run per part vs one decode for all parts").
//!
//! ```text
//! ffmpeg -nostdin -hide_banner -loglevel error
//!   <safe input args> -ss START -t DUR -i file:INPUT
//!   <safe logo args> -i file:LOGO                       (when bumper_seconds > 0)
//!   -filter_complex GRAPH -map [v] -map [a] <encode settings> -progress pipe:1 -nostats -y file:OUT
//! ```
//!
//! GRAPH: the part's video is resampled to the output fps, centre-cropped or
//! letterboxed to the output frame, padded by cloning its last frame and
//! trimmed so it lasts exactly the part's duration; its audio is resampled to
//! 48 kHz stereo, padded with silence and trimmed the same way (or is pure
//! silence when the input has none). The bumper is the logo scaled to fit
//! inside the frame (aspect kept) and overlaid in the centre of a
//! background-colour frame, held for `bumper_seconds`, with silence under it;
//! it is split and concatenated before and after the part.

use std::fmt::Write as _;

use serde::{Deserialize, Serialize};

use super::args::{
    QUIET_ARGS, SAFE_INPUT_ARGS, SAFE_LOGO_ARGS, output_args, path_str, secs, strings,
};
use super::codecs::{EncodeSettings, Rate};
use super::geometry::{even_floor, even_round, validate_max_height};
use super::planner::{OptionError, Paths, Plan, PlanError, PlannedRun, sanitize_stem};
use super::probe::{MediaInfo, VideoStream};

/// Output aspect ratio.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub enum Aspect {
    #[default]
    #[serde(rename = "16:9")]
    Landscape16x9,
    #[serde(rename = "9:16")]
    Portrait9x16,
    #[serde(rename = "1:1")]
    Square1x1,
    #[serde(rename = "4:3")]
    Standard4x3,
    /// The display aspect ratio of the input (after rotation).
    #[serde(rename = "source")]
    Source,
}

impl Aspect {
    /// `(width, height)` of the ratio; `None` for [`Aspect::Source`].
    pub fn ratio(self) -> Option<(u32, u32)> {
        match self {
            Aspect::Landscape16x9 => Some((16, 9)),
            Aspect::Portrait9x16 => Some((9, 16)),
            Aspect::Square1x1 => Some((1, 1)),
            Aspect::Standard4x3 => Some((4, 3)),
            Aspect::Source => None,
        }
    }
}

/// How the input is made to fit the output aspect ratio.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Fit {
    /// Centre crop (the default).
    #[default]
    Crop,
    /// Letterbox / pillarbox onto the background colour.
    Pad,
}

/// Options of the `idrl` profile (the default profile: parts of `segment_seconds`, each
/// between two logo cards, 16:9 H.264/AAC). An unknown field or a known field with the
/// wrong type is a deserialisation error. Call [`IdrlOptions::validate`] after
/// deserialising.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct IdrlOptions {
    /// Length of each part; `0` = no split; else `1..=3600`.
    #[serde(with = "super::units::seconds")]
    pub segment_seconds: f64,
    /// How long the logo card is shown before and after each part; `0..=10`.
    #[serde(with = "super::units::seconds")]
    pub bumper_seconds: f64,
    pub aspect: Aspect,
    pub fit: Fit,
    /// Output frames per second; `1..=60`.
    pub fps: Rate,
    /// Maximum output height (never upscaled); `144..=4320`.
    pub max_height: u32,
    /// Background colour of the bumper and of letterbox bars: an ffmpeg
    /// colour name (`black`, `white`, `navy`, ...) or `#RRGGBB`.
    pub background: String,
}

impl Default for IdrlOptions {
    fn default() -> Self {
        IdrlOptions {
            segment_seconds: 20.0,
            bumper_seconds: 1.0,
            aspect: Aspect::default(),
            fit: Fit::default(),
            fps: Rate::whole(24),
            max_height: 1080,
            background: "black".to_owned(),
        }
    }
}

impl IdrlOptions {
    /// The profile's name, as the API spells it.
    pub const NAME: &str = "idrl";

    /// The options' JSON Schema (see [`super::schema`]).
    pub fn schema() -> serde_json::Value {
        use super::schema::{documented, enum_of, max_height, object, rate};
        let d = IdrlOptions::default();
        let aspects = [
            Aspect::Landscape16x9,
            Aspect::Portrait9x16,
            Aspect::Square1x1,
            Aspect::Standard4x3,
            Aspect::Source,
        ];
        let mut fps = rate(60, "Output frames per second");
        fps["default"] = serde_json::json!(d.fps);
        object(
            "The default profile: parts of `segment_seconds`, each between two logo cards, \
             16:9 H.264/AAC MP4.",
            serde_json::json!({
                "segment_seconds": {
                    "description": "Length of each part in seconds; 0 = no split. A time like \"00:05:00\" is accepted too.",
                    "default": super::units::Seconds(d.segment_seconds),
                    "anyOf": [{"const": 0}, {"type": "number", "minimum": 1, "maximum": 3600}]
                },
                "bumper_seconds": {
                    "description": "How long the logo card is shown before and after each part, in seconds.",
                    "type": "number", "minimum": 0, "maximum": 10,
                    "default": super::units::Seconds(d.bumper_seconds)
                },
                "aspect": documented(enum_of(aspects),
                    "Output aspect ratio; `source` keeps the input's.", Some(d.aspect)),
                "fit": documented(enum_of([Fit::Crop, Fit::Pad]),
                    "How the input fits the aspect: centre `crop` or letterbox `pad`.", Some(d.fit)),
                "fps": fps,
                "max_height": max_height(Some(d.max_height)),
                "background": {
                    "description": "Colour of the logo card and of letterbox bars: a colour name or #RRGGBB.",
                    "default": d.background,
                    "anyOf": [
                        {"type": "string", "enum": COLOR_NAMES},
                        {"type": "string", "pattern": "^#[0-9A-Fa-f]{6}$"}
                    ]
                }
            }),
        )
    }

    pub fn validate(&self) -> Result<(), OptionError> {
        let s = self.segment_seconds;
        if !s.is_finite() || !(s == 0.0 || (1.0..=3600.0).contains(&s)) {
            return Err(OptionError::new(
                "segment_seconds",
                "must be 0 (no split) or between 1 and 3600",
            ));
        }
        let b = self.bumper_seconds;
        if !b.is_finite() || !(0.0..=10.0).contains(&b) {
            return Err(OptionError::new(
                "bumper_seconds",
                "must be between 0 and 10",
            ));
        }
        if !(1.0..=60.0).contains(&self.fps.value()) {
            return Err(OptionError::new("fps", "must be between 1 and 60"));
        }
        validate_max_height(self.max_height)?;
        ffmpeg_color(&self.background).ok_or_else(|| {
            OptionError::new(
                "background",
                "must be a colour name (e.g. black, white, navy) or #RRGGBB",
            )
        })?;
        Ok(())
    }
}

/// Colour names ffmpeg understands (`ffmpeg -colors`), lower case.
#[rustfmt::skip]
pub const COLOR_NAMES: &[&str] = &[
    "aliceblue", "antiquewhite", "aqua", "aquamarine", "azure", "beige", "bisque", "black",
    "blanchedalmond", "blue", "blueviolet", "brown", "burlywood", "cadetblue", "chartreuse",
    "chocolate", "coral", "cornflowerblue", "cornsilk", "crimson", "cyan", "darkblue",
    "darkcyan", "darkgoldenrod", "darkgray", "darkgreen", "darkkhaki", "darkmagenta",
    "darkolivegreen", "darkorange", "darkorchid", "darkred", "darksalmon", "darkseagreen",
    "darkslateblue", "darkslategray", "darkturquoise", "darkviolet", "deeppink", "deepskyblue",
    "dimgray", "dodgerblue", "firebrick", "floralwhite", "forestgreen", "fuchsia", "gainsboro",
    "ghostwhite", "gold", "goldenrod", "gray", "green", "greenyellow", "honeydew", "hotpink",
    "indianred", "indigo", "ivory", "khaki", "lavender", "lavenderblush", "lawngreen",
    "lemonchiffon", "lightblue", "lightcoral", "lightcyan", "lightgoldenrodyellow",
    "lightgreen", "lightgrey", "lightpink", "lightsalmon", "lightseagreen", "lightskyblue",
    "lightslategray", "lightsteelblue", "lightyellow", "lime", "limegreen", "linen", "magenta",
    "maroon", "mediumaquamarine", "mediumblue", "mediumorchid", "mediumpurple",
    "mediumseagreen", "mediumslateblue", "mediumspringgreen", "mediumturquoise",
    "mediumvioletred", "midnightblue", "mintcream", "mistyrose", "moccasin", "navajowhite",
    "navy", "oldlace", "olive", "olivedrab", "orange", "orangered", "orchid", "palegoldenrod",
    "palegreen", "paleturquoise", "palevioletred", "papayawhip", "peachpuff", "peru", "pink",
    "plum", "powderblue", "purple", "red", "rosybrown", "royalblue", "saddlebrown", "salmon",
    "sandybrown", "seagreen", "seashell", "sienna", "silver", "skyblue", "slateblue",
    "slategray", "snow", "springgreen", "steelblue", "tan", "teal", "thistle", "tomato",
    "turquoise", "violet", "wheat", "white", "whitesmoke", "yellow", "yellowgreen",
];

/// The colour as written into the filter graph: a known lower-case name or
/// `0xRRGGBB`. `None` for anything else, so no filter syntax can get in.
fn ffmpeg_color(value: &str) -> Option<String> {
    if let Some(hex) = value.strip_prefix('#') {
        if hex.len() == 6 && hex.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Some(format!("0x{}", hex.to_ascii_uppercase()));
        }
        return None;
    }
    if value.len() <= 32
        && value.bytes().all(|b| b.is_ascii_lowercase())
        && COLOR_NAMES.contains(&value)
    {
        return Some(value.to_owned());
    }
    None
}

/// One part of the input: `[start, start + duration)` seconds.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Part {
    pub start: f64,
    pub duration: f64,
}

/// Remainders shorter than this join the previous part.
pub const MIN_TAIL_SECONDS: f64 = 1.0;

/// Splits `duration` into parts of `segment_seconds` (`0` = one part); the
/// last part is the remainder, and a remainder under
/// [`MIN_TAIL_SECONDS`] joins the previous part.
pub fn split_parts(duration: f64, segment_seconds: f64) -> Vec<Part> {
    if !duration.is_finite() || duration <= 0.0 {
        return Vec::new();
    }
    if !segment_seconds.is_finite() || segment_seconds <= 0.0 || duration <= segment_seconds {
        return vec![Part {
            start: 0.0,
            duration,
        }];
    }
    let full = (duration / segment_seconds).floor() as usize;
    let mut parts: Vec<Part> = (0..full)
        .map(|i| Part {
            start: i as f64 * segment_seconds,
            duration: segment_seconds,
        })
        .collect();
    let covered = full as f64 * segment_seconds;
    let tail = duration - covered;
    if tail >= MIN_TAIL_SECONDS {
        parts.push(Part {
            start: covered,
            duration: tail,
        });
    } else if let Some(last) = parts.last_mut() {
        last.duration += tail.max(0.0);
    }
    parts
}

/// How the (display-oriented) source becomes the output frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Framing {
    /// Crop `width`x`height` at (`x`, `y`) from the source, then scale.
    Crop {
        width: u32,
        height: u32,
        x: u32,
        y: u32,
    },
    /// Scale to fit inside the frame, then pad with the background colour.
    Pad,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Geometry {
    pub width: u32,
    pub height: u32,
    pub framing: Framing,
}

/// Output frame size and framing for a video stream (rotation honoured).
/// Never upscales; both dimensions even.
pub fn output_geometry(
    video: &VideoStream,
    aspect: Aspect,
    fit: Fit,
    max_height: u32,
) -> Result<Geometry, PlanError> {
    let (dw, dh) = (video.display_width(), video.display_height());
    let (rw, rh) = aspect.ratio().unwrap_or((dw, dh));
    if dw == 0 || dh == 0 || rw == 0 || rh == 0 {
        return Err(PlanError::FrameTooSmall {
            width: dw,
            height: dh,
        });
    }
    let source = Source {
        width: dw,
        height: dh,
        ratio: f64::from(rw) / f64::from(rh),
        // Is the source wider than the target ratio? (exact integer compare)
        wider: u64::from(dw) * u64::from(rh) > u64::from(dh) * u64::from(rw),
    };
    let geometry = match fit {
        Fit::Crop => crop_geometry(&source, max_height),
        Fit::Pad => pad_geometry(&source, max_height),
    };
    if geometry.width < 2 || geometry.height < 2 {
        return Err(PlanError::FrameTooSmall {
            width: geometry.width,
            height: geometry.height,
        });
    }
    Ok(geometry)
}

/// The display size of the source against the target aspect ratio.
struct Source {
    width: u32,
    height: u32,
    /// Target width over height.
    ratio: f64,
    /// Whether the source is wider than `ratio`.
    wider: bool,
}

/// The largest centred crop of the target ratio, scaled down to `max_height`.
fn crop_geometry(s: &Source, max_height: u32) -> Geometry {
    let (dw, dh, ratio) = (s.width, s.height, s.ratio);
    let (cw, ch) = if s.wider {
        let cw = (f64::from(dh) * ratio).round().clamp(1.0, f64::from(dw)) as u32;
        (cw, dh)
    } else {
        let ch = (f64::from(dw) / ratio).round().clamp(1.0, f64::from(dh)) as u32;
        (dw, ch)
    };
    let height = even_floor(f64::from(ch.min(max_height)));
    let width = even_round(f64::from(height) * ratio).min(even_floor(f64::from(cw)));
    let framing = Framing::Crop {
        width: cw,
        height: ch,
        x: (dw - cw) / 2,
        y: (dh - ch) / 2,
    };
    Geometry {
        width,
        height,
        framing,
    }
}

/// The smallest frame of the target ratio holding the whole source, capped at `max_height`.
fn pad_geometry(s: &Source, max_height: u32) -> Geometry {
    let box_h = if s.wider {
        f64::from(s.width) / s.ratio
    } else {
        f64::from(s.height)
    };
    let height = even_floor(box_h.min(f64::from(max_height)));
    let width = even_round(f64::from(height) * s.ratio);
    Geometry {
        width,
        height,
        framing: Framing::Pad,
    }
}

const AUDIO_FORMAT: &str = "aformat=sample_fmts=fltp:sample_rates=48000:channel_layouts=stereo";

struct GraphInput<'a> {
    video: &'a VideoStream,
    audio_index: Option<usize>,
    geometry: Geometry,
    fps: Rate,
    color: &'a str,
    part: f64,
    bumper: f64,
}

/// The `-filter_complex` graph for one part; outputs `[v]` and `[a]`.
fn filter_graph(g: &GraphInput<'_>) -> String {
    let mut graph = String::new();
    main_video(&mut graph, g);
    main_audio(&mut graph, g);
    if g.bumper > 0.0 {
        bumpers(&mut graph, g);
    } else {
        graph.push_str("[mv][ma]concat=n=1:v=1:a=1[v][a]");
    }
    graph
}

/// The part's video as `[mv]`: fps first (cheapest: drops frames before any scaling),
/// then the framing, then padded and trimmed to exactly the part's duration.
fn main_video(graph: &mut String, g: &GraphInput<'_>) {
    let (w, h) = (g.geometry.width, g.geometry.height);
    let _ = write!(graph, "[0:{}]fps={},", g.video.index, g.fps);
    match g.geometry.framing {
        Framing::Crop {
            width,
            height,
            x,
            y,
        } => {
            let _ = write!(graph, "crop={width}:{height}:{x}:{y},scale={w}:{h},");
        }
        Framing::Pad => {
            let _ = write!(
                graph,
                "scale={w}:{h}:force_original_aspect_ratio=decrease:force_divisible_by=2,\
                 pad={w}:{h}:(ow-iw)/2:(oh-ih)/2:color={},",
                g.color
            );
        }
    }
    let _ = write!(
        graph,
        "setsar=1,format=yuv420p,tpad=stop=-1:stop_mode=clone,\
         trim=duration={},setpts=PTS-STARTPTS[mv];",
        secs(g.part)
    );
}

/// The part's audio as `[ma]`, or silence when the input has none.
fn main_audio(graph: &mut String, g: &GraphInput<'_>) {
    let part = secs(g.part);
    match g.audio_index {
        Some(index) => {
            let _ = write!(
                graph,
                "[0:{index}]aresample=48000:async=1:first_pts=0,{AUDIO_FORMAT},apad,\
                 atrim=duration={part},asetpts=PTS-STARTPTS[ma];"
            );
        }
        None => {
            let _ = write!(
                graph,
                "anullsrc=r=48000:cl=stereo,{AUDIO_FORMAT},atrim=duration={part}[ma];"
            );
        }
    }
}

/// The logo card with silence under it, split and concatenated around the part.
fn bumpers(graph: &mut String, g: &GraphInput<'_>) {
    let (w, h) = (g.geometry.width, g.geometry.height);
    let bumper = secs(g.bumper);
    let _ = write!(
        graph,
        "color=c={color}:s={w}x{h}:r={fps}:d={bumper},format=yuv420p[bg];\
         [1:v]scale={w}:{h}:force_original_aspect_ratio=decrease:force_divisible_by=2[logo];\
         [bg][logo]overlay=x=(W-w)/2:y=(H-h)/2:format=auto,setsar=1,format=yuv420p,\
         split=2[b1][b2];\
         anullsrc=r=48000:cl=stereo,{AUDIO_FORMAT},atrim=duration={bumper},asplit=2[s1][s2];\
         [b1][s1][mv][ma][b2][s2]concat=n=3:v=1:a=1[v][a]",
        color = g.color,
        fps = g.fps,
    );
}

/// Plans the `idrl` profile with the default [`EncodeSettings`].
pub fn plan_idrl(
    info: &MediaInfo,
    opts: &IdrlOptions,
    paths: &Paths,
    stem: &str,
) -> Result<Plan, PlanError> {
    plan_idrl_with(info, opts, paths, stem, &EncodeSettings::default())
}

/// Plans the `idrl` profile: one ffmpeg run per part.
pub fn plan_idrl_with(
    info: &MediaInfo,
    opts: &IdrlOptions,
    paths: &Paths,
    stem: &str,
    encode: &EncodeSettings,
) -> Result<Plan, PlanError> {
    opts.validate()?;
    let video = info.video.as_ref().ok_or(PlanError::NoVideo)?;
    let parts = split_parts(info.duration, opts.segment_seconds);
    if parts.is_empty() {
        return Err(PlanError::InvalidDuration);
    }
    let geometry = output_geometry(video, opts.aspect, opts.fit, opts.max_height)?;
    let color = ffmpeg_color(&opts.background).ok_or_else(|| {
        // Unreachable after validate(), but never panic on user input.
        OptionError::new("background", "must be a colour name or #RRGGBB")
    })?;
    let input = format!("file:{}", path_str(&paths.input)?);
    let logo = match paths.logo.as_deref() {
        Some(logo) => Some(format!("file:{}", path_str(logo)?)),
        None => None,
    };
    let stem = sanitize_stem(stem);

    let mut runs = Vec::with_capacity(parts.len());
    for (i, part) in parts.iter().enumerate() {
        let output_name = format!("{stem}_part_{:03}.mp4", i + 1);
        let output = paths.out_dir.join(&output_name);
        let graph = filter_graph(&GraphInput {
            video,
            audio_index: info.audio.as_ref().map(|a| a.index),
            geometry,
            fps: opts.fps,
            color: &color,
            part: part.duration,
            bumper: opts.bumper_seconds,
        });
        let mut argv = part_inputs(&input, logo.as_deref(), part, opts.bumper_seconds > 0.0)?;
        argv.extend(encode_args(&graph, encode, opts.fps));
        argv.extend(output_args("mp4", &output)?);
        runs.push(PlannedRun {
            argv,
            output,
            output_name,
            expected_duration: part.duration + 2.0 * opts.bumper_seconds,
        });
    }
    Ok(Plan {
        width: geometry.width,
        height: geometry.height,
        runs,
        result: None,
    })
}

/// The inputs of one part's run: the part of the input (seeked to), then the logo when
/// the part has bumpers.
fn part_inputs(
    input: &str,
    logo: Option<&str>,
    part: &Part,
    bumpers: bool,
) -> Result<Vec<String>, PlanError> {
    let mut argv: Vec<String> = strings(&QUIET_ARGS)
        .chain(strings(&SAFE_INPUT_ARGS))
        .collect();
    argv.extend(["-ss".to_owned(), secs(part.start)]);
    argv.extend(["-t".to_owned(), secs(part.duration)]);
    argv.extend(["-i".to_owned(), input.to_owned()]);
    if bumpers {
        argv.extend(strings(&SAFE_LOGO_ARGS));
        argv.extend(["-i".to_owned(), logo.ok_or(PlanError::NoLogo)?.to_owned()]);
    }
    Ok(argv)
}

/// The options between the inputs and the muxer: the graph, its outputs (no metadata or
/// chapters carried over) and the encoders.
fn encode_args(graph: &str, encode: &EncodeSettings, fps: Rate) -> Vec<String> {
    let mut argv: Vec<String> = strings(&["-filter_complex", graph, "-map", "[v]", "-map", "[a]"])
        .chain(strings(&["-map_metadata", "-1", "-map_chapters", "-1"]))
        .collect();
    argv.extend(encode.output_args(fps));
    argv
}

#[cfg(test)]
mod tests;
