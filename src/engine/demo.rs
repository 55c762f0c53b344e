//! Sample models for `ema demo` and tests: small but real Hugging Face repos written into an ema store.
//!
//! [`generate_sample_hub`] writes four models under the `ema-demo` org, each with real safetensors weights
//! (deterministic pseudo-random values), `config.json`, `tokenizer_config.json`, a model card `README.md` and,
//! for the generative ones, `generation_config.json`, plus full metadata sidecars (commit, sizes, sha256, git sha1,
//! pipeline tag, library, tags, parameter count):
//!
//! | repo | task | size |
//! |---|---|---|
//! | `ema-demo/small-gpt` | text-generation, 2 safetensors shards + index | ≈ 57 MiB (BF16) |
//! | `ema-demo/tiny-gpt` | text-generation (a fallback for `small-gpt`) | ≈ 2.6 MiB |
//! | `ema-demo/tiny-sentiment` | text-classification | ≈ 1 MiB |
//! | `ema-demo/mini-embed` | feature-extraction | ≈ 3 MiB |
//!
//! The bytes are the same on every run and every machine. Generation is idempotent: a model whose folder and
//! metadata already exist is left alone. Each model is built in `.ema/tmp/` and renamed into place, so a crash
//! never leaves a half-written model folder.

use std::io::Write;
use std::path::{Path, PathBuf};

use serde_json::{Value, json};
use sha1::Sha1;
use sha2::{Digest, Sha256};

use super::error::{EmaError, Result};
use super::store::{
    FileRecord, METADATA_SCHEMA_VERSION, ModelFacts, ModelMetadata, RepoId, Store,
    VerificationState, now_rfc3339,
};

/// The sample repo ids, in the order [`generate_sample_hub`] returns them.
pub const SAMPLE_REPOS: &[&str] = &[
    "ema-demo/small-gpt",
    "ema-demo/tiny-gpt",
    "ema-demo/tiny-sentiment",
    "ema-demo/mini-embed",
];

#[derive(Clone, Copy, PartialEq, Eq)]
pub(super) enum DType {
    F32,
    BF16,
    /// Packed integer weights (how a 4-bit quantization shows in safetensors).
    U8,
}

impl DType {
    fn name(self) -> &'static str {
        match self {
            DType::F32 => "F32",
            DType::BF16 => "BF16",
            DType::U8 => "U8",
        }
    }
    fn width(self) -> u64 {
        match self {
            DType::F32 => 4,
            DType::BF16 => 2,
            DType::U8 => 1,
        }
    }
    fn torch(self) -> &'static str {
        match self {
            DType::F32 => "float32",
            DType::BF16 => "bfloat16",
            DType::U8 => "float16",
        }
    }
}

/// How a tensor is filled.
#[derive(Clone, Copy)]
pub(super) enum Init {
    Random,
    Ones,
    Zeros,
}

pub(super) struct Tensor {
    name: String,
    shape: Vec<u64>,
    init: Init,
}

impl Tensor {
    fn numel(&self) -> u64 {
        self.shape.iter().product()
    }
}

pub(super) fn t(name: impl Into<String>, shape: &[u64], init: Init) -> Tensor {
    Tensor {
        name: name.into(),
        shape: shape.to_vec(),
        init,
    }
}

pub(super) fn gpt2_tensors(vocab: u64, n: u64, layers: u64, positions: u64) -> Vec<Tensor> {
    let mut v = vec![
        t("transformer.wte.weight", &[vocab, n], Init::Random),
        t("transformer.wpe.weight", &[positions, n], Init::Random),
        t("transformer.ln_f.weight", &[n], Init::Ones),
        t("transformer.ln_f.bias", &[n], Init::Zeros),
    ];
    for i in 0..layers {
        let p = format!("transformer.h.{i}");
        v.extend([
            t(format!("{p}.ln_1.weight"), &[n], Init::Ones),
            t(format!("{p}.ln_1.bias"), &[n], Init::Zeros),
            t(format!("{p}.attn.c_attn.weight"), &[n, 3 * n], Init::Random),
            t(format!("{p}.attn.c_attn.bias"), &[3 * n], Init::Zeros),
            t(format!("{p}.attn.c_proj.weight"), &[n, n], Init::Random),
            t(format!("{p}.attn.c_proj.bias"), &[n], Init::Zeros),
            t(format!("{p}.ln_2.weight"), &[n], Init::Ones),
            t(format!("{p}.ln_2.bias"), &[n], Init::Zeros),
            t(format!("{p}.mlp.c_fc.weight"), &[n, 4 * n], Init::Random),
            t(format!("{p}.mlp.c_fc.bias"), &[4 * n], Init::Zeros),
            t(format!("{p}.mlp.c_proj.weight"), &[4 * n, n], Init::Random),
            t(format!("{p}.mlp.c_proj.bias"), &[n], Init::Zeros),
        ]);
    }
    v
}

