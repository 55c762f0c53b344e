//! The advice rules: each a pure function of the [`Inputs`], recommending one change with the figures it rests on,
//! or saying why it recommends nothing (missing evidence, or evidence that the setting is right).

use serde_json::Value;

use super::{Inputs, Recommendation, Takes};
use crate::engine::benchmark::Figure;
use crate::engine::config::LIVE_KEYS;
use crate::engine::download::disk::human_bytes;

/// What one rule made of the inputs.
pub enum Outcome {
    Recommend(Box<Recommendation>),
    /// The rule's name and why it recommends nothing.
    Note(&'static str, String),
}

pub type Rule = fn(&Inputs) -> Outcome;

/// Every rule, in the order recommendations are shown.
pub const RULES: &[Rule] = &[
    connections_per_file,
    concurrent_files,
    parallel_threshold,
    bandwidth_limit,
    health_interval,
    storage_budget,
];

/// More connections are advised only up to this many per file.
pub const MAX_ADVISED_CONNECTIONS: u64 = 16;
/// Connections that each bring at least this share of a lone connection's rate mean each one is capped.
pub const NEAR_LINEAR: f64 = 0.75;
/// Below this model read throughput (MB/s) the disk, not the network, limits concurrent files.
pub const SLOW_READ_MBPS: f64 = 200.0;
/// Files at once on a slow or rotational disk.
pub const SLOW_DISK_FILES: u64 = 2;
/// A file one connection fetches within this many seconds gains little from being split.
pub const SPLIT_SECONDS: f64 = 2.0;
/// Recorded downloads needed before their retries say anything.
pub const MIN_HISTORY: u64 = 5;
/// The share of the best recorded rate a bandwidth cap leaves to ema.
pub const CAP_SHARE: f64 = 0.8;
/// A full verification taking more than this share of its interval is too often …
pub const MAX_VERIFY_DUTY: f64 = 0.10;
/// … and the advised interval brings it to this share.
pub const TARGET_VERIFY_DUTY: f64 = 0.02;

const BENCH_DOWNLOADS: &str =
    "run `ema benchmark --test-downloads --model REPO --save-baseline` to measure the hub's link";
const BENCH_READS: &str =
    "run `ema benchmark --test-model-loading --save-baseline` with models installed";

fn figure<'a>(i: &'a Inputs, name: &str) -> Option<&'a Figure> {
    i.baseline.as_ref()?.figures.get(name)
}

/// The median of the installed models' read throughputs (MB/s), and how many models it covers.
pub fn read_rate(i: &Inputs) -> Option<(f64, usize)> {
    let rates: Vec<f64> = i
        .baseline
        .as_ref()?
        .figures
        .values()
        .filter(|f| f.name.starts_with("read:") && f.median > 0.0)
        .map(|f| f.median)
        .collect();
    (!rates.is_empty()).then(|| (crate::engine::benchmark::median(&rates), rates.len()))
}

/// Is this endpoint this machine (the built-in sample hub)?
pub fn is_loopback(endpoint: &str) -> bool {
    let rest = endpoint.split("://").nth(1).unwrap_or(endpoint);
    let host = rest.split('/').next().unwrap_or("");
    let host = if let Some(v6) = host.strip_prefix('[') {
        v6.split(']').next().unwrap_or("")
    } else {
        host.rsplit_once(':').map_or(host, |(h, _)| h)
    };
    host == "localhost"
        || host
            .parse::<std::net::IpAddr>()
            .is_ok_and(|a| a.is_loopback())
}

/// The value of `section.key` in force (defaults filled in).
pub fn value_in_force(i: &Inputs, key: &str) -> Value {
    let (sec, k) = key.split_once('.').unwrap_or((key, ""));
    serde_json::to_value(&i.config)
        .ok()
        .and_then(|v| v.get(sec).and_then(|s| s.get(k)).cloned())
        .unwrap_or(Value::Null)
}

/// Whether a reload applies `key`, or only a restart.
pub fn takes(key: &str) -> Takes {
    if LIVE_KEYS.contains(&key) {
        Takes::Live
    } else {
        Takes::Restart
    }
}

