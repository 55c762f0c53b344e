//! The console attached to a running server (`ema --attach http://HOST:PORT`): [`RemoteBackend`], the second
//! implementation of [`ConsoleBackend`], over the server's REST API and `/ws`. Models from
//! `GET /api/v1/models/status/detailed`, downloads from `GET /api/v1/downloads` and `POST …/download/manage`
//! (start, pause, resume, cancel: the jobs live in the server and go on when the console goes away), alerts and
//! storage from `GET /api/v1/models/health`, the fallback answer (`POST /api/v1/models/fallback/suggest`), usage
//! analytics (`GET /api/v1/models/analytics`), live events from `/ws` ([`link`]). What the server has no endpoint
//! for (verify, repair, delete, watch, acknowledge, the migration wizard, the recommendations) answers "not
//! available when attached".
//!
//! - [`client`]: the URL, the token, REST calls and their errors;
//! - [`convert`]: the server's JSON read into the console's types;
//! - [`link`]: the WebSocket, reconnection with back-off, the link's state.

pub mod client;
pub mod convert;
pub mod link;

use std::future::Future;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use tokio::sync::broadcast;
use tokio_util::sync::CancellationToken;

use crate::engine::config::LoadedConfig;
use crate::engine::download::DownloadSnapshot;
use crate::engine::error::{EmaError, Result, exit};
use crate::engine::events::Event;
use crate::engine::inventory::ModelInfo;
use crate::engine::migration::MigrationState;

use super::app::App;
use super::bridge::{BackendInfo, ConsoleBackend};
use super::state::alerts::AlertView;
use super::state::{LinkFacts, RemoteModel, StorageFacts};
use client::{ApiClient, Token};
use link::Shared;

/// `GET /api/v1/models/health` checks every model; alerts asked right after storage reuse its answer this young.
const HEALTH_FRESH: Duration = Duration::from_secs(2);

/// How long attaching waits for the WebSocket before the console opens anyway (showing it disconnected).
const FIRST_LINK_WAIT: Duration = Duration::from_secs(3);

/// The console's backend over a server.
#[derive(Clone)]
pub struct RemoteBackend {
    inner: Arc<Inner>,
}

struct Inner {
    client: ApiClient,
    shared: Arc<Shared>,
    bus: broadcast::Sender<Event>,
    /// The receiver made before the link started, handed to the first subscriber so nothing is missed.
    first: Mutex<Option<broadcast::Receiver<Event>>>,
    cancel: CancellationToken,
    /// The server's models directory (as it reports it).
    store_root: PathBuf,
    health: Mutex<Option<(Instant, Value)>>,
}

impl Drop for Inner {
    fn drop(&mut self) {
        self.cancel.cancel();
    }
}

impl RemoteBackend {
    /// Check that `url` is an ema server that takes `token`, then keep a live link to it (on the current
    /// runtime). A bad URL is a usage error (exit 2); an unreachable server or a refused token exit 4.
    pub async fn connect(url: &str, token: Token) -> Result<Self> {
        let server = client::parse_server_url(url)?;
        let client = ApiClient::new(&server, token)?;
        let alive = client.get("/api/v1/admin/health").await?;
        if alive["status"] != "ok" {
            return Err(EmaError::Hub(format!(
                "{} answered /api/v1/admin/health without \"status\": \"ok\"; is it an `ema start` server?",
                client.base()
            )));
        }
        // Routes behind the token: a wrong or missing token fails here, before the screen changes.
        let health = client.get("/api/v1/models/health").await?;
        let store_root = health["storage"]["models_directory"]
            .as_str()
            .map(PathBuf::from)
            .ok_or_else(|| {
                EmaError::Other(format!(
                    "{} did not say where its models are; attach with an `ema` of the server's version",
                    client.base()
                ))
            })?;
        let jobs = convert::jobs(&client.get("/api/v1/downloads").await?["downloads"])?;
        let (bus, first) = broadcast::channel(4096);
        let shared = Arc::new(Shared::new(client.base()));
        for e in shared.take_jobs(jobs) {
            let _ = bus.send(e);
        }
        let cancel = CancellationToken::new();
        tokio::spawn(link::run(
            client.clone(),
            shared.clone(),
            bus.clone(),
            cancel.clone(),
        ));
        // Give the event link a moment, so the first frame says "attached" (bounded; it keeps trying after).
        let deadline = Instant::now() + FIRST_LINK_WAIT;
        while !shared.facts().connected && Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        Ok(RemoteBackend {
            inner: Arc::new(Inner {
                client,
                shared,
                bus,
                first: Mutex::new(Some(first)),
                cancel,
                store_root,
                health: Mutex::new(None),
            }),
        })
    }

    /// The server's base URL.
    pub fn server(&self) -> &str {
        self.inner.client.base()
    }

