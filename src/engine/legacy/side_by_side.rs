//! Side-by-side adoption (`storage.shared_storage: true`): the legacy system keeps running on its models directory,
//! so ema records each model where it lies — `<store>/<org>--<name>/<path>` symlinks to the legacy files and a
//! sidecar naming the legacy folder (`legacy_location`) — in a store of its own, and never renames, moves, deletes
//! or writes anything under the legacy directory. Its journal and lock live in that store too.

use std::path::{Path, PathBuf};

use crate::engine::error::{EmaError, Result};
use crate::engine::store::Store;

use super::journal::{Move, Plan, PlannedFile};
use super::survey::{Action, LegacyModel};

/// Check that ema's store and the legacy models directory are apart, and return the store's absolute path
/// (created unless `dry_run`). Both must exist apart: the legacy system's directory is never ema's store.
pub fn prepare(legacy_dir: &Path, store: &Path, dry_run: bool) -> Result<PathBuf> {
    let legacy = legacy_dir.canonicalize().map_err(|e| {
        if e.kind() == std::io::ErrorKind::NotFound {
            EmaError::NotFound(format!(
                "the models directory {} does not exist; pass the legacy models directory with --models-dir",
                legacy_dir.display()
            ))
        } else {
            EmaError::io("cannot resolve", legacy_dir, e)
        }
    })?;
    let abs = std::path::absolute(store).map_err(|e| EmaError::io("cannot resolve", store, e))?;
    if !dry_run {
        std::fs::create_dir_all(&abs).map_err(|e| EmaError::io("cannot create", &abs, e))?;
    }
    let store = abs.canonicalize().unwrap_or(abs);
    let fix = format!(
        "set storage.models_directory (or --store) to a directory of ema's own, e.g. {}, and keep the legacy \
         directory in --models-dir",
        legacy
            .parent()
            .unwrap_or(Path::new("/"))
            .join("ema-models")
            .display()
    );
    if store == legacy {
        return Err(EmaError::Config(format!(
            "side-by-side migration keeps ema's store apart from the legacy models directory, but both are {}: \
             {fix}",
            legacy.display()
        )));
    }
    if store.starts_with(&legacy) {
        return Err(EmaError::Config(format!(
            "ema's store {} lies inside the legacy models directory {}, which the legacy system owns: {fix}",
            store.display(),
            legacy.display()
        )));
    }
    if legacy.starts_with(&store) {
        return Err(EmaError::Config(format!(
            "the legacy models directory {} lies inside ema's store {}: {fix}",
            legacy.display(),
            store.display()
        )));
    }
    Ok(store)
}

/// What adopting `m` side by side does, given what ema's store at `store_root` already holds. `redo`: a killed run
/// had started this model (its folder may hold some of the links and no sidecar yet).
pub fn action(store_root: &Path, m: &LegacyModel, redo: bool) -> Action {
    if let Action::Conflict { .. } = m.action {
        return m.action.clone();
    }
    let store = Store::new(store_root);
    let dir = store.model_dir(&m.repo_id);
    match store.read_metadata(&m.repo_id) {
        Ok(Some(meta)) if meta.legacy_location.as_deref() == Some(m.location.as_path()) => {
            Action::AlreadyAdopted
        }
        Ok(Some(meta)) => Action::Conflict {
            reason: format!(
                "ema's store already holds {} ({}); remove it from the store (`ema delete`) or give this model \
                 another id with --map",
                m.repo_id,
                match &meta.legacy_location {
                    Some(p) => format!("adopted from {}", p.display()),
                    None => "downloaded by ema".into(),
                }
            ),
        },
        Ok(None) if dir.exists() && !redo => Action::Conflict {
            reason: format!(
                "{} exists in ema's store without a sidecar; move it aside or give this model another id with --map",
                dir.display()
            ),
        },
        Ok(None) => Action::Adopt,
        Err(e) => Action::Conflict {
            reason: format!("ema's sidecar for {} cannot be read: {e}", m.repo_id),
        },
    }
}

/// The plan of a side-by-side adoption: one link per file, from the store's model folder to where the bytes lie.
pub fn plan(store_root: &Path, m: &LegacyModel) -> Plan {
    let target = store_root.join(m.repo_id.folder_name());
    Plan {
        repo_id: m.repo_id.clone(),
        layout: m.layout,
        id_source: Some(m.id_source),
        location: Some(m.location.clone()),
        commit: m.commit.clone(),
        files: m
            .files
            .iter()
            .map(|f| PlannedFile {
                path: f.path.clone(),
                size: f.size,
                expected_sha256: f.expected_sha256.clone(),
                expected_git_sha1: f.expected_git_sha1.clone(),
            })
            .collect(),
        moves: m
            .files
            .iter()
            .map(|f| Move {
                from: f.source.clone(),
                to: target.join(&f.path),
                clone: false,
                link: true,
            })
            .collect(),
        target,
        remove_if_empty: Vec::new(),
        side_by_side: true,
    }
}

/// Make the link `mv.to` → `mv.from`, idempotently: true when it did something. A link already there with another
/// target (left by a killed run) is replaced — the store's links are ema's own; anything else in the way is an error.
pub fn link(mv: &Move) -> Result<bool> {
    match std::fs::symlink_metadata(&mv.to) {
        Ok(md) if md.file_type().is_symlink() => {
            if std::fs::read_link(&mv.to).is_ok_and(|t| t == mv.from) {
                return Ok(false);
            }
        }
        Ok(_) => {
            return Err(EmaError::Other(format!(
                "{} already exists in ema's store and is not a link; move it aside and run migrate-models again",
                mv.to.display()
            )));
        }
        Err(_) => {}
    }
    if !mv.from.is_file() {
        return Err(EmaError::NotFound(format!(
            "{} is gone (the legacy system removed it while ema adopted it); run migrate-models again",
            mv.from.display()
        )));
    }
    let parent = mv.to.parent().unwrap_or(Path::new("/"));
    std::fs::create_dir_all(parent).map_err(|e| EmaError::io("cannot create", parent, e))?;
    let tmp = parent.join(format!(
        ".{}.ema-link.tmp",
        mv.to.file_name().unwrap_or_default().to_string_lossy()
    ));
    let _ = std::fs::remove_file(&tmp);
    std::os::unix::fs::symlink(&mv.from, &tmp).map_err(|e| EmaError::io("cannot link", &tmp, e))?;
    std::fs::rename(&tmp, &mv.to).map_err(|e| EmaError::io("cannot move into place", &mv.to, e))?;
    Ok(true)
}
