//! The wizard's persisted state machine: each step's state, last outcome, note and log, the recorded plan and the
//! backup it made.
//!
//! An automatic step is `pending → running → done | not_applicable | failed | blocked` (blocked: it needs a part of
//! ema that is not built yet); failed and blocked steps run again, done ones after a reset. A manual step is
//! `pending → done | skipped`, always with the operator's note. The state is one JSON file in ema's own state
//! directory (never inside what a rollback restores), written atomically after every transition; see
//! [`super::wizard`] for where it lives and how transitions are journaled and locked.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::catalog::{Phase, STEPS, StepKind, step_def, step_ids};
use super::context::{StepOutcome, Verdict};
use super::plan::MigrationPlan;
use crate::engine::atomic::write_json_atomic;
use crate::engine::error::{EmaError, Result};
use crate::engine::store::now_rfc3339;

pub const STATE_FILE: &str = "state.json";
pub const SCHEMA_VERSION: u32 = 2;
/// Log lines kept per step.
const MAX_LOG: usize = 200;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum StepState {
    Pending,
    Running,
    Done,
    /// Ran, and found nothing to do here (e.g. no database to migrate): complete.
    NotApplicable,
    Failed,
    /// Ran, and needs a part of ema that is not built yet (named in the details): not complete.
    Blocked,
    Skipped,
}

