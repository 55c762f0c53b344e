//! The fault layer: logs every request, answers injected statuses, drops `Range` headers, and hands bodies to the
//! [`Shaper`] with the body faults that apply; it also gives the routes the plan's fixtures as a request
//! extension ([`OverlayExt`]).

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use axum::Router;
use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{HeaderValue, Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::Response;

use super::log::LogEntry;
use super::plan::{Fault, FaultPlan, RetryAfter};
use super::shaper::Shaper;
use crate::server::hub::bytes::BodyStart;
use crate::server::hub::view::OverlayExt;

/// Put the fault layer around the mirror's router.
pub(crate) fn wrap(router: Router, plan: Arc<FaultPlan>) -> Router {
    router.layer(axum::middleware::from_fn_with_state(plan, layer))
}

async fn layer(State(plan): State<Arc<FaultPlan>>, mut req: Request, next: Next) -> Response {
    let method = req.method().clone();
    let path = req.uri().path().to_string();
    let entry = Arc::new(LogEntry::of(&req));
    plan.log.push(entry.clone());
    req.extensions_mut().insert(OverlayExt(plan.clone()));

    if (method == Method::GET || method == Method::HEAD)
        && let Some(Fault::Status {
            status,
            retry_after,
        }) = plan.take_status(&path)
    {
        entry.set_status(status);
        return injected_status(status, retry_after);
    }

    if method == Method::GET
        && req.headers().contains_key(header::RANGE)
        && plan.take_ignore_range(&path)
    {
        req.headers_mut().remove(header::RANGE);
    }

    let resp = next.run(req).await;
    entry.set_status(resp.status().as_u16());
    let has_body = method == Method::GET
        && matches!(resp.status(), StatusCode::OK | StatusCode::PARTIAL_CONTENT);
    let (faults, cap) = if has_body {
        plan.take_body_faults(&path)
    } else {
        (Vec::new(), None)
    };
    let start = resp
        .extensions()
        .get::<BodyStart>()
        .map(|b| b.0)
        .unwrap_or(0);
    let (mut parts, body) = resp.into_parts();
    if parts.extensions.get::<BodyStart>().is_none() {
        // The shaped body's length is unknown; only a file body keeps the length its handler declared.
        parts.headers.remove(header::CONTENT_LENGTH);
    }
    let mut shaper = Shaper::new(body, start, cap, entry);
    for f in faults {
        shaper.add(f);
    }
    Response::from_parts(parts, Body::from_stream(shaper))
}

/// The answer of a [`Fault::Status`], with its `Retry-After`.
fn injected_status(status: u16, retry_after: Option<RetryAfter>) -> Response {
    let code = StatusCode::from_u16(status).unwrap_or(StatusCode::SERVICE_UNAVAILABLE);
    let mut r = Response::new(Body::from(format!("injected fault: {status}")));
    *r.status_mut() = code;
    let ra = match retry_after {
        Some(RetryAfter::Seconds(s)) => Some(s.to_string()),
        Some(RetryAfter::HttpDateIn(s)) => Some(httpdate::fmt_http_date(
            SystemTime::now() + Duration::from_secs(s),
        )),
        None => None,
    };
    if let Some(ra) = ra
        && let Ok(v) = HeaderValue::from_str(&ra)
    {
        r.headers_mut().insert(header::RETRY_AFTER, v);
    }
    r
}
