//! Surveying the fixture's legacy models directory: every layout recognised, every model identified with its
//! source, hashes taken from the layout, partial downloads and bookkeeping left out.

use std::collections::BTreeMap;

use super::fixture::{COMMIT_LOCAL, COMMIT_MAIN, legacy_models_dir};
use super::*;

#[test]
fn every_layout_is_recognised_and_identified() {
    let t = tempfile::tempdir().unwrap();
    legacy_models_dir(t.path());
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
    legacy_models_dir(t.path());
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
