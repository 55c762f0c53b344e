//! End-to-end: the real `ema` binary in a real terminal (tmux), against a Hub-compatible mirror on loopback.
//! Skipped, with the reason printed, when tmux is not installed (CI installs it).

mod support;

use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::time::Duration;

use ema::engine::integrity::generate::{GenerateOptions, generate_local_metadata};
use ema::engine::store::{RepoId, Store, VerificationState};
use support::cli::{EMA, ema_cmd};
use support::data::pseudo_random;
use support::hub::BlockingHub;
use support::store::one_file_metadata;
use support::tmux::{Tmux, tmux_test_dir};

fn write_local_model(store: &Store, id: &str) {
    let dir = store.model_dir(&RepoId::parse(id).unwrap());
    std::fs::create_dir_all(&dir).unwrap();
    let content = b"{\"model_type\": \"bert\"}".to_vec();
    std::fs::write(dir.join("config.json"), &content).unwrap();
    let mut meta = one_file_metadata(id, "config.json", &content, VerificationState::LocalOnly);
    meta.pipeline_tag = Some("text-classification".into());
    store.write_metadata(&meta).unwrap();
}

fn shell_quote(p: &Path) -> String {
    format!("'{}'", p.display().to_string().replace('\'', "'\\''"))
}

/// `ema --config <an empty configuration> <args>` with no terminal: stdin from /dev/null, output captured.
fn ema_without_a_tty(args: &[&str]) -> Output {
    let d = tempfile::tempdir().unwrap();
    let cfg = d.path().join("c.json");
    std::fs::write(&cfg, "{}").unwrap();
    ema_cmd()
        .arg("--config")
        .arg(&cfg)
        .args(args)
        .stdin(Stdio::null())
        .output()
        .unwrap()
}

#[test]
fn no_tty_points_to_the_headless_commands() {
    let out = ema_without_a_tty(&[]);
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("not a TTY") && err.contains("ema --help"),
        "{err}"
    );
    assert!(out.stdout.is_empty());
}

#[test]
fn unknown_theme_is_a_usage_error() {
    let out = ema_without_a_tty(&["tui", "--theme", "solarized"]);
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("unknown theme \"solarized\"") && err.contains("high-contrast"),
        "{err}"
    );
}

#[test]
fn no_color_console_is_monochrome_and_resizes() {
    let Some(d) = tmux_test_dir() else { return };
    let models = d.path().join("models");
    let store = Store::new(&models);
    store.ensure().unwrap();
    write_local_model(&store, "local/present");
    let cfg = d.path().join("config.json");
    std::fs::write(
        &cfg,
        serde_json::json!({"storage": {"models_directory": models}, "health_monitoring": {"enabled": false}})
            .to_string(),
    )
    .unwrap();
    let cmd = format!(
        "env NO_COLOR=1 HF_HUB_OFFLINE=1 HF_HOME={} {} --config {} tui --theme high-contrast; echo EMA_EXIT=$?; \
         sleep 30",
        shell_quote(&d.path().join("hf")),
        shell_quote(Path::new(EMA)),
        shell_quote(&cfg)
    );
    let tmux = Tmux::start(&cmd, 100, 30);
    let long = Duration::from_secs(30);
    tmux.wait_for("the Models pane", long, |s| {
        s.contains("local/present") && s.contains("offline (HF_HUB_OFFLINE)")
    });
    let esc = tmux.capture_with(&["-e"]);
    // Reverse video marks the selection; no colour at all.
    assert!(esc.contains("\x1b[7m") || esc.contains(";7m"), "{esc:?}");
    for c in ["38;5;", "48;5;", "38;2;", "[31m", "[32m", "[33m", "[36m"] {
        assert!(!esc.contains(c), "colour sequence {c} under NO_COLOR");
    }
    // Too small, then back.
    let resize = |w: &str, h: &str| {
        let st = Command::new("tmux")
            .args([
                "-L",
                &tmux.socket,
                "resize-window",
                "-t",
                "e2e",
                "-x",
                w,
                "-y",
                h,
            ])
            .status()
            .unwrap();
        assert!(st.success());
    };
    resize("60", "20");
    tmux.wait_for("the too-small message", long, |s| {
        s.contains("Terminal too small")
    });
    resize("100", "30");
    tmux.wait_for("the console again", long, |s| s.contains("local/present"));
    tmux.quit(long);
}

