//! Intelligent fallback: when a requested model is missing, the best substitutes really on disk, with the reasons.
//! Operator rules first ([`rules`]), then the transparent score ([`score`]) over the store's sidecars ([`index`]),
//! the client's requirements ([`requirements`]), and — only when nothing real qualifies — one explicit mock.
//! [`suggest`] is the one call every face uses; it publishes `ModelRequested`, `FallbackOffered` and `MockServed`.

pub mod facts;
pub mod index;
pub mod lookup;
pub mod requirements;
pub mod rules;
pub mod score;
pub mod worker;

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use crate::engine::config::Config;
use crate::engine::download::DownloadManager;
use crate::engine::download::queue::{Queue, QueueState};
use crate::engine::error::{EmaError, Result};
use crate::engine::events::{Availability, Event, EventBus};
use crate::engine::inventory;
use crate::engine::store::{RepoId, Store, now_rfc3339};

pub use lookup::Source;
pub use requirements::{Quality, Requirements};
pub use score::{Profile, Term, UsageHints};

/// At most this many suggestions are returned.
pub const MAX_SUGGESTIONS: usize = 20;
/// At most this many refusals and below-threshold candidates are shown (the rest are counted).
const MAX_EXPLAINED: usize = 10;

/// Which face asked (recorded in the `ModelRequested` event).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Face {
    Cli,
    Console,
    Server,
}

impl Face {
    pub fn as_str(self) -> &'static str {
        match self {
            Face::Cli => "cli",
            Face::Console => "console",
            Face::Server => "server",
        }
    }
}

/// What the engine needs for one call (the facade builds it).
pub struct Context<'a> {
    pub config: &'a Config,
    pub store: &'a Store,
    pub downloads: &'a DownloadManager,
    pub bus: &'a EventBus,
    pub index: &'a index::Index,
    /// `HF_HUB_OFFLINE`: the hub is not asked.
    pub offline: bool,
}

/// One request for a substitute.
#[derive(Debug, Clone)]
pub struct Request {
    pub model_id: RepoId,
    pub requirements: Requirements,
    pub face: Face,
    pub usage: UsageHints,
}

/// How a suggestion was found.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Via {
    Rule,
    Scored,
}

/// A real model on disk offered as a substitute.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Offer {
    pub model_id: String,
    pub score: f64,
    pub via: Via,
    /// The rule's pattern, for rule suggestions.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rule: Option<String>,
    pub path: PathBuf,
    pub task: Option<String>,
    pub size_bytes: u64,
    /// Every term with its weight and contribution; the contributions add up to `score`.
    pub reasons: Vec<Term>,
    pub mock: bool,
}

/// The explicit stand-in when nothing real qualifies (`fallback.mock_fallback_enabled`): no files, never ranked.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Mock {
    pub mock: bool,
    pub model_id: String,
    pub path: Option<PathBuf>,
    pub reason: String,
}

/// A model that was considered and not offered, and why.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Refusal {
    pub model_id: String,
    pub reason: String,
}

/// The answer to one request.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Report {
    pub requested: String,
    pub requested_status: Availability,
    pub facts_from: Source,
    /// Facts of the requested model that are unknown (the terms that use them score 0).
    pub unknown: Vec<String>,
    pub requested_facts: Profile,
    pub requirements: Requirements,
    pub threshold: f64,
    /// False when `fallback.intelligent_fallback_enabled` or `features.intelligent_fallback` is off (rules only).
    pub scoring: bool,
    pub suggestions: Vec<Offer>,
    /// Scored candidates under the threshold (the best few), not suggested.
    pub below_threshold: Vec<Offer>,
    pub refused: Vec<Refusal>,
    /// Models left out because their task differs from the requested one.
    pub task_mismatches: usize,
    pub mock: Option<Mock>,
}

impl Report {
    /// At least one real model qualifies.
    pub fn qualifies(&self) -> bool {
        !self.suggestions.is_empty()
    }
}

/// Is the scored fallback on?
pub fn scoring_enabled(c: &Config) -> bool {
    c.fallback.intelligent_fallback_enabled && c.features.intelligent_fallback
}

