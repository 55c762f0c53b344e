//! `migrate-models`: adopt every model of a legacy models directory into ema's store in place — files renamed into
//! `<models_dir>/<org>--<name>/` (a blob another snapshot still uses is cloned), legacy bookkeeping kept under
//! `.ema/legacy/`, no file bytes downloaded — with the sidecar written last as each model's commit point, and a
//! journal that lets a killed run be finished by the next.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::Serialize;

use crate::engine::atomic::sync_dir;
use crate::engine::backup::tree::{apply_meta, clone_hashed, fs_facts, mtime_ns_of};
use crate::engine::error::{EmaError, Result};
use crate::engine::integrity::generate::HubSource;
use crate::engine::integrity::hash::{self, HashJob, HashKinds};
use crate::engine::store::{
    FileRecord, METADATA_SCHEMA_VERSION, ModelMetadata, RepoId, STATE_DIR, Store,
    VerificationState, is_lfs_path, now_rfc3339,
};

use super::identify::IdSource;
use super::journal::{self, Move, Plan, PlannedFile, Record};
use super::side_by_side;
use super::survey::{Action, Layout, LegacyModel, survey};

fn is_zero(n: &usize) -> bool {
    *n == 0
}

pub struct AdoptOptions<'a> {
    /// Hash every file and compare with the layout's hashes and, when `hub` answers, the hub's listing.
    pub verify_integrity: bool,
    /// Write sidecars for folders already in ema's layout that lack one.
    pub create_metadata: bool,
    /// Plan only.
    pub dry_run: bool,
    pub hub: Option<&'a dyn HubSource>,
    pub threads: usize,
    /// Side-by-side (`storage.shared_storage`): ema's own store, apart from the legacy models directory. The models
    /// are recorded there as links to where they lie; nothing under the legacy directory changes. None: in place.
    pub store: Option<&'a Path>,
}