#[test]
fn console_in_tmux_downloads_a_model_and_walks_the_panes() {
    let Some(d) = tmux_test_dir() else { return };
    // The hub: a mirror over a source store holding one model.
    let src = d.path().join("hub");
    let weights = pseudo_random(7, 6 * 1024 * 1024);
    let mdir = src.join("ema-demo--tiny-bert");
    std::fs::create_dir_all(&mdir).unwrap();
    std::fs::write(mdir.join("config.json"), b"{\"model_type\": \"bert\"}").unwrap();
    std::fs::write(mdir.join("pytorch_model.bin"), &weights).unwrap();
    // Its metadata on the hub side names the task, which the console shows before the model is here.
    let src_store = Store::new(&src);
    let hub_id = RepoId::parse("ema-demo/tiny-bert").unwrap();
    let mut meta =
        generate_local_metadata(&src_store, &hub_id, &GenerateOptions::default()).unwrap();
    meta.pipeline_tag = Some("text-classification".into());
    src_store.write_metadata(&meta).unwrap();
    let hub = BlockingHub::start(&src, false, |_| {});
    let endpoint = hub.endpoint();

    // The operator's machine: a store with one model, and the hub model on the watch list.
    let models = d.path().join("models");
    let store = Store::new(&models);
    store.ensure().unwrap();
    write_local_model(&store, "local/present");
    let cfg = d.path().join("config.json");
    std::fs::write(
        &cfg,
        serde_json::json!({
            "storage": {"models_directory": models, "wanted_models": ["ema-demo/tiny-bert"]},
            // 16 Mbit/s: the 6 MiB file takes ~3 s, long enough to watch it move.
            "downloads": {"bandwidth_limit_mbps": 16.0},
            // The local model shares only the task with the requested one (no model tree, no architecture known):
            // under the default 0.7 it is listed below the threshold; at 0.25 the task term alone qualifies it.
            "fallback": {"suggestion_threshold": 0.25}
        })
        .to_string(),
    )
    .unwrap();
    let hf_home = d.path().join("hf");
    let cmd = format!(
        "env -u HF_TOKEN -u HUGGING_FACE_HUB_TOKEN -u HF_HUB_OFFLINE -u NO_COLOR HF_HOME={} HF_ENDPOINT={} {} \
         --config {}; echo EMA_EXIT=$?; sleep 30",
        shell_quote(&hf_home),
        endpoint,
        shell_quote(Path::new(EMA)),
        shell_quote(&cfg)
    );
    let tmux = Tmux::start(&cmd, 120, 40);
    let long = Duration::from_secs(30);

    let s = tmux.wait_for("the Models pane", long, |s| {
        s.contains("1 Models") && s.contains("local/present") && s.contains("ema-demo/tiny-bert")
    });
    assert!(
        s.lines()
            .any(|l| l.contains("ema-demo/tiny-bert") && l.contains("missing")),
        "{s}"
    );
    tmux.wait_for("the hub to be reachable", long, |s| s.contains("● online"));
    // 16 ANSI colours only: no truecolor sequences reach the terminal.
    let colours = tmux.capture_with(&["-e"]);
    assert!(colours.contains("\x1b[") && !colours.contains("38;2;") && !colours.contains("48;2;"));

    // The hub told the console the missing model's task; the Fallback pane offers the local model of that task.
    tmux.wait_for("the hub's task for the missing model", long, |s| {
        s.lines().any(|l| {
            l.contains("ema-demo/tiny-bert")
                && l.contains("text-classification")
                && l.contains("6.3 MB")
        })
    });
    tmux.keys(&["f"]);
    tmux.wait_for("a fallback suggestion", long, |s| {
        s.contains("4 Fallback") && s.lines().any(|l| l.contains("1   local/present"))
    });
    tmux.keys(&["1"]);

    // The wanted model sorts first and is selected: download it, then watch it in pane 2.
    tmux.keys(&["d"]);
    tmux.keys(&["2"]);
    // The bandwidth cap makes the transfer take seconds: the facts line shows it in flight before it finishes.
    let saw_progress = std::cell::Cell::new(false);
    let s = tmux.wait_for("the download to finish", Duration::from_secs(60), |s| {
        if s.lines().any(|l| l.contains("downloading ·")) {
            if !saw_progress.get() && std::env::var_os("EMA_E2E_SHOW").is_some() {
                eprintln!("--- in flight:\n{s}");
            }
            saw_progress.set(true);
        }
        s.contains("finished ·")
    });
    assert!(
        saw_progress.get(),
        "never saw the download in flight; last screen:\n{s}"
    );
    assert!(s.contains("ema-demo/tiny-bert"), "{s}");
    assert_eq!(
        std::fs::read(models.join("ema-demo--tiny-bert").join("pytorch_model.bin")).unwrap(),
        weights
    );

    tmux.keys(&["1"]);
    tmux.wait_for("the model to be available", long, |s| {
        s.lines()
            .any(|l| l.contains("ema-demo/tiny-bert") && l.contains("available"))
    });

    tmux.keys(&["?"]);
    tmux.wait_for("the help overlay", long, |s| {
        s.contains("Everywhere") && s.contains("5 Migration")
    });
    tmux.keys(&["Escape"]);
    tmux.wait_for("help to close", long, |s| !s.contains("Everywhere"));

    tmux.keys(&["5"]);
    tmux.wait_for("the migration wizard", long, |s| {
        s.contains("Pre-Migration Checklist") && s.contains("Rollback procedures verified")
    });
    tmux.keys(&["3"]);
    tmux.wait_for("the Health pane", long, |s| s.contains("3 Health"));
    tmux.keys(&["4"]);
    tmux.wait_for("the Fallback pane", long, |s| s.contains("requested"));

    tmux.quit(long);
}

