//! File names that come from users (uploads, URLs) made safe to store and show.

/// Keep the last path component; replace anything outside `[A-Za-z0-9._-]`; no leading
/// dots (no hidden files, no `..`); at most 128 characters; `upload.bin` when nothing is left.
pub fn safe_filename(name: &str) -> String {
    let base = name.rsplit(['/', '\\']).next().unwrap_or("");
    let cleaned: String = base
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-') {
                c
            } else {
                '_'
            }
        })
        .take(128)
        .collect();
    let trimmed = cleaned.trim_start_matches('.');
    if trimmed.is_empty() {
        "upload.bin".to_string()
    } else {
        trimmed.to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::safe_filename;

    #[test]
    fn keeps_the_base_name_and_safe_characters_only() {
        assert_eq!(safe_filename("../../etc/passwd"), "passwd");
        assert_eq!(safe_filename(r"C:\Users\ana\Mi vídeo.mp4"), "Mi_v_deo.mp4");
        assert_eq!(safe_filename("..."), "upload.bin");
        assert_eq!(safe_filename(".hidden.mov"), "hidden.mov");
        assert_eq!(safe_filename(&"a".repeat(300)).len(), 128);
    }
}
