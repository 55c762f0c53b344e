//! `check-system`: the migration guide's system requirements check, measured rather than eyeballed — ema's version,
//! disk free against the guide's 50 GB minimum / 200 GB recommendation and against what the store and a backup of
//! it need, memory against 8 / 16 GB, the hub reached with a real request, and write permission on the store.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use serde::Serialize;

use crate::engine::download::disk::human_bytes;

const GB: u64 = 1_000_000_000;

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    Pass,
    Warn,
    Fail,
}

impl Status {
    pub fn as_str(&self) -> &'static str {
        match self {
            Status::Pass => "pass",
            Status::Warn => "warn",
            Status::Fail => "fail",
        }
    }
}

/// One line of the check.
#[derive(Debug, Clone, Serialize)]
pub struct Check {
    pub name: &'static str,
    pub status: Status,
    /// The measured figure.
    pub figure: String,
    /// The rule it was held to, and what to do when it is not met.
    pub detail: String,
}

fn check(name: &'static str, status: Status, figure: String, detail: impl Into<String>) -> Check {
    Check {
        name,
        status,
        figure,
        detail: detail.into(),
    }
}

/// What to check.
pub struct SystemCheckInput {
    pub models_dir: PathBuf,
    /// The hub to reach (`HF_ENDPOINT`); None when offline by choice.
    pub hub_endpoint: Option<String>,
    pub hub_timeout: Duration,
}

/// Run every check. Never fails as a whole: each problem is a line.
pub async fn check_system(input: &SystemCheckInput) -> Vec<Check> {
    let mut out = vec![check(
        "version",
        Status::Pass,
        format!("ema {}", env!("CARGO_PKG_VERSION")),
        "the guide's Python version check: ema is one binary with no runtime to install",
    )];
    out.extend(disk(&input.models_dir));
    out.push(memory());
    out.push(hub(input).await);
    out.push(writable(&input.models_dir));
    out
}

/// The worst status of a set of checks.
pub fn overall(checks: &[Check]) -> Status {
    checks
        .iter()
        .map(|c| c.status)
        .max()
        .unwrap_or(Status::Pass)
}

/// The nearest existing directory at or above `p`.
pub fn existing_ancestor(p: &Path) -> PathBuf {
    p.ancestors()
        .find(|a| a.exists())
        .map(Path::to_path_buf)
        .unwrap_or_else(|| PathBuf::from("/"))
}

fn disk(models_dir: &Path) -> Vec<Check> {
    let at = existing_ancestor(models_dir);
    let free = match fs4::available_space(&at) {
        Ok(f) => f,
        Err(e) => {
            return vec![check(
                "disk",
                Status::Fail,
                "unknown".into(),
                format!("cannot read the free space of {}: {e}", at.display()),
            )];
        }
    };
    let status = if free < 50 * GB {
        Status::Fail
    } else if free < 200 * GB {
        Status::Warn
    } else {
        Status::Pass
    };
    let mut v = vec![check(
        "disk",
        status,
        format!("{} free at {}", human_bytes(free), at.display()),
        match status {
            Status::Fail => {
                "below the guide's 50 GB minimum: free space or choose a models directory on a larger disk"
            }
            Status::Warn => "meets the 50 GB minimum, below the recommended 200 GB",
            Status::Pass => "meets the recommended 200 GB",
        },
    )];
    let used = crate::engine::inventory::dir_size(models_dir);
    let status = if used > free {
        Status::Fail
    } else {
        Status::Pass
    };
    v.push(check(
        "disk for a backup",
        status,
        format!("models directory {}, {} free", human_bytes(used), human_bytes(free)),
        if status == Status::Fail {
            "a copied backup of the models directory does not fit on this filesystem: back up to another disk \
             (ema backup --dest) or use a reflink filesystem (XFS, btrfs), where a backup takes no space"
        } else {
            "a full copy of the models directory fits beside it"
        },
    ));
    v
}

/// The machine's memory (`MemTotal` of /proc/meminfo), None when unreadable.
pub fn mem_total() -> Option<u64> {
    std::fs::read_to_string("/proc/meminfo").ok().and_then(|s| {
        let line = s.lines().find(|l| l.starts_with("MemTotal:"))?;
        line.split_whitespace()
            .nth(1)?
            .parse::<u64>()
            .ok()
            .map(|kb| kb * 1024)
    })
}

