//! The Hub-compatible mirror and its fault injection, exercised with a real HTTP client on loopback.

mod support;

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::Stdio;
use std::time::{Duration, Instant};

use ema::engine::demo::{SAMPLE_REPOS, generate_sample_hub};
use ema::engine::integrity::hash::git_blob_sha1;
use ema::engine::store::{RepoId, Store};
use ema::server::faults::{Fault, RetryAfter, VirtualRepo, fingerprint};
use ema::server::options::MirrorOptions;
use reqwest::StatusCode;
use serde_json::Value;
use support::cli::{ema_cmd, first_json_line};
use support::data::{find_in, sha256_hex};
use support::http::{client, get_json, hdr, read_all, send};
use support::hub::Hub;
use support::store::{one_file_metadata, sample_hub};

/// Deterministic bytes for test files.
fn bytes(n: usize, seed: u8) -> Vec<u8> {
    (0..n)
        .map(|i| (i as u32).wrapping_mul(2_654_435_761).to_le_bytes()[3] ^ seed)
        .collect()
}

const BIG: usize = 300_000;

/// A small hand-made store: `org/model` (no metadata: hashes computed at start-up), `single` (repo id without
/// an org), and `gated/model`.
fn small_store() -> tempfile::TempDir {
    let d = tempfile::tempdir().unwrap();
    let m = d.path().join("org--model");
    std::fs::create_dir_all(m.join("sub/deep")).unwrap();
    std::fs::write(m.join("config.json"), b"{\"model_type\": \"test\"}\n").unwrap();
    std::fs::write(
        m.join("README.md"),
        b"---\nlicense: mit\ntags:\n- x\n---\n# m\n",
    )
    .unwrap();
    std::fs::write(m.join("sub/a.txt"), b"hello\n").unwrap();
    std::fs::write(m.join("sub/deep/b.txt"), b"world\n").unwrap();
    std::fs::write(m.join("model.safetensors"), bytes(BIG, 1)).unwrap();
    std::fs::write(m.join("empty.txt"), b"").unwrap();
    let s = d.path().join("single");
    std::fs::create_dir_all(&s).unwrap();
    std::fs::write(s.join("config.json"), b"{}\n").unwrap();
    let g = d.path().join("gated--model");
    std::fs::create_dir_all(&g).unwrap();
    std::fs::write(g.join("weights.bin"), bytes(5000, 2)).unwrap();
    d
}

/// The small store served (with its CDN host when `with_cdn`), and a client: the set-up of most tests here.
async fn small_hub(with_cdn: bool) -> (tempfile::TempDir, Hub, reqwest::Client) {
    let small = small_store();
    let hub = start(small.path(), with_cdn, |_| {}).await;
    (small, hub, client())
}

/// The small hub with `fault` planned for the first `times` requests of `org/model`'s `file`, a client, and the
/// file's URL: the set-up of the fault tests.
async fn with_fault(
    file: &str,
    times: Option<u32>,
    fault: Fault,
) -> (tempfile::TempDir, Hub, reqwest::Client, String) {
    let (small, hub, c) = small_hub(false).await;
    let url = hub.url(&format!("/org/model/resolve/main/{file}"));
    hub.plan.add(file, times, fault);
    (small, hub, c, url)
}

/// The mirror of `root` with this file's fixtures: `gated/model` gated, `hf_good_token` accepted, and
/// `old-org/old-name` renamed to `org/model`.
async fn start(root: &Path, with_cdn: bool, tweak: impl FnOnce(&mut MirrorOptions)) -> Hub {
    Hub::start(root, with_cdn, |opts| {
        opts.gated_repos.insert("gated/model".to_string());
        opts.accepted_tokens.push("hf_good_token".to_string());
        opts.aliases
            .insert("old-org/old-name".to_string(), "org/model".to_string());
        tweak(opts);
    })
    .await
}

#[tokio::test]
async fn info_without_and_with_blobs() {
    let root = sample_hub();
    let hub = start(root, false, |_| {}).await;
    let c = client();
    let store = Store::new(root);
    let id = RepoId::parse("ema-demo/tiny-gpt").unwrap();
    let meta = store.read_metadata(&id).unwrap().unwrap();

    let r = send(c.get(hub.url("/api/models/ema-demo/tiny-gpt"))).await;
    assert_eq!(r.status(), 200);
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["id"], "ema-demo/tiny-gpt");
    assert_eq!(v["sha"], meta.commit.clone().unwrap());
    assert_eq!(v["pipeline_tag"], "text-generation");
    assert_eq!(v["library_name"], "transformers");
    assert_eq!(v["gated"], false);
    assert_eq!(v["cardData"]["license"], "mit");
    assert_eq!(v["safetensors"]["total"], meta.parameters.unwrap());
    assert_eq!(
        v["safetensors"]["parameters"]["F32"],
        meta.parameters.unwrap()
    );
    let sibs = v["siblings"].as_array().unwrap();
    assert_eq!(sibs.len(), meta.files.len());
    assert!(sibs[0].get("size").is_none(), "no sizes without blobs=true");

    for url in [
        "/api/models/ema-demo/tiny-gpt?blobs=true".to_string(),
        "/api/models/ema-demo/tiny-gpt/revision/main?blobs=true".to_string(),
        format!(
            "/api/models/ema-demo/tiny-gpt/revision/{}?blobs=true",
            meta.commit.clone().unwrap()
        ),
    ] {
        let v: Value = get_json(&c, hub.url(&url)).await;
        let sibs: BTreeMap<String, Value> = v["siblings"]
            .as_array()
            .unwrap()
            .iter()
            .map(|s| (s["rfilename"].as_str().unwrap().to_string(), s.clone()))
            .collect();
        for f in &meta.files {
            let s = &sibs[&f.path];
            assert_eq!(s["size"], f.size, "{}", f.path);
            if f.lfs {
                assert_eq!(s["lfs"]["sha256"], f.sha256.clone().unwrap());
                assert_eq!(s["lfs"]["size"], f.size);
                let pointer = format!(
                    "version https://git-lfs.github.com/spec/v1\noid sha256:{}\nsize {}\n",
                    f.sha256.clone().unwrap(),
                    f.size
                );
                assert_eq!(s["lfs"]["pointerSize"], pointer.len());
                assert_eq!(s["blobId"], git_blob_sha1(pointer.as_bytes()));
            } else {
                assert_eq!(s["blobId"], f.git_sha1.clone().unwrap());
                assert!(s.get("lfs").is_none());
            }
        }
    }

    // The listing, with the Hub's filters.
    let ids = |v: Value| -> Vec<String> {
        v.as_array()
            .unwrap()
            .iter()
            .map(|m| m["id"].as_str().unwrap().to_string())
            .collect()
    };
    let all: Value = get_json(&c, hub.url("/api/models")).await;
    assert_eq!(
        ids(all),
        SAMPLE_REPOS
            .iter()
            .copied()
            .collect::<std::collections::BTreeSet<_>>()
            .into_iter()
            .collect::<Vec<_>>()
    );
    let v: Value = get_json(&c, hub.url("/api/models?search=TINY&limit=1")).await;
    assert_eq!(ids(v), vec!["ema-demo/tiny-gpt"]);
    let v: Value = get_json(
        &c,
        hub.url("/api/models?pipeline_tag=feature-extraction&author=ema-demo"),
    )
    .await;
    assert_eq!(ids(v), vec!["ema-demo/mini-embed"]);

    // A repo id without an org, from a store without metadata: a derived, stable 40-hex commit.
    let small = small_store();
    let hub2 = start(small.path(), false, |_| {}).await;
    let v: Value = get_json(&c, hub2.url("/api/models/single")).await;
    assert_eq!(v["id"], "single");
    let sha = v["sha"].as_str().unwrap().to_string();
    assert!(sha.len() == 40 && sha.bytes().all(|b| b.is_ascii_hexdigit()));
    let hub3 = start(small.path(), false, |_| {}).await;
    let v3: Value = get_json(&c, hub3.url("/api/models/single/revision/main")).await;
    assert_eq!(v3["sha"], sha.as_str(), "derived commit is deterministic");
    let v: Value = get_json(&c, hub2.url("/api/models/gated/model")).await;
    assert_eq!(v["gated"], "manual");
}

