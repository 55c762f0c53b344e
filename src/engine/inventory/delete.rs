//! Deleting a model from the store: its folder, its sidecar and any partial download.

use crate::engine::error::{EmaError, Result};
use crate::engine::store::{RepoId, Store};

/// Delete a model: its folder, its sidecar and any partial download. In a shared store (`shared_storage`), a model
/// without an ema sidecar was not created by ema and is refused.
pub fn delete_model(store: &Store, id: &RepoId, shared_storage: bool) -> Result<()> {
    let meta_path = store.metadata_path(id);
    let dir = store.model_dir(id);
    if shared_storage && !meta_path.exists() && dir.exists() {
        return Err(EmaError::Config(format!(
            "{id} has no ema metadata and the store is shared (storage.shared_storage = true), so ema did not \
             create it and will not delete it; remove {} by hand if you are sure",
            dir.display()
        )));
    }
    if !dir.exists() && !meta_path.exists() {
        return Err(EmaError::NotFound(format!(
            "{id} is not in the store at {}; nothing to delete",
            store.root().display()
        )));
    }
    if dir.exists() {
        std::fs::remove_dir_all(&dir).map_err(|e| EmaError::io("cannot delete", &dir, e))?;
    }
    let partial = store.partial_dir(id);
    if partial.exists() {
        std::fs::remove_dir_all(&partial)
            .map_err(|e| EmaError::io("cannot delete", &partial, e))?;
    }
    if meta_path.exists() {
        std::fs::remove_file(&meta_path)
            .map_err(|e| EmaError::io("cannot delete", &meta_path, e))?;
    }
    crate::engine::atomic::sync_dir(store.root());
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shared_store_refuses_foreign_models() {
        let d = tempfile::tempdir().unwrap();
        let s = Store::new(d.path());
        let id = RepoId::parse("legacy").unwrap();
        std::fs::create_dir_all(s.model_dir(&id)).unwrap();
        assert!(delete_model(&s, &id, true).is_err());
        assert!(s.model_dir(&id).exists());
        delete_model(&s, &id, false).unwrap();
    }
}
