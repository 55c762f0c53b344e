//! The console's one async loop: terminal input, engine events, results of engine calls and a 1 s tick. It redraws
//! only when something visible changed, at most `MAX_FPS` times a second, so an idle console sleeps.

use std::sync::Arc;
use std::time::Duration;

use futures::{Stream, StreamExt};
use ratatui::Terminal;
use ratatui::backend::Backend;
use ratatui::crossterm::event::Event as TermEvent;
use tokio::sync::{broadcast, mpsc};
use tokio::time::Instant;

use crate::engine::download::DownloadSnapshot;
use crate::engine::error::{EmaError, Result};
use crate::engine::events::{Event, Severity};
use crate::engine::inventory::ModelInfo;
use crate::engine::migration::{MigrationState, StepKind, step_def};

use super::action::Action;
use super::app::App;
use super::bridge::ConsoleBackend;
use super::frame;
use super::state::alerts::AlertView;
use super::state::{RemoteModel, StorageFacts};

pub const MAX_FPS: u64 = 30;
/// Seconds between hub reachability probes.
const HUB_PROBE_EVERY: u64 = 30;

/// Results of engine calls, delivered back into the loop.
#[derive(Debug)]
pub enum Outcome {
    Models(Result<Vec<ModelInfo>>),
    Downloads(Vec<DownloadSnapshot>),
    Alerts(Result<Vec<AlertView>>),
    Remote(String, Result<RemoteModel>),
    /// The engine's fallback answer for a requested model.
    Fallback(String, Box<Result<crate::engine::fallback::Report>>),
    /// Engine bookkeeping that needs no message when it works.
    Quiet(Result<String>),
    Storage(Result<StorageFacts>),
    Analytics(Box<Result<Option<crate::engine::analytics::AnalyticsSummary>>>),
    Recommendations(Result<Vec<crate::engine::advice::Recommendation>>),
    Hub(bool),
    Done {
        result: Result<String>,
        refresh: bool,
    },
    /// A wizard call finished: the state after it (or why it failed).
    Migration {
        step: String,
        result: Box<Result<MigrationState>>,
    },
}

struct Runtime<K: ConsoleBackend> {
    backend: Arc<K>,
    tx: mpsc::UnboundedSender<Outcome>,
    /// Wizard calls in flight: the loop waits for them (briefly) before it ends, so a confirmation is never lost.
    migration_tasks: Vec<tokio::task::JoinHandle<()>>,
    refreshing: bool,
    need_refresh: bool,
    /// Models whose hub facts were asked for (once per session).
    asked_remote: std::collections::HashSet<String>,
    /// The requested model whose fallback answer is on its way.
    asked_fallback: Option<String>,
}

impl<K: ConsoleBackend> Runtime<K> {
    fn spawn_refresh(&mut self) {
        if self.refreshing {
            self.need_refresh = true;
            return;
        }
        self.refreshing = true;
        self.need_refresh = false;
        let b = self.backend.clone();
        let tx = self.tx.clone();
        tokio::spawn(async move {
            let models = b.models().await;
            let _ = tx.send(Outcome::Models(models));
            let b2 = b.clone();
            if let Ok(d) = tokio::task::spawn_blocking(move || b2.downloads()).await {
                let _ = tx.send(Outcome::Downloads(d));
            }
            let storage = b.storage().await;
            let _ = tx.send(Outcome::Storage(storage));
            let _ = tx.send(Outcome::Alerts(b.alerts().await));
            let _ = tx.send(Outcome::Analytics(Box::new(b.analytics().await)));
            let _ = tx.send(Outcome::Recommendations(b.recommendations().await));
        });
    }

    /// Ask the hub about models that are not in the store (task and size for the watch list and the fallback).
    fn ask_remote(&mut self, app: &App) {
        if self.backend.info().offline_mode {
            return;
        }
        const MAX_ASKS: usize = 100;
        for m in app.state.models.iter().filter(|m| m.metadata.is_none()) {
            if self.asked_remote.len() >= MAX_ASKS {
                break;
            }
            let id = m.id.to_string();
            if !self.asked_remote.insert(id.clone()) {
                continue;
            }
            let b = self.backend.clone();
            let tx = self.tx.clone();
            tokio::spawn(async move {
                let r = b.remote_model(id.clone()).await;
                let _ = tx.send(Outcome::Remote(id, r));
            });
        }
    }

