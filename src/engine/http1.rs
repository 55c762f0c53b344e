//! A small HTTP/1.1 reader for file bytes over plain `http` (a mirror on the LAN or loopback): one request per
//! connection, a `Content-Length` body read from the socket straight into the caller's buffer. The general client
//! (reqwest/hyper) reads into its own buffers and hands out chunks that must be copied again; at gigabytes per second
//! that copy and its bookkeeping cost as much CPU as the transfer itself.
//!
//! Scope, on purpose: GET, no TLS, no chunked bodies, no connection reuse. Anything outside it (https, a response
//! without a length) is left to the general client by the caller.

use std::time::Duration;

use reqwest::StatusCode;
use reqwest::header::{HeaderMap, HeaderName, HeaderValue};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use url::Url;

/// Response heads larger than this are refused.
const MAX_HEAD: usize = 64 * 1024;
const MAX_HEADERS: usize = 96;

/// Why a request over this transport failed.
#[derive(Debug)]
pub enum RawError {
    /// The host name did not resolve.
    Resolve(std::io::Error),
    /// Connecting failed or timed out.
    Connect(std::io::Error),
    /// Sending the request or reading the head failed (or the head was not valid HTTP/1.x).
    Exchange(String),
}

impl std::fmt::Display for RawError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            RawError::Resolve(e) => write!(f, "the host name did not resolve: {e}"),
            RawError::Connect(e) => write!(f, "connection failed: {e}"),
            RawError::Exchange(m) => write!(f, "{m}"),
        }
    }
}

/// A response: status, headers, and (for a body with a length) a reader of exactly that many bytes.
pub struct RawResponse {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: RawBody,
}

impl RawResponse {
    /// The body length, when the response declares one and is not chunked.
    pub fn content_length(&self) -> Option<u64> {
        self.body.remaining
    }
}

/// The body: bytes already read with the head, then the socket, never past the declared length.
pub struct RawBody {
    stream: TcpStream,
    early: Vec<u8>,
    early_at: usize,
    remaining: Option<u64>,
}

impl RawBody {
    /// Read up to `buf.len()` bytes; `Ok(0)` at the end of the body (or if the peer closed early: the caller
    /// compares what it got with what it asked for).
    pub async fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let Some(rem) = self.remaining else {
            return Ok(0);
        };
        if rem == 0 || buf.is_empty() {
            return Ok(0);
        }
        let want = buf.len().min(usize::try_from(rem).unwrap_or(usize::MAX));
        let n = if self.early_at < self.early.len() {
            let n = want.min(self.early.len() - self.early_at);
            buf[..n].copy_from_slice(&self.early[self.early_at..self.early_at + n]);
            self.early_at += n;
            n
        } else {
            self.stream.read(&mut buf[..want]).await?
        };
        self.remaining = Some(rem - n as u64);
        Ok(n)
    }
}