    /// Stop the link (also done when the last clone is dropped).
    pub fn close(&self) {
        self.inner.cancel.cancel();
    }

    /// `there`: what to do instead (usually a command to run on the server's machine).
    fn not_available(&self, what: &str, there: &str) -> EmaError {
        EmaError::Config(format!(
            "{what} is not available when attached to {}: the server has no endpoint for it; {there}",
            self.server()
        ))
    }
}

async fn manage(inner: Arc<Inner>, model_id: String, action: &'static str) -> Result<Value> {
    crate::engine::store::RepoId::parse(&model_id)?;
    inner
        .client
        .post(
            "/api/v1/models/download/manage",
            &json!({"model_id": model_id, "action": action}),
        )
        .await
}

/// The health answer. `reuse`: take the one the previous call fetched when it is fresh enough (the console asks
/// for storage, then alerts, in one refresh); each fetched answer is reused at most once.
async fn health(inner: &Inner, reuse: bool) -> Result<Value> {
    let kept = inner.health.lock().expect("health cache").take();
    if let Some((at, v)) = kept
        && reuse
        && at.elapsed() < HEALTH_FRESH
    {
        return Ok(v);
    }
    let v = inner.client.get("/api/v1/models/health").await?;
    *inner.health.lock().expect("health cache") = Some((Instant::now(), v.clone()));
    Ok(v)
}

fn job_id(v: &Value) -> &str {
    v["job_id"].as_str().unwrap_or("no job")
}

// The futures must be `'static` (the console spawns them), which `async fn` with `&self` would not give.
#[allow(clippy::manual_async_fn)]
impl ConsoleBackend for RemoteBackend {
    fn info(&self) -> BackendInfo {
        BackendInfo {
            store_root: self.inner.store_root.clone(),
            hub_endpoint: self.server().to_string(),
            offline_mode: false,
        }
    }

    fn subscribe(&self) -> broadcast::Receiver<Event> {
        self.inner
            .first
            .lock()
            .expect("first receiver")
            .take()
            .unwrap_or_else(|| self.inner.bus.subscribe())
    }

