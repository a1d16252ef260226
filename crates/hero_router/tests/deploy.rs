//! The files in `deploy/`: the systemd unit passes `systemd-analyze verify` (when systemd-analyze
//! is installed) and keeps its hardening; the command lines of both the unit and the hero_proc
//! definition parse with the real command line; their stop timeouts leave room for the
//! shutdown grace.

mod common;

use std::collections::BTreeMap;
use std::os::unix::fs::PermissionsExt as _;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use clap::Parser as _;
use hero_router::cli::{Cli, Command as Sub, parse_duration};

const INSTALLED_BINARY: &str = "%h/.cargo/bin/hero_router";

fn deploy(file: &str) -> String {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../deploy")
        .join(file);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn unit() -> String {
    deploy("systemd/hero_router.service")
}

/// `Key=Value` lines of one `[section]` (a repeated key keeps every value).
fn section(text: &str, name: &str) -> BTreeMap<String, Vec<String>> {
    let mut keys: BTreeMap<String, Vec<String>> = BTreeMap::new();
    let mut inside = false;
    for line in text.lines().map(str::trim) {
        if line.starts_with('[') {
            inside = line == format!("[{name}]");
        } else if inside && !line.starts_with('#') {
            if let Some((k, v)) = line.split_once('=') {
                keys.entry(k.trim().to_owned())
                    .or_default()
                    .push(v.trim().to_owned());
            }
        }
    }
    keys
}

fn one(keys: &BTreeMap<String, Vec<String>>, key: &str) -> String {
    match keys.get(key).map(Vec::as_slice) {
        Some([v]) => v.clone(),
        other => panic!("{key}: want exactly one value, got {other:?}"),
    }
}

/// The default `--shutdown-grace` of `serve`.
fn shutdown_grace() -> Duration {
    match Cli::try_parse_from(["hero_router", "serve"])
        .unwrap()
        .command
    {
        Sub::Serve(args) => args.shutdown_grace,
        other => panic!("{other:?}"),
    }
}

/// `hero_router ARGS…` parses as `serve`.
fn assert_serve(words: &[&str]) {
    let cli = Cli::try_parse_from(words).unwrap_or_else(|e| panic!("{words:?}: {e}"));
    assert!(
        matches!(cli.command, Sub::Serve(_)),
        "{words:?} is not serve"
    );
}

/// Runs `systemd-analyze --user verify` on `unit_text` saved as `hero_router.service`: its exit
/// status and the lines it printed about hero_router. `None` when systemd-analyze is missing.
fn verify(unit_text: &str) -> Option<(bool, Vec<String>)> {
    let dir = tempfile::tempdir().unwrap();
    let runtime = dir.path().join("runtime");
    std::fs::create_dir(&runtime).unwrap();
    std::fs::set_permissions(&runtime, std::fs::Permissions::from_mode(0o700)).unwrap();
    let path = dir.path().join("hero_router.service");
    std::fs::write(&path, unit_text).unwrap();
    let out = match Command::new("systemd-analyze")
        .args(["--user", "verify"])
        .arg(&path)
        .env("XDG_RUNTIME_DIR", &runtime)
        .output()
    {
        Ok(out) => out,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return None,
        Err(e) => panic!("systemd-analyze: {e}"),
    };
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let (ours, others): (Vec<&str>, Vec<&str>) =
        text.lines().partition(|l| l.contains("hero_router"));
    if !others.is_empty() {
        eprintln!("systemd-analyze, about other units: {others:#?}");
    }
    Some((
        out.status.success(),
        ours.into_iter().map(str::to_owned).collect(),
    ))
}

/// The unit with ExecStart pointing at the binary under test (verify checks it exists).
fn unit_for_test(bin: &Path) -> String {
    let text = unit();
    assert!(
        text.contains(&format!("ExecStart={INSTALLED_BINARY} serve")),
        "ExecStart runs the binary `make install` puts on PATH"
    );
    text.replace(INSTALLED_BINARY, bin.to_str().unwrap())
}

#[test]
fn systemd_analyze_verifies_the_unit() {
    let bin = PathBuf::from(env!("CARGO_BIN_EXE_hero_router"));
    let Some((ok, complaints)) = verify(&unit_for_test(&bin)) else {
        common::skip_unless_required(
            "HERO_REQUIRE_SYSTEMD",
            "systemd-analyze is not installed (apt-get install systemd); \
             the unit's content is still checked by unit_is_hardened",
        );
        return;
    };
    assert!(
        ok && complaints.is_empty(),
        "systemd-analyze verify: {complaints:#?}"
    );

    // Control: a mistake in the unit is reported, so silence above means something.
    let broken = unit_for_test(&bin).replace("[Service]\n", "[Service]\nNoSuchSetting=1\n");
    let (_, complaints) = verify(&broken).unwrap();
    assert!(
        complaints.iter().any(|l| l.contains("NoSuchSetting")),
        "a bad key went unnoticed: {complaints:#?}"
    );
    let missing = unit_for_test(Path::new("/nonexistent/hero_router"));
    let (ok, _) = verify(&missing).unwrap();
    assert!(!ok, "a missing ExecStart binary went unnoticed");
}

#[test]
fn unit_is_hardened_and_restarts() {
    let text = unit();
    let service = section(&text, "Service");
    for (key, want) in [
        ("NoNewPrivileges", "yes"),
        ("ProtectSystem", "strict"),
        ("ProtectHome", "read-only"),
        ("PrivateTmp", "yes"),
        ("Restart", "on-failure"),
        ("KillSignal", "SIGTERM"),
    ] {
        assert_eq!(one(&service, key), want, "{key}");
    }
    let mut families: Vec<String> = one(&service, "RestrictAddressFamilies")
        .split_whitespace()
        .map(str::to_owned)
        .collect();
    families.sort();
    assert_eq!(families, ["AF_INET", "AF_INET6", "AF_NETLINK", "AF_UNIX"]);

    // The root the router uses is the one the sandbox leaves writable.
    let root = one(&service, "Environment")
        .strip_prefix("HERO_SOCKET_DIR=")
        .expect("Environment=HERO_SOCKET_DIR=…")
        .to_owned();
    assert_eq!(one(&service, "ReadWritePaths"), root);
    assert!(one(&service, "ExecStartPre").ends_with(&format!("mkdir -p {root}")));

    let stop = parse_duration(&one(&service, "TimeoutStopSec")).unwrap();
    assert!(
        stop > shutdown_grace(),
        "TimeoutStopSec {stop:?} must exceed --shutdown-grace {:?}",
        shutdown_grace()
    );
    let exec = one(&service, "ExecStart");
    let words: Vec<&str> = exec.split_whitespace().collect();
    assert_eq!(words[0], INSTALLED_BINARY);
    let mut argv = vec!["hero_router"];
    argv.extend(&words[1..]);
    assert_serve(&argv);
    assert_eq!(
        one(&section(&text, "Install"), "WantedBy"),
        "default.target"
    );
}

/// `key = "value"` or `key = 123` lines of a TOML table `[name]` (flat; enough for this file).
fn toml_table(text: &str, name: &str) -> BTreeMap<String, String> {
    section(text, name)
        .into_iter()
        .map(|(k, v)| (k, v.concat().trim_matches('"').to_owned()))
        .collect()
}

#[test]
fn hero_proc_definition_runs_serve_and_checks_health() {
    let text = deploy("hero_proc/hero_router.toml");
    let service = toml_table(&text, "service");
    assert_eq!(service["name"], "hero_router");
    let action = toml_table(&text, "[service.actions]");
    assert_eq!(action["interpreter"], "exec");
    let script = &action["script"];
    assert!(
        !script.contains(['"', '\'', '$', ';', '|']),
        "plain words only: {script}"
    );
    let words: Vec<&str> = script.split_whitespace().collect();
    assert_eq!(words[0], "hero_router");
    assert_serve(&words);
    assert!(
        !text
            .lines()
            .any(|l| l.trim_start().starts_with("kill_other")),
        "hero_proc must not unlink the router's sockets"
    );

    let signals = toml_table(&text, "service.actions.signals");
    assert_eq!(signals["stop"], "SIGTERM");
    let stop = Duration::from_millis(signals["stop_timeout_ms"].parse().unwrap());
    assert!(stop > shutdown_grace(), "stop timeout {stop:?}");

    let health = toml_table(&text, "service.actions.health");
    assert_eq!(health["socket"], "hero_router/rpc.sock");
    assert_eq!(health["path"], "/health");
}
