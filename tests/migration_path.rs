//! The whole migration path of issue 12 on a realistic legacy install, through the real binary and the test hub:
//! check-system → backup → migrate-config → migrate-models (no file bytes served) → verify-migration (the damaged
//! file named) → repair → verify-migration → rollback, and the install compared entry by entry with its state before
//! the backup. Also: a migrate-models killed midway and re-run, a symlinked models directory, a legacy
//! `models_directory` outside the install, and bad input refused with nothing changed.

mod support;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use ema::engine::legacy::sample::legacy_install;
use ema::server::faults::Fault;
use serde_json::Value;

use support::cli::words;
use support::data::{count_in, edit_manifest_entry, find_in, snapshot, strs_in};
use support::legacy::{HUB_ONLY, Operator, pristine_hub, s};
use support::wait::wait_for;

/// A temp dir, an offline operator at home there, and a legacy install at `<t>/app`.
fn offline_install() -> (tempfile::TempDir, Operator, PathBuf) {
    let t = tempfile::tempdir().unwrap();
    let op = Operator::offline(t.path());
    let root = t.path().join("app");
    legacy_install(&root, false);
    (t, op, root)
}

/// A store as content: every entry outside `.ema/migration/` with its type and bytes; sidecars as JSON with their
/// times left out (two runs on two copies of an install differ only in when they ran).
fn store_content(models: &Path) -> BTreeMap<String, String> {
    fn strip_times(v: &mut Value) {
        match v {
            Value::Object(m) => {
                for k in [
                    "created_at",
                    "updated_at",
                    "verified_at",
                    "last_verified_at",
                    "mtime_ns",
                ] {
                    m.remove(k);
                }
                m.values_mut().for_each(strip_times);
            }
            Value::Array(a) => a.iter_mut().for_each(strip_times),
            _ => {}
        }
    }
    snapshot(models)
        .into_iter()
        .filter(|(p, _)| !p.starts_with("/.ema/migration"))
        .map(|(p, v)| {
            let full = models.join(p.trim_start_matches('/'));
            let v = if p.ends_with(".metadata.json") {
                let mut j: Value = serde_json::from_slice(&std::fs::read(&full).unwrap()).unwrap();
                strip_times(&mut j);
                j.to_string()
            } else {
                // Type, size and hash; not the mode or mtime of a fresh copy of the install.
                let w: Vec<&str> = v.split(' ').collect();
                match w[0] {
                    "file" => format!("file {} {}", w[2], w[3]),
                    "dir" => "dir".into(),
                    _ => v,
                }
            };
            (p, v)
        })
        .collect()
}

