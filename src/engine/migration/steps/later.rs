//! Steps whose engine work depends on parts of ema that are not built yet (the analytics import, monitoring): each says exactly what is missing — a blocked outcome, never a pass — except "Database migrated", which is honestly not applicable when there is no database or usage log.

use crate::engine::migration::context::{MigrationContext, StepOutcome};

/// Not applicable without `models.db` and `logs/usage.log`; otherwise the analytics import (issue 13) is needed.
pub(super) fn database_migrated(ctx: &MigrationContext) -> StepOutcome {
    let p = &ctx.plan;
    let found: Vec<String> = [&p.database, &p.usage_log]
        .into_iter()
        .flatten()
        .map(|x| x.display().to_string())
        .collect();
    if found.is_empty() {
        return StepOutcome::not_applicable(
            format!(
                "not applicable: {} has no models.db and no logs/usage.log",
                p.root.display()
            ),
            vec![],
        );
    }
    StepOutcome::blocked(
        format!(
            "needs the analytics import (issue 13: init-analytics-db, migrate-usage-data), not built yet; found {}",
            found.join(" and ")
        ),
        found
            .iter()
            .map(|f| format!("to import once the analytics import exists: {f}"))
            .collect(),
    )
}

pub(super) fn monitoring_configured() -> StepOutcome {
    StepOutcome::blocked(
        "not built yet: monitoring (`ema setup-monitoring --prometheus`, the metrics endpoint; issue 15) does not \
         exist yet",
        vec![],
    )
}
