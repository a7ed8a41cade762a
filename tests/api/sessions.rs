//! Browser sessions: the cookie's flags, CSRF refusals, log-out and password changes ending
//! sessions server-side, disabled users, and bearer tokens unchanged beside them.

use reelforge_testkit::app::*;
use reqwest::header::{HeaderMap, SET_COOKIE};
use serde_json::{Value, json};

const PASSWORD: &str = "Secret123";
/// A URL task's source: allowed without a look-up by [`app`]'s settings, never fetched.
const URL: &str = "http://media.reelforge.test/clip.mp4";

/// An app whose URL checks accept `*.reelforge.test` without a look-up, and no worker.
async fn app() -> TestApp {
    spawn_app_with(Options {
        fetch_allow: Some("*.reelforge.test".into()),
        ..Options::default()
    })
    .await
}

/// A logged-in browser: the cookie's `name=value` and the CSRF token.
pub(crate) struct Browser {
    pub cookie: String,
    pub csrf: String,
}

fn set_cookie(headers: &HeaderMap) -> String {
    let all: Vec<&str> = headers
        .get_all(SET_COOKIE)
        .iter()
        .map(|v| v.to_str().unwrap())
        .collect();
    assert_eq!(all.len(), 1, "{all:?}");
    all[0].to_string()
}

async fn log_in(app: &TestApp, username: &str) -> (Browser, reqwest::Response) {
    log_in_with(app, username, PASSWORD, &[]).await
}

async fn log_in_with(
    app: &TestApp,
    username: &str,
    password: &str,
    headers: &[(&str, &str)],
) -> (Browser, reqwest::Response) {
    let mut req = app
        .client
        .post(app.url("/api/session"))
        .json(&json!({"username": username, "password": password}));
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    let r = req.send().await.unwrap();
    assert_eq!(r.status(), 200, "log in {username}");
    let cookie = set_cookie(r.headers());
    let pair = cookie.split(';').next().unwrap().to_string();
    (
        Browser {
            cookie: pair,
            csrf: String::new(),
        },
        r,
    )
}

/// Sign up `username` and log in a browser session.
pub(crate) async fn browser(app: &TestApp, username: &str) -> Browser {
    app.signup(username).await;
    let (mut b, r) = log_in(app, username).await;
    let body: Value = r.json().await.unwrap();
    b.csrf = body["csrfToken"].as_str().unwrap().to_string();
    b
}

impl Browser {
    pub fn get(&self, app: &TestApp, path: &str) -> reqwest::RequestBuilder {
        app.client.get(app.url(path)).header("cookie", &self.cookie)
    }
    /// An unsafe request as the page sends it: the cookie, the CSRF token, its own origin.
    pub fn send(
        &self,
        app: &TestApp,
        method: reqwest::Method,
        path: &str,
    ) -> reqwest::RequestBuilder {
        app.client
            .request(method, app.url(path))
            .header("cookie", &self.cookie)
            .header("x-csrf-token", &self.csrf)
            .header("origin", &app.base)
    }
}

async fn code(r: reqwest::Response) -> (u16, String) {
    let status = r.status().as_u16();
    let body: Value = r.json().await.unwrap_or(Value::Null);
    (status, body["error"].as_str().unwrap_or("").to_string())
}

