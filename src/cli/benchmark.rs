//! `ema benchmark`: download throughput (from the built-in sample hub on loopback, or the configured hub with
//! `--model`), API latency of a running ema server, read throughput of the installed models; kept as a baseline
//! and compared with it. Progress on stderr, a report or one JSON document on stdout.

use clap::Args;

use crate::engine::benchmark::{self, Comparison, Report, Skipped, Verdict, measure};
use crate::engine::config::hub_env::HubEnv;
use crate::engine::error::{EmaError, Result, exit};
use crate::engine::store::{RepoId, Store, now_rfc3339};
use crate::server::sample_hub;

use super::Ctx;

#[derive(Debug, Args)]
#[command(
    after_help = "With none of --test-downloads, --test-api-response, --test-model-loading, all three run. Baselines \
live in <cache>/benchmarks/baseline.json. Exit codes: 0 measured (and, with --compare-with-baseline, nothing \
regressed beyond the noise band), 1 a figure regressed or a measurement failed, 2 bad input, 4 the hub of --model \
cannot be reached."
)]
pub struct BenchmarkArgs {
    /// Download throughput, as configured and through one connection.
    #[arg(long)]
    pub test_downloads: bool,
    /// p50 / p99 latency of a running ema server's API.
    #[arg(long)]
    pub test_api_response: bool,
    /// Read throughput of every installed model (a load-time estimate per model).
    #[arg(long)]
    pub test_model_loading: bool,
    /// Print each figure beside its baseline with the ratio; flag regressions beyond the noise band.
    #[arg(long)]
    pub compare_with_baseline: bool,
    /// Keep this run's figures as the baseline.
    #[arg(long)]
    pub save_baseline: bool,
    /// Download this repo from the configured hub (HF_ENDPOINT) instead of the built-in sample hub.
    #[arg(long, value_name = "REPO")]
    pub model: Option<String>,
    /// Runs of each measurement (the noise band comes from their spread).
    #[arg(long, value_name = "N", default_value_t = 3, value_parser = clap::value_parser!(u16).range(1..=50))]
    pub repetitions: u16,
    /// The ema server to time (default: api.host and api.port of the configuration).
    #[arg(long, value_name = "URL")]
    pub api_url: Option<String>,
}

