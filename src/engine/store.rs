//! The model store on disk.
//!
//! A model lives at `<models_directory>/<org>--<name>/` (a repo id without an org: `<name>/`) and holds exactly the
//! repo's files at one pinned commit. Beside it, `<org>--<name>.metadata.json` records what those files must be.
//! Engine-private state (partial downloads, locks, the persisted download queue, alert history) lives under
//! `<models_directory>/.ema/`, outside every model's visible tree and on the same filesystem so renames are atomic.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::atomic::write_json_atomic;
use super::error::{EmaError, Result};

pub const METADATA_SCHEMA_VERSION: u32 = 1;
pub const METADATA_SUFFIX: &str = ".metadata.json";
pub const STATE_DIR: &str = ".ema";

/// A validated Hub repo id: `name` or `org/name`, each part `[A-Za-z0-9._-]`, no `--` or `..`, not starting or
/// ending with `-` or `.`, at most 96 characters per part.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct RepoId(String);

impl RepoId {
    pub fn parse(s: &str) -> Result<Self> {
        let bad = |why: &str| {
            EmaError::Config(format!(
                "invalid repo id {s:?}: {why}; expected `org/name` or `name` using letters, digits, `-`, `_` and `.`"
            ))
        };
        let parts: Vec<&str> = s.split('/').collect();
        if parts.is_empty() || parts.len() > 2 {
            return Err(bad("too many `/`"));
        }
        for p in &parts {
            if p.is_empty() {
                return Err(bad("empty part"));
            }
            if p.len() > 96 {
                return Err(bad("a part is longer than 96 characters"));
            }
            if !p
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
            {
                return Err(bad("contains a character that is not allowed"));
            }
            if p.contains("--") || p.contains("..") {
                return Err(bad("contains `--` or `..`"));
            }
            if p.starts_with(['-', '.']) || p.ends_with(['-', '.']) {
                return Err(bad("a part starts or ends with `-` or `.`"));
            }
        }
        Ok(RepoId(s.to_string()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The folder name in the store: `org--name` or `name`.
    pub fn folder_name(&self) -> String {
        self.0.replace('/', "--")
    }

    /// Inverse of [`RepoId::folder_name`].
    pub fn from_folder_name(folder: &str) -> Result<Self> {
        RepoId::parse(&folder.replacen("--", "/", 1))
    }
}

impl std::fmt::Display for RepoId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl TryFrom<String> for RepoId {
    type Error = EmaError;
    fn try_from(s: String) -> Result<Self> {
        RepoId::parse(&s)
    }
}

impl From<RepoId> for String {
    fn from(r: RepoId) -> String {
        r.0
    }
}

/// How far a model's files have been proven.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum VerificationState {
    /// Every file hashed and matched the hub's published hash.
    Verified,
    /// Hashes recorded locally, not checked against the hub (offline metadata generation).
    LocalOnly,
    /// Not (yet) verified: a download in progress, or metadata without hashes.
    Unverified,
    /// The last verification found a mismatch.
    Failed,
}

/// One file of a model as the hub published it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FileRecord {
    /// Repo-relative path with `/` separators (validated).
    pub path: String,
    pub size: u64,
    /// sha256 of the content (LFS files; also recorded for others when known).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sha256: Option<String>,
    /// git blob sha1.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub git_sha1: Option<String>,
    /// True when the file is stored in LFS (its expected hash is the sha256).
    #[serde(default)]
    pub lfs: bool,
    /// When the file's bytes were last hashed and matched.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub verified_at: Option<String>,
    /// Modification time (unix nanoseconds) when last verified, for the quick check and to skip re-hashing an
    /// unchanged file. (Records from before nanoseconds were kept have `mtime` in seconds, which is ignored: such
    /// files are hashed once more, then stamped.)
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mtime_ns: Option<i64>,
}

/// The sidecar `<org>--<name>.metadata.json`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ModelMetadata {
    pub schema_version: u32,
    pub repo_id: RepoId,
    /// The revision the operator asked for (branch, tag or sha).
    pub requested_revision: String,
    /// The 40-hex commit the files are pinned to (absent for local-only metadata).
    #[serde(default)]
    pub commit: Option<String>,
    /// The hub endpoint the files came from, if any.
    #[serde(default)]
    pub endpoint: Option<String>,
    pub files: Vec<FileRecord>,
    pub total_size: u64,
    #[serde(default)]
    pub pipeline_tag: Option<String>,
    #[serde(default)]
    pub library_name: Option<String>,
    #[serde(default)]
    pub tags: Vec<String>,
    #[serde(default)]
    pub parameters: Option<u64>,
    /// What else the hub and the model's `config.json` say (for the fallback score); empty in old sidecars.
    #[serde(default, skip_serializing_if = "ModelFacts::is_empty")]
    pub facts: ModelFacts,
    pub created_at: String,
    pub updated_at: String,
    #[serde(default)]
    pub last_verified_at: Option<String>,
    pub verification: VerificationState,
    /// Side-by-side adoption (`storage.shared_storage`): the legacy models-directory folder the model was adopted
    /// from where it lies. The store holds links to its files; ema never renames, moves or deletes anything there.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub legacy_location: Option<PathBuf>,
}