/// A file whose bytes differ from what the layout or the hub promised.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Mismatch {
    pub path: String,
    pub expected: String,
    pub actual: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct ModelOutcome {
    pub repo_id: String,
    pub layout: Layout,
    pub id_source: IdSource,
    pub location: PathBuf,
    pub target: PathBuf,
    pub files: usize,
    pub bytes: u64,
    /// `would_adopt`, `adopted`, `resumed`, `already_adopted`, `metadata_created`, `needs_metadata`, `conflict`.
    pub result: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub verification: Option<VerificationState>,
    /// Where the expected hashes came from: `hub`, `layout`, `local` (hashed here, nothing to compare with).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub hashes_from: Option<&'static str>,
    pub mismatches: Vec<Mismatch>,
    /// Files the hub lists at the commit that are not here (reported, never fetched).
    pub hub_files_missing: Vec<String>,
    pub moved: usize,
    pub cloned: usize,
    /// Side-by-side: files recorded where they lie, as links from ema's store.
    #[serde(skip_serializing_if = "is_zero")]
    pub linked: usize,
    pub notes: Vec<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct MigrateReport {
    pub models_dir: PathBuf,
    /// Side-by-side: ema's store the models were recorded in.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub store: Option<PathBuf>,
    pub dry_run: bool,
    pub models: Vec<ModelOutcome>,
    pub unrecognised: Vec<PathBuf>,
    pub bytes_hashed: u64,
}

impl MigrateReport {
    pub fn mismatches(&self) -> usize {
        self.models.iter().map(|m| m.mismatches.len()).sum()
    }
    pub fn conflicts(&self) -> usize {
        self.models
            .iter()
            .filter(|m| m.result == "conflict")
            .count()
    }
}

/// Adopt every model under `models_dir` (see the module comment).
pub fn migrate_models(
    models_dir: &Path,
    map: &BTreeMap<String, RepoId>,
    opts: &AdoptOptions,
) -> Result<MigrateReport> {
    let mut outcomes = Vec::new();
    let mut bytes_hashed = 0;
    let side = match opts.store {
        Some(store) => Some(side_by_side::prepare(models_dir, store, opts.dry_run)?),
        None => None,
    };
    // Side-by-side models a killed run had started: adopted again (their links are idempotent).
    let mut redo = std::collections::BTreeSet::new();
    let _lock = if opts.dry_run {
        None
    } else {
        let root = match &side {
            Some(store) => Ok(store.clone()),
            None => models_dir.canonicalize(),
        }
        .map_err(|e| {
            if e.kind() == std::io::ErrorKind::NotFound {
                EmaError::NotFound(format!(
                    "the models directory {} does not exist; pass the legacy models directory with --models-dir",
                    models_dir.display()
                ))
            } else {
                EmaError::io("cannot resolve", models_dir, e)
            }
        })?;
        let lock = journal::lock(&root)?;
        // A run that was killed: finish its models first (their files may be half moved).
        for rec in journal::unfinished(&root)? {
            if let Some(plan) = rec.plan {
                remove_torn_sidecar(&root, &plan.repo_id);
                if plan.side_by_side {
                    redo.insert(plan.repo_id.to_string());
                    continue;
                }
                let mut o = finish(&root, &plan, opts, &mut bytes_hashed)?;
                o.result = "resumed";
                outcomes.push(o);
            }
        }
        Some(lock)
    };
    let s = survey(models_dir, map)?;
    let root = s.models_dir.clone();
    // Where sidecars, journal and model folders go: the models directory itself, or ema's own store.
    let home = side.clone().unwrap_or_else(|| root.clone());
    let resumed: Vec<String> = outcomes.iter().map(|o| o.repo_id.clone()).collect();
    // A model this run resumed is in the store now: it is reported once, as resumed.
    for m in s
        .models
        .iter()
        .filter(|m| !resumed.contains(&m.repo_id.to_string()))
    {
        let target = home.join(m.repo_id.folder_name());
        let mut o = outcome(m, &target);
        if side.is_some() {
            // Side by side nothing is moved: the legacy bookkeeping and other snapshots stay where they are.
            for n in &mut o.notes {
                if n.contains(".ema/legacy/") || n.contains("kept with the cache's leftovers") {
                    *n = format!(
                        "{} (side by side: left where it is)",
                        n.split(';')
                            .next()
                            .unwrap_or(n)
                            .split(" kept")
                            .next()
                            .unwrap_or(n)
                    );
                }
            }
        }
        let action = match &side {
            Some(store) => side_by_side::action(store, m, redo.contains(&m.repo_id.to_string())),
            None => m.action.clone(),
        };
        let plan = |m: &LegacyModel| match &side {
            Some(store) => side_by_side::plan(store, m),
            None => plan(&root, m),
        };
        match &action {
            Action::Conflict { reason } => {
                o.result = "conflict";
                o.reason = Some(reason.clone());
            }
            Action::AlreadyAdopted => o.result = "already_adopted",
            Action::CreateMetadata if !opts.create_metadata => {
                o.result = "needs_metadata";
                o.reason =
                    Some("in ema's layout without a sidecar: run with --create-metadata".into());
            }
            Action::CreateMetadata | Action::Adopt if opts.dry_run => {
                o.result = if action == Action::Adopt {
                    "would_adopt"
                } else {
                    "would_create_metadata"
                };
                let plan = plan(m);
                o.moved = plan.moves.iter().filter(|mv| !mv.clone && !mv.link).count();
                o.cloned = plan.moves.iter().filter(|mv| mv.clone).count();
                o.linked = plan.moves.iter().filter(|mv| mv.link).count();
            }
            Action::CreateMetadata | Action::Adopt => {
                let plan = plan(m);
                journal::append(
                    &home,
                    &Record {
                        phase: "intent".into(),
                        model: m.repo_id.to_string(),
                        at: now_rfc3339(),
                        plan: Some(plan.clone()),
                    },
                )?;
                let done = finish(&home, &plan, opts, &mut bytes_hashed)?;
                let mut notes = o.notes;
                notes.extend(done.notes.iter().cloned());
                o = ModelOutcome {
                    result: if redo.contains(&m.repo_id.to_string()) {
                        "resumed"
                    } else if action == Action::Adopt {
                        "adopted"
                    } else {
                        "metadata_created"
                    },
                    notes,
                    id_source: o.id_source,
                    location: o.location,
                    ..done
                };
            }
        }
        outcomes.push(o);
    }
    Ok(MigrateReport {
        models_dir: root,
        store: side,
        dry_run: opts.dry_run,
        models: outcomes,
        unrecognised: s.unrecognised,
        bytes_hashed,
    })
}

/// The temporary file of a sidecar write that was killed (`.<org>--<name>.metadata.json.XXXXXX.tmp`, as
/// `atomic::write_atomic` names it): the model's adoption is being finished, so it is nobody's.
fn remove_torn_sidecar(root: &Path, id: &RepoId) {
    let prefix = format!(
        ".{}.",
        Store::new(root)
            .metadata_path(id)
            .file_name()
            .unwrap_or_default()
            .to_string_lossy()
    );
    let Ok(rd) = std::fs::read_dir(root) else {
        return;
    };
    for e in rd.flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        if name.starts_with(&prefix)
            && name.ends_with(".tmp")
            && e.file_type().is_ok_and(|t| t.is_file())
        {
            let _ = std::fs::remove_file(e.path());
        }
    }
}

