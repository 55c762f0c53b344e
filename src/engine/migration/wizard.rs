//! The wizard both faces drive (`ema migrate …` and the console's Migration pane): one persisted state in ema's
//! own state directory (`$XDG_STATE_HOME/ema/migration/`, else `~/.local/state/ema/migration/`) — never inside the
//! install directory or the legacy models directory, so a rollback leaves it alone — with a journal of every
//! transition (`journal.jsonl`: intent before a step runs, its outcome after; plans, confirmations, resets), a run
//! lock naming its holder (one step at a time across processes; a step left `running` while nobody holds it was
//! interrupted) and a short state lock around every read-modify-write (a manual step can be confirmed while another
//! process runs a step).

use std::io::Write;
use std::path::{Path, PathBuf};

use fs4::fs_std::FileExt;
use serde::Serialize;

use super::catalog::{STEPS, StepKind, step_def};
use super::checklist::{MigrationState, StepRecord, StepState};
use super::context::{MigrationContext, StepOutcome};
use super::plan::{MigrationPlan, PlanRequest, make_plan};
use super::steps::run_step;
use crate::engine::atomic::lock_held;
use crate::engine::config::LoadedConfig;
use crate::engine::config::hub_env::HubEnv;
use crate::engine::error::{EmaError, Result};
use crate::engine::selftest::SampleHubStarter;
use crate::engine::store::now_rfc3339;

/// Held while a step runs (one step at a time, across processes); a step recorded `running` while nobody holds it
/// was interrupted.
const RUN_LOCK: &str = "run.lock";
/// Held for each read-modify-write of the state (briefly; others wait for it).
const STATE_LOCK: &str = "state.lock";
const JOURNAL_FILE: &str = "journal.jsonl";

/// The default state directory: `<platform state dir>/migration` (`$XDG_STATE_HOME/ema/migration`, else
/// `~/.local/state/ema/migration`; the data dir where the platform has no state dir).
pub fn default_dir() -> Result<PathBuf> {
    let dirs = crate::engine::config::project_dirs().ok_or_else(|| {
        EmaError::Config("cannot find a home directory for ema's state; set HOME".into())
    })?;
    Ok(dirs
        .state_dir()
        .unwrap_or_else(|| dirs.data_dir())
        .join("migration"))
}

/// The default installation directory of a side-by-side migration: `<platform data dir>/side-by-side`
/// (`$XDG_DATA_HOME/ema/side-by-side`, else `~/.local/share/ema/side-by-side`).
pub fn default_install_dir() -> Result<PathBuf> {
    let dirs = crate::engine::config::project_dirs().ok_or_else(|| {
        EmaError::Config("cannot find a home directory for ema's installation; set HOME".into())
    })?;
    Ok(dirs.data_dir().join("side-by-side"))
}

/// What a face passes to run steps: its configuration, its hub and its sample hub starter.
#[derive(Debug, Clone)]
pub struct RunEnv {
    pub loaded: LoadedConfig,
    pub hub: Option<HubEnv>,
    /// Starts the built-in sample hub "Enhanced features working" tests against — provided by the face: the engine
    /// cannot serve HTTP. None: that step is blocked, saying so.
    pub sample_hub: Option<SampleHubStarter>,
}

/// What `next` did.
#[derive(Debug, Clone, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Next {
    /// Ran this automatic step.
    Ran { step: String, record: StepRecord },
    /// This manual step waits for the operator.
    Waiting { step: String },
    /// The next pending step cannot run yet (the reason names what it needs).
    Stuck { step: String, reason: String },
    /// No step is pending; these are not complete (failed or blocked).
    NothingPending { incomplete: Vec<String> },
}

/// The wizard at one state directory.
#[derive(Debug, Clone)]
pub struct Wizard {
    dir: PathBuf,
}

/// Held while a process changes the state.
struct Lock {
    _file: std::fs::File,
}

