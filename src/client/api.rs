//! The HTTP calls of the client, with the API's errors turned into messages that say what
//! to do next, and exit codes.

use reqwest::{Method, RequestBuilder, Response, StatusCode};
use serde::de::DeserializeOwned;

use super::credentials::{DEFAULT_SERVER, Store, normalize_server};
use super::{ClientError, ClientResult, Exit};

/// Where the credential of a command came from, for the advice of an error.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TokenSource {
    /// `REELFORGE_TOKEN`.
    Environment,
    /// `credentials.json` (`reelforge login`).
    Stored,
    None,
}

/// A server and the credential to call it with.
pub struct Api {
    http: reqwest::Client,
    /// Normalized (see [`normalize_server`]): `https://host[:port][/prefix]`.
    pub server: String,
    token: Option<String>,
    source: TokenSource,
}

impl Api {
    /// The server of `--server`/`REELFORGE_SERVER`, else the one last logged in to, else
    /// [`DEFAULT_SERVER`]; the credential of `REELFORGE_TOKEN`, else the stored one.
    pub fn resolve(server: Option<&str>) -> ClientResult<Api> {
        let store = Store::load()?;
        let server = match server.filter(|s| !s.trim().is_empty()) {
            Some(s) => normalize_server(s)?,
            None => store
                .current
                .clone()
                .unwrap_or_else(|| DEFAULT_SERVER.to_string()),
        };
        let env = std::env::var("REELFORGE_TOKEN")
            .ok()
            .map(|t| t.trim().to_string())
            .filter(|t| !t.is_empty());
        let (token, source) = match env {
            Some(t) => (Some(t), TokenSource::Environment),
            None => match store.servers.get(&server) {
                Some(c) => (Some(c.token.clone()), TokenSource::Stored),
                None => (None, TokenSource::None),
            },
        };
        Api::new(server, token, source)
    }

    pub fn new(server: String, token: Option<String>, source: TokenSource) -> ClientResult<Api> {
        let http = reqwest::Client::builder()
            .user_agent(concat!("reelforge-cli/", env!("CARGO_PKG_VERSION")))
            .connect_timeout(std::time::Duration::from_secs(15))
            .tcp_keepalive(std::time::Duration::from_secs(30))
            .build()
            .map_err(|e| ClientError::failed(format!("could not set up HTTP: {e}")))?;
        Ok(Api {
            http,
            server,
            token,
            source,
        })
    }

    /// The same server with another credential (login checks a token before storing it).
    pub fn with_token(&self, token: &str) -> Api {
        Api {
            http: self.http.clone(),
            server: self.server.clone(),
            token: Some(token.to_string()),
            source: TokenSource::Stored,
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.server)
    }

    /// A request to `path` (from the server's root: `/api/tasks`) with the credential.
    pub fn request(&self, method: Method, path: &str) -> RequestBuilder {
        let rb = self.http.request(method, self.url(path));
        match &self.token {
            Some(t) => rb.bearer_auth(t),
            None => rb,
        }
    }

    /// Fail now, before any work, when there is no credential at all.
    pub fn require_login(&self) -> ClientResult<()> {
        match self.token {
            Some(_) => Ok(()),
            None => Err(self.not_logged_in()),
        }
    }

    fn not_logged_in(&self) -> ClientError {
        ClientError::new(
            Exit::Auth,
            format!(
                "not logged in to {0}: run `reelforge login --server {0}` (or set \
                 REELFORGE_TOKEN to an API key)",
                self.server
            ),
        )
    }

    /// Send; a 2xx response is returned, anything else becomes a [`ClientError`].
    pub async fn send(&self, rb: RequestBuilder) -> ClientResult<Response> {
        let resp = rb.send().await.map_err(|e| self.unreachable(&e))?;
        if resp.status().is_success() {
            Ok(resp)
        } else {
            Err(self.error_of(resp).await)
        }
    }

    /// Send and read a JSON body.
    pub async fn json<T: DeserializeOwned>(&self, rb: RequestBuilder) -> ClientResult<T> {
        let resp = self.send(rb).await?;
        resp.json().await.map_err(|e| {
            ClientError::failed(format!(
                "{} answered something that is not the expected JSON ({e}): is it a \
                 Reelforge server?",
                self.server
            ))
        })
    }

