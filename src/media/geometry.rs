//! Output frame sizes: even dimensions, never upscaled.

use super::planner::{OptionError, PlanError};
use super::probe::VideoStream;

pub(crate) fn even_floor(x: f64) -> u32 {
    let v = x.floor().clamp(0.0, f64::from(u32::MAX));
    (v as u32) & !1
}

pub(crate) fn even_round(x: f64) -> u32 {
    let v = (x / 2.0).round().clamp(0.0, f64::from(u32::MAX / 2));
    (v as u32) * 2
}

/// Output frame size for a video stream (display orientation): at most
/// `max_height` lines and `max_width` columns, aspect kept, never upscaled,
/// both dimensions even.
pub fn scaled_size(
    video: &VideoStream,
    max_height: Option<u32>,
    max_width: Option<u32>,
) -> Result<(u32, u32), PlanError> {
    let (dw, dh) = (video.display_width(), video.display_height());
    let too_small = PlanError::FrameTooSmall {
        width: dw,
        height: dh,
    };
    if dw < 2 || dh < 2 {
        return Err(too_small);
    }
    let (dwf, dhf) = (f64::from(dw), f64::from(dh));
    let mut h = dhf.min(f64::from(max_height.unwrap_or(dh)));
    let mut w = dwf * h / dhf;
    if let Some(mw) = max_width
        && w > f64::from(mw)
    {
        w = f64::from(mw);
        h = dhf * w / dwf;
    }
    // Rounded to even, but never above the source or a bound.
    let cap = |x: f64, bound: u32| even_round(x).min(even_floor(f64::from(bound)));
    let height = cap(h, max_height.map_or(dh, |m| m.min(dh)));
    let width = cap(w, max_width.map_or(dw, |m| m.min(dw)));
    if width < 2 || height < 2 {
        return Err(PlanError::FrameTooSmall { width, height });
    }
    Ok((width, height))
}

/// The `max_height` option: `144..=4320` lines.
/// Smallest `max_height` an option may ask for.
pub const MIN_HEIGHT: u32 = 144;
/// Largest `max_height` an option may ask for (8K).
pub const MAX_HEIGHT: u32 = 4320;

pub(crate) fn validate_max_height(h: u32) -> Result<(), OptionError> {
    if (MIN_HEIGHT..=MAX_HEIGHT).contains(&h) {
        Ok(())
    } else {
        Err(OptionError::new(
            "max_height",
            format!("must be between {MIN_HEIGHT} and {MAX_HEIGHT}"),
        ))
    }
}
