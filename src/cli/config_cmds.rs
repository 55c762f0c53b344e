//! Configuration commands: validate-config, migrate-config, fix-config, configure, enable-feature. The work is done
//! by the engine (`engine::config`); this module talks to the operator.

use std::io::{BufRead, IsTerminal, Write};
use std::path::{Path, PathBuf};

use clap::Args;
use serde_json::{Value, json};

use super::Ctx;
use crate::engine::config;
use crate::engine::config::check;
use crate::engine::config::edit::Setting;
use crate::engine::config::migrate::Migration;
use crate::engine::config::schema;
use crate::engine::config::writer::Overwrite;
use crate::engine::error::{EmaError, Result, exit};

#[derive(Debug, Args)]
pub struct ValidateArgs {
    /// Also print every key's effective value and whether it came from the file or took its default.
    #[arg(long)]
    pub verbose: bool,
}

#[derive(Debug, Args)]
pub struct MigrateArgs {
    /// The legacy configuration (config.json).
    #[arg(long, value_name = "PATH")]
    pub source: PathBuf,
    /// Where to write the enhanced configuration.
    #[arg(
        long,
        value_name = "PATH",
        default_value = "config/enhanced_model_config.json"
    )]
    pub target: PathBuf,
    /// If the target exists, copy it to `<target>.backup-<UTC timestamp>` first, then replace it.
    #[arg(long)]
    pub backup: bool,
    /// Review each migrated value on the terminal (keep / use the default / edit).
    #[arg(long)]
    pub interactive: bool,
    /// Replace an existing target without a backup.
    #[arg(long)]
    pub force: bool,
}

#[derive(Debug, Args)]
pub struct FixArgs {
    /// Apply the repairs (a timestamped backup is made first). Without it: show what would change, write nothing.
    #[arg(long)]
    pub auto_fix: bool,
}

#[derive(Debug, Args)]
pub struct ConfigureArgs {
    /// Serve the legacy API: api.legacy_support and migration.legacy_api_support = true.
    #[arg(long)]
    pub enable_legacy_api: bool,
    /// Serve only the legacy endpoints: api.legacy_endpoints_only and api.legacy_support = true.
    #[arg(long)]
    pub legacy_endpoints_only: bool,
    /// health_monitoring.enabled and features.health_monitoring = false.
    #[arg(long)]
    pub disable_health_monitoring: bool,
    /// analytics.enabled and features.usage_analytics = false.
    #[arg(long)]
    pub disable_analytics: bool,
    /// Turn off the resource-intensive extras: health monitoring (and performance monitoring), usage analytics,
    /// intelligent fallback, and split downloads (downloads.connections_per_file = 1). Integrity checks, resume and
    /// mock fallback are left as they are.
    #[arg(long)]
    pub basic_mode: bool,
    /// Set any key, e.g. --set downloads.max_retries=7 (repeatable; the value is parsed per the key's type).
    #[arg(long = "set", value_name = "KEY=VALUE")]
    pub set: Vec<String>,
    /// Show what would change; write nothing.
    #[arg(long)]
    pub dry_run: bool,
}

#[derive(Debug, Args)]
pub struct EnableFeatureArgs {
    /// health-monitoring, intelligent-fallback, usage-analytics or enhanced-downloads.
    #[arg(long, value_name = "NAME")]
    pub feature: String,
    /// Run a real self-test of the feature's prerequisites first; refuse to enable it if one fails.
    #[arg(long)]
    pub test_first: bool,
}

fn show(v: &Value) -> String {
    v.to_string()
}

/// The file a validate/fix command works on: `--config`, else the discovered file.
fn file_in_force(ctx: &Ctx) -> Result<Option<PathBuf>> {
    let (path, _, _) = config::discover(ctx.config_flag.as_deref())?;
    Ok(path)
}

fn read(path: &Path) -> Result<String> {
    std::fs::read_to_string(path)
        .map_err(|e| EmaError::io("cannot read configuration file", path, e))
}

