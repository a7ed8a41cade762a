//! The OpenAPI document. utoipa writes the operations from the handlers' annotations;
//! [`finish`] then adds, as JSON, what annotations cannot say: the profiles' option
//! schemas (a `oneOf` keyed by `profile`, built from each profile's own schema), the
//! 401 every authenticated route can answer, a description on every response, and the
//! legacy aliases. `tests/contract` checks the result with openapi-spec-validator and
//! schemathesis.

use serde_json::{Map, Value, json};
use utoipa::openapi::OpenApi;

use super::ALIASES;
use crate::domain::task::option_schemas;
use crate::media::formats::Format;
use crate::media::schema::{documented, enum_of};

/// The component name of a profile's options: `idrl` → `IdrlOptions`.
pub fn options_component(profile: &str) -> String {
    let mut name = profile[..1].to_ascii_uppercase();
    name.push_str(&profile[1..]);
    name + "Options"
}

/// utoipa's document, finished (see the module comment).
pub fn finish(doc: OpenApi) -> Value {
    let mut doc = serde_json::to_value(doc).unwrap_or_else(|_| json!({}));
    add_components(&mut doc);
    account_bodies(&mut doc);
    task_bodies(&mut doc);
    tus_headers(&mut doc);
    for_each_operation(&mut doc, |op| {
        if op.get("security").is_some() {
            // Every route a bearer token opens, the browser session's cookie opens too
            // (`http::extract::AuthUser`).
            op["security"] = json!([{"bearer": []}, {"session": []}]);
            op["responses"]["401"] = unauthorized();
        }
        describe_responses(op);
    });
    add_aliases(&mut doc);
    doc
}

fn add_components(doc: &mut Value) {
    let schemas = &mut doc["components"]["schemas"];
    for (profile, schema) in option_schemas() {
        schemas[options_component(profile)] = schema;
    }
    schemas["Format"] = documented(
        enum_of(Format::ALL),
        "An output format of the convert profile.",
        None::<()>,
    );
    schemas["TaskUrl"] = json!({
        "type": "string", "format": "uri", "maxLength": 2048,
        "pattern": "^https?://[A-Za-z0-9]",
        "description": "http(s) URL of the media to fetch. Refused with 422 \
            `url_not_allowed` when it resolves to a loopback, private or reserved address, \
            and with 422 when its host cannot be resolved.",
        "examples": ["https://example.com/clip.mp4"]
    });
    doc["components"]["securitySchemes"]["bearer"] =
        json!({"type": "http", "scheme": "bearer", "bearerFormat": "JWT"});
    doc["components"]["securitySchemes"]["session"] = json!({
        "type": "apiKey", "in": "cookie", "name": crate::http::session::COOKIE,
        "description": "The browser session of `POST /api/session`. With it, POST, PUT, \
            PATCH and DELETE need the session's `X-CSRF-Token` header and no foreign \
            `Origin` (else 403 `csrf_failed`); a bearer token wins when both are sent."
    });
}

