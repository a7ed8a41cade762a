//! The request contract in the client's words: unknown option keys, contradicting fields,
//! non-object bodies, typed times and rates, and the bearer challenge on every 401.

use reelforge_testkit::app::*;
use serde_json::{Value, json};

/// An app whose URL checks accept `*.reelforge.test` without a lookup, and no worker.
async fn app() -> TestApp {
    spawn_app_with(Options {
        fetch_allow: Some("*.reelforge.test".into()),
        ..Options::default()
    })
    .await
}

const URL: &str = "http://media.reelforge.test/clip.mp4";

async fn submit(app: &TestApp, token: &str, body: Value) -> (u16, Value) {
    let r = app
        .post("/api/tasks", token)
        .json(&body)
        .send()
        .await
        .unwrap();
    (r.status().as_u16(), r.json().await.unwrap())
}

#[tokio::test]
async fn unknown_option_keys_are_refused_naming_the_key_and_the_valid_ones() {
    let app = app().await;
    let t = app.user("olga").await;
    let (status, body) = submit(
        &app,
        &t,
        json!({"url": URL, "options": {"segmentSeconds": 5}}),
    )
    .await;
    assert_eq!(status, 400, "{body}");
    assert_eq!(body["error"], "invalid_options");
    let message = body["message"].as_str().unwrap();
    for words in [
        "`options.segmentSeconds`",
        "idrl",
        "did you mean `segment_seconds`",
        "bumper_seconds",
    ] {
        assert!(message.contains(words), "{message}");
    }
    let (status, body) = submit(
        &app,
        &t,
        json!({"url": URL, "profile": "hls", "options": {"format": "mp4"}}),
    )
    .await;
    assert_eq!(
        (status, body["error"].as_str()),
        (400, Some("invalid_options")),
        "{body}"
    );
}

#[tokio::test]
async fn contradicting_fields_are_refused() {
    let app = app().await;
    let t = app.user("pavel").await;
    for body in [
        json!({"url": URL, "format": "mp4", "profile": "hls"}),
        json!({"url": URL, "format": "mp4", "options": {"format": "webm"}}),
    ] {
        let (status, answer) = submit(&app, &t, body.clone()).await;
        assert_eq!(status, 400, "{body} → {answer}");
        assert_eq!(answer["error"], "conflicting_fields", "{answer}");
    }
    // Shorthand and the same `options.format`, or the convert profile: fine.
    for body in [
        json!({"url": URL, "format": "mp4", "options": {"format": "mp4"}}),
        json!({"url": URL, "format": "webm", "profile": "convert"}),
    ] {
        let (status, answer) = submit(&app, &t, body.clone()).await;
        assert_eq!(status, 201, "{body} → {answer}");
    }
    // newFormat with another profile, in an upload.
    let form = reqwest::multipart::Form::new()
        .part(
            "file",
            reqwest::multipart::Part::bytes(vec![1; 64]).file_name("a.mp4"),
        )
        .text("newFormat", "mp4")
        .text("profile", "thumbnail");
    let r = app
        .post("/api/tasks", &t)
        .multipart(form)
        .send()
        .await
        .unwrap();
    assert_eq!(error_code(r).await, (400, "conflicting_fields".into()));
    assert!(
        app.stored_files().is_empty(),
        "a refused upload leaves nothing"
    );
}

#[tokio::test]
async fn errors_name_the_field_in_plain_words() {
    let app = app().await;
    let t = app.user("quinn").await;
    let cases = [
        (
            json!({"url": URL, "options": {"max_height": "big"}}),
            "`options.max_height` must be a whole number",
        ),
        (
            json!({"url": URL, "options": {"fps": true}}),
            "`options.fps` must be frames per second",
        ),
        (
            json!({"url": URL, "profile": "convert", "options": {"format": "mp4", "start": "1:75"}}),
            "`options.start` must be a number of seconds or a time",
        ),
        (
            json!({"url": URL, "profile": "convert", "options": {}}),
            "`options.format` is required",
        ),
        (
            json!({"url": URL, "options": {"aspect": "21:9"}}),
            "`options.aspect` must be one of 16:9",
        ),
        (json!({"url": 5}), "`url` must be a string; got 5"),
    ];
    for (body, words) in cases {
        let (status, answer) = submit(&app, &t, body.clone()).await;
        assert_eq!(status, 400, "{body}");
        let message = answer["message"].as_str().unwrap();
        assert!(message.contains(words), "{body}: {message}");
        for jargon in ["u32", "f64", "invalid type", "sequence", "at line"] {
            assert!(!message.contains(jargon), "{body}: {message}");
        }
    }
}