pub fn validate(args: ValidateArgs, ctx: &Ctx) -> Result<i32> {
    let Some(path) = file_in_force(ctx)? else {
        if ctx.out.json {
            ctx.out
                .json(&json!({"valid": true, "file": null, "problems": []}));
        } else {
            println!(
                "no configuration file found (see `ema config path` for where ema looks); the built-in defaults \
                 apply and are valid"
            );
        }
        return Ok(exit::OK);
    };
    let text = read(&path)?;
    let v = config::validate::validate_text(&text);
    let effective = v
        .document
        .as_ref()
        .filter(|_| args.verbose)
        .map(config::effective::effective_values);
    if ctx.out.json {
        let mut doc = json!({
            "valid": v.is_valid(),
            "file": path,
            "problems": v.problems,
        });
        if let Some(e) = &effective {
            doc["effective"] = serde_json::to_value(e).unwrap_or(Value::Null);
        }
        ctx.out.json(&doc);
    } else {
        for p in &v.problems {
            println!("{}", p.human(&path));
        }
        if let Some(e) = &effective {
            let set = e.iter().filter(|e| e.from_file).count();
            println!(
                "effective configuration ({set} keys set in the file, {} take their defaults):",
                e.len() - set
            );
            let width = e.iter().map(|e| e.path.len()).max().unwrap_or(0);
            for row in e {
                println!(
                    "  {:width$}  {}{}",
                    row.path,
                    show(&row.value),
                    if row.from_file { "" } else { "   (default)" }
                );
            }
        }
        if v.is_valid() {
            println!("{}: valid", path.display());
        } else {
            let fixable = v.problems.iter().filter(|p| p.action.is_some()).count();
            println!(
                "{}: {} problem(s); {fixable} can be repaired automatically with `ema fix-config --config {} \
                 --auto-fix`",
                path.display(),
                v.problems.len(),
                path.display()
            );
        }
    }
    Ok(if v.is_valid() { exit::OK } else { exit::USAGE })
}

/// Ask about each migrated value: keep it, use the default instead, or edit it. Prompts go to `prompt`.
pub fn review(mig: &mut Migration, input: &mut dyn BufRead, prompt: &mut dyn Write) -> Result<()> {
    let paths: Vec<String> = mig.changes.iter().map(|c| c.path.clone()).collect();
    for path in paths {
        let Some(c) = mig.changes.iter().find(|c| c.path == path).cloned() else {
            continue;
        };
        let (sec, key) = schema::lookup(&c.path).expect("migrated keys are schema keys");
        loop {
            let _ = write!(
                prompt,
                "{} = {}  ({}; default {})\n  keep it? [y]es / [n]o, use the default / [e]dit: ",
                c.path,
                show(&c.value),
                c.source,
                show(&c.default)
            );
            let _ = prompt.flush();
            let answer = read_line(input)?;
            match answer.trim().to_ascii_lowercase().as_str() {
                "" | "y" | "yes" => break,
                "n" | "no" => {
                    if c.path == "storage.cache_directory" {
                        // The default (null) means "cache beside the models directory": say it explicitly.
                        let md = mig.document["storage"]["models_directory"]
                            .as_str()
                            .unwrap_or("models")
                            .to_string();
                        mig.set_value(
                            &c.path,
                            Value::String(config::migrate::derive_cache_directory(&md)),
                        );
                    } else {
                        mig.set_value(&c.path, c.default.clone());
                    }
                    break;
                }
                "e" | "edit" => {
                    let _ = write!(prompt, "  new value for {}: ", c.path);
                    let _ = prompt.flush();
                    let raw = read_line(input)?;
                    match check::parse_cli_value(sec.name, key, &raw) {
                        Ok(v) => {
                            mig.set_value(&c.path, v);
                            break;
                        }
                        Err(e) => {
                            let _ = writeln!(prompt, "  {e}; try again");
                        }
                    }
                }
                other => {
                    let _ = writeln!(prompt, "  `{other}`: answer y, n or e");
                }
            }
        }
    }
    mig.check_valid()
}

fn read_line(input: &mut dyn BufRead) -> Result<String> {
    let mut s = String::new();
    let n = input
        .read_line(&mut s)
        .map_err(|e| EmaError::Other(format!("cannot read the answer: {e}")))?;
    if n == 0 {
        return Err(EmaError::Config(
            "input ended before every value was reviewed; nothing was written".to_string(),
        ));
    }
    Ok(s)
}

