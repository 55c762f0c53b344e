//! The Debian package `scripts/package.sh` builds (scripts/test.sh builds it with `--profile dev` before the tests):
//! its contents (binary, unit, man pages, completions, conffile, maintainer scripts), the binary running from an
//! extracted tree, the unit passing `systemd-analyze verify`, and its hardening figure.

mod support;

use std::path::{Path, PathBuf};
use std::process::Command;

/// The newest .deb under target/debian, or None (outside CI the tests then say why and pass; in CI they fail).
fn deb() -> Option<PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("target/debian");
    let mut debs: Vec<PathBuf> = std::fs::read_dir(&dir)
        .ok()?
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|e| e == "deb"))
        .collect();
    debs.sort_by_key(|p| std::fs::metadata(p).and_then(|m| m.modified()).ok());
    let found = debs.pop();
    if found.is_none() {
        assert!(
            std::env::var("CI").is_err(),
            "no .deb in {}: scripts/test.sh runs scripts/package.sh --profile dev first",
            dir.display()
        );
        eprintln!(
            "skipped: no .deb in {} (run scripts/package.sh --profile dev)",
            dir.display()
        );
    }
    found
}

fn out(cmd: &mut Command) -> String {
    let o = cmd.output().unwrap();
    assert!(
        o.status.success(),
        "{cmd:?}: {}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
    String::from_utf8_lossy(&o.stdout).into_owned()
}

#[test]
fn the_package_holds_the_binary_unit_man_pages_completions_and_conffile() {
    let Some(deb) = deb() else { return };
    let name = deb.file_name().unwrap().to_string_lossy().into_owned();
    assert!(
        name.starts_with(&format!(
            "enhanced-model-availability_{}",
            env!("CARGO_PKG_VERSION")
        )),
        "{name}"
    );
    let listing = out(Command::new("dpkg-deb").arg("-c").arg(&deb));
    for path in [
        "./usr/bin/ema",
        "./usr/lib/systemd/system/enhanced-model-availability.service",
        "./usr/share/man/man1/ema.1.gz",
        "./usr/share/man/man1/ema-migrate-models.1.gz",
        "./usr/share/man/man1/ema-rollback.1.gz",
        "./usr/share/bash-completion/completions/ema",
        "./usr/share/zsh/vendor-completions/_ema",
        "./usr/share/fish/vendor_completions.d/ema.fish",
        "./etc/ema/enhanced_model_config.json",
        "./usr/share/doc/enhanced-model-availability/examples/legacy_config.example.json",
        "./usr/share/ema/themes/dark.toml",
    ] {
        assert!(
            listing.lines().any(|l| l.ends_with(path)),
            "{path} missing from {name}:\n{listing}"
        );
    }
    // One man page per command: as many as the binary generates.
    let t = tempfile::tempdir().unwrap();
    let man = t.path().join("man");
    out(support::cli::ema_cmd()
        .args(["generate-manpages", "--out"])
        .arg(&man));
    let pages = std::fs::read_dir(&man).unwrap().count();
    assert!(pages > 30, "{pages}");
    assert_eq!(
        listing
            .lines()
            .filter(|l| l.contains("/usr/share/man/man1/ema"))
            .count(),
        pages,
        "the package's man pages differ from the binary's commands: {} is older than this build (run \
         scripts/package.sh --profile dev)",
        deb.display()
    );

    let control = t.path().join("control");
    out(Command::new("dpkg-deb").arg("-e").arg(&deb).arg(&control));
    let conffiles = std::fs::read_to_string(control.join("conffiles")).unwrap();
    assert!(
        conffiles
            .lines()
            .any(|l| l == "/etc/ema/enhanced_model_config.json"),
        "{conffiles}"
    );
    let postinst = std::fs::read_to_string(control.join("postinst")).unwrap();
    assert!(postinst.contains("useradd --system"), "{postinst}");
    assert!(postinst.contains("install -d -o ema -g ema"), "{postinst}");
    assert!(
        !postinst.contains("#DEBHELPER#"),
        "debhelper fragments were filled in"
    );
    let postrm = std::fs::read_to_string(control.join("postrm")).unwrap();
    assert!(postrm.contains("were kept"), "{postrm}");
    for s in ["postinst", "postrm"] {
        out(Command::new("sh").arg("-n").arg(control.join(s)));
    }
}

#[test]
fn the_extracted_package_runs_and_its_unit_verifies_and_is_hardened() {
    let Some(deb) = deb() else { return };
    let t = tempfile::tempdir().unwrap();
    let root = t.path().join("root");
    out(Command::new("dpkg-deb").arg("-x").arg(&deb).arg(&root));
    let v = out(Command::new(root.join("usr/bin/ema")).arg("--version"));
    assert_eq!(v.trim(), format!("ema {}", env!("CARGO_PKG_VERSION")));
    // The shipped configuration is valid for the binary it ships with.
    let cfg = root.join("etc/ema/enhanced_model_config.json");
    out(Command::new(root.join("usr/bin/ema"))
        .args(["validate-config", "--config"])
        .arg(&cfg));

    let unit_path = root.join("usr/lib/systemd/system/enhanced-model-availability.service");
    let unit = std::fs::read_to_string(&unit_path).unwrap();
    for line in [
        "Type=notify",
        "ExecStart=/usr/bin/ema --config /etc/ema/enhanced_model_config.json start",
        "ExecReload=/bin/kill -HUP $MAINPID",
        "User=ema",
        "ProtectSystem=strict",
        "NoNewPrivileges=true",
        "CapabilityBoundingSet=",
        "Restart=on-failure",
    ] {
        assert!(unit.lines().any(|l| l == line), "{line} missing:\n{unit}");
    }
    // systemd-analyze verify checks that ExecStart's binary exists: point it at the extracted one.
    let probe = t.path().join("enhanced-model-availability.service");
    std::fs::write(
        &probe,
        unit.replace("/usr/bin/ema", root.join("usr/bin/ema").to_str().unwrap()),
    )
    .unwrap();
    let o = Command::new("systemd-analyze")
        .args(["verify", "--man=no"])
        .arg(&probe)
        .output()
        .unwrap();
    assert!(
        o.status.success() && o.stderr.is_empty(),
        "systemd-analyze verify: {}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
    let sec = Command::new("systemd-analyze")
        .args(["security", "--offline=true", "--no-pager"])
        .arg(&unit_path)
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&sec.stdout).into_owned();
    let figure: f64 = text
        .lines()
        .find_map(|l| {
            l.split("Overall exposure level for enhanced-model-availability.service: ")
                .nth(1)
        })
        .and_then(|r| r.split_whitespace().next())
        .and_then(|f| f.parse().ok())
        .unwrap_or_else(|| panic!("no exposure figure in:\n{text}"));
    eprintln!("systemd-analyze security: exposure {figure}");
    assert!(figure <= 4.9, "exposure {figure} is worse than OK:\n{text}");
}