/// Facts about a model beyond its files, for the fallback score. The hub's model-tree tags
/// (`base_model:finetune:…`, `base_model:quantized:…`, `base_model:adapter:…`, `base_model:merge:…`) stay in
/// [`ModelMetadata::tags`] as the hub sent them. Every field is optional: an old sidecar reads as "unknown".
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct ModelFacts {
    /// The card's `base_model` (a string or a list on the hub).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub base_models: Vec<String>,
    /// `safetensors.parameters`: parameter count per dtype (`BF16`, `F32`, packed `I32`/`U8` for quantizations).
    #[serde(default, skip_serializing_if = "std::collections::BTreeMap::is_empty")]
    pub parameters_by_dtype: std::collections::BTreeMap<String, u64>,
    /// `config.json` `architectures`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub architectures: Vec<String>,
    /// `config.json` `model_type`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub model_type: Option<String>,
    /// `config.json` `quantization_config`, when present.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub quantization: Option<Quantization>,
}

/// What `quantization_config` says: the method and the bits when given.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct Quantization {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub method: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bits: Option<u32>,
}

impl ModelFacts {
    pub fn is_empty(&self) -> bool {
        *self == ModelFacts::default()
    }
}

/// File extensions the Hub stores in LFS (and so publishes a sha256 for).
pub const LFS_EXTENSIONS: &[&str] = &[
    "safetensors",
    "bin",
    "pt",
    "pth",
    "gguf",
    "onnx",
    "h5",
    "msgpack",
    "ckpt",
];
/// Files at least this large are LFS whatever their extension.
pub const LFS_SIZE_THRESHOLD: u64 = 10 * 1024 * 1024;
/// Whether the Hub would store `path` (of `size` bytes) in LFS.
pub fn is_lfs_path(path: &str, size: u64) -> bool {
    if size >= LFS_SIZE_THRESHOLD {
        return true;
    }
    let name = path.rsplit('/').next().unwrap_or(path);
    match name.rsplit_once('.') {
        Some((_, ext)) => LFS_EXTENSIONS.contains(&ext.to_ascii_lowercase().as_str()),
        None => false,
    }
}

pub fn now_rfc3339() -> String {
    chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}

/// Check a repo-relative file name from a server before it reaches a path: no absolute paths, no `..` or `.`
/// segments, no backslash, NUL or empty segments, no drive prefixes.
pub fn validate_repo_path(name: &str) -> Result<()> {
    let bad = |why: &str| {
        EmaError::Integrity(format!(
            "refusing repo file name {name:?}: {why}; nothing was written for it"
        ))
    };
    if name.is_empty() {
        return Err(bad("empty name"));
    }
    if name.contains('\0') {
        return Err(bad("contains NUL"));
    }
    if name.contains('\\') {
        return Err(bad("contains a backslash"));
    }
    if name.starts_with('/') {
        return Err(bad("absolute path"));
    }
    if name.len() >= 2 && name.as_bytes()[1] == b':' {
        return Err(bad("drive-letter path"));
    }
    for seg in name.split('/') {
        match seg {
            "" => return Err(bad("empty path segment")),
            "." | ".." => return Err(bad("contains a `.` or `..` segment")),
            _ => {}
        }
    }
    if name == STATE_DIR || name.starts_with(".ema/") {
        return Err(bad("collides with ema's private state directory"));
    }
    Ok(())
}

/// The store rooted at `models_directory`.
#[derive(Debug, Clone)]
pub struct Store {
    root: PathBuf,
}