fn outcome(m: &LegacyModel, target: &Path) -> ModelOutcome {
    ModelOutcome {
        repo_id: m.repo_id.to_string(),
        layout: m.layout,
        id_source: m.id_source,
        location: m.location.clone(),
        target: target.to_path_buf(),
        files: m.files.len(),
        bytes: m.bytes,
        result: "",
        verification: None,
        hashes_from: None,
        mismatches: Vec::new(),
        hub_files_missing: Vec::new(),
        moved: 0,
        cloned: 0,
        linked: 0,
        notes: m.notes.clone(),
        reason: None,
    }
}

/// Where each file and each piece of legacy bookkeeping goes.
fn plan(root: &Path, m: &LegacyModel) -> Plan {
    let target = root.join(m.repo_id.folder_name());
    let archive = root.join(STATE_DIR).join("legacy");
    let mut moves = Vec::new();
    let mut remove_if_empty = Vec::new();
    match m.layout {
        Layout::Plain | Layout::LocalDir | Layout::Ema => {
            if m.location != target {
                moves.push(Move {
                    from: m.location.clone(),
                    to: target.clone(),
                    clone: false,
                    link: false,
                });
            }
            let folder = m.location.file_name().unwrap_or_default();
            for l in &m.leftovers {
                let rel = l.strip_prefix(&m.location).unwrap_or(l);
                moves.push(Move {
                    from: target.join(rel),
                    to: archive.join(folder).join(rel),
                    clone: false,
                    link: false,
                });
                if let Some(first) = rel.components().next()
                    && rel.components().count() > 1
                {
                    remove_if_empty.push(target.join(first));
                }
            }
        }
        Layout::HubCache => {
            for f in &m.files {
                moves.push(Move {
                    from: f.source.clone(),
                    to: target.join(&f.path),
                    clone: f.shared || !f.source.starts_with(&m.location),
                    link: false,
                });
            }
            moves.push(Move {
                from: m.location.clone(),
                to: archive.join(m.location.file_name().unwrap_or_default()),
                clone: false,
                link: false,
            });
        }
        Layout::TransformersCache => {
            for f in &m.files {
                moves.push(Move {
                    from: f.source.clone(),
                    to: target.join(&f.path),
                    clone: false,
                    link: false,
                });
            }
            let container = m.location.file_name().unwrap_or_default();
            for l in &m.leftovers {
                moves.push(Move {
                    from: l.clone(),
                    to: archive
                        .join(container)
                        .join(l.file_name().unwrap_or_default()),
                    clone: false,
                    link: false,
                });
            }
            if m.location != root {
                remove_if_empty.push(m.location.clone());
            }
        }
    }
    Plan {
        repo_id: m.repo_id.clone(),
        layout: m.layout,
        id_source: Some(m.id_source),
        location: Some(m.location.clone()),
        commit: m.commit.clone(),
        target,
        files: m
            .files
            .iter()
            .map(|f| PlannedFile {
                path: f.path.clone(),
                size: f.size,
                expected_sha256: f.expected_sha256.clone(),
                expected_git_sha1: f.expected_git_sha1.clone(),
            })
            .collect(),
        moves,
        remove_if_empty,
        side_by_side: false,
    }
}

