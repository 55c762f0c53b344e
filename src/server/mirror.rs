//! A Hugging-Face-Hub-compatible HTTP server over an ema store (`ema mirror`, and the test hub).
//!
//! It speaks the subset of the Hub protocol that clients (ema itself, `huggingface_hub`, `hf-hub`) use to download
//! a model (see `HUB_PROTOCOL.md`):
//!
//! - `GET /api/models?search=&author=&pipeline_tag=&limit=` (the served models),
//! - `GET /api/models/{repo}` and `GET /api/models/{repo}/revision/{rev}` (`?blobs=true` adds sizes and hashes),
//! - `GET /api/models/{repo}/tree/{rev}[/{path}]?recursive=true`, paginated with a `Link: <…>; rel="next"` header,
//! - `POST /api/models/{repo}/paths-info/{rev}` (`paths=…`: entries for the given paths; the only POST),
//! - `HEAD|GET /{repo}/resolve/{rev}/{path}` with `X-Repo-Commit`, `ETag`, `X-Linked-Etag`, `X-Linked-Size`,
//!   byte ranges, and a `302` to a CDN location for LFS files when [`MirrorOptions::cdn_base`] is set,
//! - `GET /cdn/{sha256}?X-Amz-Signature=…`, the CDN side of that redirect (the same app; tests bind it on a second
//!   loopback address so the redirect crosses hosts).
//!
//! `{repo}` is `org/name` or `name`. A revision is `main`, the 40-hex commit, or the revision the metadata
//! records the model was downloaded at; anything else is `404 RevisionNotFound`. The commit and the hashes come
//! from each model's metadata sidecar; a model folder without metadata gets its hashes computed when first loaded
//! and a commit derived from them. Models whose metadata lists files that are missing or of another size, or whose
//! last verification failed, are not served (see [`Mirror::skipped`]). A model whose sidecar changes (downloaded,
//! re-downloaded, repaired) while the mirror runs is reloaded on its next request. File bytes are streamed from
//! disk, never loaded whole.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::io::Read;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use axum::Router;
use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::response::Response;
use bytes::Bytes;
use percent_encoding::{AsciiSet, CONTROLS, percent_decode_str, utf8_percent_encode};
use serde_json::{Value, json};
use sha1::Sha1;
use sha2::{Digest, Sha256};
use tokio::net::TcpListener;

use super::faults::FaultPlan;
use crate::engine::error::{EmaError, Result};
pub use crate::engine::store::{LFS_EXTENSIONS, LFS_SIZE_THRESHOLD, is_lfs_path};
use crate::engine::store::{ModelMetadata, RepoId, Store, VerificationState};

/// Default number of entries per page of a tree listing.
pub const DEFAULT_TREE_PAGE_SIZE: usize = 1000;

pub use crate::engine::integrity::hash::git_blob_sha1;

/// The git-lfs pointer file the Hub keeps in git for an LFS file.
pub fn lfs_pointer(sha256: &str, size: u64) -> String {
    format!("version https://git-lfs.github.com/spec/v1\noid sha256:{sha256}\nsize {size}\n")
}

fn is_hex(s: &str, len: usize) -> bool {
    s.len() == len && s.bytes().all(|b| b.is_ascii_hexdigit())
}

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
    /// Fault injection and the request log (tests and benchmarks only).
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

/// Where a served file's bytes come from.
#[derive(Debug, Clone)]
pub(crate) enum Source {
    Disk(PathBuf),
    Memory(Bytes),
}

/// One served file.
#[derive(Debug, Clone)]
pub(crate) struct FileEntry {
    pub size: u64,
    /// git blob sha1 of the content (non-LFS) or of the LFS pointer (LFS).
    pub oid: String,
    /// sha256 of the content; always set for LFS files.
    pub sha256: Option<String>,
    pub lfs: bool,
    pub source: Source,
    /// Lying-metadata fixtures: the size the listing claims (headers tell the truth).
    pub listed_size: Option<u64>,
    /// Lying-metadata fixtures: the sha256 the listing and headers claim.
    pub listed_sha256: Option<String>,
}

impl FileEntry {
    /// An in-memory file with hashes computed from `content`.
    pub(crate) fn from_bytes(path: &str, content: Bytes) -> FileEntry {
        let size = content.len() as u64;
        let lfs = is_lfs_path(path, size);
        let sha256 = hex::encode(Sha256::digest(&content));
        let oid = if lfs {
            git_blob_sha1(lfs_pointer(&sha256, size).as_bytes())
        } else {
            git_blob_sha1(&content)
        };
        FileEntry {
            size,
            oid,
            sha256: Some(sha256),
            lfs,
            source: Source::Memory(content),
            listed_size: None,
            listed_sha256: None,
        }
    }

    fn published_sha256(&self) -> Option<&str> {
        self.listed_sha256.as_deref().or(self.sha256.as_deref())
    }

    fn pointer_size(&self) -> usize {
        lfs_pointer(self.published_sha256().unwrap_or(""), self.size).len()
    }

    /// The `ETag` header value (quoted): the sha256 for LFS files, the git blob sha1 otherwise.
    fn etag(&self) -> String {
        if self.lfs {
            format!("\"{}\"", self.published_sha256().unwrap_or(""))
        } else {
            format!("\"{}\"", self.oid)
        }
    }
}

/// One served repo.
#[derive(Debug, Clone)]
pub(crate) struct Repo {
    pub id: String,
    pub commit: String,
    /// The revision the store's metadata says the model was downloaded at (served besides `main` and the commit).
    pub recorded_revision: Option<String>,
    pub files: BTreeMap<String, Arc<FileEntry>>,
    pub pipeline_tag: Option<String>,
    pub library_name: Option<String>,
    pub tags: Vec<String>,
    /// dtype → parameter count, from the safetensors headers.
    pub safetensors: BTreeMap<String, u64>,
    pub last_modified: String,
    pub card_data: Option<Value>,
}

/// A deterministic 40-hex commit for a set of files (used when the metadata has none).
pub(crate) fn derive_commit(files: &BTreeMap<String, Arc<FileEntry>>) -> String {
    let mut h = Sha1::new();
    h.update(b"ema-mirror-commit\n");
    for (path, f) in files {
        h.update(path.as_bytes());
        h.update(b"\0");
        h.update(f.oid.as_bytes());
        h.update(b"\n");
    }
    hex::encode(h.finalize())
}

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

/// What a model's sidecar and folder looked like when it was loaded; a change triggers a reload.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Stamp {
    metadata: Option<(std::time::SystemTime, u64)>,
    folder: bool,
}