fn memory() -> Check {
    let total = mem_total();
    let Some(total) = total else {
        return check(
            "memory",
            Status::Warn,
            "unknown".into(),
            "cannot read /proc/meminfo; check by hand",
        );
    };
    // MemTotal excludes what the kernel reserves: allow half a gigabyte below the round figure.
    let slack = 512 << 20;
    let status = if total + slack < 8 << 30 {
        Status::Fail
    } else if total + slack < 16 << 30 {
        Status::Warn
    } else {
        Status::Pass
    };
    check(
        "memory",
        status,
        human_bytes(total),
        match status {
            Status::Fail => "below the guide's 8 GB minimum",
            Status::Warn => "meets the 8 GB minimum, below the recommended 16 GB",
            Status::Pass => "meets the recommended 16 GB",
        },
    )
}

/// The hub reached with a real API request (not checked in offline mode).
pub async fn hub(input: &SystemCheckInput) -> Check {
    let Some(endpoint) = &input.hub_endpoint else {
        return check(
            "hub",
            Status::Warn,
            "not checked".into(),
            "HF_HUB_OFFLINE is set: downloads and repairs from the hub are off",
        );
    };
    let url = format!("{}/api/models?limit=1", endpoint.trim_end_matches('/'));
    let client = match reqwest::Client::builder()
        .timeout(input.hub_timeout)
        .connect_timeout(input.hub_timeout)
        .build()
    {
        Ok(c) => c,
        Err(e) => return check("hub", Status::Fail, "no client".into(), e.to_string()),
    };
    let t = Instant::now();
    match client.get(&url).send().await {
        Ok(r) => {
            let ms = t.elapsed().as_millis();
            let ok = r.status().is_success();
            check(
                "hub",
                if ok { Status::Pass } else { Status::Warn },
                format!("{endpoint} answered {} in {ms} ms", r.status().as_u16()),
                if ok {
                    "the guide's `ping huggingface.co`, as a real API request".to_string()
                } else {
                    "reachable, but the listing was refused: check HF_TOKEN or the mirror"
                        .to_string()
                },
            )
        }
        Err(e) => check(
            "hub",
            Status::Fail,
            format!("{endpoint} unreachable"),
            format!(
                "{} (after {} ms); check HF_ENDPOINT and the network, or set HF_HUB_OFFLINE=1 to work offline",
                if e.is_timeout() {
                    "timed out"
                } else {
                    "no answer"
                },
                t.elapsed().as_millis()
            ),
        ),
    }
}

fn writable(models_dir: &Path) -> Check {
    let at = existing_ancestor(models_dir);
    match tempfile::Builder::new()
        .prefix(".ema-write-test")
        .tempfile_in(&at)
    {
        Ok(f) => {
            drop(f);
            check(
                "store writable",
                Status::Pass,
                at.display().to_string(),
                if at == models_dir {
                    "ema can write the models directory"
                } else {
                    "the models directory does not exist yet; ema can create it here"
                },
            )
        }
        Err(e) => check(
            "store writable",
            Status::Fail,
            at.display().to_string(),
            format!("cannot write here ({e}); run as the user that owns it or fix its permissions"),
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn every_line_has_a_figure_and_an_unreachable_hub_fails_fast() {
        let d = tempfile::tempdir().unwrap();
        std::fs::write(d.path().join("w.bin"), vec![0u8; 4096]).unwrap();
        let input = SystemCheckInput {
            models_dir: d.path().to_path_buf(),
            hub_endpoint: Some("http://127.0.0.1:1".into()),
            hub_timeout: Duration::from_secs(2),
        };
        let t = Instant::now();
        let checks = check_system(&input).await;
        assert!(t.elapsed() < Duration::from_secs(10));
        let names: Vec<_> = checks.iter().map(|c| c.name).collect();
        assert_eq!(
            names,
            vec![
                "version",
                "disk",
                "disk for a backup",
                "memory",
                "hub",
                "store writable"
            ]
        );
        let hub = &checks[4];
        assert_eq!(hub.status, Status::Fail);
        assert!(hub.detail.contains("HF_ENDPOINT"), "{}", hub.detail);
        assert_eq!(checks[5].status, Status::Pass);
        assert!(checks[2].figure.contains("4.0 KiB"), "{}", checks[2].figure);
        assert_eq!(overall(&checks), Status::Fail);
    }
}
