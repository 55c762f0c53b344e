//! Performance advice: what ema measured (benchmark baselines, recorded download history, system and store facts,
//! the configuration in force) turned into recommendations, each with its evidence and the exact configuration
//! change. The rules live in [`rules`] as pure functions over [`Inputs`]; gathering the inputs on this machine is
//! [`facts`]; keeping a recommendation set and applying it to the configuration file is [`apply`]; finding a
//! running server to reload is [`server`].

pub mod apply;
pub mod facts;
pub mod rules;
pub mod server;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::engine::analytics::report::DownloadFigures;
use crate::engine::benchmark::Baseline;
use crate::engine::config::Config;

/// Facts about this machine.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct SystemFacts {
    /// CPU cores available to ema.
    pub cores: usize,
    pub memory_bytes: Option<u64>,
    /// Free space on the filesystem holding the models directory.
    pub disk_free_bytes: Option<u64>,
    pub disk_total_bytes: Option<u64>,
    /// The block device under the models directory spins (`/sys/block/*/queue/rotational`); None when unknown
    /// (tmpfs, overlay, a network filesystem).
    pub disk_rotational: Option<bool>,
    /// The device the models directory is on, e.g. `sda` (None when unknown).
    pub disk_device: Option<String>,
    /// The hub (`HF_ENDPOINT`) checked with a real request.
    pub hub: HubFacts,
}

/// Whether the hub answered.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct HubFacts {
    pub endpoint: Option<String>,
    /// None when not checked (offline mode).
    pub reachable: Option<bool>,
    pub detail: String,
}

/// Facts about the store.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct StoreFacts {
    pub models: usize,
    pub files: usize,
    /// Bytes in the models directory.
    pub bytes: u64,
}

/// Everything the rules read.
#[derive(Debug, Clone)]
pub struct Inputs {
    /// The configuration in force.
    pub config: Config,
    pub system: SystemFacts,
    pub store: StoreFacts,
    /// The benchmark baseline (`ema benchmark --save-baseline`), if any.
    pub baseline: Option<Baseline>,
    /// Recorded download history (usage analytics), None when recording is off or unreadable.
    pub downloads: Option<DownloadFigures>,
    /// Why `downloads` is None (shown as missing evidence).
    pub downloads_missing: Option<String>,
}

/// How a change takes effect on a running server.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Takes {
    /// A reload (SIGHUP) applies it.
    Live,
    /// The server reads it at start only.
    Restart,
    /// No configuration change: an action for the operator (`action` says what).
    Manual,
}

impl Takes {
    pub fn as_str(&self) -> &'static str {
        match self {
            Takes::Live => "live",
            Takes::Restart => "restart",
            Takes::Manual => "manual",
        }
    }
}

/// One recommendation.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Recommendation {
    /// Stable id (the rule's name).
    pub id: String,
    pub title: String,
    /// The figures it rests on, one per line.
    pub evidence: Vec<String>,
    /// The configuration key to change (`section.key`), None for a manual action.
    pub key: Option<String>,
    /// The value in force (defaults filled in).
    pub from: Option<Value>,
    pub to: Option<Value>,
    pub takes: Takes,
    /// What the operator does, for a manual recommendation.
    pub action: Option<String>,
}

impl Recommendation {
    /// `key: from → to`, or the action.
    pub fn change(&self) -> String {
        match (&self.key, &self.from, &self.to) {
            (Some(k), Some(f), Some(t)) => format!("{k}: {f} → {t}"),
            _ => self.action.clone().unwrap_or_default(),
        }
    }
}

/// A rule that made no recommendation, and why (missing evidence, or evidence saying the setting is right).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Note {
    pub rule: String,
    pub reason: String,
}

/// What the rules made of the inputs.
#[derive(Debug, Clone, Serialize)]
pub struct Analysis {
    pub recommendations: Vec<Recommendation>,
    pub notes: Vec<Note>,
}

/// Run every rule over `inputs`.
pub fn analyze(inputs: &Inputs) -> Analysis {
    let mut a = Analysis {
        recommendations: Vec::new(),
        notes: Vec::new(),
    };
    for rule in rules::RULES {
        match rule(inputs) {
            rules::Outcome::Recommend(r) => a.recommendations.push(*r),
            rules::Outcome::Note(rule, reason) => a.notes.push(Note {
                rule: rule.to_string(),
                reason,
            }),
        }
    }
    a
}
