use reelforge_testkit::app::*;
use serde_json::{Value, json};

#[tokio::test]
async fn signup_accepts_both_seed_spellings() {
    let app = spawn_app().await;
    let a = app
        .post_json(
            "/auth/signup",
            &json!({"username": "admin", "email": "admin@gmail.com",
            "password": "Admin123", "password_2": "Admin123"}),
        )
        .await;
    assert_eq!(a.status(), 201);
    let body: Value = a.json().await.unwrap();
    assert_eq!(body["username"], "admin");
    assert_eq!(body["email"], "admin@gmail.com");
    assert_eq!(body["message"], "user created");
    assert!(uuid::Uuid::parse_str(body["id"].as_str().unwrap()).is_ok());
    let b = app
        .post_json(
            "/api/auth/signup",
            &json!({"username": "bob", "email": "bob@example.com",
            "password1": "Admin123", "password2": "Admin123", "extra": "ignored"}),
        )
        .await;
    assert_eq!(b.status(), 201);
}

#[tokio::test]
async fn signup_rules() {
    let app = spawn_app().await;
    let base = json!({"username": "carol", "email": "carol@example.com",
        "password1": "Secret123", "password2": "Secret123"});
    let cases: Vec<(Value, u16, &str)> = vec![
        (
            json!({"email": "x@example.com", "password1": "Secret123", "password2": "Secret123"}),
            400,
            "missing_field",
        ),
        (
            json!({"username": "carol", "password1": "Secret123", "password2": "Secret123"}),
            400,
            "missing_field",
        ),
        (
            json!({"username": "carol", "email": "carol@example.com", "password1": "Secret123"}),
            400,
            "missing_field",
        ),
        (
            json!({"username": "carol", "email": "carol@example.com", "password1": "Secret123", "password2": "Secret124"}),
            400,
            "password_mismatch",
        ),
        (
            json!({"username": "carol", "email": "carol@example.com", "password1": "short1A", "password2": "short1A"}),
            400,
            "weak_password",
        ),
        (
            json!({"username": "carol", "email": "carol@example.com", "password1": "nouppercase1", "password2": "nouppercase1"}),
            400,
            "weak_password",
        ),
        (
            json!({"username": "carol", "email": "carol@example.com", "password1": "NoDigitsHere", "password2": "NoDigitsHere"}),
            400,
            "weak_password",
        ),
        (
            json!({"username": "carol", "email": "not-an-email", "password1": "Secret123", "password2": "Secret123"}),
            400,
            "invalid_field",
        ),
        (
            json!({"username": "c", "email": "carol@example.com", "password1": "Secret123", "password2": "Secret123"}),
            400,
            "invalid_field",
        ),
        (
            json!({"username": "car ol", "email": "carol@example.com", "password1": "Secret123", "password2": "Secret123"}),
            400,
            "invalid_field",
        ),
        (
            json!({"username": 42, "email": "carol@example.com", "password1": "Secret123", "password2": "Secret123"}),
            400,
            "invalid_field",
        ),
    ];
    for (body, status, code) in cases {
        let r = app.post_json("/api/auth/signup", &body).await;
        assert_eq!(error_code(r).await, (status, code.to_string()), "{body}");
    }
    // Wrong type names the field.
    let r = app
        .post_json(
            "/api/auth/signup",
            &json!({"username": 42, "email": "a@b.co"}),
        )
        .await;
    let body: Value = r.json().await.unwrap();
    assert!(
        body["message"].as_str().unwrap().contains("username"),
        "{body}"
    );
    // Malformed JSON.
    let r = app
        .client
        .post(app.url("/api/auth/signup"))
        .header("content-type", "application/json")
        .body("{\"username\": ")
        .send()
        .await
        .unwrap();
    assert_eq!(error_code(r).await, (400, "invalid_json".into()));
    // Nothing was created by any of that.
    assert_eq!(app.post_json("/api/auth/signup", &base).await.status(), 201);
}

#[tokio::test]
async fn duplicates_conflict_and_email_is_case_insensitive() {
    let app = spawn_app().await;
    app.signup("dave").await;
    let again = app
        .post_json(
            "/api/auth/signup",
            &json!({"username": "dave", "email": "other@example.com",
            "password1": "Secret123", "password2": "Secret123"}),
        )
        .await;
    assert_eq!(error_code(again).await, (409, "username_taken".into()));
    let email = app
        .post_json(
            "/api/auth/signup",
            &json!({"username": "dave2", "email": "DAVE@Example.com",
            "password1": "Secret123", "password2": "Secret123"}),
        )
        .await;
    assert_eq!(error_code(email).await, (409, "email_taken".into()));
}

