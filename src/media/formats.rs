//! The output containers of `convert` and `compress`:
//! extension, muxer, default codecs, and whether an input's streams fit as they are.

use std::fmt;

use serde::{Deserialize, Serialize};

use super::codecs::{AudioCodec, VideoCodec};
use super::probe::MediaInfo;

/// Output container (and, through it, the default codecs).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Format {
    /// H.264 (yuv420p) + AAC, `+faststart`.
    Mp4,
    /// VP9 + Opus (libvpx realtime mode: faster than realtime on 720p).
    Webm,
    /// MPEG-4 Part 2 (`XVID` tag) + MP3.
    Avi,
    /// MPEG-2 video + MP2 in an MPEG-2 program stream (`.mpg`).
    Mpeg,
    /// WMV2 + WMA2 in ASF.
    Wmv,
    /// H.264 + AAC in Matroska.
    Mkv,
    /// H.264 (yuv420p) + AAC in QuickTime, `+faststart`.
    Mov,
    /// Palette-generated animated GIF, no audio; 15 fps and 480 px wide at most
    /// by default.
    Gif,
    /// MP3 (LAME).
    Mp3,
    /// AAC in an MPEG-4 audio file.
    M4a,
    /// Vorbis in Ogg.
    Ogg,
    /// Opus in Ogg.
    Opus,
    /// 16-bit PCM.
    Wav,
    /// FLAC.
    Flac,
    /// WMA2 in ASF.
    Wma,
}

impl Format {
    pub const ALL: [Format; 15] = [
        Format::Mp4,
        Format::Webm,
        Format::Avi,
        Format::Mpeg,
        Format::Wmv,
        Format::Mkv,
        Format::Mov,
        Format::Gif,
        Format::Mp3,
        Format::M4a,
        Format::Ogg,
        Format::Opus,
        Format::Wav,
        Format::Flac,
        Format::Wma,
    ];

