//! Recognise every model under a legacy models directory, read-only: plain folders, `hf download --local-dir`
//! folders (`.cache/huggingface/` or the older `.huggingface/`), a Hugging Face hub cache used as the models
//! directory (`models--org--name/{refs,blobs,snapshots}`), and old transformers-cache folders (flat files with
//! `{url, etag}` sidecars). Each model comes with its repo id and how it was inferred, its files with the hashes the
//! layout promises, and what adopting it will do.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use serde::Serialize;

use crate::engine::error::{EmaError, Result};
use crate::engine::integrity::hash::{is_sha1_hex, is_sha256_hex};
use crate::engine::store::{METADATA_SUFFIX, RepoId, STATE_DIR, validate_repo_path};

use super::identify::{IdSource, from_model_files, local_only_id};

/// huggingface_hub's `local_dir` bookkeeping folders, newest name first.
pub const LOCAL_DIR_META: [&str; 2] = [".cache/huggingface", ".huggingface"];

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Layout {
    /// Already ema's: `org--name/` with its `org--name.metadata.json`.
    Ema,
    Plain,
    LocalDir,
    HubCache,
    TransformersCache,
}

impl Layout {
    pub fn describe(&self) -> &'static str {
        match self {
            Layout::Ema => "ema store (already adopted)",
            Layout::Plain => "plain folder",
            Layout::LocalDir => "hf download --local-dir folder",
            Layout::HubCache => "Hugging Face hub cache",
            Layout::TransformersCache => "old transformers cache",
        }
    }
}

/// One file of a legacy model.
#[derive(Debug, Clone, Serialize)]
pub struct LegacyFile {
    /// Repo-relative path (`/` separators) it will have in the store.
    pub path: String,
    /// Where its bytes are now (for a hub cache: the blob, links resolved).
    pub source: PathBuf,
    pub size: u64,
    /// What the layout promises (blob name, `.metadata` etag, sidecar etag).
    pub expected_sha256: Option<String>,
    pub expected_git_sha1: Option<String>,
    /// The bytes serve more than one path (a blob shared by snapshots): cloned, not moved.
    pub shared: bool,
}

/// What adopting a model does.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Action {
    /// Move (rename) its files into `<models_dir>/<org>--<name>/` and write the sidecar.
    Adopt,
    /// Already in ema's layout with a sidecar: nothing to do.
    AlreadyAdopted,
    /// In ema's layout without a sidecar: `--create-metadata` writes one.
    CreateMetadata,
    /// Cannot be adopted as it is; the reason says why and what to do. Left untouched.
    Conflict { reason: String },
}

/// One model found under the legacy models directory.
#[derive(Debug, Clone, Serialize)]
pub struct LegacyModel {
    pub layout: Layout,
    /// The folder it lives in (for a transformers cache, the cache folder shared by its repos).
    pub location: PathBuf,
    pub repo_id: RepoId,
    pub id_source: IdSource,
    /// The commit the files belong to, when the layout records one.
    pub commit: Option<String>,
    pub files: Vec<LegacyFile>,
    pub bytes: u64,
    pub action: Action,
    /// Legacy bookkeeping kept after adoption under `.ema/legacy/` (never deleted): `.cache/huggingface`, the hub
    /// cache's refs and remaining blobs, transformers sidecars.
    pub leftovers: Vec<PathBuf>,
    /// Things worth knowing (partial downloads skipped, other snapshots kept, …).
    pub notes: Vec<String>,
}

/// Everything found under one models directory.
#[derive(Debug, Clone, Serialize)]
pub struct Survey {
    pub models_dir: PathBuf,
    pub models: Vec<LegacyModel>,
    /// Entries that are no model ema recognises: left exactly where they are.
    pub unrecognised: Vec<PathBuf>,
}

