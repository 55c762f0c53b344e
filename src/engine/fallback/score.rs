//! The fallback score: gates first (the task must match when both are known; the client's requirements), then
//! weighted terms whose contributions add up to the score (0..1). Pure functions over [`Profile`]s: no I/O.
//!
//! | term | weight | value (0..1) |
//! |---|---|---|
//! | task | 0.25 | 1 same task (a known mismatch never gets here: it is a gate); 0 when either task is unknown |
//! | lineage | 0.25 | 1 finetune of the requested model, 0.9 its quantization, 0.8 another derivative (adapter, merge, distillation); 0.85 the requested model's base; 0.7 a sibling (same base); else 0 |
//! | architecture | 0.15 | 1 same `architectures[0]`, 0.6 same `model_type` only, else 0 |
//! | parameters | 0.10 | smaller / larger parameter count (bytes on disk when a count is unknown) |
//! | tags | 0.05 | shared / all tags (Jaccard; model-tree tags left out) |
//! | healthy | 0.10 | 1 verified against the hub, 0.5 hashes recorded locally only, 0 not verified |
//! | recent use | 0.10 | successful uses / the most any candidate has (analytics); 0 with "no usage data" |

use std::borrow::Cow;
use std::collections::HashMap;

use serde::{Deserialize, Serialize};

use super::facts::{self, Relation};
use super::requirements::Requirements;
use crate::engine::store::{ModelFacts, ModelMetadata};

pub const W_TASK: f64 = 0.25;
pub const W_LINEAGE: f64 = 0.25;
pub const W_ARCH: f64 = 0.15;
pub const W_PARAMS: f64 = 0.10;
pub const W_TAGS: f64 = 0.05;
pub const W_HEALTHY: f64 = 0.10;
pub const W_USAGE: f64 = 0.10;

/// Recent successful use per model id, from analytics (empty until analytics feeds it).
#[derive(Debug, Clone, Default)]
pub struct UsageHints {
    pub successes: HashMap<String, u64>,
}

/// What the score knows about one model (requested or candidate).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Profile {
    pub id: String,
    pub task: Option<String>,
    pub library: Option<String>,
    pub tags: Vec<String>,
    pub parameters: Option<u64>,
    /// Bytes of its files (0 when unknown).
    pub size_bytes: u64,
    pub facts: ModelFacts,
}

impl Profile {
    pub fn from_meta(m: &ModelMetadata) -> Profile {
        Profile {
            id: m.repo_id.to_string(),
            task: m.pipeline_tag.clone(),
            library: m.library_name.clone(),
            tags: m.tags.clone(),
            parameters: m.parameters,
            size_bytes: m.total_size,
            facts: m.facts.clone(),
        }
    }

    /// The facts this profile lacks, for "what is unknown" in the output.
    pub fn unknown(&self) -> Vec<&'static str> {
        let mut u = Vec::new();
        if self.task.is_none() {
            u.push("task");
        }
        if self.parameters.is_none() {
            u.push("parameter count");
        }
        if self.facts.architectures.is_empty() && self.facts.model_type.is_none() {
            u.push("architecture");
        }
        if self.tags.is_empty() {
            u.push("tags");
        }
        if self.size_bytes == 0 {
            u.push("size");
        }
        u
    }

    fn bits(&self) -> Option<u32> {
        facts::precision_bits(&self.facts, &self.tags)
    }
}

/// One term of a score: its weight, its value and their product (the contribution), and why.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Term {
    pub term: Cow<'static, str>,
    pub weight: f64,
    pub value: f64,
    pub contribution: f64,
    pub detail: String,
}

fn term(name: &'static str, weight: f64, value: f64, detail: String) -> Term {
    let value = value.clamp(0.0, 1.0);
    Term {
        term: Cow::Borrowed(name),
        weight,
        value,
        contribution: weight * value,
        detail,
    }
}

/// Why a candidate is not offered, or `Ok` when it passes the gates (task, requirements).
pub fn gate(req: &Profile, c: &Profile, r: &Requirements) -> Result<(), String> {
    let want_task = r.task.as_deref().or(req.task.as_deref());
    if let (Some(w), Some(t)) = (want_task, c.task.as_deref())
        && w != t
    {
        return Err(format!("task {t}, not {w}"));
    }
    if r.task.is_some() && c.task.is_none() {
        return Err("task unknown, and the request requires one".into());
    }
    if let Some(lib) = &r.library
        && c.library.as_deref() != Some(lib.as_str())
    {
        return Err(format!(
            "library {}, not {lib}",
            c.library.as_deref().unwrap_or("unknown")
        ));
    }
    if let Some(gb) = r.max_size_gb
        && c.size_bytes as f64 > gb * 1e9
    {
        return Err(format!(
            "{:.2} GB on disk, more than max_size_gb={gb}",
            c.size_bytes as f64 / 1e9
        ));
    }
    if let Some(q) = r.quality {
        let (min_ratio, min_bits_share) = q.limits();
        if let (Some(rp), Some(cp)) = (req.parameters, c.parameters)
            && rp > 0
            && cp < rp
            && (cp as f64 / rp as f64) < min_ratio
        {
            return Err(format!(
                "{:.0}% of the requested parameters; quality={} needs at least {:.0}%",
                100.0 * cp as f64 / rp as f64,
                q.as_str(),
                100.0 * min_ratio
            ));
        }
        if let (Some(rb), Some(cb)) = (req.bits(), c.bits())
            && (cb as f64) < rb as f64 * min_bits_share
        {
            return Err(format!(
                "{cb}-bit weights for a {rb}-bit request; quality={} refuses it",
                q.as_str()
            ));
        }
    }
    Ok(())
}

