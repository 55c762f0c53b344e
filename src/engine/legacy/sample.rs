//! A sample legacy install for `ema demo --legacy` and the tests: the guide's legacy `config.json` (plus a key it
//! does not know), `config/`, `logs/usage.log`, `models.db`, and a models directory in every layout real tools
//! leave behind, written byte for byte as they write it (a hub cache with relative symlinks and a blob shared by two
//! snapshots, a `--local-dir` folder with its `.metadata` records, an old transformers cache, a plain folder, one
//! that nothing identifies) — optionally with one flipped byte, as a damaged file to find.

use std::path::Path;

use crate::engine::integrity::hash::{git_blob_sha1, sha256_hex};

pub const COMMIT_MAIN: &str = "1111111111111111111111111111111111111111";
pub const COMMIT_OLD: &str = "0000000000000000000000000000000000000000";
pub const COMMIT_LOCAL: &str = "2222222222222222222222222222222222222222";

pub fn bytes(n: usize, seed: u8) -> Vec<u8> {
    (0..n)
        .map(|i| (i as u32).wrapping_mul(2_654_435_761).to_le_bytes()[3] ^ seed)
        .collect()
}

/// A valid safetensors file: one `U8` tensor `weight` holding `n` bytes of [`bytes`] (its header is small, so byte
/// 777 lies in the tensor data).
pub fn safetensors(n: usize, seed: u8) -> Vec<u8> {
    let header = format!(r#"{{"weight":{{"dtype":"U8","shape":[{n}],"data_offsets":[0,{n}]}}}}"#);
    let mut out = (header.len() as u64).to_le_bytes().to_vec();
    out.extend_from_slice(header.as_bytes());
    out.extend_from_slice(&bytes(n, seed));
    out
}

fn write(p: &Path, b: &[u8]) {
    std::fs::create_dir_all(p.parent().unwrap()).unwrap();
    std::fs::write(p, b).unwrap();
}

/// Write the legacy install at `root`: `models/` as [`legacy_models_dir`] writes it, and around it the files the
/// guide's backup script saves.
pub fn legacy_install(root: &Path, flip_a_byte: bool) {
    legacy_models_dir(&root.join("models"), flip_a_byte);
    write(
        &root.join("config.json"),
        br#"{
  "models_directory": "models",
  "download_retries": 3,
  "max_concurrent_downloads": 2,
  "health_check_enabled": false,
  "fallback_to_mock": true,
  "legacy_ui_theme": "dark"
}
"#,
    );
    write(
        &root.join("config/logging.ini"),
        b"[logging]\nlevel = INFO\n",
    );
    write(
        &root.join("logs/usage.log"),
        concat!(
            "2024-01-01T12:00:00Z INFO model=acme/plain-bert event=request latency_ms=12\n",
            r#"{"timestamp": 1704110400, "model_id": "acme/cached", "event": "request"}"#,
            "\n",
            "2024-01-01T12:00:05Z INFO model=acme/plain-bert event=request latency_ms=9\n",
            "Traceback (most recent call last):\n",
            r#"{"timestamp": "2024-01-01T12:01:00Z", "model_id": "acme/local-gpt", "event": "download", "bytes": 60000, "duration_ms": 30}"#,
            "\n",
            r#"{"model_id": "acme/cached", "event": "request"}"#,
            "\n",
            "2024-01-01T12:00:05Z INFO model=acme/plain-bert event=request latency_ms=9\n",
        )
        .as_bytes(),
    );
    write(
        &root.join("models.db"),
        b"SQLite format 3\0legacy model registry",
    );
}