/// Sign-up and log-in bodies as the handlers check them (the structs read every field as
/// optional, to answer a missing one in words): both spellings of the repeated password.
fn account_bodies(doc: &mut Value) {
    let username = json!({
        "type": "string", "pattern": "^[A-Za-z0-9_.-]{3,64}$",
        "description": "3 to 64 letters, digits, `_`, `.` or `-`; unique whatever the case."
    });
    let email = json!({
        "type": "string", "maxLength": 254,
        "pattern": "^[A-Za-z0-9_%+-]{1,32}(\\.[A-Za-z0-9_%+-]{1,16})?@([A-Za-z0-9]([A-Za-z0-9-]{0,20}[A-Za-z0-9])?\\.){1,3}[A-Za-z]{2,12}$",
        "description": "An e-mail address; unique whatever the case.",
        "examples": ["alice@example.com"]
    });
    let password = json!({
        "type": "string", "pattern": crate::domain::PASSWORD_PATTERN,
        "description": "8 to 1024 characters with an upper-case letter, a lower-case letter and a digit."
    });
    let repeat = json!({"type": "string", "description": "The password again (must be equal)."});
    let signup = |first: &str, second: &str| {
        json!({
            "title": format!("`{first}` + `{second}`"),
            "type": "object", "additionalProperties": false,
            "required": ["username", "email", first, second],
            "properties": {"username": username, "email": email, first: password, second: repeat}
        })
    };
    let schemas = &mut doc["components"]["schemas"];
    schemas["SignupRequest"] = json!({
        "description": "A new account; the password twice, in either spelling of the earlier systems.",
        "oneOf": [signup("password", "password_2"), signup("password1", "password2")]
    });
    let secret = json!({"type": "string", "minLength": 1, "maxLength": 1024});
    let login = |id: &str, words: &str| {
        json!({
            "title": format!("by {id}"),
            "type": "object", "additionalProperties": false,
            "required": [id, "password"],
            "properties": {
                id: {"type": "string", "minLength": 1, "maxLength": 254,
                     "pattern": "^[^\\s]+$", "description": words},
                "password": secret
            }
        })
    };
    // A password reset's new password follows the same rules.
    let mut reset_password = password.clone();
    reset_password["description"] = json!(
        "The new password: 8 to 1024 characters with an upper-case letter, a lower-case \
         letter and a digit."
    );
    schemas["ResetConfirm"]["properties"]["password"] = reset_password;
    schemas["PasswordChangeRequest"] = json!({
        "description": "The account's current password, and the new one.",
        "type": "object", "additionalProperties": false,
        "required": ["currentPassword", "newPassword"],
        "properties": {"currentPassword": secret, "newPassword": password}
    });
    schemas["LoginRequest"] = json!({
        "description": "Log in with a user name or an e-mail address (one with `@` in \
            `username` is looked up as an e-mail too).",
        "oneOf": [login("username", "The user name (or e-mail address)."),
                  login("email", "The e-mail address.")]
    });
}

/// `POST /api/tasks`: JSON and multipart bodies, one branch per profile plus the
/// `format`/`newFormat` shorthand of the convert profile.
fn task_bodies(doc: &mut Value) {
    let op = &mut doc["paths"]["/api/tasks"]["post"];
    // What a client does with a new task's id (clients and generators follow these).
    let links: Map<String, Value> = [
        ("get_task", "GetTask"),
        ("task_events", "FollowEvents"),
        ("cancel_task", "CancelTask"),
        ("retry_task", "RetryTask"),
        ("download_input", "DownloadInput"),
        ("delete_task", "DeleteTask"),
    ]
    .into_iter()
    .map(|(op, name)| {
        let link = json!({"operationId": op, "parameters": {"id": "$response.body#/id"}});
        (name.to_string(), link)
    })
    .collect();
    op["responses"]["201"]["links"] = Value::Object(links);
    // The handler's structs (read leniently, to answer in words) are replaced below.
    if let Some(schemas) = doc["components"]["schemas"].as_object_mut() {
        schemas.remove("CreateTaskRequest");
        schemas.remove("UploadForm");
    }
    let op = &mut doc["paths"]["/api/tasks"]["post"];
    op["requestBody"] = json!({
        "required": true,
        "content": {
            "application/json": {"schema": request_schema(json_source(), "format")},
            "multipart/form-data": {
                "schema": request_schema(upload_source(), "newFormat"),
                "encoding": {
                    "options": {"contentType": "application/json"},
                    "logo": {"contentType": "image/png"}
                }
            }
        }
    });
}

