//! The sample hub the proofs download from, served by a face (the engine cannot serve HTTP): the [`SampleHub`]
//! a face hands back, the [`SampleHubStarter`] hook it provides, and [`run_blocking`] — prepare the workspace,
//! start the hub through the hook, check it serves every sample model, run the proofs, stop the hub.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

use super::proof::{Progress, Proof, SelfTestPlan};
use crate::engine::error::{EmaError, Result};

/// A sample hub served on loopback by a face; dropping it stops the server.
pub trait SampleHub: Send {
    /// `http://127.0.0.1:PORT`: the value for `HF_ENDPOINT`.
    fn url(&self) -> String;
    /// The repo ids it serves.
    fn served(&self) -> Vec<String>;
    /// The models it refused to serve, each as `repo: reason`.
    fn skipped(&self) -> Vec<String>;
}

/// Start a sample hub serving the store at the given folder.
pub type StartSampleHub = dyn Fn(&Path) -> Result<Box<dyn SampleHub>> + Send + Sync;

/// The hook that starts a sample hub: provided by the face (the engine cannot serve HTTP).
#[derive(Clone)]
pub struct SampleHubStarter(pub Arc<StartSampleHub>);

impl SampleHubStarter {
    pub fn new(f: impl Fn(&Path) -> Result<Box<dyn SampleHub>> + Send + Sync + 'static) -> Self {
        SampleHubStarter(Arc::new(f))
    }

    pub fn start(&self, store: &Path) -> Result<Box<dyn SampleHub>> {
        (self.0)(store)
    }
}

impl std::fmt::Debug for SampleHubStarter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SampleHubStarter(provided by the face)")
    }
}

/// What a self-test run did.
pub struct RunReport {
    /// Every proof, in order (workspace, hub, then the plan's).
    pub proofs: Vec<Proof>,
    /// The temporary folder used (removed before this is returned).
    pub workspace: Option<PathBuf>,
    /// The sample hub's URL, when it started.
    pub endpoint: Option<String>,
}

/// Blocking (call it outside async code, e.g. from a blocking task): prepare the workspace, start the sample hub
/// with `starter`, run the proofs of `plan` against it, stop the hub and remove the workspace.
pub fn run_blocking(
    plan: &SelfTestPlan,
    starter: &SampleHubStarter,
    progress: Progress,
) -> Result<RunReport> {
    // Only features that are not built yet asked for: nothing to set up.
    if !plan.needs_hub() {
        return Ok(RunReport {
            proofs: super::not_run_all(plan, ""),
            workspace: None,
            endpoint: None,
        });
    }
    let (mut proofs, ws) = super::prepare(progress);
    let Some(ws) = ws else {
        proofs.extend(super::not_run_all(
            plan,
            "needs the temporary store, which could not be set up",
        ));
        return Ok(RunReport {
            proofs,
            workspace: None,
            endpoint: None,
        });
    };
    let workspace = Some(ws.path().to_path_buf());
    let started = Instant::now();
    let p = Proof::new("sample_hub", "the built-in sample hub answers on loopback");
    progress("starting the built-in sample hub on 127.0.0.1");
    let hub = match starter.start(&ws.hub_dir) {
        Ok(h) => h,
        Err(e) => {
            proofs.push(p.failed(started, e.to_string()));
            proofs.extend(super::not_run_all(plan, "needs the sample hub"));
            return Ok(RunReport {
                proofs,
                workspace,
                endpoint: None,
            });
        }
    };
    let url = hub.url();
    let served = hub.served();
    let skipped = hub.skipped();
    if served.len() == ws.samples.len() && skipped.is_empty() {
        proofs.push(
            p.fig("endpoint", url.as_str())
                .fig("models", served.len())
                .passed(
                    started,
                    format!(
                        "{url} serves the {} sample models over the Hugging Face Hub protocol",
                        served.len()
                    ),
                ),
        );
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .map_err(|e| EmaError::Other(format!("cannot start the async runtime: {e}")))?;
        proofs.extend(rt.block_on(super::run(&ws, &url, plan, progress)));
        rt.shutdown_timeout(std::time::Duration::from_secs(2));
    } else {
        let why = format!(
            "the sample hub serves {} of {} models (skipped: {})",
            served.len(),
            ws.samples.len(),
            skipped.join("; ")
        );
        proofs.push(p.failed(started, why));
        proofs.extend(super::not_run_all(plan, "needs the sample hub"));
    }
    drop(hub);
    drop(ws);
    Ok(RunReport {
        proofs,
        workspace,
        endpoint: Some(url),
    })
}
