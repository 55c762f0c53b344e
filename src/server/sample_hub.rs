//! A sample hub store served on a free loopback port, blocking: [`start`] owns its own tokio runtime and returns a
//! [`SampleHubServer`] (URL, served and skipped models) that stops the server when dropped. What the self-tests
//! (`ema test-enhanced-features`, the wizard's "Enhanced features working") get through [`starter`].

use std::path::Path;

use super::mirror::{Mirror, MirrorHandle, ServedModel, SkippedModel};
use super::options::MirrorOptions;
use crate::engine::error::{EmaError, Result};
use crate::engine::selftest::{SampleHub, SampleHubStarter};

/// The running sample hub; dropping it stops the server and its runtime.
pub struct SampleHubServer {
    url: String,
    pub served: Vec<ServedModel>,
    pub skipped: Vec<SkippedModel>,
    handle: Option<MirrorHandle>,
    rt: Option<tokio::runtime::Runtime>,
}

/// Serve the store at `store` on 127.0.0.1 (a free port) from a runtime of its own. Call it outside async code.
pub fn start(store: &Path) -> Result<SampleHubServer> {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .thread_name("ema-sample-hub")
        .enable_all()
        .build()
        .map_err(|e| EmaError::Other(format!("cannot start the sample hub's runtime: {e}")))?;
    let (mirror, handle) = rt.block_on(async {
        let l = tokio::net::TcpListener::bind(("127.0.0.1", 0))
            .await
            .map_err(|e| {
                EmaError::Other(format!(
                    "cannot listen on 127.0.0.1 for the sample hub: {e}"
                ))
            })?;
        Mirror::start(store, MirrorOptions::default(), l).await
    })?;
    Ok(SampleHubServer {
        url: handle.url(),
        served: mirror.models(),
        skipped: mirror.skipped(),
        handle: Some(handle),
        rt: Some(rt),
    })
}

/// The hook the engine's self-test runners take, built on [`start`].
pub fn starter() -> SampleHubStarter {
    SampleHubStarter::new(|store| Ok(Box::new(start(store)?) as Box<dyn SampleHub>))
}

impl SampleHub for SampleHubServer {
    fn url(&self) -> String {
        self.url.clone()
    }
    fn served(&self) -> Vec<String> {
        self.served.iter().map(|m| m.repo_id.clone()).collect()
    }
    fn skipped(&self) -> Vec<String> {
        self.skipped
            .iter()
            .map(|s| format!("{}: {}", s.repo_id, s.reason))
            .collect()
    }
}

impl Drop for SampleHubServer {
    fn drop(&mut self) {
        let (Some(handle), Some(rt)) = (self.handle.take(), self.rt.take()) else {
            return;
        };
        if tokio::runtime::Handle::try_current().is_ok() {
            // Dropped inside async code, where blocking is not allowed: stop without waiting.
            drop(handle);
            rt.shutdown_background();
        } else {
            // Stop accepting, let in-flight requests finish (bounded by the handle's shutdown), then stop.
            rt.block_on(handle.shutdown());
            rt.shutdown_timeout(std::time::Duration::from_secs(2));
        }
    }
}
