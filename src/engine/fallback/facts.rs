//! What the fallback score knows about a model: the hub's facts (kept in the sidecar), the model's own
//! `config.json` (architectures, model_type, quantization_config), and what both say about lineage and precision.

use std::path::Path;

use crate::engine::hub::ModelInfo as HubInfo;
use crate::engine::store::{ModelFacts, Quantization};

/// The hub's facts of a model info, without the local ones.
pub fn from_hub(info: &HubInfo) -> ModelFacts {
    ModelFacts {
        base_models: info.base_models.clone(),
        parameters_by_dtype: info.parameters_by_dtype.clone(),
        architectures: info.architectures.clone(),
        model_type: info.model_type.clone(),
        ..ModelFacts::default()
    }
}

/// `facts` with what the model folder's `config.json` says (unchanged when it is missing or unreadable).
pub fn with_local_config(mut facts: ModelFacts, model_dir: &Path) -> ModelFacts {
    let Some(cfg) = std::fs::read(model_dir.join("config.json"))
        .ok()
        .filter(|b| b.len() < 4 << 20)
        .and_then(|b| serde_json::from_slice::<serde_json::Value>(&b).ok())
    else {
        return facts;
    };
    if let Some(a) = cfg.get("architectures").and_then(|a| a.as_array()) {
        facts.architectures = a
            .iter()
            .filter_map(|x| x.as_str().map(str::to_string))
            .collect();
    }
    if let Some(t) = cfg.get("model_type").and_then(|t| t.as_str()) {
        facts.model_type = Some(t.to_string());
    }
    if let Some(q) = cfg.get("quantization_config").filter(|q| q.is_object()) {
        facts.quantization = Some(Quantization {
            method: q
                .get("quant_method")
                .and_then(|m| m.as_str())
                .map(str::to_string),
            bits: q
                .get("bits")
                .or_else(|| q.get("w_bit"))
                .and_then(|b| b.as_u64())
                .map(|b| b as u32)
                .or_else(|| {
                    let flag = |k: &str| q.get(k).and_then(|v| v.as_bool()) == Some(true);
                    if flag("load_in_4bit") {
                        Some(4)
                    } else if flag("load_in_8bit") {
                        Some(8)
                    } else {
                        None
                    }
                }),
        });
    }
    facts
}

/// How a model relates to another in the model tree (the hub's `base_model:<relation>:<repo>` tags).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Relation {
    Finetune,
    Quantized,
    Adapter,
    Merge,
    /// `base_model:<repo>` or the card's `base_model` without a relation.
    Derived,
}

impl Relation {
    pub fn as_str(&self) -> &'static str {
        match self {
            Relation::Finetune => "finetune",
            Relation::Quantized => "quantization",
            Relation::Adapter => "adapter",
            Relation::Merge => "merge",
            Relation::Derived => "derivative",
        }
    }
}

/// The parents a model names: from its tags (`base_model:finetune:org/x`, `base_model:org/x`) and its card's
/// `base_model`, each once, the tag's relation winning.
pub fn parents(tags: &[String], facts: &ModelFacts) -> Vec<(Relation, String)> {
    let mut out: Vec<(Relation, String)> = Vec::new();
    for t in tags {
        let Some(rest) = t.strip_prefix("base_model:") else {
            continue;
        };
        let (rel, repo) = match rest.split_once(':') {
            Some(("finetune", r)) => (Relation::Finetune, r),
            Some(("quantized", r)) => (Relation::Quantized, r),
            Some(("adapter", r)) => (Relation::Adapter, r),
            Some(("merge", r)) => (Relation::Merge, r),
            _ => (Relation::Derived, rest),
        };
        match out.iter_mut().find(|(_, r)| r == repo) {
            Some(e) if e.0 == Relation::Derived => e.0 = rel,
            Some(_) => {}
            None => out.push((rel, repo.to_string())),
        }
    }
    for b in &facts.base_models {
        if !out.iter().any(|(_, r)| r == b) {
            out.push((Relation::Derived, b.clone()));
        }
    }
    out
}

/// Bits per weight, when known: `quantization_config`'s bits, a relation `quantized` with packed integer dtypes
/// (4 when the parameter counts are only packed `I32`/`U8`/`I8`), else the widest float dtype of the weights.
pub fn precision_bits(facts: &ModelFacts, tags: &[String]) -> Option<u32> {
    if let Some(b) = facts.quantization.as_ref().and_then(|q| q.bits) {
        return Some(b);
    }
    let width = |d: &str| match d.to_ascii_uppercase().as_str() {
        "F64" => Some(64),
        "F32" => Some(32),
        "F16" | "BF16" => Some(16),
        "F8_E4M3" | "F8_E5M2" => Some(8),
        _ => None,
    };
    let float = facts
        .parameters_by_dtype
        .keys()
        .filter_map(|d| width(d))
        .max();
    let packed = facts
        .parameters_by_dtype
        .keys()
        .any(|d| matches!(d.to_ascii_uppercase().as_str(), "I32" | "U8" | "I8" | "U32"));
    let quant_tag = tags.iter().any(|t| {
        t.starts_with("base_model:quantized:") || t == "4-bit" || t == "gptq" || t == "awq"
    });
    if packed && (quant_tag || facts.quantization.is_some()) {
        return Some(4);
    }
    if facts.quantization.is_some() {
        return Some(4);
    }
    float
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lineage_from_tags_and_card() {
        let tags: Vec<String> = [
            "base_model:org/base",
            "base_model:finetune:org/base",
            "base_model:quantized:org/q",
            "text-generation",
        ]
        .map(String::from)
        .to_vec();
        let facts = ModelFacts {
            base_models: vec!["org/base".into(), "org/card".into()],
            ..ModelFacts::default()
        };
        assert_eq!(
            parents(&tags, &facts),
            vec![
                (Relation::Finetune, "org/base".to_string()),
                (Relation::Quantized, "org/q".to_string()),
                (Relation::Derived, "org/card".to_string()),
            ]
        );
    }

    #[test]
    fn local_config_and_precision() {
        let d = tempfile::tempdir().unwrap();
        std::fs::write(
            d.path().join("config.json"),
            r#"{"architectures": ["GPT2LMHeadModel"], "model_type": "gpt2",
                "quantization_config": {"quant_method": "gptq", "bits": 4}}"#,
        )
        .unwrap();
        let f = with_local_config(ModelFacts::default(), d.path());
        assert_eq!(f.architectures, vec!["GPT2LMHeadModel"]);
        assert_eq!(f.model_type.as_deref(), Some("gpt2"));
        assert_eq!(precision_bits(&f, &[]), Some(4));
        let mut bf = ModelFacts::default();
        bf.parameters_by_dtype.insert("BF16".into(), 10);
        assert_eq!(precision_bits(&bf, &[]), Some(16));
        assert_eq!(precision_bits(&ModelFacts::default(), &[]), None);
        // Unreadable config: facts unchanged.
        assert_eq!(with_local_config(bf.clone(), &d.path().join("nope")), bf);
    }
}