/// Write the legacy models directory `d`. With `flip_a_byte`, the local-dir folder's weights have one byte flipped
/// after their record was written (the damaged file).
pub fn legacy_models_dir(d: &Path, flip_a_byte: bool) {
    // Plain folder identified by `_name_or_path`.
    write(
        &d.join("plain-bert/config.json"),
        br#"{"_name_or_path": "acme/plain-bert", "model_type": "bert"}"#,
    );
    write(
        &d.join("plain-bert/model.safetensors"),
        &safetensors(40_000, 1),
    );
    write(
        &d.join("plain-bert/tokenizer.json"),
        b"{\"version\": \"1.0\"}",
    );

    // hf download --local-dir: records of commit, etag, timestamp; a partial download; one flipped byte.
    let l = d.join("local-gpt");
    let weights = safetensors(60_000, 2);
    let cfg = br#"{"_name_or_path": "acme/local-gpt", "model_type": "gpt2"}"#.to_vec();
    for (rel, body) in [("model.safetensors", &weights), ("config.json", &cfg)] {
        let etag = if rel.ends_with(".safetensors") {
            sha256_hex(body)
        } else {
            git_blob_sha1(body)
        };
        write(&l.join(rel), body);
        write(
            &l.join(format!(".cache/huggingface/download/{rel}.metadata")),
            format!("{COMMIT_LOCAL}\n{etag}\n1700000000.5\n").as_bytes(),
        );
    }
    write(&l.join(".cache/huggingface/.gitignore"), b"*");
    write(
        &l.join(".cache/huggingface/download/extra.bin.abc.incomplete"),
        b"part",
    );
    if flip_a_byte {
        let mut flipped = weights.clone();
        flipped[777] ^= 0x01;
        write(&l.join("model.safetensors"), &flipped);
    }

    // A hub cache used as the models directory: two snapshots sharing the weights blob.
    let h = d.join("models--acme--cached");
    let w = safetensors(50_000, 3);
    let c_new = b"{\"model_type\": \"llama\", \"v\": 2}".to_vec();
    let c_old = b"{\"model_type\": \"llama\", \"v\": 1}".to_vec();
    let (w_sha, new_sha1, old_sha1) =
        (sha256_hex(&w), git_blob_sha1(&c_new), git_blob_sha1(&c_old));
    write(&h.join(format!("blobs/{w_sha}")), &w);
    write(&h.join(format!("blobs/{new_sha1}")), &c_new);
    write(&h.join(format!("blobs/{old_sha1}")), &c_old);
    write(&h.join("blobs/feedface.incomplete"), b"partial");
    write(&h.join("refs/main"), COMMIT_MAIN.as_bytes());
    for (commit, cfg_blob) in [(COMMIT_MAIN, &new_sha1), (COMMIT_OLD, &old_sha1)] {
        let s = h.join("snapshots").join(commit);
        std::fs::create_dir_all(s.join("sub")).unwrap();
        std::os::unix::fs::symlink(format!("../../blobs/{w_sha}"), s.join("model.safetensors"))
            .unwrap();
        std::os::unix::fs::symlink(
            format!("../../../blobs/{cfg_blob}"),
            s.join("sub/config.json"),
        )
        .unwrap();
    }
    write(
        &h.join(format!(".no_exist/{COMMIT_MAIN}/generation_config.json")),
        b"",
    );

    // The old transformers cache: flat files with {url, etag} sidecars and locks.
    let t = d.join("transformers-cache");
    let tw = bytes(30_000, 4);
    let tc = b"{\"model_type\": \"bert\"}".to_vec();
    for (name, file, body, etag) in [
        ("a1b2c3.d4e5f6", "pytorch_model.bin", &tw, sha256_hex(&tw)),
        ("0f0e0d.0c0b0a", "config.json", &tc, git_blob_sha1(&tc)),
    ] {
        write(&t.join(name), body);
        write(
            &t.join(format!("{name}.json")),
            serde_json::json!({"url": format!("https://huggingface.co/acme/old-bert/resolve/main/{file}"), "etag": format!("\"{etag}\"")})
                .to_string()
                .as_bytes(),
        );
        write(&t.join(format!("{name}.lock")), b"");
    }

    // Nothing identifies this one: kept as a local-only model.
    write(&d.join("mystery/weights.bin"), &bytes(10_000, 5));
}