/// GET `url` (plain http) with `headers` (the caller adds Range, Accept-Encoding, Authorization).
pub async fn get(
    url: &Url,
    headers: &HeaderMap,
    connect_timeout: Duration,
    read_timeout: Duration,
) -> Result<RawResponse, RawError> {
    let host = url
        .host_str()
        .ok_or_else(|| RawError::Exchange("the URL has no host".into()))?;
    let port = url.port_or_known_default().unwrap_or(80);
    // IPv6 literals come bracketed from the URL; the resolver wants them bare.
    let bare = host.trim_start_matches('[').trim_end_matches(']');
    let addrs: Vec<std::net::SocketAddr> = tokio::net::lookup_host((bare, port))
        .await
        .map_err(RawError::Resolve)?
        .collect();
    let mut last = None;
    let mut stream = None;
    for a in addrs {
        match tokio::time::timeout(connect_timeout, TcpStream::connect(a)).await {
            Ok(Ok(s)) => {
                stream = Some(s);
                break;
            }
            Ok(Err(e)) => last = Some(e),
            Err(_) => {
                last = Some(std::io::Error::new(
                    std::io::ErrorKind::TimedOut,
                    format!("no answer within {:.1} s", connect_timeout.as_secs_f64()),
                ))
            }
        }
    }
    let mut stream = stream.ok_or_else(|| {
        RawError::Connect(last.unwrap_or_else(|| {
            std::io::Error::new(std::io::ErrorKind::NotFound, "no address for the host")
        }))
    })?;
    let _ = stream.set_nodelay(true);

    let mut target = url.path().to_string();
    if let Some(q) = url.query() {
        target.push('?');
        target.push_str(q);
    }
    let host_header = match url.port() {
        Some(p) => format!("{host}:{p}"),
        None => host.to_string(),
    };
    let mut req = format!("GET {target} HTTP/1.1\r\nHost: {host_header}\r\nConnection: close\r\n");
    for (k, v) in headers {
        let Ok(v) = v.to_str() else {
            return Err(RawError::Exchange(format!("header {k} is not ASCII")));
        };
        req.push_str(k.as_str());
        req.push_str(": ");
        req.push_str(v);
        req.push_str("\r\n");
    }
    req.push_str("\r\n");
    let io = |what: &str, e: std::io::Error| RawError::Exchange(format!("{what}: {e}"));
    tokio::time::timeout(read_timeout, stream.write_all(req.as_bytes()))
        .await
        .map_err(|_| RawError::Exchange("sending the request timed out".into()))?
        .map_err(|e| io("sending the request failed", e))?;

    // Read until the end of the head; whatever follows it is the start of the body.
    let mut head = Vec::with_capacity(4096);
    let mut chunk = vec![0u8; 16 * 1024];
    loop {
        let n = tokio::time::timeout(read_timeout, stream.read(&mut chunk))
            .await
            .map_err(|_| {
                RawError::Exchange(format!(
                    "no response head within {:.1} s",
                    read_timeout.as_secs_f64()
                ))
            })?
            .map_err(|e| io("reading the response failed", e))?;
        if n == 0 {
            return Err(RawError::Exchange(
                "the server closed the connection before answering".into(),
            ));
        }
        head.extend_from_slice(&chunk[..n]);
        let mut hs = [httparse::EMPTY_HEADER; MAX_HEADERS];
        let mut resp = httparse::Response::new(&mut hs);
        match resp.parse(&head) {
            Ok(httparse::Status::Complete(len)) => {
                let status = StatusCode::from_u16(resp.code.unwrap_or(0)).map_err(|_| {
                    RawError::Exchange(format!("invalid status code {:?}", resp.code))
                })?;
                let mut headers = HeaderMap::new();
                for h in resp.headers.iter() {
                    let (Ok(k), Ok(v)) = (
                        HeaderName::from_bytes(h.name.as_bytes()),
                        HeaderValue::from_bytes(h.value),
                    ) else {
                        return Err(RawError::Exchange(format!(
                            "invalid response header {:?}",
                            h.name
                        )));
                    };
                    headers.append(k, v);
                }
                let chunked = headers
                    .get_all(reqwest::header::TRANSFER_ENCODING)
                    .iter()
                    .any(|v| {
                        v.to_str()
                            .is_ok_and(|s| !s.trim().eq_ignore_ascii_case("identity"))
                    });
                let lengths: Vec<&HeaderValue> = headers
                    .get_all(reqwest::header::CONTENT_LENGTH)
                    .iter()
                    .collect();
                let remaining = match (chunked, lengths.as_slice()) {
                    (false, [v]) => Some(
                        v.to_str()
                            .ok()
                            .and_then(|s| s.trim().parse::<u64>().ok())
                            .ok_or_else(|| {
                                RawError::Exchange(format!("invalid Content-Length {v:?}"))
                            })?,
                    ),
                    (false, []) | (true, _) => None,
                    (false, _) => {
                        return Err(RawError::Exchange(
                            "the response has several Content-Length headers".into(),
                        ));
                    }
                };
                let early = head.split_off(len);
                return Ok(RawResponse {
                    status,
                    headers,
                    body: RawBody {
                        stream,
                        early,
                        early_at: 0,
                        remaining,
                    },
                });
            }
            Ok(httparse::Status::Partial) => {
                if head.len() > MAX_HEAD {
                    return Err(RawError::Exchange(format!(
                        "the response head is larger than {} KiB",
                        MAX_HEAD / 1024
                    )));
                }
            }
            Err(e) => return Err(RawError::Exchange(format!("invalid HTTP response: {e}"))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::net::TcpListener;

    /// A one-shot server answering `answer` and returning the request it got.
    async fn serve_once(answer: Vec<u8>) -> (Url, tokio::task::JoinHandle<String>) {
        let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = Url::parse(&format!("http://{}/a/b?x=1", l.local_addr().unwrap())).unwrap();
        let h = tokio::spawn(async move {
            let (mut s, _) = l.accept().await.unwrap();
            let mut req = Vec::new();
            let mut buf = [0u8; 1024];
            while !req.windows(4).any(|w| w == b"\r\n\r\n") {
                let n = s.read(&mut buf).await.unwrap();
                if n == 0 {
                    break;
                }
                req.extend_from_slice(&buf[..n]);
            }
            s.write_all(&answer).await.unwrap();
            String::from_utf8(req).unwrap()
        });
        (url, h)
    }

    /// `get` with 5 s timeouts.
    async fn get5(url: &Url, h: &HeaderMap) -> Result<RawResponse, RawError> {
        get(url, h, Duration::from_secs(5), Duration::from_secs(5)).await
    }

    async fn read_all(b: &mut RawBody) -> Vec<u8> {
        let mut out = Vec::new();
        let mut buf = [0u8; 3];
        loop {
            let n = b.read(&mut buf).await.unwrap();
            if n == 0 {
                return out;
            }
            out.extend_from_slice(&buf[..n]);
        }
    }

    #[tokio::test]
    async fn reads_exactly_the_declared_body() {
        let (url, srv) = serve_once(
            b"HTTP/1.1 206 Partial Content\r\nContent-Length: 5\r\nETag: \"e\"\r\n\r\nhelloEXTRA"
                .to_vec(),
        )
        .await;
        let mut h = HeaderMap::new();
        h.insert("range", HeaderValue::from_static("bytes=0-4"));
        let mut r = get5(&url, &h).await.unwrap();
        assert_eq!(r.status, StatusCode::PARTIAL_CONTENT);
        assert_eq!(r.content_length(), Some(5));
        assert_eq!(r.headers.get("etag").unwrap(), "\"e\"");
        assert_eq!(read_all(&mut r.body).await, b"hello");
        let req = srv.await.unwrap();
        assert!(req.starts_with("GET /a/b?x=1 HTTP/1.1\r\n"), "{req}");
        assert!(req.contains("\r\nrange: bytes=0-4\r\n"), "{req}");
        assert!(req.contains("\r\nHost: 127.0.0.1:"), "{req}");
    }

    #[tokio::test]
    async fn a_short_body_ends_with_zero_and_chunked_has_no_length() {
        let (url, _srv) =
            serve_once(b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nabc".to_vec()).await;
        let mut r = get5(&url, &HeaderMap::new()).await.unwrap();
        assert_eq!(read_all(&mut r.body).await, b"abc");
        let (url, _srv) = serve_once(
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n".to_vec(),
        )
        .await;
        let r = get5(&url, &HeaderMap::new()).await.unwrap();
        assert_eq!(r.content_length(), None);
    }

    #[tokio::test]
    async fn garbage_and_refused_connections_are_errors() {
        let (url, _srv) = serve_once(b"NOT HTTP AT ALL\r\n\r\n".to_vec()).await;
        let e = get5(&url, &HeaderMap::new()).await.err().unwrap();
        assert!(e.to_string().contains("invalid HTTP response"), "{e}");
        // A port nobody listens on.
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = l.local_addr().unwrap().port();
        drop(l);
        let url = Url::parse(&format!("http://127.0.0.1:{port}/x")).unwrap();
        let e = get5(&url, &HeaderMap::new()).await.err().unwrap();
        assert!(matches!(e, RawError::Connect(_)), "{e}");
    }
}