pub fn run(a: BenchmarkArgs, ctx: &Ctx) -> Result<i32> {
    let loaded = ctx.load_config()?;
    let cfg = &loaded.config;
    let all = !(a.test_downloads || a.test_api_response || a.test_model_loading);
    let reps = a.repetitions as usize;
    let model = a.model.as_deref().map(RepoId::parse).transpose()?;
    let progress = |m: &str| {
        if !ctx.out.json {
            eprintln!("  {m}");
        }
    };
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|e| EmaError::Other(format!("cannot start the async runtime: {e}")))?;
    let mut report = Report {
        measured_at: now_rfc3339(),
        repetitions: reps,
        figures: Vec::new(),
        skipped: Vec::new(),
    };

    if all || a.test_downloads {
        let scratch = tempfile::Builder::new()
            .prefix("ema-benchmark-")
            .tempdir()
            .map_err(|e| {
                EmaError::Other(format!("cannot create a scratch folder in $TMPDIR: {e}"))
            })?;
        let (endpoint, repo, _hub) = match &model {
            Some(repo) => {
                let env = HubEnv::from_env();
                if env.offline {
                    return Err(EmaError::Config(
                        "--model downloads from the configured hub, but HF_HUB_OFFLINE is set; unset it, or leave \
                         out --model to use the built-in sample hub"
                            .into(),
                    ));
                }
                (env.endpoint.clone(), repo.clone(), None)
            }
            None => {
                let store = scratch.path().join("hub");
                crate::engine::demo::generate_sample_hub(&store)?;
                let hub = sample_hub::start(&store)?;
                let largest = largest_model(&Store::new(&store))?;
                (hub_url(&hub), largest, Some(hub))
            }
        };
        if !ctx.out.json {
            eprintln!("downloads: {repo} from {endpoint}, {reps} run(s) each");
        }
        let figs = rt.block_on(measure::downloads(
            &endpoint,
            &repo,
            &cfg.downloads,
            reps,
            scratch.path(),
            &progress,
        ))?;
        report.figures.extend(figs);
    }
    if all || a.test_api_response {
        let url = a.api_url.clone().unwrap_or_else(|| {
            let host = match cfg.api.host.as_str() {
                "0.0.0.0" | "::" | "" => "127.0.0.1",
                h => h,
            };
            format!("http://{host}:{}", cfg.api.port)
        });
        if !ctx.out.json {
            eprintln!("api: {url}, 200 requests x {reps}");
        }
        match rt.block_on(measure::api_latency(
            &url,
            cfg.api.token.as_deref(),
            200,
            reps,
            &progress,
        )) {
            Ok(figs) => report.figures.extend(figs),
            Err(s) => report.skipped.push(s),
        }
    }
    if all || a.test_model_loading {
        let store = Store::new(&cfg.storage.models_directory);
        if !ctx.out.json {
            eprintln!("model loading: {}", store.root().display());
        }
        let figs = measure::model_reads(&store, reps, &progress)?;
        if figs.is_empty() {
            report.skipped.push(Skipped {
                part: "model_loading".into(),
                reason: format!(
                    "no installed models in {} (download one with `ema download`)",
                    store.root().display()
                ),
            });
        }
        report.figures.extend(figs);
    }

    let path = benchmark::baseline_path(&cfg.storage.cache_dir());
    let baseline = benchmark::load_baseline(&path)?;
    let comparisons = benchmark::compare(&report, baseline.as_ref());
    let regressed =
        a.compare_with_baseline && comparisons.iter().any(|c| c.verdict == Verdict::Regressed);
    if a.save_baseline {
        benchmark::save_baseline(&path, &report, baseline.as_ref())?;
    }
    if ctx.out.json {
        ctx.out.json(&serde_json::json!({
            "report": report,
            "baseline": { "path": path, "saved_at": baseline.as_ref().map(|b| b.saved_at.clone()),
                          "saved_now": a.save_baseline },
            "comparisons": a.compare_with_baseline.then_some(&comparisons),
            "regressed": regressed,
        }));
    } else {
        print_report(
            &report,
            &comparisons,
            a.compare_with_baseline,
            baseline.is_some(),
        );
        if a.save_baseline {
            println!("baseline saved: {}", path.display());
        } else if a.compare_with_baseline && baseline.is_none() {
            println!(
                "no baseline yet at {}: save one with `ema benchmark --save-baseline`",
                path.display()
            );
        }
    }
    Ok(if regressed { exit::FAILURE } else { exit::OK })
}

fn hub_url(hub: &sample_hub::SampleHubServer) -> String {
    use crate::engine::selftest::SampleHub;
    hub.url()
}

/// The sample model with the most bytes (the one that shows what parallel parts bring).
fn largest_model(store: &Store) -> Result<RepoId> {
    let mut best: Option<(u64, RepoId)> = None;
    for id in store.list_models()? {
        let size = store.read_metadata(&id)?.map_or(0, |m| m.total_size);
        if best.as_ref().is_none_or(|(s, _)| size > *s) {
            best = Some((size, id));
        }
    }
    best.map(|(_, id)| id)
        .ok_or_else(|| EmaError::Other("the sample hub holds no models".into()))
}

fn print_report(r: &Report, cmp: &[Comparison], compare: bool, have_baseline: bool) {
    println!(
        "benchmark at {} (medians of {} run(s))",
        r.measured_at, r.repetitions
    );
    for (f, c) in r.figures.iter().zip(cmp) {
        let figure = format!("{:>10.2} {:<4}", f.median, f.unit);
        let vs = match (compare, c.baseline, c.ratio) {
            (true, Some(b), Some(ratio)) => format!(
                "  baseline {b:>9.2}  {ratio:>5.2}×  noise ±{:>2.0} %  {}",
                c.noise_band * 100.0,
                match c.verdict {
                    Verdict::Better => "better",
                    Verdict::Same => "same",
                    Verdict::Regressed => "REGRESSED",
                    Verdict::New => "new",
                }
            ),
            (true, _, _) if have_baseline => "  (not in the baseline)".into(),
            _ => String::new(),
        };
        println!("  {:<36} {figure}{vs}", f.name);
        if !f.detail.is_empty() {
            println!("      {}", f.detail);
        }
    }
    if let (Some(p), Some(o)) = (
        r.figures.iter().find(|f| f.name == "download_parallel"),
        r.figures
            .iter()
            .find(|f| f.name == "download_one_connection"),
    ) && o.median > 0.0
    {
        println!(
            "  parallel parts and files bring {:.2}× over one connection",
            p.median / o.median
        );
    }
    for s in &r.skipped {
        println!("  not measured ({}): {}", s.part, s.reason);
    }
}