    /// A request that did not get an answer.
    pub fn unreachable(&self, e: &reqwest::Error) -> ClientError {
        let why = std::error::Error::source(e)
            .map(|s| s.to_string())
            .unwrap_or_else(|| e.to_string());
        let advice = if e.is_connect() {
            ": is the server running? Name another with --server or REELFORGE_SERVER"
        } else {
            ""
        };
        ClientError::failed(format!("could not reach {} ({why}){advice}", self.server))
    }

    /// An error response as a message with the API's own wording and what to do.
    pub async fn error_of(&self, resp: Response) -> ClientError {
        let status = resp.status();
        let retry_after = resp
            .headers()
            .get(reqwest::header::RETRY_AFTER)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string);
        let text = resp.text().await.unwrap_or_default();
        let (code, message) = match serde_json::from_str::<serde_json::Value>(&text) {
            Ok(v) => (
                v["error"].as_str().unwrap_or("error").to_string(),
                v["message"].as_str().unwrap_or(&text).to_string(),
            ),
            Err(_) => (
                status.as_str().to_string(),
                text.chars().take(200).collect(),
            ),
        };
        self.classify(status, &code, &message, retry_after.as_deref())
    }

    fn classify(
        &self,
        status: StatusCode,
        code: &str,
        message: &str,
        retry_after: Option<&str>,
    ) -> ClientError {
        let said = format!("{code}: {message}");
        match status {
            StatusCode::UNAUTHORIZED => match self.source {
                TokenSource::None => self.not_logged_in(),
                TokenSource::Environment => ClientError::new(
                    Exit::Auth,
                    format!(
                        "{} refused REELFORGE_TOKEN ({said}): set it to a live API key, or \
                         unset it and run `reelforge login --server {}`",
                        self.server, self.server
                    ),
                ),
                TokenSource::Stored => ClientError::new(
                    Exit::Auth,
                    format!(
                        "{} refused the stored credential ({said}): run `reelforge login \
                         --server {}`",
                        self.server, self.server
                    ),
                ),
            },
            StatusCode::FORBIDDEN => ClientError::new(Exit::Auth, said),
            StatusCode::TOO_MANY_REQUESTS => ClientError::failed(format!(
                "{said} (try again in {} s)",
                retry_after.unwrap_or("a few")
            )),
            s if s.is_client_error() && s != StatusCode::NOT_FOUND && s != StatusCode::GONE => {
                ClientError::usage(said)
            }
            _ => ClientError::failed(said),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn api(source: TokenSource) -> Api {
        Api::new("http://media.test:8080".into(), None, source).unwrap()
    }

    #[test]
    fn errors_say_what_to_do_and_exit_by_kind() {
        let e =
            api(TokenSource::None).classify(StatusCode::UNAUTHORIZED, "unauthorized", "x", None);
        assert_eq!(e.exit, Exit::Auth);
        assert!(
            e.message
                .contains("not logged in to http://media.test:8080: run `reelforge login --server http://media.test:8080`"),
            "{e}"
        );
        let e = api(TokenSource::Stored).classify(
            StatusCode::UNAUTHORIZED,
            "invalid_token",
            "the API key is unknown, revoked or expired",
            None,
        );
        assert_eq!(e.exit, Exit::Auth);
        assert!(e.message.contains("revoked or expired"), "{e}");
        assert!(e.message.contains("reelforge login"), "{e}");
        let e = api(TokenSource::Environment).classify(
            StatusCode::UNAUTHORIZED,
            "invalid_token",
            "x",
            None,
        );
        assert!(e.message.contains("REELFORGE_TOKEN"), "{e}");
        let e = api(TokenSource::Stored).classify(
            StatusCode::FORBIDDEN,
            "insufficient_scope",
            "read only",
            None,
        );
        assert_eq!(
            (e.exit, e.message.as_str()),
            (Exit::Auth, "insufficient_scope: read only")
        );
        let e = api(TokenSource::Stored).classify(
            StatusCode::BAD_REQUEST,
            "invalid_options",
            "options.fps",
            None,
        );
        assert_eq!(e.exit, Exit::Usage);
        let e =
            api(TokenSource::Stored).classify(StatusCode::NOT_FOUND, "not_found", "no task", None);
        assert_eq!(e.exit, Exit::Failed);
        let e = api(TokenSource::Stored).classify(
            StatusCode::TOO_MANY_REQUESTS,
            "rate_limited",
            "slow down",
            Some("7"),
        );
        assert!(e.message.ends_with("(try again in 7 s)"), "{e}");
        let e = api(TokenSource::Stored).classify(StatusCode::BAD_GATEWAY, "502", "", None);
        assert_eq!(e.exit, Exit::Failed);
    }
}
