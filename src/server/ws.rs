//! `GET /ws`: the engine's events as JSON text frames, typed as the migration guide's browser code reads them
//! (`model_download_progress`, `model_availability_change`, `model_health_alert`, and the engine's other events),
//! after a `snapshot` of every model and download on connect.
//!
//! Each client has a bounded buffer ([`CLIENT_BUFFER`] events) filled without waiting: the engine's bus never
//! waits for anyone, and a client that falls behind loses events rather than slowing anything. When it has fallen
//! behind it is told (`{"type": "lagged", "missed": N}`) and sent a fresh snapshot, so its view is whole again.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use axum::extract::State;
use axum::extract::ws::rejection::WebSocketUpgradeRejection;
use axum::extract::ws::{Message, WebSocket, WebSocketUpgrade};
use axum::response::Response;
use futures::{SinkExt, StreamExt};
use serde_json::{Value, json};
use tokio::sync::{broadcast, mpsc};

use super::api::ApiContext;
use super::security::WS_PROTOCOL;
use crate::engine::events::Event;

/// Events buffered per client before it counts as lagging.
pub const CLIENT_BUFFER: usize = 256;

/// `GET /ws`: upgrade, echoing the `ema.v1` subprotocol when the client offers it; a request that is not a
/// WebSocket handshake gets the API's JSON error.
#[utoipa::path(get, path = "/ws", tag = "enhanced", operation_id = "websocket",
    responses(
        (status = 101, description = "the WebSocket: a `snapshot`, then every engine event as a JSON text frame"),
        (status = 400, description = "not a WebSocket handshake", body = super::api::types::ErrorBody),
        (status = 401, description = "a token is configured and the handshake carries none or another",
         body = super::api::types::ErrorBody),
        (status = 403, description = "Host or Origin not allowed", body = super::api::types::ErrorBody),
        (status = 426, description = "the connection cannot be upgraded", body = super::api::types::ErrorBody),
    ))]
pub async fn handler(
    State(ctx): State<Arc<ApiContext>>,
    ws: Result<WebSocketUpgrade, WebSocketUpgradeRejection>,
) -> Response {
    let ws = match ws {
        Ok(ws) => ws,
        Err(e) => {
            let status = e.status();
            let code = if status == axum::http::StatusCode::UPGRADE_REQUIRED {
                "upgrade_required"
            } else {
                "not_a_websocket_handshake"
            };
            let msg = format!(
                "{}; connect with a WebSocket client (ws://HOST:PORT/ws)",
                e.body_text()
            );
            return super::api::error::error_response(status, code, &msg);
        }
    };
    ws.protocols([WS_PROTOCOL])
        .max_message_size(64 * 1024)
        .on_upgrade(move |socket| session(socket, ctx))
}

/// Events a client missed since it was last told.
#[derive(Default)]
struct Lag {
    missed: AtomicU64,
}

/// Move bus events into the client's queue without ever waiting; count what does not fit.
async fn pump(mut bus: broadcast::Receiver<Event>, queue: mpsc::Sender<Event>, lag: Arc<Lag>) {
    loop {
        match bus.recv().await {
            Ok(ev) => match queue.try_send(ev) {
                Ok(()) => {}
                Err(mpsc::error::TrySendError::Full(_)) => {
                    lag.missed.fetch_add(1, Ordering::Relaxed);
                }
                Err(mpsc::error::TrySendError::Closed(_)) => break,
            },
            Err(broadcast::error::RecvError::Lagged(n)) => {
                lag.missed.fetch_add(n, Ordering::Relaxed);
            }
            Err(broadcast::error::RecvError::Closed) => break,
        }
    }
}

/// The snapshot a client starts from (and gets again after lagging).
async fn snapshot(ctx: &Arc<ApiContext>) -> Value {
    let models = ctx
        .status
        .status()
        .await
        .detailed_value
        .as_ref()
        .and_then(|d| serde_json::to_value(&d.models).ok())
        .unwrap_or_else(|| json!({}));
    json!({"type": "snapshot", "models": models, "downloads": ctx.jobs.list()})
}

async fn send_json(socket: &mut futures::stream::SplitSink<WebSocket, Message>, v: &Value) -> bool {
    socket
        .send(Message::Text(v.to_string().into()))
        .await
        .is_ok()
}

async fn session(socket: WebSocket, ctx: Arc<ApiContext>) {
    let (mut out, mut incoming) = socket.split();
    // Subscribe before the snapshot so nothing between the two is lost.
    let bus = ctx.engine.bus().subscribe();
    let (qtx, mut qrx) = mpsc::channel::<Event>(CLIENT_BUFFER);
    let lag = Arc::new(Lag::default());
    let pump_task = tokio::spawn(pump(bus, qtx, lag.clone()));
    if !send_json(&mut out, &snapshot(&ctx).await).await {
        pump_task.abort();
        return;
    }
    loop {
        tokio::select! {
            ev = qrx.recv() => {
                let Some(ev) = ev else { break };
                let v = serde_json::to_value(&ev).unwrap_or(Value::Null);
                if !send_json(&mut out, &v).await {
                    break;
                }
                if qrx.is_empty() {
                    let missed = lag.missed.swap(0, Ordering::Relaxed);
                    if missed > 0 {
                        let told = send_json(&mut out, &json!({"type": "lagged", "missed": missed})).await;
                        if !told || !send_json(&mut out, &snapshot(&ctx).await).await {
                            break;
                        }
                    }
                }
            }
            msg = incoming.next() => match msg {
                Some(Ok(Message::Close(_))) | None | Some(Err(_)) => break,
                Some(Ok(_)) => {}
            },
        }
    }
    pump_task.abort();
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_full_client_queue_counts_missed_events_and_never_blocks_the_bus() {
        let (btx, brx) = broadcast::channel(64);
        let (qtx, mut qrx) = mpsc::channel(2);
        let lag = Arc::new(Lag::default());
        let task = tokio::spawn(pump(brx, qtx, lag.clone()));
        for i in 0..10 {
            btx.send(Event::DownloadPaused {
                model_id: format!("m{i}"),
            })
            .unwrap();
        }
        drop(btx);
        tokio::time::timeout(std::time::Duration::from_secs(5), task)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(lag.missed.load(Ordering::Relaxed), 8);
        assert!(
            matches!(qrx.recv().await, Some(Event::DownloadPaused { model_id }) if model_id == "m0")
        );
    }
}
