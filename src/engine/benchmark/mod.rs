//! `ema benchmark`: figures measured on this machine (download throughput, parallel and through one connection;
//! API latency; read throughput of installed models), kept as baselines, and compared with them using a noise band
//! computed from the repeated runs — a regression is a change beyond the noise, never a single slow sample.

pub mod measure;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::engine::atomic::write_json_atomic;
use crate::engine::error::{EmaError, Result};

/// The smallest noise band: two runs that differ by less than this are the same.
pub const MIN_NOISE: f64 = 0.05;
/// The largest noise band used to judge (a figure noisier than this is reported, but judged against 50 %).
pub const MAX_NOISE: f64 = 0.5;
/// The baseline file's format.
pub const BASELINE_FORMAT: &str = "ema-benchmark-baseline/1";

/// One measured figure: its samples (one per repetition) and their median.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Figure {
    /// `download_parallel`, `download_one_connection`, `api_p50`, `api_p99`, `read:<model id>`.
    pub name: String,
    /// `MB/s` or `ms`.
    pub unit: String,
    /// Throughputs are better higher, latencies lower.
    pub higher_is_better: bool,
    pub median: f64,
    pub samples: Vec<f64>,
    /// What was measured, for people.
    pub detail: String,
    /// What the figure was measured with: configuration keys (e.g. `downloads.connections_per_file`) and, for
    /// downloads, the `hub` endpoint — so advice read later knows what the figure says.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub settings: BTreeMap<String, serde_json::Value>,
}

impl Figure {
    pub fn new(
        name: &str,
        unit: &str,
        higher_is_better: bool,
        samples: Vec<f64>,
        detail: String,
    ) -> Self {
        Figure {
            name: name.to_string(),
            unit: unit.to_string(),
            higher_is_better,
            median: median(&samples),
            samples,
            detail,
            settings: BTreeMap::new(),
        }
    }

    /// The relative spread of the samples around their median (0 for fewer than two samples).
    pub fn spread(&self) -> f64 {
        spread(&self.samples, self.median)
    }
}

/// A part that was not measured, and why.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Skipped {
    pub part: String,
    pub reason: String,
}

/// What one `ema benchmark` run measured.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Report {
    pub measured_at: String,
    pub repetitions: usize,
    pub figures: Vec<Figure>,
    pub skipped: Vec<Skipped>,
}

/// The saved baseline: the figures of the run saved with `--save-baseline`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Baseline {
    pub format: String,
    pub saved_at: String,
    pub figures: BTreeMap<String, Figure>,
}

/// How a figure compares with its baseline.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Verdict {
    /// Better than the baseline beyond the noise band.
    Better,
    /// Within the noise band.
    Same,
    /// Worse than the baseline beyond the noise band.
    Regressed,
    /// No baseline for this figure.
    New,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Comparison {
    pub name: String,
    pub unit: String,
    pub now: f64,
    pub baseline: Option<f64>,
    /// now / baseline.
    pub ratio: Option<f64>,
    /// The relative change judged as noise (from both runs' spreads, at least [`MIN_NOISE`]).
    pub noise_band: f64,
    pub verdict: Verdict,
}

pub fn median(v: &[f64]) -> f64 {
    if v.is_empty() {
        return 0.0;
    }
    let mut s = v.to_vec();
    s.sort_by(|a, b| a.total_cmp(b));
    let n = s.len();
    if n % 2 == 1 {
        s[n / 2]
    } else {
        (s[n / 2 - 1] + s[n / 2]) / 2.0
    }
}

fn spread(samples: &[f64], median: f64) -> f64 {
    if samples.len() < 2 || median <= 0.0 {
        return 0.0;
    }
    samples
        .iter()
        .map(|x| (x - median).abs() / median)
        .fold(0.0, f64::max)
}

/// Compare every figure of `now` with the baseline's figure of the same name. The noise band is the larger spread
/// of the two runs' repetitions (at least [`MIN_NOISE`], at most [`MAX_NOISE`]).
pub fn compare(now: &Report, baseline: Option<&Baseline>) -> Vec<Comparison> {
    now.figures
        .iter()
        .map(|f| {
            let base = baseline.and_then(|b| b.figures.get(&f.name));
            let noise = base
                .map_or(f.spread(), |b| f.spread().max(b.spread()))
                .clamp(MIN_NOISE, MAX_NOISE);
            let (ratio, verdict) = match base {
                Some(b) if b.median > 0.0 => {
                    let r = f.median / b.median;
                    // Relative change in the direction that is better.
                    let gain = if f.higher_is_better {
                        r - 1.0
                    } else {
                        1.0 / r.max(1e-12) - 1.0
                    };
                    let v = if gain > noise {
                        Verdict::Better
                    } else if gain < -noise {
                        Verdict::Regressed
                    } else {
                        Verdict::Same
                    };
                    (Some(r), v)
                }
                _ => (None, Verdict::New),
            };
            Comparison {
                name: f.name.clone(),
                unit: f.unit.clone(),
                now: f.median,
                baseline: base.map(|b| b.median),
                ratio,
                noise_band: noise,
                verdict,
            }
        })
        .collect()
}

/// Where baselines are kept: `<cache>/benchmarks/baseline.json`.
pub fn baseline_path(cache_dir: &Path) -> PathBuf {
    cache_dir.join("benchmarks").join("baseline.json")
}

