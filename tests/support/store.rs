//! Model stores for tests: the sample hub store (generated once), and metadata records written by hand.

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use ema::engine::demo::generate_sample_hub;
use ema::engine::store::{
    FileRecord, METADATA_SCHEMA_VERSION, ModelMetadata, RepoId, VerificationState, now_rfc3339,
};

/// The sample hub store, generated once per build directory and test binary (generation is idempotent, so later
/// runs reuse it).
pub fn sample_hub() -> &'static Path {
    static ROOT: OnceLock<PathBuf> = OnceLock::new();
    ROOT.get_or_init(|| {
        let name = format!("{}_sample_hub", env!("CARGO_CRATE_NAME"));
        let root = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(name);
        generate_sample_hub(&root).unwrap();
        root
    })
}

/// The metadata of model `id` holding one (non-LFS) file `path` with `content`: at revision `main`, no commit, no
/// hashes recorded, no task, created now. Tests set what they need on top.
pub fn one_file_metadata(
    id: &str,
    path: &str,
    content: &[u8],
    verification: VerificationState,
) -> ModelMetadata {
    ModelMetadata {
        schema_version: METADATA_SCHEMA_VERSION,
        legacy_location: None,
        repo_id: RepoId::parse(id).unwrap(),
        requested_revision: "main".into(),
        commit: None,
        endpoint: None,
        files: vec![FileRecord {
            path: path.into(),
            size: content.len() as u64,
            sha256: None,
            git_sha1: None,
            lfs: false,
            verified_at: None,
            mtime_ns: None,
        }],
        total_size: content.len() as u64,
        pipeline_tag: None,
        library_name: None,
        tags: vec![],
        parameters: None,
        facts: Default::default(),
        created_at: now_rfc3339(),
        updated_at: now_rfc3339(),
        last_verified_at: None,
        verification,
    }
}
