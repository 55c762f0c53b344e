//! `ema migrate plan|status|next|run|skip|done`: the migration wizard from the command line — the same persisted
//! state, journal and step runners as the console's Migration pane (the engine's `Wizard`), human output or one
//! JSON document with `--json`.

use std::path::PathBuf;

use clap::{Args, Subcommand, ValueEnum};

use crate::engine::config::hub_env::HubEnv;
use crate::engine::download::disk::human_bytes;
use crate::engine::error::{Result, exit};
use crate::engine::migration::{
    self, MigrationState, Mode, Next, PlanRequest, RunEnv, STEPS, StepRecord, StepState, Wizard,
    step_def,
};

use super::Ctx;

#[derive(Debug, Args)]
#[command(
    after_help = "The wizard's state and journal live in ema's state directory ($XDG_STATE_HOME/ema/migration, \
else ~/.local/state/ema/migration), outside everything a rollback restores.\n\nExit codes: 0 the step is done (or \
not applicable) or waits for you, 1 a step failed or is blocked on a part of ema not built yet, 2 bad input (unknown \
step, a manual step run or an automatic one confirmed, a missing note, no plan yet, an --install-dir that overlaps \
the legacy install), 5 the \
legacy models directory does not exist."
)]
pub struct MigrateArgs {
    #[command(subcommand)]
    pub command: MigrateCommand,
}

#[derive(Debug, Subcommand)]
pub enum MigrateCommand {
    /// Detect and record the legacy setup (install directory, config.json, models directory, layouts, models,
    /// mode) and print what will happen, step by step. Changes nothing of the install.
    Plan(PlanArgs),
    /// Every step with its state, kind and last outcome.
    Status,
    /// Run the next pending automatic step, or say which manual step waits for you.
    Next,
    /// Run one automatic step (again, when it failed or was blocked).
    Run {
        /// The step id (see `ema migrate status`).
        step: String,
        /// Run it again although it is done (or not applicable): it goes back to pending first.
        #[arg(long)]
        again: bool,
    },
    /// Skip a manual step, saying why.
    Skip {
        step: String,
        /// Why it is skipped (required).
        #[arg(long, value_name = "TEXT")]
        note: String,
    },
    /// Put a step back to pending, to run or confirm it again (recorded in the journal).
    Reset { step: String },
    /// Confirm a manual step done, saying what was done.
    Done {
        step: String,
        /// What was done (required).
        #[arg(long, value_name = "TEXT")]
        note: String,
    },
}

#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum ModeArg {
    InPlace,
    SideBySide,
}

#[derive(Debug, Args)]
pub struct PlanArgs {
    /// The legacy install directory (holding config.json and models/).
    #[arg(long, value_name = "DIR", default_value = ".")]
    pub root: PathBuf,
    /// in-place (stop the legacy service, adopt its models where they lie) or side-by-side (the legacy system keeps
    /// running; ema, in a directory of its own, records its models where they lie and changes nothing of it).
    #[arg(long, value_enum, default_value = "in-place")]
    pub mode: ModeArg,
    /// Side-by-side: ema's own installation directory, for its config/ and its store models/ (default:
    /// $XDG_DATA_HOME/ema/side-by-side).
    #[arg(long, value_name = "DIR")]
    pub install_dir: Option<PathBuf>,
    /// The legacy service's API port (default: from its config.json, else 8000).
    #[arg(long, value_name = "PORT")]
    pub legacy_port: Option<u16>,
    /// The legacy service's systemd unit, which "Services stopped" asks systemd about where systemd runs.
    #[arg(long, value_name = "UNIT", default_value = "model-management-service")]
    pub legacy_unit: String,
    /// ema's own systemd unit, which "Services started" asks systemd about where systemd runs.
    #[arg(
        long,
        value_name = "UNIT",
        default_value = "enhanced-model-availability"
    )]
    pub ema_unit: String,
    /// Start over: keep the current state aside and plan afresh (needed to plan another install mid-way).
    #[arg(long)]
    pub reset: bool,
}

pub fn run(a: MigrateArgs, ctx: &Ctx) -> Result<i32> {
    let wizard = Wizard::at(migration::default_dir()?);
    match a.command {
        MigrateCommand::Plan(p) => plan(p, &wizard, ctx),
        MigrateCommand::Status => {
            let (st, _) = wizard.load_planned()?;
            print_status(ctx, &wizard, &st);
            Ok(exit::OK)
        }
        MigrateCommand::Next => next(&wizard, ctx),
        MigrateCommand::Run { step, again } => {
            let env = run_env(ctx)?;
            if again {
                let st = wizard.load()?;
                if matches!(
                    st.state_of(&step),
                    StepState::Done | StepState::NotApplicable
                ) {
                    wizard.reset(&step)?;
                }
            }
            let rec = wizard.run(&step, &env)?;
            print_record(ctx, &rec);
            Ok(code_of(&rec))
        }
        MigrateCommand::Skip { step, note } => confirm(&wizard, ctx, &step, &note, true),
        MigrateCommand::Done { step, note } => confirm(&wizard, ctx, &step, &note, false),
        MigrateCommand::Reset { step } => {
            let st = wizard.reset(&step)?;
            print_record(ctx, st.record(&step).expect("known step"));
            Ok(exit::OK)
        }
    }
}

