//! systemd, asked where it runs: whether this machine runs it as its service manager (`/run/systemd/system`, the
//! test sd_booted(3) makes) and what `systemctl show` says of a unit (loaded or not, active or not). The wizard's
//! "Services stopped" / "Services started" steps ask it about the legacy unit and ema's own, and fall back to port
//! and process checks where systemd is absent. ema only reads here; it starts and stops nothing.

use std::io::Read;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::engine::error::{EmaError, Result};

/// The legacy service's unit name in the guide (`systemctl stop model-management-service`).
pub const DEFAULT_LEGACY_UNIT: &str = "model-management-service.service";
/// ema's own unit, as the Debian package installs it.
pub const DEFAULT_EMA_UNIT: &str = "enhanced-model-availability.service";

/// How long `systemctl` may take to answer.
const SYSTEMCTL_TIMEOUT: Duration = Duration::from_secs(10);

/// What systemd says of one unit.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnitState {
    pub unit: String,
    /// `loaded`, `not-found`, `masked`, …
    pub load_state: String,
    /// `active`, `inactive`, `failed`, `activating`, `deactivating`, `reloading`.
    pub active_state: String,
    /// `running`, `dead`, `exited`, …
    pub sub_state: String,
}

impl UnitState {
    /// The unit file exists (loaded or masked).
    pub fn exists(&self) -> bool {
        self.load_state != "not-found"
    }

    /// The service runs or is about to (or is still stopping).
    pub fn running(&self) -> bool {
        matches!(
            self.active_state.as_str(),
            "active" | "activating" | "reloading" | "deactivating" | "refreshing"
        )
    }

    /// `active (running)`.
    pub fn describe(&self) -> String {
        format!("{} ({})", self.active_state, self.sub_state)
    }
}

/// Does this machine run systemd as its service manager?
pub fn booted() -> bool {
    std::path::Path::new("/run/systemd/system").is_dir()
}

/// A unit name as systemctl takes it: `NAME` gets `.service` unless it names another unit type. Refused when it
/// holds characters no unit name has.
pub fn unit_name(raw: &str) -> Result<String> {
    let ok = !raw.is_empty()
        && raw.len() <= 255
        && !raw.starts_with('-')
        && raw
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || ":-_.\\@".contains(c));
    if !ok {
        return Err(EmaError::Config(format!(
            "{raw:?} is not a systemd unit name (letters, digits and :-_.\\@ only, not starting with -); give the \
             unit as `systemctl list-units --type=service` shows it"
        )));
    }
    let typed = [
        ".service", ".socket", ".target", ".scope", ".timer", ".mount",
    ]
    .iter()
    .any(|s| raw.ends_with(s));
    Ok(if typed {
        raw.to_string()
    } else {
        format!("{raw}.service")
    })
}

/// `systemctl show UNIT -p LoadState -p ActiveState -p SubState`, bounded by [`SYSTEMCTL_TIMEOUT`].
pub fn unit_state(unit: &str) -> Result<UnitState> {
    let unit = unit_name(unit)?;
    let mut child = Command::new("systemctl")
        .args([
            "show",
            &unit,
            "--property=LoadState",
            "--property=ActiveState",
            "--property=SubState",
        ])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| {
            EmaError::NotFound(format!(
                "cannot run systemctl ({e}); is systemd's systemctl installed on this machine?"
            ))
        })?;
    let deadline = Instant::now() + SYSTEMCTL_TIMEOUT;
    let status = loop {
        match child.try_wait() {
            Ok(Some(s)) => break s,
            Ok(None) if Instant::now() < deadline => std::thread::sleep(Duration::from_millis(20)),
            Ok(None) => {
                let _ = child.kill();
                let _ = child.wait();
                return Err(EmaError::Other(format!(
                    "systemctl show {unit} did not answer within {} s; is systemd responding \
                     (`systemctl is-system-running`)?",
                    SYSTEMCTL_TIMEOUT.as_secs()
                )));
            }
            Err(e) => return Err(EmaError::Other(format!("waiting for systemctl: {e}"))),
        }
    };
    let mut out = String::new();
    let mut err = String::new();
    if let Some(mut o) = child.stdout.take() {
        let _ = o.read_to_string(&mut out);
    }
    if let Some(mut e) = child.stderr.take() {
        let _ = e.read_to_string(&mut err);
    }
    if !status.success() {
        return Err(EmaError::Other(format!(
            "systemctl show {unit} failed ({status}): {}",
            err.trim()
        )));
    }
    parse_show(&unit, &out)
}

fn parse_show(unit: &str, text: &str) -> Result<UnitState> {
    let get = |k: &str| {
        text.lines()
            .find_map(|l| l.strip_prefix(k)?.strip_prefix('='))
            .map(str::to_string)
    };
    match (get("LoadState"), get("ActiveState"), get("SubState")) {
        (Some(load_state), Some(active_state), Some(sub_state)) => Ok(UnitState {
            unit: unit.to_string(),
            load_state,
            active_state,
            sub_state,
        }),
        _ => Err(EmaError::Other(format!(
            "systemctl show {unit} answered without LoadState/ActiveState/SubState: {:?}",
            text.trim()
        ))),
    }
}

/// What "Services stopped" / "Services started" learn from systemd about `unit`: its state, or a log line saying
/// why systemd was not asked (not running here, systemctl failing) — the steps then rely on ports and processes.
pub fn ask(unit: &str) -> std::result::Result<UnitState, String> {
    if !booted() {
        return Err(
            "systemd is not the service manager here (no /run/systemd/system): checked by ports and processes \
             instead"
                .into(),
        );
    }
    unit_state(unit).map_err(|e| format!("systemd could not be asked about {unit}: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unit_names_get_their_type_and_bad_ones_are_refused() {
        assert_eq!(
            unit_name("model-management-service").unwrap(),
            "model-management-service.service"
        );
        assert_eq!(unit_name("x@1.service").unwrap(), "x@1.service");
        assert_eq!(unit_name("web.socket").unwrap(), "web.socket");
        for bad in ["", "-x", "a b", "a;rm", "x/y"] {
            let e = unit_name(bad).unwrap_err().to_string();
            assert!(e.contains("not a systemd unit name"), "{bad}: {e}");
        }
    }

    #[test]
    fn systemctl_show_is_read() {
        let s = parse_show(
            "a.service",
            "LoadState=loaded\nActiveState=active\nSubState=running\n",
        )
        .unwrap();
        assert!(s.exists() && s.running());
        assert_eq!(s.describe(), "active (running)");
        let s = parse_show(
            "b.service",
            "LoadState=not-found\nActiveState=inactive\nSubState=dead\n",
        )
        .unwrap();
        assert!(!s.exists() && !s.running());
        assert!(parse_show("c.service", "garbage").is_err());
    }
}
