//! The binary finds the socket root the way hero_router does (`--socket-dir`, else
//! `$HERO_SOCKET_DIR`, else `$PATH_SOCKET`, else `$HOME/hero/var/sockets`), so a router and an
//! example service started in the same environment meet without flags.

use std::io::{BufRead as _, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

use hero_socket::{ConnectOutcome, connect_probe};

/// A running `hero_example_service`, killed on drop.
struct Running(Child);

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Starts the binary with exactly `env` (plus `PATH`) and waits for its "serving" log line,
/// which names the socket it bound; returns that path.
fn start(env: &[(&str, &Path)], args: &[&str]) -> (Running, PathBuf) {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_hero_example_service"));
    cmd.env_clear()
        .env("RUST_LOG", "info")
        .args(args)
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    for (k, v) in env {
        cmd.env(k, v);
    }
    let mut child = cmd.spawn().expect("spawn hero_example_service");
    let stderr = child.stderr.take().unwrap();
    let running = Running(child);
    let mut seen = Vec::new();
    // The log line is the event we wait on; the process exiting ends the lines (and the test).
    for line in BufReader::new(stderr).lines() {
        let line = line.unwrap();
        if line.contains("serving") {
            let path = line
                .split_whitespace()
                .find_map(|w| w.strip_prefix("path="))
                .unwrap_or_else(|| panic!("no path= in {line:?}"));
            return (running, PathBuf::from(path));
        }
        seen.push(line);
    }
    panic!("hero_example_service exited without serving: {seen:#?}");
}

#[test]
fn home_default_root() {
    let home = tempfile::tempdir().unwrap();
    let (_svc, path) = start(&[("HOME", home.path())], &[]);
    let want = home.path().join("hero/var/sockets/example/rpc.sock");
    assert_eq!(path, want);
    assert_eq!(connect_probe(&want), ConnectOutcome::Connected);
}

#[test]
fn hero_socket_dir_wins_over_path_socket_and_home() {
    let (home, a, b) = (
        tempfile::tempdir().unwrap(),
        tempfile::tempdir().unwrap(),
        tempfile::tempdir().unwrap(),
    );
    let (_svc, path) = start(
        &[
            ("HOME", home.path()),
            ("HERO_SOCKET_DIR", a.path()),
            ("PATH_SOCKET", b.path()),
        ],
        &["--name", "calc"],
    );
    assert_eq!(path, a.path().join("calc/rpc.sock"));
    assert_eq!(connect_probe(&path), ConnectOutcome::Connected);
}

#[test]
fn path_socket_is_read_when_hero_socket_dir_is_unset() {
    let (home, b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let (_svc, path) = start(&[("HOME", home.path()), ("PATH_SOCKET", b.path())], &[]);
    assert_eq!(path, b.path().join("example/rpc.sock"));
}

#[test]
fn flag_wins_over_everything() {
    let (a, flag) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let flag_arg = flag.path().to_str().unwrap();
    let (_svc, path) = start(
        &[("HERO_SOCKET_DIR", a.path())],
        &["--socket-dir", flag_arg],
    );
    assert_eq!(path, flag.path().join("example/rpc.sock"));
}

#[test]
fn no_root_at_all_is_one_clear_error() {
    let out = Command::new(env!("CARGO_BIN_EXE_hero_example_service"))
        .env_clear()
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("--socket-dir") && err.contains("HERO_SOCKET_DIR"),
        "{err}"
    );
}