impl Store {
    pub fn new(root: impl Into<PathBuf>) -> Self {
        Store { root: root.into() }
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    pub fn model_dir(&self, repo: &RepoId) -> PathBuf {
        self.root.join(repo.folder_name())
    }

    pub fn metadata_path(&self, repo: &RepoId) -> PathBuf {
        self.root
            .join(format!("{}{}", repo.folder_name(), METADATA_SUFFIX))
    }

    /// Engine-private state directory.
    pub fn state_dir(&self) -> PathBuf {
        self.root.join(STATE_DIR)
    }

    /// Where partial downloads of `repo` live, keyed by the expected hash of each file.
    pub fn partial_dir(&self, repo: &RepoId) -> PathBuf {
        self.state_dir().join("partial").join(repo.folder_name())
    }

    pub fn lock_path(&self, repo: &RepoId) -> PathBuf {
        self.state_dir()
            .join("locks")
            .join(format!("{}.lock", repo.folder_name()))
    }

    /// Create the store root and its state directory.
    pub fn ensure(&self) -> Result<()> {
        for d in [self.root.clone(), self.state_dir()] {
            std::fs::create_dir_all(&d).map_err(|e| {
                // Say which part of the path is in the way (only looked up once creating failed).
                match d.ancestors().find(|p| p.exists()) {
                    Some(p) if !p.is_dir() => EmaError::Config(format!(
                        "the models directory {} cannot be created: {} is a file, not a directory; choose \
                         another --models-dir (or storage.models_directory)",
                        d.display(),
                        p.display()
                    )),
                    _ => EmaError::io("cannot create directory", &d, e),
                }
            })?;
        }
        Ok(())
    }

    pub fn read_metadata(&self, repo: &RepoId) -> Result<Option<ModelMetadata>> {
        let p = self.metadata_path(repo);
        match std::fs::read(&p) {
            Ok(bytes) => serde_json::from_slice(&bytes).map(Some).map_err(|e| {
                EmaError::Integrity(format!(
                    "metadata file {} is damaged ({e}); regenerate it with `ema generate-metadata --models-dir {} \
                     --force-regenerate`",
                    p.display(),
                    self.root.display()
                ))
            }),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(EmaError::io("cannot read", &p, e)),
        }
    }

    pub fn write_metadata(&self, meta: &ModelMetadata) -> Result<()> {
        write_json_atomic(&self.metadata_path(&meta.repo_id), meta)
    }

    /// Every model the store knows: folders and metadata sidecars, sorted by repo id. Folders whose names are not
    /// valid repo ids (and the state dir) are skipped.
    pub fn list_models(&self) -> Result<Vec<RepoId>> {
        let mut out = std::collections::BTreeSet::new();
        let rd = match std::fs::read_dir(&self.root) {
            Ok(rd) => rd,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(EmaError::io("cannot list", &self.root, e)),
        };
        for entry in rd.flatten() {
            let name = entry.file_name().to_string_lossy().into_owned();
            if name.starts_with('.') {
                continue;
            }
            let folder = if let Some(stem) = name.strip_suffix(METADATA_SUFFIX) {
                stem.to_string()
            } else if entry.file_type().map(|t| t.is_dir()).unwrap_or(false) {
                name
            } else {
                continue;
            };
            if let Ok(id) = RepoId::from_folder_name(&folder) {
                out.insert(id);
            }
        }
        Ok(out.into_iter().collect())
    }
}

/// A file's modification time in unix nanoseconds (what a verified record vouches for): with whole seconds a file
/// rewritten in the same second as its verification, at the same size, would pass for unchanged.
pub fn mtime_ns(md: &std::fs::Metadata) -> Option<i64> {
    let d = md
        .modified()
        .ok()?
        .duration_since(std::time::UNIX_EPOCH)
        .ok()?;
    i64::try_from(d.as_nanos()).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_file_in_the_way_of_the_models_directory_is_named() {
        let d = tempfile::tempdir().unwrap();
        std::fs::write(d.path().join("afile"), b"x").unwrap();
        let e = Store::new(d.path().join("afile/models"))
            .ensure()
            .unwrap_err();
        assert!(matches!(e, EmaError::Config(_)), "{e}");
        let msg = e.to_string();
        assert!(
            msg.contains("afile is a file, not a directory") && msg.contains("--models-dir"),
            "{msg}"
        );
        assert_eq!(std::fs::read(d.path().join("afile")).unwrap(), b"x");
        Store::new(d.path().join("ok/models")).ensure().unwrap();
        assert!(d.path().join("ok/models").is_dir());
    }

    #[test]
    fn repo_ids() {
        assert_eq!(
            RepoId::parse("org/name").unwrap().folder_name(),
            "org--name"
        );
        assert_eq!(RepoId::parse("gpt2").unwrap().folder_name(), "gpt2");
        for bad in [
            "",
            "a/b/c",
            "../x",
            "a/..",
            "a--b/c",
            "/x",
            "a b/c",
            "x/.hidden",
            "org/-x",
        ] {
            assert!(RepoId::parse(bad).is_err(), "{bad}");
        }
        let id = RepoId::parse("meta-llama/Llama-3.1-8B").unwrap();
        assert_eq!(RepoId::from_folder_name(&id.folder_name()).unwrap(), id);
    }

    #[test]
    fn hostile_paths_refused() {
        for bad in [
            "/etc/passwd",
            "../x",
            "a/../../x",
            "a\\b",
            "a\0b",
            "C:x",
            "a//b",
            "./a",
            "",
            ".ema/state",
        ] {
            assert!(validate_repo_path(bad).is_err(), "{bad:?}");
        }
        for ok in [
            "config.json",
            "sub/dir/model.safetensors",
            ".gitattributes",
            "a..b",
        ] {
            validate_repo_path(ok).unwrap();
        }
    }

    #[test]
    fn lists_folders_and_sidecars() {
        let d = tempfile::tempdir().unwrap();
        let s = Store::new(d.path());
        s.ensure().unwrap();
        std::fs::create_dir(d.path().join("org--a")).unwrap();
        std::fs::write(d.path().join("b.metadata.json"), "{}").unwrap();
        std::fs::create_dir(d.path().join("bad name")).unwrap();
        let ids: Vec<String> = s
            .list_models()
            .unwrap()
            .iter()
            .map(|r| r.to_string())
            .collect();
        assert_eq!(ids, vec!["b", "org/a"]);
    }
}
