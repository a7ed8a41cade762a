//! The links e-mails carry: where they point (`Links`, on `REELFORGE_PUBLIC_URL`) and the
//! tokens in them (`LinkKey`).
//!
//! Tokens are HMACs under a key derived from the JWT secret with its own label, so every
//! process of an installation computes the same ones and nothing else stands for them:
//! - a password reset token is the MAC of the reset's id: the deliverer recomputes it for
//!   each attempt (the outbox never holds it), and the database keeps only its SHA-256;
//! - an unsubscribe token is the user's id and the MAC of it: it only ever turns that
//!   user's e-mail off, so it needs no expiry.

use aws_lc_rs::hmac;
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use url::Url;
use uuid::Uuid;

const KEY_LABEL: &[u8] = b"reelforge notification links v1";

#[derive(Clone)]
pub struct LinkKey(hmac::Key);

impl LinkKey {
    pub fn derive(secret: &str) -> Self {
        LinkKey(crate::auth::derive_key(secret, KEY_LABEL))
    }

    fn mac(&self, purpose: &str, id: Uuid) -> String {
        let tag = hmac::sign(&self.0, format!("{purpose}:{id}").as_bytes());
        URL_SAFE_NO_PAD.encode(tag.as_ref())
    }

    /// The token of the password reset `reset` (43 characters).
    pub fn reset_token(&self, reset: Uuid) -> String {
        self.mac("password-reset", reset)
    }

    /// `{user id}.{MAC}`: turns the user's e-mail notifications off.
    pub fn unsubscribe_token(&self, user: Uuid) -> String {
        format!("{}.{}", user.simple(), self.mac("unsubscribe", user))
    }

    /// The user an unsubscribe token stands for, if it is one of ours.
    pub fn unsubscribe_user(&self, token: &str) -> Option<Uuid> {
        let (id, mac) = token.split_once('.')?;
        let user = Uuid::try_parse(id).ok()?;
        let expected = self.mac("unsubscribe", user);
        crate::auth::same_secret(mac, &expected).then_some(user)
    }
}

/// The service's public address, and the pages e-mails link to.
#[derive(Debug, Clone)]
pub struct Links {
    base: Url,
}

impl Links {
    /// `base` is `REELFORGE_PUBLIC_URL` (a trailing slash is added when missing).
    pub fn new(mut base: Url) -> Self {
        if !base.path().ends_with('/') {
            let path = format!("{}/", base.path());
            base.set_path(&path);
        }
        Links { base }
    }

    /// The public URL itself.
    pub fn base(&self) -> &Url {
        &self.base
    }

    fn join(&self, path: &str) -> Url {
        self.base.join(path).unwrap_or_else(|_| self.base.clone())
    }

    /// The web UI's page of a task.
    pub fn task(&self, task: Uuid) -> Url {
        self.join(&format!("#/tasks/{task}"))
    }

    /// An output, through the service: it checks the browser's session (or asks to log in)
    /// and then redirects to a fresh short-lived URL, so the link works whenever clicked.
    pub fn output(&self, task: Uuid, name: &str) -> Url {
        let mut url = self.join("go/outputs/");
        if let Ok(mut segments) = url.path_segments_mut() {
            segments.pop_if_empty().push(&task.to_string()).push(name);
        }
        url
    }

    /// The page that sets a new password with `token`.
    pub fn reset(&self, token: &str) -> Url {
        self.join(&format!("#/reset/{token}"))
    }

    /// RFC 8058 one-click unsubscribe (POST), also a page with a button (GET).
    pub fn unsubscribe(&self, token: &str) -> Url {
        self.join(&format!("api/unsubscribe/{token}"))
    }

    /// The account page (e-mail and webhook settings).
    pub fn account(&self) -> Url {
        self.join("#/account")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_depend_on_the_secret_and_verify() {
        let key = LinkKey::derive("secret-one");
        let other = LinkKey::derive("secret-two");
        let (user, reset) = (Uuid::now_v7(), Uuid::now_v7());
        assert_eq!(key.reset_token(reset), key.reset_token(reset));
        assert_ne!(key.reset_token(reset), other.reset_token(reset));
        assert_eq!(key.reset_token(reset).len(), 43);
        let t = key.unsubscribe_token(user);
        assert_eq!(key.unsubscribe_user(&t), Some(user));
        assert_eq!(other.unsubscribe_user(&t), None);
        let forged = format!(
            "{}.{}",
            Uuid::now_v7().simple(),
            t.split_once('.').unwrap().1
        );
        assert_eq!(key.unsubscribe_user(&forged), None);
        assert_eq!(key.unsubscribe_user("nonsense"), None);
    }

    #[test]
    fn links_sit_under_the_public_url() {
        let links = Links::new(Url::parse("https://media.example.com/rf").unwrap());
        let task = Uuid::nil();
        assert_eq!(
            links.task(task).as_str(),
            "https://media.example.com/rf/#/tasks/00000000-0000-0000-0000-000000000000"
        );
        assert_eq!(
            links.output(task, "a b.mp4").as_str(),
            "https://media.example.com/rf/go/outputs/00000000-0000-0000-0000-000000000000/a%20b.mp4"
        );
        assert_eq!(
            links.unsubscribe("x.y").as_str(),
            "https://media.example.com/rf/api/unsubscribe/x.y"
        );
        assert_eq!(
            links.reset("tok").as_str(),
            "https://media.example.com/rf/#/reset/tok"
        );
    }
}
