//! The migration wizard's "Services stopped" / "Services started" steps against a real systemd: systemd booted as
//! PID 1 of its own PID, mount, network and UTS namespaces, with a private `/run` (so `/run/systemd/system` exists
//! only in there), private `/tmp` and `/var/tmp`, and a target of its own that pulls in two test units and nothing
//! else — no sysinit, no tmpfiles, no host services. The legacy service's unit and ema's own unit (`ema start`,
//! `Type=notify`) run in it under names given to `ema migrate plan`; the steps are run inside the namespaces with
//! `nsenter`, before and after `systemctl stop`.
//!
//! Needs root, `unshare`, `nsenter` and `/lib/systemd/systemd`; without them the test says why and does nothing.

mod support;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

use serde_json::Value;
use support::cli::{EMA, Run, ema_isolated, isolated_env, run};
use support::http::free_port;
use support::wait::wait_for;

const SYSTEMD: &str = "/lib/systemd/systemd";
const LEGACY_UNIT: &str = "legacy-model-api";
const EMA_UNIT: &str = "ema-under-test";

/// Why this machine cannot boot a systemd of the test's own, if it cannot.
fn cannot_boot() -> Option<String> {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        return Some("not root (unshare of PID and mount namespaces needs it)".into());
    }
    if !Path::new(SYSTEMD).is_file() {
        return Some(format!("{SYSTEMD} is not installed"));
    }
    for tool in ["unshare", "nsenter", "ip", "systemctl"] {
        let found = Command::new("sh")
            .args(["-c", &format!("command -v {tool}")])
            .stdout(Stdio::null())
            .status()
            .is_ok_and(|s| s.success());
        if !found {
            return Some(format!("{tool} is not installed"));
        }
    }
    None
}

/// Shell commands giving the namespaces a private `/tmp` and `/var/tmp`, with the directories in `expose` that lie
/// under them (a checkout in /tmp: the binary, the test's files) bound back in at their paths.
fn private_tmp(expose: &[&Path]) -> String {
    let mut sh = String::new();
    for dir in ["/tmp", "/var/tmp"] {
        let keep = format!("/run/ema-host{}", dir.replace('/', "-"));
        sh += &format!("mkdir -p {keep}; mount --bind {dir} {keep}; mount -t tmpfs tmpfs {dir}; ");
        for p in expose {
            if let Ok(rel) = p.strip_prefix(dir) {
                let p = p.display();
                sh += &format!(
                    "mkdir -p '{p}'; mount --bind '{keep}/{}' '{p}'; ",
                    rel.display()
                );
            }
        }
    }
    sh
}

/// A systemd of the test's own, killed (and its namespaces with it) when dropped.
struct Booted {
    unshare: Child,
    pid: u32,
    log: PathBuf,
}

impl Booted {
    /// Boot systemd in new namespaces with `units` (a directory of unit files holding `ema-test.target`).
    fn start(units: &Path, log: &Path, expose: &[&Path]) -> Result<Booted, String> {
        let script = format!(
            "set -e; mount -t tmpfs tmpfs /run; mkdir -p /run/systemd/system; cp '{units}'/* /run/systemd/system/; \
             {private_tmp} ip link set lo up; \
             exec {SYSTEMD} --system --unit=ema-test.target --log-target=console --log-level=info",
            units = units.display(),
            private_tmp = private_tmp(expose),
        );
        let out = std::fs::File::create(log).map_err(|e| e.to_string())?;
        let mut unshare = Command::new("unshare")
            .args([
                "--fork",
                "--pid",
                "--mount",
                "--mount-proc",
                "--net",
                "--uts",
                "--propagation",
                "private",
                "sh",
                "-c",
                &script,
            ])
            .env("container", "ema-test")
            .stdin(Stdio::null())
            .stdout(out.try_clone().map_err(|e| e.to_string())?)
            .stderr(out)
            .spawn()
            .map_err(|e| format!("cannot run unshare: {e}"))?;
        // systemd is the child unshare forked (PID 1 inside).
        let children = format!("/proc/{0}/task/{0}/children", unshare.id());
        let mut pid = None;
        wait_for(10, || {
            pid = std::fs::read_to_string(&children)
                .ok()
                .and_then(|s| s.split_whitespace().next()?.parse().ok());
            pid.is_some()
        });
        let Some(pid) = pid else {
            let _ = unshare.kill();
            let _ = unshare.wait();
            return Err(format!(
                "unshare started no child: {}",
                std::fs::read_to_string(log).unwrap_or_default()
            ));
        };
        let booted = Booted {
            unshare,
            pid,
            log: log.to_path_buf(),
        };
        let up = wait_for(60, || {
            booted
                .inside(&["systemctl", "is-active", "ema-test.target"])
                .stdout
                .trim()
                == "active"
        });
        if !up {
            return Err(format!(
                "systemd did not reach ema-test.target within 60 s; its log:\n{}",
                booted.log()
            ));
        }
        Ok(booted)
    }

