//! A sample model family for the fallback (`ema suggest`) tests and demos, written like the demo samples (real
//! safetensors, configs, cards, sidecars) under the `ema-family` org:
//!
//! | repo | task | relation |
//! |---|---|---|
//! | `ema-family/base-lm` | text-generation | the base (BF16) |
//! | `ema-family/base-lm-chat` | text-generation | a finetune of the base (BF16) |
//! | `ema-family/base-lm-gptq` | text-generation | a 4-bit quantization of the base (packed U8, `quantization_config`) |
//! | `ema-family/small-lm` | text-generation | unrelated, same architecture, a quarter of the width |
//! | `ema-family/base-lm-vision` | image-classification | tagged as a finetune of the base, but another task |

use std::path::Path;

use serde_json::{Value, json};

use super::demo::{DType, Sample, card, gpt2_tensors, install};
use super::error::Result;
use super::store::RepoId;

/// The family's repo ids, in the order [`generate_family_hub`] returns them.
pub const FAMILY_REPOS: &[&str] = &[
    "ema-family/base-lm",
    "ema-family/base-lm-chat",
    "ema-family/base-lm-gptq",
    "ema-family/small-lm",
    "ema-family/base-lm-vision",
];

fn gpt2_config(n: u64, arch: &str, model_type: &str, quant: bool) -> Value {
    let mut c = json!({
        "architectures": [arch],
        "model_type": model_type,
        "vocab_size": 1024,
        "n_embd": n,
        "n_layer": 2,
        "n_head": (n / 32).max(1),
        "n_positions": 64,
        "torch_dtype": "bfloat16",
        "transformers_version": "4.46.0"
    });
    if quant {
        c["quantization_config"] =
            json!({"quant_method": "gptq", "bits": 4, "group_size": 128, "desc_act": false});
    }
    c
}

fn sample(
    repo: &'static str,
    task: &'static str,
    tags: &'static [&'static str],
    base_models: &'static [&'static str],
    dtype: DType,
    n: u64,
    (arch, model_type): (&str, &str),
) -> Sample {
    Sample {
        repo,
        pipeline_tag: task,
        library_name: "transformers",
        tags,
        base_models,
        dtype,
        tensors: gpt2_tensors(1024, n, 2, 64),
        shards: 1,
        config: gpt2_config(n, arch, model_type, dtype == DType::U8),
        tokenizer_config: json!({"tokenizer_class": "GPT2Tokenizer", "model_max_length": 64}),
        generation_config: None,
        card: String::new(),
    }
}

fn family() -> Vec<Sample> {
    const LM: (&str, &str) = ("GPT2LMHeadModel", "gpt2");
    let mut out = vec![
        sample(
            "ema-family/base-lm",
            "text-generation",
            &[
                "transformers",
                "safetensors",
                "gpt2",
                "text-generation",
                "ema-family",
            ],
            &[],
            DType::BF16,
            128,
            LM,
        ),
        sample(
            "ema-family/base-lm-chat",
            "text-generation",
            &[
                "transformers",
                "safetensors",
                "gpt2",
                "text-generation",
                "conversational",
                "ema-family",
                "base_model:ema-family/base-lm",
                "base_model:finetune:ema-family/base-lm",
            ],
            &["ema-family/base-lm"],
            DType::BF16,
            128,
            LM,
        ),
        sample(
            "ema-family/base-lm-gptq",
            "text-generation",
            &[
                "transformers",
                "safetensors",
                "gpt2",
                "text-generation",
                "4-bit",
                "gptq",
                "ema-family",
                "base_model:ema-family/base-lm",
                "base_model:quantized:ema-family/base-lm",
            ],
            &["ema-family/base-lm"],
            DType::U8,
            128,
            LM,
        ),
        sample(
            "ema-family/small-lm",
            "text-generation",
            &[
                "transformers",
                "safetensors",
                "gpt2",
                "text-generation",
                "ema-family",
            ],
            &[],
            DType::BF16,
            32,
            LM,
        ),
        sample(
            "ema-family/base-lm-vision",
            "image-classification",
            &[
                "transformers",
                "safetensors",
                "gpt2",
                "image-classification",
                "ema-family",
                "base_model:ema-family/base-lm",
                "base_model:finetune:ema-family/base-lm",
            ],
            &["ema-family/base-lm"],
            DType::BF16,
            128,
            ("GPT2ForImageClassification", "gpt2"),
        ),
    ];
    let what = [
        "The base of a small model family.",
        "A chat finetune of `ema-family/base-lm`.",
        "A 4-bit GPTQ quantization of `ema-family/base-lm` (packed integer weights).",
        "An unrelated small language model of the same architecture.",
        "An image classifier finetuned from `ema-family/base-lm`: another task.",
    ];
    for (s, w) in out.iter_mut().zip(what) {
        s.card = card(s, w);
    }
    out
}

/// Write the family into the ema store at `root` (created if needed); idempotent like the demo samples.
pub fn generate_family_hub(root: &Path) -> Result<Vec<RepoId>> {
    install(root, family())
}