/// The README's main job, as a newcomer runs it: `ema demo`, pick the big sample model, download it, watch the
/// progress move in the Downloads pane until it is available, open help, quit.
#[test]
fn ema_demo_newcomer_downloads_and_watches_it_arrive() {
    let Some(d) = tmux_test_dir() else { return };
    let demo = d.path().join("demo");
    let cmd = format!(
        "env -u HF_TOKEN -u HUGGING_FACE_HUB_TOKEN -u HF_HUB_OFFLINE -u NO_COLOR -u EMA_CONFIG HF_HOME={} \
         TERM=xterm-256color {} demo --dir {} --rate-mbps 60; echo EMA_EXIT=$?; sleep 30",
        shell_quote(&d.path().join("hf")),
        shell_quote(Path::new(EMA)),
        shell_quote(&demo)
    );
    let tmux = Tmux::start(&cmd, 120, 40);
    let long = Duration::from_secs(60);
    tmux.wait_for("the sample models on the watch list", long, |s| {
        ["mini-embed", "small-gpt", "tiny-gpt", "tiny-sentiment"]
            .iter()
            .all(|m| s.contains(&format!("ema-demo/{m}")))
            && s.contains("● online")
    });
    // Rows sort by id: mini-embed, then small-gpt (56.6 MiB: takes seconds at 60 Mbit/s).
    tmux.keys(&["j"]);
    tmux.keys(&["d"]);
    tmux.keys(&["2"]);
    // Progress moves: at least two different percentages while it downloads.
    let seen = std::cell::RefCell::new(std::collections::BTreeSet::new());
    let s = tmux.wait_for("the download to finish", Duration::from_secs(120), |s| {
        for l in s.lines() {
            if (l.contains("downloading ·") || l.contains("ema-demo/small-gpt"))
                && let Some(p) = l.split_whitespace().find_map(|w| w.strip_suffix('%'))
            {
                seen.borrow_mut().insert(p.to_string());
            }
        }
        s.lines()
            .skip_while(|l| !l.contains("ema-demo/small-gpt"))
            .nth(1)
            .is_some_and(|l| l.contains("finished ·"))
    });
    assert!(
        seen.borrow().len() >= 2,
        "progress never moved (saw {:?}); last screen:\n{s}",
        seen.borrow()
    );
    tmux.keys(&["1"]);
    tmux.wait_for("small-gpt available", long, |s| {
        s.lines()
            .any(|l| l.contains("ema-demo/small-gpt") && l.contains("available"))
    });
    // The bytes on disk are the hub's, verified.
    let shard = demo
        .join("models")
        .join("ema-demo--small-gpt")
        .join("model-00001-of-00002.safetensors");
    assert_eq!(
        std::fs::read(&shard).unwrap(),
        std::fs::read(
            demo.join("hub")
                .join("ema-demo--small-gpt")
                .join("model-00001-of-00002.safetensors")
        )
        .unwrap()
    );
    tmux.keys(&["?"]);
    tmux.wait_for("the help overlay", long, |s| s.contains("Everywhere"));
    tmux.keys(&["Escape"]);
    tmux.wait_for("help to close", long, |s| !s.contains("Everywhere"));
    tmux.quit(long);
}