#[tokio::test]
async fn tree_is_paginated_with_link_header() {
    let small = small_store();
    let hub = start(small.path(), false, |o| o.tree_page_size = 2).await;
    let c = client();
    let mut url = hub.url("/api/models/org/model/tree/main?recursive=true");
    let mut entries = Vec::new();
    let mut pages = 0;
    loop {
        pages += 1;
        assert!(pages < 20, "pagination does not end");
        let r = send(c.get(&url)).await;
        assert_eq!(r.status(), 200);
        let link = hdr(&r, "link");
        let page: Vec<Value> = r.json().await.unwrap();
        assert!(page.len() <= 2);
        entries.extend(page);
        match link {
            Some(l) => {
                assert!(l.ends_with("; rel=\"next\""), "{l}");
                url = l[l.find('<').unwrap() + 1..l.find('>').unwrap()].to_string();
                assert!(url.starts_with(&hub.main.url()), "{url}");
            }
            None => break,
        }
    }
    let paths: Vec<(&str, &str)> = entries
        .iter()
        .map(|e| (e["type"].as_str().unwrap(), e["path"].as_str().unwrap()))
        .collect();
    assert_eq!(
        paths,
        vec![
            ("file", "README.md"),
            ("file", "config.json"),
            ("file", "empty.txt"),
            ("file", "model.safetensors"),
            ("directory", "sub"),
            ("file", "sub/a.txt"),
            ("directory", "sub/deep"),
            ("file", "sub/deep/b.txt"),
        ]
    );
    assert_eq!(pages, 4);
    let st = entries
        .iter()
        .find(|e| e["path"] == "model.safetensors")
        .unwrap();
    let content = bytes(BIG, 1);
    assert_eq!(st["size"], BIG);
    assert_eq!(st["lfs"]["oid"], sha256_hex(&content));
    assert_eq!(st["lfs"]["size"], BIG);
    let a = entries.iter().find(|e| e["path"] == "sub/a.txt").unwrap();
    assert_eq!(a["oid"], git_blob_sha1(b"hello\n"));
    assert!(a.get("lfs").is_none());

    // Not recursive: direct children only; a sub-path; a missing path.
    let hub = start(small.path(), false, |_| {}).await;
    let v: Vec<Value> = get_json(&c, hub.url("/api/models/org/model/tree/main/sub")).await;
    let names: Vec<&str> = v.iter().map(|e| e["path"].as_str().unwrap()).collect();
    assert_eq!(names, vec!["sub/a.txt", "sub/deep"]);
    let r = send(c.get(hub.url("/api/models/org/model/tree/main/nope"))).await;
    assert_eq!(r.status(), 404);
    assert_eq!(hdr(&r, "x-error-code").as_deref(), Some("EntryNotFound"));

    // paths-info (the one POST): existing files and directories, missing ones left out.
    let v: Vec<Value> = send(
        c.post(hub.url("/api/models/org/model/paths-info/main"))
            .header("content-type", "application/x-www-form-urlencoded")
            .body("paths=sub%2Fa.txt&paths=sub&paths=nope&expand=false"),
    )
    .await
    .json()
    .await
    .unwrap();
    let got: Vec<(&str, &str)> = v
        .iter()
        .map(|e| (e["type"].as_str().unwrap(), e["path"].as_str().unwrap()))
        .collect();
    assert_eq!(got, vec![("file", "sub/a.txt"), ("directory", "sub")]);
    assert_eq!(v[0]["oid"], git_blob_sha1(b"hello\n"));
    // Any other write is refused.
    let r = send(c.post(hub.url("/api/models/org/model"))).await;
    assert_eq!(r.status(), 405);
    let r = send(c.put(hub.url("/org/model/resolve/main/config.json"))).await;
    assert_eq!(r.status(), 405);
}

