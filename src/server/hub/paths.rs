//! The Hub's path grammar made routable. A `{repo}` is `org/name` or `name`, so which segments form the id depends
//! on which repos exist (the Hub decides it the same way). Before routing, [`canonical_path`] decodes the path,
//! picks up models that changed on disk, splits off the repo id, and rewrites the URI so that every value the
//! router captures is ONE percent-encoded segment: `/api/models/{repo}/…`, `/{repo}/resolve/{rev}/{*path}`,
//! `/cdn/{sha}`. Handlers read those captures with `Path`; the URI the client sent stays in [`OriginalUri`].
//! The same step keeps the mirror read-only: anything but `GET`, `HEAD` and the `paths-info` `POST` is a `405`.

use std::sync::Arc;

use axum::body::{Body, HttpBody};
use axum::extract::{OriginalUri, Request, State};
use axum::http::{HeaderValue, Method, StatusCode, Uri, header};
use axum::middleware::Next;
use axum::response::Response;
use percent_encoding::{
    AsciiSet, CONTROLS, NON_ALPHANUMERIC, percent_decode_str, utf8_percent_encode,
};

use super::respond::hub_error;
use super::view::Hub;
use crate::server::state::ServerState;

/// The largest `paths-info` request body read.
pub(crate) const MAX_FORM: usize = 1 << 20;

/// Characters escaped in a path segment we put in a URL.
pub(crate) const SEGMENT: &AsciiSet = &CONTROLS
    .add(b' ')
    .add(b'"')
    .add(b'#')
    .add(b'%')
    .add(b'/')
    .add(b'<')
    .add(b'>')
    .add(b'?')
    .add(b'\\')
    .add(b'`')
    .add(b'{')
    .add(b'}');

/// A repo path (`/`-separated) for a URL, each segment escaped.
pub(crate) fn encode_path(path: &str) -> String {
    path.split('/')
        .map(|s| utf8_percent_encode(s, SEGMENT).to_string())
        .collect::<Vec<_>>()
        .join("/")
}

/// Everything but the unreserved characters escaped: a value that is one segment of a canonical path.
const VALUE: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~');

fn value(s: &str) -> String {
    utf8_percent_encode(s, VALUE).to_string()
}

/// A repo id as one segment with every byte escaped, so that no id (`cdn`, `api`) reads as a literal segment of
/// another route.
fn repo_value(id: &str) -> String {
    id.bytes().map(|b| format!("%{b:02X}")).collect()
}

/// Split `segs` into (repo id, rest) for an API path: `org/name/...` when that repo (or alias) exists, else
/// `name/...`, else the unknown two-part id.
fn split_api_repo<'a>(hub: &Hub, segs: &'a [&'a str]) -> (String, &'a [&'a str]) {
    const KEYWORDS: [&str; 3] = ["revision", "tree", "paths-info"];
    if segs.len() >= 2 {
        let two = format!("{}/{}", segs[0], segs[1]);
        if hub.known(&two) {
            return (two, &segs[2..]);
        }
    }
    if hub.known(segs[0]) && (segs.len() == 1 || KEYWORDS.contains(&segs[1])) {
        return (segs[0].to_string(), &segs[1..]);
    }
    if segs.len() >= 2 && !KEYWORDS.contains(&segs[1]) {
        return (format!("{}/{}", segs[0], segs[1]), &segs[2..]);
    }
    (segs[0].to_string(), &segs[1..])
}

/// `/{org}/{name}/resolve/{rev}/{path..}` or `/{name}/resolve/{rev}/{path..}`: (repo id, rev, path segments).
fn split_resolve<'a>(hub: &Hub, segs: &'a [&'a str]) -> Option<(String, &'a str, &'a [&'a str])> {
    let two = segs.len() >= 5 && segs[2] == "resolve";
    let one = segs.len() >= 4 && segs[1] == "resolve";
    if two && (!one || hub.known(&format!("{}/{}", segs[0], segs[1]))) {
        Some((format!("{}/{}", segs[0], segs[1]), segs[3], &segs[4..]))
    } else if one {
        Some((segs[0].to_string(), segs[2], &segs[3..]))
    } else {
        None
    }
}