impl StepState {
    pub fn as_str(&self) -> &'static str {
        match self {
            StepState::Pending => "pending",
            StepState::Running => "running",
            StepState::Done => "done",
            StepState::NotApplicable => "not_applicable",
            StepState::Failed => "failed",
            StepState::Blocked => "blocked",
            StepState::Skipped => "skipped",
        }
    }
    /// Complete: nothing left to do for this step.
    pub fn complete(&self) -> bool {
        matches!(
            self,
            StepState::Done | StepState::NotApplicable | StepState::Skipped
        )
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LogLine {
    pub at: String,
    pub text: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StepRecord {
    pub id: String,
    pub state: StepState,
    /// One-line result of the last run (or the operator's confirmation).
    #[serde(default)]
    pub details: Option<String>,
    /// The operator's note (manual steps).
    #[serde(default)]
    pub note: Option<String>,
    #[serde(default)]
    pub log: Vec<LogLine>,
    #[serde(default)]
    pub updated_at: Option<String>,
}

impl StepRecord {
    fn fresh(id: &str) -> Self {
        StepRecord {
            id: id.to_string(),
            state: StepState::Pending,
            details: None,
            note: None,
            log: Vec::new(),
            updated_at: None,
        }
    }
}

/// The persisted wizard.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MigrationState {
    pub schema_version: u32,
    /// The legacy setup detected by `ema migrate plan` (None until planned).
    #[serde(default)]
    pub plan: Option<MigrationPlan>,
    pub steps: Vec<StepRecord>,
    /// The backup made by "Current system backed up".
    #[serde(default)]
    pub last_backup: Option<PathBuf>,
    pub updated_at: String,
}

impl Default for MigrationState {
    fn default() -> Self {
        MigrationState {
            schema_version: SCHEMA_VERSION,
            plan: None,
            steps: STEPS.iter().map(|d| StepRecord::fresh(d.id)).collect(),
            last_backup: None,
            updated_at: now_rfc3339(),
        }
    }
}

fn unknown_step(id: &str) -> EmaError {
    EmaError::Config(format!(
        "no migration step {id:?}; the steps are: {}",
        step_ids()
    ))
}

impl MigrationState {
    /// Load the state in `dir` (fresh when absent). `interrupted`: steps left `running` were interrupted (no process
    /// holds the wizard's lock) and become failed, ready to retry.
    pub fn load(dir: &Path, interrupted: bool) -> Result<Self> {
        let p = dir.join(STATE_FILE);
        let mut st: MigrationState = match std::fs::read(&p) {
            Ok(bytes) => serde_json::from_slice(&bytes).map_err(|e| {
                EmaError::Integrity(format!(
                    "migration state {} is damaged ({e}); move it aside to start the checklist again",
                    p.display()
                ))
            })?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Self::default()),
            Err(e) => return Err(EmaError::io("cannot read", &p, e)),
        };
        // Keep records in checklist order; add new steps, drop unknown ones.
        st.steps = STEPS
            .iter()
            .map(|d| {
                st.steps
                    .iter()
                    .find(|r| r.id == d.id)
                    .cloned()
                    .unwrap_or_else(|| StepRecord::fresh(d.id))
            })
            .collect();
        if interrupted {
            for r in &mut st.steps {
                if r.state == StepState::Running {
                    r.state = StepState::Failed;
                    r.details =
                        Some("interrupted: ema stopped while this step ran; run it again".into());
                    push_log(&mut r.log, "interrupted by a restart; marked failed");
                }
            }
        }
        Ok(st)
    }

    pub fn save(&mut self, dir: &Path) -> Result<()> {
        std::fs::create_dir_all(dir).map_err(|e| EmaError::io("cannot create", dir, e))?;
        self.updated_at = now_rfc3339();
        write_json_atomic(&dir.join(STATE_FILE), self)
    }

    pub fn record(&self, id: &str) -> Option<&StepRecord> {
        self.steps.iter().find(|r| r.id == id)
    }

    fn record_mut(&mut self, id: &str) -> Result<&mut StepRecord> {
        self.steps
            .iter_mut()
            .find(|r| r.id == id)
            .ok_or_else(|| unknown_step(id))
    }

    /// A step's state (pending when it never ran).
    pub fn state_of(&self, id: &str) -> StepState {
        self.record(id)
            .map(|r| r.state)
            .unwrap_or(StepState::Pending)
    }

    /// Whether an automatic step may start now: it is automatic, not running or done, and what it requires is
    /// complete. The error names what stands in the way.
    pub fn check_can_begin(&self, id: &str) -> Result<()> {
        let def = step_def(id).ok_or_else(|| unknown_step(id))?;
        if def.kind == StepKind::Manual {
            return Err(EmaError::Config(format!(
                "\"{}\" is a manual step: do it yourself, then confirm it with `ema migrate done {id} --note …` \
                 (or `ema migrate skip {id} --note …`)",
                def.title
            )));
        }
        match self.state_of(id) {
            StepState::Running => {
                return Err(EmaError::Other(format!(
                    "\"{}\" is already running; wait for it to finish",
                    def.title
                )));
            }
            StepState::Done | StepState::NotApplicable => {
                return Err(EmaError::Config(format!(
                    "\"{}\" is already {}; run it again with `ema migrate run {id} --again` (console: t)",
                    def.title,
                    self.state_of(id).as_str()
                )));
            }
            _ => {}
        }
        for r in def.requires {
            let s = self.state_of(r);
            if !matches!(s, StepState::Done | StepState::NotApplicable) {
                let rd = step_def(r).expect("catalog checked");
                return Err(EmaError::Config(format!(
                    "\"{}\" needs \"{}\" done first (it is {}); run `ema migrate run {r}`",
                    def.title,
                    rd.title,
                    s.as_str()
                )));
            }
        }
        Ok(())
    }

    /// Start running an automatic step.
    pub fn begin(&mut self, id: &str) -> Result<()> {
        self.check_can_begin(id)?;
        let r = self.record_mut(id)?;
        r.state = StepState::Running;
        r.updated_at = Some(now_rfc3339());
        push_log(&mut r.log, "started");
        Ok(())
    }

    /// Record the outcome of a run.
    pub fn finish(&mut self, id: &str, outcome: StepOutcome) -> Result<()> {
        let r = self.record_mut(id)?;
        if r.state != StepState::Running {
            return Err(EmaError::Other(format!(
                "step {id} is not running (it is {})",
                r.state.as_str()
            )));
        }
        for l in &outcome.log {
            push_log(&mut r.log, l);
        }
        r.state = match outcome.verdict {
            Verdict::Pass => StepState::Done,
            Verdict::NotApplicable => StepState::NotApplicable,
            Verdict::Fail => StepState::Failed,
            Verdict::Blocked => StepState::Blocked,
        };
        push_log(&mut r.log, r.state.as_str());
        r.details = Some(outcome.details);
        r.updated_at = Some(now_rfc3339());
        if let Some(b) = outcome.backup {
            self.last_backup = Some(b);
        }
        Ok(())
    }

    /// The operator confirms a manual step (`done`) or skips it, with a note saying what was done or why not.
    pub fn confirm(&mut self, id: &str, note: &str, skip: bool) -> Result<()> {
        let def = step_def(id).ok_or_else(|| unknown_step(id))?;
        let verb = if skip { "skip" } else { "done" };
        if def.kind != StepKind::Manual {
            return Err(EmaError::Config(format!(
                "\"{}\" is automatic: ema does it — run it with `ema migrate run {id}`; only manual steps are \
                 confirmed with `{verb}`",
                def.title
            )));
        }
        let note = note.trim();
        if note.is_empty() {
            return Err(EmaError::Config(format!(
                "a note is required: say what was done (or why it is skipped), e.g. `ema migrate {verb} {id} --note \
                 \"…\"`"
            )));
        }
        let r = self.record_mut(id)?;
        if r.state.complete() {
            return Err(EmaError::Config(format!(
                "\"{}\" is already {}; put it back with `ema migrate reset {id}` (console: t) first to change that",
                def.title,
                r.state.as_str()
            )));
        }
        r.state = if skip {
            StepState::Skipped
        } else {
            StepState::Done
        };
        r.note = Some(note.to_string());
        r.details = Some(if skip {
            format!("skipped by the operator: {note}")
        } else {
            format!("confirmed by the operator: {note}")
        });
        r.updated_at = Some(now_rfc3339());
        push_log(
            &mut r.log,
            &format!(
                "{} by the operator: {note}",
                if skip { "skipped" } else { "confirmed" }
            ),
        );
        Ok(())
    }

    /// Put a finished, failed, blocked or skipped step back to pending.
    pub fn reset(&mut self, id: &str) -> Result<()> {
        let r = self.record_mut(id)?;
        if r.state == StepState::Running {
            return Err(EmaError::Other(format!(
                "step {id} is running; wait for it to finish"
            )));
        }
        r.state = StepState::Pending;
        r.updated_at = Some(now_rfc3339());
        push_log(&mut r.log, "reset to pending for a retry");
        Ok(())
    }

    /// (complete, total) for a phase.
    pub fn progress(&self, phase: Phase) -> (usize, usize) {
        let mut done = 0;
        let mut total = 0;
        for d in STEPS.iter().filter(|d| d.phase == phase) {
            total += 1;
            if self.state_of(d.id).complete() {
                done += 1;
            }
        }
        (done, total)
    }
}