    /// Ask the engine for the Fallback pane's answer when the pane is in use and lacks it.
    fn ask_fallback(&mut self, app: &App) {
        use super::panes::Pane;
        if app.focus != Pane::Fallback && app.companion != Pane::Fallback {
            return;
        }
        let Some(t) = app.fallback_target() else {
            return;
        };
        if app.state.fallback.contains_key(&t) || self.asked_fallback.as_ref() == Some(&t) {
            return;
        }
        self.asked_fallback = Some(t.clone());
        let b = self.backend.clone();
        let tx = self.tx.clone();
        tokio::spawn(async move {
            let r = b.suggest(t.clone()).await;
            let _ = tx.send(Outcome::Fallback(t, Box::new(r)));
        });
    }

    fn spawn_hub_probe(&self) {
        let b = self.backend.clone();
        let tx = self.tx.clone();
        tokio::spawn(async move {
            let _ = tx.send(Outcome::Hub(b.hub_reachable().await));
        });
    }

    fn spawn_call<F>(&self, fut: F, refresh: bool)
    where
        F: Future<Output = Result<String>> + Send + 'static,
    {
        let tx = self.tx.clone();
        tokio::spawn(async move {
            let result = fut.await;
            let _ = tx.send(Outcome::Done { result, refresh });
        });
    }

    fn spawn_quiet<F>(&self, fut: F)
    where
        F: Future<Output = Result<String>> + Send + 'static,
    {
        let tx = self.tx.clone();
        tokio::spawn(async move {
            let _ = tx.send(Outcome::Quiet(fut.await));
        });
    }

    fn spawn_migration<F>(&mut self, step: String, fut: F)
    where
        F: std::future::Future<Output = Result<MigrationState>> + Send + 'static,
    {
        let tx = self.tx.clone();
        self.migration_tasks.retain(|h| !h.is_finished());
        self.migration_tasks.push(tokio::spawn(async move {
            let _ = tx.send(Outcome::Migration {
                step,
                result: Box::new(fut.await),
            });
        }));
    }

    fn execute(&mut self, a: Action, app: &mut App) {
        let b = self.backend.clone();
        match a {
            Action::Download(id) => {
                app.say(Severity::Info, format!("requesting the download of {id}…"));
                self.spawn_call(b.download(id), true);
            }
            Action::Verify(id) => {
                app.say(Severity::Info, format!("verifying {id}…"));
                self.spawn_call(b.verify(id), true);
            }
            Action::Repair(id) => {
                app.say(Severity::Info, format!("repairing {id}…"));
                self.spawn_call(b.repair(id), true);
            }
            Action::Delete {
                model_id,
                confirmed: true,
            } => self.spawn_call(b.delete(model_id), true),
            Action::Pause(id) => self.spawn_call(b.pause(id), false),
            Action::Resume(id) => self.spawn_call(b.resume(id), false),
            Action::Cancel {
                model_id,
                confirmed: true,
            } => self.spawn_call(b.cancel(model_id), true),
            Action::MigrationRun { step, .. } => {
                if app.state.migration_running.is_some() {
                    app.say(
                        Severity::Warning,
                        "a migration step is running; wait for it",
                    );
                    return;
                }
                // Checked here for an immediate answer; the wizard checks again under its lock.
                match app.state.migration.begin(&step) {
                    Ok(()) => {
                        app.state.migration_running = Some(step.clone());
                        let title = step_def(&step).map(|d| d.title).unwrap_or("step");
                        app.say(Severity::Info, format!("running \"{title}\"…"));
                        self.spawn_migration(step.clone(), b.migration_run(step));
                    }
                    Err(e) => app.say(Severity::Warning, e.to_string()),
                }
            }
            Action::MigrationSkip { step, note } => {
                self.spawn_migration(step.clone(), b.migration_confirm(step, note, true))
            }
            Action::MigrationMarkDone { step, note } => {
                self.spawn_migration(step.clone(), b.migration_confirm(step, note, false))
            }
            Action::MigrationRetry(step) => {
                if app.state.migration_running.is_some() {
                    app.say(
                        Severity::Warning,
                        "a migration step is running; wait for it",
                    );
                    return;
                }
                let automatic = step_def(&step).is_some_and(|d| d.kind == StepKind::Automatic);
                if automatic {
                    app.state.migration_running = Some(step.clone());
                    app.say(Severity::Info, "running the step again…");
                }
                let reset = b.migration_reset(step.clone());
                let run = b.migration_run(step.clone());
                self.spawn_migration(step, async move {
                    let st = reset.await?;
                    if automatic { run.await } else { Ok(st) }
                });
            }
            Action::Acknowledge(id) => self.spawn_quiet(b.acknowledge(id)),
            Action::AcknowledgeAll => self.spawn_quiet(b.acknowledge("all".into())),
            Action::Watch(id) => self.spawn_call(b.watch(id), true),
            Action::ApplyRecommendation(id) => {
                app.say(Severity::Info, format!("applying {id}…"));
                self.spawn_call(b.apply_recommendation(id), true)
            }
            Action::QueueRequest(id) => {
                app.say(Severity::Info, format!("queueing {id}'s download…"));
                self.spawn_call(b.queue_request(id), true)
            }
            Action::Refresh => {
                app.say(Severity::Info, "rescanning the store…");
                self.spawn_refresh();
            }
            Action::Quit { .. } => app.quit = true,
            Action::FallbackTaken {
                requested,
                alternative,
            } => b.fallback_taken(&requested, &alternative),
            // Unconfirmed or UI-only actions never reach here (App::request handles them).
            Action::Delete { .. }
            | Action::Cancel { .. }
            | Action::SuggestFallback(_)
            | Action::UseFallback { .. } => {}
        }
    }

