//! `hero_router completions SHELL`: the scripts are real completion scripts for this command
//! line. The bash one is loaded into bash and asked to complete, so a script that parses but
//! completes nothing fails too.

mod common;

use std::process::{Command, Output};

fn hero_router(args: &[&str]) -> Output {
    // No HOME, no HERO_SOCKET_DIR: completions must not need a socket root.
    Command::new(env!("CARGO_BIN_EXE_hero_router"))
        .env_clear()
        .args(args)
        .output()
        .expect("run hero_router")
}

fn script(shell: &str) -> String {
    let out = hero_router(&["completions", shell]);
    assert!(
        out.status.success(),
        "completions {shell}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).expect("UTF-8 script")
}

/// What bash's completion function offers for the words of `line` (the last word is being
/// completed).
fn bash_complete(script_path: &std::path::Path, line: &[&str]) -> Vec<String> {
    let words = line
        .iter()
        .map(|w| format!("'{w}'"))
        .collect::<Vec<_>>()
        .join(" ");
    let cword = line.len() - 1;
    let prev = line[cword.saturating_sub(1)];
    let cur = line[cword];
    let program = format!(
        "source '{}'\nCOMP_WORDS=({words})\nCOMP_CWORD={cword}\nCOMP_LINE='{}'\nCOMP_POINT=${{#COMP_LINE}}\n\
         _hero_router hero_router '{cur}' '{prev}'\nprintf '%s\\n' \"${{COMPREPLY[@]}}\"\n",
        script_path.display(),
        line.join(" "),
    );
    let out = Command::new("bash")
        .arg("--norc")
        .arg("-c")
        .arg(program)
        .output()
        .expect("run bash");
    assert!(
        out.status.success(),
        "bash: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout)
        .split_whitespace()
        .map(str::to_owned)
        .collect()
}

#[test]
fn bash_completes_subcommands_flags_and_shells() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("hero_router.bash");
    std::fs::write(&path, script("bash")).unwrap();

    let sub = bash_complete(&path, &["hero_router", "se"]);
    assert_eq!(sub, ["serve"], "subcommands starting with 'se'");

    let all = bash_complete(&path, &["hero_router", ""]);
    for want in [
        "serve",
        "list",
        "scan",
        "call",
        "health",
        "spec",
        "completions",
    ] {
        assert!(all.iter().any(|w| w == want), "{want} in {all:?}");
    }

    let flags = bash_complete(&path, &["hero_router", "serve", "--scan"]);
    assert_eq!(flags, ["--scan-interval"]);

    let shells = bash_complete(&path, &["hero_router", "completions", ""]);
    for want in ["bash", "zsh", "fish"] {
        assert!(shells.iter().any(|w| w == want), "{want} in {shells:?}");
    }
}

#[test]
fn zsh_and_fish_scripts_name_the_command_and_its_flags() {
    let zsh = script("zsh");
    assert!(zsh.starts_with("#compdef hero_router"), "{zsh:.80}");
    let fish = script("fish");
    assert!(fish.contains("complete -c hero_router"), "{fish:.200}");
    for text in [&zsh, &fish] {
        for want in ["serve", "socket-dir", "scan-interval", "completions"] {
            assert!(text.contains(want), "{want} missing");
        }
    }
    // The shell must parse its script. Where it is not installed only the text is checked,
    // unless HERO_REQUIRE_SHELLS=1 (`.ci/run` installs zsh and fish).
    for (shell, text, check) in [("zsh", &zsh, "-n"), ("fish", &fish, "--no-execute")] {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(shell);
        std::fs::write(&path, text).unwrap();
        match Command::new(shell).arg(check).arg(&path).output() {
            Ok(out) => assert!(
                out.status.success(),
                "{shell} rejects its script: {}",
                String::from_utf8_lossy(&out.stderr)
            ),
            Err(e) => common::skip_unless_required(
                "HERO_REQUIRE_SHELLS",
                &format!("{shell} cannot be run ({e}); checked the text only"),
            ),
        }
    }
}

#[test]
fn an_unknown_shell_is_a_usage_error() {
    let out = hero_router(&["completions", "tcsh"]);
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("bash") && err.contains("zsh"), "{err}");
}