fn bert_tensors(vocab: u64, n: u64, layers: u64, positions: u64, prefix: &str) -> Vec<Tensor> {
    let e = format!("{prefix}embeddings");
    let mut v = vec![
        t(
            format!("{e}.word_embeddings.weight"),
            &[vocab, n],
            Init::Random,
        ),
        t(
            format!("{e}.position_embeddings.weight"),
            &[positions, n],
            Init::Random,
        ),
        t(
            format!("{e}.token_type_embeddings.weight"),
            &[2, n],
            Init::Random,
        ),
        t(format!("{e}.LayerNorm.weight"), &[n], Init::Ones),
        t(format!("{e}.LayerNorm.bias"), &[n], Init::Zeros),
    ];
    for i in 0..layers {
        let p = format!("{prefix}encoder.layer.{i}");
        for m in ["query", "key", "value"] {
            v.push(t(
                format!("{p}.attention.self.{m}.weight"),
                &[n, n],
                Init::Random,
            ));
            v.push(t(format!("{p}.attention.self.{m}.bias"), &[n], Init::Zeros));
        }
        v.extend([
            t(
                format!("{p}.attention.output.dense.weight"),
                &[n, n],
                Init::Random,
            ),
            t(
                format!("{p}.attention.output.dense.bias"),
                &[n],
                Init::Zeros,
            ),
            t(
                format!("{p}.attention.output.LayerNorm.weight"),
                &[n],
                Init::Ones,
            ),
            t(
                format!("{p}.attention.output.LayerNorm.bias"),
                &[n],
                Init::Zeros,
            ),
            t(
                format!("{p}.intermediate.dense.weight"),
                &[4 * n, n],
                Init::Random,
            ),
            t(
                format!("{p}.intermediate.dense.bias"),
                &[4 * n],
                Init::Zeros,
            ),
            t(
                format!("{p}.output.dense.weight"),
                &[n, 4 * n],
                Init::Random,
            ),
            t(format!("{p}.output.dense.bias"), &[n], Init::Zeros),
            t(format!("{p}.output.LayerNorm.weight"), &[n], Init::Ones),
            t(format!("{p}.output.LayerNorm.bias"), &[n], Init::Zeros),
        ]);
    }
    v
}

/// splitmix64: tiny, fast, deterministic everywhere.
struct Rng(u64);

impl Rng {
    fn seeded(label: &str) -> Rng {
        let d = Sha256::digest(label.as_bytes());
        Rng(u64::from_le_bytes(d[..8].try_into().unwrap_or([0; 8])))
    }
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    /// Uniform in [-0.05, 0.05).
    fn weight(&mut self) -> f32 {
        ((self.next() >> 40) as f32 / (1u64 << 24) as f32 - 0.5) * 0.1
    }
}

/// A file being written with its hashes computed on the way.
struct HashingWriter {
    file: std::io::BufWriter<std::fs::File>,
    path: PathBuf,
    sha256: Sha256,
    bytes: Vec<u8>,
    len: u64,
    /// Keep the content for the git blob sha1 (small non-LFS files only).
    keep: bool,
}