#[test]
fn the_whole_path_migrates_without_downloading_repairs_the_damage_and_rolls_back_entry_by_entry() {
    let t = tempfile::tempdir().unwrap();
    let hub = pristine_hub(t.path());
    let op = Operator::with_hub(t.path(), &hub);
    let root = t.path().join("app");
    legacy_install(&root, true);
    let before = snapshot(&root);
    let models = root.join("models");

    // check-system: the hub line is a real request to the test hub, and passes.
    let r = op.ema(&root, &["check-system", "--models-dir", "models", "--json"]);
    let j = r.json();
    let hub_line = find_in(&j["checks"], "name", "hub");
    assert_eq!(hub_line["status"], "pass", "{hub_line}");
    assert!(
        hub_line["figure"]
            .as_str()
            .unwrap()
            .contains(&hub.endpoint())
    );
    assert_eq!(r.code, if j["overall"] == "fail" { 1 } else { 0 }, "{j}");

    // backup: the spec's list, with a manifest.
    let bk = t.path().join("backups/pre-migration");
    let r = op.ema(
        &root,
        &["backup", "--root", ".", "--dest", s(&bk), "--json"],
    );
    assert_eq!(r.code, 0, "{}", r.stderr);
    let report = r.json();
    let names = strs_in(&report["sources"], "name");
    assert_eq!(
        names,
        ["models", "config", "config.json", "logs", "models.db"]
    );
    assert!(bk.join("manifest.json").is_file());
    assert_eq!(snapshot(&root), before, "a backup changes nothing");

    // migrate-config: the legacy config.json becomes config/enhanced_model_config.json.
    let r = op.ema(
        &root,
        &words("migrate-config --source config.json --target config/enhanced_model_config.json --backup"),
    );
    assert_eq!(r.code, 0, "{}\n{}", r.stdout, r.stderr);
    let cfg: Value = serde_json::from_slice(
        &std::fs::read(root.join("config/enhanced_model_config.json")).unwrap(),
    )
    .unwrap();
    assert_eq!(cfg["storage"]["models_directory"], "models");
    assert_eq!(cfg["downloads"]["max_retries"], 3);
    assert_eq!(
        cfg["migration"]["unmapped_legacy_settings"]["legacy_ui_theme"],
        "dark"
    );

    // migrate-models: adopted in place; the flipped byte caught; the hub asked for listings only.
    hub.plan.clear_log();
    let r = op.ema(
        &root,
        &words("migrate-models --models-dir models --verify-integrity --create-metadata --json"),
    );
    assert_eq!(r.code, 3, "{}\n{}", r.stdout, r.stderr);
    let j = r.json();
    let gpt = find_in(&j["models"], "repo_id", "acme/local-gpt");
    assert_eq!(gpt["verification"], "failed");
    assert_eq!(gpt["mismatches"][0]["path"], "model.safetensors");
    let cached = find_in(&j["models"], "repo_id", "acme/cached");
    assert_eq!(cached["verification"], "verified");
    assert_eq!(cached["hashes_from"], "hub");
    assert_eq!(cached["hub_files_missing"], serde_json::json!([HUB_ONLY]));
    for id in ["acme/plain-bert", "acme/old-bert", "mystery"] {
        assert_eq!(
            find_in(&j["models"], "repo_id", id)["verification"],
            "verified",
            "{id}"
        );
    }
    let log = hub.plan.requests();
    assert!(!log.is_empty(), "the hub was asked for its listings");
    for q in &log {
        assert!(
            q.path.starts_with("/api/models/") && !q.path.contains("/resolve/"),
            "only API calls, no file bytes: {q:?}"
        );
    }
    assert!(
        !log.iter().any(|q| q.path.contains(HUB_ONLY)),
        "the file the hub lists but the install lacks is reported, not fetched"
    );
    assert!(models.join("acme--local-gpt/model.safetensors").is_file());
    assert!(models.join("acme--cached/sub/config.json").is_file());
    assert!(!models.join("acme--cached").join(HUB_ONLY).exists());

    // verify-migration: exit 3 naming the damaged file.
    let r = op.ema(
        &root,
        &["verify-migration", "--models-dir", "models", "--json"],
    );
    assert_eq!(r.code, 3, "{}\n{}", r.stdout, r.stderr);
    let j = r.json();
    let bad: Vec<&Value> = j["models"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|m| m["state"] != "healthy")
        .collect();
    assert_eq!(bad.len(), 1, "{j}");
    assert_eq!(bad[0]["model_id"], "acme/local-gpt");
    assert!(bad[0].to_string().contains("model.safetensors"), "{j}");
    let r = op.ema(&root, &["verify-migration", "--models-dir", "models"]);
    assert_eq!(r.code, 3);
    assert!(r.stdout.contains("model.safetensors"), "{}", r.stdout);

    // repair: only the damaged file comes from the hub.
    hub.plan.clear_log();
    let r = op.ema(
        &root,
        &words("verify-all-models --models-dir models --repair-corrupted"),
    );
    assert_eq!(r.code, 0, "{}\n{}", r.stdout, r.stderr);
    let fetched: Vec<String> = hub
        .plan
        .requests()
        .into_iter()
        .filter(|q| q.body_bytes > 0 && !q.path.starts_with("/api/"))
        .map(|q| q.path)
        .collect();
    assert!(
        fetched
            .iter()
            .all(|p| p.contains("acme/local-gpt") && p.ends_with("model.safetensors")),
        "{fetched:?}"
    );
    let r = op.ema(&root, &["verify-migration", "--models-dir", "models"]);
    assert_eq!(r.code, 0, "{}\n{}", r.stdout, r.stderr);
    assert!(
        r.stdout.contains("the migration is complete"),
        "{}",
        r.stdout
    );

    // rollback: the install exactly as it was before the backup, entry by entry.
    op.rollback_verified(&root, &bk);
    assert_eq!(snapshot(&root), before);
}

