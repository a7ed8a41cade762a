//! The convert, compress and thumbnail plans run with the real ffmpeg on
//! small lavfi-generated clips; every output is probed with ffprobe (through
//! the same safe argv as the service) and checked against what the profile
//! promises: container, codecs, frame size, frame rate, duration within
//! ±0.2 s, audio present.

mod common;
mod compress;
mod convert;
mod thumbnail;