impl HashingWriter {
    fn create(path: &Path, keep: bool) -> Result<Self> {
        if let Some(d) = path.parent() {
            std::fs::create_dir_all(d)
                .map_err(|e| EmaError::io("cannot create directory", d, e))?;
        }
        let f = std::fs::File::create(path).map_err(|e| EmaError::io("cannot create", path, e))?;
        Ok(HashingWriter {
            file: std::io::BufWriter::with_capacity(1 << 20, f),
            path: path.to_path_buf(),
            sha256: Sha256::new(),
            bytes: Vec::new(),
            len: 0,
            keep,
        })
    }
    fn write(&mut self, b: &[u8]) -> Result<()> {
        self.file
            .write_all(b)
            .map_err(|e| EmaError::io("cannot write", &self.path, e))?;
        self.sha256.update(b);
        if self.keep {
            self.bytes.extend_from_slice(b);
        }
        self.len += b.len() as u64;
        Ok(())
    }
    /// Flush and fsync; returns (size, sha256, git sha1 if kept).
    fn finish(self) -> Result<(u64, String, Option<String>)> {
        let f = self
            .file
            .into_inner()
            .map_err(|e| EmaError::io("cannot write", &self.path, e.into_error()))?;
        f.sync_all()
            .map_err(|e| EmaError::io("cannot fsync", &self.path, e))?;
        let sha1 = self
            .keep
            .then(|| crate::engine::integrity::hash::git_blob_sha1(&self.bytes));
        Ok((self.len, hex::encode(self.sha256.finalize()), sha1))
    }
}

/// Write one safetensors file; returns the header's tensor names.
fn write_safetensors(path: &Path, tensors: &[Tensor], dtype: DType, seed: &str) -> Result<()> {
    let mut header = serde_json::Map::new();
    header.insert("__metadata__".into(), json!({ "format": "pt" }));
    let mut offset = 0u64;
    for ts in tensors {
        let len = ts.numel() * dtype.width();
        header.insert(
            ts.name.clone(),
            json!({ "dtype": dtype.name(), "shape": ts.shape, "data_offsets": [offset, offset + len] }),
        );
        offset += len;
    }
    let mut hjson = serde_json::to_vec(&Value::Object(header))
        .map_err(|e| EmaError::Other(format!("cannot serialize a safetensors header: {e}")))?;
    // Pad to 8 bytes with spaces so the data is aligned, as the safetensors library does.
    while hjson.len() % 8 != 0 {
        hjson.push(b' ');
    }
    let mut w = HashingWriter::create(path, false)?;
    w.write(&(hjson.len() as u64).to_le_bytes())?;
    w.write(&hjson)?;
    let mut buf: Vec<u8> = Vec::with_capacity(1 << 20);
    for ts in tensors {
        let mut rng = Rng::seeded(&format!("{seed}/{}", ts.name));
        for _ in 0..ts.numel() {
            let x: f32 = match ts.init {
                Init::Random => rng.weight(),
                Init::Ones => 1.0,
                Init::Zeros => 0.0,
            };
            match dtype {
                DType::F32 => buf.extend_from_slice(&x.to_le_bytes()),
                DType::BF16 => buf.extend_from_slice(&((x.to_bits() >> 16) as u16).to_le_bytes()),
                DType::U8 => buf.push((x.to_bits() >> 13) as u8),
            }
            if buf.len() >= (1 << 20) {
                w.write(&buf)?;
                buf.clear();
            }
        }
    }
    w.write(&buf)?;
    w.finish()?;
    Ok(())
}

pub(super) struct Sample {
    pub repo: &'static str,
    pub pipeline_tag: &'static str,
    pub library_name: &'static str,
    pub tags: &'static [&'static str],
    /// The card's `base_model` (empty: none).
    pub base_models: &'static [&'static str],
    pub dtype: DType,
    pub tensors: Vec<Tensor>,
    pub shards: usize,
    pub config: Value,
    pub tokenizer_config: Value,
    pub generation_config: Option<Value>,
    pub card: String,
}

