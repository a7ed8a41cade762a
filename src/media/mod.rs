//! Media handling: ffprobe parsing and limits ([`probe`]) and pure ffmpeg command
//! planning. Nothing in here spawns a process; running the planned argv is the job of
//! [`crate::process`].
//!
//! Every profile follows one contract ([`planner`]): a function from (probe result,
//! options, [`Paths`], output stem) to a [`Plan`]. One module per profile: [`idrl`],
//! [`convert`], [`compress`], [`thumbnail`], [`hls`]; [`plan()`] picks the planner of a
//! task's [`Profile`]. Shared by the planners: the ffmpeg argument helpers
//! and input safety options ([`args`]), the encoders ([`codecs`]), the output containers
//! ([`formats`]), frame sizes ([`geometry`]) and the single-output encode of convert and
//! compress ([`encode`]).
//!
//! A long convert or compress can instead run as chunks that any worker encodes and a
//! join ([`chunks`]; [`chunkable_encode`] says when).
//!
//! A new profile: its module here (options type, `NAME`, `plan_*` function, argv unit
//! tests against the fixtures), a [`Profile`] variant, and its arm in [`plan()`].

pub mod args;
pub mod chunks;
pub mod codecs;
pub mod compress;
pub mod convert;
pub mod encode;
pub mod formats;
pub mod geometry;
pub mod hls;
pub mod idrl;
pub mod logo;
pub mod planner;
pub mod probe;
pub mod schema;
pub mod thumbnail;
pub mod units;

#[cfg(test)]
mod testutil;

pub use args::{
    FORBIDDEN_DEMUXERS, INPUT_FORMAT_WHITELIST, INPUT_PROTOCOL_WHITELIST, LOGO_DEMUXER,
    SAFE_INPUT_ARGS, SAFE_LOGO_ARGS, file_url, output_demuxer,
};
pub use chunks::{ChunkSettings, Chunkable, ChunkedPlan, VideoFrames};
pub use logo::{LogoError, MAX_LOGO_BYTES, MAX_LOGO_SIDE, check_logo_png};
pub use planner::{OptionError, Paths, Plan, PlanError, PlannedRun, sanitize_stem};

use crate::domain::Profile;
use probe::MediaInfo;

/// Plans the ffmpeg runs of `profile` over the probed input: the one place a profile
/// meets its planner. `paths.logo` must name a PNG image when the profile
/// [wants a logo](Profile::wants_logo).
pub fn plan(
    profile: &Profile,
    info: &MediaInfo,
    paths: &Paths,
    stem: &str,
) -> Result<Plan, PlanError> {
    match profile {
        Profile::Idrl(o) => idrl::plan_idrl(info, o, paths, stem),
        Profile::Convert(o) => convert::plan_convert(info, o, paths, stem),
        Profile::Compress(o) => compress::plan_compress(info, o, paths, stem),
        Profile::Thumbnail(o) => thumbnail::plan_thumbnails(info, o, paths, stem),
        Profile::Hls(o) => hls::plan_hls(info, o, paths, stem),
        Profile::Archive(_) => Err(PlanError::NotMedia),
    }
}

/// The encode of `profile` over the input when it can be split into chunks
/// ([`chunks`]): a single-output video encode (convert, compress) that keeps every frame,
/// in a codec and container the join handles, longer than `settings.threshold`. `None`:
/// [`plan()`] runs it whole.
pub fn chunkable_encode(
    profile: &Profile,
    info: &MediaInfo,
    settings: &ChunkSettings,
) -> Result<Option<Chunkable>, PlanError> {
    let job = match profile {
        Profile::Convert(o) => convert::convert_job(info, o)?,
        Profile::Compress(o) => compress::compress_job(info, o)?,
        _ => return Ok(None),
    };
    Ok(Chunkable::of(job, settings))
}
