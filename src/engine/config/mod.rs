//! The enhanced configuration: the typed keys with their defaults, and finding and loading the file in force.
//!
//! Every key is typed and has a documented default (see the README's configuration reference). A partial file is
//! valid: missing keys take their defaults. The submodules work on configuration files:
//!
//! - the schema table and what it drives: [`schema`] (the key table and defaults), [`check`] (a value against its
//!   key), [`suggest`] ("did you mean"), [`reference`](mod@reference) (the README table);
//! - reading a file: [`json_spans`] (positions), [`validate`] (every problem at once) reporting [`problem`]s,
//!   [`redact`] (no credential is printed), [`effective`] (`validate-config --verbose`);
//! - changing a file: [`document`] (set a key, render), [`writer`] (new files, backups), [`fix`] (`fix-config`),
//!   [`edit`] (`configure`, `enable-feature`), [`selftest`] (`enable-feature --test-first`);
//! - the legacy system: [`legacy`] (the mapping table) and [`migrate`] (`migrate-config`);
//! - beside the file: [`hub_env`] (the Hugging Face environment).

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::engine::error::{EmaError, Result};

pub mod check;
pub mod diff;
pub mod document;
pub mod edit;
pub mod effective;
pub mod fix;
pub mod hub_env;
pub mod json_spans;
pub mod legacy;
pub mod migrate;
pub mod problem;
pub mod redact;
pub mod reference;
pub mod schema;
pub mod selftest;
pub mod suggest;
pub mod validate;
pub mod writer;

#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    pub storage: StorageConfig,
    pub downloads: DownloadsConfig,
    pub health_monitoring: HealthMonitoringConfig,
    pub fallback: FallbackConfig,
    pub features: FeaturesConfig,
    pub api: ApiConfig,
    pub analytics: AnalyticsConfig,
    pub migration: MigrationConfig,
    pub ui: UiConfig,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct StorageConfig {
    /// Where models live. Relative paths are relative to the config file's directory's parent when loaded from
    /// a file (i.e. the project root for `config/enhanced_model_config.json`), else to the working directory.
    pub models_directory: PathBuf,
    /// Scratch space (partial downloads, backups). Default: `cache` beside the models directory.
    pub cache_directory: Option<PathBuf>,
    /// Storage budget for the models directory, in GB.
    pub max_storage_gb: f64,
    /// Alert when use passes this percentage of `max_storage_gb` (or of the disk). 1..=100.
    pub cleanup_threshold_percent: u8,
    /// The models directory is shared with another installation (side-by-side migration): never delete
    /// files ema did not create.
    pub shared_storage: bool,
    /// Models the operator wants present (repo ids); shown in the console's watch list.
    pub wanted_models: Vec<String>,
    /// Other ema stores (a mirror's store, a backup) that repair looks in for an exact copy of a bad file —
    /// used only when its hash matches — before downloading it again. The Hugging Face cache is always searched.
    pub repair_sources: Vec<PathBuf>,
}

impl Default for StorageConfig {
    fn default() -> Self {
        StorageConfig {
            models_directory: PathBuf::from("models"),
            cache_directory: None,
            max_storage_gb: 500.0,
            cleanup_threshold_percent: 90,
            shared_storage: false,
            wanted_models: Vec::new(),
            repair_sources: Vec::new(),
        }
    }
}