#[tokio::test]
async fn resolve_headers_for_head_and_get() {
    let (_small, hub, c) = small_hub(false).await;
    let info: Value = get_json(&c, hub.url("/api/models/org/model")).await;
    let commit = info["sha"].as_str().unwrap().to_string();

    let r = send(c.head(hub.url("/org/model/resolve/main/sub/a.txt"))).await;
    assert_eq!(r.status(), 200);
    assert_eq!(hdr(&r, "x-repo-commit"), Some(commit.clone()));
    assert_eq!(
        hdr(&r, "etag"),
        Some(format!("\"{}\"", git_blob_sha1(b"hello\n")))
    );
    assert_eq!(hdr(&r, "content-length").as_deref(), Some("6"));
    assert_eq!(hdr(&r, "accept-ranges").as_deref(), Some("bytes"));
    assert!(hdr(&r, "x-linked-etag").is_none());
    assert_eq!(r.bytes().await.unwrap().len(), 0, "HEAD has no body");

    let r = send(c.get(hub.url(&format!("/org/model/resolve/{commit}/sub/deep/b.txt")))).await;
    assert_eq!(r.status(), 200);
    assert_eq!(&r.bytes().await.unwrap()[..], b"world\n");

    // LFS without a CDN: served directly, with the linked headers.
    let content = bytes(BIG, 1);
    let r = send(c.head(hub.url("/org/model/resolve/main/model.safetensors"))).await;
    assert_eq!(r.status(), 200);
    assert_eq!(hdr(&r, "x-linked-etag"), Some(sha256_hex(&content)));
    assert_eq!(hdr(&r, "x-linked-size"), Some(BIG.to_string()));
    assert_eq!(hdr(&r, "content-length"), Some(BIG.to_string()));
    let r = send(c.get(hub.url("/org/model/resolve/main/model.safetensors"))).await;
    assert_eq!(&r.bytes().await.unwrap()[..], &content[..]);

    // Percent-encoded path segments; an empty file; a repo without an org.
    let r = send(c.get(hub.url("/org/model/resolve/main/sub%2Fa.txt"))).await;
    assert_eq!(&r.bytes().await.unwrap()[..], b"hello\n");
    let r = send(c.get(hub.url("/org/model/resolve/main/empty.txt"))).await;
    assert_eq!(r.status(), 200);
    assert_eq!(hdr(&r, "etag"), Some(format!("\"{}\"", git_blob_sha1(b""))));
    assert_eq!(r.bytes().await.unwrap().len(), 0);
    let r = send(c.get(hub.url("/single/resolve/main/config.json"))).await;
    assert_eq!(r.status(), 200);
    assert_eq!(&r.bytes().await.unwrap()[..], b"{}\n");
}

#[tokio::test]
async fn ranges_give_206_and_416() {
    let (_small, hub, c) = small_hub(false).await;
    let content = bytes(BIG, 1);
    let url = hub.url("/org/model/resolve/main/model.safetensors");
    let r = send(c.get(&url).header("Range", "bytes=1000-")).await;
    assert_eq!(r.status(), 206);
    assert_eq!(
        hdr(&r, "content-range"),
        Some(format!("bytes 1000-{}/{BIG}", BIG - 1))
    );
    assert_eq!(hdr(&r, "content-length"), Some((BIG - 1000).to_string()));
    assert_eq!(&r.bytes().await.unwrap()[..], &content[1000..]);
    let r = send(c.get(&url).header("Range", "bytes=10-19")).await;
    assert_eq!(r.status(), 206);
    assert_eq!(hdr(&r, "content-range"), Some(format!("bytes 10-19/{BIG}")));
    assert_eq!(&r.bytes().await.unwrap()[..], &content[10..20]);
    let r = send(c.get(&url).header("Range", "bytes=-5")).await;
    assert_eq!(&r.bytes().await.unwrap()[..], &content[BIG - 5..]);
    // If-Range: the range holds only for the same entity; a stale ETag gets the whole file.
    let etag = format!("\"{}\"", sha256_hex(&content));
    let r = send(
        c.get(&url)
            .header("Range", "bytes=7-")
            .header("If-Range", &etag),
    )
    .await;
    assert_eq!(r.status(), 206);
    let r = send(
        c.get(&url)
            .header("Range", "bytes=7-")
            .header("If-Range", "\"stale\""),
    )
    .await;
    assert_eq!(r.status(), 200);
    assert_eq!(r.bytes().await.unwrap().len(), BIG);
    for bad in [format!("bytes={BIG}-"), format!("bytes={}-", BIG + 10)] {
        let r = send(c.get(&url).header("Range", bad)).await;
        assert_eq!(r.status(), 416);
        assert_eq!(hdr(&r, "content-range"), Some(format!("bytes */{BIG}")));
    }
    let r = send(
        c.get(hub.url("/org/model/resolve/main/empty.txt"))
            .header("Range", "bytes=0-"),
    )
    .await;
    assert_eq!(r.status(), 416);
}

#[tokio::test]
async fn missing_things_have_error_codes() {
    let (_small, hub, c) = small_hub(false).await;
    for (path, code) in [
        ("/api/models/org/nope", "RepoNotFound"),
        ("/api/models/nope", "RepoNotFound"),
        ("/api/models/org/model/revision/v1.0", "RevisionNotFound"),
        ("/api/models/org/model/tree/dev", "RevisionNotFound"),
        ("/org/nope/resolve/main/config.json", "RepoNotFound"),
        ("/org/model/resolve/v1.0/config.json", "RevisionNotFound"),
        (
            "/org/model/resolve/refs%2Fpr%2F1/config.json",
            "RevisionNotFound",
        ),
        (
            "/org/model/resolve/0000000000000000000000000000000000000000/config.json",
            "RevisionNotFound",
        ),
        ("/org/model/resolve/main/nope.json", "EntryNotFound"),
    ] {
        for head in [false, true] {
            let req = if head {
                c.head(hub.url(path))
            } else {
                c.get(hub.url(path))
            };
            let r = req.send().await.unwrap();
            assert_eq!(r.status(), 404, "{path}");
            assert_eq!(hdr(&r, "x-error-code").as_deref(), Some(code), "{path}");
            assert!(!hdr(&r, "x-error-message").unwrap().is_empty());
        }
    }
}