#[tokio::test]
async fn login_by_email_or_username_and_identical_401s() {
    let app = spawn_app().await;
    app.signup("erin").await;
    for body in [
        json!({"email": "erin@example.com", "password": "Secret123"}),
        json!({"email": "ERIN@example.com", "password": "Secret123"}),
        json!({"username": "erin", "password": "Secret123"}),
        json!({"username": "erin@example.com", "password": "Secret123"}),
    ] {
        let r = app.post_json("/auth/login", &body).await;
        assert_eq!(r.status(), 200, "{body}");
        let v: Value = r.json().await.unwrap();
        assert_eq!(v["token_type"], "Bearer");
        assert_eq!(v["expires_in"], 3600);
        assert_eq!(v["user"]["username"], "erin");
        assert_eq!(v["token"].as_str().unwrap().split('.').count(), 3);
    }
    let wrong = app
        .post_json(
            "/api/auth/login",
            &json!({"username": "erin", "password": "Wrong1234"}),
        )
        .await;
    let unknown = app
        .post_json(
            "/api/auth/login",
            &json!({"username": "nobody", "password": "Wrong1234"}),
        )
        .await;
    assert_eq!(wrong.status(), 401);
    assert_eq!(unknown.status(), 401);
    assert_eq!(wrong.text().await.unwrap(), unknown.text().await.unwrap());
    let missing = app
        .post_json("/api/auth/login", &json!({"username": "erin"}))
        .await;
    assert_eq!(error_code(missing).await, (400, "missing_field".into()));
}

#[tokio::test]
async fn repeated_failures_are_rate_limited_per_account() {
    let app = spawn_app().await;
    app.signup("frank").await;
    let mut limited = None;
    for _ in 0..10 {
        let r = app
            .post_json(
                "/api/auth/login",
                &json!({"username": "frank", "password": "Wrong1234"}),
            )
            .await;
        if r.status() == 429 {
            limited = Some(r);
            break;
        }
        assert_eq!(r.status(), 401);
    }
    let r = limited.expect("no 429 after 10 failed logins");
    let retry: u64 = r.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!(retry >= 1);
    assert_eq!(error_code(r).await, (429, "rate_limited".into()));
    // Another account from the same address still gets through.
    app.signup("grace").await;
    let ok = app
        .post_json(
            "/api/auth/login",
            &json!({"username": "grace", "password": "Secret123"}),
        )
        .await;
    assert_eq!(ok.status(), 200);
}

#[tokio::test]
async fn tokens_missing_garbage_foreign_or_expired_are_401() {
    let app = spawn_app().await;
    let token = app.user("heidi").await;
    assert_eq!(
        app.get("/api/tasks", &token).send().await.unwrap().status(),
        200
    );
    let none = app.client.get(app.url("/api/tasks")).send().await.unwrap();
    assert_eq!(error_code(none).await, (401, "unauthorized".into()));
    assert_eq!(
        app.get("/api/tasks", "garbage")
            .send()
            .await
            .unwrap()
            .status(),
        401
    );
    // Signed with another key.
    let claims = json!({"sub": uuid::Uuid::now_v7(), "exp": 4_000_000_000u64, "iat": 1});
    let foreign = jsonwebtoken::encode(
        &jsonwebtoken::Header::default(),
        &claims,
        &jsonwebtoken::EncodingKey::from_secret(b"some-other-secret-some-other-secret"),
    )
    .unwrap();
    assert_eq!(
        app.get("/api/tasks", &foreign)
            .send()
            .await
            .unwrap()
            .status(),
        401
    );
    // Signed with the generated secret, for this user, but expired.
    let secret = std::fs::read_to_string(app.data_dir.path().join("jwt-secret")).unwrap();
    let me: Value = app
        .post_json(
            "/api/auth/login",
            &json!({"username": "heidi", "password": "Secret123"}),
        )
        .await
        .json()
        .await
        .unwrap();
    let sub = me["user"]["id"].as_str().unwrap();
    let mk = |exp: u64| {
        jsonwebtoken::encode(
            &jsonwebtoken::Header::default(),
            &json!({"sub": sub, "exp": exp, "iat": 1}),
            &jsonwebtoken::EncodingKey::from_secret(secret.trim().as_bytes()),
        )
        .unwrap()
    };
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    assert_eq!(
        app.get("/api/tasks", &mk(now + 600))
            .send()
            .await
            .unwrap()
            .status(),
        200
    );
    assert_eq!(
        app.get("/api/tasks", &mk(now - 5))
            .send()
            .await
            .unwrap()
            .status(),
        401
    );
}

