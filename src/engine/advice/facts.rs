//! Gathering the advice's inputs on this machine: cores, memory, disk free and type (rotational or not, from
//! `/sys/dev/block`), the hub reached with a real request, the store's size, the benchmark baseline and the
//! recorded download history (usage analytics, last 30 days).

use std::path::Path;
use std::time::Duration;

use super::{HubFacts, Inputs, StoreFacts, SystemFacts};
use crate::engine::analytics;
use crate::engine::benchmark;
use crate::engine::config::Config;
use crate::engine::config::hub_env::HubEnv;
use crate::engine::error::Result;
use crate::engine::store::Store;
use crate::engine::syscheck::{self, Status, SystemCheckInput};

/// How far back the download history is read.
pub const HISTORY_DAYS: i64 = 30;

/// The major and minor device numbers of a Linux `dev_t`.
fn major_minor(dev: u64) -> (u64, u64) {
    let major = ((dev >> 8) & 0xfff) | ((dev >> 32) & !0xfff);
    let minor = (dev & 0xff) | ((dev >> 12) & !0xff);
    (major, minor)
}

/// The block device holding `dir` and whether it spins: `/sys/dev/block/M:m/queue/rotational` (a whole disk) or
/// the same under its parent (a partition). (None, None) for tmpfs, overlay and network filesystems.
pub fn disk_type(dir: &Path) -> (Option<String>, Option<bool>) {
    use std::os::unix::fs::MetadataExt;
    let Ok(meta) = std::fs::metadata(syscheck::existing_ancestor(dir)) else {
        return (None, None);
    };
    let (major, minor) = major_minor(meta.dev());
    if major == 0 {
        return (None, None);
    }
    let Ok(node) = std::fs::canonicalize(format!("/sys/dev/block/{major}:{minor}")) else {
        return (None, None);
    };
    let name = node.file_name().map(|n| n.to_string_lossy().into_owned());
    for d in [Some(node.as_path()), node.parent()].into_iter().flatten() {
        if let Ok(v) = std::fs::read_to_string(d.join("queue/rotational")) {
            return (name, Some(v.trim() == "1"));
        }
    }
    (name, None)
}

/// The system facts (the hub reached within `hub_timeout`).
pub async fn system(config: &Config, hub: &HubEnv, hub_timeout: Duration) -> SystemFacts {
    let dir = &config.storage.models_directory;
    let stats = fs4::statvfs(syscheck::existing_ancestor(dir)).ok();
    let (disk_device, disk_rotational) = disk_type(dir);
    let input = SystemCheckInput {
        models_dir: dir.clone(),
        hub_endpoint: (!hub.offline).then(|| hub.endpoint.clone()),
        hub_timeout,
    };
    let check = syscheck::hub(&input).await;
    SystemFacts {
        cores: std::thread::available_parallelism().map_or(1, |n| n.get()),
        memory_bytes: syscheck::mem_total(),
        disk_free_bytes: stats.as_ref().map(|s| s.available_space()),
        disk_total_bytes: stats.as_ref().map(|s| s.total_space()),
        disk_rotational,
        disk_device,
        hub: HubFacts {
            endpoint: input.hub_endpoint.clone(),
            reachable: input
                .hub_endpoint
                .as_ref()
                .map(|_| check.status == Status::Pass),
            detail: if check.figure == "not checked" {
                check.detail.clone()
            } else {
                format!("{}: {}", check.figure, check.detail)
            },
        },
    }
}

/// The store's models, files and bytes.
pub fn store(config: &Config) -> Result<StoreFacts> {
    let store = Store::new(&config.storage.models_directory);
    let mut facts = StoreFacts {
        bytes: crate::engine::inventory::dir_size(store.root()),
        ..Default::default()
    };
    if !store.root().exists() {
        return Ok(facts);
    }
    for id in store.list_models()? {
        if let Some(m) = store.read_metadata(&id)? {
            facts.models += 1;
            facts.files += m.files.len();
        }
    }
    Ok(facts)
}

/// Every input, read on this machine. A damaged benchmark baseline is an error naming it; analytics that cannot be
/// read are missing evidence, not an error.
pub async fn gather(config: &Config, hub: &HubEnv) -> Result<Inputs> {
    let baseline =
        benchmark::load_baseline(&benchmark::baseline_path(&config.storage.cache_dir()))?;
    let (downloads, downloads_missing) = history(config).await;
    Ok(Inputs {
        config: config.clone(),
        system: system(config, hub, Duration::from_secs(3)).await,
        store: store(config)?,
        baseline,
        downloads,
        downloads_missing,
    })
}

async fn history(config: &Config) -> (Option<analytics::report::DownloadFigures>, Option<String>) {
    if !analytics::enabled(config) {
        return (
            None,
            Some("usage analytics are off: `ema enable-feature usage-analytics`".into()),
        );
    }
    let url = match analytics::DbUrl::resolve(None, config) {
        Ok(u) => u,
        Err(e) => return (None, Some(e.to_string())),
    };
    if let Some(p) = url.sqlite_path()
        && !p.exists()
    {
        return (
            None,
            Some(format!("no analytics database yet at {}", p.display())),
        );
    }
    let db = match analytics::AnalyticsDb::open(&url).await {
        Ok(db) => db,
        Err(e) => {
            return (
                None,
                Some(format!("cannot open the analytics database: {e}")),
            );
        }
    };
    let since = analytics::record::now_ms() - HISTORY_DAYS * 24 * 3600 * 1000;
    let r = analytics::summary(&db, Some(since)).await;
    db.close().await;
    match r {
        Ok(s) if s.downloads.started > 0 || s.downloads.completed + s.downloads.failed > 0 => {
            (Some(s.downloads), None)
        }
        Ok(_) => (
            None,
            Some(format!(
                "no downloads recorded in the last {HISTORY_DAYS} days"
            )),
        ),
        Err(e) => (
            None,
            Some(format!("cannot read the analytics database: {e}")),
        ),
    }
}