fn stamp(store: &Store, id: &RepoId) -> Stamp {
    Stamp {
        metadata: std::fs::metadata(store.metadata_path(id))
            .ok()
            .map(|m| (m.modified().unwrap_or(std::time::UNIX_EPOCH), m.len())),
        folder: store.model_dir(id).is_dir(),
    }
}

/// One model as last loaded.
#[derive(Debug, Clone)]
struct Loaded {
    stamp: Stamp,
    /// `Ok(None)`: nothing to serve; `Err`: present but not servable, and why.
    repo: std::result::Result<Option<Arc<Repo>>, String>,
}

pub(crate) struct MirrorState {
    pub opts: MirrorOptions,
    store: Store,
    repos: std::sync::RwLock<BTreeMap<String, Loaded>>,
    cdn_secret: String,
}

/// A loaded mirror: the store scanned and hashed, ready to serve on any number of listeners.
#[derive(Clone)]
pub struct Mirror {
    state: Arc<MirrorState>,
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
        let store = Store::new(store_root);
        let s2 = store.clone();
        let repos = tokio::task::spawn_blocking(move || scan_store(&s2))
            .await
            .map_err(|e| EmaError::Other(format!("store scan failed: {e}")))??;
        let cdn_secret = hex::encode(rand::random::<[u8; 16]>());
        Ok(Mirror {
            state: Arc::new(MirrorState {
                opts,
                store,
                repos: std::sync::RwLock::new(repos),
                cdn_secret,
            }),
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
            .read_repos()
            .values()
            .filter_map(|l| l.repo.as_ref().ok().cloned().flatten())
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
            .read_repos()
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
        let r = Router::new()
            .fallback(handle)
            .with_state(self.state.clone());
        match &self.state.opts.faults {
            Some(plan) => super::faults::wrap(r, plan.clone()),
            None => r,
        }
    }

    /// Serve on `listener` in a background task.
    pub fn serve(&self, listener: TcpListener) -> Result<MirrorHandle> {
        let addr = listener
            .local_addr()
            .map_err(|e| EmaError::Other(format!("cannot read the listener address: {e}")))?;
        let app = self.router();
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
}

// ---------------------------------------------------------------------------------------------------------------
// Store scan
// ---------------------------------------------------------------------------------------------------------------

fn load_one(store: &Store, id: &RepoId) -> Loaded {
    let stamp = stamp(store, id);
    Loaded {
        stamp,
        repo: load_repo(store, id).map(|r| r.map(Arc::new)),
    }
}

fn scan_store(store: &Store) -> Result<BTreeMap<String, Loaded>> {
    Ok(store
        .list_models()?
        .into_iter()
        .map(|id| (id.to_string(), load_one(store, &id)))
        .collect())
}

/// Files under `dir`, repo-relative with `/`, regular files only (symlinks are followed only when they stay inside).
fn walk(dir: &Path) -> std::io::Result<Vec<(String, PathBuf, u64)>> {
    let mut out = Vec::new();
    let canon_root = dir.canonicalize()?;
    let mut stack = vec![(dir.to_path_buf(), String::new())];
    while let Some((d, prefix)) = stack.pop() {
        for e in std::fs::read_dir(&d)? {
            let e = e?;
            let name = e.file_name().to_string_lossy().into_owned();
            let rel = if prefix.is_empty() {
                name.clone()
            } else {
                format!("{prefix}/{name}")
            };
            let p = e.path();
            let ft = e.file_type()?;
            if ft.is_symlink() {
                match p.canonicalize() {
                    Ok(c) if c.starts_with(&canon_root) => {}
                    _ => continue,
                }
            }
            let md = std::fs::metadata(&p)?;
            if md.is_dir() {
                // A `huggingface_hub` local_dir keeps its bookkeeping in `.cache/`; it is not part of the repo.
                if rel == ".cache" {
                    continue;
                }
                stack.push((p, rel));
            } else if md.is_file() {
                out.push((rel, p, md.len()));
            }
        }
    }
    out.sort();
    Ok(out)
}

/// One pass over a file: the git blob sha1 (non-LFS files) or the sha256 (LFS files).
fn hash_file(path: &Path, size: u64, lfs: bool) -> std::io::Result<String> {
    use crate::engine::integrity::hash::{self, HashKinds};
    let kinds = if lfs {
        HashKinds::SHA256
    } else {
        HashKinds::GIT_SHA1
    };
    let d = hash::hash_file(path, kinds)
        .map_err(|e| std::io::Error::other(e.to_string()))?
        .digests;
    let got = if lfs { d.sha256 } else { d.git_sha1 };
    got.filter(|_| d.size == size).ok_or_else(|| {
        std::io::Error::other(format!("{} changed while it was hashed", path.display()))
    })
}

/// Parameter counts per dtype from a safetensors header (best effort: `None` when it is not one).
pub(crate) fn safetensors_params(path: &Path) -> Option<BTreeMap<String, u64>> {
    let mut f = std::fs::File::open(path).ok()?;
    let mut len = [0u8; 8];
    f.read_exact(&mut len).ok()?;
    let n = u64::from_le_bytes(len);
    if n > 100 * 1024 * 1024 {
        return None;
    }
    let mut hdr = vec![0u8; n as usize];
    f.read_exact(&mut hdr).ok()?;
    let v: Value = serde_json::from_slice(&hdr).ok()?;
    let mut out = BTreeMap::new();
    for (k, t) in v.as_object()? {
        if k == "__metadata__" {
            continue;
        }
        let dtype = t.get("dtype")?.as_str()?.to_string();
        let count = t
            .get("shape")?
            .as_array()?
            .iter()
            .map(|d| d.as_u64())
            .try_fold(1u64, |acc, d| d.map(|d| acc.saturating_mul(d)))?;
        *out.entry(dtype).or_insert(0) += count;
    }
    Some(out)
}

/// The README's YAML front matter, simple `key: value` and `key:` + `- item` lists only.
pub(crate) fn card_data(readme: &str) -> Option<Value> {
    let body = readme.strip_prefix("---\n")?;
    let end = body.find("\n---")?;
    let mut map = serde_json::Map::new();
    let mut list_key: Option<String> = None;
    for line in body[..end].lines() {
        if let Some(item) = line.trim_start().strip_prefix("- ")
            && line.starts_with([' ', '-'])
            && let Some(k) = &list_key
        {
            if let Some(Value::Array(a)) = map.get_mut(k) {
                a.push(Value::String(unquote(item)));
            }
            continue;
        }
        let Some((k, v)) = line.split_once(':') else {
            continue;
        };
        let k = k.trim().to_string();
        let v = v.trim();
        if v.is_empty() {
            map.insert(k.clone(), Value::Array(Vec::new()));
            list_key = Some(k);
        } else {
            map.insert(k, Value::String(unquote(v)));
            list_key = None;
        }
    }
    Some(Value::Object(map))
}

fn unquote(s: &str) -> String {
    let s = s.trim();
    s.strip_prefix('"')
        .and_then(|x| x.strip_suffix('"'))
        .unwrap_or(s)
        .to_string()
}

/// RFC 3339 with milliseconds and `Z`, the Hub's `lastModified` format.
fn hub_time(t: chrono::DateTime<chrono::Utc>) -> String {
    t.to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

/// `Ok(None)`: nothing to serve (metadata without a folder). `Err(reason)`: present but not servable.
fn load_repo(store: &Store, id: &RepoId) -> std::result::Result<Option<Repo>, String> {
    let dir = store.model_dir(id);
    let meta: Option<ModelMetadata> = store.read_metadata(id).map_err(|e| e.to_string())?;
    if !dir.is_dir() {
        return match meta {
            Some(_) => Err("metadata without a model folder (nothing downloaded yet)".to_string()),
            None => Ok(None),
        };
    }
    if let Some(m) = &meta
        && m.verification == VerificationState::Failed
    {
        return Err(
            "its last verification failed; run `ema verify` and repair it before serving"
                .to_string(),
        );
    }
    let on_disk = walk(&dir).map_err(|e| format!("cannot read {}: {e}", dir.display()))?;
    let mut files = BTreeMap::new();
    let mut safetensors = BTreeMap::new();
    let mut readme = None;
    let mut newest_mtime = None;
    let recorded: HashMap<&str, &crate::engine::store::FileRecord> = meta
        .as_ref()
        .map(|m| m.files.iter().map(|f| (f.path.as_str(), f)).collect())
        .unwrap_or_default();
    if let Some(m) = &meta {
        let present: BTreeSet<&str> = on_disk.iter().map(|(r, _, _)| r.as_str()).collect();
        if let Some(missing) = m.files.iter().find(|f| !present.contains(f.path.as_str())) {
            return Err(format!(
                "incomplete: {} is missing; finish the download with `ema download {}`",
                missing.path, id
            ));
        }
    }
    for (rel, path, size) in on_disk {
        if let Ok(md) = std::fs::metadata(&path)
            && let Ok(mt) = md.modified()
        {
            let t: chrono::DateTime<chrono::Utc> = mt.into();
            newest_mtime = newest_mtime.max(Some(t));
        }
        let rec = recorded.get(rel.as_str());
        if meta.is_some() && rec.is_none() {
            // Not part of the pinned snapshot (e.g. a stray file): do not publish it.
            continue;
        }
        if let Some(r) = rec
            && r.size != size
        {
            return Err(format!(
                "{rel} is {size} bytes on disk but the metadata says {}; run `ema verify {id}`",
                r.size
            ));
        }
        let lfs = rec.map(|r| r.lfs).unwrap_or(false) || is_lfs_path(&rel, size);
        let rec_sha256 = rec.and_then(|r| r.sha256.clone()).filter(|s| is_hex(s, 64));
        let rec_sha1 = rec
            .and_then(|r| r.git_sha1.clone())
            .filter(|s| is_hex(s, 40));
        let (oid, sha256) = if lfs {
            let sha256 = match rec_sha256 {
                Some(s) => s,
                None => hash_file(&path, size, true)
                    .map_err(|e| format!("cannot hash {}: {e}", path.display()))?,
            };
            (
                git_blob_sha1(lfs_pointer(&sha256, size).as_bytes()),
                Some(sha256),
            )
        } else {
            match rec_sha1 {
                Some(s) => (s, rec_sha256),
                None => {
                    let s1 = hash_file(&path, size, false)
                        .map_err(|e| format!("cannot hash {}: {e}", path.display()))?;
                    (s1, rec_sha256)
                }
            }
        };
        if rel.ends_with(".safetensors")
            && let Some(p) = safetensors_params(&path)
        {
            for (k, v) in p {
                *safetensors.entry(k).or_insert(0) += v;
            }
        }
        if rel == "README.md" && size < 1024 * 1024 {
            readme = std::fs::read_to_string(&path).ok();
        }
        files.insert(
            rel,
            Arc::new(FileEntry {
                size,
                oid,
                sha256,
                lfs,
                source: Source::Disk(path),
                listed_size: None,
                listed_sha256: None,
            }),
        );
    }
    let commit = meta
        .as_ref()
        .and_then(|m| m.commit.clone())
        .filter(|c| is_hex(c, 40))
        .map(|c| c.to_ascii_lowercase())
        .unwrap_or_else(|| derive_commit(&files));
    let last_modified = meta
        .as_ref()
        .and_then(|m| chrono::DateTime::parse_from_rfc3339(&m.updated_at).ok())
        .map(|t| t.with_timezone(&chrono::Utc))
        .or(newest_mtime)
        .map(hub_time)
        .unwrap_or_else(|| hub_time(chrono::Utc::now()));
    Ok(Some(Repo {
        id: id.to_string(),
        commit,
        recorded_revision: meta
            .as_ref()
            .map(|m| m.requested_revision.clone())
            .filter(|r| !r.is_empty()),
        files,
        pipeline_tag: meta.as_ref().and_then(|m| m.pipeline_tag.clone()),
        library_name: meta.as_ref().and_then(|m| m.library_name.clone()),
        tags: meta.as_ref().map(|m| m.tags.clone()).unwrap_or_default(),
        safetensors,
        last_modified,
        card_data: readme.as_deref().and_then(card_data),
    }))
}

// ---------------------------------------------------------------------------------------------------------------
// Request handling
// ---------------------------------------------------------------------------------------------------------------

impl MirrorState {
    fn read_repos(&self) -> std::sync::RwLockReadGuard<'_, BTreeMap<String, Loaded>> {
        self.repos.read().unwrap_or_else(|e| e.into_inner())
    }

    /// Reload `id` if its sidecar or folder changed since it was loaded (a model downloaded, re-downloaded or
    /// removed while the mirror runs). Costs two `stat`s when nothing changed.
    async fn refresh(self: &Arc<Self>, id: &str) {
        let Ok(rid) = RepoId::parse(id) else {
            return;
        };
        let now = stamp(&self.store, &rid);
        let unchanged = match self.read_repos().get(id) {
            Some(l) => l.stamp == now,
            None => !now.folder && now.metadata.is_none(),
        };
        if unchanged {
            return;
        }
        let st = self.clone();
        if let Ok(loaded) = tokio::task::spawn_blocking(move || load_one(&st.store, &rid)).await {
            let mut w = self.repos.write().unwrap_or_else(|e| e.into_inner());
            if loaded.stamp.folder || loaded.stamp.metadata.is_some() {
                w.insert(id.to_string(), loaded);
            } else {
                w.remove(id);
            }
        }
    }

    /// [`MirrorState::refresh`] every model in the store and forget the ones that are gone.
    async fn refresh_all(self: &Arc<Self>) {
        let store = self.store.clone();
        let ids = tokio::task::spawn_blocking(move || store.list_models())
            .await
            .ok()
            .and_then(|r| r.ok())
            .unwrap_or_default();
        let known: Vec<String> = self.read_repos().keys().cloned().collect();
        for id in ids.iter().map(|i| i.to_string()).chain(known) {
            self.refresh(&id).await;
        }
    }

    fn repo(&self, id: &str) -> Option<Arc<Repo>> {
        if let Some(plan) = &self.opts.faults
            && let Some(r) = plan.virtual_repo(id)
        {
            return Some(r);
        }
        self.read_repos()
            .get(id)
            .and_then(|l| l.repo.as_ref().ok().cloned().flatten())
    }

    fn known(&self, id: &str) -> bool {
        self.opts.aliases.contains_key(id) || self.repo(id).is_some()
    }

    /// The repo's files with any "upstream changed" overrides applied.
    fn files(&self, repo: &Repo) -> BTreeMap<String, Arc<FileEntry>> {
        let mut files = repo.files.clone();
        if let Some(plan) = &self.opts.faults {
            for (path, f) in plan.changed_files(&repo.id) {
                files.insert(path, f);
            }
        }
        files
    }

    fn file(&self, repo: &Repo, path: &str) -> Option<Arc<FileEntry>> {
        if let Some(plan) = &self.opts.faults
            && let Some(f) = plan.changed_file(&repo.id, path)
        {
            return Some(f);
        }
        repo.files.get(path).cloned()
    }

    fn by_sha256(&self, sha: &str) -> Option<Arc<FileEntry>> {
        if let Some(plan) = &self.opts.faults
            && let Some(f) = plan.file_by_sha256(sha)
        {
            return Some(f);
        }
        self.read_repos()
            .values()
            .filter_map(|l| l.repo.as_ref().ok().cloned().flatten())
            .find_map(|r| {
                r.files
                    .values()
                    .find(|f| f.sha256.as_deref() == Some(sha))
                    .cloned()
            })
    }

    fn cdn_signature(&self, sha: &str) -> String {
        let mut h = Sha256::new();
        h.update(self.cdn_secret.as_bytes());
        h.update(b":");
        h.update(sha.as_bytes());
        hex::encode(h.finalize())
    }
}

/// Where a body starts in its file, for faults that act on file offsets. Set on file-body responses.
#[derive(Debug, Clone, Copy)]
pub(crate) struct BodyStart(pub u64);

fn hub_error(status: StatusCode, code: &str, message: &str) -> Response {
    let body = json!({ "error": message }).to_string();
    let mut r = Response::new(Body::from(body));
    *r.status_mut() = status;
    let h = r.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    if let Ok(v) = HeaderValue::from_str(code) {
        h.insert("x-error-code", v);
    }
    if let Ok(v) = HeaderValue::from_str(&sanitize_header(message)) {
        h.insert("x-error-message", v);
    }
    r
}

fn sanitize_header(s: &str) -> String {
    s.chars()
        .map(|c| {
            if c.is_ascii() && !c.is_ascii_control() {
                c
            } else {
                '?'
            }
        })
        .collect()
}

fn repo_not_found(id: &str) -> Response {
    hub_error(
        StatusCode::NOT_FOUND,
        "RepoNotFound",
        &format!("Repository Not Found for url: model {id} does not exist on this mirror."),
    )
}

fn revision_not_found(id: &str, rev: &str) -> Response {
    hub_error(
        StatusCode::NOT_FOUND,
        "RevisionNotFound",
        &format!("Invalid rev id: {rev} (repo {id} serves `main` and its commit only)"),
    )
}

fn entry_not_found(id: &str, path: &str) -> Response {
    hub_error(
        StatusCode::NOT_FOUND,
        "EntryNotFound",
        &format!("Entry not found: {path} does not exist in {id}"),
    )
}

/// Characters escaped in a path segment we put in a URL.
const SEGMENT: &AsciiSet = &CONTROLS
    .add(b' ')
    .add(b'"')
    .add(b'#')
    .add(b'%')
    .add(b'/')
    .add(b'<')
    .add(b'>')
    .add(b'?')
    .add(b'\\')
    .add(b'`')
    .add(b'{')
    .add(b'}');

fn encode_path(path: &str) -> String {
    path.split('/')
        .map(|s| utf8_percent_encode(s, SEGMENT).to_string())
        .collect::<Vec<_>>()
        .join("/")
}

fn query_params(q: Option<&str>) -> HashMap<String, String> {
    url::form_urlencoded::parse(q.unwrap_or("").as_bytes())
        .into_owned()
        .collect()
}

fn truthy(v: Option<&String>) -> bool {
    matches!(v.map(|s| s.as_str()), Some("true" | "1" | "True"))
}

async fn handle(State(st): State<Arc<MirrorState>>, req: Request) -> Response {
    let method = req.method().clone();
    let raw_path = req.uri().path().to_string();
    // The only POST is the read-only `paths-info` query.
    let paths_info_post = method == Method::POST
        && raw_path.starts_with("/api/models/")
        && raw_path.contains("/paths-info/");
    if method != Method::GET && method != Method::HEAD && !paths_info_post {
        return hub_error(
            StatusCode::METHOD_NOT_ALLOWED,
            "MethodNotAllowed",
            "this mirror is read-only: use GET or HEAD",
        );
    }
    let query = req.uri().query().map(|s| s.to_string());
    let headers = req.headers().clone();
    let form = if paths_info_post {
        match axum::body::to_bytes(req.into_body(), 1 << 20).await {
            Ok(b) => Some(b),
            Err(_) => {
                return hub_error(
                    StatusCode::PAYLOAD_TOO_LARGE,
                    "BadRequest",
                    "the paths-info request body is over 1 MiB",
                );
            }
        }
    } else {
        None
    };
    let segs: Vec<String> = raw_path
        .split('/')
        .skip(1)
        .map(|s| percent_decode_str(s).decode_utf8_lossy().into_owned())
        .collect();
    let segs: Vec<&str> = segs.iter().map(|s| s.as_str()).collect();
    // Pick up models that appeared or changed on disk: the one- and two-part ids this path could name.
    let rest: &[&str] = match segs.as_slice() {
        ["api", "models", rest @ ..] => rest,
        ["cdn", ..] => &[],
        other => other,
    };
    if let Some(first) = rest.first() {
        if let Some(second) = rest.get(1) {
            st.refresh(&format!("{first}/{second}")).await;
        }
        st.refresh(first).await;
    }
    let resp = match segs.as_slice() {
        ["api", "models"] | ["api", "models", ""] => {
            st.refresh_all().await;
            list_models(&st, query.as_deref())
        }
        ["api", "models", rest @ ..] if !rest.is_empty() => api(
            &st,
            rest,
            query.as_deref(),
            &headers,
            &raw_path,
            form.as_deref(),
        ),
        ["cdn", sha] => cdn(&st, sha, query.as_deref(), &headers, &method).await,
        _ => resolve(&st, &segs, query.as_deref(), &headers, &method).await,
    };
    if method == Method::HEAD {
        // Keep the headers (Content-Length included), drop the body.
        let (parts, _) = resp.into_parts();
        return Response::from_parts(parts, Body::empty());
    }
    resp
}

/// Split `segs` into (repo id, rest) for an API path: `org/name/...` when that repo (or alias) exists, else
/// `name/...`, else the unknown two-part id.
fn split_api_repo<'a>(st: &MirrorState, segs: &'a [&'a str]) -> (String, &'a [&'a str]) {
    const KEYWORDS: [&str; 3] = ["revision", "tree", "paths-info"];
    if segs.len() >= 2 {
        let two = format!("{}/{}", segs[0], segs[1]);
        if st.known(&two) {
            return (two, &segs[2..]);
        }
    }
    if st.known(segs[0]) && (segs.len() == 1 || KEYWORDS.contains(&segs[1])) {
        return (segs[0].to_string(), &segs[1..]);
    }
    if segs.len() >= 2 && !KEYWORDS.contains(&segs[1]) {
        return (format!("{}/{}", segs[0], segs[1]), &segs[2..]);
    }
    (segs[0].to_string(), &segs[1..])
}

/// A relative `307` to `loc` (a path on this host), keeping the query.
fn relative_redirect(loc: &str, query: Option<&str>) -> Response {
    let loc = match query {
        Some(q) => format!("{loc}?{q}"),
        None => loc.to_string(),
    };
    let mut r = Response::new(Body::from(format!("Moved to {loc}")));
    *r.status_mut() = StatusCode::TEMPORARY_REDIRECT;
    if let Ok(v) = HeaderValue::from_str(&loc) {
        r.headers_mut().insert(header::LOCATION, v);
    }
    r
}

fn api(
    st: &MirrorState,
    segs: &[&str],
    query: Option<&str>,
    headers: &HeaderMap,
    raw_path: &str,
    form: Option<&[u8]>,
) -> Response {
    let (id, rest) = split_api_repo(st, segs);
    if let Some(new) = st.opts.aliases.get(&id) {
        let loc = raw_path.replacen(&encode_path(&id), &encode_path(new), 1);
        return relative_redirect(&loc, query);
    }
    let Some(repo) = st.repo(&id) else {
        return repo_not_found(&id);
    };
    let params = query_params(query);
    match rest {
        [] => info(st, &repo, truthy(params.get("blobs"))),
        ["revision", rev] => {
            if !revision_ok(&repo, rev) {
                return revision_not_found(&id, rev);
            }
            info(st, &repo, truthy(params.get("blobs")))
        }
        ["tree", rev, path @ ..] => {
            if !revision_ok(&repo, rev) {
                return revision_not_found(&id, rev);
            }
            tree(st, &repo, rev, &path.join("/"), &params, headers)
        }
        ["paths-info", rev] if form.is_some() => {
            if !revision_ok(&repo, rev) {
                return revision_not_found(&id, rev);
            }
            paths_info(st, &repo, form.unwrap_or_default())
        }
        _ => hub_error(
            StatusCode::NOT_FOUND,
            "NotFound",
            "unknown API path; this mirror serves /api/models/{repo}[/revision/{rev}|/tree/{rev}]",
        ),
    }
}

fn revision_ok(repo: &Repo, rev: &str) -> bool {
    rev == "main" || rev == repo.commit || repo.recorded_revision.as_deref() == Some(rev)
}

fn json_response(v: &Value) -> Response {
    let mut r = Response::new(Body::from(v.to_string()));
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    r
}

/// `GET /api/models?search=&author=&pipeline_tag=&limit=`: the served models, like the Hub's `list_models`.
fn list_models(st: &MirrorState, query: Option<&str>) -> Response {
    let params = query_params(query);
    let search = params.get("search").map(|s| s.to_lowercase());
    let limit: usize = params
        .get("limit")
        .and_then(|l| l.parse().ok())
        .unwrap_or(usize::MAX);
    let mut repos: Vec<Arc<Repo>> = st
        .read_repos()
        .values()
        .filter_map(|l| l.repo.as_ref().ok().cloned().flatten())
        .collect();
    if let Some(plan) = &st.opts.faults {
        repos.extend(plan.virtual_repos());
    }
    repos.sort_by(|a, b| a.id.cmp(&b.id));
    repos.dedup_by(|a, b| a.id == b.id);
    let out: Vec<Value> = repos
        .iter()
        .filter(|r| search.as_ref().is_none_or(|s| r.id.to_lowercase().contains(s)))
        .filter(|r| {
            params
                .get("author")
                .is_none_or(|a| r.id.split_once('/').is_some_and(|(o, _)| o == a))
        })
        .filter(|r| {
            params
                .get("pipeline_tag")
                .is_none_or(|p| r.pipeline_tag.as_deref() == Some(p.as_str()))
        })
        .take(limit)
        .map(|r| {
            json!({
                "_id": hex::encode(&Sha1::digest(r.id.as_bytes())[..12]),
                "id": r.id,
                "modelId": r.id,
                "sha": r.commit,
                "private": false,
                "gated": if st.opts.gated_repos.contains(&r.id) { json!("manual") } else { json!(false) },
                "downloads": 0,
                "likes": 0,
                "tags": r.tags,
                "pipeline_tag": r.pipeline_tag,
                "library_name": r.library_name,
                "lastModified": r.last_modified,
                "createdAt": r.last_modified,
            })
        })
        .collect();
    json_response(&Value::Array(out))
}

fn info(st: &MirrorState, repo: &Repo, blobs: bool) -> Response {
    let gated = st.opts.gated_repos.contains(&repo.id);
    let files = st.files(repo);
    let siblings: Vec<Value> = files
        .iter()
        .map(|(path, f)| {
            let mut s = json!({ "rfilename": path });
            if blobs {
                s["size"] = json!(f.listed_size.unwrap_or(f.size));
                s["blobId"] = json!(f.oid);
                if f.lfs {
                    s["lfs"] = json!({
                        "sha256": f.published_sha256(),
                        "size": f.listed_size.unwrap_or(f.size),
                        "pointerSize": f.pointer_size(),
                    });
                }
            }
            s
        })
        .collect();
    let mut v = json!({
        "_id": hex::encode(&Sha1::digest(repo.id.as_bytes())[..12]),
        "id": repo.id,
        "modelId": repo.id,
        "author": repo.id.split_once('/').map(|(o, _)| o),
        "sha": repo.commit,
        "lastModified": repo.last_modified,
        "createdAt": repo.last_modified,
        "private": false,
        "disabled": false,
        "gated": if gated { json!("manual") } else { json!(false) },
        "downloads": 0,
        "likes": 0,
        "tags": repo.tags,
        "pipeline_tag": repo.pipeline_tag,
        "library_name": repo.library_name,
        "siblings": siblings,
        "spaces": [],
    });
    if let Some(c) = &repo.card_data {
        v["cardData"] = c.clone();
    }
    if !repo.safetensors.is_empty() {
        v["safetensors"] = json!({
            "parameters": repo.safetensors,
            "total": repo.safetensors.values().sum::<u64>(),
        });
    }
    if blobs {
        v["usedStorage"] = json!(files.values().map(|f| f.size).sum::<u64>());
    }
    json_response(&v)
}

/// Directories of a set of repo paths.
fn directories<'a>(paths: impl Iterator<Item = &'a String>) -> BTreeSet<String> {
    let mut dirs = BTreeSet::new();
    for p in paths {
        let mut acc = String::new();
        let parts: Vec<&str> = p.split('/').collect();
        for part in &parts[..parts.len().saturating_sub(1)] {
            if !acc.is_empty() {
                acc.push('/');
            }
            acc.push_str(part);
            dirs.insert(acc.clone());
        }
    }
    dirs
}

/// A tree / paths-info entry for a directory.
fn dir_entry(repo: &Repo, d: &str) -> Value {
    let oid = hex::encode(Sha1::digest(
        format!("tree {}:{}", repo.commit, d).as_bytes(),
    ));
    json!({ "type": "directory", "oid": oid, "size": 0, "path": d })
}

/// A tree / paths-info entry for a file (note: the sha256 is `lfs.oid` here).
fn file_entry(path: &str, f: &FileEntry) -> Value {
    let mut e = json!({
        "type": "file",
        "oid": f.oid,
        "size": f.listed_size.unwrap_or(f.size),
        "path": path,
    });
    if f.lfs {
        e["lfs"] = json!({
            "oid": f.published_sha256(),
            "size": f.listed_size.unwrap_or(f.size),
            "pointerSize": f.pointer_size(),
        });
    }
    e
}

/// `POST /api/models/{repo}/paths-info/{rev}` with `paths=…` (form, repeated) or `{"paths": […]}` (JSON): the
/// entries for those paths that exist.
fn paths_info(st: &MirrorState, repo: &Repo, body: &[u8]) -> Response {
    let paths: Vec<String> = match serde_json::from_slice::<Value>(body) {
        Ok(v) => v["paths"]
            .as_array()
            .map(|a| {
                a.iter()
                    .filter_map(|p| p.as_str().map(str::to_string))
                    .collect()
            })
            .unwrap_or_default(),
        Err(_) => url::form_urlencoded::parse(body)
            .filter(|(k, _)| k == "paths")
            .map(|(_, v)| v.into_owned())
            .collect(),
    };
    let files = st.files(repo);
    let dirs = directories(files.keys());
    let out: Vec<Value> = paths
        .iter()
        .map(|p| p.trim_matches('/'))
        .filter_map(|p| match files.get(p) {
            Some(f) => Some(file_entry(p, f)),
            None => dirs.contains(p).then(|| dir_entry(repo, p)),
        })
        .collect();
    json_response(&Value::Array(out))
}

fn tree(
    st: &MirrorState,
    repo: &Repo,
    rev: &str,
    prefix: &str,
    params: &HashMap<String, String>,
    headers: &HeaderMap,
) -> Response {
    let recursive = truthy(params.get("recursive"));
    let files = st.files(repo);
    let dirs = directories(files.keys());
    let prefix = prefix.trim_matches('/');
    if !prefix.is_empty() && !dirs.contains(prefix) {
        return entry_not_found(&repo.id, prefix);
    }
    let under = |p: &str| -> bool {
        let rel = if prefix.is_empty() {
            Some(p)
        } else {
            p.strip_prefix(prefix).and_then(|r| r.strip_prefix('/'))
        };
        match rel {
            Some(r) if !r.is_empty() => recursive || !r.contains('/'),
            _ => false,
        }
    };
    let mut entries: Vec<(String, Value)> = Vec::new();
    for d in dirs.iter().filter(|d| under(d)) {
        entries.push((d.clone(), dir_entry(repo, d)));
    }
    for (p, f) in files.iter().filter(|(p, _)| under(p)) {
        entries.push((p.clone(), file_entry(p, f)));
    }
    entries.sort_by(|a, b| a.0.cmp(&b.0));
    let page = st.opts.tree_page_size.max(1);
    let start: usize = params
        .get("cursor")
        .and_then(|c| c.parse().ok())
        .unwrap_or(0)
        .min(entries.len());
    let end = (start + page).min(entries.len());
    let body: Vec<Value> = entries[start..end].iter().map(|(_, v)| v.clone()).collect();
    let mut r = json_response(&Value::Array(body));
    if end < entries.len() {
        let host = headers
            .get(header::HOST)
            .and_then(|h| h.to_str().ok())
            .unwrap_or("localhost");
        // Behind a TLS-terminating proxy the next link must keep the client's scheme.
        let scheme = match headers
            .get("x-forwarded-proto")
            .and_then(|h| h.to_str().ok())
        {
            Some("https") => "https",
            _ => "http",
        };
        let mut url = format!(
            "{scheme}://{host}/api/models/{}/tree/{}",
            encode_path(&repo.id),
            utf8_percent_encode(rev, SEGMENT)
        );
        if !prefix.is_empty() {
            url.push('/');
            url.push_str(&encode_path(prefix));
        }
        url.push_str(&format!(
            "?recursive={}&cursor={end}",
            if recursive { "true" } else { "false" }
        ));
        if let Ok(v) = HeaderValue::from_str(&format!("<{url}>; rel=\"next\"")) {
            r.headers_mut().insert(header::LINK, v);
        }
    }
    r
}

fn bearer(headers: &HeaderMap) -> Option<String> {
    let v = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let t = v
        .strip_prefix("Bearer ")
        .or_else(|| v.strip_prefix("bearer "))?;
    Some(t.trim().to_string())
}

async fn resolve(
    st: &MirrorState,
    segs: &[&str],
    query: Option<&str>,
    headers: &HeaderMap,
    method: &Method,
) -> Response {
    // /{org}/{name}/resolve/{rev}/{path..} or /{name}/resolve/{rev}/{path..}
    let two = segs.len() >= 5 && segs[2] == "resolve";
    let one = segs.len() >= 4 && segs[1] == "resolve";
    let (id, rev, path) = if two && (!one || st.known(&format!("{}/{}", segs[0], segs[1]))) {
        (
            format!("{}/{}", segs[0], segs[1]),
            segs[3],
            segs[4..].join("/"),
        )
    } else if one {
        (segs[0].to_string(), segs[2], segs[3..].join("/"))
    } else {
        return hub_error(
            StatusCode::NOT_FOUND,
            "NotFound",
            "unknown path; files are at /{repo}/resolve/{revision}/{path}",
        );
    };
    if let Some(new) = st.opts.aliases.get(&id) {
        let loc = format!(
            "/{}/resolve/{}/{}",
            encode_path(new),
            utf8_percent_encode(rev, SEGMENT),
            encode_path(&path)
        );
        return relative_redirect(&loc, query);
    }
    let Some(repo) = st.repo(&id) else {
        return repo_not_found(&id);
    };
    if st.opts.gated_repos.contains(&id) {
        match bearer(headers) {
            None => {
                return hub_error(
                    StatusCode::UNAUTHORIZED,
                    "GatedRepo",
                    &format!(
                        "Access to model {id} is restricted. You must be authenticated to access it: set HF_TOKEN."
                    ),
                );
            }
            Some(t) if !st.opts.accepted_tokens.iter().any(|a| a == &t) => {
                return hub_error(
                    StatusCode::FORBIDDEN,
                    "GatedRepo",
                    &format!(
                        "Access to model {id} is restricted and your token is not in the authorized list. \
                         Accept the model's terms to access it."
                    ),
                );
            }
            Some(_) => {}
        }
    }
    if !revision_ok(&repo, rev) {
        return revision_not_found(&id, rev);
    }
    let Some(file) = st.file(&repo, &path) else {
        return entry_not_found(&id, &path);
    };
    let mut extra = HeaderMap::new();
    if let Ok(v) = HeaderValue::from_str(&repo.commit) {
        extra.insert("x-repo-commit", v);
    }
    if file.lfs {
        if let Some(sha) = file.published_sha256()
            && let Ok(v) = HeaderValue::from_str(sha)
        {
            extra.insert("x-linked-etag", v);
        }
        extra.insert("x-linked-size", HeaderValue::from(file.size));
    }
    if let Ok(v) = HeaderValue::from_str(&file.etag()) {
        extra.insert(header::ETAG, v);
    }
    if file.lfs
        && let Some(base) = &st.opts.cdn_base
        && let Some(sha) = file.published_sha256()
    {
        let expires = chrono::Utc::now().timestamp() + 3600;
        let loc = format!(
            "{}/cdn/{sha}?X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Expires=3600&X-Amz-Date={expires}&X-Amz-Signature={}",
            base.trim_end_matches('/'),
            st.cdn_signature(sha)
        );
        let mut r = Response::new(Body::from(format!("Found. Redirecting to {base}/cdn/…")));
        *r.status_mut() = StatusCode::FOUND;
        r.headers_mut().extend(extra);
        if let Ok(v) = HeaderValue::from_str(&loc) {
            r.headers_mut().insert(header::LOCATION, v);
        }
        return r;
    }
    serve_bytes(&file, headers, method, extra).await
}

async fn cdn(
    st: &MirrorState,
    sha: &str,
    query: Option<&str>,
    headers: &HeaderMap,
    method: &Method,
) -> Response {
    let params = query_params(query);
    let sig_ok = params
        .get("X-Amz-Signature")
        .is_some_and(|s| *s == st.cdn_signature(sha));
    if !sig_ok {
        return hub_error(
            StatusCode::FORBIDDEN,
            "SignatureDoesNotMatch",
            "the request signature is missing or wrong",
        );
    }
    let Some(file) = st.by_sha256(sha) else {
        return hub_error(StatusCode::NOT_FOUND, "NoSuchKey", "no such object");
    };
    let mut extra = HeaderMap::new();
    if let Ok(v) = HeaderValue::from_str(&format!("\"{sha}\"")) {
        extra.insert(header::ETAG, v);
    }
    serve_bytes(&file, headers, method, extra).await
}

/// The single byte range a `Range` header asks for: `Ok(Some((start, end_exclusive)))`, `Ok(None)` for no (or an
/// unsupported) range, `Err(())` for unsatisfiable.
fn parse_range(h: Option<&HeaderValue>, size: u64) -> std::result::Result<Option<(u64, u64)>, ()> {
    let Some(v) = h.and_then(|v| v.to_str().ok()) else {
        return Ok(None);
    };
    let Some(spec) = v.trim().strip_prefix("bytes=") else {
        return Ok(None);
    };
    if spec.contains(',') {
        return Ok(None);
    }
    let Some((a, b)) = spec.split_once('-') else {
        return Ok(None);
    };
    let (a, b) = (a.trim(), b.trim());
    if a.is_empty() {
        // Suffix: the last N bytes.
        let Ok(n) = b.parse::<u64>() else {
            return Ok(None);
        };
        if n == 0 || size == 0 {
            return Err(());
        }
        return Ok(Some((size.saturating_sub(n), size)));
    }
    let Ok(start) = a.parse::<u64>() else {
        return Ok(None);
    };
    if start >= size {
        return Err(());
    }
    let end = if b.is_empty() {
        size
    } else {
        match b.parse::<u64>() {
            Ok(e) if e >= start => (e + 1).min(size),
            _ => return Ok(None),
        }
    };
    Ok(Some((start, end)))
}

async fn serve_bytes(
    file: &FileEntry,
    headers: &HeaderMap,
    method: &Method,
    extra: HeaderMap,
) -> Response {
    let size = file.size;
    // `If-Range`: the range only applies while the entity is the one the client started with; otherwise the
    // whole (new) file.
    let if_range_ok = match headers.get(header::IF_RANGE).and_then(|v| v.to_str().ok()) {
        None => true,
        Some(v) => {
            let norm = |s: &str| {
                s.trim()
                    .trim_start_matches("W/")
                    .trim_matches('"')
                    .to_string()
            };
            extra
                .get(header::ETAG)
                .and_then(|e| e.to_str().ok())
                .is_some_and(|e| norm(e) == norm(v))
        }
    };
    let range_header = if if_range_ok {
        headers.get(header::RANGE)
    } else {
        None
    };
    let range = match parse_range(range_header, size) {
        Ok(r) => r,
        Err(()) => {
            let mut r = hub_error(
                StatusCode::RANGE_NOT_SATISFIABLE,
                "RangeNotSatisfiable",
                "the requested range starts at or beyond the end of the file",
            );
            r.headers_mut().extend(extra);
            if let Ok(v) = HeaderValue::from_str(&format!("bytes */{size}")) {
                r.headers_mut().insert(header::CONTENT_RANGE, v);
            }
            return r;
        }
    };
    let (start, end) = range.unwrap_or((0, size));
    let len = end - start;
    let body = if *method == Method::HEAD {
        Body::empty()
    } else {
        match &file.source {
            Source::Memory(b) => {
                let slice = b.slice(start as usize..end as usize);
                let chunks: Vec<std::result::Result<Bytes, std::io::Error>> = (0..slice.len())
                    .step_by(64 * 1024)
                    .map(|i| Ok(slice.slice(i..(i + 64 * 1024).min(slice.len()))))
                    .collect();
                Body::from_stream(futures::stream::iter(chunks))
            }
            Source::Disk(p) => match std::fs::File::open(p) {
                Ok(f) => Body::from_stream(file_body(f, start, end)),
                Err(e) => {
                    return hub_error(
                        StatusCode::INTERNAL_SERVER_ERROR,
                        "InternalError",
                        &format!("cannot open the file: {e}"),
                    );
                }
            },
        }
    };
    let mut r = Response::new(body);
    let h = r.headers_mut();
    h.extend(extra);
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/octet-stream"),
    );
    h.insert(header::ACCEPT_RANGES, HeaderValue::from_static("bytes"));
    h.insert(header::CONTENT_LENGTH, HeaderValue::from(len));
    if range.is_some() {
        *r.status_mut() = StatusCode::PARTIAL_CONTENT;
        if let Ok(v) = HeaderValue::from_str(&format!("bytes {start}-{}/{size}", end - 1)) {
            r.headers_mut().insert(header::CONTENT_RANGE, v);
        }
    }
    r.extensions_mut().insert(BodyStart(start));
    r
}

/// `n` bytes of `f` at `pos` into a fresh buffer, without zeroing it first (at gigabytes per second the memset is a
/// measurable share of the server's CPU). A file that ends early is an `UnexpectedEof` error.
fn read_exact_at_uninit(f: &std::fs::File, n: usize, pos: u64) -> std::io::Result<Vec<u8>> {
    use std::os::fd::AsRawFd;
    let mut buf: Vec<u8> = Vec::with_capacity(n);
    let mut got = 0usize;
    while got < n {
        let spare = buf.spare_capacity_mut();
        // SAFETY: `spare` is writable memory of at least `n - got` bytes owned by `buf`; pread writes at most that
        // many bytes into it and reports how many, and only those are then marked initialised.
        let r = unsafe {
            libc::pread(
                f.as_raw_fd(),
                spare.as_mut_ptr().cast(),
                n - got,
                (pos + got as u64) as libc::off_t,
            )
        };
        if r < 0 {
            let e = std::io::Error::last_os_error();
            if e.kind() == std::io::ErrorKind::Interrupted {
                continue;
            }
            return Err(e);
        }
        if r == 0 {
            return Err(std::io::Error::new(
                std::io::ErrorKind::UnexpectedEof,
                "the file is shorter than when it was listed",
            ));
        }
        got += r as usize;
        // SAFETY: the first `got` bytes were written by pread above.
        unsafe { buf.set_len(got) };
    }
    Ok(buf)
}

/// Bytes `[start, end)` of a file as a body stream of 1 MiB chunks read with positioned reads on the serving thread:
/// model files are read from the page cache in well under a millisecond per chunk, and a hop to a blocking pool per
/// chunk (what `tokio::fs` does) costs more than the read itself. A file that shrinks midway ends the body early
/// (the client sees a short transfer, never wrong bytes).
fn file_body(
    f: std::fs::File,
    start: u64,
    end: u64,
) -> impl futures::Stream<Item = std::io::Result<Bytes>> + Send + 'static {
    const CHUNK: u64 = 1 << 20;
    futures::stream::unfold((f, start), move |(f, pos)| async move {
        if pos >= end {
            return None;
        }
        let n = (end - pos).min(CHUNK) as usize;
        match read_exact_at_uninit(&f, n, pos) {
            Ok(buf) => Some((Ok(Bytes::from(buf)), (f, pos + n as u64))),
            Err(e) => Some((Err(e), (f, end))),
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lfs_rules() {
        assert!(is_lfs_path("model.safetensors", 10));
        assert!(is_lfs_path("sub/x.GGUF", 10));
        assert!(!is_lfs_path("config.json", 100));
        assert!(is_lfs_path("big.json", LFS_SIZE_THRESHOLD));
        assert!(!is_lfs_path("Makefile", 1));
    }

    #[test]
    fn git_sha1_matches_git() {
        // `printf 'hello\n' | git hash-object --stdin`
        assert_eq!(
            git_blob_sha1(b"hello\n"),
            "ce013625030ba8dba906f756967f9e9ca394464a"
        );
        assert_eq!(
            git_blob_sha1(b""),
            "e69de29bb2d1d6434b8b29ae775ad8c2e48c5391"
        );
    }

    #[test]
    fn ranges() {
        let hv = |s: &str| HeaderValue::from_str(s).unwrap();
        assert_eq!(parse_range(None, 10), Ok(None));
        assert_eq!(parse_range(Some(&hv("bytes=2-")), 10), Ok(Some((2, 10))));
        assert_eq!(parse_range(Some(&hv("bytes=2-4")), 10), Ok(Some((2, 5))));
        assert_eq!(parse_range(Some(&hv("bytes=2-40")), 10), Ok(Some((2, 10))));
        assert_eq!(parse_range(Some(&hv("bytes=-3")), 10), Ok(Some((7, 10))));
        assert_eq!(parse_range(Some(&hv("bytes=10-")), 10), Err(()));
        assert_eq!(parse_range(Some(&hv("bytes=0-")), 0), Err(()));
        assert_eq!(parse_range(Some(&hv("bytes=0-1,3-4")), 10), Ok(None));
        assert_eq!(parse_range(Some(&hv("items=0-1")), 10), Ok(None));
    }

    #[test]
    fn card_front_matter() {
        let c = card_data(
            "---\nlicense: mit\ntags:\n- a\n- \"b\"\npipeline_tag: text-generation\n---\n# x\n",
        )
        .unwrap();
        assert_eq!(
            c,
            json!({"license": "mit", "tags": ["a", "b"], "pipeline_tag": "text-generation"})
        );
        assert!(card_data("# no front matter").is_none());
    }
}