#[tokio::test]
async fn a_session_cookie_is_httponly_lax_and_opaque_and_opens_the_api() {
    let app = spawn_app().await;
    app.signup("sara").await;
    let (b, r) = log_in(&app, "sara").await;
    let cookie = set_cookie(r.headers());
    assert_eq!(r.headers()["cache-control"], "no-store");
    let body: Value = r.json().await.unwrap();
    for flag in ["HttpOnly", "SameSite=Lax", "Path=/"] {
        assert!(cookie.split("; ").any(|f| f == flag), "{flag} in {cookie}");
    }
    // Kept by the browser for the absolute lifetime (30 days); the server decides sooner.
    let max_age: u64 = cookie
        .split("; ")
        .find_map(|f| f.strip_prefix("Max-Age="))
        .unwrap()
        .parse()
        .unwrap();
    assert!((2_591_990..=2_592_000).contains(&max_age), "{cookie}");
    assert!(!cookie.contains("Secure"), "plain http: {cookie}");
    let token = b.cookie.strip_prefix("reelforge_session=").unwrap();
    assert!(token.len() >= 43, "{token}");
    // The body holds the user and the CSRF token, never the cookie's token.
    assert_eq!(body["user"]["username"], "sara");
    assert!(body["csrfToken"].as_str().unwrap().len() >= 43);
    assert!(body["expiresAt"].as_str().is_some());
    assert!(!body.to_string().contains(token));
    assert!(body.get("token").is_none());
    // The cookie opens what a bearer token opens.
    let r = b.get(&app, "/api/tasks").send().await.unwrap();
    assert_eq!(r.status(), 200);
    let r = b.get(&app, "/api/session").send().await.unwrap();
    assert_eq!(r.status(), 200);
    let again: Value = r.json().await.unwrap();
    assert_eq!(again["user"], body["user"]);
    assert_eq!(again["csrfToken"], body["csrfToken"]);
    // No cookie, or one the server never issued: 401.
    let r = app
        .client
        .get(app.url("/api/session"))
        .send()
        .await
        .unwrap();
    assert_eq!(code(r).await, (401, "unauthorized".into()));
    let forged = app
        .client
        .get(app.url("/api/tasks"))
        .header(
            "cookie",
            "reelforge_session=AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA",
        )
        .send()
        .await
        .unwrap();
    assert_eq!(forged.status(), 401);
    // Wrong password: the login's answer.
    let r = app
        .post_json(
            "/api/session",
            &json!({"username": "sara", "password": "Nope12345"}),
        )
        .await;
    assert_eq!(code(r).await, (401, "invalid_credentials".into()));
    assert_eq!(
        app.post_json("/api/session", &json!({"password": "x"}))
            .await
            .status(),
        400
    );
}

#[tokio::test]
async fn the_cookie_is_secure_only_behind_a_trusted_https_proxy() {
    let trusted = spawn_app_with(Options {
        trusted_proxies: Some("127.0.0.1"),
        ..Default::default()
    })
    .await;
    trusted.signup("tom").await;
    let https = [("x-forwarded-proto", "https")];
    let (_, r) = log_in_with(&trusted, "tom", PASSWORD, &https).await;
    assert!(set_cookie(r.headers()).ends_with("; Secure"));
    let (_, r) = log_in_with(&trusted, "tom", PASSWORD, &[("x-forwarded-proto", "http")]).await;
    assert!(!set_cookie(r.headers()).contains("Secure"));
    // The same header from a peer that is not a trusted proxy is not believed.
    let untrusted = spawn_app().await;
    untrusted.signup("tom").await;
    let (_, r) = log_in_with(&untrusted, "tom", PASSWORD, &https).await;
    assert!(!set_cookie(r.headers()).contains("Secure"));
}

