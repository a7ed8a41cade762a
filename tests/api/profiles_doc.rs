//! docs/profiles.md is checked against the OpenAPI document's option schemas: every
//! `<!-- options:NAME -->` block must be the table rendered from `NAMEOptions`.
//! `REELFORGE_BLESS=1 cargo test --test api profiles_doc` rewrites the blocks.

use serde_json::Value;

const DOC: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/docs/profiles.md");

#[test]
fn profile_reference_matches_the_schemas() {
    let doc = reelforge::http::openapi();
    let text = std::fs::read_to_string(DOC).unwrap();
    let mut rendered = text.clone();
    for (profile, _) in reelforge::domain::task::option_schemas() {
        let name = reelforge::http::openapi::options_component(profile);
        let schema = &doc["components"]["schemas"][&name];
        assert!(schema.is_object(), "{name} missing from the document");
        rendered = replace_block(&rendered, profile, &options_table(schema))
            .unwrap_or_else(|| panic!("docs/profiles.md has no <!-- options:{profile} --> block"));
    }
    if std::env::var_os("REELFORGE_BLESS").is_some() {
        std::fs::write(DOC, &rendered).unwrap();
        return;
    }
    assert!(
        text == rendered,
        "docs/profiles.md is out of date with the option schemas; \
         run `REELFORGE_BLESS=1 cargo test --test api profiles_doc`"
    );
}

/// `text` with the block of `profile` replaced by `body`; `None` without such a block.
fn replace_block(text: &str, profile: &str, body: &str) -> Option<String> {
    let open = format!("<!-- options:{profile} -->\n");
    let close = "<!-- /options -->";
    let start = text.find(&open)? + open.len();
    let end = start + text[start..].find(close)?;
    Some(format!("{}{body}{}", &text[..start], &text[end..]))
}

/// One table per branch (convert has a branch per kind of format), else one table.
fn options_table(schema: &Value) -> String {
    match schema["oneOf"].as_array() {
        Some(branches) if branches.iter().all(|b| b["properties"].is_object()) => branches
            .iter()
            .map(|b| format!("**{}**\n\n{}", b["title"].as_str().unwrap_or(""), table(b)))
            .collect::<Vec<_>>()
            .join("\n"),
        _ => table(schema),
    }
}

fn table(schema: &Value) -> String {
    let required: Vec<&str> = schema["required"]
        .as_array()
        .map(|r| r.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default();
    let mut out = String::from("| option | accepts | default | meaning |\n|---|---|---|---|\n");
    for (name, prop) in schema["properties"].as_object().into_iter().flatten() {
        let default = match &prop["default"] {
            Value::Null if required.contains(&name.as_str()) => "required".to_string(),
            Value::Null => "—".to_string(),
            d => format!("`{d}`"),
        };
        let meaning = prop["description"]
            .as_str()
            .unwrap_or("")
            .replace('|', "\\|");
        out += &format!("| `{name}` | {} | {default} | {meaning} |\n", accepts(prop));
    }
    out
}

/// What a property accepts, in words: ranges, enumerations, alternatives.
fn accepts(s: &Value) -> String {
    if let Some(alts) = s["anyOf"].as_array() {
        return alts.iter().map(accepts).collect::<Vec<_>>().join(" or ");
    }
    if let Some(c) = s.get("const") {
        return format!("`{c}`");
    }
    if let Some(values) = s["enum"].as_array() {
        let shown: Vec<String> = values
            .iter()
            .take(12)
            .map(|v| format!("`{}`", plain(v)))
            .collect();
        let more = values.len().saturating_sub(12);
        return if more > 0 {
            format!("{} … ({more} more)", shown.join(", "))
        } else {
            shown.join(", ")
        };
    }
    let range = |lo: &str, hi: &str| match (&s[lo], &s[hi]) {
        (Value::Null, Value::Null) => String::new(),
        (l, Value::Null) => format!(" ≥ {l}"),
        (Value::Null, h) => format!(" ≤ {h}"),
        (l, h) => format!(" {l}–{h}"),
    };
    match s["type"].as_str() {
        Some("integer") => format!("whole number{}", range("minimum", "maximum")),
        Some("number") if s["exclusiveMinimum"].is_number() => {
            format!(
                "number > {}{}",
                s["exclusiveMinimum"],
                range("none", "maximum")
            )
        }
        Some("number") => format!("number{}", range("minimum", "maximum")),
        Some("array") => format!(
            "list ({}–{} items) of {}",
            s["minItems"].as_u64().unwrap_or(0),
            s["maxItems"]
                .as_u64()
                .map_or("any".into(), |m| m.to_string()),
            accepts(&s["items"])
        ),
        Some("string") if s["examples"].is_array() => {
            format!("text like `{}`", plain(&s["examples"][0]))
        }
        Some("string") if s["pattern"].is_string() => {
            format!("text matching `{}`", plain(&s["pattern"]))
        }
        Some(t) => t.to_string(),
        None => "any".to_string(),
    }
}

fn plain(v: &Value) -> String {
    v.as_str()
        .map(str::to_string)
        .unwrap_or_else(|| v.to_string())
}
