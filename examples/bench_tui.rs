//! Console benchmarks, driven by `scripts/bench_tui.sh`.
//!
//! - `bench_tui render N FRAMES [WxH]`: time `frame::draw` of the Models pane with N models on a TestBackend, moving the
//!   selection between frames (so every frame differs); prints median, p95 and max in microseconds.
//! - `bench_tui gen-store DIR N`: write a store of N small models (folder, one file, metadata sidecar).
//! - `bench_tui sample-hub DIR`: write the demo's sample models into a store (for `scripts/screenshots.sh`).

use std::time::Instant;

use ema::engine::events::{Availability, HealthState};
use ema::engine::inventory::ModelInfo;
use ema::engine::store::{
    FileRecord, METADATA_SCHEMA_VERSION, ModelMetadata, RepoId, Store, VerificationState,
    now_rfc3339,
};
use ema::tui::app::App;
use ema::tui::state::ConsoleState;
use ema::tui::theme::Theme;
use ratatui::Terminal;
use ratatui::backend::TestBackend;
use ratatui::crossterm::event::{KeyCode, KeyEvent, KeyModifiers};

const TASKS: [&str; 5] = [
    "text-classification",
    "text-generation",
    "token-classification",
    "fill-mask",
    "text2text-generation",
];

fn meta(id: &RepoId, i: usize) -> ModelMetadata {
    let size = 1000 + (i as u64 * 7919) % 100_000;
    ModelMetadata {
        schema_version: METADATA_SCHEMA_VERSION,
        legacy_location: None,
        repo_id: id.clone(),
        requested_revision: "main".into(),
        commit: Some(format!("{:040x}", i as u128 * 0x9e3779b97f4a7c15)),
        endpoint: None,
        files: vec![FileRecord {
            path: "config.json".into(),
            size,
            sha256: None,
            git_sha1: None,
            lfs: false,
            verified_at: None,
            mtime_ns: None,
        }],
        total_size: size,
        pipeline_tag: Some(TASKS[i % TASKS.len()].into()),
        library_name: Some("transformers".into()),
        tags: vec![],
        parameters: None,
        facts: Default::default(),
        created_at: now_rfc3339(),
        updated_at: now_rfc3339(),
        last_verified_at: None,
        verification: VerificationState::LocalOnly,
    }
}

fn id(i: usize) -> RepoId {
    RepoId::parse(&format!("org-{:02}/model-{i:05}", i % 37)).unwrap()
}

fn render(n: usize, frames: usize, w: u16, h: u16) {
    let models: Vec<ModelInfo> = (0..n)
        .map(|i| {
            let id = id(i);
            let m = meta(&id, i);
            ModelInfo {
                bytes_on_disk: m.total_size,
                id,
                wanted: i % 50 == 0,
                metadata: Some(m),
                availability: if i % 97 == 0 {
                    Availability::Incomplete
                } else {
                    Availability::Available
                },
                health: HealthState::Healthy,
                problems: vec![],
            }
        })
        .collect();
    let mut st = ConsoleState::default();
    st.set_models(models);
    let mut app = App::new(st, Theme::load("dark", false, None).unwrap());
    let mut term = Terminal::new(TestBackend::new(w, h)).unwrap();
    // Warm up (first frame allocates the buffers).
    term.draw(|f| ema::tui::frame::draw(f, &mut app)).unwrap();
    let mut times = Vec::with_capacity(frames);
    for i in 0..frames {
        let k = if (i / 500) % 2 == 0 {
            KeyCode::Char('j')
        } else {
            KeyCode::PageDown
        };
        app.on_key(KeyEvent::new(k, KeyModifiers::NONE));
        let t = Instant::now();
        term.draw(|f| ema::tui::frame::draw(f, &mut app)).unwrap();
        times.push(t.elapsed().as_secs_f64() * 1e6);
    }
    times.sort_by(|a, b| a.partial_cmp(b).unwrap());
    let pct = |p: f64| times[((times.len() as f64 - 1.0) * p) as usize];
    println!(
        "render models={n} frames={frames} size={w}x{h} median_us={:.0} p95_us={:.0} max_us={:.0}",
        pct(0.5),
        pct(0.95),
        times[times.len() - 1]
    );
}

fn gen_store(dir: &str, n: usize) {
    let store = Store::new(dir);
    store.ensure().unwrap();
    for i in 0..n {
        let id = id(i);
        let m = meta(&id, i);
        let d = store.model_dir(&id);
        std::fs::create_dir_all(&d).unwrap();
        std::fs::write(d.join("config.json"), vec![b' '; m.total_size as usize]).unwrap();
        // Plain write: this is a fixture, not state that must survive a crash.
        std::fs::write(
            store.metadata_path(&id),
            serde_json::to_vec_pretty(&m).unwrap(),
        )
        .unwrap();
    }
    println!("wrote {n} models to {dir}");
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args.first().map(String::as_str) {
        Some("render") => {
            let n = args.get(1).and_then(|s| s.parse().ok()).unwrap_or(5000);
            let frames = args.get(2).and_then(|s| s.parse().ok()).unwrap_or(2000);
            let (w, h) = args
                .get(3)
                .and_then(|s| s.split_once('x'))
                .and_then(|(w, h)| Some((w.parse().ok()?, h.parse().ok()?)))
                .unwrap_or((120, 40));
            render(n, frames, w, h);
        }
        Some("sample-hub") if args.len() == 2 => {
            let ids = ema::engine::demo::generate_sample_hub(std::path::Path::new(&args[1]))
                .expect("generate the sample models");
            println!("{} sample models in {}", ids.len(), args[1]);
        }
        Some("gen-store") if args.len() == 3 => {
            gen_store(&args[1], args[2].parse().expect("N"));
        }
        _ => {
            eprintln!(
                "usage: bench_tui render [N] [FRAMES] [WxH] | bench_tui gen-store DIR N | bench_tui sample-hub DIR"
            );
            std::process::exit(2);
        }
    }
}