impl Wizard {
    pub fn at(dir: impl Into<PathBuf>) -> Self {
        Wizard { dir: dir.into() }
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    pub fn journal_path(&self) -> PathBuf {
        self.dir.join(JOURNAL_FILE)
    }

    /// The state as it is now (a step left running by a process that is gone reads as failed, interrupted).
    pub fn load(&self) -> Result<MigrationState> {
        let interrupted = !lock_held(&self.dir.join(RUN_LOCK));
        MigrationState::load(&self.dir, interrupted)
    }

    /// The state with a plan, or an error saying to plan first.
    pub fn load_planned(&self) -> Result<(MigrationState, MigrationPlan)> {
        let st = self.load()?;
        let plan = st.plan.clone().ok_or_else(|| {
            EmaError::Config(
                "no migration planned yet: run `ema migrate plan --root DIR` in (or naming) the legacy install \
                 directory first"
                    .into(),
            )
        })?;
        Ok((st, plan))
    }

    fn open_lock(&self, name: &str) -> Result<(std::fs::File, PathBuf)> {
        let p = self.dir.join(name);
        let f = crate::engine::atomic::open_lock_file(&p)?;
        Ok((f, p))
    }

    /// The state lock: waits for whoever holds it (holds are short).
    fn lock(&self) -> Result<Lock> {
        let (f, p) = self.open_lock(STATE_LOCK)?;
        FileExt::lock_exclusive(&f).map_err(|e| EmaError::io("cannot lock", &p, e))?;
        Ok(Lock { _file: f })
    }

    /// The run lock: one step at a time; says who runs one when it is taken.
    fn run_lock(&self) -> Result<Lock> {
        let (mut f, p) = self.open_lock(RUN_LOCK)?;
        // A child process forked by another thread of this process shares the lock's open file until it execs: wait
        // a moment (bounded) before calling the lock taken; a real concurrent step holds it for far longer.
        let mut locked = false;
        for _ in 0..40 {
            locked = matches!(FileExt::try_lock_exclusive(&f), Ok(true));
            if locked {
                break;
            }
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
        if !locked {
            let holder = std::fs::read_to_string(&p).unwrap_or_default();
            return Err(EmaError::Other(format!(
                "another migration step is running ({}); wait for it to finish",
                holder.trim()
            )));
        }
        let _ = f.set_len(0);
        let _ = write!(f, "pid {}", std::process::id());
        Ok(Lock { _file: f })
    }

    fn journal(&self, event: &str, step: Option<&str>, text: &str) -> Result<()> {
        let p = self.journal_path();
        let line = serde_json::json!({
            "at": now_rfc3339(),
            "event": event,
            "step": step,
            "text": text,
        });
        let mut f = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&p)
            .map_err(|e| EmaError::io("cannot open", &p, e))?;
        let mut bytes = serde_json::to_vec(&line).map_err(|e| EmaError::Other(e.to_string()))?;
        bytes.push(b'\n');
        f.write_all(&bytes)
            .and_then(|_| f.sync_all())
            .map_err(|e| EmaError::io("cannot write", &p, e))
    }

    /// Detect and record the legacy setup. Re-planning the same install keeps the steps' states; another install
    /// with steps under way is refused unless `reset` (the old state is kept aside as `state-<time>.json`).
    pub fn plan(&self, req: &PlanRequest, reset: bool) -> Result<MigrationState> {
        let mut req = req.clone();
        req.state_dir = self.dir.clone();
        let plan = make_plan(&req)?;
        let _lock = self.lock()?;
        let mut st = self.load()?;
        let started = st.steps.iter().any(|r| r.state != StepState::Pending);
        if let Some(old) = &st.plan
            && old.root != plan.root
            && started
            && !reset
        {
            return Err(EmaError::Config(format!(
                "a migration of {} is under way here ({} of {} steps touched); finish it, or start over with \
                     `ema migrate plan --root {} --reset` (the old state is kept aside)",
                old.root.display(),
                st.steps
                    .iter()
                    .filter(|r| r.state != StepState::Pending)
                    .count(),
                STEPS.len(),
                plan.root.display()
            )));
        }
        if reset && (st.plan.is_some() || started) {
            let aside = self.dir.join(format!(
                "state-{}.json",
                chrono::Local::now().format("%Y%m%d_%H%M%S")
            ));
            let _ = std::fs::rename(self.dir.join(super::checklist::STATE_FILE), &aside);
            self.journal(
                "reset",
                None,
                &format!("old state kept as {}", aside.display()),
            )?;
            st = MigrationState::default();
        }
        st.plan = Some(plan.clone());
        self.journal(
            "plan",
            None,
            &format!(
                "{} ({}), {} model(s) in {}",
                plan.root.display(),
                plan.mode.as_str(),
                plan.models.len(),
                plan.models_dir.display()
            ),
        )?;
        st.save(&self.dir)?;
        Ok(st)
    }

    /// Run one automatic step: intent journaled and the state saved as `running` first, the engine work, then the
    /// outcome journaled and saved. Errors (exit 2) when it is manual, unknown, or what it needs is not done.
    pub fn run(&self, step: &str, env: &RunEnv) -> Result<StepRecord> {
        let _running = self.run_lock()?;
        let (plan, last_backup) = {
            let _lock = self.lock()?;
            // We hold the run lock: a step still marked running was interrupted.
            let mut st = MigrationState::load(&self.dir, true)?;
            let plan = st.plan.clone().ok_or_else(|| {
                EmaError::Config(
                    "no migration planned yet: run `ema migrate plan --root DIR` first".into(),
                )
            })?;
            st.begin(step)?;
            self.journal("intent", Some(step), "started")?;
            st.save(&self.dir)?;
            (plan, st.last_backup.clone())
        };
        let ctx = MigrationContext {
            plan,
            loaded: env.loaded.clone(),
            hub: env.hub.clone(),
            sample_hub: env.sample_hub.clone(),
            last_backup,
        };
        let outcome = run_guarded(step, &ctx);
        let _lock = self.lock()?;
        let mut st = MigrationState::load(&self.dir, false)?;
        self.journal(outcome_event(&outcome), Some(step), &outcome.details)?;
        st.finish(step, outcome)?;
        st.save(&self.dir)?;
        Ok(st.record(step).cloned().expect("known step"))
    }

    /// Run the next pending step in checklist order, or say which manual step waits or what stands in the way.
    pub fn next(&self, env: &RunEnv) -> Result<Next> {
        let (st, _) = self.load_planned()?;
        let Some(rec) = st.steps.iter().find(|r| r.state == StepState::Pending) else {
            return Ok(Next::NothingPending {
                incomplete: st
                    .steps
                    .iter()
                    .filter(|r| !r.state.complete())
                    .map(|r| r.id.clone())
                    .collect(),
            });
        };
        let def = step_def(&rec.id).expect("known step");
        if def.kind == StepKind::Manual {
            return Ok(Next::Waiting {
                step: rec.id.clone(),
            });
        }
        if let Err(e) = st.check_can_begin(&rec.id) {
            return Ok(Next::Stuck {
                step: rec.id.clone(),
                reason: e.to_string(),
            });
        }
        let record = self.run(&rec.id, env)?;
        Ok(Next::Ran {
            step: rec.id.clone(),
            record,
        })
    }

    /// The operator confirms a manual step (or skips it), with a note.
    pub fn confirm(&self, step: &str, note: &str, skip: bool) -> Result<MigrationState> {
        let _lock = self.lock()?;
        let (mut st, _) = self.load_planned()?;
        st.confirm(step, note, skip)?;
        self.journal(if skip { "skipped" } else { "confirmed" }, Some(step), note)?;
        st.save(&self.dir)?;
        Ok(st)
    }

    /// Put a step back to pending (to run or confirm it again).
    pub fn reset(&self, step: &str) -> Result<MigrationState> {
        let _lock = self.lock()?;
        let mut st = self.load()?;
        st.reset(step)?;
        self.journal("reset", Some(step), "back to pending")?;
        st.save(&self.dir)?;
        Ok(st)
    }
}

fn outcome_event(o: &StepOutcome) -> &'static str {
    match o.verdict {
        super::context::Verdict::Pass => "done",
        super::context::Verdict::Fail => "failed",
        super::context::Verdict::NotApplicable => "not_applicable",
        super::context::Verdict::Blocked => "blocked",
    }
}

/// A runner that panics fails its step instead of leaving it running.
fn run_guarded(step: &str, ctx: &MigrationContext) -> StepOutcome {
    match std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| run_step(step, ctx))) {
        Ok(o) => o,
        Err(_) => StepOutcome::fail(
            "the step's runner failed unexpectedly (a bug in ema); see stderr",
            vec![],
        ),
    }
}
