//! Analytics ingest benchmark (run by scripts/bench_analytics.sh): records written into a fresh SQLite file per
//! run, through the recorder (bounded queue, batched transactions), paced so nothing is dropped; prints events/s per
//! run and the median. Usage: `bench_analytics [EVENTS=200000] [RUNS=5]`.

use std::time::{Duration, Instant};

use ema::engine::analytics::{DbUrl, Record, Recorder, kind};

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let events: u64 = args.get(1).and_then(|s| s.parse().ok()).unwrap_or(200_000);
    let runs: usize = args.get(2).and_then(|s| s.parse().ok()).unwrap_or(5);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let mut rates = Vec::new();
    for run in 1..=runs {
        let dir = tempfile::tempdir().unwrap();
        let url = DbUrl::sqlite_file(&dir.path().join("analytics.db"));
        let (rate, dropped) = rt.block_on(async {
            let rec = Recorder::start(url);
            // Open the database before timing.
            rec.record(Record::new(kind::MODEL_SERVED, Some("warm/up")));
            assert!(rec.flush(Duration::from_secs(10)).await);
            let t = Instant::now();
            let mut sent = 0u64;
            while sent < events {
                // Pace at the queue: never more than half of it outstanding, so the figure is the writer's.
                let s = rec.stats();
                if s.accepted - s.written > 16_000 {
                    tokio::time::sleep(Duration::from_micros(200)).await;
                    continue;
                }
                for _ in 0..1000 {
                    let mut r = Record::new(kind::MODEL_REQUESTED, Some("bench/model")).face("cli");
                    r.duration_ms = Some(12);
                    rec.record(r);
                }
                sent += 1000;
            }
            assert!(rec.flush(Duration::from_secs(60)).await);
            let secs = t.elapsed().as_secs_f64();
            let st = rec.shutdown(Duration::from_secs(5)).await;
            (events as f64 / secs, st.dropped)
        });
        println!("run {run}: {rate:.0} events/s ({events} events, {dropped} dropped)");
        rates.push(rate);
    }
    rates.sort_by(|a, b| a.total_cmp(b));
    println!(
        "analytics ingest into SQLite: median {:.0} events/s over {runs} runs (goal >= 50000)",
        rates[rates.len() / 2]
    );
}