pub fn migrate(args: MigrateArgs, ctx: &Ctx) -> Result<i32> {
    if !args.source.is_file() {
        return Err(EmaError::Config(format!(
            "--source {} does not exist or is not a file; point it at the legacy config.json",
            args.source.display()
        )));
    }
    let text = read(&args.source)?;
    let mut mig = config::migrate::migrate(&text, &args.source)?;
    if args.target.exists() && !args.force && !args.backup {
        return Err(EmaError::Config(format!(
            "{} already exists; pass --backup to keep a timestamped copy of it first, or --force to overwrite it; \
             nothing was written",
            args.target.display()
        )));
    }
    if args.interactive {
        if !std::io::stdin().is_terminal() {
            return Err(EmaError::Config(
                "--interactive asks questions on the terminal, but stdin is not a terminal; run it in a terminal, \
                 or drop --interactive to accept the mapping shown in the report; nothing was written"
                    .to_string(),
            ));
        }
        let stdin = std::io::stdin();
        let mut lock = stdin.lock();
        review(&mut mig, &mut lock, &mut std::io::stderr())?;
    }
    let backup = config::writer::write_new(
        &args.target,
        &mig.render(),
        Overwrite {
            force: args.force,
            backup: args.backup,
        },
    )?;
    if ctx.out.json {
        let new_features: serde_json::Map<String, Value> =
            mig.new_features.iter().cloned().collect();
        ctx.out.json(&json!({
            "source": args.source,
            "target": args.target,
            "written": true,
            "valid": true,
            "backup": backup,
            "changes": mig.changes,
            "new_features": new_features,
            "unmapped_legacy_settings": config::redact::redact(&Value::Object(mig.unmapped.clone())),
            "notes": mig.notes,
        }));
        return Ok(exit::OK);
    }
    println!(
        "Migrated {} → {}",
        args.source.display(),
        args.target.display()
    );
    if let Some(b) = &backup {
        println!(
            "Backup of the previous {}: {}",
            args.target.display(),
            b.display()
        );
    }
    println!("Mapped from the legacy file:");
    let width = mig.changes.iter().map(|c| c.path.len()).max().unwrap_or(0);
    for c in &mig.changes {
        let mut from = match &c.legacy_value {
            Some(lv) => format!("legacy {} = {}", c.source, show(lv)),
            None => c.source.clone(),
        };
        if c.edited {
            from.push_str(" (changed in review)");
        }
        println!("  {:width$} = {:<16} ← {from}", c.path, show(&c.value));
    }
    println!(
        "New features at their defaults: {}",
        mig.new_features
            .iter()
            .map(|(p, v)| format!("{p} = {v}"))
            .collect::<Vec<_>>()
            .join(", ")
    );
    println!("Every other key takes its default (README: Configuration).");
    if mig.unmapped.is_empty() {
        println!("Unmapped legacy settings: none");
    } else {
        println!(
            "Unmapped legacy settings, kept verbatim under migration.unmapped_legacy_settings:"
        );
        for (k, v) in &mig.unmapped {
            println!("  {k} = {}", show(&config::redact::redact_at(k, v)));
        }
    }
    for n in &mig.notes {
        println!("Note: {n}");
    }
    println!(
        "The result validates. Check it any time with `ema validate-config --config {}`.",
        args.target.display()
    );
    Ok(exit::OK)
}