/// The saved baseline, if any. A damaged file is an error naming it (delete it or save a new baseline).
pub fn load_baseline(path: &Path) -> Result<Option<Baseline>> {
    let bytes = match std::fs::read(path) {
        Ok(b) => b,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(EmaError::io("cannot read", path, e)),
    };
    let b: Baseline = serde_json::from_slice(&bytes).map_err(|e| {
        EmaError::Config(format!(
            "the benchmark baseline {} is damaged ({e}); delete it or save a new one with `ema benchmark \
             --save-baseline`",
            path.display()
        ))
    })?;
    if b.format != BASELINE_FORMAT {
        return Err(EmaError::Config(format!(
            "the benchmark baseline {} has format {:?}, this ema reads {BASELINE_FORMAT:?}; save a new one with `ema \
             benchmark --save-baseline`",
            path.display(),
            b.format
        )));
    }
    Ok(Some(b))
}

/// Save `report` as the baseline (atomically), merged over the figures of an earlier baseline that this run did not
/// measure (a run without `--test-api-response` keeps the API baseline).
pub fn save_baseline(path: &Path, report: &Report, earlier: Option<&Baseline>) -> Result<Baseline> {
    let mut figures = earlier.map(|b| b.figures.clone()).unwrap_or_default();
    for f in &report.figures {
        figures.insert(f.name.clone(), f.clone());
    }
    let b = Baseline {
        format: BASELINE_FORMAT.into(),
        saved_at: report.measured_at.clone(),
        figures,
    };
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).map_err(|e| EmaError::io("cannot create", dir, e))?;
    }
    write_json_atomic(path, &b)?;
    Ok(b)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn report(figs: Vec<Figure>) -> Report {
        Report {
            measured_at: "2026-12-02T00:00:00Z".into(),
            repetitions: 3,
            figures: figs,
            skipped: vec![],
        }
    }

    fn base(figs: Vec<Figure>) -> Baseline {
        Baseline {
            format: BASELINE_FORMAT.into(),
            saved_at: "then".into(),
            figures: figs.into_iter().map(|f| (f.name.clone(), f)).collect(),
        }
    }

    fn thr(samples: &[f64]) -> Figure {
        Figure::new(
            "download_parallel",
            "MB/s",
            true,
            samples.to_vec(),
            String::new(),
        )
    }

    fn lat(samples: &[f64]) -> Figure {
        Figure::new("api_p99", "ms", false, samples.to_vec(), String::new())
    }

    #[test]
    fn a_drop_beyond_the_noise_is_a_regression_and_a_wobble_inside_it_is_not() {
        let b = base(vec![thr(&[500.0, 510.0, 490.0]), lat(&[2.0, 2.1, 1.9])]);
        // 20 % slower, runs within 2 %: regressed.
        let c = compare(&report(vec![thr(&[400.0, 402.0, 398.0])]), Some(&b));
        assert_eq!(c[0].verdict, Verdict::Regressed, "{c:?}");
        assert!((c[0].ratio.unwrap() - 0.8).abs() < 1e-9);
        // 3 % slower: noise.
        let c = compare(&report(vec![thr(&[485.0, 490.0, 480.0])]), Some(&b));
        assert_eq!(c[0].verdict, Verdict::Same, "{c:?}");
        // 20 % slower but the runs themselves spread 30 %: noise, not a regression.
        let c = compare(&report(vec![thr(&[400.0, 280.0, 520.0])]), Some(&b));
        assert_eq!(c[0].verdict, Verdict::Same, "{c:?}");
        assert!(c[0].noise_band >= 0.29, "{c:?}");
        // Latency: lower is better.
        let c = compare(&report(vec![lat(&[3.0, 3.0, 3.1])]), Some(&b));
        assert_eq!(c[0].verdict, Verdict::Regressed, "{c:?}");
        let c = compare(&report(vec![lat(&[1.0, 1.0, 1.0])]), Some(&b));
        assert_eq!(c[0].verdict, Verdict::Better, "{c:?}");
        // Nothing to compare with.
        let c = compare(&report(vec![thr(&[1.0])]), None);
        assert_eq!(c[0].verdict, Verdict::New);
        assert_eq!(c[0].noise_band, MIN_NOISE);
    }

    #[test]
    fn a_saved_baseline_keeps_figures_this_run_did_not_measure_and_a_damaged_one_is_named() {
        let d = tempfile::tempdir().unwrap();
        let p = baseline_path(d.path());
        assert!(load_baseline(&p).unwrap().is_none());
        let first = save_baseline(&p, &report(vec![thr(&[1.0]), lat(&[2.0])]), None).unwrap();
        let second = save_baseline(&p, &report(vec![thr(&[5.0])]), Some(&first)).unwrap();
        assert_eq!(second.figures["download_parallel"].median, 5.0);
        assert_eq!(second.figures["api_p99"].median, 2.0);
        assert_eq!(load_baseline(&p).unwrap().unwrap(), second);
        std::fs::write(&p, b"{not json").unwrap();
        let e = load_baseline(&p).unwrap_err();
        assert_eq!(e.exit_code(), 2);
        assert!(e.to_string().contains("--save-baseline"), "{e}");
    }
}