    /// Fold in the state of the link to the server the console is attached to; true when it changed. A new
    /// connection reloads the view (events may have been missed meanwhile).
    fn on_link(&mut self, app: &mut App) -> bool {
        let Some(l) = self.backend.link() else {
            return false;
        };
        let before = app.state.link.take();
        let changed = before.as_ref() != Some(&l);
        if l.connected && before.as_ref().is_none_or(|b| b.generation != l.generation) {
            self.spawn_refresh();
        }
        match &before {
            Some(b) if b.connected && !l.connected => app.say(
                Severity::Warning,
                format!(
                    "lost the link to {}: {}; reconnecting (downloads go on in the server)",
                    l.server,
                    l.error.as_deref().unwrap_or("closed")
                ),
            ),
            Some(b) if !b.connected && l.connected && b.generation > 0 => {
                app.say(Severity::Info, format!("reconnected to {}", l.server))
            }
            _ => {}
        }
        app.state.link = Some(l);
        changed
    }

    /// Fold a result in; true when the view changed.
    fn on_outcome(&mut self, o: Outcome, app: &mut App) -> bool {
        match o {
            Outcome::Models(r) => {
                self.refreshing = false;
                match r {
                    Ok(models) => {
                        app.state.set_models(models);
                        // The store changed: fallback answers are asked again when shown.
                        app.state.fallback.clear();
                        self.ask_remote(app);
                        app.models.refresh_view(&app.state);
                        if matches!(&app.message, Some((_, m)) if m.starts_with("rescanning")) {
                            app.message = None;
                        }
                    }
                    Err(e) => app.say(Severity::Critical, e.to_string()),
                }
                if self.need_refresh {
                    self.spawn_refresh();
                }
            }
            Outcome::Downloads(d) => app.state.set_downloads(&d),
            Outcome::Fallback(id, r) => {
                match *r {
                    Ok(rep) => {
                        if self.asked_fallback.as_ref() == Some(&id) {
                            self.asked_fallback = None;
                        }
                        app.state.fallback.insert(id, rep);
                    }
                    // Not asked again for this model until the pane moves on (no retry loop).
                    Err(e) => app.say(Severity::Warning, e.to_string()),
                }
            }
            Outcome::Remote(id, r) => match r {
                Ok(m) => app.state.set_remote(id, m),
                // Not on the hub, or the hub is unreachable: the row keeps its "-"; ask again next session.
                Err(_) => return false,
            },
            Outcome::Alerts(r) => match r {
                Ok(a) => app.state.set_alerts(a),
                Err(e) => app.say(Severity::Warning, e.to_string()),
            },
            Outcome::Quiet(r) => {
                if let Err(e) = r {
                    app.say(Severity::Warning, e.to_string());
                }
            }
            Outcome::Storage(r) => match r {
                Ok(s) => app.set_storage(s),
                Err(e) => app.say(Severity::Warning, e.to_string()),
            },
            Outcome::Analytics(r) => {
                use super::state::AnalyticsFacts;
                app.state.analytics = match *r {
                    Ok(Some(s)) => AnalyticsFacts::Ready(Box::new(s)),
                    Ok(None) => AnalyticsFacts::Off,
                    Err(e) => AnalyticsFacts::Unavailable(e.to_string()),
                };
            }
            Outcome::Recommendations(r) => {
                use super::state::RecommendationFacts;
                app.state.recommendations = match r {
                    Ok(v) => RecommendationFacts::Ready(v),
                    Err(e) => RecommendationFacts::Unavailable(e.to_string()),
                };
                app.health.clamp_recommendation(&app.state);
            }
            Outcome::Hub(ok) => {
                if app.state.hub.reachable == Some(ok) {
                    return false;
                }
                app.state.hub.reachable = Some(ok);
            }
            Outcome::Done { result, refresh } => {
                match result {
                    Ok(msg) => app.say(Severity::Info, msg),
                    Err(e) => app.say(Severity::Critical, e.to_string()),
                }
                if refresh {
                    self.spawn_refresh();
                }
            }
            Outcome::Migration { step, result } => app.migration_finished(&step, *result),
        }
        true
    }
}

