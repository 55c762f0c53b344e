//! `ema suggest` end to end: a real model family (base, finetune, 4-bit quantization, an unrelated model, another
//! task) served by the test hub, downloaded into a store with the real binary, then ranked and explained; rules,
//! requirements, the threshold, the mock, offline lookups and queueing through a real download.

mod support;

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use serde_json::{Value, json};

use ema::engine::demo_family::generate_family_hub;
use support::cli::{Run, ema_cmd, run};
use support::hub::BlockingHub;
use support::wait::wait_for;

const BASE: &str = "ema-family/base-lm";
const CHAT: &str = "ema-family/base-lm-chat";
const GPTQ: &str = "ema-family/base-lm-gptq";
const SMALL: &str = "ema-family/small-lm";
const VISION: &str = "ema-family/base-lm-vision";

fn family_hub_root() -> &'static Path {
    static ROOT: OnceLock<PathBuf> = OnceLock::new();
    ROOT.get_or_init(|| {
        let root = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("fallback_family_hub");
        generate_family_hub(&root).unwrap();
        root
    })
}

/// A client store with everything but the base downloaded from the hub by the real binary, and its config file.
struct Setup {
    _dir: tempfile::TempDir,
    hub: BlockingHub,
    models: PathBuf,
    config: PathBuf,
}

impl Setup {
    fn new(fallback: Value) -> Setup {
        let dir = tempfile::tempdir().unwrap();
        let hub = BlockingHub::start(family_hub_root(), false, |_| {});
        let models = dir.path().join("models");
        let config = dir.path().join("config.json");
        let s = Setup {
            _dir: dir,
            hub,
            models,
            config,
        };
        s.write_config(fallback);
        for m in [CHAT, GPTQ, SMALL, VISION] {
            let r = s.ema(&["download", m]);
            assert_eq!(r.code, 0, "download {m}: {}", r.stderr);
        }
        s
    }

    fn write_config(&self, fallback: Value) {
        std::fs::write(
            &self.config,
            json!({"storage": {"models_directory": self.models}, "fallback": fallback}).to_string(),
        )
        .unwrap();
    }

    fn ema(&self, args: &[&str]) -> Run {
        run(ema_cmd()
            .env("HF_ENDPOINT", self.hub.endpoint())
            .arg("--config")
            .arg(&self.config)
            .args(args))
    }

    fn suggest(&self, extra: &[&str]) -> (i32, Value) {
        let mut args = vec!["suggest", BASE, "--json"];
        args.extend_from_slice(extra);
        let r = self.ema(&args);
        assert!(r.code == 0 || r.code == 5, "{} {}", r.stdout, r.stderr);
        (r.code, r.json())
    }
}

fn ids(list: &Value) -> Vec<&str> {
    list.as_array()
        .unwrap()
        .iter()
        .map(|o| o["model_id"].as_str().unwrap())
        .collect()
}

fn terms_sum(o: &Value) -> f64 {
    o["reasons"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["contribution"].as_f64().unwrap())
        .sum()
}