fn change(i: &Inputs, key: &str, title: String, evidence: Vec<String>, to: Value) -> Outcome {
    Outcome::Recommend(Box::new(Recommendation {
        id: key.to_string(),
        title,
        evidence,
        key: Some(key.to_string()),
        from: Some(value_in_force(i, key)),
        to: Some(to),
        takes: takes(key),
        action: None,
    }))
}

fn history_line(i: &Inputs) -> Option<String> {
    let d = i.downloads.as_ref()?;
    let p50 = d.rate_p50_bytes_per_sec?;
    Some(format!(
        "recorded downloads (usage analytics): {} completed, median rate {:.1} MB/s",
        d.completed,
        p50 / 1e6
    ))
}

/// The parallel and one-connection download figures of the baseline, measured against a hub that is not this
/// machine; else the note saying what is missing.
fn link_figures<'a>(
    i: &'a Inputs,
    rule: &'static str,
) -> Result<(&'a Figure, &'a Figure, String), Outcome> {
    let (Some(p), Some(o)) = (
        figure(i, "download_parallel"),
        figure(i, "download_one_connection"),
    ) else {
        return Err(Outcome::Note(
            rule,
            format!("the benchmark baseline has no download figures: {BENCH_DOWNLOADS}"),
        ));
    };
    if p.median <= 0.0 || o.median <= 0.0 {
        return Err(Outcome::Note(
            rule,
            format!("the baseline's download figures are zero: {BENCH_DOWNLOADS}"),
        ));
    }
    let hub = p
        .settings
        .get("hub")
        .and_then(Value::as_str)
        .unwrap_or("")
        .to_string();
    if hub.is_empty() || is_loopback(&hub) {
        return Err(Outcome::Note(
            rule,
            format!(
                "the download baseline was measured {}: it shows what this machine's disk and CPU sustain, not \
                 what the hub's link gives each connection; {BENCH_DOWNLOADS}",
                if hub.is_empty() {
                    "against an unrecorded hub".to_string()
                } else {
                    format!("on loopback ({hub}, the built-in sample hub)")
                }
            ),
        ));
    }
    Ok((p, o, hub))
}

fn setting(f: &Figure, key: &str) -> Option<u64> {
    f.settings.get(key).and_then(Value::as_u64)
}

/// Capped per-connection rates with a near-linear parallel gain → more connections per file.
pub fn connections_per_file(i: &Inputs) -> Outcome {
    const KEY: &str = "downloads.connections_per_file";
    let (p, o, hub) = match link_figures(i, KEY) {
        Ok(x) => x,
        Err(n) => return n,
    };
    let now = i.config.downloads.connections_per_file as u64;
    let (measured, assumed) = match setting(p, KEY) {
        Some(c) => (c, ""),
        None => (now, " (as configured now: the baseline does not record it)"),
    };
    let gain = p.median / o.median;
    if measured <= 1 {
        return Outcome::Note(
            KEY,
            "the download baseline was measured with one connection per file: it cannot show what more bring"
                .into(),
        );
    }
    let share = gain / measured as f64;
    if share < NEAR_LINEAR {
        return Outcome::Note(
            KEY,
            format!(
                "{measured} connections bring {gain:.2}× one connection ({:.0} % of linear): the link or the disk, \
                 not each connection, is the limit; more connections would not help",
                share * 100.0
            ),
        );
    }
    if now >= MAX_ADVISED_CONNECTIONS {
        return Outcome::Note(
            KEY,
            format!("already {now} connections per file, the most ema advises"),
        );
    }
    let to = (now.max(measured) * 2).min(MAX_ADVISED_CONNECTIONS);
    let mut ev = vec![
        format!(
            "measured against {hub}: one connection {:.1} MB/s",
            o.median
        ),
        format!(
            "{measured} connections per file{assumed}: {:.1} MB/s, {gain:.2}× one connection ({:.1} MB/s each, {:.0} % \
             of a lone connection's rate)",
            p.median,
            p.median / measured as f64,
            share * 100.0
        ),
        format!(
            "each added connection brought at least {:.0} % of a lone one's rate: each connection is capped (by the \
             hub or a proxy), the link is not full",
            NEAR_LINEAR * 100.0
        ),
    ];
    ev.extend(history_line(i));
    change(
        i,
        KEY,
        format!("Use {to} parallel connections per large file"),
        ev,
        to.into(),
    )
}