#[tokio::test]
async fn logins_are_rate_limited_per_address_across_accounts() {
    let app = spawn_app().await;
    let mut limited = None;
    for i in 0..30 {
        let r = app
            .post_json(
                "/api/auth/login",
                &json!({"username": format!("ghost{i}"), "password": "Wrong1234"}),
            )
            .await;
        if r.status() == 429 {
            limited = Some(i);
            break;
        }
        assert_eq!(r.status(), 401);
    }
    let i = limited.expect("30 logins for 30 accounts from one address were never limited");
    assert!(i >= 10, "limited too early, after {i}");
}

/// Failed logins for 30 different accounts, each from the address `forwarded_for(i)` says;
/// returns the attempt that got 429, if any.
async fn failed_logins_forwarded(
    app: &TestApp,
    forwarded_for: impl Fn(usize) -> String,
) -> Option<usize> {
    for i in 0..30 {
        let r = app
            .client
            .post(app.url("/api/auth/login"))
            .header("X-Forwarded-For", forwarded_for(i))
            .json(&json!({"username": format!("ghost{i}"), "password": "Wrong1234"}))
            .send()
            .await
            .unwrap();
        if r.status() == 429 {
            return Some(i);
        }
        assert_eq!(r.status(), 401);
    }
    None
}

#[tokio::test]
async fn forwarded_for_from_an_untrusted_peer_is_ignored() {
    // The test client connects from 127.0.0.1, which is not a trusted proxy here: a client
    // rotating a forged X-Forwarded-For is still one address to the limiter.
    let app = spawn_app_with(Options {
        trusted_proxies: Some("10.0.0.0/8"),
        ..Default::default()
    })
    .await;
    let limited = failed_logins_forwarded(&app, |i| format!("198.51.100.{i}")).await;
    assert!(
        limited.is_some(),
        "a forged X-Forwarded-For escaped the per-address limit"
    );
}

#[tokio::test]
async fn forwarded_for_from_a_trusted_proxy_names_the_client() {
    let app = spawn_app_with(Options {
        trusted_proxies: Some("127.0.0.1/32"),
        ..Default::default()
    })
    .await;
    // 30 clients behind the proxy, one attempt each: none of them is limited by address.
    let limited = failed_logins_forwarded(&app, |i| format!("198.51.100.{i}")).await;
    assert_eq!(
        limited, None,
        "distinct clients behind a trusted proxy were limited together"
    );
    // One client forging the leftmost entry: the proxy appended its real address, which is
    // the rightmost untrusted one, so it is still limited as one address.
    let limited = failed_logins_forwarded(&app, |i| format!("192.0.2.{i}, 203.0.113.77")).await;
    let i = limited.expect("a client behind the proxy escaped the limit by forging the header");
    assert!(i >= 10, "limited too early, after {i}");
}

/// A signup from the client address `forwarded_for` (the app must trust 127.0.0.1 as a
/// proxy), for a user whose name and e-mail come from `i`.
async fn signup_from(app: &TestApp, forwarded_for: &str, i: usize) -> reqwest::Response {
    app.client
        .post(app.url("/api/auth/signup"))
        .header("X-Forwarded-For", forwarded_for)
        .json(
            &json!({"username": format!("new{i}"), "email": format!("new{i}@example.com"),
            "password1": "Secret123", "password2": "Secret123"}),
        )
        .send()
        .await
        .unwrap()
}

#[tokio::test]
async fn signups_are_rate_limited_per_client_address() {
    let app = spawn_app_with(Options {
        trusted_proxies: Some("127.0.0.1/32"),
        ..Default::default()
    })
    .await;
    let mut limited = None;
    for i in 0..30 {
        let r = signup_from(&app, "198.51.100.7", i).await;
        if r.status() == 429 {
            limited = Some((i, r));
            break;
        }
        assert_eq!(r.status(), 201, "signup {i}");
    }
    let (i, r) = limited.expect("30 signups from one address were never limited");
    assert!(i >= 3, "limited too early, after {i}");
    let retry: u64 = r.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!(retry >= 1);
    assert_eq!(error_code(r).await, (429, "rate_limited".into()));
    // Another client is not held back by the first one.
    assert_eq!(signup_from(&app, "198.51.100.8", 100).await.status(), 201);
}

