//! Backup and rollback on real trees: a backup proves itself, a rollback restores every entry (bytes, types, modes,
//! mtimes, link targets) and removes what was added, the saved state undoes it, and bad backups are refused.

use std::collections::BTreeMap;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use super::tree::{mtime_ns_of, set_mtime};
use super::*;

/// Every entry under `root`: relative path → (type, mode, size, sha256, link target, file mtime).
fn snapshot(root: &Path) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    for f in super::tree::scan(root, ".").unwrap() {
        let md = std::fs::symlink_metadata(&f.abs).unwrap();
        let sha = if f.kind == EntryKind::File {
            crate::engine::integrity::hash::sha256_hex(&std::fs::read(&f.abs).unwrap())
        } else {
            String::new()
        };
        let mtime = if f.kind == EntryKind::File {
            mtime_ns_of(&md).to_string()
        } else {
            String::new()
        };
        out.insert(
            f.rel.clone(),
            format!(
                "{} {:o} {} {} {:?} {}",
                f.kind.as_str(),
                f.mode,
                f.size,
                sha,
                f.target,
                mtime
            ),
        );
    }
    out
}

/// A small legacy install: models with a nested dir, a relative symlink, an odd mode; config.json; logs/; models.db.
fn legacy(root: &Path) {
    let m = root.join("models/org--name/sub");
    std::fs::create_dir_all(&m).unwrap();
    std::fs::write(root.join("models/org--name/config.json"), b"{\"a\":1}").unwrap();
    let big: Vec<u8> = (0..(9u32 << 20)).map(|i| (i % 253) as u8).collect();
    std::fs::write(root.join("models/org--name/model.safetensors"), &big).unwrap();
    std::fs::write(m.join("tok.json"), b"tok").unwrap();
    std::os::unix::fs::symlink("../config.json", m.join("link.json")).unwrap();
    std::fs::set_permissions(m.join("tok.json"), std::fs::Permissions::from_mode(0o600)).unwrap();
    set_mtime(&m.join("tok.json"), 1_600_000_000_000_000_123).unwrap();
    std::fs::write(
        root.join("config.json"),
        b"{\"models_directory\": \"models\"}",
    )
    .unwrap();
    std::fs::create_dir(root.join("logs")).unwrap();
    std::fs::write(root.join("logs/usage.log"), b"line\n").unwrap();
    std::fs::write(root.join("models.db"), b"sqlite").unwrap();
}

fn backup(root: &Path, dest: &Path) -> BackupReport {
    take_backup(
        &BackupRequest {
            root: root.to_path_buf(),
            dest: Some(dest.to_path_buf()),
            backups_dir: dest.parent().unwrap().to_path_buf(),
            extra: vec![],
            side_by_side: false,
        },
        &|_| {},
    )
    .unwrap()
}

fn req(dir: &Path, backups: &Path, verify: bool, dry_run: bool) -> RollbackRequest {
    RollbackRequest {
        backup_dir: dir.to_path_buf(),
        dry_run,
        verify,
        backups_dir: backups.to_path_buf(),
    }
}

#[test]
fn backup_keeps_the_spec_layout_and_proves_itself() {
    let t = tempfile::tempdir().unwrap();
    let root = t.path().join("app");
    legacy(&root);
    let before = snapshot(&root);
    let dest = t.path().join("bk/pre-migration");
    let r = backup(&root, &dest);
    // The spec's manual rollback works on it: DIR/models/, DIR/config.json, DIR/logs/, DIR/models.db.
    for p in [
        "models/org--name/model.safetensors",
        "config.json",
        "logs/usage.log",
        "models.db",
        "system_info.txt",
        "manifest.json",
    ] {
        assert!(dest.join(p).exists(), "{p}");
    }
    assert_eq!(r.totals.files, 6);
    assert_eq!(r.totals.symlinks, 1);
    assert_eq!(
        std::fs::read_link(dest.join("models/org--name/sub/link.json")).unwrap(),
        PathBuf::from("../config.json")
    );
    // The copy keeps modes and mtimes, and the manifest matches it and the original, entry by entry.
    let m = Manifest::load(&dest).unwrap();
    let strict = CompareOpts {
        hash: true,
        mode: true,
        mtime: true,
    };
    assert!(
        compare::compare(&m, &|e| m.stored_path(&dest, e), strict)
            .unwrap()
            .is_empty()
    );
    assert!(verify_restored(&m).unwrap().is_empty());
    assert_eq!(snapshot(&root), before, "taking a backup changes nothing");
    // A second backup into the same directory is refused.
    let e = take_backup(
        &BackupRequest {
            root: root.clone(),
            dest: Some(dest.clone()),
            backups_dir: t.path().into(),
            extra: vec![],
            side_by_side: false,
        },
        &|_| {},
    )
    .unwrap_err();
    assert!(e.to_string().contains("not empty"), "{e}");
}