pub fn fix(args: FixArgs, ctx: &Ctx) -> Result<i32> {
    let Some(path) = file_in_force(ctx)? else {
        return Err(EmaError::Config(
            "no configuration file in force; name one with --config PATH".to_string(),
        ));
    };
    let text = read(&path)?;
    let plan = config::fix::plan_fixes(&text);
    let mut backup = None;
    let mut written = false;
    if args.auto_fix
        && let Some(new) = &plan.new_text
    {
        backup = Some(config::writer::backup(&path)?);
        crate::engine::atomic::write_atomic(&path, new.as_bytes())?;
        written = true;
    }
    let code = if args.auto_fix {
        if plan.remaining.is_empty() {
            exit::OK
        } else {
            exit::USAGE
        }
    } else if plan.problems_before.is_empty() {
        exit::OK
    } else {
        exit::USAGE
    };
    if ctx.out.json {
        ctx.out.json(&json!({
            "file": path,
            "auto_fix": args.auto_fix,
            "written": written,
            "backup": backup,
            "problems_before": plan.problems_before,
            "changes": plan.changes,
            "remaining": plan.remaining,
            "valid_after": plan.remaining.is_empty(),
        }));
        return Ok(code);
    }
    if plan.changes.is_empty() {
        println!("{}: nothing to repair automatically", path.display());
    } else {
        println!(
            "{} {}:",
            if written { "Repaired" } else { "Would change" },
            path.display()
        );
        for c in &plan.changes {
            println!("  {}: {}", c.path, c.description);
        }
    }
    if let Some(b) = &backup {
        println!("Backup of the original: {}", b.display());
    }
    if !plan.remaining.is_empty() {
        println!("Cannot be repaired automatically (edit the file by hand):");
        for p in &plan.remaining {
            println!("  {}", p.human(&path));
        }
    }
    if !args.auto_fix && !plan.changes.is_empty() {
        println!(
            "Nothing was written. Apply with `ema fix-config --config {} --auto-fix` (a backup is made first).",
            path.display()
        );
    }
    Ok(code)
}

fn flag_settings(args: &ConfigureArgs) -> Vec<Setting> {
    let mut out: Vec<(&str, Value)> = Vec::new();
    if args.enable_legacy_api {
        out.push(("api.legacy_support", Value::Bool(true)));
        out.push(("migration.legacy_api_support", Value::Bool(true)));
    }
    if args.legacy_endpoints_only {
        out.push(("api.legacy_support", Value::Bool(true)));
        out.push(("api.legacy_endpoints_only", Value::Bool(true)));
    }
    if args.disable_health_monitoring {
        out.push(("health_monitoring.enabled", Value::Bool(false)));
        out.push(("features.health_monitoring", Value::Bool(false)));
    }
    if args.disable_analytics {
        out.push(("analytics.enabled", Value::Bool(false)));
        out.push(("features.usage_analytics", Value::Bool(false)));
    }
    if args.basic_mode {
        for (p, v) in config::edit::BASIC_MODE {
            out.push((p, Value::Bool(*v)));
        }
        out.push((
            "downloads.connections_per_file",
            Value::from(config::edit::BASIC_MODE_CONNECTIONS_PER_FILE),
        ));
    }
    out.into_iter()
        .map(|(p, value)| Setting {
            path: p.to_string(),
            value,
        })
        .collect()
}

fn print_edit(out: &config::edit::EditOutcome, dry_run: bool) {
    let verb = if out.created {
        "Created"
    } else if out.written {
        "Updated"
    } else if dry_run {
        "Would update"
    } else {
        "Unchanged:"
    };
    println!("{verb} {}", out.file.display());
    for c in &out.changes {
        let old = match &c.old {
            Some(v) => show(&config::redact::redact_at(&c.path, v)),
            None => "(default)".to_string(),
        };
        let new = show(&config::redact::redact_at(&c.path, &c.new));
        if c.changed {
            println!("  {}: {old} → {new}", c.path);
        } else {
            println!("  {}: {new} (already set)", c.path);
        }
    }
}

/// The changes of an edit for `--json`, with credentials redacted.
fn changes_json(out: &config::edit::EditOutcome) -> Value {
    Value::Array(
        out.changes
            .iter()
            .map(|c| {
                json!({
                    "path": c.path,
                    "old": c.old.as_ref().map(|v| config::redact::redact_at(&c.path, v)),
                    "new": config::redact::redact_at(&c.path, &c.new),
                    "changed": c.changed,
                })
            })
            .collect(),
    )
}