    /// A command run inside the namespaces (systemd's `/run`, its loopback; its PID namespace, where systemd can
    /// tell who asks).
    fn cmd(&self, program: &str) -> Command {
        let mut c = Command::new("nsenter");
        c.args(["-t", &self.pid.to_string(), "-m", "-n", "-p", "--", program]);
        c
    }

    fn inside(&self, argv: &[&str]) -> Run {
        run(self.cmd(argv[0]).args(&argv[1..]))
    }

    /// `ema ARGS` inside, with the isolated operator environment of `d`, in `cwd`.
    fn ema(&self, d: &Path, cwd: &Path, args: &[&str]) -> Run {
        let mut c = self.cmd(EMA);
        c.current_dir(cwd)
            .args(args)
            .env_remove("EMA_CONFIG")
            .env_remove("HF_TOKEN")
            .env("HF_HUB_OFFLINE", "1")
            .env("NO_COLOR", "1");
        for (k, v) in isolated_env(d) {
            c.env(k, v);
        }
        run(&mut c)
    }

    /// What went wrong: the start script's output and systemd's view of the test units.
    fn log(&self) -> String {
        let status = self.inside(&[
            "systemctl",
            "--no-pager",
            "--full",
            "status",
            "ema-test.target",
            &format!("{LEGACY_UNIT}.service"),
            &format!("{EMA_UNIT}.service"),
        ]);
        format!(
            "{}\n{}{}",
            std::fs::read_to_string(&self.log).unwrap_or_default(),
            status.stdout,
            status.stderr
        )
    }
}

impl Drop for Booted {
    fn drop(&mut self) {
        // Killing PID 1 of the namespace kills every process in it; its mounts go with the last of them.
        // SAFETY: kill(2) on a pid this test started.
        unsafe {
            libc::kill(self.pid as i32, libc::SIGKILL);
        }
        let _ = self.unshare.kill();
        let _ = self.unshare.wait();
    }
}

fn write_units(units: &Path, d: &Path, cfg: &Path) {
    std::fs::create_dir_all(units).unwrap();
    let env: Vec<String> = isolated_env(d)
        .into_iter()
        .map(|(k, v)| format!("Environment={k}={}", v.display()))
        .collect();
    let files = [
        (
            "ema-test.target".to_string(),
            format!(
                "[Unit]\nDescription=ema's test target\nDefaultDependencies=no\n\
                 Wants={LEGACY_UNIT}.service {EMA_UNIT}.service\n"
            ),
        ),
        (
            format!("{LEGACY_UNIT}.service"),
            "[Unit]\nDescription=the legacy model service (stands in)\nDefaultDependencies=no\n\n\
             [Service]\nExecStart=/bin/sleep 600\nStandardOutput=null\nStandardError=null\n"
                .to_string(),
        ),
        (
            format!("{EMA_UNIT}.service"),
            format!(
                "[Unit]\nDescription=ema under test\nDefaultDependencies=no\n\n\
                 [Service]\nType=notify\nExecStart={EMA} --config {cfg} start\n{env}\n\
                 Environment=HF_HUB_OFFLINE=1\nEnvironment=NO_COLOR=1\nTimeoutStartSec=30\n\
                 StandardOutput=append:{log}\nStandardError=append:{log}\n",
                cfg = cfg.display(),
                env = env.join("\n"),
                log = d.join("ema-unit.log").display(),
            ),
        ),
    ];
    for (name, text) in files {
        std::fs::write(units.join(name), text).unwrap();
    }
}

