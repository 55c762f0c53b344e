//! `validate-migration`: the migration guide's post-migration validation, read-only. Four checks, each pass / fail
//! / not applicable with its figure and reason:
//!
//! - models: every adopted model hashed against its sidecar ([`crate::engine::legacy::verify_migration`]), with
//!   intact, damaged and unadopted counts and every damaged file named;
//! - config: the configuration in force validated (every problem listed), and a legacy `config.json` in the
//!   install directory that was never converted pointed at `migrate-config`;
//! - api: the server on the configured `api.host:api.port` answers every legacy and enhanced endpoint in the shape
//!   the guide's clients read ([`crate::engine::api_check`], as `test-api-compatibility`); no server answering fails;
//! - features: each `features.*` flag in force and whether the engine part behind it exists.

use std::path::{Path, PathBuf};

use serde::Serialize;
use serde_json::Value;

use crate::engine::config::legacy::LEGACY_MAPPING;
use crate::engine::config::validate::validate_text;
use crate::engine::config::{self, Config, ConfigSource};
use crate::engine::download::disk::human_bytes;
use crate::engine::legacy::verify_migration;
use crate::engine::store::RepoId;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum CheckStatus {
    Pass,
    Fail,
    NotApplicable,
}

impl CheckStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            CheckStatus::Pass => "pass",
            CheckStatus::Fail => "fail",
            CheckStatus::NotApplicable => "not applicable",
        }
    }
}

/// One check's verdict.
#[derive(Debug, Clone, Serialize)]
pub struct Check {
    /// `models`, `config`, `api`, `features`.
    pub name: &'static str,
    pub status: CheckStatus,
    /// The figure it rests on, e.g. "5 intact, 1 damaged, 0 unadopted".
    pub figure: String,
    /// Why this verdict, and the fix when it failed.
    pub reason: String,
    /// One line per item: a damaged file, a configuration problem, a feature flag.
    pub details: Vec<String>,
}

/// What to validate.
#[derive(Debug, Clone, Default)]
pub struct ValidateInput {
    pub check_models: bool,
    pub check_config: bool,
    pub check_api: bool,
    pub check_features: bool,
    /// `--models-dir`; default: the configuration's models directory.
    pub models_dir: Option<PathBuf>,
    /// `--config`.
    pub config_flag: Option<PathBuf>,
    /// The install directory whose `config.json` may be a legacy configuration (default: the working directory).
    pub root: PathBuf,
    pub threads: usize,
}

#[derive(Debug, Clone, Serialize)]
pub struct ValidationReport {
    pub config_file: Option<PathBuf>,
    pub models_dir: Option<PathBuf>,
    pub checks: Vec<Check>,
}

impl ValidationReport {
    pub fn failed(&self) -> bool {
        self.checks.iter().any(|c| c.status == CheckStatus::Fail)
    }
}

/// The configuration in force as this validation sees it: the file, its problems, the loaded values.
struct InForce {
    path: Option<PathBuf>,
    source: Option<ConfigSource>,
    /// Why it could not be read or loaded.
    error: Option<String>,
    problems: Vec<String>,
    config: Option<Config>,
}

fn in_force(flag: Option<&Path>) -> InForce {
    let mut f = InForce {
        path: None,
        source: None,
        error: None,
        problems: Vec::new(),
        config: None,
    };
    let (path, source, _) = match config::discover(flag) {
        Ok(d) => d,
        Err(e) => {
            f.error = Some(e.to_string());
            return f;
        }
    };
    f.path = path.clone();
    f.source = Some(source);
    if let Some(p) = &path {
        let text = match std::fs::read_to_string(p) {
            Ok(t) => t,
            Err(e) => {
                f.error = Some(format!("cannot read {}: {e}", p.display()));
                return f;
            }
        };
        let v = validate_text(&text);
        f.problems = v.problems.iter().map(|x| x.human(p)).collect();
        if !v.is_valid() {
            return f;
        }
    }
    match config::load(flag) {
        Ok(l) => f.config = Some(l.config),
        Err(e) => f.error = Some(e.to_string()),
    }
    f
}

/// Run the asked checks.
pub fn validate_migration(input: &ValidateInput) -> ValidationReport {
    let cfg = in_force(input.config_flag.as_deref());
    let models_dir = input.models_dir.clone().or_else(|| {
        cfg.config
            .as_ref()
            .map(|c| c.storage.models_directory.clone())
    });
    let mut checks = Vec::new();
    if input.check_models {
        checks.push(check_models(models_dir.as_deref(), &cfg, input.threads));
    }
    if input.check_config {
        checks.push(check_config(&cfg, &input.root));
    }
    if input.check_api {
        checks.push(check_api(&cfg));
    }
    if input.check_features {
        checks.push(check_features(&cfg));
    }
    ValidationReport {
        config_file: cfg.path.clone(),
        models_dir,
        checks,
    }
}