/// A JSON task's input: `url` or `upload`, exactly one (see [`ONE_JSON_SOURCE`]).
fn json_source() -> Map<String, Value> {
    let mut m = Map::new();
    m.insert(
        "url".into(),
        json!({"$ref": "#/components/schemas/TaskUrl"}),
    );
    m.insert(
        "upload".into(),
        json!({"type": "string", "minLength": 1, "maxLength": 256,
               "description": "A finished resumable upload (`/api/uploads`), by id or URL: \
                   the task gets the upload's id, and the profile of the upload's metadata \
                   unless this request names one. 409 `upload_incomplete` before its last \
                   byte, 409 `upload_used` once a task was made from it."}),
    );
    m
}

/// The JSON body names its input once: a URL to fetch or a finished upload.
const ONE_JSON_SOURCE: &str = r#"[{"required": ["url"]}, {"required": ["upload"]}]"#;

fn upload_source() -> Map<String, Value> {
    let mut m = Map::new();
    m.insert(
        "file".into(),
        json!({"type": "string", "minLength": 1, "contentMediaType": "application/octet-stream",
               "description": "The media (streamed to storage; `video` is accepted as the part name too)."}),
    );
    m.insert(
        "fileName".into(),
        json!({"type": "string", "maxLength": 255,
               "description": "The name to show and to derive output names from; default: the file part's name."}),
    );
    m
}

/// `oneOf` one branch per profile (its `options` as that profile's schema) and the
/// shorthand branch `{shorthand: FORMAT}` for convert. The default profile's branch
/// needs no `profile`; every branch refuses keys it does not list, so each body matches
/// exactly one branch.
fn request_schema(mut source: Map<String, Value>, shorthand: &str) -> Value {
    let is_json = source.contains_key("upload");
    let required_source: Vec<String> = if is_json {
        vec![] // one of the two, below
    } else {
        source
            .keys()
            .filter(|k| *k != "fileName")
            .cloned()
            .collect()
    };
    source.insert(
        "webhook_url".into(),
        json!({"allOf": [{"$ref": "#/components/schemas/TaskUrl"}],
               "description": "Where to POST this task's events (`task.started`, \
                   `task.succeeded`, `task.failed`, `task.cancelled`), signed with your \
                   default webhook secret (`GET /api/account/webhook-secret`); the same \
                   address rules as a URL to fetch (422 `url_not_allowed`)."}),
    );
    let one_source: Value = serde_json::from_str(ONE_JSON_SOURCE).unwrap_or(Value::Null);
    let mut branches = Vec::new();
    for (i, (profile, schema)) in option_schemas().into_iter().enumerate() {
        let mut props = source.clone();
        props.insert(
            "profile".into(),
            json!({"type": "string", "const": profile}),
        );
        props.insert(
            "options".into(),
            json!({"$ref": format!("#/components/schemas/{}", options_component(profile))}),
        );
        let is_default = i == 0;
        if is_default && shorthand == "newFormat" {
            props.insert(
                "logo".into(),
                json!({"type": "string", "contentMediaType": "image/png",
                       "description": "This task's logo card: a PNG image (default: the service's logo)."}),
            );
        }
        let mut required: Vec<Value> = required_source.iter().map(|k| json!(k)).collect();
        if !is_default {
            required.push(json!("profile"));
        }
        if options_required(&schema) {
            required.push(json!("options"));
        }
        branches.push(json!({
            "title": if is_default { format!("{profile} (the default profile)") } else { profile.to_string() },
            "type": "object", "additionalProperties": false,
            "properties": props, "required": required
        }));
    }
    let mut props = source.clone();
    props.insert(
        shorthand.into(),
        json!({"$ref": "#/components/schemas/Format",
               "description": "Shorthand for `{\"profile\": \"convert\", \"options\": {\"format\": …}}`."}),
    );
    let mut required: Vec<Value> = required_source.iter().map(|k| json!(k)).collect();
    required.push(json!(shorthand));
    branches.push(json!({
        "title": format!("convert, shorthand `{shorthand}`"),
        "type": "object", "additionalProperties": false,
        "properties": props, "required": required
    }));
    if is_json {
        for branch in &mut branches {
            branch["oneOf"] = one_source.clone();
        }
    }
    json!({"oneOf": branches})
}

