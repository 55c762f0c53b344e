//! What the integrity commands share: the models directory to use and opening it, byte sizes in words, a runtime.

use std::path::{Path, PathBuf};

use crate::cli::Ctx;
use crate::engine::config::LoadedConfig;
use crate::engine::error::{EmaError, Result};
use crate::engine::store::Store;

/// The models directory: the flag, else `storage.models_directory` of the configuration.
fn models_dir(flag: Option<&Path>, loaded: &LoadedConfig) -> PathBuf {
    flag.map(Path::to_path_buf)
        .unwrap_or_else(|| loaded.config.storage.models_directory.clone())
}

/// The store at `dir`, which must exist.
fn open_store(dir: &Path) -> Result<Store> {
    if !dir.is_dir() {
        return Err(EmaError::NotFound(format!(
            "models directory {} does not exist; pass --models-dir or set storage.models_directory",
            dir.display()
        )));
    }
    Ok(Store::new(dir))
}

/// The configuration, the models directory (`--models-dir`, else the configuration's) and its store.
pub(super) fn open_models(
    ctx: &Ctx,
    flag: Option<&Path>,
) -> Result<(LoadedConfig, PathBuf, Store)> {
    let loaded = ctx.load_config()?;
    let dir = models_dir(flag, &loaded);
    let store = open_store(&dir)?;
    Ok((loaded, dir, store))
}

/// Bytes in decimal units (`1.5 GB`).
pub fn human_bytes(b: u64) -> String {
    let units = ["B", "KB", "MB", "GB", "TB"];
    let mut v = b as f64;
    let mut i = 0;
    while v >= 1000.0 && i < units.len() - 1 {
        v /= 1000.0;
        i += 1;
    }
    if i == 0 {
        format!("{b} B")
    } else {
        format!("{v:.1} {}", units[i])
    }
}

/// A multi-threaded tokio runtime for the commands that need the async engine.
pub(super) fn runtime() -> Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|e| EmaError::Other(format!("cannot start the async runtime: {e}")))
}