pub fn configure(args: ConfigureArgs, ctx: &Ctx) -> Result<i32> {
    let mut settings = flag_settings(&args);
    for s in &args.set {
        settings.push(config::edit::parse_set(s)?);
    }
    if settings.is_empty() {
        return Err(EmaError::Config(
            "nothing to configure; pass --enable-legacy-api, --legacy-endpoints-only, --disable-health-monitoring, \
             --disable-analytics, --basic-mode or --set KEY=VALUE (see `ema configure --help`)"
                .to_string(),
        ));
    }
    let path = config::edit::edit_target(ctx.config_flag.as_deref());
    let out = config::edit::edit_file(&path, &settings, args.dry_run)?;
    if ctx.out.json {
        ctx.out.json(&json!({
            "file": out.file,
            "created": out.created,
            "written": out.written,
            "dry_run": args.dry_run,
            "changes": changes_json(&out),
        }));
    } else {
        print_edit(&out, args.dry_run);
    }
    Ok(exit::OK)
}

pub fn enable_feature(args: EnableFeatureArgs, ctx: &Ctx) -> Result<i32> {
    let keys = config::edit::feature_keys(&args.feature)?;
    let path = config::edit::edit_target(ctx.config_flag.as_deref());
    let mut checks = Vec::new();
    if args.test_first {
        let cfg = config::edit::load_for_edit(&path)?;
        checks = config::selftest::self_test(&args.feature, &cfg)?;
        if let Some(bad) = checks.iter().find(|c| !c.ok) {
            let reason = format!(
                "{} was not enabled: self-test `{}` failed: {}",
                args.feature, bad.name, bad.detail
            );
            if ctx.out.json {
                ctx.out.json(&json!({
                    "feature": args.feature,
                    "file": path,
                    "tested": true,
                    "checks": checks,
                    "enabled": false,
                    "written": false,
                    "error": reason,
                }));
            } else {
                print_checks(&checks);
                ctx.out.error(&EmaError::Other(reason));
            }
            return Ok(exit::FAILURE);
        }
    }
    let settings: Vec<Setting> = keys
        .iter()
        .map(|k| Setting {
            path: k.to_string(),
            value: Value::Bool(true),
        })
        .collect();
    let out = config::edit::edit_file(&path, &settings, false)?;
    if ctx.out.json {
        ctx.out.json(&json!({
            "feature": args.feature,
            "file": out.file,
            "tested": args.test_first,
            "checks": checks,
            "enabled": true,
            "written": out.written,
            "changes": changes_json(&out),
        }));
    } else {
        print_checks(&checks);
        if out.written {
            print_edit(&out, false);
            println!("{} enabled", args.feature);
        } else {
            println!(
                "{} is already enabled in {}",
                args.feature,
                out.file.display()
            );
        }
    }
    Ok(exit::OK)
}

fn print_checks(checks: &[config::selftest::Check]) {
    for c in checks {
        println!(
            "  {} {}: {}",
            if c.ok { "ok  " } else { "FAIL" },
            c.name,
            c.detail
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const LEGACY: &str = r#"{"models_directory": "/data/models", "download_retries": 3,
        "max_concurrent_downloads": 2, "health_check_enabled": false, "fallback_to_mock": true}"#;

    #[test]
    fn review_keeps_defaults_and_edits() {
        let mut m = config::migrate::migrate(LEGACY, Path::new("c")).unwrap();
        // models_directory: edit (a bad value first), cache: keep, retries: default, concurrency: keep,
        // health: keep, mock: keep.
        let answers = "e\n\ne\n/srv/models\ny\nn\ny\n\nyes\n";
        let mut prompts = Vec::new();
        review(&mut m, &mut answers.as_bytes(), &mut prompts).unwrap();
        let d = &m.document;
        assert_eq!(d["storage"]["models_directory"], "/srv/models");
        assert_eq!(d["storage"]["cache_directory"], "/srv/cache");
        assert_eq!(d["downloads"]["max_retries"], 5);
        assert_eq!(d["downloads"]["max_concurrent_downloads"], 2);
        let p = String::from_utf8(prompts).unwrap();
        assert!(p.contains("try again"), "{p}");
    }

    #[test]
    fn review_stops_cleanly_when_input_ends() {
        let mut m = config::migrate::migrate(LEGACY, Path::new("c")).unwrap();
        let e = review(&mut m, &mut "y\n".as_bytes(), &mut Vec::new()).unwrap_err();
        assert_eq!(e.exit_code(), 2);
    }
}
