//! The migration wizard walked in a real terminal (tmux) on a sample legacy install: the console opens the
//! Migration pane on the plan, runs "System requirements verified" and "Current system backed up" from the keys,
//! confirms a manual step with a note, and the CLI then reads the same state. Skipped, with the reason printed,
//! when tmux is not installed (CI installs it).

mod support;

use std::path::{Path, PathBuf};
use std::time::Duration;

use support::cli::{EMA, ema_isolated as ema, isolated_env};
use support::http::free_port;
use support::tmux::{Tmux, tmux_test_dir};

fn shell_quote(p: &Path) -> String {
    format!("'{}'", p.display().to_string().replace('\'', "'\\''"))
}

#[test]
fn a_newcomer_walks_the_wizard_in_the_console() {
    let Some(t) = tmux_test_dir() else { return };
    let d = t.path();
    let r = ema(d, d, &["demo", "--legacy", "--dir", "install", "--json"]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    let root = PathBuf::from(r.json()["legacy_dir"].as_str().unwrap());
    let port = free_port();
    let r = ema(
        d,
        &root,
        &["migrate", "plan", "--legacy-port", &port.to_string()],
    );
    assert_eq!(r.code, 0, "{}", r.stderr);

    let envs: Vec<String> = isolated_env(d)
        .into_iter()
        .map(|(k, v)| format!("{k}={}", shell_quote(&v)))
        .collect();
    let cmd = format!(
        "cd {} && env -u HF_TOKEN -u HUGGING_FACE_HUB_TOKEN -u EMA_CONFIG NO_COLOR=1 HF_HUB_OFFLINE=1 {} {} tui; \
         echo EMA_EXIT=$?; sleep 30",
        shell_quote(&root),
        envs.join(" "),
        shell_quote(Path::new(EMA))
    );
    let tmux = Tmux::start(&cmd, 120, 40);
    tmux.wait_for("the console", Duration::from_secs(20), |s| {
        s.contains("1 Models")
    });
    tmux.keys(&["5"]);
    // The pane opens on the plan: the install, what was found, what will happen.
    let root_s = root.display().to_string();
    tmux.wait_for("the plan header", Duration::from_secs(10), |s| {
        s.contains(&format!("Plan: {root_s}"))
            && s.contains("5 model(s)")
            && s.contains("Will: back up")
    });
    // System requirements: Enter runs it (done or failed by this machine's disk; either is a real run).
    tmux.keys(&["Enter"]);
    tmux.wait_for("system requirements run", Duration::from_secs(30), |s| {
        s.contains("[✓] System requirements verified")
            || s.contains("[✗] System requirements verified")
    });
    // The backup asks first, then runs.
    tmux.keys(&["j", "Enter"]);
    tmux.wait_for("the backup's question", Duration::from_secs(10), |s| {
        s.contains("Continue?")
    });
    tmux.keys(&["y"]);
    tmux.wait_for("the backup", Duration::from_secs(60), |s| {
        s.contains("[✓] Current system backed up")
    });
    // A manual step is confirmed with a note typed into the pane.
    tmux.keys(&["j", "m"]);
    tmux.wait_for("the note prompt", Duration::from_secs(10), |s| {
        s.contains("done: ")
    });
    tmux.keys(&["-l", "reviewed with the team"]);
    tmux.keys(&["Enter"]);
    tmux.wait_for("the confirmed step", Duration::from_secs(10), |s| {
        s.contains("[✓] Migration plan reviewed") && s.contains("note: reviewed with the team")
    });
    tmux.quit(Duration::from_secs(10));

    // The CLI reads the same state.
    let st = ema(d, &root, &["migrate", "status", "--json"]).json();
    let step = |id: &str| {
        st["steps"]
            .as_array()
            .unwrap()
            .iter()
            .find(|s| s["id"] == id)
            .unwrap()
            .clone()
    };
    assert_eq!(step("backup")["state"], "done");
    assert_eq!(step("plan_reviewed")["state"], "done");
    assert_eq!(step("plan_reviewed")["note"], "reviewed with the team");
    assert!(
        PathBuf::from(st["last_backup"].as_str().unwrap())
            .join("manifest.json")
            .is_file()
    );
}
