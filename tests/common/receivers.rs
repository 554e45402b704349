//! Report receivers for tests: an HTTP server (webhooks) and an SMTP server on loopback
//! that record what they get.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpListener;

/// One HTTP request the test server received.
#[derive(Debug, Clone)]
pub struct HttpReq {
    pub path: String,
    pub headers: HashMap<String, String>,
    pub body: Vec<u8>,
    /// The status we answered.
    pub status: u16,
}

/// An HTTP/1.1 server on loopback that records requests and answers 500 to the first
/// `fail_first` of them, then 200.
pub async fn http_server(fail_first: usize) -> (u16, Arc<Mutex<Vec<HttpReq>>>) {
    let l = TcpListener::bind("127.0.0.1:0").await.expect("bind http");
    let port = l.local_addr().expect("addr").port();
    let got: Arc<Mutex<Vec<HttpReq>>> = Arc::default();
    let store = got.clone();
    tokio::spawn(async move {
        loop {
            let Ok((s, _)) = l.accept().await else { return };
            let store = store.clone();
            tokio::spawn(async move {
                let mut r = BufReader::new(s);
                let mut line = String::new();
                if r.read_line(&mut line).await.unwrap_or(0) == 0 {
                    return;
                }
                let path = line.split_whitespace().nth(1).unwrap_or("").to_owned();
                let mut headers = HashMap::new();
                for _ in 0..100 {
                    let mut h = String::new();
                    if r.read_line(&mut h).await.unwrap_or(0) == 0 || h.trim().is_empty() {
                        break;
                    }
                    if let Some((k, v)) = h.split_once(':') {
                        headers.insert(k.trim().to_ascii_lowercase(), v.trim().to_owned());
                    }
                }
                let len: usize = headers
                    .get("content-length")
                    .and_then(|v| v.parse().ok())
                    .unwrap_or(0)
                    .min(1 << 20);
                let mut body = vec![0u8; len];
                if r.read_exact(&mut body).await.is_err() {
                    return;
                }
                let status = {
                    let mut g = store.lock().expect("lock");
                    let status = if g.len() < fail_first { 500 } else { 200 };
                    g.push(HttpReq {
                        path,
                        headers,
                        body,
                        status,
                    });
                    status
                };
                let mut s = r.into_inner();
                let _ = s
                    .write_all(
                        format!(
                            "HTTP/1.1 {status} X\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
                        )
                        .as_bytes(),
                    )
                    .await;
                let _ = s.shutdown().await;
            });
        }
    });
    (port, got)
}

/// A minimal SMTP server (RFC 5321) on loopback that stores each message's raw text and
/// refuses the first `fail_first` transactions with a temporary error (451).
pub async fn smtp_server(fail_first: usize) -> (u16, Arc<Mutex<Vec<String>>>, Arc<Mutex<usize>>) {
    let l = TcpListener::bind("127.0.0.1:0").await.expect("bind smtp");
    let port = l.local_addr().expect("addr").port();
    let got: Arc<Mutex<Vec<String>>> = Arc::default();
    let refused: Arc<Mutex<usize>> = Arc::default();
    let (store, refusals) = (got.clone(), refused.clone());
    tokio::spawn(async move {
        loop {
            let Ok((s, _)) = l.accept().await else { return };
            let (store, refusals) = (store.clone(), refusals.clone());
            tokio::spawn(async move {
                let (rd, mut wr) = s.into_split();
                let mut r = BufReader::new(rd);
                let _ = wr.write_all(b"220 test-smtp ESMTP\r\n").await;
                let mut line = String::new();
                for _ in 0..1000 {
                    line.clear();
                    if r.read_line(&mut line).await.unwrap_or(0) == 0 {
                        return;
                    }
                    let cmd = line.trim_end().to_ascii_uppercase();
                    let reply: &[u8] = if cmd.starts_with("EHLO") {
                        b"250-test-smtp\r\n250 8BITMIME\r\n"
                    } else if cmd.starts_with("HELO") {
                        b"250 test-smtp\r\n"
                    } else if cmd.starts_with("MAIL FROM") {
                        let mut n = refusals.lock().expect("lock");
                        if *n < fail_first {
                            *n += 1;
                            b"451 4.3.0 try again later\r\n"
                        } else {
                            b"250 OK\r\n"
                        }
                    } else if cmd.starts_with("RCPT TO")
                        || cmd.starts_with("RSET")
                        || cmd.starts_with("NOOP")
                    {
                        b"250 OK\r\n"
                    } else if cmd == "DATA" {
                        let _ = wr.write_all(b"354 go ahead\r\n").await;
                        let mut msg = String::new();
                        loop {
                            let mut l = String::new();
                            if r.read_line(&mut l).await.unwrap_or(0) == 0 {
                                return;
                            }
                            if l == ".\r\n" || l == ".\n" {
                                break;
                            }
                            msg.push_str(
                                l.strip_prefix('.')
                                    .filter(|_| l.starts_with(".."))
                                    .unwrap_or(&l),
                            );
                            if msg.len() > 1 << 20 {
                                return;
                            }
                        }
                        store.lock().expect("lock").push(msg);
                        b"250 OK queued\r\n"
                    } else if cmd.starts_with("QUIT") {
                        let _ = wr.write_all(b"221 bye\r\n").await;
                        return;
                    } else {
                        b"502 not implemented\r\n"
                    };
                    if wr.write_all(reply).await.is_err() {
                        return;
                    }
                }
            });
        }
    });
    (port, got, refused)
}
