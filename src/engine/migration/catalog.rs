//! The wizard's steps: exactly the spec's "Migration Checklist" (pre-migration, migration, post-migration), what
//! kind each is (automatic: ema does the work; manual: a human does it and confirms with a note), what it does, and
//! what must be done before it may run.

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Phase {
    PreMigration,
    Migration,
    PostMigration,
}

impl Phase {
    pub fn title(&self) -> &'static str {
        match self {
            Phase::PreMigration => "Pre-Migration Checklist",
            Phase::Migration => "Migration Checklist",
            Phase::PostMigration => "Post-Migration Checklist",
        }
    }
}

/// Whether the engine does the step's work or the operator does.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum StepKind {
    Automatic,
    Manual,
}

impl StepKind {
    pub fn as_str(&self) -> &'static str {
        match self {
            StepKind::Automatic => "automatic",
            StepKind::Manual => "manual",
        }
    }
}

/// A checklist item.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct StepDef {
    pub id: &'static str,
    pub phase: Phase,
    /// The checklist text, as in the spec.
    pub title: &'static str,
    pub kind: StepKind,
    /// What the step does (automatic) or what the operator must do (manual).
    pub description: &'static str,
    /// Set for steps that change something: the console asks before running them.
    pub confirm: Option<&'static str>,
    /// Steps that must be done (or not applicable) before this one may run.
    pub requires: &'static [&'static str],
}

const fn step(
    kind: StepKind,
    id: &'static str,
    phase: Phase,
    title: &'static str,
    description: &'static str,
) -> StepDef {
    StepDef {
        id,
        phase,
        title,
        kind,
        description,
        confirm: None,
        requires: &[],
    }
}

const fn confirmed(mut s: StepDef, why: &'static str) -> StepDef {
    s.confirm = Some(why);
    s
}

const fn after(mut s: StepDef, requires: &'static [&'static str]) -> StepDef {
    s.requires = requires;
    s
}

use Phase::{Migration, PostMigration, PreMigration};
use StepKind::{Automatic, Manual};