pub(super) fn card(s: &Sample, what: &str) -> String {
    let (pipeline, library, tags) = (s.pipeline_tag, s.library_name, s.tags);
    let params: u64 = s.tensors.iter().map(Tensor::numel).sum();
    let name = s.repo.rsplit('/').next().unwrap_or(s.repo);
    let mut s = format!(
        "---\nlicense: mit\nlibrary_name: {library}\npipeline_tag: {pipeline}\n{}tags:\n",
        match s.base_models {
            [] => String::new(),
            [one] => format!("base_model: {one}\n"),
            many => format!(
                "base_model:\n{}",
                many.iter().map(|b| format!("- {b}\n")).collect::<String>()
            ),
        }
    );
    for t in tags {
        s.push_str(&format!("- {t}\n"));
    }
    s.push_str(&format!(
        "---\n\n# {name}\n\n{what}\n\nThis is a sample model generated by `ema` for demos and tests. Its weights are \
         deterministic pseudo-random numbers (the same bytes on every machine), so it loads like a real checkpoint but \
         its outputs are meaningless.\n\n- Task: `{pipeline}`\n- Library: `{library}`\n- Parameters: {params}\n\n\
         ## Files\n\n- `config.json`: the architecture\n- `tokenizer_config.json`: tokenizer settings\n- \
         `*.safetensors`: the weights\n"
    ));
    s
}

fn samples() -> Vec<Sample> {
    let gen_cfg = |max_len: u64| {
        json!({
            "_from_model_config": true,
            "bos_token_id": 0,
            "eos_token_id": 0,
            "max_length": max_len,
            "do_sample": true,
            "temperature": 0.8,
            "top_p": 0.95,
            "transformers_version": "4.46.0"
        })
    };
    let gpt2_cfg = |vocab: u64, n: u64, layers: u64, pos: u64, dtype: DType| {
        json!({
            "architectures": ["GPT2LMHeadModel"],
            "model_type": "gpt2",
            "vocab_size": vocab,
            "n_embd": n,
            "n_layer": layers,
            "n_head": n / 64,
            "n_positions": pos,
            "n_ctx": pos,
            "activation_function": "gelu_new",
            "layer_norm_epsilon": 1e-5,
            "bos_token_id": 0,
            "eos_token_id": 0,
            "torch_dtype": dtype.torch(),
            "transformers_version": "4.46.0"
        })
    };
    let gpt2_tok = || {
        json!({
            "tokenizer_class": "GPT2Tokenizer",
            "model_max_length": 512,
            "bos_token": "<|endoftext|>",
            "eos_token": "<|endoftext|>",
            "unk_token": "<|endoftext|>",
            "add_prefix_space": false,
            "clean_up_tokenization_spaces": false
        })
    };
    let bert_cfg = |vocab: u64, n: u64, layers: u64, pos: u64, arch: &str, extra: Value| {
        let mut c = json!({
            "architectures": [arch],
            "model_type": "bert",
            "vocab_size": vocab,
            "hidden_size": n,
            "num_hidden_layers": layers,
            "num_attention_heads": (n / 32).max(1),
            "intermediate_size": 4 * n,
            "max_position_embeddings": pos,
            "type_vocab_size": 2,
            "hidden_act": "gelu",
            "layer_norm_eps": 1e-12,
            "pad_token_id": 0,
            "torch_dtype": "float32",
            "transformers_version": "4.46.0"
        });
        if let (Some(c), Some(e)) = (c.as_object_mut(), extra.as_object()) {
            for (k, v) in e {
                c.insert(k.clone(), v.clone());
            }
        }
        c
    };
    let bert_tok = || {
        json!({
            "tokenizer_class": "BertTokenizer",
            "model_max_length": 128,
            "do_lower_case": true,
            "cls_token": "[CLS]",
            "sep_token": "[SEP]",
            "pad_token": "[PAD]",
            "mask_token": "[MASK]",
            "unk_token": "[UNK]"
        })
    };

    // A GPT-2-style causal language model: (vocabulary, width, layers, positions).
    let gpt = |repo: &'static str,
               dtype: DType,
               shards: usize,
               (vocab, n, layers, pos): (u64, u64, u64, u64)| {
        Sample {
            repo,
            pipeline_tag: "text-generation",
            library_name: "transformers",
            tags: &[
                "transformers",
                "safetensors",
                "gpt2",
                "text-generation",
                "ema-demo",
            ],
            dtype,
            tensors: gpt2_tensors(vocab, n, layers, pos),
            shards,
            config: gpt2_cfg(vocab, n, layers, pos, dtype),
            tokenizer_config: gpt2_tok(),
            generation_config: Some(gen_cfg(pos)),
            base_models: &[],
            card: String::new(),
        }
    };

    let mut sentiment = bert_tensors(2048, 64, 2, 128, "bert.");
    sentiment.extend([
        t("bert.pooler.dense.weight", &[64, 64], Init::Random),
        t("bert.pooler.dense.bias", &[64], Init::Zeros),
        t("classifier.weight", &[2, 64], Init::Random),
        t("classifier.bias", &[2], Init::Zeros),
    ]);

    let mut out = vec![
        gpt("ema-demo/small-gpt", DType::BF16, 2, (8192, 512, 8, 512)),
        gpt("ema-demo/tiny-gpt", DType::F32, 1, (2048, 128, 2, 128)),
        Sample {
            repo: "ema-demo/tiny-sentiment",
            pipeline_tag: "text-classification",
            library_name: "transformers",
            tags: &[
                "transformers",
                "safetensors",
                "bert",
                "text-classification",
                "ema-demo",
            ],
            dtype: DType::F32,
            tensors: sentiment,
            shards: 1,
            config: bert_cfg(
                2048,
                64,
                2,
                128,
                "BertForSequenceClassification",
                json!({ "id2label": {"0": "NEGATIVE", "1": "POSITIVE"}, "label2id": {"NEGATIVE": 0, "POSITIVE": 1} }),
            ),
            tokenizer_config: bert_tok(),
            generation_config: None,
            base_models: &[],
            card: String::new(),
        },
        Sample {
            repo: "ema-demo/mini-embed",
            pipeline_tag: "feature-extraction",
            library_name: "sentence-transformers",
            tags: &[
                "sentence-transformers",
                "safetensors",
                "bert",
                "feature-extraction",
                "ema-demo",
            ],
            dtype: DType::F32,
            tensors: bert_tensors(4096, 96, 3, 128, ""),
            shards: 1,
            config: bert_cfg(4096, 96, 3, 128, "BertModel", json!({})),
            tokenizer_config: bert_tok(),
            generation_config: None,
            base_models: &[],
            card: String::new(),
        },
    ];
    // tiny-gpt is a distillation of small-gpt: the model tree says so (a tag and the card's base_model).
    out[1].tags = &[
        "transformers",
        "safetensors",
        "gpt2",
        "text-generation",
        "ema-demo",
        "base_model:ema-demo/small-gpt",
    ];
    out[1].base_models = &["ema-demo/small-gpt"];
    let what = [
        "A small GPT-2-style causal language model, sharded into two safetensors files.",
        "A tiny GPT-2-style causal language model: a lightweight fallback for `ema-demo/small-gpt`.",
        "A tiny BERT-style sentence classifier (NEGATIVE / POSITIVE).",
        "A mini BERT-style sentence embedding model (96 dimensions).",
    ];
    for (s, w) in out.iter_mut().zip(what) {
        s.card = card(s, w);
    }
    out
}