#[tokio::test]
async fn the_body_must_be_a_json_object() {
    let app = app().await;
    let t = app.user("rita").await;
    for (path, body) in [
        ("/api/tasks", json!([URL, "idrl"])),
        ("/api/tasks", json!("text")),
        ("/api/auth/login", json!(["rita", "Secret123"])),
        (
            "/api/auth/signup",
            json!(["a", "b@example.com", "Secret123", "Secret123"]),
        ),
    ] {
        let r = app.post(path, &t).json(&body).send().await.unwrap();
        let (status, code) = error_code(r).await;
        assert_eq!(
            (status, code.as_str()),
            (400, "invalid_json"),
            "{path} {body}"
        );
    }
}

#[tokio::test]
async fn times_and_rates_are_read_as_typed() {
    let app = app().await;
    let t = app.user("sven").await;
    let (status, body) = submit(
        &app,
        &t,
        json!({"url": URL, "options": {"segment_seconds": "00:00:30", "fps": "30000/1001"}}),
    )
    .await;
    assert_eq!(status, 201, "{body}");
    assert_eq!(body["options"]["segment_seconds"], 30);
    assert_eq!(body["options"]["fps"], "30000/1001");
    let (status, body) = submit(
        &app,
        &t,
        json!({"url": URL, "profile": "convert",
               "options": {"format": "mp4", "start": "00:00:01.500", "end": 4, "fps": 29.97}}),
    )
    .await;
    assert_eq!(status, 201, "{body}");
    assert_eq!(body["options"]["start"], 1.5);
    assert_eq!(body["options"]["fps"], "30000/1001");
}

#[tokio::test]
async fn every_401_carries_a_bearer_challenge_and_says_why() {
    let app = spawn_app_with(Options {
        token_ttl: Some("1s"),
        ..Options::default()
    })
    .await;
    let t = app.user("tara").await;
    // The scheme name is case-insensitive.
    for scheme in ["Bearer", "bearer", "BEARER"] {
        let r = app
            .client
            .get(app.url("/api/tasks"))
            .header("Authorization", format!("{scheme} {t}"))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200, "{scheme}");
    }
    let challenge = |r: &reqwest::Response| {
        r.headers()
            .get("www-authenticate")
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_string()
    };
    let no_token = app.client.get(app.url("/api/tasks")).send().await.unwrap();
    assert!(challenge(&no_token).starts_with("Bearer"), "{no_token:?}");
    assert_eq!(error_code(no_token).await.1, "unauthorized");
    let bad = app.get("/api/tasks", "not-a-token").send().await.unwrap();
    assert!(challenge(&bad).contains("invalid_token"));
    assert_eq!(error_code(bad).await.1, "invalid_token");
    let login = app
        .post_json(
            "/api/auth/login",
            &json!({"username": "tara", "password": "wrong"}),
        )
        .await;
    assert!(challenge(&login).starts_with("Bearer"));
    // Past its lifetime (1 s, no leeway) the same token is expired, not invalid.
    tokio::time::sleep(std::time::Duration::from_millis(2100)).await;
    let old = app.get("/api/tasks", &t).send().await.unwrap();
    assert!(challenge(&old).contains("invalid_token"));
    assert_eq!(error_code(old).await, (401, "token_expired".into()));
}

#[tokio::test]
async fn the_document_has_typed_options_and_a_401_on_every_authenticated_route() {
    let doc = reelforge::http::openapi();
    let schemas = &doc["components"]["schemas"];
    for name in [
        "IdrlOptions",
        "ConvertOptions",
        "CompressOptions",
        "ThumbnailOptions",
        "HlsOptions",
        "ArchiveOptions",
    ] {
        assert!(schemas[name].is_object(), "{name}");
    }
    let branches = doc["paths"]["/api/tasks"]["post"]["requestBody"]["content"]["application/json"]
        ["schema"]["oneOf"]
        .as_array()
        .unwrap();
    assert_eq!(
        branches.len(),
        7,
        "one per profile and the format shorthand"
    );
    let multipart =
        &doc["paths"]["/api/tasks"]["post"]["requestBody"]["content"]["multipart/form-data"];
    assert!(multipart["schema"]["oneOf"][0]["properties"]["logo"].is_object());
    for (path, item) in doc["paths"].as_object().unwrap() {
        for (method, op) in item.as_object().unwrap() {
            for (status, response) in op["responses"].as_object().unwrap() {
                assert!(
                    response["description"]
                        .as_str()
                        .is_some_and(|d| !d.is_empty()),
                    "{method} {path} {status}"
                );
            }
            if op.get("security").is_some() {
                assert!(
                    op["responses"]["401"]["headers"]["WWW-Authenticate"].is_object(),
                    "{method} {path}"
                );
            }
        }
    }
}
