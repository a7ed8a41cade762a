//! `reelforge login`, `logout` and `whoami`: the credential of a server, kept in the config
//! dir. A password login makes an API key for this machine and keeps that, never the
//! password.

use std::io::{BufRead, IsTerminal};

use reqwest::{Method, StatusCode};
use serde::Deserialize;
use serde_json::{Value, json};
use uuid::Uuid;

use super::api::{Api, TokenSource};
use super::args::{LoginArgs, ServerArg};
use super::credentials::{Credential, DEFAULT_SERVER, Store, normalize_server};
use super::{ClientError, ClientResult, Exit};

/// `GET /api/account`.
#[derive(Deserialize)]
struct Account {
    user: AccountUser,
    credential: String,
    key: Option<KeyInfo>,
}

#[derive(Deserialize)]
struct AccountUser {
    username: String,
    email: String,
}

#[derive(Deserialize)]
struct KeyInfo {
    id: Uuid,
    name: String,
    prefix: String,
    scope: String,
    expires_at: Option<chrono::DateTime<chrono::Utc>>,
}

/// A line read from stdin, without its line break.
fn stdin_line(what: &str) -> ClientResult<String> {
    let mut line = String::new();
    std::io::stdin()
        .lock()
        .read_line(&mut line)
        .map_err(|e| ClientError::usage(format!("could not read {what} from stdin: {e}")))?;
    let line = line.trim_end_matches(['\r', '\n']).to_string();
    if line.trim().is_empty() {
        return Err(ClientError::usage(format!("no {what} on stdin")));
    }
    Ok(line)
}

fn server_of(arg: &ServerArg, store: &Store) -> ClientResult<String> {
    match arg.server.as_deref().filter(|s| !s.trim().is_empty()) {
        Some(s) => normalize_server(s),
        None => Ok(store
            .current
            .clone()
            .unwrap_or_else(|| DEFAULT_SERVER.to_string())),
    }
}

fn this_machine() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .map(|h| h.trim().to_string())
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "this machine".into())
}

pub async fn login(a: LoginArgs) -> ClientResult<()> {
    let mut store = Store::load()?;
    let server = server_of(&a.server, &store)?;
    let anonymous = Api::new(server.clone(), None, TokenSource::None)?;
    let credential = if a.with_token {
        let token = stdin_line("an API key")?;
        let candidate = anonymous.with_token(&token);
        let account: Account = candidate
            .json(candidate.request(Method::GET, "/api/account"))
            .await?;
        Credential {
            token,
            username: account.user.username,
            login_key: None,
        }
    } else {
        password_login(&anonymous, &a).await?
    };
    // A key an earlier `login` made here is replaced, not left behind.
    if let Some(old) = store.servers.get(&server)
        && let Some(id) = old.login_key
    {
        let _ = anonymous
            .with_token(&old.token)
            .request(Method::DELETE, &format!("/api/keys/{id}"))
            .send()
            .await;
    }
    let username = credential.username.clone();
    store.servers.insert(server.clone(), credential);
    store.current = Some(server.clone());
    store.save()?;
    eprintln!("Logged in to {server} as {username}.");
    Ok(())
}

/// Log in with the password, and make the API key this machine will use.
async fn password_login(api: &Api, a: &LoginArgs) -> ClientResult<Credential> {
    let interactive = std::io::stdin().is_terminal();
    let username = match &a.username {
        Some(u) => u.clone(),
        None if interactive && !a.password_stdin => {
            eprint!("Username or e-mail: ");
            stdin_line("a username")?
        }
        None => {
            return Err(ClientError::usage(
                "give --username (the password then comes from the terminal or \
                 --password-stdin), or log in with an API key: --with-token",
            ));
        }
    };
    let password = if a.password_stdin {
        stdin_line("a password")?
    } else {
        rpassword::prompt_password("Password: ").map_err(|e| {
            ClientError::usage(format!(
                "could not ask for the password ({e}): use --password-stdin or --with-token"
            ))
        })?
    };
    let resp = api
        .request(Method::POST, "/api/auth/login")
        .json(&json!({"username": username, "password": password}))
        .send()
        .await
        .map_err(|e| api.unreachable(&e))?;
    if resp.status() == StatusCode::UNAUTHORIZED {
        return Err(ClientError::new(
            Exit::Auth,
            format!(
                "{} refused the username or password (or the account is disabled): check                  them, or log in with an API key (--with-token)",
                api.server
            ),
        ));
    }
    if !resp.status().is_success() {
        return Err(api.error_of(resp).await);
    }
    let login: Value = resp
        .json()
        .await
        .map_err(|e| ClientError::failed(format!("unexpected login answer: {e}")))?;
    let token = login["token"].as_str().unwrap_or_default();
    let name = format!("reelforge CLI on {}", this_machine());
    let with_login = api.with_token(token);
    let made: Value = with_login
        .json(
            with_login
                .request(Method::POST, "/api/keys")
                .json(&json!({"name": name, "scope": "read-write"})),
        )
        .await?;
    let key = made["token"].as_str().unwrap_or_default().to_string();
    let id = made["id"].as_str().and_then(|s| s.parse().ok());
    if key.is_empty() || id.is_none() {
        return Err(ClientError::failed(
            "the server made no API key for this login",
        ));
    }
    Ok(Credential {
        token: key,
        username: login["user"]["username"]
            .as_str()
            .unwrap_or(&username)
            .to_string(),
        login_key: id,
    })
}

pub async fn logout(arg: ServerArg) -> ClientResult<()> {
    let mut store = Store::load()?;
    let server = server_of(&arg, &store)?;
    let Some(credential) = store.servers.remove(&server) else {
        eprintln!("Not logged in to {server}; nothing to do.");
        return Ok(());
    };
    if store.current.as_deref() == Some(server.as_str()) {
        store.current = store.servers.keys().next().cloned();
    }
    store.save()?;
    match credential.login_key {
        Some(id) => {
            let api = Api::new(server.clone(), Some(credential.token), TokenSource::Stored)?;
            let revoked = api
                .request(Method::DELETE, &format!("/api/keys/{id}"))
                .send()
                .await;
            match revoked {
                Ok(r) if r.status().is_success() || r.status() == StatusCode::UNAUTHORIZED => {
                    eprintln!("Logged out of {server}; this machine's API key is revoked.");
                }
                _ => eprintln!(
                    "Logged out of {server}, but its API key could not be revoked now: \
                     revoke \"reelforge CLI on {}\" on the account page.",
                    this_machine()
                ),
            }
        }
        None => eprintln!(
            "Logged out of {server}. The API key you gave still works until you revoke it \
             on the account page."
        ),
    }
    Ok(())
}

pub async fn whoami(server: ServerArg, as_json: bool) -> ClientResult<()> {
    let api = Api::resolve(server.server.as_deref())?;
    api.require_login()?;
    let account: Value = api.json(api.request(Method::GET, "/api/account")).await?;
    if as_json {
        println!("{account}");
        return Ok(());
    }
    let a: Account = serde_json::from_value(account)
        .map_err(|e| ClientError::failed(format!("unexpected account answer: {e}")))?;
    let with = match &a.key {
        Some(k) => format!(
            "API key \"{}\" ({}…, {}, {}; id {})",
            k.name,
            k.prefix,
            k.scope,
            k.expires_at.map_or("no expiry".to_string(), |t| format!(
                "expires {}",
                t.format("%Y-%m-%d")
            )),
            k.id
        ),
        None => format!("a {}", a.credential.replace('_', " ")),
    };
    println!(
        "{} <{}> on {} with {with}",
        a.user.username, a.user.email, api.server
    );
    Ok(())
}
