//! `-o key=value` as the API's `options` object: each value typed by the profile's schema
//! (the one the OpenAPI document publishes), then checked by the server's own validation
//! ([`parse_profile`]) before a byte is sent, so a mistake costs no upload and reads as
//! the API would have said it.

use serde_json::{Map, Value};

use super::{ClientError, ClientResult};
use crate::domain::task::{option_schemas, parse_profile};
use crate::media::idrl::IdrlOptions;

/// The profile and options a submit asks for, valid as far as the API can tell without
/// the input.
#[derive(Debug, Clone, PartialEq)]
pub struct Request {
    pub profile: String,
    pub options: Map<String, Value>,
}

/// Read `-o` pairs for `profile` (the service's default when `None`) and validate them.
pub fn request(profile: Option<&str>, pairs: &[String]) -> ClientResult<Request> {
    let profile = profile.unwrap_or(IdrlOptions::NAME).to_string();
    let schema = option_schemas()
        .into_iter()
        .find(|(name, _)| *name == profile)
        .map(|(_, schema)| schema);
    let mut options = Map::new();
    for pair in pairs {
        let (key, text) = pair.split_once('=').ok_or_else(|| {
            ClientError::usage(format!(
                "-o {pair:?}: give an option as key=value, e.g. -o format=webm"
            ))
        })?;
        let key = key.trim();
        if key.is_empty() {
            return Err(ClientError::usage(format!(
                "-o {pair:?}: the option's name is missing before `=`"
            )));
        }
        let property = schema.as_ref().map(|s| &s["properties"][key]);
        options.insert(key.to_string(), typed(property, text));
    }
    parse_profile(Some(&profile), Some(Value::Object(options.clone())))
        .map_err(|(code, message)| ClientError::usage(format!("{code}: {message}")))?;
    Ok(Request { profile, options })
}

/// `text` as the JSON value the option takes: a number, boolean, array or object when the
/// schema accepts one and the text is one (`fps=25`, `crf=23`), else the text as a string
/// (`fps=30000/1001`, `start=00:01:30`, `format=webm`).
fn typed(property: Option<&Value>, text: &str) -> Value {
    let Ok(parsed) = serde_json::from_str::<Value>(text) else {
        return Value::String(text.to_string());
    };
    let kind = match &parsed {
        Value::Number(n) if n.is_i64() || n.is_u64() => ["integer", "number"].as_slice(),
        Value::Number(_) => &["number"],
        Value::Bool(_) => &["boolean"],
        Value::Array(_) => &["array"],
        Value::Object(_) => &["object"],
        Value::Null => &["null"],
        Value::String(_) => return parsed,
    };
    // An unknown option keeps the JSON reading: the validation names it anyway.
    let accepted = property.is_none_or(Value::is_null)
        || property.is_some_and(|p| kind.iter().any(|k| accepts(p, k)));
    if accepted {
        parsed
    } else {
        Value::String(text.to_string())
    }
}

/// Whether a schema (or one of its `anyOf`/`oneOf` branches) has JSON type `kind`.
fn accepts(schema: &Value, kind: &str) -> bool {
    let own = match &schema["type"] {
        Value::String(t) => t == kind,
        Value::Array(ts) => ts.iter().any(|t| t == kind),
        _ => false,
    };
    own || ["anyOf", "oneOf"].iter().any(|k| {
        schema[*k]
            .as_array()
            .is_some_and(|branches| branches.iter().any(|b| accepts(b, kind)))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pairs(list: &[&str]) -> Vec<String> {
        list.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn values_take_the_type_the_schema_accepts() {
        let r = request(
            Some("convert"),
            &pairs(&[
                "format=webm",
                "fps=30000/1001",
                "start=00:00:01.5",
                "max_height=480",
            ]),
        )
        .unwrap();
        assert_eq!(r.profile, "convert");
        assert_eq!(r.options["format"], "webm");
        assert_eq!(r.options["fps"], "30000/1001");
        assert_eq!(r.options["start"], "00:00:01.5");
        assert_eq!(r.options["max_height"], 480);
        let r = request(None, &pairs(&["segment_seconds=0", "background=#112233"])).unwrap();
        assert_eq!(r.profile, "idrl");
        assert_eq!(r.options["segment_seconds"], 0);
        assert_eq!(r.options["background"], "#112233");
    }

    #[test]
    fn mistakes_read_as_the_api_says_them_and_are_usage_errors() {
        let e = request(Some("convert"), &pairs(&["format=webm", "fps=500"])).unwrap_err();
        assert_eq!(e.exit, super::super::Exit::Usage);
        assert!(e.message.starts_with("invalid_options: options.fps"), "{e}");
        let e = request(
            Some("convert"),
            &pairs(&["format=webm", "segmentSeconds=3"]),
        )
        .unwrap_err();
        assert!(e.message.contains("segmentSeconds"), "{e}");
        let e = request(Some("thumbnails"), &[]).unwrap_err();
        assert!(
            e.message
                .starts_with("invalid_profile: unknown profile \"thumbnails\""),
            "{e}"
        );
        let e = request(Some("convert"), &pairs(&["format"])).unwrap_err();
        assert!(e.message.contains("key=value"), "{e}");
        let e = request(Some("convert"), &pairs(&["=webm"])).unwrap_err();
        assert!(e.message.contains("name is missing"), "{e}");
        // convert needs its format, as the API says.
        let e = request(Some("convert"), &[]).unwrap_err();
        assert!(e.message.starts_with("invalid_options:"), "{e}");
    }
}
