//! The attached console's live link: the server's `/ws` (the token as the `bearer.<base64url>` subprotocol beside
//! `ema.v1`), its snapshot folded into the shared job list, its events republished on the console's own bus, and
//! reconnection with back-off when the link drops, the link's state kept where the status bar reads it.

use std::collections::{HashMap, HashSet};
use std::sync::Mutex;
use std::time::Duration;

use futures::{SinkExt, StreamExt};
use serde_json::Value;
use tokio::sync::broadcast;
use tokio::time::Instant;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::http::HeaderValue;
use tokio_util::sync::CancellationToken;

use super::client::ApiClient;
use super::convert::{self, Job};
use crate::engine::events::Event;
use crate::tui::state::LinkFacts;

/// The first wait before reconnecting; doubled after each failure up to [`MAX_BACKOFF`].
pub const FIRST_BACKOFF: Duration = Duration::from_millis(500);
pub const MAX_BACKOFF: Duration = Duration::from_secs(8);
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// A ping this often; a link silent for [`SILENCE`] (no event, no pong) counts as dropped.
const PING_EVERY: Duration = Duration::from_secs(10);
const SILENCE: Duration = Duration::from_secs(30);
/// How long after a live ending a refresh waits for the server's lists to show it.
pub const SETTLE: Duration = Duration::from_secs(3);

/// What the link and the backend share.
#[derive(Debug, Default)]
pub struct Shared {
    pub facts: Mutex<LinkFacts>,
    /// The server's jobs as last seen (snapshot or `GET /api/v1/downloads`).
    pub jobs: Mutex<Vec<Job>>,
    /// Finished jobs whose ending the console has already been told.
    announced: Mutex<HashSet<String>>,
    /// Models whose download ended while the link was up (their job's ending came as a live event).
    ended_live: Mutex<HashSet<String>>,
    /// When each model's live ending arrived: the server publishes it a moment before its job list and status
    /// catch up, so a refresh right after waits for them ([`Shared::unsettled`]).
    ended_at: Mutex<HashMap<String, Instant>>,
}

impl Shared {
    pub fn new(server: &str) -> Self {
        Shared {
            facts: Mutex::new(LinkFacts {
                server: server.to_string(),
                ..Default::default()
            }),
            ..Default::default()
        }
    }

    pub fn facts(&self) -> LinkFacts {
        self.facts.lock().expect("link facts").clone()
    }

    fn set(&self, f: impl FnOnce(&mut LinkFacts)) {
        f(&mut self.facts.lock().expect("link facts"));
    }

    /// Take a fresh job list; returns the endings the console has not been told yet (jobs that finished while
    /// it was away), each told once.
    pub fn take_jobs(&self, jobs: Vec<Job>) -> Vec<Event> {
        let mut announced = self.announced.lock().expect("announced");
        let mut live = self.ended_live.lock().expect("ended live");
        let mut out = Vec::new();
        for j in jobs.iter().filter(|j| j.is_finished()) {
            if !announced.insert(j.job_id.clone()) {
                continue;
            }
            if live.remove(&j.model_id) {
                continue;
            }
            out.extend(convert::ending(j));
        }
        *self.jobs.lock().expect("jobs") = jobs;
        out
    }

    fn ended_live(&self, model_id: &str) {
        self.ended_live
            .lock()
            .expect("ended live")
            .insert(model_id.to_string());
        self.ended_at
            .lock()
            .expect("ended at")
            .insert(model_id.to_string(), Instant::now());
    }

    /// True when `jobs` still shows unfinished a job whose ending arrived less than [`SETTLE`] ago (the server's
    /// lists lag its events by the time it takes to clean up).
    pub fn unsettled(&self, jobs: &[Job]) -> bool {
        let mut at = self.ended_at.lock().expect("ended at");
        at.retain(|_, t| t.elapsed() < SETTLE);
        at.keys()
            .any(|m| jobs.iter().any(|j| &j.model_id == m && !j.is_finished()))
    }
}

/// Keep the link up until `cancel`: connect, read, and after a drop wait (back-off) and connect again.
pub async fn run(
    client: ApiClient,
    shared: std::sync::Arc<Shared>,
    bus: broadcast::Sender<Event>,
    cancel: CancellationToken,
) {
    let mut backoff = FIRST_BACKOFF;
    while !cancel.is_cancelled() {
        let why = match connect(&client).await {
            Ok(ws) => {
                backoff = FIRST_BACKOFF;
                session(ws, &shared, &bus, &cancel).await
            }
            Err(e) => e,
        };
        shared.set(|f| {
            f.connected = false;
            f.error = Some(why);
        });
        tokio::select! {
            _ = cancel.cancelled() => break,
            _ = tokio::time::sleep(backoff) => {}
        }
        backoff = (backoff * 2).min(MAX_BACKOFF);
    }
}

type Ws =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