/// Available and not corrupted right now (every file present at its size; the last checks found no damage)?
fn on_disk(store: &Store, id: &str) -> std::result::Result<PathBuf, String> {
    let Ok(repo) = RepoId::parse(id) else {
        return Err("not a valid repo id".into());
    };
    let row = inventory::inspect(store, &repo, false);
    match row.availability {
        Availability::Available => Ok(store.model_dir(&repo)),
        a => Err(format!("{} in the store", a.as_str())),
    }
}

/// Rank substitutes for `req` (see the module doc); publishes the request, the first offer and a mock.
pub async fn suggest(ctx: &Context<'_>, req: &Request) -> Result<Report> {
    let cfg = ctx.config;
    let threshold = cfg.fallback.suggestion_threshold;
    let scoring = scoring_enabled(cfg);
    let (requested, source) = lookup::requested(
        ctx.store,
        ctx.downloads,
        &req.model_id,
        !ctx.offline,
        &cfg.storage.wanted_models,
    )
    .await;
    let status = inventory::inspect(ctx.store, &req.model_id, false).availability;
    ctx.bus.emit(Event::ModelRequested {
        model_id: req.model_id.to_string(),
        face: req.face.as_str().to_string(),
        available: status == Availability::Available,
    });
    let entries = ctx.index.entries(ctx.store);
    let mut suggestions: Vec<Offer> = Vec::new();
    let mut refused: Vec<Refusal> = Vec::new();
    let mut task_mismatches = 0usize;

    // Operator rules first, in their order.
    if let Some(rule) = cfg.fallback.rules.matching(req.model_id.as_str()) {
        for (i, sub) in rule.fallbacks.iter().enumerate() {
            if sub == req.model_id.as_str() {
                continue;
            }
            let refuse = |reason: String| Refusal {
                model_id: sub.clone(),
                reason: format!("rule {:?} #{}: {reason}", rule.pattern, i + 1),
            };
            let Some(e) = entries.iter().find(|e| &e.profile.id == sub) else {
                refused.push(refuse("not in the store".into()));
                continue;
            };
            if e.corrupted {
                refused.push(refuse("corrupted (last check)".into()));
                continue;
            }
            if let Err(why) = score::gate(&requested, &e.profile, &req.requirements) {
                refused.push(refuse(why));
                continue;
            }
            match on_disk(ctx.store, sub) {
                Ok(path) => suggestions.push(Offer {
                    model_id: sub.clone(),
                    score: 1.0,
                    via: Via::Rule,
                    rule: Some(rule.pattern.clone()),
                    path,
                    task: e.profile.task.clone(),
                    size_bytes: e.profile.size_bytes,
                    reasons: vec![Term {
                        term: "rule".into(),
                        weight: 1.0,
                        value: 1.0,
                        contribution: 1.0,
                        detail: format!(
                            "operator rule fallback.rules {:?}, choice {} of {}",
                            rule.pattern,
                            i + 1,
                            rule.fallbacks.len()
                        ),
                    }],
                    mock: false,
                }),
                Err(why) => refused.push(refuse(why)),
            }
        }
    }

    let mut below = Vec::new();
    if scoring {
        let max_uses = req.usage.successes.values().copied().max().unwrap_or(0);
        let mut scored: Vec<(f64, Vec<Term>, &index::Entry)> = Vec::new();
        for e in entries.iter() {
            let id = e.profile.id.as_str();
            if id == req.model_id.as_str() || suggestions.iter().any(|s| s.model_id == id) {
                continue;
            }
            match score::gate(&requested, &e.profile, &req.requirements) {
                Ok(()) if e.corrupted => refused.push(Refusal {
                    model_id: id.to_string(),
                    reason: "corrupted (last check)".into(),
                }),
                Ok(()) => {
                    let (s, terms) =
                        score::score(&requested, &e.profile, e.proof, &req.usage, max_uses);
                    scored.push((s, terms, e));
                }
                Err(why) if why.starts_with("task ") => task_mismatches += 1,
                Err(why) => refused.push(Refusal {
                    model_id: id.to_string(),
                    reason: why,
                }),
            }
        }
        scored.sort_by(|a, b| {
            b.0.partial_cmp(&a.0)
                .unwrap_or(std::cmp::Ordering::Equal)
                .then_with(|| a.2.profile.id.cmp(&b.2.profile.id))
        });
        for (s, terms, e) in scored {
            let offer = |path: PathBuf| Offer {
                model_id: e.profile.id.clone(),
                score: s,
                via: Via::Scored,
                rule: None,
                path,
                task: e.profile.task.clone(),
                size_bytes: e.profile.size_bytes,
                reasons: terms.clone(),
                mock: false,
            };
            if s < threshold {
                if below.len() < MAX_EXPLAINED {
                    below.push(offer(
                        ctx.store.root().join(e.profile.id.replace('/', "--")),
                    ));
                    continue;
                }
                break;
            }
            if suggestions.len() >= MAX_SUGGESTIONS {
                break;
            }
            match on_disk(ctx.store, &e.profile.id) {
                Ok(path) => suggestions.push(offer(path)),
                Err(why) => refused.push(Refusal {
                    model_id: e.profile.id.clone(),
                    reason: why,
                }),
            }
        }
    }
    refused.truncate(MAX_EXPLAINED);

    let mock = (suggestions.is_empty() && cfg.fallback.mock_fallback_enabled).then(|| Mock {
        mock: true,
        model_id: "mock".into(),
        path: None,
        reason: format!(
            "no real model qualifies for {} ({}); this is a mock stand-in with no weights \
             (fallback.mock_fallback_enabled)",
            req.model_id,
            if scoring {
                format!("no rule matched and no score reached {threshold}")
            } else {
                "scoring is off and no rule matched".to_string()
            }
        ),
    });
    if let Some(first) = suggestions.first() {
        ctx.bus.emit(Event::FallbackOffered {
            requested: req.model_id.to_string(),
            substitute: first.model_id.clone(),
            score: first.score,
            via: match first.via {
                Via::Rule => "rule".into(),
                Via::Scored => "scored".into(),
            },
        });
    } else if let Some(m) = &mock {
        ctx.bus.emit(Event::MockServed {
            requested: req.model_id.to_string(),
            reason: m.reason.clone(),
        });
    }
    Ok(Report {
        requested: req.model_id.to_string(),
        requested_status: status,
        facts_from: source,
        unknown: requested.unknown().into_iter().map(String::from).collect(),
        requested_facts: requested,
        requirements: req.requirements.clone(),
        threshold,
        scoring,
        suggestions,
        below_threshold: below,
        refused,
        task_mismatches,
        mock,
    })
}

/// Put `repo` in the persisted download queue (state `queued`, no process yet) so `ema downloads list` shows it;
/// the caller gets it going. Refused when `fallback.queue_requests_enabled` is off.
pub fn enqueue(config: &Config, store: &Store, repo: &RepoId) -> Result<()> {
    if !config.fallback.queue_requests_enabled {
        return Err(EmaError::Config(format!(
            "queueing requests is disabled (fallback.queue_requests_enabled is false); enable it with \
             `ema configure --set fallback.queue_requests_enabled=true`, or download directly with \
             `ema download {repo}`"
        )));
    }
    store.ensure()?;
    Queue::new(store).update(|v| {
        let now = now_rfc3339();
        if !v.iter().any(|e| &e.repo_id == repo) {
            v.push(crate::engine::download::queue::QueueEntry {
                repo_id: repo.clone(),
                revision: None,
                include: Vec::new(),
                exclude: Vec::new(),
                state: QueueState::Queued,
                control: Default::default(),
                pid: None,
                commit: None,
                bytes_done: 0,
                bytes_total: 0,
                files_done: 0,
                files_total: 0,
                rate_bytes_per_sec: 0.0,
                error: None,
                queued_at: now.clone(),
                updated_at: now,
            });
        }
    })
}