/// A rotational or slow disk (or few cores) → fewer files downloaded at once.
pub fn concurrent_files(i: &Inputs) -> Outcome {
    const KEY: &str = "downloads.max_concurrent_downloads";
    let now = i.config.downloads.max_concurrent_downloads as u64;
    let read = read_rate(i);
    let rot = i.system.disk_rotational;
    if rot.is_none() && read.is_none() {
        return Outcome::Note(
            KEY,
            format!(
                "the disk type is unknown (no /sys/block entry for the models directory's device) and the baseline \
                 has no model read figures: {BENCH_READS}"
            ),
        );
    }
    let cores = i.system.cores.max(1) as u64;
    let mut to = now;
    let mut ev = vec![format!("{cores} CPU core(s)")];
    // Virtual disks (virtio `vd*`, Xen `xvd*`) report themselves rotational whatever lies beneath: the flag alone
    // is no evidence there.
    let dev = i.system.disk_device.as_deref().unwrap_or("");
    let virtual_disk = dev.starts_with("vd") || dev.starts_with("xvd");
    if rot == Some(true) && virtual_disk && read.is_none() {
        return Outcome::Note(
            KEY,
            format!(
                "{dev} is a virtual disk, which reports itself rotational whatever lies beneath; measure it: \
                 {BENCH_READS}"
            ),
        );
    }
    if rot == Some(true) && !virtual_disk {
        to = to.min(SLOW_DISK_FILES);
        ev.push(format!(
            "the models directory is on {}, a rotational disk: files written at once make its head seek between them",
            i.system.disk_device.as_deref().unwrap_or("a device")
        ));
    }
    if let Some((r, n)) = read
        && r < SLOW_READ_MBPS
    {
        to = to.min(SLOW_DISK_FILES);
        ev.push(format!(
            "installed models read at {r:.0} MB/s (median of {n} model(s), `ema benchmark`): below {SLOW_READ_MBPS:.0} \
             MB/s the disk, not the network, limits how many files can be written at once"
        ));
    }
    let cpu_cap = (cores * 2).max(2);
    if to > cpu_cap {
        to = cpu_cap;
        ev.push(format!(
            "every file is hashed while it streams: more than 2 files per core ({cores} core(s)) only queue for the CPU"
        ));
    }
    if to >= now {
        let disk = match (rot, read) {
            (Some(true), _) if !virtual_disk => "a rotational disk".to_string(),
            (_, Some((r, _))) => format!("a disk reading {r:.0} MB/s"),
            _ => "a non-rotational disk".to_string(),
        };
        return Outcome::Note(
            KEY,
            format!("{now} file(s) at once suits {disk} and {cores} core(s)"),
        );
    }
    change(
        i,
        KEY,
        format!("Download {to} files at once"),
        ev,
        to.into(),
    )
}

/// The smallest power of two at least `x`, within `lo..=hi`.
fn pow2_within(x: f64, lo: u64, hi: u64) -> u64 {
    let mut v = lo;
    while (v as f64) < x && v < hi {
        v *= 2;
    }
    v.min(hi)
}

/// Split files from the size one connection needs more than [`SPLIT_SECONDS`] for.
pub fn parallel_threshold(i: &Inputs) -> Outcome {
    const KEY: &str = "downloads.parallel_threshold_mb";
    let (p, o, hub) = match link_figures(i, KEY) {
        Ok(x) => x,
        Err(n) => return n,
    };
    let gain = p.median / o.median;
    if gain < 1.5 {
        return Outcome::Note(
            KEY,
            format!(
                "parallel parts bring only {gain:.2}× one connection: where files are split matters little"
            ),
        );
    }
    let now = i.config.downloads.parallel_threshold_mb;
    let ideal = pow2_within(o.median * SPLIT_SECONDS, 8, 4096);
    if ideal < now * 2 && ideal * 2 > now {
        return Outcome::Note(
            KEY,
            format!(
                "{now} MB is within a factor of two of {ideal} MB, what one connection fetches in {SPLIT_SECONDS:.0} s"
            ),
        );
    }
    let ev = vec![
        format!(
            "measured against {hub}: one connection {:.1} MB/s, parallel parts {:.1} MB/s ({gain:.2}×)",
            o.median, p.median
        ),
        format!(
            "one connection fetches a {ideal} MB file in about {SPLIT_SECONDS:.0} s: smaller files gain little from \
             parts, larger ones gain up to {gain:.2}×"
        ),
    ];
    change(
        i,
        KEY,
        format!("Split files of {ideal} MB and more into parallel parts"),
        ev,
        ideal.into(),
    )
}

