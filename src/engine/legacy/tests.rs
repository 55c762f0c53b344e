//! Surveying the fixture's legacy models directory: every layout recognised, every model identified with its
//! source, hashes taken from the layout, partial downloads and bookkeeping left out.

use std::collections::BTreeMap;

use super::adopt::AdoptOptions;
use super::sample::{COMMIT_LOCAL, COMMIT_MAIN, legacy_models_dir};
use super::*;

#[test]
fn every_layout_is_recognised_and_identified() {
    let t = tempfile::tempdir().unwrap();
    legacy_models_dir(t.path(), true);
    let s = survey(t.path(), &BTreeMap::new()).unwrap();
    let rows: Vec<_> = s
        .models
        .iter()
        .map(|m| (m.repo_id.as_str(), m.layout, m.id_source))
        .collect();
    assert_eq!(
        rows,
        vec![
            (
                "acme/local-gpt",
                Layout::LocalDir,
                IdSource::ConfigNameOrPath
            ),
            ("acme/cached", Layout::HubCache, IdSource::HubCacheName),
            ("mystery", Layout::Plain, IdSource::LocalOnly),
            ("acme/plain-bert", Layout::Plain, IdSource::ConfigNameOrPath),
            (
                "acme/old-bert",
                Layout::TransformersCache,
                IdSource::TransformersUrl
            ),
        ]
    );
    assert!(s.unrecognised.is_empty(), "{:?}", s.unrecognised);
    for m in &s.models {
        assert_eq!(m.action, Action::Adopt, "{}", m.repo_id);
    }
    let by = |id: &str| s.models.iter().find(|m| m.repo_id.as_str() == id).unwrap();

    // Hub cache: the snapshot refs/main names, files resolved to blobs, hashes from blob names.
    let c = by("acme/cached");
    assert_eq!(c.commit.as_deref(), Some(COMMIT_MAIN));
    let paths: Vec<_> = c.files.iter().map(|f| f.path.as_str()).collect();
    assert_eq!(paths, vec!["model.safetensors", "sub/config.json"]);
    assert!(c.files[0].shared, "the weights blob serves both snapshots");
    assert!(!c.files[1].shared);
    assert!(c.files[0].expected_sha256.is_some() && c.files[1].expected_git_sha1.is_some());
    assert!(
        c.notes.iter().any(|n| n.contains("partial download")),
        "{:?}",
        c.notes
    );
    assert!(
        c.notes.iter().any(|n| n.contains("1 other snapshot")),
        "{:?}",
        c.notes
    );

    // local-dir: commit and etags from the records; bookkeeping neither a file nor lost.
    let l = by("acme/local-gpt");
    assert_eq!(l.commit.as_deref(), Some(COMMIT_LOCAL));
    assert_eq!(l.files.len(), 2);
    assert!(
        l.files
            .iter()
            .all(|f| f.expected_sha256.is_some() || f.expected_git_sha1.is_some())
    );
    assert_eq!(l.leftovers, vec![l.location.join(".cache/huggingface")]);

    // transformers cache: files named by the URL, etags unquoted, sidecars and locks kept aside.
    let o = by("acme/old-bert");
    let paths: Vec<_> = o.files.iter().map(|f| f.path.as_str()).collect();
    assert_eq!(paths, vec!["config.json", "pytorch_model.bin"]);
    assert_eq!(o.leftovers.len(), 4);
    assert!(o.commit.is_none(), "`main` is no commit");
}

#[test]
fn the_map_wins_and_conflicts_are_reported_not_resolved() {
    let t = tempfile::tempdir().unwrap();
    legacy_models_dir(t.path(), true);
    let mut map = BTreeMap::new();
    map.insert(
        "mystery".to_string(),
        crate::engine::store::RepoId::parse("acme/mystery").unwrap(),
    );
    // A second copy of acme/plain-bert, already in ema's layout: the plain folder conflicts with it.
    std::fs::create_dir_all(t.path().join("acme--plain-bert")).unwrap();
    std::fs::write(t.path().join("acme--plain-bert/config.json"), b"{}").unwrap();
    let s = survey(t.path(), &map).unwrap();
    let m = s
        .models
        .iter()
        .find(|m| m.location.ends_with("mystery"))
        .unwrap();
    assert_eq!(
        (m.repo_id.as_str(), m.id_source),
        ("acme/mystery", IdSource::Map)
    );
    let p = s
        .models
        .iter()
        .find(|m| m.location.ends_with("plain-bert"))
        .unwrap();
    match &p.action {
        Action::Conflict { reason } => assert!(reason.contains("already"), "{reason}"),
        a => panic!("{a:?}"),
    }
    let e = s
        .models
        .iter()
        .find(|m| m.location.ends_with("acme--plain-bert"))
        .unwrap();
    assert_eq!(e.action, Action::CreateMetadata);
}