fn wants_refresh(e: &Event) -> bool {
    matches!(
        e,
        Event::DownloadFinished { .. }
            | Event::DownloadFailed { .. }
            | Event::DownloadCancelled { .. }
            | Event::AvailabilityChanged { .. }
            | Event::HealthChanged { .. }
    )
}

/// Run the console until the operator quits or the input ends. Generic over the terminal backend and the input
/// stream, so tests drive it with a `TestBackend` and scripted keys.
pub async fn run<B, K, S>(
    terminal: &mut Terminal<B>,
    app: &mut App,
    backend: Arc<K>,
    mut input: S,
) -> Result<()>
where
    B: Backend,
    K: ConsoleBackend,
    S: Stream<Item = std::io::Result<TermEvent>> + Unpin,
{
    let (tx, mut rx) = mpsc::unbounded_channel();
    let mut rt = Runtime {
        backend: backend.clone(),
        tx,
        migration_tasks: Vec::new(),
        refreshing: false,
        need_refresh: false,
        asked_remote: Default::default(),
        asked_fallback: None,
    };
    let mut events = backend.subscribe();
    let mut events_open = true;
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    let min_frame = Duration::from_millis(1000 / MAX_FPS);
    let mut last_draw: Option<Instant> = None;
    let mut dirty = true;
    let mut ticks: u64 = 0;
    if !backend.info().offline_mode {
        rt.spawn_hub_probe();
    }
    rt.spawn_refresh();
    tokio::spawn(backend.resume_unfinished());

    let result: Result<()> = loop {
        rt.ask_fallback(app);
        if dirty && last_draw.is_none_or(|t| t.elapsed() >= min_frame) {
            if let Err(e) = terminal.draw(|f| frame::draw(f, app)) {
                break Err(EmaError::Other(format!("cannot draw the console: {e}")));
            }
            last_draw = Some(Instant::now());
            dirty = false;
        }
        if app.quit {
            break Ok(());
        }
        let next_frame = last_draw
            .map(|t| t + min_frame)
            .unwrap_or_else(Instant::now);
        tokio::select! {
            ev = input.next() => match ev {
                Some(Ok(ev)) => {
                    for a in app.on_terminal_event(&ev) {
                        rt.execute(a, app);
                    }
                    // Keys, resizes and focus changes all may change what is shown.
                    dirty = true;
                }
                Some(Err(e)) => break Err(EmaError::Other(format!("cannot read the terminal: {e}"))),
                None => break Ok(()),
            },
            ev = events.recv(), if events_open => match ev {
                Ok(e) => {
                    if wants_refresh(&e) {
                        rt.need_refresh = true;
                    }
                    if app.state.apply(&e) {
                        dirty = true;
                    }
                }
                Err(broadcast::error::RecvError::Lagged(_)) => rt.need_refresh = true,
                Err(broadcast::error::RecvError::Closed) => events_open = false,
            },
            Some(o) = rx.recv() => {
                if rt.on_outcome(o, app) {
                    dirty = true;
                }
            }
            _ = tick.tick() => {
                ticks += 1;
                if app.state.sample_rate() {
                    dirty = true;
                }
                if rt.on_link(app) {
                    dirty = true;
                }
                if rt.need_refresh && !rt.refreshing {
                    rt.spawn_refresh();
                }
                if ticks.is_multiple_of(HUB_PROBE_EVERY) && !backend.info().offline_mode {
                    rt.spawn_hub_probe();
                }
            }
            _ = tokio::time::sleep_until(next_frame), if dirty => {}
        }
    };
    let pending = std::mem::take(&mut rt.migration_tasks);
    drop(rt);
    let _ = tokio::time::timeout(Duration::from_secs(5), futures::future::join_all(pending)).await;
    result
}