    /// File extension of the output, without the dot.
    pub fn extension(self) -> &'static str {
        match self {
            Format::Mp4 => "mp4",
            Format::Webm => "webm",
            Format::Avi => "avi",
            Format::Mpeg => "mpg",
            Format::Wmv => "wmv",
            Format::Mkv => "mkv",
            Format::Mov => "mov",
            Format::Gif => "gif",
            Format::Mp3 => "mp3",
            Format::M4a => "m4a",
            Format::Ogg => "ogg",
            Format::Opus => "opus",
            Format::Wav => "wav",
            Format::Flac => "flac",
            Format::Wma => "wma",
        }
    }

    /// The format whose extension `name` ends with, if any.
    pub fn of_file_name(name: &str) -> Option<Format> {
        let (_, ext) = name.rsplit_once('.')?;
        let ext = ext.to_ascii_lowercase();
        Format::ALL.into_iter().find(|f| f.extension() == ext)
    }

    /// Whether the output holds audio only (the input's video is dropped).
    pub fn is_audio(self) -> bool {
        matches!(
            self,
            Format::Mp3
                | Format::M4a
                | Format::Ogg
                | Format::Opus
                | Format::Wav
                | Format::Flac
                | Format::Wma
        )
    }

    /// Whether the format stores audio without loss (no quality or bitrate).
    pub fn is_lossless_audio(self) -> bool {
        matches!(self, Format::Wav | Format::Flac)
    }

    /// The ffmpeg muxer written with `-f`.
    pub fn muxer(self) -> &'static str {
        match self {
            Format::Mp4 => "mp4",
            Format::Webm => "webm",
            Format::Avi => "avi",
            // MPEG-2 program stream (`mpeg` is MPEG-1 systems).
            Format::Mpeg => "vob",
            Format::Wmv | Format::Wma => "asf",
            Format::Mkv => "matroska",
            Format::Mov => "mov",
            Format::Gif => "gif",
            Format::Mp3 => "mp3",
            Format::M4a => "ipod",
            Format::Ogg => "ogg",
            Format::Opus => "opus",
            Format::Wav => "wav",
            Format::Flac => "flac",
        }
    }

    /// Default encoders of the format.
    pub(crate) fn codecs(self) -> (Option<VideoCodec>, Option<AudioCodec>) {
        use AudioCodec as A;
        use VideoCodec as V;
        match self {
            Format::Mp4 | Format::Mov | Format::Mkv => (Some(V::H264), Some(A::Aac)),
            Format::Webm => (Some(V::Vp9), Some(A::Opus)),
            Format::Avi => (Some(V::Mpeg4), Some(A::Mp3)),
            Format::Mpeg => (Some(V::Mpeg2), Some(A::Mp2)),
            Format::Wmv => (Some(V::Wmv2), Some(A::Wmav2)),
            Format::Gif => (Some(V::Gif), None),
            Format::Mp3 => (None, Some(A::Mp3)),
            Format::M4a => (None, Some(A::Aac)),
            Format::Ogg => (None, Some(A::Vorbis)),
            Format::Opus => (None, Some(A::Opus)),
            Format::Wav => (None, Some(A::Pcm16)),
            Format::Flac => (None, Some(A::Flac)),
            Format::Wma => (None, Some(A::Wmav2)),
        }
    }

    /// The format of the input's container, when it is one of ours: what
    /// `compress` keeps when no `format` is given. QuickTime-family files
    /// are `mp4` (`m4a` without video); Matroska is `webm` when its codecs
    /// are WebM's; MPEG-TS and FLV (no matching output) become `mp4`.
    pub fn of_input(info: &MediaInfo) -> Option<Format> {
        let names: Vec<&str> = info.format_name.split(',').map(str::trim).collect();
        let has = |n: &str| names.contains(&n);
        let video = info.video.is_some();
        let pick = |v: Format, a: Format| if video { v } else { a };
        if has("mp4") || has("mov") {
            Some(pick(Format::Mp4, Format::M4a))
        } else if has("matroska") || has("webm") {
            let webm = Format::Webm;
            Some(if fits_container(info, webm) {
                pick(webm, Format::Opus)
            } else {
                pick(Format::Mkv, Format::M4a)
            })
        } else if has("avi") {
            Some(pick(Format::Avi, Format::Mp3))
        } else if has("mpeg") {
            Some(pick(Format::Mpeg, Format::Mp3))
        } else if has("mpegts") || has("flv") {
            Some(pick(Format::Mp4, Format::M4a))
        } else if has("asf") {
            Some(pick(Format::Wmv, Format::Wma))
        } else if has("ogg") {
            Some(pick(Format::Webm, Format::Ogg))
        } else if has("mp3") {
            Some(Format::Mp3)
        } else if has("aac") {
            Some(Format::M4a)
        } else if has("wav") || has("w64") {
            Some(Format::Wav)
        } else if has("flac") {
            Some(Format::Flac)
        } else {
            None
        }
    }

    /// Whether the input's own container is this format's, so that its bytes can be handed
    /// back under this format's name and type (`compress` keeps the input when the
    /// re-encode is not smaller). Stricter than [`Format::of_input`], which also maps
    /// containers no output has (MPEG-TS, FLV, Ogg with video) to a format. ffprobe names
    /// Matroska and WebM alike, so WebM also needs WebM's codecs; an audio format holds no
    /// input with video.
    pub fn holds(self, info: &MediaInfo) -> bool {
        let names: Vec<&str> = info.format_name.split(',').map(str::trim).collect();
        let has = |n: &str| names.contains(&n);
        if self.is_audio() && info.video.is_some() {
            return false;
        }
        match self {
            Format::Mp4 | Format::Mov | Format::M4a => has("mp4") || has("mov"),
            Format::Webm => has("webm") && fits_container(info, Format::Webm),
            Format::Mkv => has("matroska"),
            Format::Avi => has("avi"),
            Format::Mpeg => has("mpeg"),
            Format::Wmv | Format::Wma => has("asf"),
            Format::Gif => has("gif"),
            Format::Mp3 => has("mp3"),
            Format::Ogg => has("ogg"),
            Format::Opus => {
                has("ogg") && any_of(info.audio.as_ref().map(|a| a.codec.as_str()), &["opus"])
            }
            Format::Wav => has("wav"),
            Format::Flac => has("flac"),
        }
    }
}

impl fmt::Display for Format {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Format::Mpeg => "mpeg",
            other => other.extension(),
        })
    }
}

fn any_of(codec: Option<&str>, allowed: &[&str]) -> bool {
    codec.is_some_and(|c| allowed.contains(&c))
}

