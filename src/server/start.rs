//! `ema start`'s life cycle ([`ApiServer`]): the security policy checked before binding (loopback, or a token),
//! one engine with its health monitor and metrics follower, the app of each listener (one port for everything, or
//! the legacy set and the enhanced set on two ports), and a graceful stop.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use super::api::{ApiContext, Surface};
use super::metrics::Metrics;
use super::mirror::{Mirror, MirrorHandle};
use super::options::MirrorOptions;
use super::security::{Guard, GuardCell};
use crate::engine::Engine;
use crate::engine::error::{EmaError, Result};

/// How `ema start` serves.
#[derive(Debug, Clone)]
pub struct StartOptions {
    pub host: IpAddr,
    pub port: u16,
    /// `(legacy port, enhanced port)`: the two sets on two listeners (the guide's side-by-side path).
    pub split: Option<(u16, u16)>,
    pub token: Option<String>,
    pub allowed_hosts: Vec<String>,
    pub allowed_origins: Vec<String>,
    /// `api.legacy_support`.
    pub legacy_support: bool,
    /// `api.legacy_endpoints_only`.
    pub legacy_only: bool,
}

/// One listener: which set it serves and where.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Listening {
    /// `all`, `legacy` or `enhanced`.
    pub serves: &'static str,
    pub address: SocketAddr,
    pub url: String,
}

/// A running `ema start`.
pub struct ApiServer {
    listening: Vec<Listening>,
    handles: Vec<MirrorHandle>,
    stop: CancellationToken,
    tasks: Vec<tokio::task::JoinHandle<()>>,
    ctx: Arc<ApiContext>,
    guard: GuardCell,
    host: IpAddr,
}

/// Refuse a non-loopback bind without a token (exit 2), naming both ways to give one.
pub fn check_exposure(host: IpAddr, token: Option<&str>) -> Result<()> {
    if !host.is_loopback() && token.is_none_or(str::is_empty) {
        return Err(EmaError::Config(format!(
            "refusing to serve on {host} without a token: anyone who can reach this machine could drive the \
             API; set api.token in the configuration (or the EMA_API_TOKEN environment variable), or bind \
             127.0.0.1"
        )));
    }
    Ok(())
}

impl ApiServer {
    /// Bind, start the engine's background work and serve.
    pub async fn start(engine: Engine, opts: StartOptions) -> Result<ApiServer> {
        check_exposure(opts.host, opts.token.as_deref())?;
        let plan: Vec<(&'static str, u16, Surface)> = match opts.split {
            Some((legacy, enhanced)) => {
                if legacy == enhanced && legacy != 0 {
                    return Err(EmaError::Config(format!(
                        "--legacy-port and --enhanced-port are both {legacy}; give two different ports"
                    )));
                }
                vec![
                    (
                        "legacy",
                        legacy,
                        Surface {
                            legacy: true,
                            enhanced: false,
                        },
                    ),
                    (
                        "enhanced",
                        enhanced,
                        Surface {
                            legacy: false,
                            enhanced: true,
                        },
                    ),
                ]
            }
            None => vec![(
                "all",
                opts.port,
                Surface {
                    legacy: opts.legacy_support || opts.legacy_only,
                    enhanced: !opts.legacy_only,
                },
            )],
        };
        let mut listeners = Vec::new();
        for (serves, port, surface) in plan {
            let addr = SocketAddr::new(opts.host, port);
            let l = TcpListener::bind(addr).await.map_err(|e| {
                EmaError::Config(format!(
                    "cannot listen on {addr}: {e}; choose another port (--port, api.port; 0 picks a free one)"
                ))
            })?;
            listeners.push((serves, surface, l));
        }
        engine.store().ensure()?;
        let mirror = Mirror::load(engine.store().root(), MirrorOptions::default()).await?;
        let metrics = Arc::new(Metrics::new());
        let ctx = Arc::new(ApiContext::new(engine.clone(), metrics.clone()));
        // The first status snapshot, so the first client does not wait for it.
        ctx.status.status().await;
        let guard = GuardCell::new(Guard::new(
            opts.host,
            opts.token.as_deref(),
            &opts.allowed_hosts,
            &opts.allowed_origins,
        ));
        let stop = CancellationToken::new();
        let mut tasks = vec![metrics.follow(&engine)];
        if let Some(t) = engine.spawn_health_monitor(stop.clone()) {
            tasks.push(t);
        }
        let mut handles = Vec::new();
        let mut listening = Vec::new();
        for (serves, surface, l) in listeners {
            let app = super::api_app(mirror.state(), ctx.clone(), guard.clone(), surface);
            let h = super::mirror::serve_app(app, l)?;
            listening.push(Listening {
                serves,
                address: h.addr,
                url: h.url(),
            });
            handles.push(h);
        }
        Ok(ApiServer {
            listening,
            handles,
            stop,
            tasks,
            ctx,
            guard,
            host: opts.host,
        })
    }

    pub fn listening(&self) -> &[Listening] {
        &self.listening
    }

    /// Put a new token and new allow-lists in force for the requests that follow (a configuration reload). Refused
    /// (the old ones stay) when it would leave a non-loopback address without a token.
    pub fn update_security(
        &self,
        token: Option<&str>,
        allowed_hosts: &[String],
        allowed_origins: &[String],
    ) -> Result<()> {
        check_exposure(self.host, token)?;
        self.guard
            .replace(Guard::new(self.host, token, allowed_hosts, allowed_origins));
        Ok(())
    }

    /// Continue the downloads a stopped server (or another `ema`) left persisted and nobody works on, as jobs
    /// (see [`crate::engine::jobs::JobBoard::resume_persisted`]). Returns the models resumed and their job ids.
    pub fn resume_persisted(&self, max_retries: u32) -> Vec<(String, Result<String>)> {
        self.ctx
            .jobs
            .resume_persisted(max_retries)
            .into_iter()
            .map(|(repo, r)| (repo.to_string(), r.map(|s| s.job.job_id)))
            .collect()
    }

    /// Jobs still running (the caller may say so on stop; their progress is persisted and resumable).
    pub fn active_jobs(&self) -> usize {
        self.ctx.jobs.active_count()
    }

    /// Stop accepting, let requests in flight finish (up to five seconds), stop the background work. Downloads
    /// running here are paused first (their partial files and progress flushed, bounded by five seconds) and left
    /// queued, so the next start continues them where they stopped.
    pub async fn shutdown(self) {
        self.stop.cancel();
        self.park_downloads().await;
        for h in self.handles {
            h.shutdown().await;
        }
        for t in self.tasks {
            t.abort();
        }
    }

    async fn park_downloads(&self) {
        use crate::engine::download::Control;
        use crate::engine::download::queue::{Queue, QueueState};
        let engine = &self.ctx.engine;
        let running: Vec<crate::engine::store::RepoId> = engine
            .downloads()
            .into_iter()
            .filter(|d| d.in_process && d.state == QueueState::Downloading)
            .filter_map(|d| crate::engine::store::RepoId::parse(&d.model_id).ok())
            .collect();
        if running.is_empty() {
            return;
        }
        for r in &running {
            let _ = engine.pause(r);
        }
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
        while std::time::Instant::now() < deadline
            && engine
                .downloads()
                .iter()
                .any(|d| d.in_process && d.state == QueueState::Downloading)
        {
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
        // Paused only to stop cleanly: the next start resumes them (an operator's pause stays a pause).
        let q = Queue::new(engine.store());
        for r in &running {
            let _ = q.modify(r, |e| {
                e.control = Control::Run;
                e.state = QueueState::Queued;
            });
        }
    }
}