#[tokio::test]
async fn unsafe_cookie_requests_need_the_csrf_token_and_this_origin() {
    let app = app().await;
    let b = browser(&app, "uma").await;
    let task = json!({"url": URL});
    let post = || {
        app.client
            .post(app.url("/api/tasks"))
            .header("cookie", &b.cookie)
    };
    // No header, a wrong one, a foreign or opaque origin: 403 csrf_failed, nothing created.
    let cases = [
        post().json(&task),
        post().header("x-csrf-token", "wrong").json(&task),
        post()
            .header("x-csrf-token", &b.csrf)
            .header("origin", "https://evil.example")
            .json(&task),
        post()
            .header("x-csrf-token", &b.csrf)
            .header("origin", "null")
            .json(&task),
        post()
            .header("x-csrf-token", &b.csrf)
            .header("sec-fetch-site", "cross-site")
            .json(&task),
        // What a plain cross-site HTML form sends.
        post()
            .header("origin", "https://evil.example")
            .header("content-type", "application/x-www-form-urlencoded")
            .body("url=https%3A%2F%2Fexample.com%2Fa.mp4"),
    ];
    for req in cases {
        let r = req.send().await.unwrap();
        assert_eq!(code(r).await, (403, "csrf_failed".into()));
    }
    let listed: Value = b
        .get(&app, "/api/tasks")
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(listed, json!([]), "a refused request created a task");
    // A log-out from another site is refused too, and the session lives on.
    let r = app
        .client
        .delete(app.url("/api/session"))
        .header("cookie", &b.cookie)
        .send()
        .await
        .unwrap();
    assert_eq!(code(r).await, (403, "csrf_failed".into()));
    assert_eq!(
        b.get(&app, "/api/session").send().await.unwrap().status(),
        200
    );
    // A log-in posted from another site is refused (login CSRF).
    let r = app
        .client
        .post(app.url("/api/session"))
        .header("origin", "https://evil.example")
        .json(&json!({"username": "uma", "password": PASSWORD}))
        .send()
        .await
        .unwrap();
    assert_eq!(code(r).await, (403, "csrf_failed".into()));
    // With the token and its own origin the same request goes through; GET needs neither.
    let r = b
        .send(&app, reqwest::Method::POST, "/api/tasks")
        .json(&task)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);
    // Without an Origin (a same-origin request of an older browser) the token suffices.
    let r = post()
        .header("x-csrf-token", &b.csrf)
        .json(&task)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);
}

#[tokio::test]
async fn bearer_requests_are_not_csrf_checked_and_a_bearer_header_wins() {
    let app = app().await;
    let b = browser(&app, "vic").await;
    let token = app.user("wes").await;
    let task = json!({"url": URL});
    // A bearer request with a foreign Origin and no CSRF token is an API client's: accepted.
    let r = app
        .post("/api/tasks", &token)
        .header("origin", "https://elsewhere.example")
        .json(&task)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);
    // Both: the bearer token decides (wes's tasks, not vic's) …
    let both: Value = app
        .get("/api/tasks", &token)
        .header("cookie", &b.cookie)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(both.as_array().unwrap().len(), 1);
    // … and a bad bearer token is refused even beside a good cookie.
    let r = app
        .get("/api/tasks", "not-a-token")
        .header("cookie", &b.cookie)
        .send()
        .await
        .unwrap();
    assert_eq!(code(r).await, (401, "invalid_token".into()));
}

#[tokio::test]
async fn log_out_ends_the_session_server_side() {
    let app = spawn_app().await;
    let b = browser(&app, "xena").await;
    let r = b
        .send(&app, reqwest::Method::DELETE, "/api/session")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 204);
    let cleared = set_cookie(r.headers());
    assert!(cleared.starts_with("reelforge_session=;"), "{cleared}");
    assert!(cleared.contains("Max-Age=0"), "{cleared}");
    // The old cookie value, replayed, opens nothing.
    let r = b.get(&app, "/api/tasks").send().await.unwrap();
    assert_eq!(code(r).await, (401, "unauthorized".into()));
    let r = b.get(&app, "/api/session").send().await.unwrap();
    assert_eq!(r.status(), 401);
    // Logging out again only clears the cookie.
    let r = b
        .send(&app, reqwest::Method::DELETE, "/api/session")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 204);
}

fn change_password(
    app: &TestApp,
    b: &Browser,
    current: &str,
    new: &str,
) -> reqwest::RequestBuilder {
    b.send(app, reqwest::Method::POST, "/api/account/password")
        .json(&json!({"currentPassword": current, "newPassword": new}))
}