fn check(name: &'static str, status: CheckStatus, figure: String, reason: String) -> Check {
    Check {
        name,
        status,
        figure,
        reason,
        details: Vec::new(),
    }
}

fn check_models(dir: Option<&Path>, cfg: &InForce, threads: usize) -> Check {
    use CheckStatus::*;
    let Some(dir) = dir else {
        return check(
            "models",
            Fail,
            "no models directory".into(),
            format!(
                "the configuration in force does not load ({}), so its models directory is unknown; fix it, or \
                 give --models-dir",
                cfg.error.as_deref().unwrap_or("see the config check")
            ),
        );
    };
    let m = match verify_migration(dir, None, threads.max(1)) {
        Ok(m) => m,
        Err(e) => {
            return check(
                "models",
                Fail,
                format!("{} not checked", dir.display()),
                e.to_string(),
            );
        }
    };
    // A folder still in a legacy layout is reported as unadopted, not also as a damaged store model.
    let legacy_folders: Vec<&std::ffi::OsStr> = m
        .unadopted
        .iter()
        .filter_map(|u| u.location.file_name())
        .collect();
    let adopted: Vec<_> = m
        .models
        .iter()
        .filter(|h| {
            let folder = RepoId::parse(&h.model_id)
                .map(|r| r.folder_name())
                .unwrap_or_else(|_| h.model_id.clone());
            !legacy_folders.iter().any(|f| *f == folder.as_str())
        })
        .collect();
    let intact = adopted.iter().filter(|h| h.is_healthy()).count();
    let damaged = adopted.len() - intact;
    let bytes: u64 = adopted.iter().map(|h| h.bytes_hashed).sum();
    let figure = format!(
        "{intact} intact, {damaged} damaged, {} unadopted ({} hashed in {})",
        m.unadopted.len(),
        human_bytes(bytes),
        m.models_dir.display()
    );
    let mut details = Vec::new();
    for h in adopted.iter().filter(|h| !h.is_healthy()) {
        if h.issues.is_empty() {
            details.push(format!(
                "{}: {}: {}",
                h.model_id,
                h.state.as_str(),
                h.reason
            ));
        }
        for i in &h.issues {
            details.push(format!(
                "{}: {}: {}: {}",
                h.model_id,
                h.state.as_str(),
                i.path,
                i.detail
            ));
        }
    }
    for u in &m.unadopted {
        details.push(format!(
            "{} ({}) at {}: {}",
            u.repo_id,
            u.layout.describe(),
            u.location.display(),
            u.why
        ));
    }
    for u in &m.unrecognised {
        details.push(format!(
            "left alone (no model ema recognises): {}",
            u.display()
        ));
    }
    let (status, reason) = if adopted.is_empty() && m.unadopted.is_empty() {
        (
            NotApplicable,
            "the models directory holds no model, so there is nothing to validate".to_string(),
        )
    } else if damaged == 0 && m.unadopted.is_empty() {
        (
            Pass,
            format!(
                "every adopted model was hashed against its sidecar and matches; nothing is left in a legacy \
                 layout{}",
                if m.unrecognised.is_empty() {
                    ""
                } else {
                    " (folders ema does not recognise as models are listed, untouched)"
                }
            ),
        )
    } else {
        let mut fix = Vec::new();
        if damaged > 0 {
            fix.push(format!(
                "repair the damaged files with `ema verify-all-models --models-dir {} --repair-corrupted`",
                m.models_dir.display()
            ));
        }
        if !m.unadopted.is_empty() {
            fix.push(format!(
                "adopt the rest with `ema migrate-models --models-dir {}`",
                m.models_dir.display()
            ));
        }
        (
            Fail,
            format!(
                "{damaged} damaged and {} unadopted model(s); {}",
                m.unadopted.len(),
                fix.join("; ")
            ),
        )
    };
    Check {
        details,
        ..check("models", status, figure, reason)
    }
}

/// A legacy configuration: a JSON object with a key of the guide's legacy table at its top level and no section
/// of the enhanced schema.
fn legacy_config_at(p: &Path) -> Option<String> {
    let text = std::fs::read_to_string(p).ok()?;
    let v: Value = serde_json::from_str(&text).ok()?;
    let o = v.as_object()?;
    let legacy = LEGACY_MAPPING.iter().any(|(k, _, _)| o.contains_key(*k));
    let enhanced = [
        "storage",
        "downloads",
        "health_monitoring",
        "fallback",
        "features",
    ]
    .iter()
    .any(|k| o.contains_key(*k));
    (legacy && !enhanced).then_some(text)
}

