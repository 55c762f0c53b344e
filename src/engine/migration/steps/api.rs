//! The service step: the API port from the configuration accepts connections.

use crate::engine::migration::context::{MigrationContext, StepOutcome};

/// Connect to `api.host:api.port`.
pub(super) fn api_responding(ctx: &MigrationContext) -> StepOutcome {
    use std::net::ToSocketAddrs;
    let api = &ctx.loaded.config.api;
    let target = format!("{}:{}", api.host, api.port);
    let addrs: Vec<_> = match target.to_socket_addrs() {
        Ok(a) => a.collect(),
        Err(e) => {
            return StepOutcome::fail(
                format!("cannot resolve {target}: {e}; check api.host"),
                vec![],
            );
        }
    };
    for a in &addrs {
        if std::net::TcpStream::connect_timeout(a, std::time::Duration::from_secs(2)).is_ok() {
            return StepOutcome::ok(format!("{a} accepts connections"), vec![]);
        }
    }
    StepOutcome::fail(
        format!("nothing listens on {target}; start the server (`ema serve`) and retry"),
        vec![],
    )
}
