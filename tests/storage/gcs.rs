//! GCS without any network: a service account with a freshly made RSA key in a temp file,
//! the `gs://` store built from it, and a presigned download URL checked against the V4
//! signing rules, its signature verified with the key's public half.

use aws_lc_rs::encoding::{AsDer, Pkcs8V1Der};
use aws_lc_rs::rsa::{KeyPair, KeySize};
use aws_lc_rs::signature::{KeyPair as _, RSA_PKCS1_2048_8192_SHA256, UnparsedPublicKey};
use base64::Engine;
use reelforge::storage::{SIGNED_URL_TTL, Storage, StorageOptions, keys};
use uuid::Uuid;

use crate::sign::{canonical_query, sha256_hex};

const EMAIL: &str = "reelforge-signer@reelforge-test.iam.gserviceaccount.com";

/// A service-account JSON file with a new 2048-bit key; returns it and the key pair.
fn service_account(dir: &std::path::Path) -> (std::path::PathBuf, KeyPair) {
    let key = KeyPair::generate(KeySize::Rsa2048).unwrap();
    let der: Pkcs8V1Der = key.as_der().unwrap();
    let b64 = base64::engine::general_purpose::STANDARD.encode(der.as_ref());
    let mut pem = String::from("-----BEGIN PRIVATE KEY-----\n");
    for line in b64.as_bytes().chunks(64) {
        pem.push_str(std::str::from_utf8(line).unwrap());
        pem.push('\n');
    }
    pem.push_str("-----END PRIVATE KEY-----\n");
    let json = serde_json::json!({
        "type": "service_account",
        "project_id": "reelforge-test",
        "private_key_id": "0123456789abcdef",
        "private_key": pem,
        "client_email": EMAIL,
        "client_id": "1",
        "token_uri": "https://oauth2.googleapis.com/token",
    });
    let path = dir.join("service-account.json");
    std::fs::write(&path, serde_json::to_vec(&json).unwrap()).unwrap();
    (path, key)
}

fn unhex(s: &str) -> Vec<u8> {
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
        .collect()
}

#[tokio::test]
async fn gcs_signed_urls_follow_v4_signing_with_the_service_account_key() {
    reelforge::install_crypto_provider();
    let dir = tempfile::tempdir().unwrap();
    let (sa, key) = service_account(dir.path());
    let storage = Storage::from_url(
        "gs://reel-bucket/team/7",
        &StorageOptions {
            s3_endpoint: None,
            s3_public_endpoint: None,
            extra: vec![("google_service_account".into(), sa.display().to_string())],
        },
    )
    .unwrap();
    assert!(storage.signs_urls());
    let k = keys::output(Uuid::now_v7(), 1, "my clip.mp4");
    let before = chrono::Utc::now();
    let url = storage
        .signed_url(&k, "attachment; filename=\"my clip.mp4\"", "video/mp4")
        .await
        .unwrap()
        .unwrap();

    assert_eq!(url.scheme(), "https");
    assert_eq!(url.host_str(), Some("storage.googleapis.com"));
    assert_eq!(
        url.path(),
        format!("/reel-bucket/team/7/{}", k.replace(' ', "%20"))
    );
    let q: std::collections::BTreeMap<String, String> = url.query_pairs().into_owned().collect();
    assert_eq!(q["X-Goog-Algorithm"], "GOOG4-RSA-SHA256");
    assert_eq!(q["X-Goog-SignedHeaders"], "host");
    assert_eq!(q["response-content-type"], "video/mp4");
    assert_eq!(
        q["response-content-disposition"],
        "attachment; filename=\"my clip.mp4\""
    );
    let expires: u64 = q["X-Goog-Expires"].parse().unwrap();
    assert_eq!(expires, SIGNED_URL_TTL.as_secs());
    assert!(expires > 0 && expires <= 15 * 60);
    let date = &q["X-Goog-Date"];
    let signed_at = chrono::NaiveDateTime::parse_from_str(date, "%Y%m%dT%H%M%SZ")
        .unwrap()
        .and_utc();
    assert!((signed_at - before).num_seconds().abs() <= 60);
    let scope = format!("{}/auto/storage/goog4_request", &date[..8]);
    assert_eq!(q["X-Goog-Credential"], format!("{EMAIL}/{scope}"));
    let signature = &q["X-Goog-Signature"];
    assert_eq!(signature.len(), 512, "a 2048-bit RSA signature in hex");

    // Rebuild the canonical request and the string to sign from the URL, and check the
    // signature with the public key.
    let canonical = format!(
        "GET\n{}\n{}\nhost:storage.googleapis.com\n\nhost\nUNSIGNED-PAYLOAD",
        url.path(),
        canonical_query(&url, "X-Goog-Signature")
    );
    let hashed = sha256_hex(&canonical);
    let to_sign = format!("GOOG4-RSA-SHA256\n{date}\n{scope}\n{hashed}");
    let public = UnparsedPublicKey::new(&RSA_PKCS1_2048_8192_SHA256, key.public_key().as_ref());
    public
        .verify(to_sign.as_bytes(), &unhex(signature))
        .expect("signature made with the service account's key");
    // And it does not verify for anything else (e.g. a longer expiry).
    let longer = to_sign.replace(&hashed, &"0".repeat(64));
    assert!(public.verify(longer.as_bytes(), &unhex(signature)).is_err());
}

#[tokio::test]
async fn gcs_with_a_missing_service_account_file_fails_to_open() {
    let r = Storage::from_url(
        "gs://reel-bucket",
        &StorageOptions {
            s3_endpoint: None,
            s3_public_endpoint: None,
            extra: vec![(
                "google_service_account".into(),
                "/nonexistent/reelforge-sa.json".into(),
            )],
        },
    );
    assert!(r.is_err());
}