fn same_file(a: &Path, b: &Path) -> bool {
    match (std::fs::canonicalize(a), std::fs::canonicalize(b)) {
        (Ok(x), Ok(y)) => x == y,
        _ => a == b,
    }
}

/// The value at a dotted path of a JSON document.
fn at<'v>(v: &'v Value, path: &str) -> Option<&'v Value> {
    path.split('.').try_fold(v, |v, k| v.get(k))
}

fn check_config(cfg: &InForce, root: &Path) -> Check {
    use CheckStatus::*;
    let mut candidates = vec![root.join("config.json")];
    if let Some(p) = &cfg.path {
        candidates.push(config::base_dir_for(p).join("config.json"));
    }
    let mut legacy: Vec<(PathBuf, String)> = Vec::new();
    for c in candidates {
        if legacy.iter().any(|(p, _)| same_file(p, &c))
            || cfg.path.as_deref().is_some_and(|p| same_file(p, &c))
        {
            continue;
        }
        if let Some(text) = legacy_config_at(&c) {
            legacy.push((std::path::absolute(&c).unwrap_or(c), text));
        }
    }
    let source = cfg
        .source
        .as_ref()
        .map(|s| s.describe())
        .unwrap_or("not found");
    let file = cfg
        .path
        .as_ref()
        .map(|p| p.display().to_string())
        .unwrap_or_else(|| "built-in defaults".into());
    if let Some(e) = &cfg.error {
        return check(
            "config",
            Fail,
            format!("{file} ({source})"),
            format!("the configuration in force does not load: {e}"),
        );
    }
    if !cfg.problems.is_empty() {
        return Check {
            details: cfg.problems.clone(),
            ..check(
                "config",
                Fail,
                format!("{file}: {} problem(s)", cfg.problems.len()),
                format!(
                    "the configuration in force is not valid; `ema fix-config --config {file} --auto-fix` repairs \
                     what is mechanical"
                ),
            )
        };
    }
    let Some(path) = &cfg.path else {
        if let Some((l, _)) = legacy.first() {
            return check(
                "config",
                Fail,
                format!("no enhanced configuration; legacy {}", l.display()),
                format!(
                    "the legacy configuration {} was never converted and ema runs on built-in defaults; convert it \
                     with `ema migrate-config --source {} --target config/enhanced_model_config.json` (from the \
                     install directory)",
                    l.display(),
                    l.display()
                ),
            );
        }
        return check(
            "config",
            Pass,
            "built-in defaults, 0 problems".into(),
            "no configuration file is in force; the built-in defaults are valid".into(),
        );
    };
    let mut details = Vec::new();
    if let Some(inforce) = &cfg.config {
        for (l, text) in &legacy {
            details.push(format!(
                "legacy configuration {} is converted: {} is in force",
                l.display(),
                path.display()
            ));
            details.extend(legacy_differences(l, text, inforce));
        }
    }
    Check {
        details,
        ..check(
            "config",
            Pass,
            format!("{}: 0 problems", path.display()),
            format!(
                "the configuration in force ({source}) is valid: every key known, typed and in range"
            ),
        )
    }
}

/// Mapped legacy values that differ from the configuration in force (changed after the conversion, or converted
/// from another file): reported, not a failure.
fn legacy_differences(legacy_path: &Path, text: &str, inforce: &Config) -> Vec<String> {
    let Ok(m) = config::migrate::migrate(text, legacy_path) else {
        return vec![format!(
            "{} does not convert cleanly; run `ema migrate-config --source {} …` to see why",
            legacy_path.display(),
            legacy_path.display()
        )];
    };
    let Ok(mut converted) = serde_json::from_value::<Config>(m.document) else {
        return Vec::new();
    };
    let base = legacy_path.parent().unwrap_or(Path::new("."));
    if converted.storage.models_directory.is_relative() {
        converted.storage.models_directory = base.join(&converted.storage.models_directory);
    }
    let (Ok(a), Ok(b)) = (
        serde_json::to_value(&converted),
        serde_json::to_value(inforce),
    ) else {
        return Vec::new();
    };
    let mut out = Vec::new();
    for (legacy_key, path, _) in LEGACY_MAPPING {
        let (x, y) = (at(&a, path), at(&b, path));
        let differs = if *path == "storage.models_directory" {
            !same_file(
                &converted.storage.models_directory,
                &inforce.storage.models_directory,
            )
        } else {
            x != y
        };
        if differs {
            out.push(format!(
                "note: legacy {legacy_key} = {} but {path} = {} is in force (changed after the conversion?)",
                x.map(|v| v.to_string()).unwrap_or_default(),
                y.map(|v| v.to_string()).unwrap_or_default()
            ));
        }
    }
    out
}

