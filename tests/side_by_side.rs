//! Side-by-side migration (the guide's Path 2, `storage.shared_storage: true`) through the real binary and the test
//! hub: the legacy system keeps running on its models directory; ema records every model where it lies in a store of
//! its own, repairs into that store, finishes a killed run, and rolls back only its own side.

mod support;

use std::path::Path;
use std::process::Stdio;
use std::time::Duration;

use ema::engine::legacy::sample::legacy_install;
use ema::server::faults::Fault;
use serde_json::Value;

use support::cli::words;
use support::data::{find_in, snapshot, strs_in};
use support::legacy::{Operator, pristine_hub, s};
use support::wait::wait_for;

/// Side by side (`storage.shared_storage: true`): the legacy system keeps running on its models directory. ema records
/// every model where it lies (links in its own store), catches the damaged file, repairs it into its own store, and
/// a rollback undoes ema's side only — the legacy install, which kept changing meanwhile, is left exactly as it is.
#[test]
fn side_by_side_records_the_models_where_they_lie_and_its_rollback_touches_nothing_of_the_legacy_system()
 {
    let t = tempfile::tempdir().unwrap();
    let hub = pristine_hub(t.path());
    let op = Operator::with_hub(t.path(), &hub);
    let root = t.path().join("app");
    legacy_install(&root, true);
    let store = t.path().join("ema/models");
    let cfg = t.path().join("ema/config.json");
    std::fs::create_dir_all(cfg.parent().unwrap()).unwrap();
    let doc = serde_json::json!({"storage": {"models_directory": store, "shared_storage": true}});
    std::fs::write(&cfg, doc.to_string()).unwrap();
    let ema = |args: &[&str]| {
        let mut a = vec!["--config", s(&cfg)];
        a.extend_from_slice(args);
        op.ema(&root, &a)
    };
    let before = snapshot(&root);

    // backup: the legacy paths marked shared, ema's store and configuration its own.
    let bk = t.path().join("backups/pre-side-by-side");
    let r = ema(&["backup", "--dest", s(&bk), "--json"]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    let j = r.json();
    for src in j["sources"].as_array().unwrap() {
        let ours =
            ["ema_store", "enhanced_model_config.json"].contains(&src["name"].as_str().unwrap());
        assert_eq!(src["shared"].as_bool().unwrap_or(false), !ours, "{src}");
    }
    assert_eq!(strs_in(&j["sources"], "name").len(), 7, "{j}");

    // migrate-models: every model linked where it lies; the flipped byte caught; nothing of the legacy install changed.
    hub.plan.clear_log();
    let r = ema(&words(
        "migrate-models --models-dir models --verify-integrity --json",
    ));
    assert_eq!(r.code, 3, "{}\n{}", r.stdout, r.stderr);
    let j = r.json();
    assert_eq!(j["store"], serde_json::json!(store.canonicalize().unwrap()));
    assert_eq!(
        find_in(&j["models"], "repo_id", "acme/local-gpt")["verification"],
        "failed"
    );
    for m in j["models"].as_array().unwrap() {
        assert_eq!(m["moved"], 0, "{m}");
        assert_eq!(m["cloned"], 0, "{m}");
        assert!(m["linked"].as_u64().unwrap() > 0, "{m}");
    }
    assert!(
        hub.plan
            .requests()
            .iter()
            .all(|q| q.path.starts_with("/api/models/"))
    );
    assert_eq!(
        snapshot(&root),
        before,
        "side by side, the legacy install is not changed"
    );
    let link = store.join("acme--cached/sub/config.json");
    assert!(
        std::fs::symlink_metadata(&link)
            .unwrap()
            .file_type()
            .is_symlink()
    );
    assert!(
        std::fs::read_link(&link)
            .unwrap()
            .starts_with(root.canonicalize().unwrap())
    );
    let side: Value =
        serde_json::from_slice(&std::fs::read(store.join("acme--cached.metadata.json")).unwrap())
            .unwrap();
    assert_eq!(
        side["legacy_location"],
        serde_json::json!(
            root.canonicalize()
                .unwrap()
                .join("models/models--acme--cached")
        )
    );
    // Re-running does nothing new.
    let r = ema(&words("migrate-models --models-dir models --json"));
    assert!(
        r.json()["models"]
            .as_array()
            .unwrap()
            .iter()
            .all(|m| m["result"] == "already_adopted")
    );

    // verify-migration (side by side from the configuration): the damaged model named.
    let r = ema(&words("verify-migration --models-dir models"));
    assert_eq!(r.code, 3, "{}\n{}", r.stdout, r.stderr);
    assert!(r.stdout.contains("model.safetensors"), "{}", r.stdout);

    // repair: the good copy goes into ema's store; the legacy file is left as it is.
    let r = ema(&[
        "verify-all-models",
        "--models-dir",
        s(&store),
        "--repair-corrupted",
    ]);
    assert_eq!(r.code, 0, "{}\n{}", r.stdout, r.stderr);
    assert!(
        std::fs::symlink_metadata(store.join("acme--local-gpt/model.safetensors"))
            .unwrap()
            .is_file()
    );
    assert_eq!(
        snapshot(&root),
        before,
        "the repair wrote nothing of the legacy system's"
    );
    let r = ema(&words("verify-migration --models-dir models"));
    assert_eq!(r.code, 0, "{}\n{}", r.stdout, r.stderr);

    // The legacy system keeps working meanwhile; the rollback undoes ema's side and leaves the legacy install as it is.
    std::fs::create_dir(root.join("models/newer")).unwrap();
    std::fs::write(root.join("models/newer/config.json"), b"{}").unwrap();
    let running = snapshot(&root);
    let r = ema(&[
        "rollback",
        "--backup-dir",
        s(&bk),
        "--verify-rollback",
        "--json",
    ]);
    assert_eq!(r.code, 0, "{}\n{}", r.stdout, r.stderr);
    let j = r.json();
    assert_eq!(j["verify"], serde_json::json!([]));
    assert_eq!(j["untouched"].as_array().unwrap().len(), 5, "{j}");
    assert_eq!(
        snapshot(&root),
        running,
        "a side-by-side rollback touches nothing of the legacy system's"
    );
    assert_eq!(
        std::fs::read_dir(&store).unwrap().count(),
        0,
        "ema's store is back to empty"
    );

    // ema's store may not be the legacy directory.
    let r = op.ema(
        &root,
        &words("migrate-models --models-dir models --store models"),
    );
    assert_eq!(r.code, 2, "{}\n{}", r.stdout, r.stderr);
    assert!(
        r.stderr.contains("apart from the legacy models directory"),
        "{}",
        r.stderr
    );
    assert_eq!(snapshot(&root), running);
}

/// A side-by-side `migrate-models` killed after it linked the hub cache's files but before its sidecar (its hub
/// listing trickles in) is finished by the next run: the model reported as resumed, every model recorded, the legacy
/// install untouched throughout.
#[test]
fn a_side_by_side_migrate_models_killed_midway_is_finished_by_the_next_run() {
    let t = tempfile::tempdir().unwrap();
    let hub = pristine_hub(t.path());
    let op = Operator::with_hub(t.path(), &hub);
    let root = t.path().join("app");
    legacy_install(&root, false);
    let store = t.path().join("ema/models");
    let before = snapshot(&root);
    let args = [
        "migrate-models",
        "--models-dir",
        "models",
        "--store",
        s(&store),
        "--verify-integrity",
        "--json",
    ];
    hub.plan
        .add("/api/models/acme/cached/tree", Some(1), Fault::Trickle(100));
    let mut child = op
        .cmd(&root, &args)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let journal = store.join(".ema/migration/journal.jsonl");
    let read = |p: &Path| std::fs::read_to_string(p).unwrap_or_default();
    assert!(
        wait_for(20, || read(&journal).contains("\"model\":\"acme/cached\"")),
        "the hub cache's intent was never written"
    );
    std::thread::sleep(Duration::from_millis(200));
    child.kill().unwrap(); // SIGKILL
    child.wait().unwrap();
    assert!(
        !store.join("acme--cached.metadata.json").exists(),
        "killed before the hub cache's sidecar"
    );
    assert_eq!(snapshot(&root), before);

    hub.plan.clear();
    let r = op.ema(&root, &args);
    assert_eq!(r.code, 0, "{}\n{}", r.stdout, r.stderr);
    let j = r.json();
    assert_eq!(
        find_in(&j["models"], "repo_id", "acme/cached")["result"],
        "resumed",
        "{j}"
    );
    assert_eq!(j["models"].as_array().unwrap().len(), 5, "{j}");
    for m in j["models"].as_array().unwrap() {
        let side: Value = serde_json::from_slice(
            &std::fs::read(store.join(format!(
                "{}.metadata.json",
                m["repo_id"].as_str().unwrap().replace('/', "--")
            )))
            .unwrap(),
        )
        .unwrap();
        assert_ne!(side["verification"], "failed", "{side}");
        assert!(side["legacy_location"].is_string(), "{side}");
    }
    let r = op.ema(
        &root,
        &[
            "verify-migration",
            "--models-dir",
            "models",
            "--store",
            s(&store),
        ],
    );
    assert_eq!(r.code, 0, "{}\n{}", r.stdout, r.stderr);
    assert_eq!(snapshot(&root), before, "the legacy install is untouched");
}
