//! File bodies: byte ranges (`206`, `416`, `If-Range`) and streaming from disk or memory, with the file offset the
//! body starts at ([`BodyStart`]) left in the response's extensions for layers that act on file offsets.

use axum::body::Body;
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::response::Response;
use bytes::Bytes;

use super::repo::{FileEntry, Source};
use super::respond::hub_error;

/// Where a body starts in its file, for faults that act on file offsets. Set on file-body responses.
#[derive(Debug, Clone, Copy)]
pub(crate) struct BodyStart(pub u64);

/// The single byte range a `Range` header asks for: `Ok(Some((start, end_exclusive)))`, `Ok(None)` for no (or an
/// unsupported) range, `Err(())` for unsatisfiable.
fn parse_range(h: Option<&HeaderValue>, size: u64) -> std::result::Result<Option<(u64, u64)>, ()> {
    let Some(v) = h.and_then(|v| v.to_str().ok()) else {
        return Ok(None);
    };
    let Some(spec) = v.trim().strip_prefix("bytes=") else {
        return Ok(None);
    };
    if spec.contains(',') {
        return Ok(None);
    }
    let Some((a, b)) = spec.split_once('-') else {
        return Ok(None);
    };
    let (a, b) = (a.trim(), b.trim());
    if a.is_empty() {
        // Suffix: the last N bytes.
        let Ok(n) = b.parse::<u64>() else {
            return Ok(None);
        };
        if n == 0 || size == 0 {
            return Err(());
        }
        return Ok(Some((size.saturating_sub(n), size)));
    }
    let Ok(start) = a.parse::<u64>() else {
        return Ok(None);
    };
    if start >= size {
        return Err(());
    }
    let end = if b.is_empty() {
        size
    } else {
        match b.parse::<u64>() {
            Ok(e) if e >= start => (e + 1).min(size),
            _ => return Ok(None),
        }
    };
    Ok(Some((start, end)))
}

/// `If-Range`: the range only applies while the entity is the one the client started with (its `ETag` in `extra`);
/// otherwise the whole (new) file.
fn if_range_holds(headers: &HeaderMap, extra: &HeaderMap) -> bool {
    match headers.get(header::IF_RANGE).and_then(|v| v.to_str().ok()) {
        None => true,
        Some(v) => {
            let norm = |s: &str| {
                s.trim()
                    .trim_start_matches("W/")
                    .trim_matches('"')
                    .to_string()
            };
            extra
                .get(header::ETAG)
                .and_then(|e| e.to_str().ok())
                .is_some_and(|e| norm(e) == norm(v))
        }
    }
}

/// `416` with `Content-Range: bytes */{size}` and the metadata headers `extra`.
fn range_not_satisfiable(size: u64, extra: HeaderMap) -> Response {
    let mut r = hub_error(
        StatusCode::RANGE_NOT_SATISFIABLE,
        "RangeNotSatisfiable",
        "the requested range starts at or beyond the end of the file",
    );
    r.headers_mut().extend(extra);
    if let Ok(v) = HeaderValue::from_str(&format!("bytes */{size}")) {
        r.headers_mut().insert(header::CONTENT_RANGE, v);
    }
    r
}

/// Bytes `[start, end)` of the file as a streamed body (64 KiB chunks from memory, 1 MiB reads from disk).
fn body_of(file: &FileEntry, start: u64, end: u64) -> std::io::Result<Body> {
    Ok(match &file.source {
        Source::Memory(b) => {
            let slice = b.slice(start as usize..end as usize);
            let chunks: Vec<std::result::Result<Bytes, std::io::Error>> = (0..slice.len())
                .step_by(64 * 1024)
                .map(|i| Ok(slice.slice(i..(i + 64 * 1024).min(slice.len()))))
                .collect();
            Body::from_stream(futures::stream::iter(chunks))
        }
        Source::Disk(p) => Body::from_stream(file_body(std::fs::File::open(p)?, start, end)),
    })
}

