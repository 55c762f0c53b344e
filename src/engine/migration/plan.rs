//! `ema migrate plan`: detect and record the legacy setup — the install directory, its legacy `config.json` and
//! models directory, every model `legacy::survey` finds (layout, repo id and how it was inferred, files, bytes, what
//! will happen to it), the legacy API port, the database and usage log, where the backup will go — and the mode.
//! Read-only: nothing of the install is changed.

use std::collections::BTreeMap;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use crate::engine::backup::plan_sources;
use crate::engine::config::CONFIG_FILE_NAME;
use crate::engine::error::{EmaError, Result};
use crate::engine::legacy::{Action, survey};
use crate::engine::store::now_rfc3339;

/// The legacy service's API port when its configuration names none (the spec's `localhost:8000`).
pub const DEFAULT_LEGACY_PORT: u16 = 8000;

/// The spec's two migration paths.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Mode {
    /// Stop the legacy system, adopt its models where they lie, start ema.
    InPlace,
    /// The legacy system keeps running on its models directory; ema, installed in a directory of its own, records
    /// the models where they lie (links in its own store) and changes nothing of the legacy system's.
    SideBySide,
}

impl Mode {
    pub fn as_str(&self) -> &'static str {
        match self {
            Mode::InPlace => "in-place",
            Mode::SideBySide => "side-by-side",
        }
    }
}

/// One model found, and what will happen to it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PlannedModel {
    pub repo_id: String,
    pub layout: String,
    pub id_source: String,
    pub location: PathBuf,
    pub files: usize,
    pub bytes: u64,
    /// `adopt`, `already_adopted`, `create_metadata` or `conflict: …`.
    pub action: String,
}

/// The recorded legacy setup.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MigrationPlan {
    pub root: PathBuf,
    pub mode: Mode,
    pub planned_at: String,
    /// `<root>/config.json`, when there is one.
    pub legacy_config: Option<PathBuf>,
    /// The legacy models directory (the legacy config's `models_directory`, else `<root>/models`).
    pub models_dir: PathBuf,
    /// Where "Configuration migrated" writes the enhanced configuration.
    pub enhanced_config: PathBuf,
    /// The legacy service's API port ("Services stopped" checks nothing listens on it).
    pub legacy_api_port: u16,
    pub database: Option<PathBuf>,
    pub usage_log: Option<PathBuf>,
    /// Where the backup goes (`<cache>/backups`).
    pub backups_dir: PathBuf,
    /// What the backup will hold: (name in the backup, path).
    pub backup_sources: Vec<(String, PathBuf)>,
    pub models: Vec<PlannedModel>,
    /// Entries of the models directory that are no model ema recognises (left alone).
    pub unrecognised: Vec<PathBuf>,
    pub total_bytes: u64,
    /// Where the wizard keeps its state and journal (outside everything the backup covers).
    pub state_dir: PathBuf,
    /// Side-by-side: ema's own installation directory (its `config/` and its store `models/`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub install_dir: Option<PathBuf>,
    /// Side-by-side: ema's store, where the models are recorded as links to where they lie.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub store: Option<PathBuf>,
    /// The legacy service's systemd unit: "Services stopped" asks systemd about it where systemd runs.
    #[serde(default = "default_legacy_unit")]
    pub legacy_unit: String,
    /// ema's own systemd unit: "Services started" asks systemd about it where systemd runs.
    #[serde(default = "default_ema_unit")]
    pub ema_unit: String,
}

fn default_legacy_unit() -> String {
    super::systemd::DEFAULT_LEGACY_UNIT.into()
}

fn default_ema_unit() -> String {
    super::systemd::DEFAULT_EMA_UNIT.into()
}