    fn models(&self) -> impl Future<Output = Result<Vec<ModelInfo>>> + Send + 'static {
        let inner = self.inner.clone();
        async move {
            // The job list first (so that `downloads`, read right after, is as fresh as the rows), once it shows
            // the endings already announced (bounded: the server catches up within milliseconds).
            let deadline = Instant::now() + link::SETTLE;
            let jobs = loop {
                let jobs =
                    convert::jobs(&inner.client.get("/api/v1/downloads").await?["downloads"])?;
                if !inner.shared.unsettled(&jobs) || Instant::now() >= deadline {
                    break jobs;
                }
                tokio::time::sleep(Duration::from_millis(50)).await;
            };
            for e in inner.shared.take_jobs(jobs) {
                let _ = inner.bus.send(e);
            }
            let doc = inner.client.get("/api/v1/models/status/detailed").await?;
            convert::models(&doc)
        }
    }

    fn downloads(&self) -> Vec<DownloadSnapshot> {
        convert::snapshots(&self.inner.shared.jobs.lock().expect("jobs"))
    }

    fn storage(&self) -> impl Future<Output = Result<StorageFacts>> + Send + 'static {
        let inner = self.inner.clone();
        async move { convert::storage(&health(&inner, false).await?) }
    }

    fn hub_reachable(&self) -> impl Future<Output = bool> + Send + 'static {
        let inner = self.inner.clone();
        async move { inner.client.get("/api/v1/admin/health").await.is_ok() }
    }

    fn download(&self, model_id: String) -> impl Future<Output = Result<String>> + Send + 'static {
        let inner = self.inner.clone();
        async move {
            let v = manage(inner.clone(), model_id.clone(), "start").await?;
            Ok(if v["created"] == true {
                format!(
                    "download of {model_id} started on {} ({}); it goes on there if this console closes",
                    inner.client.base(),
                    job_id(&v)
                )
            } else {
                format!(
                    "{model_id} is already downloading on {} ({}); following it",
                    inner.client.base(),
                    job_id(&v)
                )
            })
        }
    }

    fn pause(&self, model_id: String) -> impl Future<Output = Result<String>> + Send + 'static {
        let inner = self.inner.clone();
        async move {
            manage(inner, model_id.clone(), "pause").await?;
            Ok(format!("paused {model_id} on the server; u resumes it"))
        }
    }

    fn resume(&self, model_id: String) -> impl Future<Output = Result<String>> + Send + 'static {
        let inner = self.inner.clone();
        async move {
            let v = manage(inner, model_id.clone(), "resume").await?;
            Ok(format!("resumed {model_id} on the server ({})", job_id(&v)))
        }
    }

    fn cancel(&self, model_id: String) -> impl Future<Output = Result<String>> + Send + 'static {
        let inner = self.inner.clone();
        async move {
            manage(inner, model_id.clone(), "cancel").await?;
            Ok(format!("cancelled {model_id} on the server"))
        }
    }

    fn suggest(
        &self,
        model_id: String,
    ) -> impl Future<Output = Result<crate::engine::fallback::Report>> + Send + 'static {
        let inner = self.inner.clone();
        async move {
            crate::engine::store::RepoId::parse(&model_id)?;
            let v = inner
                .client
                .post(
                    "/api/v1/models/fallback/suggest",
                    &json!({"requested_model": model_id}),
                )
                .await?;
            serde_json::from_value(v).map_err(|e| {
                EmaError::Other(format!(
                    "the fallback answer of {} for {model_id} is not the report this console reads ({e}); \
                     attach with an ema of the server's version",
                    inner.client.base()
                ))
            })
        }
    }

    /// Queueing a requested model when attached is starting its download in the server (a job that goes on there).
    fn queue_request(
        &self,
        model_id: String,
    ) -> impl Future<Output = Result<String>> + Send + 'static {
        self.download(model_id)
    }

    /// The last 24 hours, as the local console shows them; `None` when the server records no analytics.
    fn analytics(
        &self,
    ) -> impl Future<Output = Result<Option<crate::engine::analytics::AnalyticsSummary>>> + Send + 'static
    {
        let inner = self.inner.clone();
        async move {
            let Some(v) = inner
                .client
                .get_unless_off("/api/v1/models/analytics?since=24h", "analytics_off")
                .await?
            else {
                return Ok(None);
            };
            serde_json::from_value(v).map(Some).map_err(|e| {
                EmaError::Other(format!(
                    "the analytics summary of {} is not the one this console reads ({e}); attach with an ema \
                     of the server's version",
                    inner.client.base()
                ))
            })
        }
    }

    fn verify(&self, model_id: String) -> impl Future<Output = Result<String>> + Send + 'static {
        let e = self.not_available(
            &format!("verifying {model_id}"),
            &format!(
                "run `ema verify-all-models --models-dir {}` on the server's machine",
                self.inner.store_root.display()
            ),
        );
        async move { Err(e) }
    }

    fn repair(&self, model_id: String) -> impl Future<Output = Result<String>> + Send + 'static {
        let e = self.not_available(
            &format!("repairing {model_id}"),
            &format!(
                "run `ema check-models --models-dir {} --repair-if-needed` on the server's machine",
                self.inner.store_root.display()
            ),
        );
        async move { Err(e) }
    }

    fn delete(&self, model_id: String) -> impl Future<Output = Result<String>> + Send + 'static {
        let e = self.not_available(
            &format!("deleting {model_id}"),
            "open the console on the server's machine (`ema`) to delete it",
        );
        async move { Err(e) }
    }

    fn remote_model(
        &self,
        model_id: String,
    ) -> impl Future<Output = Result<RemoteModel>> + Send + 'static {
        let e = self.not_available(
            "asking the hub about a model",
            "run `ema status --detailed` on the server's machine",
        );
        let _ = model_id;
        async move { Err(e) }
    }

    fn watch(&self, model_id: String) -> impl Future<Output = Result<String>> + Send + 'static {
        let e = self.not_available(
            "the watch list",
            &format!(
                "add {model_id} to storage.wanted_models in the server's configuration (then restart it), \
                 or run `ema download {model_id}` on the server's machine"
            ),
        );
        async move { Err(e) }
    }

    fn alerts(&self) -> impl Future<Output = Result<Vec<AlertView>>> + Send + 'static {
        let inner = self.inner.clone();
        async move { convert::alerts(&health(&inner, true).await?) }
    }

    fn recommendations(
        &self,
    ) -> impl Future<Output = Result<Vec<crate::engine::advice::Recommendation>>> + Send + 'static
    {
        let e = self.not_available(
            "performance recommendations",
            "run `ema analyze-performance --generate-recommendations` on the server's machine",
        );
        async move { Err(e) }
    }

    fn apply_recommendation(
        &self,
        id: String,
    ) -> impl Future<Output = Result<String>> + Send + 'static {
        let e = self.not_available(
            "applying recommendations",
            &format!("run `ema optimize --apply-recommendations` on the server's machine ({id})"),
        );
        async move { Err(e) }
    }

    fn acknowledge(
        &self,
        alert_id: String,
    ) -> impl Future<Output = Result<String>> + Send + 'static {
        let e = self.not_available(
            "acknowledging alerts",
            &format!("run `ema health --acknowledge {alert_id}` on the server's machine"),
        );
        async move { Err(e) }
    }

    fn resume_unfinished(&self) -> impl Future<Output = ()> + Send + 'static {
        // The server resumes its own downloads.
        async {}
    }

    fn migration_load(&self) -> Result<MigrationState> {
        // The Migration pane says it is not available when attached; nothing to load.
        Ok(MigrationState::default())
    }

    fn migration_run(
        &self,
        step: String,
    ) -> impl Future<Output = Result<MigrationState>> + Send + 'static {
        let e = self.not_available(
            "the migration wizard",
            &format!("run `ema migrate run {step}` on the server's machine"),
        );
        async move { Err(e) }
    }

    fn migration_confirm(
        &self,
        step: String,
        _note: String,
        skip: bool,
    ) -> impl Future<Output = Result<MigrationState>> + Send + 'static {
        let verb = if skip { "skip" } else { "done" };
        let e = self.not_available(
            "the migration wizard",
            &format!("run `ema migrate {verb} {step} --note …` on the server's machine"),
        );
        async move { Err(e) }
    }

    fn migration_reset(
        &self,
        step: String,
    ) -> impl Future<Output = Result<MigrationState>> + Send + 'static {
        let e = self.not_available(
            "the migration wizard",
            &format!("run `ema migrate run {step}` on the server's machine"),
        );
        async move { Err(e) }
    }

    fn link(&self) -> Option<LinkFacts> {
        Some(self.inner.shared.facts())
    }
}