/// How healthy a candidate is proven to be: the value of the `healthy` term and why.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Proof {
    Verified,
    LocalOnly,
    Unverified,
}

/// The score of candidate `c` for request `req`: the terms in table order; the score is their sum.
pub fn score(
    req: &Profile,
    c: &Profile,
    proof: Proof,
    usage: &UsageHints,
    max_uses: u64,
) -> (f64, Vec<Term>) {
    let mut terms = Vec::with_capacity(7);
    terms.push(match (req.task.as_deref(), c.task.as_deref()) {
        (Some(a), Some(b)) if a == b => term("task", W_TASK, 1.0, format!("same task ({a})")),
        _ => term("task", W_TASK, 0.0, "task unknown".into()),
    });
    let (lv, ld) = lineage(req, c);
    terms.push(term("lineage", W_LINEAGE, lv, ld));
    terms.push(architecture(req, c));
    terms.push(match (params_or_size(req), params_or_size(c)) {
        (Some((a, what)), Some((b, _))) if a > 0 && b > 0 => term(
            "parameters",
            W_PARAMS,
            a.min(b) as f64 / a.max(b) as f64,
            format!("{} vs {} {what} requested", human_count(b), human_count(a)),
        ),
        _ => term("parameters", W_PARAMS, 0.0, "size unknown".into()),
    });
    terms.push(tags(req, c));
    terms.push(match proof {
        Proof::Verified => term("healthy", W_HEALTHY, 1.0, "verified healthy".into()),
        Proof::LocalOnly => term(
            "healthy",
            W_HEALTHY,
            0.5,
            "hashes recorded locally only".into(),
        ),
        Proof::Unverified => term("healthy", W_HEALTHY, 0.0, "not verified".into()),
    });
    let uses = usage.successes.get(&c.id).copied().unwrap_or(0);
    terms.push(if usage.successes.is_empty() || max_uses == 0 {
        term("recent use", W_USAGE, 0.0, "no usage data".into())
    } else {
        term(
            "recent use",
            W_USAGE,
            uses as f64 / max_uses as f64,
            format!("{uses} successful use(s) recently"),
        )
    });
    let s = terms.iter().map(|t| t.contribution).sum::<f64>();
    (s.clamp(0.0, 1.0), terms)
}

fn lineage(req: &Profile, c: &Profile) -> (f64, String) {
    let cp = facts::parents(&c.tags, &c.facts);
    if let Some((rel, _)) = cp.iter().find(|(_, p)| *p == req.id) {
        let v = match rel {
            Relation::Finetune => 1.0,
            Relation::Quantized => 0.9,
            _ => 0.8,
        };
        return (v, format!("a {} of {}", rel.as_str(), req.id));
    }
    let rp = facts::parents(&req.tags, &req.facts);
    if rp.iter().any(|(_, p)| *p == c.id) {
        return (0.85, format!("the base model of {}", req.id));
    }
    if let Some((_, base)) = cp.iter().find(|(_, p)| rp.iter().any(|(_, q)| q == p)) {
        return (0.7, format!("same base ({base})"));
    }
    if rp.is_empty() && req.tags.is_empty() && req.facts.base_models.is_empty() {
        return (0.0, "lineage unknown".into());
    }
    (0.0, "not related in the model tree".into())
}

fn architecture(req: &Profile, c: &Profile) -> Term {
    let (ra, ca) = (
        req.facts.architectures.first(),
        c.facts.architectures.first(),
    );
    if let (Some(a), Some(b)) = (ra, ca)
        && a == b
    {
        return term(
            "architecture",
            W_ARCH,
            1.0,
            format!("same architecture ({a})"),
        );
    }
    match (
        req.facts.model_type.as_deref(),
        c.facts.model_type.as_deref(),
    ) {
        (Some(a), Some(b)) if a == b => term(
            "architecture",
            W_ARCH,
            0.6,
            format!("same model_type ({a})"),
        ),
        (Some(_), Some(b)) => term(
            "architecture",
            W_ARCH,
            0.0,
            format!("other model_type ({b})"),
        ),
        _ if ra.is_some() && ca.is_some() => term(
            "architecture",
            W_ARCH,
            0.0,
            format!("other architecture ({})", ca.map_or("", |s| s)),
        ),
        _ => term("architecture", W_ARCH, 0.0, "architecture unknown".into()),
    }
}