/// What to plan.
#[derive(Debug, Clone)]
pub struct PlanRequest {
    pub root: PathBuf,
    pub mode: Mode,
    /// Overrides the port read from the legacy configuration.
    pub legacy_port: Option<u16>,
    pub backups_dir: PathBuf,
    pub state_dir: PathBuf,
    /// Side-by-side: ema's own installation directory (the spec's "new location"); ignored in place.
    pub install_dir: PathBuf,
    /// The legacy service's systemd unit (default `model-management-service`).
    pub legacy_unit: Option<String>,
    /// ema's own systemd unit (default `enhanced-model-availability`).
    pub ema_unit: Option<String>,
}

/// Detect the legacy setup at `req.root`.
pub fn make_plan(req: &PlanRequest) -> Result<MigrationPlan> {
    if !req.root.is_dir() {
        return Err(EmaError::Config(format!(
            "{} is not a directory: --root takes the legacy install directory (the one holding config.json and \
             models/)",
            req.root.display()
        )));
    }
    let root = req
        .root
        .canonicalize()
        .map_err(|e| EmaError::io("cannot resolve", &req.root, e))?;
    let sources = plan_sources(&root, &[])?;
    let legacy_config = Some(root.join("config.json")).filter(|p| p.is_file());
    let legacy: Option<serde_json::Value> = match &legacy_config {
        Some(p) => {
            let text = std::fs::read(p).map_err(|e| EmaError::io("cannot read", p, e))?;
            Some(serde_json::from_slice(&text).map_err(|e| {
                EmaError::Config(format!(
                    "{} is not valid JSON ({e}); fix it first (`ema validate-config --config {}` shows where)",
                    p.display(),
                    p.display()
                ))
            })?)
        }
        None => None,
    };
    let models_dir = legacy
        .as_ref()
        .and_then(|v| v.get("models_directory"))
        .and_then(|m| m.as_str())
        .map(|m| root.join(m))
        .unwrap_or_else(|| root.join("models"));
    if !models_dir.is_dir() {
        return Err(EmaError::NotFound(format!(
            "the legacy models directory {} does not exist; check models_directory in {}/config.json",
            models_dir.display(),
            root.display()
        )));
    }
    let models_dir = models_dir
        .canonicalize()
        .map_err(|e| EmaError::io("cannot resolve", &models_dir, e))?;
    let legacy_unit = super::systemd::unit_name(
        req.legacy_unit
            .as_deref()
            .unwrap_or(super::systemd::DEFAULT_LEGACY_UNIT),
    )?;
    let ema_unit = super::systemd::unit_name(
        req.ema_unit
            .as_deref()
            .unwrap_or(super::systemd::DEFAULT_EMA_UNIT),
    )?;
    let legacy_api_port = req
        .legacy_port
        .or_else(|| legacy.as_ref().and_then(port_of))
        .unwrap_or(DEFAULT_LEGACY_PORT);

    // The wizard's own state and the backups must survive a rollback: never inside what the backup covers.
    let state_dir = std::path::absolute(&req.state_dir).unwrap_or_else(|_| req.state_dir.clone());
    let backups_dir =
        std::path::absolute(&req.backups_dir).unwrap_or_else(|_| req.backups_dir.clone());
    for s in &sources {
        for (what, p) in [
            ("the wizard's state directory", &state_dir),
            ("the backups directory", &backups_dir),
        ] {
            if p.starts_with(&s.path) {
                return Err(EmaError::Config(format!(
                    "{what} {} lies inside {}, which a rollback restores; point ema's state and cache elsewhere \
                     (XDG_STATE_HOME, storage.cache_directory)",
                    p.display(),
                    s.path.display()
                )));
            }
        }
    }

    let install_dir = match req.mode {
        Mode::InPlace => None,
        Mode::SideBySide => Some(side_by_side_install(req, &root, &models_dir, &sources)?),
    };
    let store = install_dir.as_ref().map(|d| d.join("models"));
    let s = survey(&models_dir, &BTreeMap::new())?;
    let models: Vec<PlannedModel> = s
        .models
        .iter()
        .map(|m| PlannedModel {
            repo_id: m.repo_id.to_string(),
            layout: m.layout.describe().to_string(),
            id_source: m.id_source.describe().to_string(),
            location: m.location.clone(),
            files: m.files.len(),
            bytes: m.bytes,
            action: match &m.action {
                Action::Adopt | Action::CreateMetadata if store.is_some() => "link".into(),
                Action::AlreadyAdopted if store.is_some() => "link".into(),
                Action::Adopt => "adopt".into(),
                Action::AlreadyAdopted => "already_adopted".into(),
                Action::CreateMetadata => "create_metadata".into(),
                Action::Conflict { reason } => format!("conflict: {reason}"),
            },
        })
        .collect();
    let existing = |p: PathBuf| std::fs::symlink_metadata(&p).is_ok().then_some(p);
    let mut backup_sources: Vec<(String, PathBuf)> = sources
        .iter()
        .map(|s| (s.name.clone(), s.path.clone()))
        .collect();
    if let (Some(st), Some(d)) = (&store, &install_dir) {
        backup_sources.push(("ema_store".into(), st.clone()));
        backup_sources.push(("ema_config".into(), d.join("config")));
    }
    Ok(MigrationPlan {
        enhanced_config: match &install_dir {
            Some(d) => d.join("config").join(CONFIG_FILE_NAME),
            None => root.join("config").join(CONFIG_FILE_NAME),
        },
        database: existing(root.join("models.db")),
        usage_log: existing(root.join("logs").join("usage.log")),
        backup_sources,
        total_bytes: models.iter().map(|m| m.bytes).sum(),
        models,
        unrecognised: s.unrecognised,
        root,
        mode: req.mode,
        planned_at: now_rfc3339(),
        legacy_config,
        models_dir,
        legacy_api_port,
        backups_dir,
        state_dir,
        install_dir,
        store,
        legacy_unit,
        ema_unit,
    })
}