#[cfg(test)]
pub(crate) fn plan_for_tests(root: &Path, m: &LegacyModel) -> Plan {
    plan(root, m)
}

/// Do (or finish) a plan's moves, then write the sidecar and the done record.
fn finish(
    root: &Path,
    plan: &Plan,
    opts: &AdoptOptions,
    bytes_hashed: &mut u64,
) -> Result<ModelOutcome> {
    let mut moved = 0;
    let mut cloned = 0;
    let mut linked = 0;
    for mv in &plan.moves {
        if mv.link {
            linked += usize::from(side_by_side::link(mv)?);
        } else if apply_move(mv)? {
            if mv.clone {
                cloned += 1;
            } else {
                moved += 1;
            }
        }
    }
    for d in &plan.remove_if_empty {
        let _ = std::fs::remove_dir(d);
    }
    let sc = sidecar(plan, opts)?;
    *bytes_hashed += sc.hashed;
    let meta = sc.meta;
    let store = Store::new(root);
    store.write_metadata(&meta)?;
    sync_dir(root);
    journal::append(
        root,
        &Record {
            phase: "done".into(),
            model: plan.repo_id.to_string(),
            at: now_rfc3339(),
            plan: None,
        },
    )?;
    Ok(ModelOutcome {
        repo_id: plan.repo_id.to_string(),
        layout: plan.layout,
        id_source: plan.id_source.unwrap_or(IdSource::LocalOnly),
        location: plan.location.clone().unwrap_or_else(|| plan.target.clone()),
        target: plan.target.clone(),
        files: meta.files.len(),
        bytes: meta.total_size,
        result: "adopted",
        verification: Some(meta.verification),
        hashes_from: Some(sc.hashes_from),
        mismatches: sc.mismatches,
        hub_files_missing: sc.hub_missing,
        moved,
        cloned,
        linked,
        notes: sc.notes,
        reason: None,
    })
}

/// One move, idempotently: true when it did something, false when a previous run already had.
fn apply_move(mv: &Move) -> Result<bool> {
    let to_exists = std::fs::symlink_metadata(&mv.to).is_ok();
    let from_exists = std::fs::symlink_metadata(&mv.from).is_ok();
    if to_exists && (mv.clone || !from_exists) {
        return Ok(false);
    }
    if !from_exists {
        return Err(EmaError::Other(format!(
            "cannot finish the adoption: {} is gone and {} was never created; restore the backup (ema rollback) \
             and run migrate-models again",
            mv.from.display(),
            mv.to.display()
        )));
    }
    if to_exists {
        return Err(EmaError::Other(format!(
            "{} already exists; move it aside and run migrate-models again",
            mv.to.display()
        )));
    }
    if let Some(p) = mv.to.parent() {
        std::fs::create_dir_all(p).map_err(|e| EmaError::io("cannot create", p, e))?;
    }
    if mv.clone {
        let tmp = mv.to.with_file_name(format!(
            ".{}.ema-adopt.tmp",
            mv.to.file_name().unwrap_or_default().to_string_lossy()
        ));
        let _ = std::fs::remove_file(&tmp);
        let reflink = fs_facts(mv.to.parent().unwrap_or(Path::new("/")))
            .map(|f| f.reflink_capable)
            .unwrap_or(false);
        clone_hashed(&mv.from, &tmp, reflink)?;
        let md =
            std::fs::metadata(&mv.from).map_err(|e| EmaError::io("cannot read", &mv.from, e))?;
        use std::os::unix::fs::MetadataExt;
        apply_meta(
            &tmp,
            crate::engine::backup::EntryKind::File,
            md.mode() & 0o7777,
            Some(mtime_ns_of(&md)),
        )?;
        std::fs::rename(&tmp, &mv.to)
            .map_err(|e| EmaError::io("cannot move into place", &mv.to, e))?;
    } else {
        std::fs::rename(&mv.from, &mv.to).map_err(|e| {
            if e.raw_os_error() == Some(libc::EXDEV) {
                EmaError::Config(format!(
                    "{} and {} are on different filesystems: in-place adoption renames files and copies nothing; \
                     keep the models directory on one filesystem",
                    mv.from.display(),
                    mv.to.display()
                ))
            } else {
                EmaError::io("cannot move", &mv.from, e)
            }
        })?;
    }
    Ok(true)
}

