//! `ema generate-metadata`: metadata sidecars for the models that lack them, from the hub or from their bytes.

use super::args::GenerateMetadataArgs;
use super::common::{human_bytes, open_models, runtime};
use crate::cli::Ctx;
use crate::engine::config::hub_env::HubEnv;
use crate::engine::error::{Result, exit};
use crate::engine::hub::HubClient;
use crate::engine::integrity::generate::{self, GenerateAction, GenerateOptions};
use crate::engine::integrity::repair::HubMetadataSource;

pub fn generate_metadata(a: GenerateMetadataArgs, ctx: &Ctx) -> Result<i32> {
    let (loaded, dir, store) = open_models(ctx, a.models_dir.as_deref())?;
    let opts = GenerateOptions {
        force: a.force_regenerate,
        ..Default::default()
    };
    let env = HubEnv::from_env();
    let use_hub = !(a.offline || env.offline);
    let rt = runtime()?;
    let source = if use_hub {
        Some(HubMetadataSource::new(
            HubClient::new(&env, &loaded.config.downloads)?,
            rt.handle().clone(),
        ))
    } else {
        None
    };
    let (outcomes, err) = generate::generate_all(
        &store,
        &opts,
        source.as_deref().map(|s| s as &dyn generate::HubSource),
        a.ignore_errors,
    )?;
    let hub_note = match &source {
        None => "hub not asked (offline)".to_string(),
        Some(s) if s.unreachable() => format!(
            "hub {} unreachable: {}",
            env.endpoint,
            s.last_error().unwrap_or_default()
        ),
        Some(_) => format!("hub {}", env.endpoint),
    };
    let failed = outcomes
        .iter()
        .filter(|o| o.action == GenerateAction::Failed)
        .count();
    if ctx.out.json {
        ctx.out.json(&serde_json::json!({
            "models_directory": dir,
            "hub": hub_note,
            "models": outcomes,
            "failed": failed,
            "stopped_by_error": err.as_ref().map(|e| serde_json::json!({
                "kind": e.kind(), "message": e.to_string(), "exit_code": exit::FAILURE,
            })),
        }));
    } else {
        for o in &outcomes {
            match o.action {
                GenerateAction::Kept => println!(
                    "{}: kept existing metadata (use --force-regenerate to rewrite)",
                    o.model_id
                ),
                GenerateAction::Written => {
                    let how = match o.hashes_from {
                        Some("hub") => "hashes from the hub".to_string(),
                        Some("local_dir_records") => {
                            "hashes from the hub's etags recorded by the local_dir download"
                                .to_string()
                        }
                        _ => "local, not checked against the hub".to_string(),
                    };
                    println!(
                        "{}: wrote metadata for {} files ({}), {}",
                        o.model_id,
                        o.files,
                        human_bytes(o.total_size),
                        how
                    );
                    if !o.hub_files_not_present.is_empty() {
                        println!(
                            "  {} file(s) the hub lists are not here and not expected (a partial download): {}",
                            o.hub_files_not_present.len(),
                            o.hub_files_not_present.join(", ")
                        );
                    }
                    for d in &o.disagreements {
                        println!(
                            "  {}: local bytes differ from the published hash ({}…); `ema verify-all-models` \
                             will report it",
                            d.path,
                            &d.expected[..d.expected.len().min(12)]
                        );
                    }
                }
                GenerateAction::Failed => println!(
                    "{}: FAILED: {}",
                    o.model_id,
                    o.error.as_deref().unwrap_or("")
                ),
            }
        }
        let written = outcomes
            .iter()
            .filter(|o| o.action == GenerateAction::Written)
            .count();
        let kept = outcomes
            .iter()
            .filter(|o| o.action == GenerateAction::Kept)
            .count();
        eprintln!(
            "{written} written, {kept} kept, {failed} failed in {} ({hub_note})",
            dir.display()
        );
    }
    if let Some(e) = err {
        // The JSON document above already carries the error: report on stderr only, so stdout holds one document.
        eprintln!(
            "error: {e}\nstopped at the first failing model; pass --ignore-errors to continue past failures"
        );
        return Ok(exit::FAILURE);
    }
    // Only reached without a stopping error: either nothing failed, or --ignore-errors asked to report failures
    // (listed above and counted in `failed`) and carry on.
    Ok(exit::OK)
}