impl StorageConfig {
    /// The effective cache directory: the configured one, else `cache` beside the models directory.
    pub fn cache_dir(&self) -> PathBuf {
        match &self.cache_directory {
            Some(p) => p.clone(),
            None => match self.models_directory.parent() {
                Some(parent) if !parent.as_os_str().is_empty() => parent.join("cache"),
                _ => PathBuf::from("cache"),
            },
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct DownloadsConfig {
    /// Files downloaded at once, across all models. >= 1.
    pub max_concurrent_downloads: u32,
    /// Retries per file after the first attempt.
    pub max_retries: u32,
    /// Base of the exponential backoff (with jitter) between retries, seconds.
    pub retry_delay_seconds: f64,
    /// Shared bandwidth cap in megabits per second; 0 = none.
    pub bandwidth_limit_mbps: f64,
    /// Resume interrupted files with HTTP Range requests.
    pub resume_enabled: bool,
    /// Verify every file's sha256 / git sha1 while streaming.
    pub integrity_check_enabled: bool,
    /// Parallel Range connections for one large file. >= 1.
    pub connections_per_file: u32,
    /// Files at least this large (MB) are split into parallel parts.
    pub parallel_threshold_mb: u64,
    /// TCP connect timeout, seconds.
    pub connect_timeout_seconds: f64,
    /// Drop and retry a connection that delivers no byte for this long, seconds.
    pub stall_timeout_seconds: f64,
    /// Longest `Retry-After` ema obeys, seconds.
    pub max_retry_after_seconds: f64,
    /// Send the token over plain http to a non-loopback host (off: refuse).
    pub allow_token_over_http: bool,
    /// Read plain-http file bodies with ema's own HTTP/1.1 reader, straight into the write buffers (off: the
    /// general HTTP client for everything).
    pub zero_copy_http: bool,
    /// Write downloaded data with O_DIRECT where the filesystem supports it (off: through the page cache).
    pub direct_io: bool,
}

impl Default for DownloadsConfig {
    fn default() -> Self {
        DownloadsConfig {
            max_concurrent_downloads: 4,
            max_retries: 5,
            retry_delay_seconds: 30.0,
            bandwidth_limit_mbps: 0.0,
            resume_enabled: true,
            integrity_check_enabled: true,
            connections_per_file: 4,
            parallel_threshold_mb: 64,
            connect_timeout_seconds: 10.0,
            stall_timeout_seconds: 30.0,
            max_retry_after_seconds: 120.0,
            allow_token_over_http: false,
            zero_copy_http: true,
            direct_io: true,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct HealthMonitoringConfig {
    pub enabled: bool,
    /// Full verification interval, hours (> 0).
    pub check_interval_hours: f64,
    /// Quick checks (existence, size, mtime) interval, minutes (> 0).
    pub quick_check_interval_minutes: f64,
    pub auto_repair_enabled: bool,
    pub performance_monitoring_enabled: bool,
}

impl Default for HealthMonitoringConfig {
    fn default() -> Self {
        HealthMonitoringConfig {
            enabled: true,
            check_interval_hours: 24.0,
            quick_check_interval_minutes: 1.0,
            auto_repair_enabled: true,
            performance_monitoring_enabled: true,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct FallbackConfig {
    pub intelligent_fallback_enabled: bool,
    /// Minimum score (0..=1) for a suggestion to be shown.
    pub suggestion_threshold: f64,
    pub queue_requests_enabled: bool,
    pub mock_fallback_enabled: bool,
    /// The operator's ordered substitutes per model id or glob, tried before the score.
    pub rules: crate::engine::fallback::rules::Rules,
}

impl Default for FallbackConfig {
    fn default() -> Self {
        FallbackConfig {
            intelligent_fallback_enabled: true,
            suggestion_threshold: 0.7,
            queue_requests_enabled: true,
            mock_fallback_enabled: true,
            rules: Default::default(),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct FeaturesConfig {
    pub enhanced_downloads: bool,
    pub health_monitoring: bool,
    pub intelligent_fallback: bool,
    pub usage_analytics: bool,
}

impl Default for FeaturesConfig {
    fn default() -> Self {
        FeaturesConfig {
            enhanced_downloads: true,
            health_monitoring: true,
            intelligent_fallback: true,
            usage_analytics: true,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ApiConfig {
    pub host: String,
    pub port: u16,
    /// Bearer token clients must send. Never printed.
    pub token: Option<String>,
    /// Serve the legacy endpoints (`/api/v1/models/status`, `/download`, `/health`).
    pub legacy_support: bool,
    /// Serve only the legacy endpoints.
    pub legacy_endpoints_only: bool,
    /// Host names requests may name besides loopback and the bound address (DNS-rebinding guard).
    pub allowed_hosts: Vec<String>,
    /// Web origins allowed to call the API and open the WebSocket besides the server's own (no wildcards).
    pub allowed_origins: Vec<String>,
}

impl Default for ApiConfig {
    fn default() -> Self {
        ApiConfig {
            host: "127.0.0.1".to_string(),
            port: 8000,
            token: None,
            legacy_support: true,
            legacy_endpoints_only: false,
            allowed_hosts: Vec::new(),
            allowed_origins: Vec::new(),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AnalyticsConfig {
    pub enabled: bool,
    /// `sqlite:///path` or `postgresql://…`; default: `analytics.db` in the cache directory.
    pub db_url: Option<String>,
}

impl Default for AnalyticsConfig {
    fn default() -> Self {
        AnalyticsConfig {
            enabled: true,
            db_url: None,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct MigrationConfig {
    pub compatibility_mode: bool,
    pub legacy_api_support: bool,
    /// Legacy settings `migrate-config` did not know, kept verbatim so nothing is lost.
    #[serde(skip_serializing_if = "serde_json::Map::is_empty")]
    pub unmapped_legacy_settings: serde_json::Map<String, serde_json::Value>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct UiConfig {
    /// Theme name (a file in `themes/`) or a path to a theme TOML file.
    pub theme: String,
}

impl Default for UiConfig {
    fn default() -> Self {
        UiConfig {
            theme: "dark".to_string(),
        }
    }
}

/// Why a configuration file is in force.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ConfigSource {
    /// `--config PATH`.
    Flag,
    /// The `EMA_CONFIG` environment variable.
    Env,
    /// `./config/enhanced_model_config.json` in the working directory.
    WorkingDir,
    /// The platform configuration directory.
    Platform,
    /// No file found: built-in defaults.
    Defaults,
}

impl ConfigSource {
    pub fn describe(&self) -> &'static str {
        match self {
            ConfigSource::Flag => "given with --config",
            ConfigSource::Env => "named by the EMA_CONFIG environment variable",
            ConfigSource::WorkingDir => "found at ./config/enhanced_model_config.json",
            ConfigSource::Platform => "found in the platform configuration directory",
            ConfigSource::Defaults => "no configuration file found; using built-in defaults",
        }
    }
}

/// A loaded configuration and where it came from.
#[derive(Debug, Clone)]
pub struct LoadedConfig {
    pub config: Config,
    /// The file in force, if any.
    pub path: Option<PathBuf>,
    pub source: ConfigSource,
    /// Every candidate looked at, in order, for `ema config path`.
    pub searched: Vec<PathBuf>,
}

pub const CONFIG_FILE_NAME: &str = "enhanced_model_config.json";

/// Configuration keys a running server applies on reload (SIGHUP); every other key needs a restart.
pub const LIVE_KEYS: &[&str] = &["api.token", "api.allowed_hosts", "api.allowed_origins"];

/// The platform directories (config and data), e.g. `~/.config/ema` and `~/.local/share/ema` on Linux.
pub fn project_dirs() -> Option<directories::ProjectDirs> {
    directories::ProjectDirs::from("", "", "ema")
}

/// Find the configuration file: `--config`, then `EMA_CONFIG`, then `./config/enhanced_model_config.json`, then the
/// platform config dir. An explicitly named file that does not exist is an error.
pub fn discover(flag: Option<&Path>) -> Result<(Option<PathBuf>, ConfigSource, Vec<PathBuf>)> {
    let mut searched = Vec::new();
    if let Some(p) = flag {
        searched.push(p.to_path_buf());
        if !p.exists() {
            return Err(EmaError::Config(format!(
                "configuration file {} (given with --config) does not exist; check the path, or create one with \
                 `ema migrate-config` or by copying config/enhanced_model_config.json",
                p.display()
            )));
        }
        return Ok((Some(p.to_path_buf()), ConfigSource::Flag, searched));
    }
    if let Some(v) = std::env::var_os("EMA_CONFIG").filter(|v| !v.is_empty()) {
        let p = PathBuf::from(v);
        searched.push(p.clone());
        if !p.exists() {
            return Err(EmaError::Config(format!(
                "configuration file {} (named by EMA_CONFIG) does not exist; fix or unset EMA_CONFIG",
                p.display()
            )));
        }
        return Ok((Some(p), ConfigSource::Env, searched));
    }
    let local = PathBuf::from("config").join(CONFIG_FILE_NAME);
    searched.push(local.clone());
    if local.is_file() {
        return Ok((Some(local), ConfigSource::WorkingDir, searched));
    }
    if let Some(dirs) = project_dirs() {
        let p = dirs.config_dir().join(CONFIG_FILE_NAME);
        searched.push(p.clone());
        if p.is_file() {
            return Ok((Some(p), ConfigSource::Platform, searched));
        }
    }
    Ok((None, ConfigSource::Defaults, searched))
}

/// Parse configuration text. Errors name the first problem; [`validate`] lists them all.
pub fn parse(text: &str, origin: &Path) -> Result<Config> {
    serde_json::from_str(text).map_err(|e| {
        EmaError::Config(format!(
            "{}:{}:{}: invalid configuration: {e}; run `ema validate-config --config {}` for every problem \
             and `ema fix-config --config {} --auto-fix` to repair what can be",
            origin.display(),
            e.line(),
            e.column(),
            origin.display(),
            origin.display()
        ))
    })
}

/// Load the configuration in force. Relative storage paths are resolved against the directory that holds the
/// `config/` folder (or the file's own directory), so `ema` works from any working directory.
pub fn load(flag: Option<&Path>) -> Result<LoadedConfig> {
    let (path, source, searched) = discover(flag)?;
    let config = match &path {
        Some(p) => {
            let text = std::fs::read_to_string(p)
                .map_err(|e| EmaError::io("cannot read configuration file", p, e))?;
            let mut c = parse(&text, p)?;
            resolve_relative(&mut c, p);
            c
        }
        None => {
            let mut c = Config::default();
            if let Some(dirs) = project_dirs() {
                c.storage.models_directory = dirs.data_dir().join("models");
            }
            c
        }
    };
    Ok(LoadedConfig {
        config,
        path,
        source,
        searched,
    })
}

/// The base directory relative paths in a config file are resolved against: the parent of a `config/` directory
/// holding the file, else the file's directory.
pub fn base_dir_for(config_path: &Path) -> PathBuf {
    let dir = config_path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    if dir.file_name().is_some_and(|n| n == "config") {
        dir.parent()
            .filter(|p| !p.as_os_str().is_empty())
            .unwrap_or(Path::new("."))
            .to_path_buf()
    } else {
        dir.to_path_buf()
    }
}

fn resolve_relative(c: &mut Config, config_path: &Path) {
    let base = base_dir_for(config_path);
    if c.storage.models_directory.is_relative() {
        c.storage.models_directory = base.join(&c.storage.models_directory);
    }
    if let Some(cd) = &c.storage.cache_directory
        && cd.is_relative()
    {
        c.storage.cache_directory = Some(base.join(cd));
    }
    for p in c.storage.repair_sources.iter_mut() {
        if p.is_relative() {
            *p = base.join(&*p);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn partial_file_takes_defaults() {
        let c = parse(r#"{"downloads": {"max_retries": 9}}"#, Path::new("x.json")).unwrap();
        assert_eq!(c.downloads.max_retries, 9);
        assert_eq!(c.downloads.max_concurrent_downloads, 4);
        assert_eq!(c.fallback.suggestion_threshold, 0.7);
        assert_eq!(c.storage.max_storage_gb, 500.0);
    }

    #[test]
    fn round_trip_is_identity() {
        let c = Config::default();
        let text = serde_json::to_string_pretty(&c).unwrap();
        assert_eq!(parse(&text, Path::new("x")).unwrap(), c);
    }

    #[test]
    fn unknown_key_is_an_error_with_position() {
        let e = parse(
            "{\n  \"storage\": {\"modles_directory\": \"x\"}\n}",
            Path::new("c.json"),
        )
        .unwrap_err()
        .to_string();
        assert!(e.contains("c.json:2:"), "{e}");
        assert!(e.contains("modles_directory"), "{e}");
    }

    #[test]
    fn cache_dir_defaults_beside_models() {
        let s = StorageConfig {
            models_directory: PathBuf::from("/data/models"),
            ..Default::default()
        };
        assert_eq!(s.cache_dir(), PathBuf::from("/data/cache"));
    }
}
