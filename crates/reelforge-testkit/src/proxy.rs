//! A TCP proxy in front of a test server that counts the bytes it forwards each way, and
//! can slow the client's bytes down or cut a connection: what a client sent *to the
//! server* is measured outside both.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// What the proxy does to the bytes going to the server; changeable while it runs.
#[derive(Default)]
pub struct Faults {
    /// Bytes per second towards the server (0: unlimited).
    pub rate: AtomicU64,
    /// Cut the connection that brings the total towards the server past this (0: never);
    /// reset to 0 once done, so only one connection is cut.
    pub cut_at: AtomicU64,
}

pub struct Proxy {
    pub base: String,
    /// Bytes forwarded client → server, and server → client.
    pub up: Arc<AtomicU64>,
    pub down: Arc<AtomicU64>,
    pub connections: Arc<AtomicU64>,
    pub faults: Arc<Faults>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl Proxy {
    /// A proxy to `upstream` (`http://127.0.0.1:PORT`).
    pub async fn start(upstream: &str) -> Proxy {
        let target: SocketAddr = upstream
            .trim_start_matches("http://")
            .trim_end_matches('/')
            .parse()
            .unwrap();
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        let (up, down, connections) = (
            Arc::new(AtomicU64::new(0)),
            Arc::new(AtomicU64::new(0)),
            Arc::new(AtomicU64::new(0)),
        );
        let faults = Arc::new(Faults::default());
        let (u, d, c, f) = (
            up.clone(),
            down.clone(),
            connections.clone(),
            faults.clone(),
        );
        let task = tokio::spawn(async move {
            while let Ok((client, _)) = listener.accept().await {
                c.fetch_add(1, Ordering::SeqCst);
                let (u, d, f) = (u.clone(), d.clone(), f.clone());
                tokio::spawn(async move {
                    if let Ok(server) = TcpStream::connect(target).await {
                        relay(client, server, u, d, f).await;
                    }
                });
            }
        });
        Proxy {
            base,
            up,
            down,
            connections,
            faults,
            task,
        }
    }

    pub fn up(&self) -> u64 {
        self.up.load(Ordering::SeqCst)
    }

    pub fn down(&self) -> u64 {
        self.down.load(Ordering::SeqCst)
    }
}

async fn relay(
    client: TcpStream,
    server: TcpStream,
    up: Arc<AtomicU64>,
    down: Arc<AtomicU64>,
    faults: Arc<Faults>,
) {
    let (mut cr, mut cw) = client.into_split();
    let (mut sr, mut sw) = server.into_split();
    let to_server = async move {
        let mut buf = vec![0u8; 64 * 1024];
        loop {
            let n = match cr.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => n,
            };
            let cut = faults.cut_at.load(Ordering::SeqCst);
            let total = up.load(Ordering::SeqCst) + n as u64;
            if cut > 0 && total >= cut {
                faults.cut_at.store(0, Ordering::SeqCst);
                return; // drops both halves: the connection is cut
            }
            if sw.write_all(&buf[..n]).await.is_err() {
                break;
            }
            up.fetch_add(n as u64, Ordering::SeqCst);
            let rate = faults.rate.load(Ordering::SeqCst);
            if rate > 0 {
                tokio::time::sleep(Duration::from_secs_f64(n as f64 / rate as f64)).await;
            }
        }
        let _ = sw.shutdown().await;
    };
    let to_client = async move {
        let mut buf = vec![0u8; 64 * 1024];
        loop {
            let n = match sr.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => n,
            };
            if cw.write_all(&buf[..n]).await.is_err() {
                break;
            }
            down.fetch_add(n as u64, Ordering::SeqCst);
        }
        let _ = cw.shutdown().await;
    };
    // Either side ending (or the cut) ends the connection.
    tokio::select! {
        _ = to_server => {}
        _ = to_client => {}
    }
}