#[cfg(test)]
mod tests {
    use ratatui::backend::TestBackend;
    use ratatui::crossterm::event::KeyCode;

    use super::*;
    use crate::engine::migration::StepState;
    use crate::tui::tests::fixtures::{key, screen};
    use crate::tui::theme::Theme;

    /// The loop itself, over a real engine and a temporary store: keys in, state persisted, clean exit.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn runtime_marks_a_step_done_and_persists_it_across_restarts() {
        use crate::engine::Engine;
        use crate::engine::config::hub_env::HubEnv;
        use crate::engine::config::{Config, ConfigSource, LoadedConfig};
        use crate::tui::bridge::EngineBackend;

        let d = tempfile::tempdir().unwrap();
        let mut config = Config::default();
        config.storage.models_directory = d.path().join("models");
        config.storage.wanted_models = vec!["org/wanted".into()];
        let loaded = LoadedConfig {
            config: config.clone(),
            path: None,
            source: ConfigSource::Defaults,
            searched: vec![],
        };
        let hub = HubEnv {
            endpoint: "http://127.0.0.1:9".into(),
            token: None,
            token_source: None,
            offline: true,
        };
        let root = d.path().join("install");
        crate::engine::legacy::sample::legacy_install(&root, false);
        let wizard = crate::engine::migration::Wizard::at(d.path().join("state"));
        wizard
            .plan(
                &crate::engine::migration::PlanRequest {
                    root,
                    mode: crate::engine::migration::Mode::InPlace,
                    legacy_port: None,
                    legacy_unit: None,
                    ema_unit: None,
                    backups_dir: d.path().join("backups"),
                    state_dir: d.path().join("state"),
                    install_dir: d.path().join("ema"),
                },
                false,
            )
            .unwrap();
        let make = || {
            Arc::new(EngineBackend::with_wizard(
                Engine::new(config.clone(), hub.clone()).unwrap(),
                loaded.clone(),
                Some(wizard.clone()),
            ))
        };
        let backend = make();
        let st = crate::tui::initial_state(backend.as_ref()).await.unwrap();
        assert_eq!(st.models.len(), 1);
        let mut app = App::new(st, Theme::monochrome());
        // Manual steps are confirmed (m) or skipped (s) with a note, typed into the prompt and sent with Enter.
        let codes = "5jjm"
            .chars()
            .map(KeyCode::Char)
            .chain("read it".chars().map(KeyCode::Char))
            .chain([KeyCode::Enter, KeyCode::Char('j'), KeyCode::Char('s')])
            .chain("night only".chars().map(KeyCode::Char))
            .chain([KeyCode::Enter, KeyCode::Char('q')]);
        let keys: Vec<std::io::Result<TermEvent>> =
            codes.map(|c| Ok(TermEvent::Key(key(c)))).collect();
        let mut term = Terminal::new(TestBackend::new(120, 40)).unwrap();
        tokio::time::timeout(
            std::time::Duration::from_secs(20),
            run(
                &mut term,
                &mut app,
                backend.clone(),
                futures::stream::iter(keys),
            ),
        )
        .await
        .expect("the loop ends")
        .unwrap();
        assert!(app.quit);
        assert!(screen(&term).contains("5 Migration"));

        // A restart reads the same state back.
        let again = make().migration_load().unwrap();
        assert_eq!(
            again.record("plan_reviewed").unwrap().state,
            StepState::Done
        );
        assert_eq!(
            again.record("downtime_scheduled").unwrap().state,
            StepState::Skipped
        );
        assert_eq!(
            again.record("team_notified").unwrap().state,
            StepState::Pending
        );
    }
}