#[test]
fn services_stopped_and_started_ask_systemd_about_the_named_units() {
    if let Some(why) = cannot_boot() {
        eprintln!("skipped: {why}");
        return;
    }
    // Under target/, not /tmp: the namespaces get a private /tmp.
    let t = tempfile::Builder::new()
        .prefix("systemd-")
        .tempdir_in(env!("CARGO_TARGET_TMPDIR"))
        .unwrap();
    let d = t.path();
    let r = ema_isolated(d, d, &["demo", "--legacy", "--dir", "install", "--json"]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    let root = PathBuf::from(r.json()["legacy_dir"].as_str().unwrap());
    let port = free_port();
    let cfg = support::server::write_config(d, serde_json::json!({"api": {"port": port}}));
    let cfg_s = cfg.to_str().unwrap();
    let r = ema_isolated(
        d,
        &root,
        &[
            "migrate",
            "plan",
            "--legacy-port",
            &free_port().to_string(),
            "--legacy-unit",
            LEGACY_UNIT,
            "--ema-unit",
            EMA_UNIT,
        ],
    );
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert!(
        r.stdout.contains(&format!(
            "systemd units: {LEGACY_UNIT}.service (legacy), {EMA_UNIT}.service (ema)"
        )),
        "{}",
        r.stdout
    );
    write_units(&d.join("units"), d, &cfg);
    let marker = tempfile::NamedTempFile::new().unwrap();
    let bin_dir = Path::new(EMA).parent().unwrap();
    let sd = match Booted::start(&d.join("units"), &d.join("systemd.log"), &[bin_dir, d]) {
        Ok(b) => b,
        Err(why) if why.contains("Operation not permitted") => {
            eprintln!("skipped: namespaces refused here: {why}");
            return;
        }
        Err(why) => panic!("{why}"),
    };
    let unit_up = wait_for(30, || {
        sd.inside(&["systemctl", "is-active", &format!("{EMA_UNIT}.service")])
            .stdout
            .trim()
            == "active"
    });
    assert!(
        unit_up,
        "ema's unit never became active:\n{}\n{}",
        sd.log(),
        std::fs::read_to_string(d.join("ema-unit.log")).unwrap_or_default()
    );

    // The legacy unit runs: "Services stopped" fails naming it and the command that stops it.
    // `ema migrate run STEP [--again] --json` inside, with the configuration naming the server's address: the
    // step's record, after checking the exit code.
    let run_step = |step: &str, again: bool, code: i32| {
        let mut args = vec!["--config", cfg_s, "migrate", "run", step, "--json"];
        if again {
            args.push("--again");
        }
        let r = sd.ema(d, &root, &args);
        assert_eq!(r.code, code, "{}{}", r.stdout, r.stderr);
        serde_json::from_str::<Value>(&r.stdout)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {}\nstderr: {}", r.stdout, r.stderr))
    };

    let v = run_step("services_stopped", false, 1);
    assert_eq!(v["state"], "failed", "{v}");
    let details = v["details"].as_str().unwrap();
    assert!(
        details.contains(&format!("{LEGACY_UNIT}.service is active (running)"))
            && details.contains(&format!("`systemctl stop {LEGACY_UNIT}.service`")),
        "{details}"
    );

    // ema's unit runs and its server answers: "Services started" passes, saying so.
    let v = run_step("services_started", false, 0);
    assert_eq!(v["state"], "done", "{v}");
    assert!(
        v["details"].as_str().unwrap().contains("under systemd")
            && v["log"]
                .to_string()
                .contains(&format!("systemd: {EMA_UNIT}.service is active (running)")),
        "{v}"
    );

    // The operator stops the legacy unit: the step passes and logs what systemd said.
    let r = sd.inside(&["systemctl", "stop", &format!("{LEGACY_UNIT}.service")]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    let v = run_step("services_stopped", false, 0);
    assert_eq!(v["state"], "done", "{v}");
    assert!(
        v["log"].to_string().contains(&format!(
            "systemd: {LEGACY_UNIT}.service is inactive (dead)"
        )),
        "{v}"
    );

    // ema's unit stopped: "Services started" fails naming `systemctl start`.
    let r = sd.inside(&["systemctl", "stop", &format!("{EMA_UNIT}.service")]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    let v = run_step("services_started", true, 1);
    assert_eq!(v["state"], "failed", "{v}");
    assert!(
        v["details"]
            .as_str()
            .unwrap()
            .contains(&format!("`systemctl start {EMA_UNIT}.service`")),
        "{v}"
    );
    // ema stopped gracefully under systemd (SIGTERM → STOPPING=1, exit 0): no failed state.
    let r = sd.inside(&[
        "systemctl",
        "show",
        "-p",
        "Result",
        &format!("{EMA_UNIT}.service"),
    ]);
    assert_eq!(r.stdout.trim(), "Result=success", "{}", sd.log());
    drop(sd);
    // The host's /tmp was never the namespaces' /tmp.
    assert!(
        marker.path().is_file(),
        "the host's /tmp lost {}",
        marker.path().display()
    );
}