fn run_env(ctx: &Ctx) -> Result<RunEnv> {
    let env = HubEnv::from_env();
    Ok(RunEnv {
        loaded: ctx.load_config()?,
        hub: (!env.offline).then_some(env),
        sample_hub: Some(crate::server::sample_hub::starter()),
    })
}

fn code_of(r: &StepRecord) -> i32 {
    match r.state {
        StepState::Failed | StepState::Blocked => exit::FAILURE,
        _ => exit::OK,
    }
}

fn plan(p: PlanArgs, wizard: &Wizard, ctx: &Ctx) -> Result<i32> {
    let loaded = ctx.load_config()?;
    let req = PlanRequest {
        root: p.root,
        mode: match p.mode {
            ModeArg::InPlace => Mode::InPlace,
            ModeArg::SideBySide => Mode::SideBySide,
        },
        legacy_port: p.legacy_port,
        legacy_unit: Some(p.legacy_unit),
        ema_unit: Some(p.ema_unit),
        backups_dir: loaded.config.storage.cache_dir().join("backups"),
        state_dir: wizard.dir().to_path_buf(),
        install_dir: match p.install_dir {
            Some(d) => d,
            None => migration::default_install_dir()?,
        },
    };
    let st = wizard.plan(&req, p.reset)?;
    let plan = st.plan.as_ref().expect("just planned");
    if ctx.out.json {
        ctx.out.json(&serde_json::json!({
            "state_dir": wizard.dir(),
            "plan": plan,
            "steps": steps_json(&st),
        }));
        return Ok(exit::OK);
    }
    println!(
        "Migration plan for {} ({})",
        plan.root.display(),
        plan.mode.as_str()
    );
    println!(
        "  legacy config:   {}",
        plan.legacy_config
            .as_ref()
            .map(|p| p.display().to_string())
            .unwrap_or_else(|| "none (no config.json)".into())
    );
    println!(
        "  models:          {} — {} model(s), {}",
        plan.models_dir.display(),
        plan.models.len(),
        human_bytes(plan.total_bytes)
    );
    for m in &plan.models {
        println!(
            "    {:<16} {:<24} {} (repo id: {}), {} files, {}",
            m.action,
            m.repo_id,
            m.layout,
            m.id_source,
            m.files,
            human_bytes(m.bytes)
        );
    }
    for u in &plan.unrecognised {
        println!("    left alone (no model ema recognises): {}", u.display());
    }
    if let (Some(install), Some(store)) = (&plan.install_dir, &plan.store) {
        println!(
            "  side by side:    the legacy system keeps running; ema is installed in {} (its configuration in \
             config/, its store in {}), where each model is recorded as links to its files where they lie. Nothing \
             of the legacy system is renamed, moved or deleted, and a rollback undoes ema's side only.",
            install.display(),
            store.display()
        );
    }
    println!("  legacy API port: {}", plan.legacy_api_port);
    println!(
        "  systemd units: {} (legacy), {} (ema)",
        plan.legacy_unit, plan.ema_unit
    );
    let extras: Vec<String> = [&plan.database, &plan.usage_log]
        .into_iter()
        .flatten()
        .map(|p| p.display().to_string())
        .collect();
    println!(
        "  usage data:      {}",
        if extras.is_empty() {
            "none (no models.db, no logs/usage.log)".to_string()
        } else {
            extras.join(", ")
        }
    );
    println!(
        "  backup goes to:  {}/pre-migration-YYYYmmdd_HHMMSS (holds: {})",
        plan.backups_dir.display(),
        plan.backup_sources
            .iter()
            .map(|(n, _)| n.as_str())
            .collect::<Vec<_>>()
            .join(", ")
    );
    println!(
        "  wizard state:    {} (outside everything a rollback restores)",
        wizard.dir().display()
    );
    println!("What will happen, step by step:");
    for (i, d) in STEPS.iter().enumerate() {
        let state = st
            .record(d.id)
            .map(|r| r.state)
            .unwrap_or(StepState::Pending);
        println!(
            "  {:>2}. [{}] {} ({}){}\n      {}",
            i + 1,
            d.kind.as_str(),
            d.title,
            d.id,
            if state == StepState::Pending {
                String::new()
            } else {
                format!(" — {}", state.as_str())
            },
            d.description
        );
    }
    println!(
        "Next: `ema migrate next` runs the first step; `ema migrate status` shows where you are (the console's \
         Migration pane shows the same)."
    );
    Ok(exit::OK)
}