/// The journal of migrate-models under `models`.
fn journal(models: &Path) -> String {
    std::fs::read_to_string(models.join(".ema/migration/journal.jsonl")).unwrap_or_default()
}

fn intents_open(journal: &str) -> usize {
    let count = |phase: &str| {
        journal
            .lines()
            .filter(|l| l.contains(&format!("\"phase\":\"{phase}\"")))
            .count()
    };
    count("intent").saturating_sub(count("done"))
}

#[test]
fn a_migrate_models_killed_midway_is_finished_by_the_next_run_with_the_same_store() {
    let t = tempfile::tempdir().unwrap();
    let hub = pristine_hub(t.path());
    let op = Operator::with_hub(t.path(), &hub);
    let args = |models: &Path| {
        vec![
            "migrate-models".to_string(),
            "--models-dir".into(),
            s(models).into(),
            "--verify-integrity".into(),
            "--json".into(),
        ]
    };
    // The store an uninterrupted run makes.
    let reference = t.path().join("reference");
    legacy_install(&reference, false);
    let a = args(&reference.join("models"));
    let r = op.ema(t.path(), &a.iter().map(String::as_str).collect::<Vec<_>>());
    assert_eq!(r.code, 0, "{}\n{}", r.stdout, r.stderr);
    let reference_report = r.json();
    let want = store_content(&reference.join("models"));

    // Kills at several moments; the first after the hub cache's intent while its listing trickles in (so the kill
    // surely lands between intent and done), the others after plain delays.
    let mut midway = 0;
    for (i, delay_ms) in [
        None,
        Some(0u64),
        Some(3),
        Some(6),
        Some(10),
        Some(15),
        Some(20),
        Some(30),
        Some(45),
    ]
    .into_iter()
    .enumerate()
    {
        let root = t.path().join(format!("run{i}"));
        legacy_install(&root, false);
        let models = root.join("models");
        hub.plan.clear();
        if delay_ms.is_none() {
            hub.plan
                .add("/api/models/acme/cached/tree", Some(1), Fault::Trickle(100));
        }
        let a = args(&models);
        let mut child = op
            .cmd(t.path(), &a.iter().map(String::as_str).collect::<Vec<_>>())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        match delay_ms {
            None => assert!(
                wait_for(20, || journal(&models)
                    .contains("\"model\":\"acme/cached\"")),
                "the hub cache's intent was never written"
            ),
            Some(ms) => std::thread::sleep(Duration::from_millis(ms)),
        }
        child.kill().unwrap(); // SIGKILL
        let status = child.wait().unwrap();
        let open = intents_open(&journal(&models));
        eprintln!(
            "run {i}: killed after {delay_ms:?} ms: {status}, {open} model(s) between intent and done"
        );
        if status.code().is_none() && open > 0 {
            midway += 1;
        }
        if delay_ms.is_none() {
            assert_eq!(open, 1, "killed between the intent and the done record");
        }
        hub.plan.clear();
        let r = op.ema(t.path(), &a.iter().map(String::as_str).collect::<Vec<_>>());
        assert_eq!(r.code, 0, "run {i}: {}\n{}", r.stdout, r.stderr);
        if open > 0 {
            let j = r.json();
            let resumed = count_in(&j["models"], "result", "resumed");
            assert_eq!(resumed, open, "run {i}: {j}");
            // A resumed model is reported once, as resumed, with how it was identified.
            for m in j["models"]
                .as_array()
                .unwrap()
                .iter()
                .filter(|m| m["result"] == "resumed")
            {
                let id = m["repo_id"].as_str().unwrap();
                let first = find_in(&reference_report["models"], "repo_id", id);
                assert_eq!(
                    m["id_source"], first["id_source"],
                    "run {i}: how it was identified is kept"
                );
                assert_eq!(m["layout"], first["layout"], "run {i}");
            }
        }
        assert_eq!(intents_open(&journal(&models)), 0);
        assert_eq!(
            store_content(&models),
            want,
            "run {i} (kill after {delay_ms:?} ms)"
        );
        let r = op.ema(t.path(), &["verify-migration", "--models-dir", s(&models)]);
        assert_eq!(r.code, 0, "run {i}: {}\n{}", r.stdout, r.stderr);
    }
    assert!(midway >= 1, "no run was killed midway");
}

