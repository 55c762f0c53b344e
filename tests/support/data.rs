//! Test data: deterministic bytes, hashes, a folder's files read back for comparison, JSON looked up.

use std::collections::BTreeMap;
use std::path::Path;

use serde_json::Value;
use sha2::{Digest, Sha256};

/// Deterministic pseudo-random bytes (xorshift; incompressible enough for a download).
pub fn pseudo_random(seed: u64, n: usize) -> Vec<u8> {
    let mut x = seed
        .wrapping_mul(6364136223846793005)
        .wrapping_add(1442695040888963407);
    (0..n)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x >> 24) as u8
        })
        .collect()
}

/// The SHA-256 of `b`, lower-case hex.
pub fn sha256_hex(b: &[u8]) -> String {
    hex::encode(Sha256::digest(b))
}

/// Every regular file under `dir`, relative, with its bytes (a symlink reads as `<symlink>`; no folder, no files).
pub fn tree(dir: &Path) -> BTreeMap<String, Vec<u8>> {
    fn walk(base: &Path, d: &Path, out: &mut BTreeMap<String, Vec<u8>>) {
        for e in std::fs::read_dir(d).unwrap().flatten() {
            let p = e.path();
            let t = e.file_type().unwrap();
            if t.is_dir() {
                walk(base, &p, out);
            } else {
                let rel = p.strip_prefix(base).unwrap().to_string_lossy().into_owned();
                let content = if t.is_symlink() {
                    b"<symlink>".to_vec()
                } else {
                    std::fs::read(&p).unwrap()
                };
                out.insert(rel, content);
            }
        }
    }
    let mut out = BTreeMap::new();
    if dir.exists() {
        walk(dir, dir, &mut out);
    }
    out
}

/// Every entry under `root`, not following links: path → type, mode, size, sha256, link target, file mtime (ns).
pub fn snapshot(root: &Path) -> BTreeMap<String, String> {
    fn walk(dir: &Path, rel: &str, out: &mut BTreeMap<String, String>) {
        use std::os::unix::fs::MetadataExt;
        let mut names: Vec<_> = std::fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        names.sort();
        for n in names {
            let p = dir.join(&n);
            let r = format!("{rel}/{}", n.to_string_lossy());
            let md = std::fs::symlink_metadata(&p).unwrap();
            let v = if md.file_type().is_symlink() {
                format!("link {:?}", std::fs::read_link(&p).unwrap())
            } else if md.is_dir() {
                format!("dir {:o}", md.mode() & 0o7777)
            } else {
                format!(
                    "file {:o} {} {} {}",
                    md.mode() & 0o7777,
                    md.len(),
                    sha256_hex(&std::fs::read(&p).unwrap()),
                    md.mtime() as i128 * 1_000_000_000 + md.mtime_nsec() as i128
                )
            };
            out.insert(r.clone(), v);
            if md.is_dir() && !md.file_type().is_symlink() {
                walk(&p, &r, out);
            }
        }
    }
    let mut out = BTreeMap::new();
    walk(root, "", &mut out);
    out
}

/// Edit by hand the first entry of the backup manifest at `path` that `pick` selects (there must be one), and
/// write the manifest back; returns its text as it was.
pub fn edit_manifest_entry(
    path: &Path,
    pick: impl Fn(&Value) -> bool,
    edit: impl FnOnce(&mut Value),
) -> String {
    let text = std::fs::read_to_string(path).unwrap();
    let mut v: Value = serde_json::from_str(&text).unwrap();
    let e = v["entries"]
        .as_array_mut()
        .unwrap()
        .iter_mut()
        .find(|e| pick(e))
        .unwrap();
    edit(e);
    std::fs::write(path, serde_json::to_vec_pretty(&v).unwrap()).unwrap();
    text
}

/// How many elements of the JSON array `list` have `key` equal to `value`.
pub fn count_in(list: &Value, key: &str, value: &str) -> usize {
    list.as_array()
        .unwrap()
        .iter()
        .filter(|e| e[key] == value)
        .count()
}

/// The string `key` of every element of the JSON array `list` (each must have one), in order.
pub fn strs_in<'a>(list: &'a Value, key: &str) -> Vec<&'a str> {
    list.as_array()
        .unwrap()
        .iter()
        .map(|e| e[key].as_str().unwrap())
        .collect()
}

/// The element of the JSON array `list` whose `key` is `value` (there must be one).
pub fn find_in<'a>(list: &'a Value, key: &str, value: &str) -> &'a Value {
    list.as_array()
        .unwrap()
        .iter()
        .find(|e| e[key] == value)
        .unwrap_or_else(|| panic!("no element with {key} = {value:?} in {list}"))
}
