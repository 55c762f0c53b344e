//! `ema suggest` benchmark, driven by `scripts/bench_suggest.sh`.
//!
//! - `bench_suggest N CALLS`: write a store of N synthetic models (folder, one file, a sidecar with hub facts: tasks,
//!   families with finetune/quantization tags, architectures, parameter counts), then time the warm engine call
//!   `Engine::suggest` for a missing model of one family, CALLS times; prints median, p95 and max in milliseconds.
//! - `bench_suggest family DIR`: write the `ema-family` sample family into a store (to serve with `ema mirror` and
//!   try `ema suggest` by hand).

use std::time::Instant;

use ema::engine::Engine;
use ema::engine::config::{Config, hub_env::HubEnv};
use ema::engine::fallback::{Face, Request, Requirements, UsageHints};
use ema::engine::store::{
    FileRecord, METADATA_SCHEMA_VERSION, ModelFacts, ModelMetadata, RepoId, Store,
    VerificationState, now_rfc3339,
};

const TASKS: [&str; 4] = [
    "text-generation",
    "text-classification",
    "image-classification",
    "feature-extraction",
];

fn meta(i: usize) -> ModelMetadata {
    let family = i / 10;
    let id = RepoId::parse(&format!("fam{family}/model-{i}")).unwrap();
    let base = format!("fam{family}/model-{}", family * 10);
    let mut tags = vec![
        "transformers".to_string(),
        "safetensors".into(),
        TASKS[family % 4].into(),
    ];
    match i % 10 {
        0 => {}
        1..=5 => tags.extend([
            format!("base_model:{base}"),
            format!("base_model:finetune:{base}"),
        ]),
        _ => tags.extend([
            format!("base_model:{base}"),
            format!("base_model:quantized:{base}"),
        ]),
    }
    ModelMetadata {
        schema_version: METADATA_SCHEMA_VERSION,
        legacy_location: None,
        repo_id: id,
        requested_revision: "main".into(),
        commit: Some("a".repeat(40)),
        endpoint: None,
        files: vec![FileRecord {
            path: "config.json".into(),
            size: 2,
            sha256: None,
            git_sha1: None,
            lfs: false,
            verified_at: None,
            mtime_ns: None,
        }],
        total_size: 2,
        pipeline_tag: Some(TASKS[family % 4].into()),
        library_name: Some("transformers".into()),
        tags,
        parameters: Some(1_000_000 * (1 + (i as u64 % 70))),
        facts: ModelFacts {
            base_models: if i.is_multiple_of(10) {
                vec![]
            } else {
                vec![base]
            },
            architectures: vec![format!("Arch{}", family % 7)],
            model_type: Some(format!("type{}", family % 7)),
            ..ModelFacts::default()
        },
        created_at: now_rfc3339(),
        updated_at: now_rfc3339(),
        last_verified_at: None,
        verification: VerificationState::Verified,
    }
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if args.get(1).map(String::as_str) == Some("family") {
        let ids =
            ema::engine::demo_family::generate_family_hub(std::path::Path::new(&args[2])).unwrap();
        for id in ids {
            println!("{id}");
        }
        return;
    }
    let n: usize = args.get(1).and_then(|s| s.parse().ok()).unwrap_or(5000);
    let calls: usize = args.get(2).and_then(|s| s.parse().ok()).unwrap_or(200);
    let dir = tempfile::tempdir().unwrap();
    let store = Store::new(dir.path());
    store.ensure().unwrap();
    for i in 0..n {
        let m = meta(i);
        std::fs::create_dir_all(store.model_dir(&m.repo_id)).unwrap();
        std::fs::write(store.model_dir(&m.repo_id).join("config.json"), "{}").unwrap();
        store.write_metadata(&m).unwrap();
    }
    // The requested model: a family base whose files are gone (its sidecar keeps the hub's facts).
    let requested = meta(10).repo_id;
    std::fs::remove_dir_all(store.model_dir(&requested)).unwrap();
    let mut cfg = Config::default();
    cfg.storage.models_directory = dir.path().to_path_buf();
    cfg.fallback.suggestion_threshold = 0.5;
    let hub = HubEnv {
        endpoint: "http://127.0.0.1:9".into(),
        token: None,
        token_source: None,
        offline: true,
    };
    let engine = Engine::new(cfg, hub).unwrap();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let req = Request {
        model_id: requested,
        requirements: Requirements::default(),
        face: Face::Cli,
        usage: UsageHints::default(),
    };
    let t0 = Instant::now();
    let first = rt.block_on(engine.suggest(&req)).unwrap();
    let cold_ms = t0.elapsed().as_secs_f64() * 1e3;
    let mut times = Vec::with_capacity(calls);
    for _ in 0..calls {
        let t = Instant::now();
        let r = rt.block_on(engine.suggest(&req)).unwrap();
        times.push(t.elapsed().as_secs_f64() * 1e3);
        assert_eq!(r.suggestions.len(), first.suggestions.len());
    }
    times.sort_by(f64::total_cmp);
    let pct = |p: f64| times[((times.len() as f64 * p) as usize).min(times.len() - 1)];
    println!(
        "models={n} calls={calls} suggestions={} cold_ms={cold_ms:.2} median_ms={:.3} p95_ms={:.3} max_ms={:.3}",
        first.suggestions.len(),
        pct(0.5),
        pct(0.95),
        times[times.len() - 1]
    );
}