/// Survey `models_dir`. `map`: folder name → repo id from `--map`. Reads only.
pub fn survey(models_dir: &Path, map: &BTreeMap<String, RepoId>) -> Result<Survey> {
    let meta = std::fs::metadata(models_dir).map_err(|e| {
        if e.kind() == std::io::ErrorKind::NotFound {
            EmaError::NotFound(format!(
                "the models directory {} does not exist; pass the legacy models directory with --models-dir",
                models_dir.display()
            ))
        } else {
            EmaError::io("cannot read", models_dir, e)
        }
    })?;
    if !meta.is_dir() {
        return Err(EmaError::Config(format!(
            "{} is not a directory; --models-dir takes the legacy models directory",
            models_dir.display()
        )));
    }
    let root = models_dir
        .canonicalize()
        .map_err(|e| EmaError::io("cannot resolve", models_dir, e))?;
    let mut models = Vec::new();
    let mut unrecognised = Vec::new();
    let mut names: Vec<String> = Vec::new();
    for ent in std::fs::read_dir(&root).map_err(|e| EmaError::io("cannot list", &root, e))? {
        let ent = ent.map_err(|e| EmaError::io("cannot list", &root, e))?;
        names.push(ent.file_name().to_string_lossy().into_owned());
    }
    names.sort();
    let sidecars: BTreeSet<String> = names
        .iter()
        .filter_map(|n| n.strip_suffix(METADATA_SUFFIX).map(str::to_string))
        .collect();
    let mut flat_files = Vec::new();
    for name in &names {
        let p = root.join(name);
        if name == STATE_DIR || name.ends_with(METADATA_SUFFIX) {
            continue;
        }
        let md = std::fs::symlink_metadata(&p).map_err(|e| EmaError::io("cannot read", &p, e))?;
        if md.is_file() {
            flat_files.push(name.clone());
            continue;
        }
        if !md.is_dir() {
            unrecognised.push(p);
            continue;
        }
        if let Some(rest) = name.strip_prefix("models--")
            && p.join("snapshots").is_dir()
        {
            models.push(hub_cache_model(&root, &p, rest, map)?);
            continue;
        }
        if let Some(found) = transformers_cache(&root, &p)? {
            models.extend(found);
            continue;
        }
        if let Some(meta_dir) = LOCAL_DIR_META
            .iter()
            .map(|m| p.join(m))
            .find(|m| m.join("download").is_dir())
        {
            models.push(folder_model(
                &root,
                &p,
                name,
                Layout::LocalDir,
                Some(&meta_dir),
                map,
            )?);
            continue;
        }
        if name.starts_with('.') {
            unrecognised.push(p);
            continue;
        }
        let layout = if sidecars.contains(name) {
            Layout::Ema
        } else {
            Layout::Plain
        };
        models.push(folder_model(&root, &p, name, layout, None, map)?);
    }
    // Flat transformers-cache files directly in the models directory.
    if let Some(found) = transformers_files(&root, &root, &flat_files)? {
        models.extend(found.0);
        unrecognised.extend(found.1);
    } else {
        unrecognised.extend(flat_files.iter().map(|n| root.join(n)));
    }
    resolve_conflicts(&root, &mut models);
    Ok(Survey {
        models_dir: root,
        models,
        unrecognised,
    })
}

/// Every regular file under `dir` (repo-relative), skipping huggingface_hub's bookkeeping folders. Symlinks to
/// files are resolved inside `root`; one that leaves it or dangles is an error for that model.
fn walk_files(root: &Path, dir: &Path) -> Result<Vec<(String, PathBuf, u64)>> {
    let mut out = Vec::new();
    let mut stack = vec![(dir.to_path_buf(), String::new())];
    while let Some((d, prefix)) = stack.pop() {
        for ent in std::fs::read_dir(&d).map_err(|e| EmaError::io("cannot list", &d, e))? {
            let ent = ent.map_err(|e| EmaError::io("cannot list", &d, e))?;
            let name = ent.file_name().to_string_lossy().into_owned();
            let rel = if prefix.is_empty() {
                name.clone()
            } else {
                format!("{prefix}/{name}")
            };
            if LOCAL_DIR_META.contains(&rel.as_str()) {
                continue;
            }
            let p = ent.path();
            let ft = ent
                .file_type()
                .map_err(|e| EmaError::io("cannot read", &p, e))?;
            if ft.is_dir() {
                stack.push((p, rel));
            } else if ft.is_file() {
                let size = ent
                    .metadata()
                    .map_err(|e| EmaError::io("cannot read", &p, e))?
                    .len();
                out.push((rel, p, size));
            } else if ft.is_symlink() {
                let target = resolve_inside(root, &p)?;
                let size = std::fs::metadata(&target)
                    .map_err(|e| EmaError::io("cannot read", &target, e))?
                    .len();
                out.push((rel, target, size));
            }
        }
    }
    out.sort();
    Ok(out)
}