#[tokio::test]
async fn lfs_redirects_to_the_cdn_host_and_renamed_repos_redirect_relatively() {
    let (_small, hub, c) = small_hub(true).await;
    let content = bytes(BIG, 1);
    let sha = sha256_hex(&content);
    let r = send(
        c.get(hub.url("/org/model/resolve/main/model.safetensors"))
            .bearer_auth("hf_secret_token"),
    )
    .await;
    assert_eq!(r.status(), 302);
    assert_eq!(hdr(&r, "x-linked-etag"), Some(sha.clone()));
    assert_eq!(hdr(&r, "x-linked-size"), Some(BIG.to_string()));
    assert!(hdr(&r, "x-repo-commit").is_some());
    let loc = hdr(&r, "location").unwrap();
    assert!(
        loc.starts_with(&format!("{}/cdn/{sha}?", hub.cdn().url())),
        "{loc}"
    );
    assert!(loc.contains("X-Amz-Signature="));
    assert!(hub.cdn().addr.ip().to_string() == "127.0.0.2");

    // The CDN serves it (ranges too); without the signature it refuses.
    let r = send(c.get(&loc)).await;
    assert_eq!(r.status(), 200);
    assert_eq!(hdr(&r, "etag"), Some(format!("\"{sha}\"")));
    assert_eq!(&r.bytes().await.unwrap()[..], &content[..]);
    let r = send(c.get(&loc).header("Range", "bytes=5-")).await;
    assert_eq!(r.status(), 206);
    assert_eq!(&r.bytes().await.unwrap()[..], &content[5..]);
    let bare = format!("{}/cdn/{sha}", hub.cdn().url());
    assert_eq!(send(c.get(&bare)).await.status(), 403);
    // HEAD answers the redirect too, so a client gets the hashes without following it.
    let r = send(c.head(hub.url("/org/model/resolve/main/model.safetensors"))).await;
    assert_eq!(r.status(), 302);

    // Non-LFS files are served directly even with a CDN.
    let r = send(c.get(hub.url("/org/model/resolve/main/config.json"))).await;
    assert_eq!(r.status(), 200);

    // A renamed repo: relative redirects for files and API.
    let r = send(c.get(hub.url("/old-org/old-name/resolve/main/sub/a.txt"))).await;
    assert_eq!(r.status(), 307);
    assert_eq!(
        hdr(&r, "location").as_deref(),
        Some("/org/model/resolve/main/sub/a.txt")
    );
    let r = send(c.get(hub.url("/api/models/old-org/old-name/revision/main?blobs=true"))).await;
    assert_eq!(r.status(), 307);
    assert_eq!(
        hdr(&r, "location").as_deref(),
        Some("/api/models/org/model/revision/main?blobs=true")
    );

    // The log shows who got a token: the main host did (as a fingerprint only), the CDN host did not.
    let log = hub.plan.requests();
    let main_host = hub.main.addr.to_string();
    let first = log
        .iter()
        .find(|r| r.path.ends_with("model.safetensors") && r.host.as_deref() == Some(&main_host))
        .unwrap();
    assert!(first.authorization);
    assert_eq!(
        first.authorization_fingerprint.as_deref(),
        Some(fingerprint("Bearer hf_secret_token").as_str())
    );
    assert!(!format!("{log:?}").contains("hf_secret_token"));
    let cdn_host = hub.cdn().addr.to_string();
    assert!(log.iter().any(|r| r.host.as_deref() == Some(&cdn_host)));
    assert!(
        log.iter()
            .filter(|r| r.host.as_deref() == Some(&cdn_host))
            .all(|r| !r.authorization)
    );
}

#[tokio::test]
async fn gated_repo_needs_an_accepted_token() {
    let (_small, hub, c) = small_hub(false).await;
    let url = hub.url("/gated/model/resolve/main/weights.bin");
    let r = send(c.get(&url)).await;
    assert_eq!(r.status(), 401);
    assert_eq!(hdr(&r, "x-error-code").as_deref(), Some("GatedRepo"));
    let r = send(c.head(&url).bearer_auth("hf_wrong")).await;
    assert_eq!(r.status(), 403);
    assert_eq!(hdr(&r, "x-error-code").as_deref(), Some("GatedRepo"));
    let r = send(c.get(&url).bearer_auth("hf_good_token")).await;
    assert_eq!(r.status(), 200);
    assert_eq!(&r.bytes().await.unwrap()[..], &bytes(5000, 2)[..]);
}

#[tokio::test]
async fn fault_drop_after_n_bytes_then_recovers() {
    let (_small, hub, c, url) =
        with_fault("model.safetensors", Some(2), Fault::DropAfter(70_000)).await;
    for _ in 0..2 {
        let r = send(c.get(&url)).await;
        assert_eq!(hdr(&r, "content-length"), Some(BIG.to_string()));
        let (got, failed) = read_all(r).await;
        assert!(failed, "the body must end in an error");
        assert_eq!(got.len(), 70_000);
        assert_eq!(&got[..], &bytes(BIG, 1)[..70_000]);
    }
    let (got, failed) = read_all(send(c.get(&url)).await).await;
    assert!(!failed);
    assert_eq!(
        got.len(),
        BIG,
        "the fault applies to the first K requests only"
    );
    // Resume with a range: the log says exactly how many bytes went out per request.
    let r = send(c.get(&url).header("Range", "bytes=70000-")).await;
    let (got, _) = read_all(r).await;
    assert_eq!(got.len(), BIG - 70_000);
    let log: Vec<_> = hub
        .plan
        .requests()
        .into_iter()
        .filter(|r| r.path.ends_with("model.safetensors"))
        .collect();
    let sent: Vec<u64> = log.iter().map(|r| r.body_bytes).collect();
    assert_eq!(
        sent,
        vec![70_000, 70_000, BIG as u64, (BIG - 70_000) as u64]
    );
    assert_eq!(log[3].range.as_deref(), Some("bytes=70000-"));
    assert_eq!(log[3].status, 206);
    assert_eq!(
        hub.plan.body_bytes_sent("model.safetensors"),
        140_000 + 2 * BIG as u64 - 70_000
    );
}

