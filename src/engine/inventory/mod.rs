//! Every model in the store, described from its files alone (no hashing: that is the integrity checker's job):
//! the console's row per model ([`ModelInfo`], with the watch list), the status `ema status` and the server report
//! ([`ModelStatus`], with the downloads in flight), the space models take and the disk has, and deleting a model.

mod delete;
mod row;
mod space;
mod status;

pub use delete::delete_model;
pub use row::{ModelInfo, inspect, scan};
pub use space::{DiskSpace, dir_size, disk_space};
pub use status::{FileStatus, ModelStatus, model_status, model_statuses};

/// A verified sidecar for `id` recording `files` (path, size), for the tests of this module.
#[cfg(test)]
fn test_metadata(id: &str, files: &[(&str, u64)]) -> crate::engine::store::ModelMetadata {
    use crate::engine::store::{
        FileRecord, METADATA_SCHEMA_VERSION, ModelMetadata, RepoId, VerificationState, now_rfc3339,
    };
    ModelMetadata {
        schema_version: METADATA_SCHEMA_VERSION,
        legacy_location: None,
        repo_id: RepoId::parse(id).unwrap(),
        requested_revision: "main".into(),
        commit: Some("0123456789abcdef0123456789abcdef01234567".into()),
        endpoint: None,
        files: files
            .iter()
            .map(|(p, s)| FileRecord {
                path: p.to_string(),
                size: *s,
                sha256: None,
                git_sha1: None,
                lfs: false,
                verified_at: None,
                mtime_ns: None,
            })
            .collect(),
        total_size: files.iter().map(|f| f.1).sum(),
        pipeline_tag: Some("text-classification".into()),
        library_name: None,
        tags: vec![],
        parameters: None,
        facts: Default::default(),
        created_at: now_rfc3339(),
        updated_at: now_rfc3339(),
        last_verified_at: None,
        verification: VerificationState::Verified,
    }
}