/// `ema --attach URL`: the console against a running server. The token comes from `--token-file` or
/// `EMA_API_TOKEN`; the local configuration only chooses the theme. Returns the exit code.
pub fn run_attached(
    url: &str,
    token_file: Option<&Path>,
    loaded: &LoadedConfig,
    theme_flag: Option<String>,
) -> Result<i32> {
    let theme = super::console_theme(loaded, theme_flag)?;
    let token = Token::load(token_file, std::env::var("EMA_API_TOKEN").ok())?;
    let rt = super::console_runtime()?;
    let result = rt.block_on(async move {
        // The server is checked first, so a bad URL, an unreachable server or a wrong token say so even
        // without a terminal.
        let backend = Arc::new(RemoteBackend::connect(url, token).await?);
        if !super::have_terminal() {
            backend.close();
            eprintln!("{}", super::NO_TTY_MESSAGE);
            return Ok(exit::USAGE);
        }
        let state = super::initial_state(backend.as_ref()).await?;
        let app = App::new(state, theme);
        let r = super::on_terminal(app, backend.clone()).await;
        backend.close();
        r.map(|()| exit::OK)
    });
    rt.shutdown_timeout(Duration::from_secs(2));
    result
}

#[cfg(test)]
mod tests {
    use crate::tui::state::LinkFacts;
    use crate::tui::tests::fixtures::{app, render};

    /// The status bar (the frame's last row) of the demo console at 120 columns.
    fn status_bar(link: Option<LinkFacts>) -> String {
        let mut a = app();
        a.state.link = link;
        let t = render(&mut a, 120, 40);
        let buf = t.backend().buffer();
        let y = buf.area.height - 1;
        (0..buf.area.width)
            .map(|x| buf[(x, y)].symbol())
            .collect::<String>()
            .trim_end()
            .to_string()
    }

    #[test]
    fn the_status_bar_says_which_server_the_console_is_attached_to() {
        let mut link = LinkFacts {
            server: "http://10.0.0.7:8000".into(),
            connected: true,
            generation: 1,
            error: None,
        };
        let up = status_bar(Some(link.clone()));
        insta::assert_snapshot!("status_bar_attached_120", up);
        link.connected = false;
        link.error = Some("the server closed the connection".into());
        let down = status_bar(Some(link));
        insta::assert_snapshot!("status_bar_disconnected_120", down);
        // The local console keeps showing the hub.
        let local = status_bar(None);
        assert!(local.contains("http://127.0.0.1:8080") && !local.contains("attached"));
    }

    #[test]
    fn attached_panes_say_what_is_not_available() {
        let mut a = app();
        a.state.link = Some(LinkFacts {
            server: "http://10.0.0.7:8000".into(),
            connected: true,
            ..Default::default()
        });
        a.focus = crate::tui::panes::Pane::Migration;
        let t = render(&mut a, 120, 40);
        let s = crate::tui::tests::fixtures::screen(&t);
        assert!(
            s.contains("not available when attached to http://10.0.0.7:8000"),
            "{s}"
        );
        // Nothing downloads here: quitting never asks (the server's downloads go on).
        a.focus = crate::tui::panes::Pane::Models;
        assert!(a.state.active_downloads() > 0);
        crate::tui::tests::fixtures::press(&mut a, ratatui::crossterm::event::KeyCode::Char('q'));
        assert!(a.quit && a.confirm.is_none());
    }
}