#[tokio::test]
async fn fault_status_codes_with_retry_after() {
    let (_small, hub, c, url) = with_fault(
        "config.json",
        Some(2),
        Fault::Status {
            status: 503,
            retry_after: Some(RetryAfter::Seconds(7)),
        },
    )
    .await;
    for _ in 0..2 {
        let r = send(c.head(&url)).await;
        assert_eq!(r.status(), 503);
        assert_eq!(hdr(&r, "retry-after").as_deref(), Some("7"));
    }
    assert_eq!(send(c.get(&url)).await.status(), 200);

    hub.plan.add(
        "/api/",
        Some(1),
        Fault::Status {
            status: 429,
            retry_after: Some(RetryAfter::HttpDateIn(30)),
        },
    );
    let r = send(c.get(hub.url("/api/models/org/model"))).await;
    assert_eq!(r.status(), StatusCode::TOO_MANY_REQUESTS);
    let when = httpdate::parse_http_date(&hdr(&r, "retry-after").unwrap()).unwrap();
    let ahead = when.duration_since(std::time::SystemTime::now()).unwrap();
    assert!(ahead > Duration::from_secs(20) && ahead <= Duration::from_secs(31));
    assert_eq!(
        send(c.get(hub.url("/api/models/org/model"))).await.status(),
        200
    );

    hub.plan.add(
        "",
        Some(1),
        Fault::Status {
            status: 500,
            retry_after: None,
        },
    );
    let r = send(c.get(hub.url("/api/models/single"))).await;
    assert_eq!(r.status(), 500);
    assert!(hdr(&r, "retry-after").is_none());
}

#[tokio::test]
async fn fault_flip_byte_changes_exactly_one_byte() {
    let (_small, _hub, c, url) =
        with_fault("model.safetensors", Some(2), Fault::FlipByte(123_456)).await;
    let content = bytes(BIG, 1);
    let (got, failed) = read_all(send(c.get(&url)).await).await;
    assert!(!failed);
    assert_eq!(got.len(), BIG);
    let diff: Vec<usize> = (0..BIG).filter(|&i| got[i] != content[i]).collect();
    assert_eq!(diff, vec![123_456]);
    assert_eq!(got[123_456], content[123_456] ^ 0xff);
    // The offset is a file offset: a range starting after it passes untouched, one covering it is flipped.
    let r = send(c.get(&url).header("Range", "bytes=123000-")).await;
    let (got, _) = read_all(r).await;
    assert_eq!(got[456], content[123_456] ^ 0xff);
    assert_eq!(&got[..456], &content[123_000..123_456]);
    let (got, _) = read_all(send(c.get(&url)).await).await;
    assert_eq!(got, content, "only the first K responses are damaged");
}

#[tokio::test]
async fn fault_trickle_and_connection_cap_limit_the_rate() {
    let (_small, hub, c, url) =
        with_fault("model.safetensors", Some(1), Fault::Trickle(100_000)).await;
    let t = Instant::now();
    let r = send(c.get(&url).header("Range", "bytes=0-49999")).await;
    let (got, failed) = read_all(r).await;
    assert!(!failed);
    assert_eq!(got, bytes(BIG, 1)[..50_000].to_vec());
    // 50 kB at 100 kB/s in 5 kB slices: the last one is due at 0.45 s (a lower bound only: slow machines are fine).
    assert!(
        t.elapsed() >= Duration::from_millis(400),
        "{:?}",
        t.elapsed()
    );

    hub.plan.set_connection_cap(Some(200_000));
    let t = Instant::now();
    let r = send(c.get(&url).header("Range", "bytes=0-99999")).await;
    let (got, _) = read_all(r).await;
    assert_eq!(got.len(), 100_000);
    assert!(
        t.elapsed() >= Duration::from_millis(400),
        "{:?}",
        t.elapsed()
    );
    hub.plan.set_connection_cap(None);
    let (got, _) = read_all(send(c.get(&url)).await).await;
    assert_eq!(got.len(), BIG);
}

#[tokio::test]
async fn fault_ignore_range_answers_the_whole_file() {
    let (_small, hub, c, url) = with_fault("model.safetensors", None, Fault::IgnoreRange).await;
    let r = send(c.get(&url).header("Range", "bytes=1000-")).await;
    assert_eq!(r.status(), 200);
    assert!(hdr(&r, "content-range").is_none());
    let (got, _) = read_all(r).await;
    assert_eq!(got, bytes(BIG, 1));
    let log = hub.plan.requests();
    assert_eq!(
        log[0].range.as_deref(),
        Some("bytes=1000-"),
        "the log shows what the client asked"
    );
    hub.plan.clear();
    let r = send(c.get(&url).header("Range", "bytes=1000-")).await;
    assert_eq!(r.status(), 206);
}

#[tokio::test]
async fn fault_stall_sends_headers_then_nothing() {
    let (_small, _hub, c, url) = with_fault(
        "model.safetensors",
        Some(1),
        Fault::Stall { after_bytes: 1000 },
    )
    .await;
    let mut r = send(c.get(&url)).await;
    assert_eq!(r.status(), 200);
    // The first 1000 bytes come (however slowly the machine is), then nothing.
    let mut got = 0;
    while got < 1000 {
        let ch = tokio::time::timeout(Duration::from_secs(20), r.chunk())
            .await
            .expect("the first bytes arrive")
            .unwrap()
            .expect("the body does not end");
        got += ch.len();
    }
    assert_eq!(got, 1000);
    let next = tokio::time::timeout(Duration::from_millis(700), r.chunk()).await;
    assert!(next.is_err(), "the body must stall, got {next:?}");
    drop(r);
    let (got, failed) = read_all(send(c.get(&url)).await).await;
    assert!(!failed);
    assert_eq!(got.len(), BIG);
}

#[tokio::test]
async fn fault_upstream_change_gives_new_etag_everywhere() {
    let (_small, hub, c) = small_hub(true).await;
    let before = send(c.head(hub.url("/org/model/resolve/main/model.safetensors"))).await;
    let old = hdr(&before, "x-linked-etag").unwrap();
    let new_content = bytes(BIG + 10, 9);
    hub.plan
        .change_upstream("org/model", "model.safetensors", new_content.clone());
    let r = send(c.head(hub.url("/org/model/resolve/main/model.safetensors"))).await;
    let new = hdr(&r, "x-linked-etag").unwrap();
    assert_ne!(new, old);
    assert_eq!(new, sha256_hex(&new_content));
    assert_eq!(hdr(&r, "x-linked-size"), Some((BIG + 10).to_string()));
    let (got, _) = read_all(send(c.get(hdr(&r, "location").unwrap())).await).await;
    assert_eq!(got, new_content);
    let v: Value = get_json(&c, hub.url("/api/models/org/model?blobs=true")).await;
    let s = find_in(&v["siblings"], "rfilename", "model.safetensors");
    assert_eq!(s["lfs"]["sha256"], new.as_str());

    // A non-LFS file: a new git sha1 ETag.
    hub.plan
        .change_upstream("org/model", "sub/a.txt", b"changed\n".to_vec());
    let r = send(c.get(hub.url("/org/model/resolve/main/sub/a.txt"))).await;
    assert_eq!(
        hdr(&r, "etag"),
        Some(format!("\"{}\"", git_blob_sha1(b"changed\n")))
    );
    assert_eq!(&r.bytes().await.unwrap()[..], b"changed\n");
}