/// Side-by-side: ema's installation directory, absolute, apart from the legacy install's backed-up paths and the
/// legacy models directory (a rollback restores ema's side and leaves the legacy system's alone).
fn side_by_side_install(
    req: &PlanRequest,
    root: &std::path::Path,
    models_dir: &std::path::Path,
    sources: &[crate::engine::backup::take::PlannedSource],
) -> Result<PathBuf> {
    let d = std::path::absolute(&req.install_dir).unwrap_or_else(|_| req.install_dir.clone());
    let d = d.canonicalize().unwrap_or(d);
    let clash = sources
        .iter()
        .map(|s| s.path.as_path())
        .chain([models_dir])
        .find(|p| d.starts_with(p) || p.starts_with(&d));
    if let Some(p) = clash {
        return Err(EmaError::Config(format!(
            "ema's installation directory {} overlaps {}, which the legacy system owns; give side-by-side a \
             directory of its own with --install-dir (e.g. {})",
            d.display(),
            p.display(),
            root.parent()
                .unwrap_or(std::path::Path::new("/"))
                .join("enhanced-model-availability")
                .display()
        )));
    }
    Ok(d)
}

impl MigrationPlan {
    /// Where ema's store is: the legacy models directory itself in place, ema's own store side by side.
    pub fn store_dir(&self) -> &std::path::Path {
        self.store.as_deref().unwrap_or(&self.models_dir)
    }
}

/// The API port a legacy configuration names (`api_port`, `port`, or `api.port`).
fn port_of(v: &serde_json::Value) -> Option<u16> {
    let p = v
        .get("api_port")
        .or_else(|| v.get("port"))
        .or_else(|| v.get("api").and_then(|a| a.get("port")))?;
    p.as_u64()
        .or_else(|| p.as_str().and_then(|s| s.parse().ok()))
        .and_then(|n| u16::try_from(n).ok())
}

impl MigrationPlan {
    /// The models directory's layouts and how many models each holds.
    pub fn layouts(&self) -> Vec<(String, usize)> {
        let mut m: BTreeMap<&str, usize> = BTreeMap::new();
        for x in &self.models {
            *m.entry(x.layout.as_str()).or_default() += 1;
        }
        m.into_iter().map(|(k, v)| (k.to_string(), v)).collect()
    }
}