/// The file's bytes (all, or the range the request asks for) with the metadata headers `extra`.
pub(crate) async fn serve_bytes(
    file: &FileEntry,
    headers: &HeaderMap,
    method: &Method,
    extra: HeaderMap,
) -> Response {
    let size = file.size;
    let range_header = if if_range_holds(headers, &extra) {
        headers.get(header::RANGE)
    } else {
        None
    };
    let Ok(range) = parse_range(range_header, size) else {
        return range_not_satisfiable(size, extra);
    };
    let (start, end) = range.unwrap_or((0, size));
    let len = end - start;
    let body = if *method == Method::HEAD {
        Body::empty()
    } else {
        match body_of(file, start, end) {
            Ok(b) => b,
            Err(e) => {
                return hub_error(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "InternalError",
                    &format!("cannot open the file: {e}"),
                );
            }
        }
    };
    let mut r = Response::new(body);
    let h = r.headers_mut();
    h.extend(extra);
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/octet-stream"),
    );
    h.insert(header::ACCEPT_RANGES, HeaderValue::from_static("bytes"));
    h.insert(header::CONTENT_LENGTH, HeaderValue::from(len));
    if range.is_some() {
        *r.status_mut() = StatusCode::PARTIAL_CONTENT;
        if let Ok(v) = HeaderValue::from_str(&format!("bytes {start}-{}/{size}", end - 1)) {
            r.headers_mut().insert(header::CONTENT_RANGE, v);
        }
    }
    r.extensions_mut().insert(BodyStart(start));
    r
}

/// `n` bytes of `f` at `pos` into a fresh buffer, without zeroing it first (at gigabytes per second the memset is a
/// measurable share of the server's CPU). A file that ends early is an `UnexpectedEof` error.
fn read_exact_at_uninit(f: &std::fs::File, n: usize, pos: u64) -> std::io::Result<Vec<u8>> {
    use std::os::fd::AsRawFd;
    let mut buf: Vec<u8> = Vec::with_capacity(n);
    let mut got = 0usize;
    while got < n {
        let spare = buf.spare_capacity_mut();
        // SAFETY: `spare` is writable memory of at least `n - got` bytes owned by `buf`; pread writes at most that
        // many bytes into it and reports how many, and only those are then marked initialised.
        let r = unsafe {
            libc::pread(
                f.as_raw_fd(),
                spare.as_mut_ptr().cast(),
                n - got,
                (pos + got as u64) as libc::off_t,
            )
        };
        if r < 0 {
            let e = std::io::Error::last_os_error();
            if e.kind() == std::io::ErrorKind::Interrupted {
                continue;
            }
            return Err(e);
        }
        if r == 0 {
            return Err(std::io::Error::new(
                std::io::ErrorKind::UnexpectedEof,
                "the file is shorter than when it was listed",
            ));
        }
        got += r as usize;
        // SAFETY: the first `got` bytes were written by pread above.
        unsafe { buf.set_len(got) };
    }
    Ok(buf)
}

/// Bytes `[start, end)` of a file as a body stream of 1 MiB chunks read with positioned reads on the serving thread:
/// model files are read from the page cache in well under a millisecond per chunk, and a hop to a blocking pool per
/// chunk (what `tokio::fs` does) costs more than the read itself. A file that shrinks midway ends the body early
/// (the client sees a short transfer, never wrong bytes).
fn file_body(
    f: std::fs::File,
    start: u64,
    end: u64,
) -> impl futures::Stream<Item = std::io::Result<Bytes>> + Send + 'static {
    const CHUNK: u64 = 1 << 20;
    futures::stream::unfold((f, start), move |(f, pos)| async move {
        if pos >= end {
            return None;
        }
        let n = (end - pos).min(CHUNK) as usize;
        match read_exact_at_uninit(&f, n, pos) {
            Ok(buf) => Some((Ok(Bytes::from(buf)), (f, pos + n as u64))),
            Err(e) => Some((Err(e), (f, end))),
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges() {
        let hv = |s: &str| HeaderValue::from_str(s).unwrap();
        assert_eq!(parse_range(None, 10), Ok(None));
        assert_eq!(parse_range(Some(&hv("bytes=2-")), 10), Ok(Some((2, 10))));
        assert_eq!(parse_range(Some(&hv("bytes=2-4")), 10), Ok(Some((2, 5))));
        assert_eq!(parse_range(Some(&hv("bytes=2-40")), 10), Ok(Some((2, 10))));
        assert_eq!(parse_range(Some(&hv("bytes=-3")), 10), Ok(Some((7, 10))));
        assert_eq!(parse_range(Some(&hv("bytes=10-")), 10), Err(()));
        assert_eq!(parse_range(Some(&hv("bytes=0-")), 0), Err(()));
        assert_eq!(parse_range(Some(&hv("bytes=0-1,3-4")), 10), Ok(None));
        assert_eq!(parse_range(Some(&hv("items=0-1")), 10), Ok(None));
    }
}
