//! What the console asks for. Key handling turns keys into `Action`s; the runtime executes the ones that need the
//! engine (through the [`super::bridge::ConsoleBackend`]) and feeds the results back.

/// One request from the operator.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// Download (or resume) a model into the store.
    Download(String),
    /// Hash every file of a model against its metadata.
    Verify(String),
    /// Re-fetch the files of a model that fail verification.
    Repair(String),
    /// Delete a model from the store. Keys produce `confirmed: false`, which opens a dialog; only the dialog's
    /// "yes" produces `confirmed: true`, the only form the runtime executes.
    Delete {
        model_id: String,
        confirmed: bool,
    },
    Pause(String),
    Resume(String),
    /// Cancel a download (asks first, like delete).
    Cancel {
        model_id: String,
        confirmed: bool,
    },
    /// Show alternatives for an unavailable model (opens the Fallback pane on it).
    SuggestFallback(String),
    /// Queue the requested model's download (the Fallback pane's `d`; `fallback.queue_requests_enabled`).
    QueueRequest(String),
    /// Use an alternative instead of the requested model.
    UseFallback {
        requested: String,
        alternative: String,
    },
    /// The operator took a substitute (recorded in the usage analytics).
    FallbackTaken {
        requested: String,
        alternative: String,
    },
    /// Acknowledge one alert (by id).
    Acknowledge(String),
    AcknowledgeAll,
    /// Run an automatic migration step (`confirmed` as for delete when the step asks first).
    MigrationRun {
        step: String,
        confirmed: bool,
    },
    /// The operator skips a manual step, saying why.
    MigrationSkip {
        step: String,
        note: String,
    },
    /// The operator confirms a manual step is done, saying what was done.
    MigrationMarkDone {
        step: String,
        note: String,
    },
    /// Put a failed, blocked, skipped or done step back and run it again (automatic) or back to pending (manual).
    MigrationRetry(String),
    /// Add a repo id to the watch list (`storage.wanted_models` in the configuration file in force).
    Watch(String),
    /// Apply one saved performance recommendation (by id) to the configuration file in force.
    ApplyRecommendation(String),
    /// Rescan the store.
    Refresh,
    /// Leave the console (`confirmed: false` asks first when downloads are active).
    Quit {
        confirmed: bool,
    },
}

impl Action {
    /// The question a confirmation dialog asks before this action runs, if it needs one.
    pub fn confirmation(&self) -> Option<String> {
        match self {
            Action::Delete {
                model_id,
                confirmed: false,
            } => Some(format!(
                "Delete {model_id} from the store? Its files and metadata are removed from disk."
            )),
            Action::Cancel {
                model_id,
                confirmed: false,
            } => Some(format!(
                "Cancel the download of {model_id}? Its partial data is deleted."
            )),
            Action::MigrationRun {
                step,
                confirmed: false,
            } => {
                let def = crate::engine::migration::step_def(step)?;
                def.confirm
                    .map(|why| format!("\"{}\": {why} Continue?", def.title))
            }
            Action::Quit { confirmed: false } => None,
            _ => None,
        }
    }

    /// The same action, confirmed.
    pub fn confirmed(self) -> Action {
        match self {
            Action::Delete { model_id, .. } => Action::Delete {
                model_id,
                confirmed: true,
            },
            Action::Cancel { model_id, .. } => Action::Cancel {
                model_id,
                confirmed: true,
            },
            Action::MigrationRun { step, .. } => Action::MigrationRun {
                step,
                confirmed: true,
            },
            Action::Quit { .. } => Action::Quit { confirmed: true },
            other => other,
        }
    }
}