// Mind the log-in limit per account (5 at once): a password check counts as a log-in.
#[tokio::test]
async fn a_password_change_ends_every_session_and_reissues_the_callers() {
    let app = spawn_app().await;
    let b1 = browser(&app, "yuri").await;
    let token = app
        .post_json(
            "/api/auth/login",
            &json!({"username": "yuri", "password": PASSWORD}),
        )
        .await
        .json::<Value>()
        .await
        .unwrap()["token"]
        .as_str()
        .unwrap()
        .to_string();

    // With a bearer token: no CSRF token needed, every session ends, none is issued, and
    // login tokens of the old password (this one too) stop working.
    let r = app
        .post("/api/account/password", &token)
        .json(&json!({"currentPassword": PASSWORD, "newPassword": "Better456"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert!(r.headers().get(SET_COOKIE).is_none());
    assert_eq!(r.json::<Value>().await.unwrap()["session"], Value::Null);
    let r = b1.get(&app, "/api/tasks").send().await.unwrap();
    assert_eq!(r.status(), 401);
    let r = app.get("/api/tasks", &token).send().await.unwrap();
    assert_eq!(r.status(), 401, "even the token that made the change");
    let e: Value = r.json().await.unwrap();
    assert!(
        e["message"].as_str().unwrap().contains("password changed"),
        "{e}"
    );

    // With the session cookie: the caller gets a new session in the answer.
    let (mut b3, r) = log_in_with(&app, "yuri", "Better456", &[]).await;
    b3.csrf = r.json::<Value>().await.unwrap()["csrfToken"]
        .as_str()
        .unwrap()
        .to_string();
    let r = change_password(&app, &b3, "Better456", "Third789x")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let new_cookie = set_cookie(r.headers());
    let body: Value = r.json().await.unwrap();
    let new_csrf = body["session"]["csrfToken"].as_str().unwrap().to_string();
    assert_ne!(new_csrf, b3.csrf);
    let r = b3.get(&app, "/api/tasks").send().await.unwrap();
    assert_eq!(r.status(), 401);
    let fresh = Browser {
        cookie: new_cookie.split(';').next().unwrap().to_string(),
        csrf: new_csrf,
    };
    assert_eq!(
        fresh.get(&app, "/api/tasks").send().await.unwrap().status(),
        200
    );
}

#[tokio::test]
async fn a_refused_password_change_changes_nothing() {
    let app = spawn_app().await;
    let b = browser(&app, "yves").await;
    let r = change_password(&app, &b, "Wrong1234", "Better456")
        .send()
        .await
        .unwrap();
    assert_eq!(code(r).await, (403, "invalid_credentials".into()));
    let r = change_password(&app, &b, PASSWORD, "weak")
        .send()
        .await
        .unwrap();
    assert_eq!(code(r).await, (400, "weak_password".into()));
    let r = app
        .client
        .post(app.url("/api/account/password"))
        .header("cookie", &b.cookie)
        .json(&json!({"currentPassword": PASSWORD, "newPassword": "Better456"}))
        .send()
        .await
        .unwrap();
    assert_eq!(code(r).await, (403, "csrf_failed".into()));
    // The session and the password are as they were.
    assert_eq!(
        b.get(&app, "/api/tasks").send().await.unwrap().status(),
        200
    );
    let r = app
        .post_json(
            "/api/auth/login",
            &json!({"username": "yves", "password": PASSWORD}),
        )
        .await;
    assert_eq!(r.status(), 200);
}

#[tokio::test]
async fn a_disabled_users_session_stops_working() {
    let app = spawn_app().await;
    let b = browser(&app, "zoe").await;
    assert_eq!(
        b.get(&app, "/api/tasks").send().await.unwrap().status(),
        200
    );
    assert!(app.worker.db.set_user_disabled("zoe", true).await.unwrap());
    assert_eq!(
        b.get(&app, "/api/tasks").send().await.unwrap().status(),
        401
    );
    assert_eq!(
        b.get(&app, "/api/session").send().await.unwrap().status(),
        401
    );
    // Nor can a disabled user start a new one.
    let r = app
        .post_json(
            "/api/session",
            &json!({"username": "zoe", "password": PASSWORD}),
        )
        .await;
    assert_eq!(r.status(), 401);
}
