//! `enable-feature --test-first`: run a feature's real prerequisites (writable directories, an analytics database
//! that takes a write transaction) against a configuration before switching it on.

use std::path::Path;

use serde::Serialize;

use super::Config;
use super::edit::feature_keys;
use crate::engine::error::Result;

/// One prerequisite check of `enable-feature --test-first`.
#[derive(Debug, Clone, Serialize)]
pub struct Check {
    pub name: String,
    pub ok: bool,
    pub detail: String,
}

/// Prove a directory is usable: it exists (or its nearest existing ancestor lets us create it) and a file can be
/// created, written, synced and removed in it.
fn check_writable_dir(label: &str, dir: &Path) -> Check {
    let mut probe_dir = dir.to_path_buf();
    let exists = dir.is_dir();
    if !exists {
        if dir.exists() {
            return Check {
                name: label.to_string(),
                ok: false,
                detail: format!("{} exists but is not a directory", dir.display()),
            };
        }
        match dir.ancestors().find(|a| a.is_dir()) {
            Some(a) => probe_dir = a.to_path_buf(),
            None => {
                return Check {
                    name: label.to_string(),
                    ok: false,
                    detail: format!("no parent of {} exists", dir.display()),
                };
            }
        }
    }
    let result = (|| -> std::io::Result<()> {
        use std::io::Write;
        let mut f = tempfile::Builder::new()
            .prefix(".ema-selftest.")
            .tempfile_in(&probe_dir)?;
        f.write_all(b"ema self-test")?;
        f.as_file().sync_all()?;
        if exists {
            std::fs::read_dir(dir)?.next().transpose()?;
        }
        Ok(())
    })();
    match result {
        Ok(()) => Check {
            name: label.to_string(),
            ok: true,
            detail: if exists {
                format!("{} is readable and writable", dir.display())
            } else {
                format!(
                    "{} does not exist yet; {} is writable, so it can be created",
                    dir.display(),
                    probe_dir.display()
                )
            },
        },
        Err(e) => Check {
            name: label.to_string(),
            ok: false,
            detail: format!(
                "cannot write in {}: {e}; fix its permissions (e.g. chown/chmod) or change the path in the \
                 configuration",
                probe_dir.display()
            ),
        },
    }
}

/// Open the analytics database (SQLite or PostgreSQL, through the analytics store: schema created or upgraded) and
/// prove it takes a write transaction.
fn check_analytics_db(c: &Config) -> Check {
    let name = "analytics database opens".to_string();
    let url = match crate::engine::analytics::locate(None, c) {
        Ok(u) => u,
        Err(e) => {
            return Check {
                name,
                ok: false,
                detail: e.to_string(),
            };
        }
    };
    let existed = url.sqlite_path().map(|p| p.exists());
    let shown = url.redacted();
    let u = url.clone();
    // A thread of its own with its own runtime: callers may or may not be inside one.
    let r = std::thread::spawn(move || -> Result<i64> {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| crate::engine::EmaError::Other(format!("cannot start a runtime: {e}")))?;
        rt.block_on(async {
            let db = crate::engine::analytics::AnalyticsDb::open(&u).await?;
            db.write(&[], &Default::default()).await?;
            let v = db.schema_version().await;
            db.close().await;
            v
        })
    })
    .join()
    .unwrap_or_else(|_| Err(crate::engine::EmaError::Other("the check panicked".into())));
    match r {
        Ok(v) => Check {
            name,
            ok: true,
            detail: format!(
                "{shown} opens and accepts a write transaction (schema version {v}){}",
                if existed == Some(false) {
                    " (created the database file)"
                } else {
                    ""
                }
            ),
        },
        Err(e) => {
            if existed == Some(false)
                && let Some(p) = url.sqlite_path()
            {
                let _ = std::fs::remove_file(p);
            }
            Check {
                name,
                ok: false,
                detail: format!("{e}; fix it or point analytics.db_url elsewhere"),
            }
        }
    }
}

/// Run the real prerequisites of a feature against a configuration.
pub fn self_test(feature: &str, c: &Config) -> Result<Vec<Check>> {
    feature_keys(feature)?;
    let models = check_writable_dir("models directory writable", &c.storage.models_directory);
    let cache = check_writable_dir("cache directory writable", &c.storage.cache_dir());
    Ok(match feature {
        "health-monitoring" => vec![models],
        "intelligent-fallback" => {
            let readable = match std::fs::read_dir(&c.storage.models_directory) {
                Ok(rd) => Check {
                    name: "installed models listable".to_string(),
                    ok: true,
                    detail: format!(
                        "{} entries in {}",
                        rd.count(),
                        c.storage.models_directory.display()
                    ),
                },
                Err(e) => Check {
                    name: "installed models listable".to_string(),
                    ok: false,
                    detail: format!(
                        "cannot list {}: {e}; suggestions are made from the installed models, so create the \
                         directory or fix storage.models_directory",
                        c.storage.models_directory.display()
                    ),
                },
            };
            vec![readable]
        }
        "usage-analytics" => vec![cache, check_analytics_db(c)],
        _ => vec![models, cache],
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::config::edit::load_for_edit;

    #[test]
    fn self_tests_really_probe() {
        let dir = tempfile::tempdir().unwrap();
        let cfg = dir.path().join("c.json");
        std::fs::write(
            &cfg,
            serde_json::json!({"storage": {"models_directory": dir.path().join("models")}})
                .to_string(),
        )
        .unwrap();
        let checks = self_test("health-monitoring", &load_for_edit(&cfg).unwrap()).unwrap();
        assert!(checks.iter().all(|c| c.ok), "{checks:?}");
        let checks = self_test("usage-analytics", &load_for_edit(&cfg).unwrap()).unwrap();
        assert!(checks.iter().all(|c| c.ok), "{checks:?}");
        assert!(dir.path().join("cache").join("analytics.db").is_file());
        // A models "directory" that is a file fails.
        std::fs::write(dir.path().join("models"), b"x").unwrap();
        let checks = self_test("health-monitoring", &load_for_edit(&cfg).unwrap()).unwrap();
        assert!(!checks[0].ok);
        // A missing directory for the analytics db fails.
        std::fs::write(
            &cfg,
            serde_json::json!({"analytics": {"db_url": format!("sqlite:///{}/nope/a.db", dir.path().display())}})
                .to_string(),
        )
        .unwrap();
        let checks = self_test("usage-analytics", &load_for_edit(&cfg).unwrap()).unwrap();
        assert!(!checks[1].ok);
    }
}