fn check_api(cfg: &InForce) -> Check {
    use crate::engine::api_check::{self, Target};
    let Some(c) = &cfg.config else {
        return check(
            "api",
            CheckStatus::Fail,
            "not checked".into(),
            "the server's address is unknown: the configuration in force does not load (see the config check)"
                .into(),
        );
    };
    let target = match Target::new(c, None, std::env::var("EMA_API_TOKEN").ok()) {
        Ok(t) => t,
        Err(e) => {
            return check(
                "api",
                CheckStatus::Fail,
                "not checked".into(),
                e.to_string(),
            );
        }
    };
    let report = match api_check::blocking(async {
        match api_check::alive(&target).await {
            Ok(_) => Ok(api_check::compatibility(&target, true, true).await),
            Err(why) => Err(why),
        }
    }) {
        Ok(r) => r,
        Err(e) => {
            return check(
                "api",
                CheckStatus::Fail,
                "not checked".into(),
                e.to_string(),
            );
        }
    };
    let report = match report {
        Ok(r) => r,
        Err(why) => {
            return check(
                "api",
                CheckStatus::Fail,
                format!("no server at {}", target.base),
                why,
            );
        }
    };
    let figure = format!(
        "{} of {} endpoints pass at {}",
        report.passed,
        report.checks.len(),
        target.base
    );
    let mut out = if report.all_passed() {
        check(
            "api",
            CheckStatus::Pass,
            figure,
            "every legacy and enhanced endpoint answers as the guide's clients read it".into(),
        )
    } else {
        check(
            "api",
            CheckStatus::Fail,
            figure,
            format!(
                "endpoints failed; see below, or run `ema test-api-compatibility --url {}`",
                target.base
            ),
        )
    };
    out.details = report
        .checks
        .iter()
        .filter(|c| !c.passed)
        .map(|c| format!("{}: {}", c.endpoint, c.reason))
        .collect();
    out
}

fn check_features(cfg: &InForce) -> Check {
    use CheckStatus::*;
    let Some(c) = &cfg.config else {
        return check(
            "features",
            Fail,
            "not checked".into(),
            "the feature flags are unknown: the configuration in force does not load (see the config check)"
                .into(),
        );
    };
    let f = &c.features;
    let on = |b: bool| if b { "on" } else { "off" };
    let monitor = if c.health_monitoring.enabled {
        "it runs while the console or a server runs"
    } else {
        "it stays off while health_monitoring.enabled is false"
    };
    let rows: [(&str, bool, Option<String>); 4] = [
        (
            "enhanced_downloads",
            f.enhanced_downloads,
            Some("built: the verified, resumable download engine".into()),
        ),
        (
            "health_monitoring",
            f.health_monitoring,
            Some(format!("built: the health monitor ({monitor})")),
        ),
        (
            "intelligent_fallback",
            f.intelligent_fallback,
            Some("built: scored, explained fallback suggestions (`ema suggest`)".into()),
        ),
        (
            "usage_analytics",
            f.usage_analytics,
            Some(if c.analytics.enabled {
                "built: usage analytics, recorded while downloads, the console or a server run (`ema analytics`)"
                    .to_string()
            } else {
                "built: usage analytics; analytics.enabled is false, so nothing is recorded"
                    .to_string()
            }),
        ),
    ];
    let mut details = Vec::new();
    let mut missing = Vec::new();
    for (name, flag, part) in &rows {
        match part {
            Some(p) => details.push(format!("{name}: {} — {p}", on(*flag))),
            None => {
                details.push(format!(
                    "{name}: {} — not built yet (issue 13){}",
                    on(*flag),
                    if *flag {
                        "; the flag has no effect"
                    } else {
                        ""
                    }
                ));
                if *flag {
                    missing.push(*name);
                }
            }
        }
    }
    let figure = rows
        .iter()
        .map(|(n, b, _)| format!("{n} {}", on(*b)))
        .collect::<Vec<_>>()
        .join(", ");
    let (status, reason) = if missing.is_empty() {
        (
            Pass,
            "every feature switched on has its engine part".to_string(),
        )
    } else {
        (
            NotApplicable,
            format!(
                "not applicable: {} {} switched on but not built yet (issue 13); the built features' parts exist",
                missing.join(" and "),
                if missing.len() == 1 { "is" } else { "are" }
            ),
        )
    };
    Check {
        details,
        ..check("features", status, figure, reason)
    }
}