fn steps_json(st: &MigrationState) -> Vec<serde_json::Value> {
    STEPS
        .iter()
        .map(|d| {
            let r = st.record(d.id);
            serde_json::json!({
                "id": d.id,
                "title": d.title,
                "phase": d.phase,
                "kind": d.kind,
                "what": d.description,
                "requires": d.requires,
                "state": r.map(|r| r.state).unwrap_or(StepState::Pending),
                "details": r.and_then(|r| r.details.clone()),
                "note": r.and_then(|r| r.note.clone()),
                "updated_at": r.and_then(|r| r.updated_at.clone()),
            })
        })
        .collect()
}

fn symbol(s: StepState) -> &'static str {
    match s {
        StepState::Pending => " ",
        StepState::Running => "~",
        StepState::Done => "✓",
        StepState::NotApplicable => "·",
        StepState::Failed => "✗",
        StepState::Blocked => "!",
        StepState::Skipped => "-",
    }
}

fn print_status(ctx: &Ctx, wizard: &Wizard, st: &MigrationState) {
    let plan = st.plan.as_ref().expect("planned");
    if ctx.out.json {
        ctx.out.json(&serde_json::json!({
            "state_dir": wizard.dir(),
            "plan": plan,
            "last_backup": st.last_backup,
            "steps": steps_json(st),
        }));
        return;
    }
    println!(
        "Migration of {} ({}), planned {}",
        plan.root.display(),
        plan.mode.as_str(),
        plan.planned_at
    );
    let mut phase = None;
    for d in STEPS {
        if phase != Some(d.phase) {
            phase = Some(d.phase);
            let (done, total) = st.progress(d.phase);
            println!("{} {done}/{total}", d.phase.title());
        }
        let r = st.record(d.id);
        let state = r.map(|r| r.state).unwrap_or(StepState::Pending);
        println!(
            "  {} {:<14} {:<9} {:<22} {}",
            symbol(state),
            state.as_str(),
            d.kind.as_str(),
            d.id,
            d.title
        );
        if let Some(det) = r.and_then(|r| r.details.as_deref()) {
            println!("      {det}");
        }
    }
    if let Some(b) = &st.last_backup {
        println!("backup: {}", b.display());
    }
}

fn print_record(ctx: &Ctx, r: &StepRecord) {
    if ctx.out.json {
        ctx.out.json(r);
        return;
    }
    let title = step_def(&r.id).map(|d| d.title).unwrap_or("");
    println!(
        "{} {} — {} ({})",
        symbol(r.state),
        title,
        r.state.as_str(),
        r.id
    );
    if let Some(d) = &r.details {
        println!("  {d}");
    }
    // The log of this run: from its last "started" line on.
    let Some(from) = r.log.iter().rposition(|l| l.text == "started") else {
        return;
    };
    for l in &r.log[from + 1..] {
        if l.text != r.state.as_str() {
            println!("    {}", l.text);
        }
    }
}

fn next(wizard: &Wizard, ctx: &Ctx) -> Result<i32> {
    let n = wizard.next(&run_env(ctx)?)?;
    if ctx.out.json {
        ctx.out.json(&n);
    }
    Ok(match &n {
        Next::Ran { record, .. } => {
            if !ctx.out.json {
                print_record(ctx, record);
            }
            code_of(record)
        }
        Next::Waiting { step } => {
            if !ctx.out.json {
                let d = step_def(step).expect("known step");
                println!(
                    "waiting for you: \"{}\" ({step}) is manual — {}\n  when it is done: ema migrate done {step} \
                     --note \"what was done\"   (or: ema migrate skip {step} --note \"why\")",
                    d.title, d.description
                );
            }
            exit::OK
        }
        Next::Stuck { step, reason } => {
            if !ctx.out.json {
                println!("cannot run {step} yet: {reason}");
            }
            exit::FAILURE
        }
        Next::NothingPending { incomplete } => {
            if !ctx.out.json {
                if incomplete.is_empty() {
                    println!("every step is complete: the migration is done");
                } else {
                    println!(
                        "no step is pending; not complete: {} (see `ema migrate status`; run one again with `ema \
                         migrate run STEP`)",
                        incomplete.join(", ")
                    );
                }
            }
            if incomplete.is_empty() {
                exit::OK
            } else {
                exit::FAILURE
            }
        }
    })
}

fn confirm(wizard: &Wizard, ctx: &Ctx, step: &str, note: &str, skip: bool) -> Result<i32> {
    let st = wizard.confirm(step, note, skip)?;
    let rec = st.record(step).expect("known step");
    print_record(ctx, rec);
    Ok(exit::OK)
}
