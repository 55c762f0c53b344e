//! The headless CLI: clap definitions and dispatch. One module per command group.

use std::path::PathBuf;

use clap::{CommandFactory, Parser, Subcommand};

use crate::engine::config::{self, LoadedConfig};
use crate::engine::error::{Result, exit};

pub mod analytics;
pub mod api_compat;
pub mod backup;
pub mod benchmark;
pub mod config_cmds;
pub mod daemon;
pub mod demo;
pub mod download;
pub mod integrity;
pub mod migrate;
pub mod migrate_wizard;
pub mod mirror;
pub mod monitoring;
pub mod optimize;
pub mod output;
pub mod selftest;
pub mod start;
pub mod suggest;
pub mod tui_cmd;
pub mod validate;

use output::Output;

/// ema — Enhanced Model Availability: get models onto a machine fast and intact, prove they are intact,
/// suggest what to use instead, and migrate old setups without losing a byte.
#[derive(Debug, Parser)]
#[command(name = "ema", version, about, long_about = None, propagate_version = true)]
#[command(
    after_help = "Exit codes: 0 ok, 1 failure, 2 usage or configuration error, 3 integrity problem, \
4 hub unreachable or unauthorized, 5 not found, 6 not enough disk space, 130 interrupted."
)]
pub struct Cli {
    /// Configuration file (default: $EMA_CONFIG, ./config/enhanced_model_config.json, then the platform config dir).
    #[arg(long, global = true, value_name = "PATH")]
    pub config: Option<PathBuf>,
    /// Print one JSON document on stdout (NDJSON for streams) instead of human output.
    #[arg(long, global = true)]
    pub json: bool,
    /// Attach the console to a running `ema start` at http://HOST:PORT instead of opening the local store (the
    /// token from EMA_API_TOKEN or --token-file, never on the command line).
    #[command(flatten)]
    pub attach: tui_cmd::AttachArgs,
    #[command(subcommand)]
    pub command: Option<Command>,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Open the console (the default when no command is given).
    Tui(tui_cmd::TuiArgs),
    /// Inspect the configuration in force.
    #[command(subcommand)]
    Config(ConfigCommand),
    /// Write `<org>--<name>.metadata.json` (expected hashes) for every model folder.
    GenerateMetadata(integrity::GenerateMetadataArgs),
    /// Verify every model: every byte hashed, safetensors/JSON/index structure; exit 3 if any problem.
    VerifyAllModels(integrity::VerifyArgs),
    /// Check every model (full, or --quick: existence, size, mtime); exit 3 if any problem.
    CheckModels(integrity::CheckArgs),
    /// The health of every model, recent alerts and storage use.
    Health(integrity::HealthArgs),
    /// Remove stale temp files and old logs, compress configuration backups.
    Cleanup(integrity::CleanupArgs),
    /// Move the models directory (copy, verify, switch the configuration, delete the source).
    MoveModels(integrity::MoveArgs),
    /// Download a model from the Hub (HF_ENDPOINT), verified file by file; resumable.
    Download(download::DownloadArgs),
    /// Every model in the store: availability, size, commit, verification state.
    Status(download::StatusArgs),
    /// List, pause, resume or cancel downloads (also those of other ema processes).
    Downloads(download::DownloadsArgs),
    /// Check a configuration file: every problem with its JSON path, line:column, what was expected and a fix.
    /// Exit 0 valid, 2 invalid.
    ValidateConfig(config_cmds::ValidateArgs),
    /// Convert a legacy config.json into the enhanced configuration (the migration guide's mapping table).
    MigrateConfig(config_cmds::MigrateArgs),
    /// Repair what is mechanically fixable in a configuration file (dry run unless --auto-fix).
    FixConfig(config_cmds::FixArgs),
    /// Change settings in the configuration file in place (created when there is none).
    Configure(config_cmds::ConfigureArgs),
    /// Enable one feature in the configuration file, optionally after a self-test of its prerequisites.
    EnableFeature(config_cmds::EnableFeatureArgs),
    /// The migration guide's system requirements: disk, memory, the hub, write permission (pass / warn / fail).
    CheckSystem(migrate::CheckSystemArgs),
    /// Adopt every model of a legacy models directory into ema's store in place (no file bytes downloaded).
    MigrateModels(migrate::MigrateModelsArgs),
    /// Check a migrated models directory read-only: every model hashed against its sidecar, nothing left behind.
    VerifyMigration(migrate::VerifyMigrationArgs),
    /// The guide's post-migration validation: models, configuration, API, features (pass / fail / not applicable).
    ValidateMigration(validate::ValidateMigrationArgs),
    /// Check a running server endpoint by endpoint against the shapes the guide's legacy and enhanced clients read.
    TestApiCompatibility(api_compat::ApiCompatArgs),
    /// Self-test on this machine: an interrupted download resumed, verified, a byte corrupted and repaired, against
    /// the built-in sample hub in a temporary store.
    TestInstallation(selftest::TestInstallationArgs),
    /// Self-test of the enhanced features: download management, health monitoring, intelligent fallback, usage
    /// analytics.
    TestEnhancedFeatures(selftest::TestEnhancedFeaturesArgs),
    /// The migration wizard: plan, status, next, run STEP, skip/done STEP --note (the console's Migration pane
    /// drives the same state).
    Migrate(migrate_wizard::MigrateArgs),
    /// Back up a legacy install (models/, config.json, config/, logs/, models.db) with a manifest that proves it.
    Backup(backup::BackupArgs),
    /// Restore exactly the state a backup's manifest describes (saving the current state first).
    Rollback(backup::RollbackArgs),
    /// What to use instead of a model: operator rules, then ranked and explained substitutes on disk; exit 5 when
    /// none qualifies. --queue also queues and starts the requested model's download.
    Suggest(suggest::SuggestArgs),
    /// Create or upgrade the analytics database (SQLite or PostgreSQL); idempotent; prints the schema version.
    InitAnalyticsDb(analytics::InitArgs),
    /// Import the legacy usage log into the analytics database (idempotent; bad lines counted and listed).
    MigrateUsageData(analytics::MigrateUsageArgs),
    /// Usage analytics: top models, fallback rate, download success and speed, alerts, dropped events.
    Analytics(analytics::AnalyticsArgs),
    /// Serve the local store over the Hugging Face Hub protocol (HF_ENDPOINT=http://HOST:PORT).
    Mirror(mirror::MirrorArgs),
    /// Run the engine as a server: REST API (legacy + enhanced), WebSocket, Prometheus metrics, Hub mirror.
    #[command(visible_alias = "serve")]
    Start(start::StartArgs),
    /// Sample models on a built-in local hub, and the console against it: everything works offline.
    Demo(demo::DemoArgs),
    /// Measure download throughput, API latency and model read throughput; keep and compare baselines.
    Benchmark(benchmark::BenchmarkArgs),
    /// Write monitoring for this server: a Prometheus scrape configuration, alerting rules with their promtool
    /// unit tests, a Grafana dashboard (into --out DIR, default ./monitoring).
    SetupMonitoring(monitoring::SetupMonitoringArgs),
    /// Check a running server's metrics against the generated monitoring; --generate-test-alerts follows a test
    /// alert through the WebSocket, `ema health` and /metrics, then clears it.
    TestMonitoring(monitoring::TestMonitoringArgs),
    /// The facts ema reads (benchmark baseline, download history, cores, memory, disk, hub) and, with
    /// --generate-recommendations, configuration changes with their evidence (saved for `ema optimize`).
    AnalyzePerformance(optimize::AnalyzeArgs),
    /// Apply the recommendations analyze-performance saved to the configuration in force (backup first; a running
    /// server told to reload).
    Optimize(optimize::OptimizeArgs),
    /// Analyze now and apply the recommendations to the configuration in force (--for-performance --system-specs
    /// auto-detect).
    OptimizeConfig(optimize::OptimizeConfigArgs),
    /// Print a shell completion script.
    Completions {
        /// bash, zsh, fish, elvish or powershell.
        shell: clap_complete::Shell,
    },
    /// Write the manual pages (ema.1 and one per command) into a directory (used by scripts/package.sh).
    #[command(hide = true)]
    GenerateManpages {
        /// The directory to write into (created when missing).
        #[arg(long, value_name = "DIR")]
        out: PathBuf,
    },
}