#[test]
fn a_missing_models_directory_is_named() {
    let e = survey(
        std::path::Path::new("/nonexistent/models"),
        &BTreeMap::new(),
    )
    .unwrap_err();
    assert_eq!(e.exit_code(), 5);
    assert!(e.to_string().contains("does not exist"), "{e}");
}

fn opts(verify: bool) -> AdoptOptions<'static> {
    AdoptOptions {
        verify_integrity: verify,
        create_metadata: true,
        dry_run: false,
        hub: None,
        threads: 2,
        store: None,
    }
}

/// Every file's bytes by the store path they must end up at, read before adoption.
fn expected_store_bytes(d: &std::path::Path) -> BTreeMap<String, Vec<u8>> {
    let s = survey(d, &BTreeMap::new()).unwrap();
    let mut out = BTreeMap::new();
    for m in &s.models {
        for f in &m.files {
            out.insert(
                format!("{}/{}", m.repo_id.folder_name(), f.path),
                std::fs::read(&f.source).unwrap(),
            );
        }
    }
    out
}

#[test]
fn adoption_moves_every_layout_into_the_store_and_catches_the_flipped_byte() {
    let t = tempfile::tempdir().unwrap();
    let d = t.path();
    legacy_models_dir(d, true);
    let want = expected_store_bytes(d);
    let dry = migrate_models(
        d,
        &BTreeMap::new(),
        &AdoptOptions {
            dry_run: true,
            ..opts(true)
        },
    )
    .unwrap();
    assert!(
        dry.models.iter().all(|m| m.result == "would_adopt"),
        "{:?}",
        dry.models
    );
    assert_eq!(expected_store_bytes(d), want, "a dry run moves nothing");

    let r = migrate_models(d, &BTreeMap::new(), &opts(true)).unwrap();
    let by = |id: &str| r.models.iter().find(|m| m.repo_id == id).unwrap();
    for m in &r.models {
        assert_eq!(m.result, "adopted", "{m:?}");
    }
    // The flipped byte: reported, the model adopted as failed with the expected hash kept for repair.
    let l = by("acme/local-gpt");
    assert_eq!(
        l.verification,
        Some(crate::engine::store::VerificationState::Failed)
    );
    assert_eq!(l.mismatches.len(), 1);
    assert_eq!(l.mismatches[0].path, "model.safetensors");
    assert_eq!(r.mismatches(), 1);
    assert_eq!(
        by("acme/cached").verification,
        Some(crate::engine::store::VerificationState::Verified)
    );
    assert_eq!(by("acme/cached").cloned, 1, "the shared blob is cloned");
    assert_eq!(
        by("mystery").verification,
        Some(crate::engine::store::VerificationState::LocalOnly)
    );
    // Bytes where the store wants them, nothing lost: bookkeeping under .ema/legacy.
    for (rel, bytes) in &want {
        assert_eq!(&std::fs::read(d.join(rel)).unwrap(), bytes, "{rel}");
    }
    let store = crate::engine::store::Store::new(d);
    for id in [
        "acme/cached",
        "acme/local-gpt",
        "acme/old-bert",
        "acme/plain-bert",
        "mystery",
    ] {
        let id = crate::engine::store::RepoId::parse(id).unwrap();
        assert!(store.read_metadata(&id).unwrap().is_some(), "{id}");
    }
    let legacy = d.join(".ema/legacy");
    assert!(legacy.join("models--acme--cached/refs/main").is_file());
    assert!(
        legacy.join("models--acme--cached/blobs").is_dir(),
        "the old snapshot's blobs are kept"
    );
    assert!(
        legacy
            .join("local-gpt/.cache/huggingface/download/model.safetensors.metadata")
            .is_file()
    );
    assert!(
        legacy
            .join("transformers-cache/a1b2c3.d4e5f6.json")
            .is_file()
    );
    assert!(!d.join("transformers-cache").exists() && !d.join("acme--local-gpt/.cache").exists());

    // A second run finds everything adopted and changes nothing.
    let again = migrate_models(d, &BTreeMap::new(), &opts(true)).unwrap();
    assert!(
        again.models.iter().all(|m| m.result == "already_adopted"),
        "{:?}",
        again.models
    );
    assert!(again.unrecognised.is_empty(), "{:?}", again.unrecognised);
}

