//! The one state every route of the server shares ([`ServerState`]): the options, the store's repo index and the
//! CDN signing secret.

use std::path::Path;
use std::sync::Arc;

use super::hub::index::RepoIndex;
use super::options::MirrorOptions;
use crate::engine::error::{EmaError, Result};
use crate::engine::store::Store;

pub(crate) struct ServerState {
    pub opts: MirrorOptions,
    /// The store's models as last loaded.
    pub repos: Arc<RepoIndex>,
    /// Signs the CDN locations LFS files redirect to (random per process).
    pub cdn_secret: String,
}

impl ServerState {
    /// Scan the store at `store_root` (hashing files that have no recorded hashes) off the async threads.
    pub(crate) async fn load(store_root: &Path, opts: MirrorOptions) -> Result<ServerState> {
        let store = Store::new(store_root);
        let repos = tokio::task::spawn_blocking(move || RepoIndex::scan(store))
            .await
            .map_err(|e| EmaError::Other(format!("store scan failed: {e}")))??;
        Ok(ServerState {
            opts,
            repos: Arc::new(repos),
            cdn_secret: hex::encode(rand::random::<[u8; 16]>()),
        })
    }
}
