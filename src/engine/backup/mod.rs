//! Backups that prove themselves, and the rollback that uses them: `ema backup` (the spec's
//! `backup_current_system.sh`, with a manifest of every entry's type, mode, mtime, size, sha256 and link target,
//! data reflinked where the filesystem allows and copied otherwise) and `ema rollback` (the exact pre-migration
//! state back, byte for byte, after saving the state it replaces). The migration wizard's backup and rollback
//! steps run these.

pub mod compare;
pub mod manifest;
pub mod rollback;
pub mod sysinfo;
pub mod take;
pub mod tree;

pub use compare::{CompareOpts, Difference};
pub use manifest::{EntryKind, MANIFEST_NAME, Manifest};
pub use rollback::{RollbackReport, RollbackRequest, rollback, verify_restored};
pub use take::{BackupProgress, BackupReport, BackupRequest, plan_sources, take_backup};

#[cfg(test)]
mod tests;
