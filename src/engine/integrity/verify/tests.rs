//! Tests of the verification: full and quick checks on a real store, each kind of damage.

use super::*;
use crate::engine::events::HealthState;
use crate::engine::integrity::generate::{GenerateOptions, generate_local_metadata};
use crate::engine::integrity::safetensors;
use crate::engine::store::{RepoId, Store, VerificationState};

fn store_with_model() -> (tempfile::TempDir, Store, RepoId) {
    let d = tempfile::tempdir().unwrap();
    let store = Store::new(d.path());
    store.ensure().unwrap();
    let id = RepoId::parse("org/tiny").unwrap();
    let dir = store.model_dir(&id);
    std::fs::create_dir_all(&dir).unwrap();
    let shard = |i: usize| {
        safetensors::build_file(&[("w", "F32", &[64, 64])], &[], move |_, b| {
            (b * 13 + i) as u8
        })
    };
    std::fs::write(dir.join("model-00001-of-00002.safetensors"), shard(1)).unwrap();
    std::fs::write(dir.join("model-00002-of-00002.safetensors"), shard(2)).unwrap();
    std::fs::write(
        dir.join("model.safetensors.index.json"),
        r#"{"metadata":{},"weight_map":{"a":"model-00001-of-00002.safetensors","b":"model-00002-of-00002.safetensors"}}"#,
    )
    .unwrap();
    std::fs::write(dir.join("config.json"), r#"{"model_type":"tiny"}"#).unwrap();
    let meta = generate_local_metadata(&store, &id, &GenerateOptions::default()).unwrap();
    store.write_metadata(&meta).unwrap();
    (d, store, id)
}

fn full(store: &Store, id: &RepoId) -> ModelHealth {
    verify_models(store, std::slice::from_ref(id), &VerifyOptions::default())
        .unwrap()
        .remove(0)
}

#[test]
fn healthy_then_each_kind_of_damage() {
    let (_d, store, id) = store_with_model();
    let h = full(&store, &id);
    assert_eq!(h.state, HealthState::Healthy, "{h:?}");
    assert_eq!(h.files_ok, 4);
    let meta = store.read_metadata(&id).unwrap().unwrap();
    assert!(meta.last_verified_at.is_some());
    assert_eq!(meta.verification, VerificationState::LocalOnly);
    assert!(
        meta.files
            .iter()
            .all(|f| f.verified_at.is_some() && f.mtime_ns.is_some())
    );
    assert_eq!(
        quick_check(&store, std::slice::from_ref(&id), 2)[0].state,
        HealthState::Healthy
    );

    let dir = store.model_dir(&id);
    let shard = dir.join("model-00002-of-00002.safetensors");
    let orig = std::fs::read(&shard).unwrap();

    // One flipped byte in the data.
    let mut b = orig.clone();
    let last = b.len() - 1;
    b[last] ^= 1;
    std::fs::write(&shard, &b).unwrap();
    let h = full(&store, &id);
    assert_eq!(h.state, HealthState::Corrupted);
    assert!(h.reason.contains("sha256 mismatch"), "{}", h.reason);
    assert_eq!(
        store.read_metadata(&id).unwrap().unwrap().verification,
        VerificationState::Failed
    );
    // The quick check remembers the failed verification.
    assert_eq!(
        quick_check(&store, std::slice::from_ref(&id), 1)[0].state,
        HealthState::Corrupted
    );

    // Truncated.
    std::fs::write(&shard, &orig[..orig.len() - 10]).unwrap();
    let h = full(&store, &id);
    assert_eq!(h.state, HealthState::Corrupted);
    assert!(h.reason.contains("truncated"), "{}", h.reason);

    // Damaged header.
    let mut b = orig.clone();
    b[9] = b'!';
    std::fs::write(&shard, &b).unwrap();
    let h = full(&store, &id);
    assert_eq!(h.state, HealthState::Corrupted);
    assert!(h.reason.contains("safetensors header"), "{}", h.reason);

    // Deleted: incomplete, and the index names a missing shard.
    std::fs::remove_file(&shard).unwrap();
    let h = full(&store, &id);
    assert_eq!(h.state, HealthState::Incomplete);
    assert!(
        h.issues
            .iter()
            .any(|i| i.problem == FileProblem::MissingShard)
    );
    assert_eq!(
        h.files_to_download(),
        vec!["model-00002-of-00002.safetensors"]
    );

    // Restored: healthy again; a stray file degrades it.
    std::fs::write(&shard, &orig).unwrap();
    std::fs::write(dir.join("notes.txt"), "hi").unwrap();
    let h = full(&store, &id);
    assert_eq!(h.state, HealthState::Degraded, "{h:?}");
    assert_eq!(h.stray_files(), vec!["notes.txt"]);
    assert_eq!(
        store.read_metadata(&id).unwrap().unwrap().verification,
        VerificationState::LocalOnly
    );
}

#[test]
fn a_model_being_downloaded_is_not_judged() {
    let (_d, store, id) = store_with_model();
    std::fs::remove_file(store.model_dir(&id).join("config.json")).unwrap();
    let lock_path = store.lock_path(&id);
    std::fs::create_dir_all(lock_path.parent().unwrap()).unwrap();
    let lock = std::fs::File::create(&lock_path).unwrap();
    lock.lock().unwrap();
    let h = full(&store, &id);
    assert_eq!(h.state, HealthState::Unknown);
    assert!(h.reason.contains("download"), "{}", h.reason);
    assert_ne!(
        store.read_metadata(&id).unwrap().unwrap().verification,
        VerificationState::Failed
    );
    drop(lock);
    assert_eq!(full(&store, &id).state, HealthState::Incomplete);
}

#[test]
fn missing_folder_no_metadata_bad_json() {
    let (d, store, id) = store_with_model();
    std::fs::write(store.model_dir(&id).join("config.json"), "{oops").unwrap();
    let h = full(&store, &id);
    assert_eq!(h.state, HealthState::Corrupted);
    std::fs::remove_dir_all(store.model_dir(&id)).unwrap();
    assert_eq!(full(&store, &id).state, HealthState::Missing);
    let other = RepoId::parse("x/nometa").unwrap();
    std::fs::create_dir_all(store.model_dir(&other)).unwrap();
    std::fs::write(store.model_dir(&other).join("a.bin"), "x").unwrap();
    assert_eq!(full(&store, &other).state, HealthState::Unknown);
    drop(d);
}