/// Open `/ws` with the token as a subprotocol entry. The error says why, for the status bar.
pub async fn connect(client: &ApiClient) -> Result<Ws, String> {
    let mut rq = client
        .ws_url()
        .into_client_request()
        .map_err(|e| format!("bad WebSocket address: {e}"))?;
    let protocols = HeaderValue::from_str(&client.token().ws_protocols())
        .map_err(|_| "the token has characters a header cannot carry".to_string())?;
    rq.headers_mut().insert("Sec-WebSocket-Protocol", protocols);
    match tokio::time::timeout(CONNECT_TIMEOUT, tokio_tungstenite::connect_async(rq)).await {
        Err(_) => Err("the server did not answer in time".into()),
        Ok(Ok((ws, _))) => Ok(ws),
        Ok(Err(tokio_tungstenite::tungstenite::Error::Http(r))) => Err(match r.status().as_u16() {
            401 => "the server refused the token (EMA_API_TOKEN / --token-file)".into(),
            403 => "the server refused the connection (Host or Origin not allowed)".into(),
            s => format!("the server answered {s} to /ws"),
        }),
        Ok(Err(tokio_tungstenite::tungstenite::Error::Io(e))) => Err(format!("{e}")),
        Ok(Err(e)) => Err(e.to_string()),
    }
}

/// Read the link until it drops (the reason) or `cancel`.
async fn session(
    ws: Ws,
    shared: &Shared,
    bus: &broadcast::Sender<Event>,
    cancel: &CancellationToken,
) -> String {
    let (mut out, mut incoming) = ws.split();
    let mut ping = tokio::time::interval(PING_EVERY);
    ping.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut heard = Instant::now();
    loop {
        tokio::select! {
            _ = cancel.cancelled() => {
                let _ = out.send(Message::Close(None)).await;
                return "closed".into();
            }
            m = incoming.next() => {
                heard = Instant::now();
                match m {
                    None | Some(Ok(Message::Close(_))) => return "the server closed the connection".into(),
                    Some(Err(e)) => return e.to_string(),
                    Some(Ok(Message::Text(t))) => on_text(&t, shared, bus),
                    Some(Ok(_)) => {}
                }
            }
            _ = ping.tick() => {
                if heard.elapsed() > SILENCE {
                    return format!("no answer from the server for {} s", SILENCE.as_secs());
                }
                if out.send(Message::Ping(Vec::new().into())).await.is_err() {
                    return "the connection broke".into();
                }
            }
        }
    }
}

/// One frame from the server.
fn on_text(text: &str, shared: &Shared, bus: &broadcast::Sender<Event>) {
    let Ok(v) = serde_json::from_str::<Value>(text) else {
        return;
    };
    match v["type"].as_str() {
        Some("snapshot") => {
            let endings = match convert::jobs(&v["downloads"]) {
                Ok(jobs) => shared.take_jobs(jobs),
                Err(_) => Vec::new(),
            };
            for e in endings {
                let _ = bus.send(e);
            }
            // Connected once the view can be whole again: the console reloads on a new generation.
            shared.set(|f| {
                f.connected = true;
                f.error = None;
                f.generation += 1;
            });
        }
        // A fresh snapshot follows.
        Some("lagged") => {}
        _ => {
            // Events of a newer server that this console does not know are skipped.
            if let Ok(ev) = serde_json::from_value::<Event>(v) {
                if let Event::DownloadFinished { model_id, .. }
                | Event::DownloadFailed { model_id, .. }
                | Event::DownloadCancelled { model_id } = &ev
                {
                    shared.ended_live(model_id);
                }
                let _ = bus.send(ev);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn endings_are_told_once_and_not_when_they_came_live() {
        let s = Shared::new("http://127.0.0.1:1");
        let (bus, mut rx) = broadcast::channel(16);
        let done = |id: &str, m: &str| json!({"job_id": id, "model_id": m, "state": "completed", "bytes_total": 3, "commit": "c"});
        let snap = json!({"type": "snapshot", "models": {}, "downloads": [done("job-1", "a/one")]});
        on_text(&snap.to_string(), &s, &bus);
        assert!(
            matches!(rx.try_recv().unwrap(), Event::DownloadFinished { model_id, .. } if model_id == "a/one")
        );
        assert!(s.facts().connected);
        assert_eq!(s.facts().generation, 1);
        // The same snapshot again (a reconnect): nothing new to tell.
        on_text(&snap.to_string(), &s, &bus);
        assert!(rx.try_recv().is_err());
        assert_eq!(s.facts().generation, 2);
        // A live ending, then the job in the next snapshot: told once, live.
        let live = json!({"type": "download_finished", "model_id": "a/two", "commit": "c", "bytes": 3, "seconds": 1.0});
        on_text(&live.to_string(), &s, &bus);
        assert!(
            matches!(rx.try_recv().unwrap(), Event::DownloadFinished { model_id, .. } if model_id == "a/two")
        );
        let snap2 = json!({"type": "snapshot", "downloads": [done("job-1", "a/one"), done("job-2", "a/two")]});
        on_text(&snap2.to_string(), &s, &bus);
        assert!(rx.try_recv().is_err());
        assert_eq!(s.jobs.lock().unwrap().len(), 2);
        // Unknown types and garbage are skipped.
        on_text(r#"{"type": "from_the_future"}"#, &s, &bus);
        on_text("not json", &s, &bus);
        assert!(rx.try_recv().is_err());
    }
}