#[test]
fn rollback_restores_every_entry_and_its_saved_state_undoes_it() {
    let t = tempfile::tempdir().unwrap();
    let root = t.path().join("app");
    legacy(&root);
    let original = snapshot(&root);
    let dest = t.path().join("bk/pre-migration");
    backup(&root, &dest);

    // What a migration (or an accident) does: move, flip a byte, add, change modes, replace a file by a directory.
    let m = root.join("models/org--name");
    std::fs::rename(m.join("config.json"), root.join("models/moved.json")).unwrap();
    let mut w = std::fs::read(m.join("model.safetensors")).unwrap();
    w[5000] ^= 1;
    std::fs::write(m.join("model.safetensors"), &w).unwrap();
    std::fs::write(m.join("extra.bin"), b"new").unwrap();
    std::fs::create_dir_all(root.join("models/new-model/deep")).unwrap();
    std::fs::write(root.join("models/new-model/deep/x"), b"x").unwrap();
    std::fs::set_permissions(m.join("sub"), std::fs::Permissions::from_mode(0o700)).unwrap();
    std::fs::remove_file(root.join("models.db")).unwrap();
    std::fs::create_dir(root.join("models.db")).unwrap();
    std::fs::remove_file(m.join("sub/link.json")).unwrap();
    std::os::unix::fs::symlink("/etc/passwd", m.join("sub/link.json")).unwrap();
    let changed = snapshot(&root);

    let backups = t.path().join("bk");
    let dry = rollback::rollback(&req(&dest, &backups, false, true)).unwrap();
    assert!(dry.saved_state.is_none());
    assert_eq!(snapshot(&root), changed, "a dry run changes nothing");
    let actions: Vec<_> = dry
        .changes
        .iter()
        .map(|c| (c.action, c.path.clone()))
        .collect();
    assert!(actions.contains(&("restore", m.join("config.json"))));
    assert!(actions.contains(&("restore", m.join("model.safetensors"))));
    assert!(actions.contains(&("remove", m.join("extra.bin"))));
    assert!(actions.contains(&("remove", root.join("models/new-model"))));
    assert!(actions.contains(&("restore", root.join("models.db"))));
    assert!(actions.contains(&("restore", m.join("sub/link.json"))));
    assert!(actions.contains(&("metadata", m.join("sub"))));

    let r = rollback::rollback(&req(&dest, &backups, true, false)).unwrap();
    assert_eq!(r.verify.as_deref(), Some(&[][..]), "{:?}", r.verify);
    assert_eq!(snapshot(&root), original, "entry by entry identical");
    // Re-running finds nothing to do.
    let again = rollback::rollback(&req(&dest, &backups, true, false)).unwrap();
    assert!(again.changes.is_empty(), "{:?}", again.changes);

    // The saved state undoes the rollback.
    let saved = r.saved_state.unwrap();
    let undo = rollback::rollback(&req(&saved, &backups, true, false)).unwrap();
    assert_eq!(undo.verify.as_deref(), Some(&[][..]), "{:?}", undo.verify);
    let mut after_undo = snapshot(&root);
    let mut expected = changed.clone();
    // Directory mtimes are not part of the snapshot; everything else is back as it was before the rollback.
    after_undo.retain(|k, _| !k.ends_with(".ema-rollback"));
    expected.retain(|k, _| !k.ends_with(".ema-rollback"));
    assert_eq!(after_undo, expected);
}

#[test]
fn files_an_adoption_renamed_are_moved_back_not_copied_and_the_undo_still_works() {
    let t = tempfile::tempdir().unwrap();
    let root = t.path().join("app");
    legacy(&root);
    let original = snapshot(&root);
    let dest = t.path().join("bk/b");
    backup(&root, &dest);
    // What migrate-models does: the folder renamed into the store layout, a sidecar written.
    std::fs::rename(root.join("models/org--name"), root.join("models/adopted")).unwrap();
    std::fs::write(root.join("models/adopted.metadata.json"), b"{}").unwrap();
    let adopted = snapshot(&root);
    let weights = root.join("models/adopted/model.safetensors");
    let inode = std::os::unix::fs::MetadataExt::ino(&std::fs::metadata(&weights).unwrap());
    let backups = t.path().join("bk");
    let r = rollback::rollback(&req(&dest, &backups, true, false)).unwrap();
    assert_eq!(r.verify.as_deref(), Some(&[][..]), "{:?}", r.verify);
    assert_eq!(r.moved_back_files, 3, "{r:?}");
    assert_eq!(snapshot(&root), original);
    let back = root.join("models/org--name/model.safetensors");
    assert_eq!(
        std::os::unix::fs::MetadataExt::ino(&std::fs::metadata(&back).unwrap()),
        inode,
        "the same file, renamed back: no bytes copied"
    );
    // The saved state refers to the first backup for what was moved back, and undoes the rollback.
    let undo =
        rollback::rollback(&req(r.saved_state.as_ref().unwrap(), &backups, true, false)).unwrap();
    assert_eq!(undo.verify.as_deref(), Some(&[][..]), "{:?}", undo.verify);
    assert_eq!(snapshot(&root), adopted);
}