fn push_log(log: &mut Vec<LogLine>, text: &str) {
    log.push(LogLine {
        at: now_rfc3339(),
        text: text.to_string(),
    });
    if log.len() > MAX_LOG {
        let extra = log.len() - MAX_LOG;
        log.drain(..extra);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn illegal_transitions_are_refused() {
        let mut st = MigrationState::default();
        assert!(st.begin("team_notified").is_err()); // manual
        assert!(st.confirm("backup", "did it", false).is_err()); // automatic
        assert!(st.confirm("backup", "why", true).is_err()); // automatic: no skip
        assert!(st.confirm("team_notified", "  ", false).is_err()); // a note is required
        let e = st.begin("rollback_tested").unwrap_err(); // needs the backup
        assert!(e.to_string().contains("Current system backed up"), "{e}");
        st.begin("installed").unwrap();
        assert!(st.begin("installed").is_err());
        assert!(st.reset("installed").is_err());
        let e = st.begin("nope").unwrap_err();
        assert_eq!(e.exit_code(), 2);
        assert!(e.to_string().contains("system_requirements"), "{e}");
        st.confirm("team_notified", "mail sent to ops", false)
            .unwrap();
        let r = st.record("team_notified").unwrap();
        assert_eq!(r.note.as_deref(), Some("mail sent to ops"));
        assert!(st.confirm("team_notified", "again", false).is_err());
    }

    #[test]
    fn state_survives_a_reload_and_interrupted_steps_fail() {
        let d = tempfile::tempdir().unwrap();
        let mut st = MigrationState::default();
        st.begin("installed").unwrap();
        st.confirm("plan_reviewed", "read it", false).unwrap();
        st.save(d.path()).unwrap();
        // Another process holds the lock: still running.
        let live = MigrationState::load(d.path(), false).unwrap();
        assert_eq!(live.record("installed").unwrap().state, StepState::Running);
        let back = MigrationState::load(d.path(), true).unwrap();
        let r = back.record("installed").unwrap();
        assert_eq!(r.state, StepState::Failed);
        assert!(r.details.as_deref().unwrap().contains("interrupted"));
        assert_eq!(back.record("plan_reviewed").unwrap().state, StepState::Done);
        assert_eq!(back.progress(Phase::PreMigration), (1, 6));
    }
}