#[derive(Debug, Subcommand)]
pub enum ConfigCommand {
    /// Say which configuration file is in force and why.
    Path,
    /// Print the effective configuration (defaults filled in; the API token is redacted).
    Show,
}

/// Context every handler gets.
pub struct Ctx {
    pub out: Output,
    pub config_flag: Option<PathBuf>,
}

impl Ctx {
    /// Load the configuration in force (discovery order documented on `--config`).
    pub fn load_config(&self) -> Result<LoadedConfig> {
        config::load(self.config_flag.as_deref())
    }
}

/// Entry point: parse, dispatch, map errors to exit codes.
pub fn main() -> i32 {
    let cli = match Cli::try_parse() {
        Ok(c) => c,
        Err(e) => {
            let code = if e.use_stderr() {
                exit::USAGE
            } else {
                exit::OK
            };
            let _ = e.print();
            return code;
        }
    };
    let out = Output::new(cli.json);
    let ctx = Ctx {
        out,
        config_flag: cli.config.clone(),
    };
    match run(cli, &ctx) {
        Ok(code) => code,
        Err(e) => {
            ctx.out.error(&e);
            e.exit_code()
        }
    }
}

fn run(cli: Cli, ctx: &Ctx) -> Result<i32> {
    let Some(command) = cli.command else {
        let args = tui_cmd::TuiArgs {
            attach: cli.attach,
            ..Default::default()
        };
        return tui_cmd::run(args, ctx);
    };
    if !matches!(command, Command::Tui(_)) {
        cli.attach.refuse_with_a_command()?;
    }
    match command {
        Command::Tui(mut args) => {
            args.attach = args.attach.or(cli.attach);
            tui_cmd::run(args, ctx)
        }
        Command::Config(c) => config_cmd(c, ctx),
        Command::GenerateMetadata(a) => integrity::generate_metadata(a, ctx),
        Command::VerifyAllModels(a) => integrity::verify_all(a, ctx),
        Command::CheckModels(a) => integrity::check_models(a, ctx),
        Command::Health(a) => integrity::health_cmd(a, ctx),
        Command::Cleanup(a) => integrity::cleanup_cmd(a, ctx),
        Command::MoveModels(a) => integrity::move_cmd(a, ctx),
        Command::Download(a) => download::download(a, ctx),
        Command::Status(a) => download::status(a, ctx),
        Command::Downloads(a) => download::downloads(a, ctx),
        Command::ValidateConfig(a) => config_cmds::validate(a, ctx),
        Command::MigrateConfig(a) => config_cmds::migrate(a, ctx),
        Command::FixConfig(a) => config_cmds::fix(a, ctx),
        Command::Configure(a) => config_cmds::configure(a, ctx),
        Command::EnableFeature(a) => config_cmds::enable_feature(a, ctx),
        Command::CheckSystem(a) => migrate::check_system(a, ctx),
        Command::MigrateModels(a) => migrate::migrate_models(a, ctx),
        Command::VerifyMigration(a) => migrate::verify_migration(a, ctx),
        Command::ValidateMigration(a) => validate::validate_migration(a, ctx),
        Command::TestApiCompatibility(a) => api_compat::run(a, ctx),
        Command::TestInstallation(a) => selftest::test_installation(a, ctx),
        Command::TestEnhancedFeatures(a) => selftest::test_enhanced_features(a, ctx),
        Command::Migrate(a) => migrate_wizard::run(a, ctx),
        Command::Backup(a) => backup::backup_cmd(a, ctx),
        Command::Rollback(a) => backup::rollback_cmd(a, ctx),
        Command::Suggest(a) => suggest::run(a, ctx),
        Command::InitAnalyticsDb(a) => analytics::init_db(a, ctx),
        Command::MigrateUsageData(a) => analytics::migrate_usage(a, ctx),
        Command::Analytics(a) => analytics::report(a, ctx),
        Command::Mirror(a) => mirror::run(a, ctx),
        Command::Start(a) => start::run(a, ctx),
        Command::Demo(a) => demo::run(a, ctx),
        Command::Benchmark(a) => benchmark::run(a, ctx),
        Command::SetupMonitoring(a) => monitoring::setup(a, ctx),
        Command::TestMonitoring(a) => monitoring::test(a, ctx),
        Command::AnalyzePerformance(a) => optimize::analyze_performance(a, ctx),
        Command::Optimize(a) => optimize::optimize(a, ctx),
        Command::OptimizeConfig(a) => optimize::optimize_config(a, ctx),
        Command::Completions { shell } => {
            let mut cmd = Cli::command();
            clap_complete::generate(shell, &mut cmd, "ema", &mut std::io::stdout());
            Ok(exit::OK)
        }
        Command::GenerateManpages { out } => {
            std::fs::create_dir_all(&out)
                .map_err(|e| crate::engine::EmaError::io("cannot create", &out, e))?;
            clap_mangen::generate_to(Cli::command(), &out).map_err(|e| {
                crate::engine::EmaError::io("cannot write manual pages into", &out, e)
            })?;
            if !ctx.out.json {
                let n = std::fs::read_dir(&out).map(|r| r.count()).unwrap_or(0);
                println!("{n} manual pages in {}", out.display());
            }
            Ok(exit::OK)
        }
    }
}

fn config_cmd(c: ConfigCommand, ctx: &Ctx) -> Result<i32> {
    let loaded = ctx.load_config()?;
    match c {
        ConfigCommand::Path => {
            if ctx.out.json {
                ctx.out.json(&serde_json::json!({
                    "path": loaded.path,
                    "source": loaded.source,
                    "reason": loaded.source.describe(),
                    "searched": loaded.searched,
                    "models_directory": loaded.config.storage.models_directory,
                }));
            } else {
                match &loaded.path {
                    Some(p) => println!("{} ({})", p.display(), loaded.source.describe()),
                    None => println!("(none) — {}", loaded.source.describe()),
                }
                println!("searched:");
                for s in &loaded.searched {
                    println!("  {}", s.display());
                }
                println!(
                    "models directory: {}",
                    loaded.config.storage.models_directory.display()
                );
            }
        }
        ConfigCommand::Show => {
            let mut c = loaded.config.clone();
            if c.api.token.is_some() {
                c.api.token = Some("<redacted>".to_string());
            }
            ctx.out.json(&c);
        }
    }
    Ok(exit::OK)
}