/// Back up `root`, migrate the models directory `models_arg` (as given, relative to `root`), check it, roll back:
/// every tree in `trees` must end exactly as it began. Returns the backup's JSON report.
fn migrate_and_roll_back(op: &Operator, root: &Path, models_arg: &str, trees: &[&Path]) -> Value {
    let before: Vec<_> = trees.iter().map(|t| snapshot(t)).collect();
    let bk = op.home.join("backups/b");
    let r = op.ema(root, &["backup", "--root", ".", "--dest", s(&bk), "--json"]);
    assert_eq!(r.code, 0, "{}\n{}", r.stdout, r.stderr);
    let report = r.json();
    let r = op.ema(
        root,
        &["migrate-models", "--models-dir", models_arg, "--json"],
    );
    assert_eq!(r.code, 0, "{}\n{}", r.stdout, r.stderr);
    let adopted = count_in(&r.json()["models"], "result", "adopted");
    assert_eq!(adopted, 5, "{}", r.stdout);
    let r = op.ema(root, &["verify-migration", "--models-dir", models_arg]);
    assert_eq!(r.code, 0, "{}\n{}", r.stdout, r.stderr);
    assert_ne!(
        trees.iter().map(|t| snapshot(t)).collect::<Vec<_>>(),
        before,
        "the migration changed the trees"
    );
    op.rollback_verified(root, &bk);
    for (t, b) in trees.iter().zip(&before) {
        assert_eq!(&snapshot(t), b, "{} as it was", t.display());
    }
    report
}

#[test]
fn a_models_directory_that_is_a_symlink_is_adopted_where_its_data_lives_and_rolled_back() {
    let (t, op, root) = offline_install();
    let data = t.path().join("data");
    std::fs::create_dir(&data).unwrap();
    std::fs::rename(root.join("models"), data.join("models")).unwrap();
    std::os::unix::fs::symlink("../data/models", root.join("models")).unwrap();
    let report = migrate_and_roll_back(&op, &root, "models", &[&root, &data]);
    let m = find_in(&report["sources"], "name", "models");
    assert_eq!(
        m["original"],
        s(&data.join("models").canonicalize().unwrap())
    );
    assert_eq!(
        std::fs::read_link(root.join("models")).unwrap(),
        Path::new("../data/models"),
        "the link itself is untouched"
    );
}

#[test]
fn a_legacy_models_directory_outside_the_install_is_backed_up_as_a_second_source_and_rolled_back() {
    let (t, op, root) = offline_install();
    // The models the legacy config names live on another disk; `models/` in the install is another, older set.
    let shared = t.path().join("shared");
    legacy_install(&shared, false);
    let elsewhere = shared.join("models");
    let mut cfg: Value =
        serde_json::from_slice(&std::fs::read(root.join("config.json")).unwrap()).unwrap();
    cfg["models_directory"] = Value::from(s(&elsewhere));
    std::fs::write(root.join("config.json"), cfg.to_string()).unwrap();
    let report = migrate_and_roll_back(&op, &root, s(&elsewhere), &[&root, &elsewhere]);
    let names = strs_in(&report["sources"], "name");
    assert_eq!(
        names,
        [
            "models",
            "models_directory",
            "config",
            "config.json",
            "logs",
            "models.db"
        ]
    );
    assert_eq!(
        find_in(&report["sources"], "name", "models_directory")["original"],
        s(&elsewhere.canonicalize().unwrap())
    );
}