/// Resolve a symlink fully; refuse one that dangles or leaves `root`.
fn resolve_inside(root: &Path, link: &Path) -> Result<PathBuf> {
    let target = link.canonicalize().map_err(|_| {
        EmaError::Integrity(format!(
            "{} is a dangling link; remove it or restore what it points to",
            link.display()
        ))
    })?;
    if !target.starts_with(root) || !target.is_file() {
        return Err(EmaError::Integrity(format!(
            "{} points outside the models directory ({}); ema adopts only files inside it",
            link.display(),
            target.display()
        )));
    }
    Ok(target)
}

/// A plain, local-dir or ema-layout folder.
fn folder_model(
    root: &Path,
    dir: &Path,
    name: &str,
    layout: Layout,
    meta_dir: Option<&Path>,
    map: &BTreeMap<String, RepoId>,
) -> Result<LegacyModel> {
    let (repo_id, id_source) = if let Some(id) = map.get(name) {
        (id.clone(), IdSource::Map)
    } else if let Some(found) = from_model_files(dir) {
        found
    } else if let Some(id) = RepoId::from_folder_name(name)
        .ok()
        .filter(|_| name.contains("--"))
    {
        (id, IdSource::FolderName)
    } else if let Some(id) = local_only_id(name) {
        (id, IdSource::LocalOnly)
    } else {
        return Ok(conflict_model(
            layout,
            dir,
            name,
            "its folder name cannot be made a valid model id; rename it",
        ));
    };
    let mut notes = Vec::new();
    let mut files = Vec::new();
    let mut commits = BTreeSet::new();
    let listed = match walk_files(root, dir) {
        Ok(l) => l,
        // ema's own model (a side-by-side store links to files elsewhere): its sidecar, not the survey, says
        // what it holds, and verification checks it.
        Err(_) if layout == Layout::Ema => Vec::new(),
        Err(e) => return Ok(conflict_model(layout, dir, name, &e.to_string())),
    };
    for (rel, source, size) in listed {
        if let Err(e) = validate_repo_path(&rel) {
            return Ok(conflict_model(layout, dir, name, &e.to_string()));
        }
        let mut f = LegacyFile {
            path: rel.clone(),
            source,
            size,
            expected_sha256: None,
            expected_git_sha1: None,
            shared: false,
        };
        if let Some(md) = meta_dir
            && let Some((commit, etag)) = read_local_dir_metadata(md, &rel)
        {
            commits.insert(commit);
            set_expected(&mut f, &etag);
        }
        files.push(f);
    }
    if files.is_empty() && layout != Layout::Ema {
        return Ok(conflict_model(
            layout,
            dir,
            name,
            "the folder holds no files; remove it or put the model's files in it",
        ));
    }
    let commit = match commits.len() {
        0 => None,
        1 => commits.into_iter().next(),
        n => {
            notes.push(format!(
                "the local-dir records name {n} different commits; no single commit recorded"
            ));
            None
        }
    };
    let action = match layout {
        Layout::Ema => Action::AlreadyAdopted,
        Layout::Plain if id_source == IdSource::FolderName => Action::CreateMetadata,
        _ => Action::Adopt,
    };
    let leftovers = meta_dir.map(|m| vec![m.to_path_buf()]).unwrap_or_default();
    Ok(LegacyModel {
        layout,
        location: dir.to_path_buf(),
        bytes: files.iter().map(|f| f.size).sum(),
        repo_id,
        id_source,
        commit,
        files,
        action,
        leftovers,
        notes,
    })
}