/// The hub-cache model of the legacy directory `d`, its adoption plan and the (canonical) models directory.
fn hub_cache_plan(d: &std::path::Path) -> (LegacyModel, super::journal::Plan, std::path::PathBuf) {
    let s = survey(d, &BTreeMap::new()).unwrap();
    let m = s
        .models
        .into_iter()
        .find(|m| m.layout == Layout::HubCache)
        .unwrap();
    let plan = super::adopt::plan_for_tests(&s.models_dir, &m);
    (m, plan, s.models_dir)
}

#[test]
fn an_adoption_killed_midway_is_finished_by_the_next_run() {
    let t = tempfile::tempdir().unwrap();
    let d = t.path();
    legacy_models_dir(d, true);
    let want = expected_store_bytes(d);
    // A run that wrote its intent and moved one file of the hub cache before it died.
    let (m, plan, root) = hub_cache_plan(d);
    let _ = super::journal::lock(&root).unwrap();
    super::journal::append(
        &root,
        &super::journal::Record {
            phase: "intent".into(),
            model: m.repo_id.to_string(),
            at: "t".into(),
            plan: Some(plan.clone()),
        },
    )
    .unwrap();
    let first = plan.moves.iter().find(|mv| !mv.clone).unwrap();
    std::fs::create_dir_all(first.to.parent().unwrap()).unwrap();
    std::fs::rename(&first.from, &first.to).unwrap();

    let r = migrate_models(d, &BTreeMap::new(), &opts(false)).unwrap();
    assert_eq!(r.models[0].result, "resumed");
    assert_eq!(r.models[0].repo_id, "acme/cached");
    assert_eq!(
        r.models
            .iter()
            .filter(|m| m.repo_id == "acme/cached")
            .count(),
        1,
        "{:?}",
        r.models
    );
    for (rel, bytes) in &want {
        assert_eq!(&std::fs::read(d.join(rel)).unwrap(), bytes, "{rel}");
    }
    assert!(super::journal::unfinished(&root).unwrap().is_empty());
}

#[test]
fn a_resumed_adoption_removes_the_sidecar_write_the_kill_tore_and_a_torn_journal_line_loses_nothing()
 {
    let t = tempfile::tempdir().unwrap();
    let d = t.path();
    legacy_models_dir(d, false);
    let (m, plan, root) = hub_cache_plan(d);
    let rec = |phase: &str, plan: Option<super::journal::Plan>| super::journal::Record {
        phase: phase.into(),
        model: m.repo_id.to_string(),
        at: "t".into(),
        plan,
    };
    drop(super::journal::lock(&root).unwrap());
    // An earlier record torn mid-append, then the intent of the run that was killed while writing the sidecar.
    let journal = super::journal::migration_dir(&root).join("journal.jsonl");
    std::fs::write(&journal, b"{\"phase\":\"do").unwrap();
    super::journal::append(&root, &rec("intent", Some(plan.clone()))).unwrap();
    assert_eq!(super::journal::unfinished(&root).unwrap().len(), 1);
    let torn = root.join(".acme--cached.metadata.json.Ab12Cd.tmp");
    std::fs::write(&torn, b"{\"schema_ver").unwrap();

    let r = migrate_models(d, &BTreeMap::new(), &opts(false)).unwrap();
    assert_eq!(r.models[0].result, "resumed");
    assert_eq!(r.models[0].id_source, IdSource::HubCacheName);
    assert_eq!(r.models[0].location, m.location);
    assert!(!torn.exists(), "the torn sidecar write is removed");
    assert!(root.join("acme--cached.metadata.json").is_file());
    assert!(super::journal::unfinished(&root).unwrap().is_empty());
}
