//! How the server is configured beyond the store it serves ([`MirrorOptions`]).

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use super::faults::FaultPlan;

/// Default number of entries per page of a tree listing.
pub const DEFAULT_TREE_PAGE_SIZE: usize = 1000;

/// How the mirror behaves beyond serving the store.
#[derive(Debug, Clone)]
pub struct MirrorOptions {
    /// Entries per page of a tree listing (tests set it small to exercise pagination).
    pub tree_page_size: usize,
    /// When set (e.g. `http://127.0.0.2:PORT`), LFS files answer `302` to `{cdn_base}/cdn/{sha256}?X-Amz-…`.
    pub cdn_base: Option<String>,
    /// Renamed repos: old id → new id. Requests for the old id answer a relative `307` to the new one.
    pub aliases: BTreeMap<String, String>,
    /// Repo ids whose files need a token from [`MirrorOptions::accepted_tokens`] (`401` without, `403` wrong).
    pub gated_repos: BTreeSet<String>,
    /// Bearer tokens accepted for gated repos.
    pub accepted_tokens: Vec<String>,
    /// Fault injection and the request log (tests and benchmarks only): when set, the router is wrapped in the
    /// fault layer ([`crate::server::faults`]).
    pub faults: Option<Arc<FaultPlan>>,
}

impl Default for MirrorOptions {
    fn default() -> Self {
        MirrorOptions {
            tree_page_size: DEFAULT_TREE_PAGE_SIZE,
            cdn_base: None,
            aliases: BTreeMap::new(),
            gated_repos: BTreeSet::new(),
            accepted_tokens: Vec::new(),
            faults: None,
        }
    }
}
