//! Talking HTTP to the test hub: a client that does not follow redirects, and short forms of the usual calls.

use std::time::Duration;

use reqwest::{Client, IntoUrl, RequestBuilder, Response};
use serde::de::DeserializeOwned;

/// Poll `GET url` (JSON) every 100 ms until `pred` holds; the last value. Fails after `secs`.
pub async fn poll(
    url: &str,
    secs: u64,
    pred: impl Fn(&serde_json::Value) -> bool,
) -> serde_json::Value {
    let deadline = std::time::Instant::now() + Duration::from_secs(secs);
    loop {
        let r = client().get(url).send().await.unwrap();
        let v = r.json().await.unwrap_or(serde_json::Value::Null);
        if pred(&v) {
            return v;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "timed out polling {url}; last: {v}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// A client that shows redirects instead of following them, with a 30 s bound on every request.
pub fn client() -> Client {
    Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .timeout(Duration::from_secs(30))
        .build()
        .unwrap()
}

/// A loopback port nothing listens on (bound, then closed).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Send a request (it must get an answer, whatever its status).
pub async fn send(request: RequestBuilder) -> Response {
    request.send().await.unwrap()
}

/// GET `url` and read the body as JSON.
pub async fn get_json<T: DeserializeOwned>(c: &Client, url: impl IntoUrl) -> T {
    send(c.get(url)).await.json().await.unwrap()
}

/// A response header as text.
pub fn hdr(r: &Response, name: &str) -> Option<String> {
    r.headers()
        .get(name)
        .map(|v| v.to_str().unwrap().to_string())
}

/// Read a body until it ends or fails (20 s bound per chunk); returns (bytes, whether it failed).
pub async fn read_all(mut r: Response) -> (Vec<u8>, bool) {
    let mut out = Vec::new();
    loop {
        match tokio::time::timeout(Duration::from_secs(20), r.chunk()).await {
            Ok(Ok(Some(c))) => out.extend_from_slice(&c),
            Ok(Ok(None)) => return (out, false),
            Ok(Err(_)) | Err(_) => return (out, true),
        }
    }
}

/// `promtool check metrics` accepts the exposition (promtool comes with Debian's `prometheus` package, which
/// scripts/test.sh installs).
pub fn promtool_check_metrics(text: &str) {
    use std::io::Write;
    let mut child = std::process::Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("promtool (Debian package `prometheus`; scripts/test.sh installs it)");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(text.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "promtool check metrics: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}
