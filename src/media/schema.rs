//! Building blocks of the options' JSON Schemas (the OpenAPI document and
//! `docs/profiles.md` are made from them). Each profile writes its schema beside its
//! `validate`, from the same constants; the contract tests check that what the schema
//! calls valid the server accepts.

use serde::Serialize;
use serde_json::{Value, json};

use super::units::{RATE_WORDS, TIME_WORDS};

/// `{"type": "string", "enum": [...]}` of the values as serde writes them.
pub fn enum_of<T: Serialize>(values: impl IntoIterator<Item = T>) -> Value {
    let names: Vec<Value> = values
        .into_iter()
        .filter_map(|v| serde_json::to_value(v).ok())
        .collect();
    json!({"type": "string", "enum": names})
}

/// `schema` with a description and, when there is one, its default.
pub fn documented<T: Serialize>(mut schema: Value, description: &str, default: Option<T>) -> Value {
    schema["description"] = json!(description);
    if let Some(d) = default.and_then(|d| serde_json::to_value(d).ok()) {
        schema["default"] = d;
    }
    schema
}

/// A time in the media: seconds (`>= 0`) or `HH:MM:SS(.mmm)`.
pub fn time(description: &str) -> Value {
    json!({
        "description": format!("{description} ({TIME_WORDS})."),
        "anyOf": [
            {"type": "number", "minimum": 0},
            {"type": "string", "pattern": "^[0-9]{1,6}:[0-5][0-9]:[0-5][0-9](\\.[0-9]{1,3})?$",
             "examples": ["00:01:30.5"]}
        ]
    })
}

/// Frames per second from 1 to `max`: a number, or an exact NTSC fraction.
pub fn rate(max: u32, description: &str) -> Value {
    let fractions: Vec<&str> = ["24000/1001", "30000/1001", "60000/1001"]
        .into_iter()
        .filter(|f| below(f, max))
        .collect();
    json!({
        "description": format!("{description} ({RATE_WORDS}); from 1 to {max}."),
        "anyOf": [
            {"type": "number", "minimum": 1, "maximum": max},
            {"type": "string", "enum": fractions}
        ]
    })
}

/// Whether the fraction `N/1001` is at most `max` frames per second.
fn below(fraction: &str, max: u32) -> bool {
    super::units::Rate::parse(fraction).is_some_and(|r| r.value() <= f64::from(max))
}

/// Maximum output height in lines; never upscaled.
pub fn max_height(default: Option<u32>) -> Value {
    let mut s = json!({
        "type": "integer",
        "minimum": super::geometry::MIN_HEIGHT,
        "maximum": super::geometry::MAX_HEIGHT,
        "description": "Maximum output height in lines; the video is never upscaled."
    });
    if let Some(d) = default {
        s["default"] = json!(d);
    }
    s
}

/// An object schema that refuses unknown keys.
pub fn object(description: &str, properties: Value) -> Value {
    json!({
        "type": "object",
        "description": description,
        "additionalProperties": false,
        "properties": properties
    })
}