/// The tus headers' values, which utoipa's parameter tuples cannot say: the one protocol
/// version, and sizes as non-negative integers.
fn tus_headers(doc: &mut Value) {
    let Some(paths) = doc["paths"].as_object_mut() else {
        return;
    };
    for (_, item) in paths
        .iter_mut()
        .filter(|(p, _)| p.starts_with("/api/uploads"))
    {
        for method in METHODS {
            let params = item.get_mut(method).and_then(|op| op.get_mut("parameters"));
            let Some(params) = params.and_then(Value::as_array_mut) else {
                continue;
            };
            for param in params.iter_mut().filter(|p| p["in"] == "header") {
                let schema = match param["name"].as_str() {
                    Some("Tus-Resumable") => json!({"type": "string", "const": "1.0.0"}),
                    Some("Upload-Length") => json!({"type": "integer", "minimum": 1}),
                    Some("Upload-Offset") => json!({"type": "integer", "minimum": 0}),
                    _ => continue,
                };
                param["schema"] = schema;
            }
        }
    }
}

/// Whether a profile's options must be given: its schema requires a field, in every
/// branch when it has branches.
fn options_required(schema: &Value) -> bool {
    let requires = |s: &Value| s["required"].as_array().is_some_and(|r| !r.is_empty());
    requires(schema)
        || schema["oneOf"]
            .as_array()
            .is_some_and(|branches| !branches.is_empty() && branches.iter().all(requires))
}

fn unauthorized() -> Value {
    json!({
        "description": "No bearer token or live session (`unauthorized`), a bad token \
            (`invalid_token`) or an expired one (`token_expired`: log in again).",
        "headers": {"WWW-Authenticate": {
            "description": "`Bearer realm=\"reelforge\"`, with `error=\"invalid_token\"` when a token was refused.",
            "schema": {"type": "string"}
        }},
        "content": {"application/json": {"schema": {"$ref": "#/components/schemas/ErrorBody"}}}
    })
}

/// OpenAPI requires a description on every response; utoipa leaves it empty when the
/// annotation gives none. The status's reason phrase fills it.
fn describe_responses(op: &mut Value) {
    let Some(responses) = op["responses"].as_object_mut() else {
        return;
    };
    for (status, response) in responses.iter_mut() {
        let empty = response["description"].as_str().is_none_or(str::is_empty);
        if empty {
            let reason = status
                .parse::<u16>()
                .ok()
                .and_then(|s| axum::http::StatusCode::from_u16(s).ok())
                .and_then(|s| s.canonical_reason())
                .unwrap_or("response");
            response["description"] = json!(reason);
        }
    }
}

const METHODS: [&str; 7] = ["get", "post", "put", "patch", "delete", "head", "options"];

fn for_each_operation(doc: &mut Value, mut f: impl FnMut(&mut Value)) {
    let Some(paths) = doc["paths"].as_object_mut() else {
        return;
    };
    for item in paths.values_mut() {
        for method in METHODS {
            if let Some(op) = item.get_mut(method) {
                f(op);
            }
        }
    }
}

/// The legacy routes without `/api`: the canonical operations, marked as aliases.
fn add_aliases(doc: &mut Value) {
    for (alias, canonical) in ALIASES {
        let mut item = doc["paths"][canonical].clone();
        if item.is_null() {
            continue;
        }
        for method in METHODS {
            if let Some(op) = item.get_mut(method) {
                let id = op["operationId"].as_str().unwrap_or(method).to_string();
                op["operationId"] = json!(format!("{id}_alias"));
                op["tags"] = json!(["aliases"]);
                op["description"] = json!(format!(
                    "Legacy alias of `{canonical}` (no /api prefix): same handler, same behaviour."
                ));
            }
        }
        doc["paths"][alias] = item;
    }
}