#[test]
fn undoing_a_rollback_removes_what_it_recreated() {
    let t = tempfile::tempdir().unwrap();
    let root = t.path().join("app");
    legacy(&root);
    let dest = t.path().join("bk/b");
    backup(&root, &dest);
    std::fs::remove_file(root.join("models.db")).unwrap();
    std::fs::remove_dir_all(root.join("logs")).unwrap();
    let without = snapshot(&root);
    let backups = t.path().join("bk");
    let r = rollback::rollback(&req(&dest, &backups, true, false)).unwrap();
    assert!(root.join("models.db").is_file() && root.join("logs/usage.log").is_file());
    let saved = r.saved_state.unwrap();
    let m = Manifest::load(&saved).unwrap();
    assert!(m.sources.iter().any(|s| s.name == "models.db" && s.absent));
    let undo = rollback::rollback(&req(&saved, &backups, true, false)).unwrap();
    assert_eq!(undo.verify.as_deref(), Some(&[][..]), "{:?}", undo.verify);
    assert_eq!(snapshot(&root), without);
    assert!(!root.join("models.db").exists() && !root.join("logs").exists());
}

#[test]
fn damaged_or_edited_backups_are_refused_and_nothing_changes() {
    let t = tempfile::tempdir().unwrap();
    let root = t.path().join("app");
    legacy(&root);
    let dest = t.path().join("bk/b");
    backup(&root, &dest);
    std::fs::remove_file(root.join("models/org--name/config.json")).unwrap();
    let changed = snapshot(&root);
    let backups = t.path().join("bk");

    // A byte flipped inside the backup's copy: found while staging, nothing changed.
    let p = dest.join("models/org--name/config.json");
    let mut b = std::fs::read(&p).unwrap();
    b[0] ^= 1;
    std::fs::write(&p, &b).unwrap();
    let e = rollback::rollback(&req(&dest, &backups, false, false)).unwrap_err();
    assert_eq!(e.exit_code(), 2);
    assert!(e.to_string().contains("does not match its manifest"), "{e}");
    assert_eq!(snapshot(&root), changed);
    b[0] ^= 1;
    std::fs::write(&p, &b).unwrap();

    // A file removed from the backup: refused before anything else.
    std::fs::rename(&p, t.path().join("aside")).unwrap();
    let e = rollback::rollback(&req(&dest, &backups, false, false)).unwrap_err();
    assert!(
        e.to_string().contains("disagrees with its own manifest"),
        "{e}"
    );
    std::fs::rename(t.path().join("aside"), &p).unwrap();

    // A manifest edited by hand to point outside the backup.
    let mp = dest.join(MANIFEST_NAME);
    let text = std::fs::read_to_string(&mp).unwrap();
    std::fs::write(
        &mp,
        text.replace("\"models/org--name/config.json\"", "\"models/../../x\""),
    )
    .unwrap();
    let e = rollback::rollback(&req(&dest, &backups, false, false)).unwrap_err();
    assert!(e.to_string().contains("leaves the backup"), "{e}");
    assert_eq!(snapshot(&root), changed);
    // No staging directory is left behind.
    assert!(std::fs::read_dir(&root).unwrap().all(|e| {
        !e.unwrap()
            .file_name()
            .to_string_lossy()
            .starts_with(".ema-rollback")
    }));
}

#[test]
fn bad_roots_and_destinations_are_named() {
    let t = tempfile::tempdir().unwrap();
    let e = plan_sources(&t.path().join("nope"), &[]).unwrap_err();
    assert!(e.to_string().contains("is not a directory"), "{e}");
    let e = plan_sources(t.path(), &[]).unwrap_err();
    assert!(e.to_string().contains("nothing to back up"), "{e}");
    let root = t.path().join("app");
    legacy(&root);
    let e = take_backup(
        &BackupRequest {
            root: root.clone(),
            dest: Some(root.join("models/bk")),
            backups_dir: t.path().into(),
            extra: vec![],
            side_by_side: false,
        },
        &|_| {},
    )
    .unwrap_err();
    assert!(e.to_string().contains("lies inside"), "{e}");
}
