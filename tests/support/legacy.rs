//! The migration tests' operator and hub: `ema` run with XDG folders in the test's own directory and `HF_ENDPOINT`
//! the test hub (or offline), and a test hub serving a pristine copy of the sample legacy install.

use std::path::{Path, PathBuf};

use ema::engine::integrity::hash::git_blob_sha1;
use ema::engine::legacy::sample::{COMMIT_MAIN, legacy_install};

use super::cli::{Run, ema_cmd, run};
use super::hub::BlockingHub;

/// A file the hub publishes for acme/cached that the legacy install never downloaded.
pub const HUB_ONLY: &str = "README.md";

/// The operator's environment: XDG folders in the test's own directory, `HF_ENDPOINT` the test hub (or offline).
pub struct Operator {
    pub home: PathBuf,
    pub endpoint: Option<String>,
}

impl Operator {
    pub fn cmd(&self, cwd: &Path, args: &[&str]) -> std::process::Command {
        let mut c = ema_cmd();
        c.args(args)
            .current_dir(cwd)
            .env("XDG_CONFIG_HOME", self.home.join("xdg/config"))
            .env("XDG_DATA_HOME", self.home.join("xdg/data"))
            .env("XDG_CACHE_HOME", self.home.join("xdg/cache"));
        match &self.endpoint {
            Some(e) => c.env("HF_ENDPOINT", e),
            None => c.env("HF_HUB_OFFLINE", "1"),
        };
        c
    }

    pub fn ema(&self, cwd: &Path, args: &[&str]) -> Run {
        run(&mut self.cmd(cwd, args))
    }

    /// `ema rollback --backup-dir <bk> --verify-rollback --json` in `cwd`: it succeeds and verifies clean.
    pub fn rollback_verified(&self, cwd: &Path, bk: &Path) {
        let r = self.ema(
            cwd,
            &[
                "rollback",
                "--backup-dir",
                s(bk),
                "--verify-rollback",
                "--json",
            ],
        );
        assert_eq!(r.code, 0, "{}\n{}", r.stdout, r.stderr);
        assert_eq!(r.json()["verify"], serde_json::json!([]));
    }

    /// An operator at `home` whose `HF_ENDPOINT` is `hub`.
    pub fn with_hub(home: &Path, hub: &BlockingHub) -> Operator {
        Operator {
            home: home.to_path_buf(),
            endpoint: Some(hub.endpoint()),
        }
    }

    /// An operator at `home` with no hub (`HF_HUB_OFFLINE`).
    pub fn offline(home: &Path) -> Operator {
        Operator {
            home: home.to_path_buf(),
            endpoint: None,
        }
    }
}

/// A path as a command-line argument.
pub fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

/// The hub the tests talk to: a pristine copy of the same legacy install, adopted into an ema store by
/// `ema migrate-models`, so commits and hashes agree with the damaged copy. Its hub cache also holds a file the
/// damaged copy never downloaded ([`HUB_ONLY`]).
pub fn pristine_hub(t: &Path) -> BlockingHub {
    let p = t.join("pristine");
    legacy_install(&p, false);
    let cache = p.join("models/models--acme--cached");
    let body = b"# acme/cached\n".to_vec();
    let blob = git_blob_sha1(&body);
    std::fs::write(cache.join("blobs").join(&blob), &body).unwrap();
    std::os::unix::fs::symlink(
        format!("../../blobs/{blob}"),
        cache.join("snapshots").join(COMMIT_MAIN).join(HUB_ONLY),
    )
    .unwrap();
    let op = Operator::offline(t);
    let r = op.ema(&p, &["migrate-models", "--models-dir", "models"]);
    assert_eq!(r.code, 0, "{}\n{}", r.stdout, r.stderr);
    BlockingHub::start(&p.join("models"), false, |_| {})
}