#[tokio::test]
async fn login_limits_count_per_account_whichever_identifier_is_typed() {
    let app = spawn_app().await;
    app.signup("ivan").await;
    // Five failures per account pass (see auth::LoginLimiter); spread over the user name,
    // the e-mail and their case variants, they are still one account's attempts.
    let typed = [
        json!({"username": "ivan"}),
        json!({"email": "ivan@example.com"}),
        json!({"username": "IVAN"}),
        json!({"username": "Ivan@Example.com"}),
        json!({"email": "IVAN@EXAMPLE.COM"}),
        json!({"username": "ivan"}),
        json!({"email": "ivan@example.com"}),
    ];
    let mut statuses = vec![];
    for mut body in typed {
        body["password"] = json!("Wrong1234");
        statuses.push(
            app.post_json("/api/auth/login", &body)
                .await
                .status()
                .as_u16(),
        );
    }
    assert_eq!(statuses, [401, 401, 401, 401, 401, 429, 429]);
    // Another account from the same address still gets through.
    app.signup("judy").await;
    let ok = app
        .post_json(
            "/api/auth/login",
            &json!({"username": "judy", "password": "Secret123"}),
        )
        .await;
    assert_eq!(ok.status(), 200);
}

#[tokio::test]
async fn a_huge_login_name_is_an_ordinary_failure() {
    // Under any body cap of the auth routes; the limiter's key stays short (auth's tests).
    let app = spawn_app().await;
    let r = app
        .post_json(
            "/api/auth/login",
            &json!({"username": "x".repeat(32 << 10), "password": "Wrong1234"}),
        )
        .await;
    assert_eq!(error_code(r).await, (401, "invalid_credentials".into()));
}

#[tokio::test]
async fn usernames_are_case_insensitive_and_keep_their_spelling() {
    let app = spawn_app().await;
    app.signup("Alice").await;
    let again = app
        .post_json(
            "/api/auth/signup",
            &json!({"username": "ALICE", "email": "other@example.com",
            "password1": "Secret123", "password2": "Secret123"}),
        )
        .await;
    assert_eq!(error_code(again).await, (409, "username_taken".into()));
    for name in ["Alice", "alice", "ALICE", "aLiCe"] {
        let r = app
            .post_json(
                "/api/auth/login",
                &json!({"username": name, "password": "Secret123"}),
            )
            .await;
        assert_eq!(r.status(), 200, "{name}");
        let v: Value = r.json().await.unwrap();
        assert_eq!(
            v["user"]["username"], "Alice",
            "the spelling given at signup"
        );
    }
}

#[tokio::test]
async fn invisible_and_control_characters_are_refused_naming_the_field() {
    let app = spawn_app().await;
    let cases = [
        // U+202E RIGHT-TO-LEFT OVERRIDE, U+200B ZERO WIDTH SPACE, U+0007 BELL.
        ("username", "ad\u{202E}nim", "user name"),
        ("username", "ad\u{200B}min", "user name"),
        ("email", "ad\u{202E}nim@example.com", "e-mail address"),
        ("email", "ad\u{200B}min@example.com", "e-mail address"),
        ("email", "ad\u{7}min@example.com", "e-mail address"),
        ("email", "\u{FEFF}admin@example.com", "e-mail address"),
    ];
    for (field, value, words) in cases {
        let mut body = json!({"username": "mallory", "email": "mallory@example.com",
            "password1": "Secret123", "password2": "Secret123"});
        body[field] = json!(value);
        let r = app.post_json("/api/auth/signup", &body).await;
        assert_eq!(r.status(), 400, "{value:?}");
        let v: Value = r.json().await.unwrap();
        assert_eq!(v["error"], "invalid_field", "{v}");
        let message = v["message"].as_str().unwrap();
        assert!(message.contains(words), "{value:?}: {message}");
        assert!(
            message.contains("invisible") || message.contains("control"),
            "{value:?}: {message}"
        );
        assert!(
            !message.contains('\u{202E}'),
            "echoes the character: {message}"
        );
    }
    // Nothing was created.
    app.signup("mallory").await;
}