const GITATTRIBUTES: &str = "*.bin filter=lfs diff=lfs merge=lfs -text\n*.ckpt filter=lfs diff=lfs merge=lfs -text\n\
*.gguf filter=lfs diff=lfs merge=lfs -text\n*.h5 filter=lfs diff=lfs merge=lfs -text\n\
*.msgpack filter=lfs diff=lfs merge=lfs -text\n*.onnx filter=lfs diff=lfs merge=lfs -text\n\
*.pt filter=lfs diff=lfs merge=lfs -text\n*.pth filter=lfs diff=lfs merge=lfs -text\n\
*.safetensors filter=lfs diff=lfs merge=lfs -text\n";

fn pretty(v: &Value) -> Vec<u8> {
    let mut b = serde_json::to_vec_pretty(v).unwrap_or_default();
    b.push(b'\n');
    b
}

/// Write `s` into `dir` (which must not exist yet); returns the file records.
fn build(s: &Sample, dir: &Path) -> Result<Vec<FileRecord>> {
    std::fs::create_dir_all(dir).map_err(|e| EmaError::io("cannot create directory", dir, e))?;
    let mut small: Vec<(String, Vec<u8>)> = vec![
        (".gitattributes".into(), GITATTRIBUTES.as_bytes().to_vec()),
        ("README.md".into(), s.card.as_bytes().to_vec()),
        ("config.json".into(), pretty(&s.config)),
        ("tokenizer_config.json".into(), pretty(&s.tokenizer_config)),
    ];
    if let Some(g) = &s.generation_config {
        small.push(("generation_config.json".into(), pretty(g)));
    }
    let seed = s.repo;
    if s.shards <= 1 {
        write_safetensors(&dir.join("model.safetensors"), &s.tensors, s.dtype, seed)?;
    } else {
        // Split into shards of about equal byte size, in tensor order.
        let total: u64 = s.tensors.iter().map(|t| t.numel() * s.dtype.width()).sum();
        let per = total.div_ceil(s.shards as u64);
        let mut groups: Vec<Vec<&Tensor>> = vec![Vec::new()];
        let mut acc = 0;
        for ts in &s.tensors {
            let len = ts.numel() * s.dtype.width();
            if acc > 0 && acc + len > per && groups.len() < s.shards {
                groups.push(Vec::new());
                acc = 0;
            }
            acc += len;
            if let Some(g) = groups.last_mut() {
                g.push(ts);
            }
        }
        let n = groups.len();
        let mut weight_map = serde_json::Map::new();
        for (i, g) in groups.iter().enumerate() {
            let name = format!("model-{:05}-of-{:05}.safetensors", i + 1, n);
            let owned: Vec<Tensor> = g
                .iter()
                .map(|ts| Tensor {
                    name: ts.name.clone(),
                    shape: ts.shape.clone(),
                    init: ts.init,
                })
                .collect();
            write_safetensors(&dir.join(&name), &owned, s.dtype, seed)?;
            for ts in g {
                weight_map.insert(ts.name.clone(), Value::String(name.clone()));
            }
        }
        small.push((
            "model.safetensors.index.json".into(),
            pretty(&json!({ "metadata": { "total_size": total }, "weight_map": weight_map })),
        ));
    }
    for (name, bytes) in &small {
        let mut w = HashingWriter::create(&dir.join(name), true)?;
        w.write(bytes)?;
        w.finish()?;
    }
    // Records for every file, hashed from disk (one pass each) so they describe exactly what is there.
    let mut records = Vec::new();
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .map_err(|e| EmaError::io("cannot list", dir, e))?
        .filter_map(|e| e.ok())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    let now = now_rfc3339();
    for name in names {
        let p = dir.join(&name);
        let (size, sha256, sha1) = hash_both(&p)?;
        let lfs = crate::engine::store::is_lfs_path(&name, size);
        let mtime = std::fs::metadata(&p)
            .ok()
            .and_then(|m| crate::engine::store::mtime_ns(&m));
        records.push(FileRecord {
            path: name,
            size,
            sha256: Some(sha256),
            git_sha1: (!lfs).then_some(sha1),
            lfs,
            verified_at: Some(now.clone()),
            mtime_ns: mtime,
        });
    }
    Ok(records)
}