#[test]
fn the_family_is_ranked_and_explained_and_another_task_never_suggested() {
    let s = Setup::new(json!({}));
    let (code, v) = s.suggest(&[]);
    assert_eq!(code, 0, "{v:#}");
    assert_eq!(v["requested_status"], "missing");
    assert_eq!(v["facts_from"], "hub");
    assert_eq!(ids(&v["suggestions"]), vec![CHAT, GPTQ], "{v:#}");
    let first = &v["suggestions"][0];
    assert_eq!(first["via"], "scored");
    assert_eq!(first["mock"], false);
    assert!(
        first["path"]
            .as_str()
            .unwrap()
            .ends_with("ema-family--base-lm-chat")
    );
    let lineage = first["reasons"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["term"] == "lineage")
        .unwrap();
    assert_eq!(lineage["detail"], "a finetune of ema-family/base-lm");
    for o in v["suggestions"]
        .as_array()
        .unwrap()
        .iter()
        .chain(v["below_threshold"].as_array().unwrap())
    {
        let score = o["score"].as_f64().unwrap();
        assert!((terms_sum(o) - score).abs() < 1e-9, "{o:#}");
        assert!((0.0..=1.0).contains(&score));
        assert!(score >= 0.7 || v["below_threshold"].as_array().unwrap().contains(o));
    }
    // The unrelated model scores under the threshold; the image model (a finetune of the base!) is left out.
    assert_eq!(ids(&v["below_threshold"]), vec![SMALL]);
    assert!(v["below_threshold"][0]["score"].as_f64().unwrap() < 0.7);
    assert_eq!(v["task_mismatches"], 1);
    assert!(
        !v.to_string()
            .contains(&format!("\"model_id\":\"{VISION}\""))
    );
    assert!(v["mock"].is_null());
    // Deterministic: the same answer again.
    let (_, again) = s.suggest(&[]);
    assert_eq!(again["suggestions"], v["suggestions"]);
    // The sidecars kept the hub's and config.json's facts.
    let side: Value = serde_json::from_slice(
        &std::fs::read(s.models.join("ema-family--base-lm-gptq.metadata.json")).unwrap(),
    )
    .unwrap();
    assert_eq!(side["facts"]["base_models"], json!([BASE]));
    assert_eq!(
        side["facts"]["quantization"],
        json!({"method": "gptq", "bits": 4})
    );
    assert_eq!(side["facts"]["model_type"], "gpt2");
    assert!(side["facts"]["parameters_by_dtype"]["U8"].as_u64().unwrap() > 0);

    // quality=high refuses the 4-bit quantization of the 16-bit request; the human output says why.
    let (code, v) = s.suggest(&["--require", "quality=high"]);
    assert_eq!(code, 0);
    assert_eq!(ids(&v["suggestions"]), vec![CHAT]);
    let refused = v["refused"].as_array().unwrap();
    let r = refused.iter().find(|r| r["model_id"] == GPTQ).unwrap();
    assert!(
        r["reason"]
            .as_str()
            .unwrap()
            .contains("4-bit weights for a 16-bit request"),
        "{r}"
    );
    let human = s.ema(&["suggest", BASE, "--require", "quality=high"]);
    assert_eq!(human.code, 0);
    assert!(
        human.stdout.contains("1. ema-family/base-lm-chat  score"),
        "{}",
        human.stdout
    );
    assert!(human.stdout.contains("lineage"), "{}", human.stdout);
    assert!(human.stdout.contains("no usage data"), "{}", human.stdout);
}

#[test]
fn rules_win_threshold_holds_and_the_mock_only_when_nothing_qualifies() {
    let s = Setup::new(json!({"rules": {"ema-family/base-*": [SMALL, "ema-family/not-here"]}}));
    let (code, v) = s.suggest(&[]);
    assert_eq!(code, 0);
    assert_eq!(ids(&v["suggestions"]), vec![SMALL, CHAT, GPTQ], "{v:#}");
    assert_eq!(v["suggestions"][0]["via"], "rule");
    assert_eq!(v["suggestions"][0]["rule"], "ema-family/base-*");
    assert_eq!(v["suggestions"][0]["reasons"][0]["term"], "rule");
    assert!(v["refused"].to_string().contains("ema-family/not-here"));

    // Scoring off: only the rule (and no mock, since a real model qualifies).
    s.write_config(
        json!({"intelligent_fallback_enabled": false, "rules": {"ema-family/*": [SMALL]}}),
    );
    let (code, v) = s.suggest(&[]);
    assert_eq!((code, ids(&v["suggestions"])), (0, vec![SMALL]));
    assert_eq!(v["scoring"], false);
    assert!(v["mock"].is_null());

    // Nothing reaches the threshold: exit 5, one explicit mock, never among the suggestions.
    s.write_config(json!({"suggestion_threshold": 0.99}));
    let (code, v) = s.suggest(&[]);
    assert_eq!(code, 5);
    assert!(v["suggestions"].as_array().unwrap().is_empty());
    assert_eq!(v["mock"]["mock"], true);
    assert!(v["mock"]["path"].is_null());
    assert!(
        v["mock"]["reason"]
            .as_str()
            .unwrap()
            .contains("no real model qualifies")
    );
    let human = s.ema(&["suggest", BASE]);
    assert_eq!(human.code, 5);
    assert!(
        human.stdout.contains("MOCK (not a real model"),
        "{}",
        human.stdout
    );

    s.write_config(json!({"suggestion_threshold": 0.99, "mock_fallback_enabled": false}));
    let (code, v) = s.suggest(&[]);
    assert_eq!(code, 5);
    assert!(v["mock"].is_null());
}

