//! A throw-away S3-compatible server: moto's `moto_server` on a free loopback port, started
//! by the test and killed when dropped.
//!
//! `REELFORGE_TEST_MOTO` names the program (`scripts/test.sh` installs moto and sets it).
//! Without it, S3 cases are skipped with a loud message, except under `CI=true`, where a
//! missing server is a failure.

use std::io::Write;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use reelforge::storage::{Storage, StorageOptions};
use reelforge_testkit::in_ci;

pub const MOTO_VAR: &str = "REELFORGE_TEST_MOTO";
/// The throw-away credentials the stores sign with.
pub const ACCESS_KEY: &str = "reelforge-test";
pub const SECRET_KEY: &str = "reelforge-test-secret";
pub const REGION: &str = "us-east-1";

pub struct Moto {
    child: Option<Child>,
    pub endpoint: String,
    http: reqwest::Client,
}

fn free_port() -> u16 {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    l.local_addr().unwrap().port()
}

impl Moto {
    /// Start a server, or `None` (after saying so on stderr) when none is configured.
    pub async fn start(test: &str) -> Option<Moto> {
        reelforge::install_crypto_provider();
        let program = match std::env::var(MOTO_VAR) {
            Ok(p) if !p.is_empty() => p,
            _ if in_ci() => panic!("{MOTO_VAR} is not set under CI: scripts/test.sh need_moto"),
            _ => {
                // Straight to stderr, past the test harness's capture: a skip must show.
                let _ = writeln!(
                    std::io::stderr(),
                    "SKIPPED: S3 case {test}: {MOTO_VAR} is not set (bash scripts/test.sh \
                     installs moto and sets it; or pip install 'moto[server]' and \
                     export {MOTO_VAR}=$(command -v moto_server))"
                );
                return None;
            }
        };
        let http = reqwest::Client::builder().no_proxy().build().unwrap();
        for _ in 0..5 {
            let port = free_port();
            let mut child = Command::new(&program)
                .args(["-H", "127.0.0.1", "-p", &port.to_string()])
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .unwrap_or_else(|e| panic!("{MOTO_VAR}={program}: {e}"));
            let endpoint = format!("http://127.0.0.1:{port}");
            let deadline = Instant::now() + Duration::from_secs(30);
            while Instant::now() < deadline {
                if child.try_wait().unwrap().is_some() {
                    break; // lost the port to someone else: try another
                }
                if http.get(format!("{endpoint}/")).send().await.is_ok() {
                    return Some(Moto {
                        child: Some(child),
                        endpoint,
                        http,
                    });
                }
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            let _ = child.kill();
            let _ = child.wait();
        }
        panic!("moto_server did not start");
    }

    /// Create a bucket (moto accepts unsigned requests).
    pub async fn bucket(&self, name: &str) {
        let r = self
            .http
            .put(format!("{}/{name}", self.endpoint))
            .send()
            .await
            .unwrap();
        assert!(r.status().is_success(), "create bucket: {}", r.status());
    }

    /// Options for the store: this endpoint and throw-away credentials.
    pub fn options(&self) -> StorageOptions {
        StorageOptions {
            s3_endpoint: Some(url::Url::parse(&self.endpoint).unwrap()),
            s3_public_endpoint: None,
            extra: self.extra(),
        }
    }

    pub fn extra(&self) -> Vec<(String, String)> {
        [
            ("aws_access_key_id", ACCESS_KEY),
            ("aws_secret_access_key", SECRET_KEY),
            ("aws_region", REGION),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
    }

    pub fn storage(&self, url: &str) -> Storage {
        Storage::from_url(url, &self.options()).unwrap()
    }

    /// Keys of every object in the bucket, whatever the prefix.
    pub async fn all_keys(&self, bucket: &str) -> Vec<String> {
        let mut keys = self
            .storage(&format!("s3://{bucket}"))
            .list("")
            .await
            .unwrap();
        keys.sort();
        keys
    }

    /// Multipart uploads started and neither completed nor aborted.
    pub async fn open_uploads(&self, bucket: &str) -> usize {
        let body = self
            .http
            .get(format!("{}/{bucket}?uploads", self.endpoint))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        assert!(body.contains("ListMultipartUploadsResult"), "{body}");
        body.matches("<Upload>").count()
    }

    /// The ETag of an object as the server reports it (`"…-N"` for N parts).
    pub async fn etag(&self, bucket: &str, key: &str) -> String {
        let r = self
            .http
            .head(format!("{}/{bucket}/{key}", self.endpoint))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200, "{key}");
        r.headers()["etag"].to_str().unwrap().to_string()
    }

    pub fn stop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

impl Drop for Moto {
    fn drop(&mut self) {
        self.stop();
    }
}