fn conflict_model(layout: Layout, dir: &Path, name: &str, reason: &str) -> LegacyModel {
    LegacyModel {
        layout,
        location: dir.to_path_buf(),
        repo_id: local_only_id(name).unwrap_or_else(|| RepoId::parse("unnamed").expect("valid")),
        id_source: IdSource::LocalOnly,
        commit: None,
        files: Vec::new(),
        bytes: 0,
        action: Action::Conflict {
            reason: reason.to_string(),
        },
        leftovers: Vec::new(),
        notes: Vec::new(),
    }
}

/// `<meta_dir>/download/<rel>.metadata`: commit, etag, timestamp.
fn read_local_dir_metadata(meta_dir: &Path, rel: &str) -> Option<(String, String)> {
    let text =
        std::fs::read_to_string(meta_dir.join("download").join(format!("{rel}.metadata"))).ok()?;
    let mut lines = text.lines();
    let commit = lines.next()?.trim().to_ascii_lowercase();
    let etag = normalize_etag(lines.next()?);
    (is_sha1_hex(&commit) && (is_sha1_hex(&etag) || is_sha256_hex(&etag))).then_some((commit, etag))
}

fn normalize_etag(s: &str) -> String {
    s.trim()
        .trim_start_matches("W/")
        .trim_matches('"')
        .to_ascii_lowercase()
}

/// An etag is the sha256 of an LFS file or the git blob sha1 of any other.
fn set_expected(f: &mut LegacyFile, etag: &str) {
    if is_sha256_hex(etag) {
        f.expected_sha256 = Some(etag.to_string());
    } else if is_sha1_hex(etag) {
        f.expected_git_sha1 = Some(etag.to_string());
    }
}

/// `models--org--name/`: the snapshot `refs/main` names (else the only one, else the newest), its files resolved to
/// their blobs. Blobs used by more than one path (in any snapshot) are marked shared.
fn hub_cache_model(
    root: &Path,
    dir: &Path,
    rest: &str,
    map: &BTreeMap<String, RepoId>,
) -> Result<LegacyModel> {
    let name = format!("models--{rest}");
    let (repo_id, id_source) = match map.get(&name) {
        Some(id) => (id.clone(), IdSource::Map),
        None => match RepoId::parse(&rest.replacen("--", "/", 1)) {
            Ok(id) => (id, IdSource::HubCacheName),
            Err(e) => return Ok(conflict_model(Layout::HubCache, dir, &name, &e.to_string())),
        },
    };
    let snaps_dir = dir.join("snapshots");
    let mut snaps: Vec<(String, std::time::SystemTime)> = Vec::new();
    for ent in
        std::fs::read_dir(&snaps_dir).map_err(|e| EmaError::io("cannot list", &snaps_dir, e))?
    {
        let ent = ent.map_err(|e| EmaError::io("cannot list", &snaps_dir, e))?;
        let mtime = ent
            .metadata()
            .and_then(|m| m.modified())
            .unwrap_or(std::time::UNIX_EPOCH);
        snaps.push((ent.file_name().to_string_lossy().into_owned(), mtime));
    }
    let mut notes = Vec::new();
    let main = std::fs::read_to_string(dir.join("refs/main"))
        .ok()
        .map(|s| s.trim().to_string());
    let chosen = match main.filter(|c| snaps.iter().any(|(s, _)| s == c)) {
        Some(c) => c,
        None => match snaps.iter().max_by_key(|(_, t)| *t) {
            Some((s, _)) => {
                if snaps.len() > 1 {
                    notes.push(format!(
                        "no refs/main: adopting the newest of {} snapshots",
                        snaps.len()
                    ));
                }
                s.clone()
            }
            None => {
                return Ok(conflict_model(
                    Layout::HubCache,
                    dir,
                    &name,
                    "the hub cache holds no snapshot",
                ));
            }
        },
    };
    if snaps.len() > 1 {
        notes.push(format!(
            "{} other snapshot(s) kept under .ema/legacy/{name} (a store holds one commit per model)",
            snaps.len() - 1
        ));
    }
    // How often each blob is used, over every snapshot.
    let mut uses: BTreeMap<PathBuf, usize> = BTreeMap::new();
    let mut per_snapshot: BTreeMap<String, Vec<(String, PathBuf, u64)>> = BTreeMap::new();
    for (s, _) in &snaps {
        let listed = match walk_files(root, &snaps_dir.join(s)) {
            Ok(l) => l,
            Err(e) => return Ok(conflict_model(Layout::HubCache, dir, &name, &e.to_string())),
        };
        for (_, src, _) in &listed {
            *uses.entry(src.clone()).or_default() += 1;
        }
        per_snapshot.insert(s.clone(), listed);
    }
    let mut files = Vec::new();
    for (rel, source, size) in per_snapshot.remove(&chosen).unwrap_or_default() {
        if let Err(e) = validate_repo_path(&rel) {
            return Ok(conflict_model(Layout::HubCache, dir, &name, &e.to_string()));
        }
        let blob_name = source
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let mut f = LegacyFile {
            path: rel,
            shared: uses.get(&source).copied().unwrap_or(0) > 1,
            source,
            size,
            expected_sha256: None,
            expected_git_sha1: None,
        };
        if f.source
            .parent()
            .and_then(|p| p.file_name())
            .is_some_and(|n| n == "blobs")
            || f.source.starts_with(dir.join("blobs"))
            || is_sha256_hex(&blob_name)
        {
            set_expected(&mut f, &blob_name);
        }
        files.push(f);
    }
    let incomplete = std::fs::read_dir(dir.join("blobs"))
        .map(|rd| {
            rd.flatten()
                .filter(|e| e.file_name().to_string_lossy().ends_with(".incomplete"))
                .count()
        })
        .unwrap_or(0);
    if incomplete > 0 {
        notes.push(format!("{incomplete} partial download(s) (*.incomplete) not adopted; kept with the cache's leftovers"));
    }
    if files.is_empty() {
        return Ok(conflict_model(
            Layout::HubCache,
            dir,
            &name,
            "the chosen snapshot holds no files",
        ));
    }
    Ok(LegacyModel {
        layout: Layout::HubCache,
        location: dir.to_path_buf(),
        bytes: files.iter().map(|f| f.size).sum(),
        repo_id,
        id_source,
        commit: Some(chosen).filter(|c| is_sha1_hex(c)),
        files,
        action: Action::Adopt,
        leftovers: vec![dir.to_path_buf()],
        notes,
    })
}

