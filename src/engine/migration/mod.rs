//! The migration wizard's engine: the three checklists of the spec's "Migration Checklist" (pre-migration,
//! migration, post-migration) with their persisted state machine, and the runners of the automatic steps.
//!
//! Steps with engine work behind them run it for real (system requirements from the OS, a timestamped backup of the
//! configuration and the models, configuration load and validation, metadata creation and full integrity
//! verification, store read/write, a quick check of every model, the API port, the backup's contents). The rest
//! have no engine work yet: they are manual steps the operator marks done, and the wizard says so.
//!
//! - `checklist.rs`: the steps, phases, step kinds and states, and the persisted [`MigrationState`].
//! - `context.rs`: what a runner gets ([`MigrationContext`]) and gives back ([`StepOutcome`]).
//! - `steps/`: the step runners, one file per concern (system, backup, config, models, api), and [`run_step`].

mod checklist;
mod context;
mod steps;

pub use checklist::{
    LogLine, MigrationState, Phase, SCHEMA_VERSION, STATE_FILE, STEPS, StepDef, StepKind,
    StepRecord, StepState, state_path, step_def,
};
pub use context::{MigrationContext, StepOutcome};
pub use steps::run_step;

/// A context on a fresh configuration file and store under `dir`, for the tests of this module.
#[cfg(test)]
fn test_context(dir: &std::path::Path) -> MigrationContext {
    use crate::engine::config::{Config, ConfigSource, LoadedConfig};
    let cfg_path = dir.join("config").join("enhanced_model_config.json");
    std::fs::create_dir_all(cfg_path.parent().unwrap()).unwrap();
    let mut config = Config::default();
    config.storage.models_directory = dir.join("models");
    std::fs::write(&cfg_path, serde_json::to_vec(&config).unwrap()).unwrap();
    let loaded = LoadedConfig {
        config,
        path: Some(cfg_path.clone()),
        source: ConfigSource::Flag,
        searched: vec![],
    };
    MigrationContext::new(loaded, Some(cfg_path))
}

#[cfg(test)]
mod tests {
    use super::test_context as ctx;
    use super::*;

    #[test]
    fn state_survives_a_reload_and_interrupted_steps_fail() {
        let d = tempfile::tempdir().unwrap();
        let c = ctx(d.path());
        let mut st = MigrationState::load(&c.store).unwrap();
        assert!(st.steps.iter().all(|s| s.state == StepState::Pending));
        st.begin("config_migrated").unwrap();
        let out = run_step("config_migrated", &c);
        assert!(out.ok, "{out:?}");
        st.finish("config_migrated", out).unwrap();
        st.mark_done("team_notified").unwrap();
        st.skip("database_migrated").unwrap();
        st.begin("installed").unwrap();
        st.save(&c.store).unwrap();

        let back = MigrationState::load(&c.store).unwrap();
        assert_eq!(
            back.record("config_migrated").unwrap().state,
            StepState::Done
        );
        assert_eq!(back.record("team_notified").unwrap().state, StepState::Done);
        assert_eq!(
            back.record("database_migrated").unwrap().state,
            StepState::Skipped
        );
        // It was running when "ema stopped": failed, retryable.
        let r = back.record("installed").unwrap();
        assert_eq!(r.state, StepState::Failed);
        assert!(r.details.as_deref().unwrap().contains("interrupted"));
        let mut back = back;
        back.begin("installed").unwrap();
        back.finish("installed", run_step("installed", &c)).unwrap();
        assert_eq!(back.record("installed").unwrap().state, StepState::Done);
        assert_eq!(back.progress(Phase::Migration), (3, 7));
    }
}
