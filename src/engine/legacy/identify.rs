//! Which repo a legacy model folder holds: the operator's `--map FILE`, then what the layout itself records, then
//! `_name_or_path` in its config.json, README front matter, an `org--name` folder name; otherwise it stays a
//! local-only model under its own name. Every answer says how it was inferred.

use std::collections::BTreeMap;
use std::path::Path;

use serde::Serialize;

use crate::engine::error::{EmaError, Result};
use crate::engine::store::RepoId;

/// How a repo id was inferred.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum IdSource {
    /// A line of the operator's `--map FILE`.
    Map,
    /// The hub cache's folder name (`models--org--name`), written by huggingface_hub.
    HubCacheName,
    /// The download URL in an old transformers-cache sidecar.
    TransformersUrl,
    /// `_name_or_path` in the model's config.json.
    ConfigNameOrPath,
    /// The model card's YAML front matter.
    ReadmeFrontMatter,
    /// An `org--name` folder name (ema's own layout).
    FolderName,
    /// Nothing identifies it: kept as a local-only model under its folder name.
    LocalOnly,
}

impl IdSource {
    pub fn describe(&self) -> &'static str {
        match self {
            IdSource::Map => "--map file",
            IdSource::HubCacheName => "hub cache folder name (huggingface_hub)",
            IdSource::TransformersUrl => {
                "download URL in the transformers cache (huggingface_hub metadata)"
            }
            IdSource::ConfigNameOrPath => "_name_or_path in config.json",
            IdSource::ReadmeFrontMatter => "README front matter",
            IdSource::FolderName => "folder name",
            IdSource::LocalOnly => "nothing identifies it: local-only model",
        }
    }
}

/// Read `--map FILE`: lines `folder repo_id`; blank lines and `#` comments ignored. A malformed line is an error
/// naming the file, the line and the fix; nothing is read from a bad file.
pub fn read_map(path: &Path) -> Result<BTreeMap<String, RepoId>> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| EmaError::io("cannot read the --map file", path, e))?;
    let mut out = BTreeMap::new();
    for (i, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let parts: Vec<&str> = line.split_whitespace().collect();
        let bad = |why: String| {
            EmaError::Config(format!(
                "{}:{}: {why}; each line is `folder repo_id` (e.g. `bert-local google-bert/bert-base-uncased`)",
                path.display(),
                i + 1
            ))
        };
        if parts.len() != 2 {
            return Err(bad(format!("expected 2 fields, found {}", parts.len())));
        }
        let folder = parts[0].trim_end_matches('/').to_string();
        let id = RepoId::parse(parts[1]).map_err(|e| bad(e.to_string()))?;
        if out.insert(folder.clone(), id).is_some() {
            return Err(bad(format!("folder {folder:?} is mapped twice")));
        }
    }
    Ok(out)
}

/// A repo id named by the model folder's own files: `_name_or_path` in config.json, then README front matter.
/// Only ids with an org (`org/name`) count: a bare name or a local path identifies nothing.
pub fn from_model_files(dir: &Path) -> Option<(RepoId, IdSource)> {
    if let Ok(text) = std::fs::read(dir.join("config.json"))
        && let Ok(v) = serde_json::from_slice::<serde_json::Value>(&text)
        && let Some(id) = v
            .get("_name_or_path")
            .and_then(|n| n.as_str())
            .and_then(org_repo_id)
    {
        return Some((id, IdSource::ConfigNameOrPath));
    }
    let readme = std::fs::read_to_string(dir.join("README.md")).ok()?;
    front_matter_repo_id(&readme).map(|id| (id, IdSource::ReadmeFrontMatter))
}

/// `org/name` only.
fn org_repo_id(s: &str) -> Option<RepoId> {
    let s = s.trim().trim_matches('"').trim_matches('\'');
    if s.matches('/').count() != 1 || s.starts_with('/') || s.starts_with('.') {
        return None;
    }
    RepoId::parse(s).ok()
}