/// A folder of transformers-cache files (`<hash>` beside `<hash>.json` holding `{url, etag}`), or None.
fn transformers_cache(root: &Path, dir: &Path) -> Result<Option<Vec<LegacyModel>>> {
    let mut names = Vec::new();
    for ent in std::fs::read_dir(dir).map_err(|e| EmaError::io("cannot list", dir, e))? {
        let ent = ent.map_err(|e| EmaError::io("cannot list", dir, e))?;
        if ent.file_type().map(|t| t.is_file()).unwrap_or(false) {
            names.push(ent.file_name().to_string_lossy().into_owned());
        }
    }
    names.sort();
    Ok(transformers_files(root, dir, &names)?.map(|(m, _)| m))
}

/// Group transformers-cache files of `dir` by repo. None when no `{url, etag}` sidecar is among `names`. Files
/// that belong to no sidecar are returned as unrecognised.
#[allow(clippy::type_complexity)]
fn transformers_files(
    _root: &Path,
    dir: &Path,
    names: &[String],
) -> Result<Option<(Vec<LegacyModel>, Vec<PathBuf>)>> {
    let mut by_repo: BTreeMap<RepoId, (Vec<LegacyFile>, BTreeSet<String>)> = BTreeMap::new();
    let mut claimed: BTreeSet<&str> = BTreeSet::new();
    let present: BTreeSet<&str> = names.iter().map(String::as_str).collect();
    for n in names {
        let Some(stem) = n.strip_suffix(".json") else {
            continue;
        };
        if !present.contains(stem) {
            continue;
        }
        let Ok(bytes) = std::fs::read(dir.join(n)) else {
            continue;
        };
        let Ok(v) = serde_json::from_slice::<serde_json::Value>(&bytes) else {
            continue;
        };
        let (Some(url), etag) = (
            v.get("url").and_then(|u| u.as_str()),
            v.get("etag").and_then(|e| e.as_str()),
        ) else {
            continue;
        };
        let Some((repo, revision, path)) = parse_resolve_url(url) else {
            continue;
        };
        let Ok(md) = std::fs::metadata(dir.join(stem)) else {
            continue;
        };
        let mut f = LegacyFile {
            path,
            source: dir.join(stem),
            size: md.len(),
            expected_sha256: None,
            expected_git_sha1: None,
            shared: false,
        };
        if let Some(e) = etag {
            set_expected(&mut f, &normalize_etag(e));
        }
        let entry = by_repo.entry(repo).or_default();
        entry.0.push(f);
        entry.1.insert(revision);
        claimed.insert(stem);
        claimed.insert(n);
        if let Some(lock) = present.get(format!("{stem}.lock").as_str()) {
            claimed.insert(lock);
        }
    }
    if by_repo.is_empty() {
        return Ok(None);
    }
    let mut models = Vec::new();
    for (repo_id, (mut files, revisions)) in by_repo {
        files.sort_by(|a, b| a.path.cmp(&b.path));
        let mut notes = Vec::new();
        let commit = if revisions.len() == 1 {
            revisions.iter().next().filter(|r| is_sha1_hex(r)).cloned()
        } else {
            notes.push(format!(
                "files from {} revisions: {:?}",
                revisions.len(),
                revisions
            ));
            None
        };
        let leftovers = files
            .iter()
            .flat_map(|f| {
                let s = f.source.to_string_lossy();
                [
                    PathBuf::from(format!("{s}.json")),
                    PathBuf::from(format!("{s}.lock")),
                ]
            })
            .filter(|p| p.exists())
            .collect();
        models.push(LegacyModel {
            layout: Layout::TransformersCache,
            location: dir.to_path_buf(),
            bytes: files.iter().map(|f| f.size).sum(),
            repo_id,
            id_source: IdSource::TransformersUrl,
            commit,
            files,
            action: Action::Adopt,
            leftovers,
            notes,
        });
    }
    let rest = names
        .iter()
        .filter(|n| !claimed.contains(n.as_str()))
        .map(|n| dir.join(n))
        .collect();
    Ok(Some((models, rest)))
}