#[tokio::test]
async fn hostile_names_and_lying_metadata_fixtures() {
    let (_small, hub, c) = small_hub(false).await;
    hub.plan
        .add_virtual_repo(VirtualRepo::hostile_names("evil/names"));
    hub.plan
        .add_virtual_repo(VirtualRepo::non_hex_commit("lying/commit"));
    hub.plan
        .add_virtual_repo(VirtualRepo::bad_sha256("lying/sha256"));
    hub.plan
        .add_virtual_repo(VirtualRepo::size_mismatch("lying/size"));

    let v: Vec<Value> = get_json(
        &c,
        hub.url("/api/models/evil/names/tree/main?recursive=true"),
    )
    .await;
    let files: Vec<&str> = v
        .iter()
        .filter(|e| e["type"] == "file")
        .map(|e| e["path"].as_str().unwrap())
        .collect();
    for name in ["../evil", "/etc/x", "a\\b", "sub/../../x", "ok.txt"] {
        assert!(files.contains(&name), "{name} in {files:?}");
    }
    let info: Value = get_json(&c, hub.url("/api/models/evil/names")).await;
    assert_eq!(info["siblings"].as_array().unwrap().len(), 5);
    // The hostile names are served too (raw, percent-encoded), so a client that asks would get bytes.
    let r = send(c.get(hub.url("/evil/names/resolve/main/a%5Cb"))).await;
    assert_eq!(r.status(), 200);

    let info: Value = get_json(&c, hub.url("/api/models/lying/commit")).await;
    assert_eq!(info["sha"], "../../not-a-commit");
    let r = send(c.head(hub.url("/lying/commit/resolve/main/config.json"))).await;
    assert_eq!(
        hdr(&r, "x-repo-commit").as_deref(),
        Some("../../not-a-commit")
    );

    let info: Value = get_json(&c, hub.url("/api/models/lying/sha256?blobs=true")).await;
    assert_eq!(info["siblings"][0]["lfs"]["sha256"], "abc123");
    let r = send(c.head(hub.url("/lying/sha256/resolve/main/model.safetensors"))).await;
    assert_eq!(hdr(&r, "x-linked-etag").as_deref(), Some("abc123"));

    let tree: Vec<Value> = get_json(&c, hub.url("/api/models/lying/size/tree/main")).await;
    assert_eq!(tree[0]["size"], 4000);
    let r = send(c.head(hub.url("/lying/size/resolve/main/model.safetensors"))).await;
    assert_eq!(hdr(&r, "x-linked-size").as_deref(), Some("4096"));
    assert_eq!(hdr(&r, "content-length").as_deref(), Some("4096"));
}

/// Parse a safetensors file and check its structure; returns the tensor names.
fn check_safetensors(path: &Path) -> Vec<String> {
    let data = std::fs::read(path).unwrap();
    let n = u64::from_le_bytes(data[..8].try_into().unwrap()) as usize;
    assert_eq!((8 + n) % 8, 0, "data is 8-byte aligned");
    let header: serde_json::Map<String, Value> = serde_json::from_slice(&data[8..8 + n]).unwrap();
    let body = data.len() - 8 - n;
    let mut spans = Vec::new();
    let mut names = Vec::new();
    for (name, t) in &header {
        if name == "__metadata__" {
            continue;
        }
        let width = match t["dtype"].as_str().unwrap() {
            "F32" => 4,
            "BF16" | "F16" => 2,
            other => panic!("unexpected dtype {other}"),
        };
        let numel: u64 = t["shape"]
            .as_array()
            .unwrap()
            .iter()
            .map(|d| d.as_u64().unwrap())
            .product();
        let off = t["data_offsets"].as_array().unwrap();
        let (a, b) = (off[0].as_u64().unwrap(), off[1].as_u64().unwrap());
        assert_eq!(b - a, numel * width, "{name}");
        spans.push((a, b));
        names.push(name.clone());
    }
    spans.sort();
    let mut at = 0;
    for (a, b) in spans {
        assert_eq!(a, at, "tensors are contiguous");
        at = b;
    }
    assert_eq!(at as usize, body, "tensors fill the data section");
    names
}

fn file_hashes(root: &Path) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    for id in SAMPLE_REPOS {
        let dir = root.join(id.replace('/', "--"));
        for e in std::fs::read_dir(&dir).unwrap() {
            let p = e.unwrap().path();
            let rel = format!("{id}/{}", p.file_name().unwrap().to_string_lossy());
            out.insert(rel, sha256_hex(&std::fs::read(&p).unwrap()));
        }
    }
    out
}