#[test]
fn bad_input_is_refused_with_a_clear_error_and_nothing_changes() {
    let (t, op, root) = offline_install();
    let bk = t.path().join("bk");
    let r = op.ema(&root, &["backup", "--root", ".", "--dest", s(&bk)]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    let r = op.ema(&root, &["migrate-models", "--models-dir", "models"]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    let install = snapshot(&root);
    let backup = snapshot(&bk);
    let unchanged = |what: &str| {
        assert_eq!(snapshot(&root), install, "{what}: the install is unchanged");
    };

    // A backup directory that is not one.
    let r = op.ema(&root, &["rollback", "--backup-dir", s(&root.join("logs"))]);
    assert_eq!(r.code, 2, "{}", r.stderr);
    assert!(r.stderr.contains("is not an ema backup"), "{}", r.stderr);
    unchanged("not a backup");
    let r = op.ema(
        &root,
        &["rollback", "--backup-dir", s(&t.path().join("nope"))],
    );
    assert_eq!(r.code, 2, "{}", r.stderr);
    assert!(r.stderr.contains("nope"), "{}", r.stderr);
    unchanged("no such backup");

    // A backup destination that is already something else: refused before anything is written.
    let r = op.ema(&root, &["backup", "--root", ".", "--dest", s(&bk)]);
    assert_eq!(r.code, 2, "{}", r.stderr);
    assert!(r.stderr.contains("not empty"), "{}", r.stderr);
    let a_file = t.path().join("a-file");
    std::fs::write(&a_file, b"not a directory").unwrap();
    let r = op.ema(&root, &["backup", "--root", ".", "--dest", s(&a_file)]);
    assert_eq!(r.code, 2, "{}", r.stderr);
    assert!(r.stderr.contains("is a file"), "{}", r.stderr);
    assert_eq!(snapshot(&bk), backup, "the backup is untouched");
    unchanged("a bad --dest");

    // A manifest edited by hand: one file's hash changed.
    let mp = bk.join("manifest.json");
    let text = edit_manifest_entry(
        &mp,
        |e| e["kind"] == "file" && e["path"] == "models.db",
        |e| e["sha256"] = Value::from("0".repeat(64)),
    );
    for extra in [&[][..], &["--dry-run"][..]] {
        let mut args = vec!["rollback", "--backup-dir", s(&bk), "--verify-rollback"];
        args.extend_from_slice(extra);
        let r = op.ema(&root, &args);
        assert_eq!(r.code, 2, "{}", r.stderr);
        let err = &r.stderr;
        assert!(err.contains("does not match its manifest"), "{err}");
        assert!(err.contains("models.db"), "names the entry: {err}");
        unchanged("an edited manifest");
    }
    std::fs::write(&mp, &text).unwrap();
    assert_eq!(snapshot(&bk).len(), backup.len());

    // A models directory that does not exist.
    for cmd in ["migrate-models", "verify-migration"] {
        let r = op.ema(&root, &[cmd, "--models-dir", "no-such-models"]);
        assert_eq!(r.code, 5, "{cmd}: {}", r.stderr);
        assert!(
            r.stderr.contains("no-such-models") && r.stderr.contains("does not exist"),
            "{cmd}: {}",
            r.stderr
        );
        unchanged(cmd);
    }
    assert!(!root.join("no-such-models").exists());

    // A --map line with a malformed repo id: nothing is adopted, even what the map does not name.
    let fresh = t.path().join("fresh");
    legacy_install(&fresh, false);
    let fresh_before = snapshot(&fresh);
    let map = t.path().join("map.txt");
    // migrate-models with the map holding `lines`: refused with exit 2; its stderr.
    let refused_with_map = |lines: &str| {
        std::fs::write(&map, lines).unwrap();
        let r = op.ema(
            &fresh,
            &["migrate-models", "--models-dir", "models", "--map", s(&map)],
        );
        assert_eq!(r.code, 2, "{}", r.stderr);
        r.stderr
    };
    let err = refused_with_map("# folder repo_id\nmystery acme/ok\nplain-bert acme//bad id\n");
    let at = |line: u32| format!("{}:{line}", map.display());
    assert!(err.contains(&at(3)), "names file and line: {err}");
    let err = refused_with_map("mystery acme/bad..name\n");
    assert!(err.contains(&at(1)), "{err}");
    assert!(err.contains("folder repo_id"), "says the fix: {err}");
    assert_eq!(
        snapshot(&fresh),
        fresh_before,
        "the map's error changed nothing"
    );
    unchanged("a bad map");
}