/// `https://host/{org/name}/resolve/{revision}/{path}` → (repo, revision, path).
fn parse_resolve_url(url: &str) -> Option<(RepoId, String, String)> {
    let after_scheme = url.split_once("://")?.1;
    let (_, path) = after_scheme.split_once('/')?;
    let path = path.split(['?', '#']).next()?;
    let (repo, rest) = path.split_once("/resolve/")?;
    let repo = repo.strip_prefix("models/").unwrap_or(repo);
    let (revision, file) = rest.split_once('/')?;
    let file = percent_encoding::percent_decode_str(file)
        .decode_utf8()
        .ok()?
        .into_owned();
    validate_repo_path(&file).ok()?;
    Some((RepoId::parse(repo).ok()?, revision.to_string(), file))
}

/// Two models that would land in one store folder, or a target folder that something else occupies: the later ones
/// become conflicts (nothing is overwritten).
fn resolve_conflicts(root: &Path, models: &mut [LegacyModel]) {
    let mut taken: BTreeMap<String, PathBuf> = BTreeMap::new();
    for m in models.iter() {
        if matches!(m.action, Action::AlreadyAdopted | Action::CreateMetadata) {
            taken.insert(m.repo_id.folder_name(), m.location.clone());
        }
    }
    for m in models.iter_mut() {
        if m.action != Action::Adopt {
            continue;
        }
        let folder = m.repo_id.folder_name();
        let target = root.join(&folder);
        let occupied_by_other = target.exists() && target != m.location;
        if let Some(other) = taken.get(&folder).filter(|o| **o != m.location) {
            m.action = Action::Conflict {
                reason: format!(
                    "{} is already in the store from {}; remove one copy or give this one another id with --map",
                    m.repo_id,
                    other.display()
                ),
            };
        } else if occupied_by_other {
            m.action = Action::Conflict {
                reason: format!(
                    "{} already exists; move it aside or give this model another id with --map",
                    target.display()
                ),
            };
        } else {
            taken.insert(folder, m.location.clone());
        }
    }
}