#[test]
fn demo_models_are_real_deterministic_and_idempotent() {
    let shared = sample_hub();
    let fresh = tempfile::tempdir().unwrap();
    let ids = generate_sample_hub(fresh.path()).unwrap();
    let names: Vec<String> = ids.iter().map(|i| i.to_string()).collect();
    assert_eq!(names, SAMPLE_REPOS);
    assert_eq!(
        file_hashes(fresh.path()),
        file_hashes(shared),
        "same bytes on every run"
    );

    let store = Store::new(fresh.path());
    let mut tasks = Vec::new();
    for id in &ids {
        let meta = store.read_metadata(id).unwrap().unwrap();
        let dir = store.model_dir(id);
        assert!(meta.commit.as_ref().unwrap().len() == 40);
        tasks.push(meta.pipeline_tag.clone().unwrap());
        assert!(meta.library_name.is_some() && !meta.tags.is_empty());
        let mut params = 0u64;
        for f in &meta.files {
            let b = std::fs::read(dir.join(&f.path)).unwrap();
            assert_eq!(b.len() as u64, f.size);
            assert_eq!(f.sha256.as_deref(), Some(sha256_hex(&b).as_str()));
            if f.lfs {
                assert!(f.path.ends_with(".safetensors"));
            } else {
                assert_eq!(f.git_sha1.as_deref(), Some(git_blob_sha1(&b).as_str()));
            }
            if f.path.ends_with(".json") {
                serde_json::from_slice::<Value>(&b).unwrap();
            }
            if f.path.ends_with(".safetensors") {
                check_safetensors(&dir.join(&f.path));
                let n = u64::from_le_bytes(b[..8].try_into().unwrap()) as usize;
                let h: serde_json::Map<String, Value> =
                    serde_json::from_slice(&b[8..8 + n]).unwrap();
                params += h
                    .iter()
                    .filter(|(k, _)| *k != "__metadata__")
                    .map(|(_, t)| {
                        t["shape"]
                            .as_array()
                            .unwrap()
                            .iter()
                            .map(|d| d.as_u64().unwrap())
                            .product::<u64>()
                    })
                    .sum::<u64>();
            }
        }
        assert_eq!(meta.parameters, Some(params), "{id}");
        assert_eq!(
            meta.total_size,
            meta.files.iter().map(|f| f.size).sum::<u64>()
        );
        for must in ["config.json", "tokenizer_config.json", "README.md"] {
            assert!(meta.files.iter().any(|f| f.path == must), "{id} {must}");
        }
        let readme = std::fs::read_to_string(dir.join("README.md")).unwrap();
        assert!(readme.starts_with("---\n") && readme.contains("pipeline_tag:"));
    }
    tasks.sort();
    assert_eq!(
        tasks,
        [
            "feature-extraction",
            "text-classification",
            "text-generation",
            "text-generation"
        ]
    );

    // The sharded one: an index that maps every tensor to the shard holding it, 48–64 MiB in all.
    let big = store.model_dir(&ids[0]);
    let idx: Value =
        serde_json::from_slice(&std::fs::read(big.join("model.safetensors.index.json")).unwrap())
            .unwrap();
    let map = idx["weight_map"].as_object().unwrap();
    let mut from_shards = 0;
    for shard in [
        "model-00001-of-00002.safetensors",
        "model-00002-of-00002.safetensors",
    ] {
        for name in check_safetensors(&big.join(shard)) {
            assert_eq!(map[&name], shard);
            from_shards += 1;
        }
    }
    assert_eq!(from_shards, map.len());
    let total = store.read_metadata(&ids[0]).unwrap().unwrap().total_size;
    assert!((48 << 20..=64 << 20).contains(&total), "{total}");
    assert!(store.read_metadata(&ids[1]).unwrap().unwrap().total_size < total / 4);

    // Idempotent: a second run changes nothing (not even the metadata).
    let before: Vec<Vec<u8>> = ids
        .iter()
        .map(|i| std::fs::read(store.metadata_path(i)).unwrap())
        .collect();
    generate_sample_hub(fresh.path()).unwrap();
    let after: Vec<Vec<u8>> = ids
        .iter()
        .map(|i| std::fs::read(store.metadata_path(i)).unwrap())
        .collect();
    assert_eq!(before, after);
    assert!(
        std::fs::read_dir(store.state_dir().join("tmp"))
            .unwrap()
            .next()
            .is_none(),
        "no leftovers"
    );

    // A folder with the same name but no metadata is not overwritten.
    let other = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(other.path().join("ema-demo--small-gpt")).unwrap();
    std::fs::write(other.path().join("ema-demo--small-gpt/mine.txt"), b"keep").unwrap();
    let err = generate_sample_hub(other.path()).unwrap_err();
    assert!(err.to_string().contains("move it away"), "{err}");
    assert_eq!(
        std::fs::read(other.path().join("ema-demo--small-gpt/mine.txt")).unwrap(),
        b"keep"
    );
}

#[tokio::test]
async fn incomplete_or_failed_models_are_not_served() {
    let d = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(d.path().join("ema-demo--tiny-gpt")).unwrap();
    std::fs::write(d.path().join("ema-demo--tiny-gpt/config.json"), b"{}").unwrap();
    // Metadata copied from the demo store lists files this folder lacks.
    let src = sample_hub().join("ema-demo--tiny-gpt.metadata.json");
    std::fs::copy(src, d.path().join("ema-demo--tiny-gpt.metadata.json")).unwrap();
    let hub = Hub::start(d.path(), false, |_| {}).await;
    let mirror = &hub.mirror;
    assert!(mirror.models().is_empty());
    assert_eq!(mirror.skipped().len(), 1);
    assert!(mirror.skipped()[0].reason.contains("missing"));
    let r = send(client().get(hub.url("/api/models/ema-demo/tiny-gpt"))).await;
    assert_eq!(hdr(&r, "x-error-code").as_deref(), Some("RepoNotFound"));
}

/// `ema mirror` as a user runs it: the real binary, `--port 0 --json`, then a download from it.
#[test]
fn ema_mirror_cli_serves_the_store() {
    let root = sample_hub();
    let mut child = ema_cmd()
        .args(["mirror", "--port", "0", "--json", "--models-dir"])
        .arg(root)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let (v, json_reader) = first_json_line(&mut child);
    let endpoint = v["endpoint"].as_str().unwrap().to_string();
    assert!(endpoint.starts_with("http://127.0.0.1:"));
    assert_eq!(v["models"].as_array().unwrap().len(), SAMPLE_REPOS.len());
    let rt = tokio::runtime::Runtime::new().unwrap();
    let body = rt.block_on(async {
        let r = send(client().get(format!(
            "{endpoint}/ema-demo/tiny-gpt/resolve/main/config.json"
        )))
        .await;
        assert_eq!(r.status(), 200);
        r.bytes().await.unwrap()
    });
    assert_eq!(
        &body[..],
        &std::fs::read(root.join("ema-demo--tiny-gpt/config.json")).unwrap()[..]
    );
    unsafe { libc::kill(child.id() as i32, libc::SIGINT) };
    let deadline = Instant::now() + Duration::from_secs(10);
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        assert!(
            Instant::now() < deadline,
            "ema mirror did not stop on Ctrl-C"
        );
        std::thread::sleep(Duration::from_millis(50));
    };
    assert!(status.success(), "{status:?}");

    // Human output with the hidden per-connection cap: the HF_ENDPOINT line, and the cap holds.
    let mut child = ema_cmd()
        .args([
            "mirror",
            "--port",
            "0",
            "--throttle-per-connection",
            "100000",
            "--models-dir",
        ])
        .arg(root)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut endpoint = None;
    // Keep the pipe open until the child exits: it may still be printing.
    let mut reader = BufReader::new(child.stdout.take().unwrap());
    for _ in 0..20 {
        let mut line = String::new();
        reader.read_line(&mut line).unwrap();
        if let Some(e) = line.trim_end().strip_prefix("HF_ENDPOINT=") {
            endpoint = Some(e.to_string());
            break;
        }
    }
    let endpoint = endpoint.expect("an HF_ENDPOINT= line");
    let t = Instant::now();
    let n = rt.block_on(async {
        let r = send(
            client()
                .get(format!(
                    "{endpoint}/ema-demo/tiny-gpt/resolve/main/model.safetensors"
                ))
                .header("Range", "bytes=0-59999"),
        )
        .await;
        r.bytes().await.unwrap().len()
    });
    assert_eq!(n, 60_000);
    assert!(
        t.elapsed() >= Duration::from_millis(500),
        "{:?}",
        t.elapsed()
    );
    unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
    let deadline = Instant::now() + Duration::from_secs(10);
    while child.try_wait().unwrap().is_none() {
        assert!(
            Instant::now() < deadline,
            "ema mirror did not stop on SIGTERM"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    drop((reader, json_reader));

    // A non-loopback host is refused (nothing is bound) unless --allow-remote.
    let out = ema_cmd()
        .args(["mirror", "--host", "0.0.0.0", "--port", "0", "--models-dir"])
        .arg(root)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("--allow-remote"), "{err}");
}