fn params_or_size(p: &Profile) -> Option<(u64, &'static str)> {
    match (p.parameters, p.size_bytes) {
        (Some(n), _) if n > 0 => Some((n, "parameters")),
        (_, b) if b > 0 => Some((b, "bytes")),
        _ => None,
    }
}

fn tags(req: &Profile, c: &Profile) -> Term {
    let keep = |t: &&String| !t.starts_with("base_model:");
    let a: std::collections::BTreeSet<&String> = req.tags.iter().filter(keep).collect();
    let b: std::collections::BTreeSet<&String> = c.tags.iter().filter(keep).collect();
    if a.is_empty() || b.is_empty() {
        return term("tags", W_TAGS, 0.0, "tags unknown".into());
    }
    let shared = a.intersection(&b).count();
    let all = a.union(&b).count();
    term(
        "tags",
        W_TAGS,
        shared as f64 / all as f64,
        format!("{shared} of {all} tags shared"),
    )
}

fn human_count(n: u64) -> String {
    match n {
        0..1_000 => n.to_string(),
        1_000..1_000_000 => format!("{:.1}K", n as f64 / 1e3),
        1_000_000..1_000_000_000 => format!("{:.1}M", n as f64 / 1e6),
        _ => format!("{:.1}B", n as f64 / 1e9),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::fallback::requirements::Quality;

    fn p(id: &str, task: &str, params: u64, tags: &[&str]) -> Profile {
        Profile {
            id: id.into(),
            task: Some(task.into()),
            library: Some("transformers".into()),
            tags: tags.iter().map(|t| t.to_string()).collect(),
            parameters: Some(params),
            size_bytes: params * 2,
            facts: ModelFacts {
                architectures: vec!["LlamaForCausalLM".into()],
                model_type: Some("llama".into()),
                parameters_by_dtype: [("BF16".to_string(), params)].into(),
                ..ModelFacts::default()
            },
        }
    }

    #[test]
    fn contributions_add_up_and_stay_in_range() {
        let req = p(
            "org/base",
            "text-generation",
            8_000,
            &["llama", "text-generation"],
        );
        let ft = p(
            "org/chat",
            "text-generation",
            8_000,
            &["llama", "base_model:finetune:org/base"],
        );
        let mut usage = UsageHints::default();
        usage.successes.insert("org/chat".into(), 3);
        for (proof, u, max) in [
            (Proof::Verified, &usage, 3),
            (Proof::LocalOnly, &UsageHints::default(), 0),
        ] {
            let (s, terms) = score(&req, &ft, proof, u, max);
            let sum: f64 = terms.iter().map(|t| t.contribution).sum();
            assert!(
                (s - sum).abs() < 1e-12 && (0.0..=1.0).contains(&s),
                "{s} {sum}"
            );
            assert_eq!(terms.len(), 7);
            assert!((terms.iter().map(|t| t.weight).sum::<f64>() - 1.0).abs() < 1e-12);
        }
        let (s, terms) = score(&req, &ft, Proof::Verified, &usage, 3);
        assert!((s - 1.0).abs() < 0.03, "{s}: {terms:?}");
        assert_eq!(terms[1].detail, "a finetune of org/base");
        let (_, t) = score(&req, &ft, Proof::Verified, &UsageHints::default(), 0);
        assert_eq!(t[6].detail, "no usage data");
        assert_eq!(t[6].contribution, 0.0);
    }

    #[test]
    fn task_mismatch_and_quality_are_gates() {
        let req = p("org/base", "text-generation", 8_000, &[]);
        let img = p("org/img", "image-classification", 8_000, &[]);
        assert!(
            gate(&req, &img, &Requirements::default())
                .unwrap_err()
                .contains("task image-classification")
        );
        let mut q4 = p(
            "org/q4",
            "text-generation",
            8_000,
            &["base_model:quantized:org/base"],
        );
        q4.facts.parameters_by_dtype = [("U8".to_string(), 4_000)].into();
        let high = Requirements {
            quality: Some(Quality::High),
            ..Requirements::default()
        };
        assert!(
            gate(&req, &q4, &high)
                .unwrap_err()
                .contains("4-bit weights for a 16-bit request")
        );
        let low = Requirements {
            quality: Some(Quality::Low),
            ..Requirements::default()
        };
        assert!(gate(&req, &q4, &low).is_ok());
        let small = p("org/small", "text-generation", 1_000, &[]);
        assert!(
            gate(
                &req,
                &small,
                &Requirements {
                    quality: Some(Quality::Medium),
                    ..Requirements::default()
                }
            )
            .is_err()
        );
        let tiny_disk = Requirements {
            max_size_gb: Some(1e-6),
            ..Requirements::default()
        };
        assert!(
            gate(&req, &small, &tiny_disk)
                .unwrap_err()
                .contains("max_size_gb")
        );
    }
}