/// Retries and failures of ema's own downloads (a saturated link) → a bandwidth cap below the best recorded rate.
pub fn bandwidth_limit(i: &Inputs) -> Outcome {
    const KEY: &str = "downloads.bandwidth_limit_mbps";
    let Some(d) = &i.downloads else {
        return Outcome::Note(
            KEY,
            format!(
                "no recorded download history ({}): ema judges a saturated link only by what its own downloads suffer",
                i.downloads_missing
                    .as_deref()
                    .unwrap_or("usage analytics unavailable")
            ),
        );
    };
    let ended = d.completed + d.failed;
    if ended < MIN_HISTORY {
        return Outcome::Note(
            KEY,
            format!(
                "{ended} recorded download(s) ended; at least {MIN_HISTORY} are needed to judge the link"
            ),
        );
    }
    let now = i.config.downloads.bandwidth_limit_mbps;
    if now > 0.0 {
        return Outcome::Note(KEY, format!("a cap of {now} Mbps is already set"));
    }
    let per = d.retries as f64 / ended as f64;
    let fail = d.failed as f64 / ended as f64;
    if per < 1.0 && fail < 0.2 {
        return Outcome::Note(
            KEY,
            format!(
                "{ended} recorded downloads, {} retries, {} failed: no sign of a saturated link (ema cannot see other \
                 programs' traffic; set a cap by hand if they suffer)",
                d.retries, d.failed
            ),
        );
    }
    let Some(best) = d.rate_p95_bytes_per_sec.or(d.rate_p50_bytes_per_sec) else {
        return Outcome::Note(
            KEY,
            "downloads struggle, but none recorded a rate to set a cap from".into(),
        );
    };
    let mbps = best * 8.0 / 1e6;
    let to = (mbps * CAP_SHARE).round().max(1.0);
    let ev = vec![
        format!(
            "{ended} recorded downloads: {} retries ({per:.1} per download), {} failed ({:.0} %)",
            d.retries,
            d.failed,
            fail * 100.0
        ),
        format!("their p95 rate {:.1} MB/s = {mbps:.0} Mbps", best / 1e6),
        format!(
            "stalls and retries of ema's own downloads are the sign of a saturated link ema can measure; a cap at \
             {:.0} % of the best recorded rate leaves the rest to other traffic",
            CAP_SHARE * 100.0
        ),
    ];
    change(
        i,
        KEY,
        format!("Cap downloads at {to} Mbps"),
        ev,
        serde_json::json!(to),
    )
}

/// Round up to three significant digits.
fn round_up_3(x: f64) -> f64 {
    if x <= 0.0 {
        return 0.0;
    }
    let scale = 10f64.powi(2 - x.log10().floor() as i32);
    (x * scale).ceil() / scale
}