/// `huggingface_hub.snapshot_download` against the mirror fetches the same bytes (when Python has it).
#[tokio::test]
async fn huggingface_hub_snapshot_download_gets_the_same_bytes() {
    let ok = std::process::Command::new("python3")
        .args(["-c", "import huggingface_hub"])
        .output()
        .map(|o| o.status.success())
        .unwrap_or(false);
    if !ok {
        println!(
            "skipped: python3 with huggingface_hub is not available (pip install huggingface_hub to run it)"
        );
        return;
    }
    let root = sample_hub();
    let hub = start(root, true, |o| o.tree_page_size = 3).await;
    let out = tempfile::tempdir().unwrap();
    let script = "import sys\nfrom huggingface_hub import snapshot_download\n\
        p = snapshot_download(sys.argv[1], local_dir=sys.argv[2])\nprint(p)\n";
    let res = tokio::process::Command::new("python3")
        .args(["-c", script, "ema-demo/small-gpt"])
        .arg(out.path())
        .env("HF_ENDPOINT", hub.main.url())
        .env("HF_HOME", out.path().join("hf-home"))
        .env("HF_HUB_DISABLE_TELEMETRY", "1")
        .env("HF_HUB_DISABLE_XET", "1")
        .env_remove("HF_TOKEN")
        .output();
    let res = tokio::time::timeout(Duration::from_secs(300), res)
        .await
        .unwrap()
        .unwrap();
    assert!(
        res.status.success(),
        "{}",
        String::from_utf8_lossy(&res.stderr)
    );
    let src = root.join("ema-demo--small-gpt");
    let meta = Store::new(root)
        .read_metadata(&RepoId::parse("ema-demo/small-gpt").unwrap())
        .unwrap()
        .unwrap();
    for f in &meta.files {
        let a = std::fs::read(src.join(&f.path)).unwrap();
        let b = std::fs::read(out.path().join(&f.path)).unwrap();
        assert!(a == b, "{} differs", f.path);
    }
    // The LFS shards came through the CDN host.
    let cdn_host = hub.cdn().addr.to_string();
    let cdn_gets = hub
        .plan
        .requests()
        .iter()
        .filter(|r| r.host.as_deref() == Some(&cdn_host))
        .count();
    assert!(cdn_gets >= 2, "{cdn_gets}");
}

/// A model downloaded (or re-pinned) while the mirror runs is served on its next request, without a restart.
#[tokio::test]
async fn models_that_appear_or_change_while_running_are_picked_up() {
    use ema::engine::store::VerificationState;
    let d = tempfile::tempdir().unwrap();
    let hub = Hub::start(d.path(), false, |_| {}).await;
    let c = client();
    let info = |c: reqwest::Client, url: String| async move { send(c.get(url)).await };
    let url = hub.url("/api/models/org/new");
    let r = info(c.clone(), url.clone()).await;
    assert_eq!(hdr(&r, "x-error-code").as_deref(), Some("RepoNotFound"));

    std::fs::create_dir_all(d.path().join("org--new")).unwrap();
    std::fs::write(d.path().join("org--new/config.json"), b"{\"v\": 1}\n").unwrap();
    let r = info(c.clone(), url.clone()).await;
    assert_eq!(r.status(), 200);

    let content = b"{\"v\": 1}\n";
    let commit = "0123456789abcdef0123456789abcdef01234567";
    let mut meta = one_file_metadata(
        "org/new",
        "config.json",
        content,
        VerificationState::Verified,
    );
    meta.requested_revision = "v1.0".to_string();
    meta.commit = Some(commit.to_string());
    meta.files[0].sha256 = Some(sha256_hex(content));
    meta.files[0].git_sha1 = Some(git_blob_sha1(content));
    meta.pipeline_tag = Some("text-generation".to_string());
    meta.created_at = "2026-01-01T00:00:00Z".to_string();
    meta.updated_at = "2026-01-01T00:00:00Z".to_string();
    let store = Store::new(d.path());
    store.write_metadata(&meta).unwrap();
    let v: Value = info(c.clone(), url.clone()).await.json().await.unwrap();
    assert_eq!(v["sha"], commit);
    assert_eq!(v["pipeline_tag"], "text-generation");
    // The revision it was downloaded at resolves too.
    let r = info(c.clone(), hub.url("/org/new/resolve/v1.0/config.json")).await;
    assert_eq!(r.status(), 200);
    assert_eq!(hdr(&r, "x-repo-commit").as_deref(), Some(commit));

    // A failed verification takes it off the mirror.
    meta.verification = VerificationState::Failed;
    meta.updated_at = "2026-01-02T00:00:00Z".to_string();
    store.write_metadata(&meta).unwrap();
    let r = info(c.clone(), url.clone()).await;
    assert_eq!(hdr(&r, "x-error-code").as_deref(), Some("RepoNotFound"));
}
