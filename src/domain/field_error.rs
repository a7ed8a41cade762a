//! Bad input in the user's words: serde's messages name Rust types (`u32`, `f64`, "a
//! sequence") that mean nothing to someone writing JSON. [`describe`] turns a
//! deserialisation error at a field path into a sentence that names the field as the
//! client spelled it, says what it should be and echoes what was sent.

/// `"{path} must be …; got …"` for a serde error at `path` (`options.fps`, `url`, or empty
/// for the whole body).
pub fn describe(path: &str, err: &serde_json::Error) -> String {
    let field = if path.is_empty() || path == "." {
        "the body".to_string()
    } else {
        format!("`{path}`")
    };
    let text = strip_position(&err.to_string());
    if let Some(name) = between(&text, "missing field `", "`") {
        let full = if path.is_empty() || path == "." {
            name.to_string()
        } else {
            format!("{path}.{name}")
        };
        return format!("`{full}` is required");
    }
    if let Some(rest) = text.strip_prefix("unknown variant `") {
        // "expected `a` or `b`", or "expected one of `a`, `b`, `c`".
        let (got, expected) = rest.split_once("`, expected ").unwrap_or((rest, ""));
        return format!(
            "{field} must be {}; got \"{got}\"",
            expected.replace('`', "")
        );
    }
    for prefix in ["invalid type: ", "invalid value: "] {
        if let Some(rest) = text.strip_prefix(prefix)
            && let Some((got, expected)) = rest.split_once(", expected ")
        {
            return format!(
                "{field} must be {}; got {}",
                expected_words(expected),
                got_words(got)
            );
        }
    }
    if let Some(rest) = text.strip_prefix("invalid length ")
        && let Some((_, expected)) = rest.split_once(", expected ")
    {
        return format!("{field} must be {}", expected_words(expected));
    }
    format!("{field}: {text}")
}

/// "an array", "a string"…: what a JSON value is, for messages.
pub fn json_kind(value: &serde_json::Value) -> &'static str {
    match value {
        serde_json::Value::Null => "null",
        serde_json::Value::Bool(_) => "true or false",
        serde_json::Value::Number(_) => "a number",
        serde_json::Value::String(_) => "a string",
        serde_json::Value::Array(_) => "an array",
        serde_json::Value::Object(_) => "an object",
    }
}

/// serde_json appends ` at line L column C`; the field path already says where.
fn strip_position(text: &str) -> String {
    match text.rfind(" at line ") {
        Some(i) if text[i..].contains(" column ") => text[..i].to_string(),
        _ => text.to_string(),
    }
}

fn between<'a>(text: &'a str, start: &str, end: &str) -> Option<&'a str> {
    let rest = text.strip_prefix(start)?;
    rest.split_once(end).map(|(inside, _)| inside)
}

/// What serde expected, as a JSON writer would say it.
fn expected_words(expected: &str) -> String {
    let words = match expected {
        "u8" | "u16" | "u32" | "u64" | "usize" => "a whole number, 0 or more",
        "i8" | "i16" | "i32" | "i64" | "isize" => "a whole number",
        "f32" | "f64" => "a number",
        "a string" | "a borrowed string" | "string" => "a string",
        "a boolean" | "bool" => "true or false",
        "a sequence" => "a list",
        "a map" => "an object",
        other if other.starts_with("struct ") => "an object",
        other => return other.replace('`', "\""),
    };
    words.to_string()
}

/// What was sent, as JSON: `integer `5`` → `5`, `string "x"` → `"x"`.
fn got_words(got: &str) -> String {
    for prefix in ["integer ", "floating point ", "boolean "] {
        if let Some(v) = got.strip_prefix(prefix) {
            return v.trim_matches('`').to_string();
        }
    }
    if let Some(v) = got.strip_prefix("string ") {
        return v.to_string();
    }
    match got {
        "sequence" => "a list".into(),
        "map" => "an object".into(),
        "unit value" | "null" => "null".into(),
        other => other.to_string(),
    }
}

/// `720.0` → `720`: JSON has one number type, and a client (JavaScript's among them) may
/// write a whole number with a fraction; serde's integers would refuse it.
pub fn whole_numbers(value: serde_json::Value) -> serde_json::Value {
    use serde_json::Value;
    match value {
        Value::Number(n) => match n.as_f64() {
            Some(f) if n.is_f64() && f.fract() == 0.0 && f.abs() < 9e15 => Value::from(f as i64),
            _ => Value::Number(n),
        },
        Value::Array(items) => Value::Array(items.into_iter().map(whole_numbers).collect()),
        Value::Object(map) => Value::Object(
            map.into_iter()
                .map(|(k, v)| (k, whole_numbers(v)))
                .collect(),
        ),
        other => other,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde::Deserialize;

    #[derive(Debug, Deserialize)]
    #[allow(dead_code)]
    struct Body {
        name: String,
        size: u32,
        ratio: f64,
        tags: Vec<String>,
        kind: Kind,
    }

    #[derive(Debug, Deserialize)]
    #[serde(rename_all = "lowercase")]
    enum Kind {
        Small,
        Large,
    }

    fn message(json: &str) -> String {
        let de = &mut serde_json::Deserializer::from_str(json);
        let e = serde_path_to_error::deserialize::<_, Body>(de).unwrap_err();
        let path = e.path().to_string();
        describe(&path, e.inner())
    }

    /// A valid body with `field` set to the JSON `value`.
    fn with(field: &str, value: &str) -> String {
        let mut body = serde_json::json!({
            "name": "a", "size": 1, "ratio": 1, "tags": [], "kind": "small"
        });
        body[field] = serde_json::from_str(value).unwrap();
        message(&body.to_string())
    }

    #[test]
    fn no_rust_type_names_reach_the_user() {
        let cases = [
            (
                "size",
                "\"big\"",
                "`size` must be a whole number, 0 or more; got \"big\"",
            ),
            (
                "size",
                "-1",
                "`size` must be a whole number, 0 or more; got -1",
            ),
            ("ratio", "true", "`ratio` must be a number; got true"),
            ("name", "5", "`name` must be a string; got 5"),
            ("tags", "{}", "`tags` must be a list; got an object"),
            (
                "kind",
                "\"huge\"",
                "`kind` must be small or large; got \"huge\"",
            ),
        ];
        for (field, value, want) in cases {
            assert_eq!(with(field, value), want, "{field}={value}");
        }
        assert_eq!(message(r#"{"name":"a"}"#), "`size` is required");
        for text in cases.map(|c| with(c.0, c.1)) {
            for jargon in ["u32", "f64", "invalid type", "sequence", "line "] {
                assert!(!text.contains(jargon), "{text}");
            }
        }
    }
}