/// A full verification taking a large share of its interval → a longer interval.
pub fn health_interval(i: &Inputs) -> Outcome {
    const KEY: &str = "health_monitoring.check_interval_hours";
    let h = &i.config.health_monitoring;
    if !h.enabled {
        return Outcome::Note(KEY, "health monitoring is off".into());
    }
    let Some((rate, n)) = read_rate(i) else {
        return Outcome::Note(
            KEY,
            format!("the benchmark baseline has no model read figures: {BENCH_READS}"),
        );
    };
    if i.store.bytes == 0 {
        return Outcome::Note(KEY, "the store is empty".into());
    }
    let verify_s = i.store.bytes as f64 / 1e6 / rate;
    let interval_s = h.check_interval_hours * 3600.0;
    let duty = verify_s / interval_s;
    if duty <= MAX_VERIFY_DUTY {
        return Outcome::Note(
            KEY,
            format!(
                "a full verification reads {} in at least {verify_s:.1} s: {:.1} % of every {} h",
                human_bytes(i.store.bytes),
                duty * 100.0,
                h.check_interval_hours
            ),
        );
    }
    let hours = verify_s / TARGET_VERIFY_DUTY / 3600.0;
    let to = if hours >= 1.0 {
        hours.ceil()
    } else {
        round_up_3(hours)
    };
    let ev = vec![
        format!(
            "the store holds {} in {} file(s) of {} model(s)",
            human_bytes(i.store.bytes),
            i.store.files,
            i.store.models
        ),
        format!(
            "installed models read at {rate:.0} MB/s (median of {n}, `ema benchmark`): a full verification takes at \
             least {verify_s:.1} s"
        ),
        format!(
            "every {} h that is {:.0} % of the time spent verifying (above {:.0} %); every {to} h it is {:.0} %",
            h.check_interval_hours,
            duty * 100.0,
            MAX_VERIFY_DUTY * 100.0,
            TARGET_VERIFY_DUTY * 100.0
        ),
    ];
    change(
        i,
        KEY,
        format!("Verify every model fully every {to} h"),
        ev,
        serde_json::json!(to),
    )
}

/// The store above its cleanup threshold → a larger budget when the disk has room, else a cleanup.
pub fn storage_budget(i: &Inputs) -> Outcome {
    const KEY: &str = "storage.max_storage_gb";
    let s = &i.config.storage;
    let t = s.cleanup_threshold_percent as f64;
    let budget = s.max_storage_gb * 1e9;
    let used = i.store.bytes as f64;
    let pct = used * 100.0 / budget;
    let disk_pct = match (i.system.disk_total_bytes, i.system.disk_free_bytes) {
        (Some(tot), Some(free)) if tot > 0 => {
            Some((tot - free.min(tot)) as f64 * 100.0 / tot as f64)
        }
        _ => None,
    };
    let disk_over = disk_pct.is_some_and(|d| d >= t);
    if pct < t && !disk_over {
        return Outcome::Note(
            KEY,
            format!(
                "the store uses {pct:.1} % of its {} GB budget{}, below the {t:.0} % cleanup threshold",
                s.max_storage_gb,
                disk_pct
                    .map(|d| format!(" and the disk is {d:.0} % full"))
                    .unwrap_or_default()
            ),
        );
    }
    let mut ev = vec![format!(
        "the store holds {}: {pct:.1} % of its max_storage_gb budget of {} GB (cleanup threshold {t:.0} %)",
        human_bytes(i.store.bytes),
        s.max_storage_gb
    )];
    if let (Some(d), Some(free)) = (disk_pct, i.system.disk_free_bytes) {
        ev.push(format!(
            "the disk is {d:.0} % full, {} free",
            human_bytes(free)
        ));
    }
    let target = (t - 10.0).max(t * 0.5) / 100.0;
    let new_gb = round_up_3(used / target / 1e9);
    let room = i
        .system
        .disk_free_bytes
        .is_some_and(|free| new_gb * 1e9 - used <= free as f64);
    if pct >= t && !disk_over && room {
        ev.push(format!(
            "a budget of {new_gb} GB puts the store at {:.0} %, and the disk has the room",
            target * 100.0
        ));
        return change(
            i,
            KEY,
            format!("Raise the storage budget to {new_gb} GB"),
            ev,
            serde_json::json!(new_gb),
        );
    }
    ev.push(if disk_over {
        "the disk itself is above the threshold: a larger budget would not help".to_string()
    } else {
        "the disk has no room for a budget that brings the store below the threshold".to_string()
    });
    Outcome::Recommend(Box::new(Recommendation {
        id: "storage.cleanup".into(),
        title: "Free space in the store".into(),
        evidence: ev,
        key: None,
        from: None,
        to: None,
        takes: Takes::Manual,
        action: Some(
            "remove models no longer used (`ema status` lists them; delete them in the console), or move the store \
             to a larger disk with `ema move-models`; `ema cleanup` removes stale temporary files"
                .into(),
        ),
    }))
}

#[cfg(test)]
#[path = "rules_tests.rs"]
mod tests;
