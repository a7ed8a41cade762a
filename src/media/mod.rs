//! Media handling: ffprobe parsing and limits ([`probe`]) and pure ffmpeg command
//! planning. Nothing in here spawns a process; running the planned argv is the job of
//! [`crate::process`].
//!
//! Every profile follows one contract ([`planner`](mod@planner)): its options type implements
//! [`Planner`], turning (probe result, [`Paths`], output stem) into a [`Plan`]. One module
//! per profile: [`idrl`], [`convert`], [`compress`], [`thumbnail`], [`hls`]; [`plan`] picks
//! the planner of a task's [`Profile`]. Shared by the planners: the ffmpeg argument helpers
//! and input safety options ([`args`]), the encoders ([`codecs`]), the output containers
//! ([`formats`]), frame sizes ([`geometry`]) and the single-output encode of convert and
//! compress ([`encode`]).
//!
//! A new profile: its module here (options type, `impl Planner`, argv unit tests against
//! the fixtures), a [`Profile`] variant with its name, and an arm in [`planner_of`].

pub mod args;
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
pub mod thumbnail;

#[cfg(test)]
mod testutil;

pub use args::{
    FORBIDDEN_DEMUXERS, INPUT_FORMAT_WHITELIST, INPUT_PROTOCOL_WHITELIST, LOGO_DEMUXER,
    SAFE_INPUT_ARGS, SAFE_LOGO_ARGS, file_url, output_demuxer,
};
pub use logo::{LogoError, MAX_LOGO_BYTES, MAX_LOGO_SIDE, check_logo_png};
pub use planner::{OptionError, Paths, Plan, PlanError, PlannedRun, Planner, sanitize_stem};

use crate::domain::Profile;
use probe::MediaInfo;

/// The planner of a media profile; `None` for a profile that is not media (archive).
pub fn planner_of(profile: &Profile) -> Option<&dyn Planner> {
    match profile {
        Profile::Idrl(o) => Some(o),
        Profile::Convert(o) => Some(o),
        Profile::Compress(o) => Some(o),
        Profile::Thumbnail(o) => Some(o),
        Profile::Hls(o) => Some(o),
        Profile::Archive(_) => None,
    }
}

/// Plans the ffmpeg runs of `profile` over the probed input (see [`Planner::plan`]).
pub fn plan(
    profile: &Profile,
    info: &MediaInfo,
    paths: &Paths,
    stem: &str,
) -> Result<Plan, PlanError> {
    planner_of(profile)
        .ok_or(PlanError::NotMedia)?
        .plan(info, paths, stem)
}

/// Seconds as the API shows them: whole values as integers (`20`, not `20.0`).
pub fn serialize_seconds<S: serde::Serializer>(v: &f64, s: S) -> Result<S::Ok, S::Error> {
    if v.fract() == 0.0 && v.abs() < 1e15 {
        s.serialize_i64(*v as i64)
    } else {
        s.serialize_f64(*v)
    }
}

/// Seconds echoed as the API shows them (see [`serialize_seconds`]).
pub(crate) struct Seconds(pub f64);

impl serde::Serialize for Seconds {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        serialize_seconds(&self.0, s)
    }
}

/// [`serialize_seconds`] for an optional value.
pub(crate) fn serialize_opt_seconds<S: serde::Serializer>(
    v: &Option<f64>,
    s: S,
) -> Result<S::Ok, S::Error> {
    match v {
        Some(v) => serialize_seconds(v, s),
        None => s.serialize_none(),
    }
}