/// The repo id a model card's front matter names for the model itself: `repo_id:`, `model_id:`, `model_name:`, or
/// the first `model-index` entry's `- name:`.
fn front_matter_repo_id(readme: &str) -> Option<RepoId> {
    let mut lines = readme.lines();
    if lines.next()?.trim() != "---" {
        return None;
    }
    let mut in_index = false;
    for line in lines {
        if line.trim() == "---" {
            break;
        }
        let t = line.trim();
        if !line.starts_with(' ') && !line.starts_with('-') {
            in_index = t.starts_with("model-index:");
        }
        for key in ["repo_id:", "model_id:", "model_name:"] {
            if let Some(v) = t.strip_prefix(key)
                && !line.starts_with(' ')
                && let Some(id) = org_repo_id(v)
            {
                return Some(id);
            }
        }
        if in_index
            && let Some(v) = t.strip_prefix("- name:")
            && let Some(id) = org_repo_id(v)
        {
            return Some(id);
        }
    }
    None
}

/// The id a folder is kept under when nothing identifies it: its name when that is a valid repo id, else the name
/// with every disallowed character replaced by `-`.
pub fn local_only_id(folder: &str) -> Option<RepoId> {
    if let Ok(id) = RepoId::parse(folder) {
        return Some(id);
    }
    let mut s: String = folder
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '_' {
                c
            } else {
                '-'
            }
        })
        .collect();
    while s.contains("--") {
        s = s.replace("--", "-");
    }
    let s = s.trim_matches(['-', '.']).to_string();
    RepoId::parse(&s).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn map_lines_are_checked_with_their_line_numbers() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("map.txt");
        std::fs::write(
            &p,
            "# comment\n\nbert-local google-bert/bert-base-uncased\nplain/ org/plain\n",
        )
        .unwrap();
        let m = read_map(&p).unwrap();
        assert_eq!(m["bert-local"].as_str(), "google-bert/bert-base-uncased");
        assert_eq!(m["plain"].as_str(), "org/plain");
        std::fs::write(&p, "ok org/ok\nbad org/na me/x\n").unwrap();
        let e = read_map(&p).unwrap_err().to_string();
        assert!(
            e.contains("map.txt:2") && e.contains("expected 2 fields"),
            "{e}"
        );
        std::fs::write(&p, "bad org//x\n").unwrap();
        let e = read_map(&p).unwrap_err();
        assert!(e.to_string().contains("invalid repo id"), "{e}");
        assert_eq!(e.exit_code(), 2);
    }

    #[test]
    fn config_and_front_matter_name_the_repo() {
        let d = tempfile::tempdir().unwrap();
        std::fs::write(
            d.path().join("config.json"),
            br#"{"_name_or_path": "openai-community/gpt2"}"#,
        )
        .unwrap();
        let (id, src) = from_model_files(d.path()).unwrap();
        assert_eq!(
            (id.as_str(), src),
            ("openai-community/gpt2", IdSource::ConfigNameOrPath)
        );
        // A local path or a bare name identifies nothing; the model card may.
        std::fs::write(
            d.path().join("config.json"),
            br#"{"_name_or_path": "/data/models/x"}"#,
        )
        .unwrap();
        assert!(from_model_files(d.path()).is_none());
        std::fs::write(
            d.path().join("README.md"),
            "---\nlicense: mit\nmodel-index:\n- name: acme/tiny-bert\n  results: []\n---\n# x\n",
        )
        .unwrap();
        let (id, src) = from_model_files(d.path()).unwrap();
        assert_eq!(
            (id.as_str(), src),
            ("acme/tiny-bert", IdSource::ReadmeFrontMatter)
        );
    }

    #[test]
    fn local_only_names_are_valid_ids() {
        assert_eq!(local_only_id("my-model").unwrap().as_str(), "my-model");
        assert_eq!(
            local_only_id("My Model (v2)").unwrap().as_str(),
            "My-Model-v2"
        );
    }
}