/// The canonical path for decoded segments (`None`: route the path as it is), and whether it is the `paths-info`
/// endpoint.
fn canonical(hub: &Hub, segs: &[&str]) -> (Option<String>, bool) {
    let join =
        |vals: &[&str]| -> String { vals.iter().map(|v| format!("/{}", value(v))).collect() };
    match segs {
        ["api", "models"] | ["api", "models", ""] => (None, false),
        ["api", "models", rest @ ..] => {
            let (id, rest) = split_api_repo(hub, rest);
            let paths_info = matches!(rest, ["paths-info", _]);
            (
                Some(format!("/api/models/{}{}", repo_value(&id), join(rest))),
                paths_info,
            )
        }
        ["cdn", sha] => (Some(format!("/cdn/{}", value(sha))), false),
        _ => match split_resolve(hub, segs) {
            Some((id, rev, path)) => (
                Some(format!(
                    "/{}/resolve/{}/{}",
                    repo_value(&id),
                    value(rev),
                    path.iter().map(|s| value(s)).collect::<Vec<_>>().join("/")
                )),
                false,
            ),
            None => (None, false),
        },
    }
}

/// Pick up models that appeared or changed on disk: the one- and two-part ids this path could name.
async fn refresh_named(hub: &Hub, segs: &[&str]) {
    let rest: &[&str] = match segs {
        ["api", "models", rest @ ..] => rest,
        ["cdn", ..] => &[],
        other => other,
    };
    if let Some(first) = rest.first() {
        if let Some(second) = rest.get(1) {
            hub.st.repos.refresh(&format!("{first}/{second}")).await;
        }
        hub.st.repos.refresh(first).await;
    }
}

/// The request step before routing (see the module comment).
pub(crate) async fn canonical_path(
    State(st): State<Arc<ServerState>>,
    mut req: Request,
    next: Next,
) -> Response {
    let method = req.method().clone();
    let raw_path = req.uri().path().to_string();
    // The only POST is the read-only `paths-info` query.
    let paths_info_post = method == Method::POST
        && raw_path.starts_with("/api/models/")
        && raw_path.contains("/paths-info/");
    if method != Method::GET && method != Method::HEAD && !paths_info_post {
        let mut r = hub_error(
            StatusCode::METHOD_NOT_ALLOWED,
            "MethodNotAllowed",
            "this mirror is read-only: use GET or HEAD",
        );
        let allow = if raw_path.contains("/paths-info/") {
            "GET, HEAD, POST"
        } else {
            "GET, HEAD"
        };
        r.headers_mut()
            .insert(header::ALLOW, HeaderValue::from_static(allow));
        return with_length(r);
    }
    let segs: Vec<String> = raw_path
        .split('/')
        .skip(1)
        .map(|s| percent_decode_str(s).decode_utf8_lossy().into_owned())
        .collect();
    let segs: Vec<&str> = segs.iter().map(|s| s.as_str()).collect();
    let hub = Hub::new(st, req.extensions());
    refresh_named(&hub, &segs).await;
    let (path, is_paths_info) = canonical(&hub, &segs);
    if paths_info_post && !is_paths_info {
        // A POST elsewhere under `/api/models/…/paths-info/…` is answered like a GET (its form is read and unused).
        let (parts, body) = req.into_parts();
        if axum::body::to_bytes(body, MAX_FORM).await.is_err() {
            return with_length(form_too_large());
        }
        req = Request::from_parts(parts, Body::empty());
        *req.method_mut() = Method::GET;
    }
    if let Some(path) = path {
        let original = req.uri().clone();
        if req.extensions().get::<OriginalUri>().is_none() {
            req.extensions_mut().insert(OriginalUri(original.clone()));
        }
        let pq = match original.query() {
            Some(q) => format!("{path}?{q}"),
            None => path,
        };
        let mut parts = original.into_parts();
        parts.path_and_query = pq.parse().ok();
        if let Ok(uri) = Uri::from_parts(parts) {
            *req.uri_mut() = uri;
        }
    }
    next.run(req).await
}

/// `r` with its `Content-Length`, as the routes' answers get it from the router (this step runs outside of it).
fn with_length(mut r: Response) -> Response {
    if let Some(n) = r.body().size_hint().exact() {
        r.headers_mut()
            .insert(header::CONTENT_LENGTH, HeaderValue::from(n));
    }
    r
}

/// `413` for a `paths-info` body over [`MAX_FORM`].
pub(crate) fn form_too_large() -> Response {
    hub_error(
        StatusCode::PAYLOAD_TOO_LARGE,
        "BadRequest",
        "the paths-info request body is over 1 MiB",
    )
}
