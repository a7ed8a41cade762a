//! File-name hints for a download: from `Content-Disposition`, else from the URL's last
//! path segment. Kept apart from the client because it is pure parsing of untrusted text,
//! whose only job is to never return a path (just a bounded, printable final component).

use url::Url;

/// Longest filename hint returned, in characters.
const MAX_FILENAME_CHARS: usize = 200;

/// File name from a `Content-Disposition` value; `filename*` (RFC 5987) wins over `filename`.
pub(super) fn disposition_filename(value: &[u8]) -> Option<String> {
    let value = String::from_utf8_lossy(value);
    let mut plain = None;
    let mut extended = None;
    for (name, val) in disposition_params(&value) {
        if name.eq_ignore_ascii_case("filename*") {
            // charset'language'percent-encoded
            let encoded = val.splitn(3, '\'').nth(2).unwrap_or(&val);
            extended = Some(percent_decode(encoded));
        } else if name.eq_ignore_ascii_case("filename") {
            plain = Some(val);
        }
    }
    extended
        .and_then(|n| sanitize_filename(&n))
        .or_else(|| plain.and_then(|n| sanitize_filename(&n)))
}

/// `name=value` parameters after the disposition type; quoted values are unquoted.
fn disposition_params(value: &str) -> Vec<(String, String)> {
    let mut params = Vec::new();
    let mut rest = match value.split_once(';') {
        Some((_, rest)) => rest,
        None => return params,
    };
    loop {
        rest = rest.trim_start_matches(|c: char| c == ';' || c.is_whitespace());
        if rest.is_empty() {
            break;
        }
        let Some((name, after)) = rest.split_once('=') else {
            break;
        };
        let name = name.trim().to_owned();
        let after = after.trim_start();
        if let Some(quoted) = after.strip_prefix('"') {
            let mut val = String::new();
            let mut chars = quoted.char_indices();
            let mut end = quoted.len();
            while let Some((i, c)) = chars.next() {
                match c {
                    '\\' => {
                        if let Some((_, escaped)) = chars.next() {
                            val.push(escaped);
                        }
                    }
                    '"' => {
                        end = i + 1;
                        break;
                    }
                    c => val.push(c),
                }
            }
            params.push((name, val));
            rest = &quoted[end.min(quoted.len())..];
        } else {
            let (val, tail) = after.split_once(';').unwrap_or((after, ""));
            params.push((name, val.trim().to_owned()));
            rest = tail;
        }
    }
    params
}

/// Decoded last path segment of the URL.
pub(super) fn url_filename(url: &Url) -> Option<String> {
    let segment = url.path_segments()?.rev().find(|s| !s.is_empty())?;
    sanitize_filename(&percent_decode(segment))
}

pub(super) fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let escaped = match bytes.get(i..i + 3) {
            Some([b'%', h, l]) => hex_value(*h).zip(hex_value(*l)),
            _ => None,
        };
        if let Some((h, l)) = escaped {
            out.push(h << 4 | l);
            i += 3;
            continue;
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn hex_value(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        b'A'..=b'F' => Some(b - b'A' + 10),
        _ => None,
    }
}

/// Keeps only the final path component, drops control characters, refuses `.`/`..`/empty.
fn sanitize_filename(name: &str) -> Option<String> {
    let base = name.rsplit(['/', '\\']).next().unwrap_or(name);
    let cleaned: String = base
        .chars()
        .filter(|c| !c.is_control())
        .take(MAX_FILENAME_CHARS)
        .collect();
    let cleaned = cleaned.trim();
    if cleaned.is_empty() || cleaned == "." || cleaned == ".." {
        None
    } else {
        Some(cleaned.to_owned())
    }
}