/// Whether the input's first video and audio streams (the ones a conversion
/// keeps) can be stream-copied into `format` as they are, with the
/// compatibility the format promises (e.g. H.264 must be yuv420p for mp4).
/// Audio formats only look at the audio stream. Never true for gif, nor
/// when a stream the format needs is missing, nor for a rotated video
/// outside mp4/mov.
pub fn fits_container(info: &MediaInfo, format: Format) -> bool {
    let video = info.video.as_ref();
    let audio = info.audio.as_ref().map(|a| a.codec.as_str());
    if format.is_audio() {
        let allowed: &[&str] = match format {
            Format::Mp3 => &["mp3"],
            Format::M4a => &["aac"],
            Format::Ogg => &["vorbis"],
            Format::Opus => &["opus"],
            Format::Wav => &["pcm_s16le"],
            Format::Flac => &["flac"],
            Format::Wma => &["wmav1", "wmav2"],
            _ => &[],
        };
        return any_of(audio, allowed);
    }
    let Some(video) = video else {
        return false;
    };
    // Only QuickTime-family containers carry a display matrix here (ffmpeg
    // 5.1 writes none to Matroska, and AVI/MPEG/ASF have none): a rotated
    // stream copied anywhere else would play sideways.
    if video.rotation != 0 && !matches!(format, Format::Mp4 | Format::Mov) {
        return false;
    }
    let yuv420 = matches!(video.pix_fmt.as_deref(), Some("yuv420p" | "yuvj420p"));
    let codec = Some(video.codec.as_str());
    // Audio is optional in every video container.
    let audio_ok = |allowed: &[&str]| audio.is_none() || any_of(audio, allowed);
    match format {
        Format::Mp4 | Format::Mov => any_of(codec, &["h264"]) && yuv420 && audio_ok(&["aac"]),
        Format::Mkv => {
            any_of(codec, &["h264", "hevc", "vp8", "vp9", "av1"])
                && audio_ok(&["aac", "mp3", "opus", "vorbis", "flac", "ac3"])
        }
        Format::Webm => any_of(codec, &["vp8", "vp9", "av1"]) && audio_ok(&["opus", "vorbis"]),
        Format::Avi => any_of(codec, &["mpeg4"]) && audio_ok(&["mp3"]),
        Format::Mpeg => any_of(codec, &["mpeg2video", "mpeg1video"]) && audio_ok(&["mp2", "mp1"]),
        Format::Wmv => {
            any_of(codec, &["wmv1", "wmv2", "wmv3", "vc1"]) && audio_ok(&["wmav1", "wmav2"])
        }
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::media::testutil::fixture;

    #[test]
    fn an_input_is_held_only_by_a_format_of_its_own_container() {
        let mp4 = fixture("clip_20_5");
        assert!(Format::Mp4.holds(&mp4) && Format::Mov.holds(&mp4));
        for other in [Format::Webm, Format::Mkv, Format::Avi, Format::M4a] {
            assert!(!other.holds(&mp4), "{other}");
        }
        let webm = fixture("webm");
        assert!(Format::Webm.holds(&webm) && Format::Mkv.holds(&webm));
        // Matroska with codecs WebM does not allow is no WebM file.
        let ffv1 = fixture("odd");
        assert!(Format::Mkv.holds(&ffv1) && !Format::Webm.holds(&ffv1));
        assert!(Format::Avi.holds(&fixture("avi")));
        assert!(Format::Mpeg.holds(&fixture("mpeg2")));
        let wav = fixture("wav");
        assert!(Format::Wav.holds(&wav) && !Format::Mp3.holds(&wav));
        assert!(Format::M4a.holds(&fixture("audio_only")));
        // `of_input` picks mp4 for MPEG-TS, whose bytes are no mp4 file all the same.
        let ts = MediaInfo {
            format_name: "mpegts".into(),
            ..mp4
        };
        assert_eq!(Format::of_input(&ts), Some(Format::Mp4));
        assert!(!Format::Mp4.holds(&ts));
    }

    #[test]
    fn formats_by_file_name() {
        assert_eq!(Format::of_file_name("clip.MPG"), Some(Format::Mpeg));
        assert_eq!(Format::of_file_name("a.b.webm"), Some(Format::Webm));
        assert_eq!(Format::of_file_name("clip.ts"), None);
        assert_eq!(Format::of_file_name("clip"), None);
    }
}