#[test]
fn offline_uses_the_earlier_lookup_and_says_what_is_unknown() {
    let s = Setup::new(json!({}));
    let (_, online) = s.suggest(&[]);
    let off = run(ema_cmd().env("HF_HUB_OFFLINE", "1").args([
        "--config",
        s.config.to_str().unwrap(),
        "suggest",
        BASE,
        "--json",
    ]));
    assert_eq!(off.code, 0, "{}{}", off.stdout, off.stderr);
    let v = off.json();
    assert_eq!(v["facts_from"], "cached_lookup");
    assert_eq!(v["suggestions"], online["suggestions"]);

    // Never looked up, offline: nothing is known, the output says so, and nothing unknown is guessed at.
    let never = "ema-family/never-seen";
    let r = run(ema_cmd().env("HF_HUB_OFFLINE", "1").args([
        "--config",
        s.config.to_str().unwrap(),
        "suggest",
        never,
    ]));
    assert_eq!(r.code, 5, "{}", r.stdout);
    assert!(
        r.stdout
            .contains("unknown about it: task, parameter count, architecture"),
        "{}",
        r.stdout
    );
    assert!(r.stdout.contains("facts from nothing"), "{}", r.stdout);
}

#[test]
fn bad_input_is_refused_with_the_fix() {
    let s = Setup::new(json!({"queue_requests_enabled": false}));
    let r = s.ema(&["suggest", BASE, "--require", "colour=red"]);
    assert_eq!(r.code, 2);
    assert!(
        r.stderr.contains("unknown requirement \"colour\"")
            && r.stderr.contains("quality, max_size_gb, task, library"),
        "{}",
        r.stderr
    );
    let r = s.ema(&["suggest", BASE, "--queue"]);
    assert_eq!(r.code, 2);
    assert!(
        r.stderr.contains("fallback.queue_requests_enabled"),
        "{}",
        r.stderr
    );
    assert!(
        !s.models.join(".ema/downloads.json").exists()
            || !std::fs::read_to_string(s.models.join(".ema/downloads.json"))
                .unwrap()
                .contains(BASE)
    );
    // A bad rule is a validate-config error naming the entry.
    std::fs::write(
        &s.config,
        json!({"fallback": {"rules": {"org/*": "org/a"}}}).to_string(),
    )
    .unwrap();
    let r = run(ema_cmd().args(["validate-config", "--config", s.config.to_str().unwrap()]));
    assert_eq!(r.code, 2);
    assert!(
        r.stdout.contains("fallback.rules") && r.stdout.contains("must be a list of repo ids"),
        "{}{}",
        r.stdout,
        r.stderr
    );
}

#[test]
fn queueing_downloads_the_requested_model_for_real() {
    let s = Setup::new(json!({}));
    let r = s.ema(&["suggest", BASE, "--queue", "--json"]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    let v = r.json();
    assert!(v["queued"]["pid"].as_u64().unwrap() > 0);
    let log = PathBuf::from(v["queued"]["log"].as_str().unwrap());
    let available = || {
        let st = s.ema(&["status", "--json"]).json();
        st["models"]
            .as_array()
            .unwrap()
            .iter()
            .any(|m| m["model_id"] == BASE && m["availability"] == "available")
    };
    assert!(
        wait_for(60, available),
        "not available; log:\n{}",
        std::fs::read_to_string(&log).unwrap_or_default()
    );
    // Now it is here: the suggestion call says so, and queueing again has nothing to do.
    let r = s.ema(&["suggest", BASE, "--queue"]);
    assert!(
        r.stdout.contains("ema-family/base-lm: available"),
        "{}",
        r.stdout
    );
    assert!(
        r.stdout.contains("is already available: nothing to queue"),
        "{}",
        r.stdout
    );
    let list = s.ema(&["downloads", "list", "--json"]);
    assert_eq!(list.code, 0);
}