fn hash_both(p: &Path) -> Result<(u64, String, String)> {
    use crate::engine::integrity::hash::{HashKinds, hash_file};
    let d = hash_file(p, HashKinds::BOTH)?.digests;
    match (d.sha256, d.git_sha1) {
        (Some(sha256), Some(sha1)) => Ok((d.size, sha256, sha1)),
        _ => Err(EmaError::Other(format!(
            "{} changed while it was hashed",
            p.display()
        ))),
    }
}

/// The deterministic commit of a generated sample: sha1 over its paths and content hashes.
fn commit_of(records: &[FileRecord]) -> String {
    let mut h = Sha1::new();
    h.update(b"ema-demo-commit\n");
    for r in records {
        h.update(r.path.as_bytes());
        h.update(b"\0");
        h.update(r.sha256.as_deref().unwrap_or("").as_bytes());
        h.update(b"\n");
    }
    hex::encode(h.finalize())
}

/// Write the sample models into the ema store at `root` (created if needed) and return their repo ids.
/// Models already present (folder and metadata) are left untouched.
pub fn generate_sample_hub(root: &Path) -> Result<Vec<RepoId>> {
    install(root, samples())
}

/// Write `samples` into the ema store at `root` (see [`generate_sample_hub`]).
pub(super) fn install(root: &Path, samples: Vec<Sample>) -> Result<Vec<RepoId>> {
    let store = Store::new(root);
    store.ensure()?;
    let tmp_root = store.state_dir().join("tmp");
    std::fs::create_dir_all(&tmp_root)
        .map_err(|e| EmaError::io("cannot create directory", &tmp_root, e))?;
    let mut ids = Vec::new();
    for s in samples {
        let id = RepoId::parse(s.repo)?;
        let dir = store.model_dir(&id);
        let meta_exists = store.metadata_path(&id).exists();
        if dir.exists() {
            if meta_exists {
                ids.push(id);
                continue;
            }
            return Err(EmaError::Config(format!(
                "{} exists but has no metadata sidecar, so it is not a sample this command wrote; move it away \
                 or use another models directory for the demo",
                dir.display()
            )));
        }
        let work = tmp_root.join(format!("demo-{}-{}", id.folder_name(), std::process::id()));
        if work.exists() {
            std::fs::remove_dir_all(&work).map_err(|e| EmaError::io("cannot remove", &work, e))?;
        }
        let records = match build(&s, &work) {
            Ok(r) => r,
            Err(e) => {
                let _ = std::fs::remove_dir_all(&work);
                return Err(e);
            }
        };
        let now = now_rfc3339();
        let meta = ModelMetadata {
            schema_version: METADATA_SCHEMA_VERSION,
            legacy_location: None,
            repo_id: id.clone(),
            requested_revision: "main".to_string(),
            commit: Some(commit_of(&records)),
            endpoint: None,
            total_size: records.iter().map(|r| r.size).sum(),
            files: records,
            pipeline_tag: Some(s.pipeline_tag.to_string()),
            library_name: Some(s.library_name.to_string()),
            tags: s.tags.iter().map(|t| t.to_string()).collect(),
            parameters: Some(s.tensors.iter().map(Tensor::numel).sum()),
            facts: crate::engine::fallback::facts::with_local_config(
                ModelFacts {
                    base_models: s.base_models.iter().map(|b| b.to_string()).collect(),
                    parameters_by_dtype: [(
                        s.dtype.name().to_string(),
                        s.tensors.iter().map(Tensor::numel).sum(),
                    )]
                    .into(),
                    ..ModelFacts::default()
                },
                &work,
            ),
            created_at: now.clone(),
            updated_at: now.clone(),
            last_verified_at: Some(now),
            verification: VerificationState::Verified,
        };
        // Metadata first, then the folder: a crash in between leaves metadata without a folder, which the next
        // run regenerates; never a folder without its metadata.
        store.write_metadata(&meta)?;
        if let Err(e) = std::fs::rename(&work, &dir) {
            let _ = std::fs::remove_dir_all(&work);
            // Another process generating the same (deterministic) samples got there first: fine.
            if !dir.is_dir() {
                return Err(EmaError::io("cannot move into place", &dir, e));
            }
        }
        super::atomic::sync_dir(root);
        ids.push(id);
    }
    Ok(ids)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rng_is_stable() {
        let mut r = Rng::seeded("x");
        let a: Vec<u64> = (0..3).map(|_| r.next()).collect();
        let mut r = Rng::seeded("x");
        let b: Vec<u64> = (0..3).map(|_| r.next()).collect();
        assert_eq!(a, b);
        let w = Rng::seeded("y").weight();
        assert!((-0.05..0.05).contains(&w));
    }

    #[test]
    fn sizes_are_as_documented() {
        let s = samples();
        let bytes =
            |s: &Sample| -> u64 { s.tensors.iter().map(|t| t.numel() * s.dtype.width()).sum() };
        let big = bytes(&s[0]);
        assert!((48 << 20..64 << 20).contains(&big), "{big}");
        for small in &s[1..] {
            assert!(bytes(small) < 4 << 20);
        }
    }
}