/// Every step, in checklist order.
pub const STEPS: &[StepDef] = &[
    step(
        Automatic,
        "system_requirements",
        PreMigration,
        "System requirements verified",
        "Runs check-system on the planned models directory: ema's version, free disk against 50 GB minimum / \
         200 GB recommended and what a backup needs, memory against 8 / 16 GB, the hub reached, write permission.",
    ),
    confirmed(
        step(
            Automatic,
            "backup",
            PreMigration,
            "Current system backed up",
            "Runs `ema backup` of the planned install directory (models/, config.json, config/, logs/, models.db) \
             into <cache>/backups/pre-migration-YYYYmmdd_HHMMSS with a manifest of every entry (type, mode, mtime, \
             size, sha256, link target); reflinked where the filesystem allows, copied otherwise. Side by side it \
             also backs up ema's own store and configuration folder, and marks the legacy paths shared: a rollback \
             leaves them untouched.",
        ),
        "This copies the whole install directory (reflinks cost no space on XFS/btrfs).",
    ),
    step(
        Manual,
        "plan_reviewed",
        PreMigration,
        "Migration plan reviewed",
        "Manual: read the plan (`ema migrate plan` / the header above): the models found, their layouts and what \
         will happen to each; then confirm with a note.",
    ),
    step(
        Manual,
        "downtime_scheduled",
        PreMigration,
        "Downtime window scheduled",
        "Manual: agree a downtime window with the models' consumers, then confirm with a note (e.g. the window).",
    ),
    after(
        step(
            Automatic,
            "rollback_tested",
            PreMigration,
            "Rollback procedures tested",
            "Restores the backup into a scratch directory by the rollback's own logic (reflink or copy, modes, \
             mtimes, symlinks) and verifies it against the manifest entry by entry; the scratch copy is removed.",
        ),
        &["backup"],
    ),
    step(
        Manual,
        "team_notified",
        PreMigration,
        "Team notified",
        "Manual: tell the team when the migration happens, then confirm with a note.",
    ),
    step(
        Automatic,
        "services_stopped",
        Migration,
        "Services stopped",
        "Checks that nothing listens on the legacy API port (from the plan; /proc/net/tcp, tcp6) and that no other \
         process has files open or mapped under the legacy models directory (/proc/*/fd, /proc/*/maps); names \
         whatever holds them. ema does not stop other programs: stop the legacy service, then run it again. Not \
         applicable side by side (the legacy system keeps running).",
    ),
    step(
        Automatic,
        "installed",
        Migration,
        "Enhanced system installed",
        "Reports the running ema binary's version and path.",
    ),
    confirmed(
        after(
            step(
                Automatic,
                "config_migrated",
                Migration,
                "Configuration migrated",
                "Converts the legacy config.json with migrate-config into <root>/config/enhanced_model_config.json \
                 (side by side: <install-dir>/config/, pointing at ema's own store and cache, shared_storage on, \
                 another API port) when no enhanced configuration exists there, then validates it (every problem \
                 with its position and fix).",
            ),
            &["backup"],
        ),
        "This writes config/enhanced_model_config.json in the install directory.",
    ),
    confirmed(
        after(
            step(
                Automatic,
                "model_data_migrated",
                Migration,
                "Model data migrated",
                "Runs `migrate-models --verify-integrity --create-metadata` on the planned models directory: every \
                 model adopted in place (renamed, never downloaded), every file hashed against what its layout \
                 (and the hub, when it answers) promises, the sidecar written last. Side by side: nothing is \
                 moved; each model is recorded in ema's own store as links to its files where they lie.",
            ),
            &["backup", "services_stopped"],
        ),
        "In place, this moves every model of the legacy models directory into ema's layout (by rename); side by \
         side, it only adds links and sidecars in ema's own store.",
    ),
    after(
        step(
            Automatic,
            "database_migrated",
            Migration,
            "Database migrated (if applicable)",
            "Not applicable when the install has no models.db and no logs/usage.log; otherwise logs/usage.log is \
             imported into the analytics database (migrate-usage-data; idempotent, bad lines listed) and models.db \
             is kept in the backup (ema describes models from their files).",
        ),
        &["backup", "services_stopped"],
    ),
    step(
        Automatic,
        "services_started",
        Migration,
        "Services started",
        "An ema server answers GET /api/v1/admin/health on the configured api.host:api.port (the migrated \
         configuration's); else it fails saying how to start one (`ema start`, or `systemctl start \
         enhanced-model-availability`).",
    ),
    step(
        Automatic,
        "basic_functionality",
        Migration,
        "Basic functionality tested",
        "The migrated configuration loads and points at the planned store (the models directory in place, ema's \
         own store side by side), the store lists its models, \
         and verify-migration's summary: every model adopted and intact, nothing left in a legacy layout.",
    ),
    step(
        Automatic,
        "models_accessible",
        PostMigration,
        "All models accessible",
        "Every adopted model's files read in full and hashed against its sidecar (verify-migration), per model.",
    ),
    step(
        Automatic,
        "api_responding",
        PostMigration,
        "API endpoints responding",
        "Every legacy and enhanced endpoint of the running server answers in the shape the guide's clients read \
         (the checks of `ema test-api-compatibility`); nothing is changed on the server.",
    ),
    step(
        Automatic,
        "features_working",
        PostMigration,
        "Enhanced features working",
        "Runs the enhanced-feature self-test (`ema test-enhanced-features`) in a temporary store against the \
         built-in sample hub the face serves on loopback: an interrupted download resumed, verified, a flipped byte \
         repaired, the health monitor catching and repairing a corrupted file, the intelligent fallback offering a \
         related model for a missing one, a download recorded in a fresh analytics database; one log line per \
         proof. Blocked when the face provides no sample hub.",
    ),
    step(
        Automatic,
        "performance_acceptable",
        PostMigration,
        "Performance acceptable",
        "Reads every adopted model in full and compares its read throughput with its recorded baseline (below half \
         of it fails); the first run records the baseline.",
    ),
    step(
        Automatic,
        "monitoring_configured",
        PostMigration,
        "Monitoring configured",
        "Writes `ema setup-monitoring`'s files (Prometheus scrape configuration, alerting rules and their promtool tests, Grafana dashboard) into monitoring/ beside the migrated configuration, then checks that the running server's /metrics exports every metric they name (`ema test-monitoring`).",
    ),
    step(
        Manual,
        "docs_updated",
        PostMigration,
        "Documentation updated",
        "Manual: update runbooks and client documentation, then confirm with a note.",
    ),
    step(
        Manual,
        "team_trained",
        PostMigration,
        "Team trained on new features",
        "Manual: walk the team through the console, then confirm with a note.",
    ),
    after(
        step(
            Automatic,
            "rollback_verified",
            PostMigration,
            "Rollback procedures verified",
            "Checks the backup's manifest (shape) against the backup's own files: every entry present with its type, \
             size and link target, every file re-hashed against its sha256.",
        ),
        &["backup"],
    ),
];

pub fn step_def(id: &str) -> Option<&'static StepDef> {
    STEPS.iter().find(|s| s.id == id)
}

/// Every step id, comma-separated, for error messages.
pub fn step_ids() -> String {
    STEPS.iter().map(|s| s.id).collect::<Vec<_>>().join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn checklists_match_the_spec() {
        let titles = |p: Phase| -> Vec<&str> {
            STEPS
                .iter()
                .filter(|s| s.phase == p)
                .map(|s| s.title)
                .collect()
        };
        assert_eq!(titles(Phase::PreMigration).len(), 6);
        assert_eq!(titles(Phase::Migration).len(), 7);
        assert_eq!(titles(Phase::PostMigration).len(), 8);
        assert_eq!(
            titles(Phase::Migration)[4],
            "Database migrated (if applicable)"
        );
        assert_eq!(
            titles(Phase::PostMigration)[6],
            "Team trained on new features"
        );
        // Only the human steps are manual.
        let manual: Vec<&str> = STEPS
            .iter()
            .filter(|s| s.kind == StepKind::Manual)
            .map(|s| s.id)
            .collect();
        assert_eq!(
            manual,
            [
                "plan_reviewed",
                "downtime_scheduled",
                "team_notified",
                "docs_updated",
                "team_trained"
            ]
        );
        for s in STEPS {
            for r in s.requires {
                assert!(step_def(r).is_some(), "{} requires unknown {r}", s.id);
            }
        }
    }
}