struct Sidecar {
    meta: ModelMetadata,
    mismatches: Vec<Mismatch>,
    hub_missing: Vec<String>,
    hashes_from: &'static str,
    hashed: u64,
    notes: Vec<String>,
}

/// The sidecar of an adopted model: expected hashes from the hub (when asked and it answers) or the layout; with
/// `verify_integrity` every file hashed and compared; files with nothing to compare with are hashed (local-only).
fn sidecar(plan: &Plan, opts: &AdoptOptions) -> Result<Sidecar> {
    let now = now_rfc3339();
    let hub = match (opts.verify_integrity, opts.hub) {
        (true, Some(h)) => h.repo_files(&plan.repo_id, plan.commit.as_deref().unwrap_or("main"))?,
        _ => None,
    };
    // path → (sha256, git sha1, LFS as the hub says)
    type Expected = (Option<String>, Option<String>, Option<bool>);
    let mut expected: BTreeMap<&str, Expected> = plan
        .files
        .iter()
        .map(|f| {
            (
                f.path.as_str(),
                (f.expected_sha256.clone(), f.expected_git_sha1.clone(), None),
            )
        })
        .collect();
    let mut hub_missing = Vec::new();
    let mut notes_not_listed = Vec::new();
    if let Some(h) = &hub {
        for rec in &h.files {
            match expected.get_mut(rec.path.as_str()) {
                Some(e) => {
                    *e = (
                        rec.sha256.clone().or(e.0.clone()),
                        rec.git_sha1.clone().or(e.1.clone()),
                        Some(rec.lfs),
                    )
                }
                None => hub_missing.push(rec.path.clone()),
            }
        }
        for f in &plan.files {
            if !h.files.iter().any(|r| r.path == f.path) {
                notes_not_listed.push(f.path.clone());
            }
        }
    }
    let to_hash: Vec<&PlannedFile> = plan
        .files
        .iter()
        .filter(|f| {
            let (s, g, _) = &expected[f.path.as_str()];
            opts.verify_integrity || (s.is_none() && g.is_none())
        })
        .collect();
    let jobs: Vec<HashJob> = to_hash
        .iter()
        .map(|f| HashJob {
            path: plan.target.join(&f.path),
            kinds: HashKinds::BOTH,
            size_hint: f.size,
        })
        .collect();
    let mut local = BTreeMap::new();
    let mut hashed = 0;
    for (f, r) in to_hash
        .iter()
        .zip(hash::hash_files_parallel(&jobs, opts.threads, |_, _| {}))
    {
        let d = r?;
        hashed += d.digests.size;
        local.insert(f.path.as_str(), d.digests);
    }
    let mut files = Vec::new();
    let mut mismatches = Vec::new();
    let (mut any_local_only, mut any_unhashed) = (false, false);
    for f in &plan.files {
        let (exp_sha, exp_sha1, hub_lfs) = expected[f.path.as_str()].clone();
        let p = plan.target.join(&f.path);
        let md = std::fs::metadata(&p).map_err(|e| EmaError::io("cannot read", &p, e))?;
        let lfs = hub_lfs
            .unwrap_or(exp_sha.is_some() || (exp_sha1.is_none() && is_lfs_path(&f.path, md.len())));
        let mut rec = FileRecord {
            path: f.path.clone(),
            size: md.len(),
            sha256: exp_sha.clone(),
            git_sha1: exp_sha1.clone(),
            lfs,
            verified_at: None,
            mtime_ns: None,
        };
        match local.get(f.path.as_str()) {
            Some(d) => {
                let agrees = match (&exp_sha, &exp_sha1) {
                    (Some(want), _) => d.sha256.as_deref() == Some(want.as_str()),
                    (None, Some(want)) => d.git_sha1.as_deref() == Some(want.as_str()),
                    (None, None) => {
                        any_local_only = true;
                        true
                    }
                };
                if agrees {
                    rec.sha256 = d.sha256.clone();
                    if !rec.lfs && rec.git_sha1.is_none() {
                        rec.git_sha1 = d.git_sha1.clone();
                    }
                    rec.verified_at = Some(now.clone());
                    rec.mtime_ns = Some(mtime_ns_of(&md));
                } else {
                    mismatches.push(Mismatch {
                        path: f.path.clone(),
                        expected: exp_sha.clone().or(exp_sha1.clone()).unwrap_or_default(),
                        actual: if exp_sha.is_some() {
                            d.sha256.clone().unwrap_or_default()
                        } else {
                            d.git_sha1.clone().unwrap_or_default()
                        },
                    });
                }
            }
            None => any_unhashed = true,
        }
        files.push(rec);
    }
    let verification = if !mismatches.is_empty() {
        VerificationState::Failed
    } else if any_local_only {
        VerificationState::LocalOnly
    } else if any_unhashed {
        VerificationState::Unverified
    } else {
        VerificationState::Verified
    };
    let hashes_from = if hub.is_some() {
        "hub"
    } else if plan
        .files
        .iter()
        .any(|f| f.expected_sha256.is_some() || f.expected_git_sha1.is_some())
    {
        "layout"
    } else {
        "local"
    };
    let commit = hub
        .as_ref()
        .map(|h| h.commit.clone())
        .or(plan.commit.clone());
    let total_size = files.iter().map(|f| f.size).sum();
    let meta = ModelMetadata {
        schema_version: METADATA_SCHEMA_VERSION,
        legacy_location: plan.side_by_side.then(|| plan.location.clone()).flatten(),
        repo_id: plan.repo_id.clone(),
        requested_revision: commit.clone().unwrap_or_else(|| "local".into()),
        commit,
        endpoint: hub.as_ref().map(|h| h.endpoint.clone()),
        files,
        total_size,
        pipeline_tag: hub.as_ref().and_then(|h| h.pipeline_tag.clone()),
        library_name: hub.as_ref().and_then(|h| h.library_name.clone()),
        tags: hub.as_ref().map(|h| h.tags.clone()).unwrap_or_default(),
        parameters: hub.as_ref().and_then(|h| h.parameters),
        facts: crate::engine::fallback::facts::with_local_config(
            hub.as_ref().map(|h| h.facts.clone()).unwrap_or_default(),
            &plan.target,
        ),
        created_at: now.clone(),
        updated_at: now.clone(),
        last_verified_at: (verification == VerificationState::Verified).then_some(now),
        verification,
    };
    let notes = notes_not_listed
        .into_iter()
        .map(|p| format!("{p} is not in the hub's listing: kept on disk, left out of the sidecar"))
        .collect();
    Ok(Sidecar {
        meta,
        mismatches,
        hub_missing,
        hashes_from,
        hashed,
        notes,
    })
}
