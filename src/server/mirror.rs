//! The mirror's life cycle: [`Mirror`] loads a store into the server state and serves the server's router on any
//! number of listeners, each a [`MirrorHandle`] (what `ema mirror` and the test hub run).

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;

use axum::Router;
use tokio::net::TcpListener;

use super::options::MirrorOptions;
use super::state::ServerState;
use crate::engine::error::{EmaError, Result};

/// A model the mirror refused to serve, and why.
#[derive(Debug, Clone, serde::Serialize)]
pub struct SkippedModel {
    pub repo_id: String,
    pub reason: String,
}

/// A model the mirror serves.
#[derive(Debug, Clone, serde::Serialize)]
pub struct ServedModel {
    pub repo_id: String,
    pub commit: String,
    pub files: usize,
    pub total_size: u64,
}

/// A loaded mirror: the store scanned and hashed, ready to serve on any number of listeners.
#[derive(Clone)]
pub struct Mirror {
    state: Arc<ServerState>,
}

/// A running listener. Dropping it stops accepting connections.
pub struct MirrorHandle {
    /// The bound address (useful after binding port 0).
    pub addr: SocketAddr,
    shutdown: Option<tokio::sync::oneshot::Sender<()>>,
    task: Option<tokio::task::JoinHandle<std::io::Result<()>>>,
}

impl MirrorHandle {
    /// `http://{addr}`: the value for `HF_ENDPOINT`.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Stop accepting, let in-flight requests finish for up to five seconds, then stop.
    pub async fn shutdown(mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        if let Some(task) = self.task.take() {
            let abort = task.abort_handle();
            if tokio::time::timeout(std::time::Duration::from_secs(5), task)
                .await
                .is_err()
            {
                abort.abort();
            }
        }
    }

    /// Wait until the server stops (it only stops on [`MirrorHandle::shutdown`] or an accept error).
    pub async fn wait(mut self) -> Result<()> {
        if let Some(task) = self.task.take() {
            match task.await {
                Ok(Ok(())) => Ok(()),
                Ok(Err(e)) => Err(EmaError::Other(format!("the mirror stopped: {e}"))),
                Err(e) => Err(EmaError::Other(format!("the mirror task failed: {e}"))),
            }
        } else {
            Ok(())
        }
    }
}

impl Drop for MirrorHandle {
    fn drop(&mut self) {
        if let Some(task) = &self.task {
            task.abort();
        }
    }
}

impl Mirror {
    /// Scan the store at `store_root` (hashing files that have no recorded hashes) and prepare to serve it.
    pub async fn load(store_root: &Path, opts: MirrorOptions) -> Result<Mirror> {
        Ok(Mirror {
            state: Arc::new(ServerState::load(store_root, opts).await?),
        })
    }

    /// Load the store and serve it on `listener` in a background task.
    pub async fn start(
        store_root: &Path,
        opts: MirrorOptions,
        listener: TcpListener,
    ) -> Result<(Mirror, MirrorHandle)> {
        let m = Mirror::load(store_root, opts).await?;
        let h = m.serve(listener)?;
        Ok((m, h))
    }

    /// The models served (as of the last look at the store).
    pub fn models(&self) -> Vec<ServedModel> {
        self.state
            .repos
            .all_served()
            .into_iter()
            .map(|r| ServedModel {
                repo_id: r.id.clone(),
                commit: r.commit.clone(),
                files: r.files.len(),
                total_size: r.files.values().map(|f| f.size).sum(),
            })
            .collect()
    }

    /// Models present in the store but not served (incomplete, failed verification, unreadable).
    pub fn skipped(&self) -> Vec<SkippedModel> {
        self.state
            .repos
            .read()
            .iter()
            .filter_map(|(id, l)| {
                l.repo.as_ref().err().map(|reason| SkippedModel {
                    repo_id: id.clone(),
                    reason: reason.clone(),
                })
            })
            .collect()
    }

    /// The axum app (for embedding in another server).
    pub fn router(&self) -> Router {
        super::router(self.state.clone())
    }

    /// The shared state (for a server that merges the mirror's routes with its own).
    pub(crate) fn state(&self) -> Arc<ServerState> {
        self.state.clone()
    }

    /// Serve on `listener` in a background task.
    pub fn serve(&self, listener: TcpListener) -> Result<MirrorHandle> {
        serve_app(self.router(), listener)
    }
}

/// Serve `app` on `listener` in a background task (WebSocket upgrades included).
pub(crate) fn serve_app(app: Router, listener: TcpListener) -> Result<MirrorHandle> {
    let addr = listener
        .local_addr()
        .map_err(|e| EmaError::Other(format!("cannot read the listener address: {e}")))?;
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    let task = tokio::spawn(async move {
        axum::serve(listener, app)
            .with_graceful_shutdown(async move {
                let _ = rx.await;
            })
            .await
    });
    Ok(MirrorHandle {
        addr,
        shutdown: Some(tx),
        task: Some(task),
    })
}
