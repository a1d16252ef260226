//! The README cannot drift from what is built:
//!
//! - its Configuration table and `hero_router serve --help` list the same flags, the same
//!   environment variables and the same defaults;
//! - its Commands table and `hero_router --help` list the same subcommands;
//! - the workspace's `rust-version` covers every locked dependency (read from `cargo metadata`,
//!   so a dependency added later is checked too), and the README states that version.

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::process::Command;

use serde_json::Value;

fn workspace_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn readme() -> String {
    std::fs::read_to_string(workspace_root().join("README.md")).expect("README.md")
}

fn hero_router(args: &[&str]) -> String {
    let out = Command::new(env!("CARGO_BIN_EXE_hero_router"))
        .args(args)
        .output()
        .expect("run hero_router");
    assert!(out.status.success(), "hero_router {args:?} failed");
    String::from_utf8(out.stdout).expect("UTF-8 help")
}

/// One flag as documented: whether it takes a value, its default, the environment variables it
/// names, and the whole text (for "is this mentioned" checks).
#[derive(Debug, Default)]
struct Flag {
    takes_value: bool,
    default: Option<String>,
    env: BTreeSet<String>,
    text: String,
}

/// `$NAME` and `[env: NAME=…]` mentions in `text`.
fn env_vars(text: &str) -> BTreeSet<String> {
    let mut found = BTreeSet::new();
    for (i, _) in text.match_indices('$').chain(text.match_indices("env: ")) {
        let start = if text[i..].starts_with('$') {
            i + 1
        } else {
            i + 5
        };
        let name: String = text[start..]
            .chars()
            .take_while(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || *c == '_')
            .collect();
        if name.len() > 1 {
            found.insert(name);
        }
    }
    found
}

/// The flags of `hero_router serve --help` (long help: one flag line, then its indented text).
fn help_flags() -> BTreeMap<String, Flag> {
    let help = hero_router(&["serve", "--help"]);
    let mut flags: BTreeMap<String, Flag> = BTreeMap::new();
    let mut current: Option<String> = None;
    for line in help.lines() {
        let indent = line.len() - line.trim_start().len();
        let trimmed = line.trim();
        if (1..8).contains(&indent) && trimmed.starts_with('-') {
            let long = trimmed
                .split_whitespace()
                .find_map(|w| w.strip_prefix("--"))
                .expect("a long flag")
                .trim_end_matches(',')
                .to_owned();
            current = (long != "help").then(|| long.clone());
            if let Some(name) = &current {
                flags.insert(
                    name.clone(),
                    Flag {
                        takes_value: trimmed.contains('<'),
                        ..Flag::default()
                    },
                );
            }
            continue;
        }
        let Some(flag) = current.as_ref().and_then(|n| flags.get_mut(n)) else {
            continue;
        };
        if let Some(rest) = trimmed.strip_prefix("[default: ") {
            flag.default = Some(rest.trim_end_matches(']').to_owned());
        }
        flag.text.push_str(trimmed);
        flag.text.push('\n');
    }
    for flag in flags.values_mut() {
        flag.env = env_vars(&flag.text);
    }
    flags
}

/// Splits a Markdown table row on `|`, keeping escaped `\|`.
fn cells(row: &str) -> Vec<String> {
    let mut cells = vec![String::new()];
    let mut chars = row.trim().trim_matches('|').chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '\\' if chars.peek() == Some(&'|') => {
                cells.last_mut().unwrap().push('|');
                chars.next();
            }
            '|' => cells.push(String::new()),
            c => cells.last_mut().unwrap().push(c),
        }
    }
    cells.iter().map(|c| c.trim().to_owned()).collect()
}

/// The backticked spans of a cell.
fn code_spans(cell: &str) -> Vec<String> {
    cell.split('`')
        .skip(1)
        .step_by(2)
        .map(str::to_owned)
        .collect()
}

/// The lines of the README section titled `title` (up to the next `## `).
fn section<'a>(readme: &'a str, title: &str) -> Vec<&'a str> {
    readme
        .lines()
        .skip_while(|l| l.trim() != title)
        .skip(1)
        .take_while(|l| !l.starts_with("## "))
        .collect()
}

/// The README's Configuration table: flag | env | default | meaning. A row with an empty flag
/// cell (an environment variable that only matters with the flag above, such as
/// `HERO_MYCELIUM_IP` under `--listen`) belongs to the flag above it.
fn readme_flags() -> BTreeMap<String, Flag> {
    let readme = readme();
    let rows = section(&readme, "## Configuration");
    assert!(!rows.is_empty(), "README has no '## Configuration' section");
    let mut flags: BTreeMap<String, Flag> = BTreeMap::new();
    let mut last: Option<String> = None;
    for row in rows.iter().filter(|l| l.trim_start().starts_with('|')) {
        let c = cells(row);
        if c[0].is_empty() {
            let flag = last
                .as_ref()
                .and_then(|name| flags.get_mut(name))
                .unwrap_or_else(|| panic!("a row without a flag, under no flag: {row}"));
            flag.env.extend(code_spans(&c[1]));
            flag.text.push_str(row);
            continue;
        }
        if !c[0].starts_with("`--") {
            continue;
        }
        assert_eq!(c.len(), 4, "flag | env | default | meaning: {row}");
        let spec = code_spans(&c[0]).into_iter().next().expect("a `--flag`");
        let mut words = spec.split_whitespace();
        let name = words.next().unwrap().trim_start_matches("--").to_owned();
        let flag = Flag {
            takes_value: words.next().is_some(),
            default: match c[2].as_str() {
                "off" | "" => None,
                d => Some(d.to_owned()),
            },
            env: code_spans(&c[1]).into_iter().collect(),
            text: row.to_string(),
        };
        assert!(
            flags.insert(name.clone(), flag).is_none(),
            "--{name} twice in the README"
        );
        last = Some(name);
    }
    flags
}

#[test]
fn config_table_matches_serve_help() {
    let help = help_flags();
    let table = readme_flags();
    assert!(
        help.len() > 10,
        "parsed too few flags from --help: {help:?}"
    );

    let mut problems = Vec::new();
    for name in table.keys().filter(|n| !help.contains_key(*n)) {
        problems.push(format!(
            "--{name}: in the README's Configuration table but not in `serve --help`"
        ));
    }
    for (name, h) in &help {
        let Some(t) = table.get(name) else {
            problems.push(format!(
                "--{name}: in `serve --help` but not in the README's Configuration table"
            ));
            continue;
        };
        if h.takes_value != t.takes_value {
            problems.push(format!(
                "--{name}: help says it takes a value: {}, README: {}",
                h.takes_value, t.takes_value
            ));
        }
        match (&h.default, &t.default) {
            (Some(hd), Some(td)) => {
                if code_spans(td).first() != Some(hd) {
                    problems.push(format!("--{name}: default `{hd}` in help, {td} in README"));
                }
            }
            (Some(hd), None) => {
                problems.push(format!("--{name}: default `{hd}` in help, none in README"))
            }
            // Without a clap default, the help text says it in words: every value the README
            // gives must be there.
            (None, Some(td)) => {
                for v in code_spans(td) {
                    if !h.text.contains(&v) {
                        problems.push(format!(
                            "--{name}: README default {td}, help does not mention `{v}`"
                        ));
                    }
                }
            }
            (None, None) => {
                if h.takes_value {
                    problems.push(format!("--{name}: takes a value but no default anywhere"));
                }
            }
        }
        for var in &h.env {
            if !t.text.contains(var.as_str()) {
                problems.push(format!(
                    "--{name}: help names ${var}, the README row does not"
                ));
            }
        }
        for var in &t.env {
            if !h.env.contains(var) {
                problems.push(format!(
                    "--{name}: README lists env {var}, `serve --help` does not"
                ));
            }
        }
    }
    assert!(
        problems.is_empty(),
        "README vs serve --help:\n{problems:#?}"
    );
}

#[test]
fn commands_table_matches_the_subcommands() {
    let help = hero_router(&["--help"]);
    let subcommands: BTreeSet<String> = help
        .lines()
        .skip_while(|l| !l.starts_with("Commands:"))
        .skip(1)
        .take_while(|l| l.starts_with("  "))
        .filter_map(|l| l.split_whitespace().next())
        .filter(|c| *c != "help")
        .map(str::to_owned)
        .collect();
    assert!(subcommands.contains("serve"), "{help}");

    let readme = readme();
    let documented: BTreeSet<String> = section(&readme, "## Commands")
        .iter()
        .filter(|l| l.trim_start().starts_with("| `hero_router "))
        .filter_map(|l| code_spans(&cells(l)[0]).into_iter().next())
        .filter_map(|c| c.split_whitespace().nth(1).map(str::to_owned))
        .collect();
    assert_eq!(
        subcommands, documented,
        "`hero_router --help` vs the README's Commands table"
    );
}

/// `1.91` / `1.87.0` → (1, 91, 0).
fn version(v: &str) -> (u64, u64, u64) {
    let mut parts = v.split('.').map(|p| p.parse::<u64>().unwrap_or(0));
    (
        parts.next().unwrap_or(0),
        parts.next().unwrap_or(0),
        parts.next().unwrap_or(0),
    )
}

/// `cargo metadata` of the workspace, with only the packages built on this host (the router
/// is Linux-only; Windows-only crates are never compiled).
fn metadata() -> Value {
    let host = Command::new(std::env::var("RUSTC").unwrap_or_else(|_| "rustc".into()))
        .arg("-vV")
        .output()
        .expect("rustc -vV");
    let host = String::from_utf8_lossy(&host.stdout)
        .lines()
        .find_map(|l| l.strip_prefix("host: ").map(str::to_owned))
        .expect("rustc -vV names the host");
    let out = Command::new(env!("CARGO"))
        .args(["metadata", "--format-version", "1", "--locked"])
        .args(["--filter-platform", &host, "--manifest-path"])
        .arg(workspace_root().join("Cargo.toml"))
        .output()
        .expect("cargo metadata");
    assert!(
        out.status.success(),
        "cargo metadata: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("cargo metadata JSON")
}

/// The workspace's declared `rust-version` (every member inherits it).
fn declared(meta: &Value) -> String {
    let members: BTreeSet<&str> = meta["workspace_members"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(Value::as_str)
        .collect();
    let versions: BTreeSet<&str> = meta["packages"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|p| members.contains(p["id"].as_str().unwrap()))
        .map(|p| {
            p["rust_version"]
                .as_str()
                .expect("every member declares rust-version")
        })
        .collect();
    assert_eq!(versions.len(), 1, "members disagree: {versions:?}");
    versions.into_iter().next().unwrap().to_owned()
}

#[test]
fn rust_version_covers_every_locked_dependency() {
    let meta = metadata();
    let declared = declared(&meta);
    let resolved: BTreeSet<&str> = meta["resolve"]["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|n| n["id"].as_str())
        .collect();
    let mut too_new: Vec<String> = meta["packages"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|p| resolved.contains(p["id"].as_str().unwrap()))
        .filter_map(|p| {
            let needs = p["rust_version"].as_str()?;
            (version(needs) > version(&declared))
                .then(|| {
                    let (name, v) = (p["name"].as_str()?, p["version"].as_str()?);
                    Some(format!("{name} {v} needs Rust {needs}"))
                })
                .flatten()
        })
        .collect();
    too_new.sort();
    assert!(
        resolved.len() > 50,
        "resolved only {} packages",
        resolved.len()
    );
    assert!(
        too_new.is_empty(),
        "the workspace declares rust-version = {declared:?}, but the lock needs more: \
         {too_new:#?}\nraise [workspace.package] rust-version and the README's statement"
    );
}

/// Every `1.NN` on a README line about the Rust toolchain.
fn stated_rust_versions(readme: &str) -> Vec<String> {
    let mut found = Vec::new();
    for line in readme
        .lines()
        .filter(|l| l.contains("Rust") || l.contains("rust-version") || l.contains("toolchain"))
    {
        for (i, _) in line.match_indices("1.") {
            let before = line[..i].chars().next_back();
            if before.is_some_and(|c| c.is_ascii_digit() || c == '.') {
                continue;
            }
            let v: String = line[i..]
                .chars()
                .take_while(|c| c.is_ascii_digit() || *c == '.')
                .collect();
            let v = v.trim_end_matches('.');
            if v.len() > 2 {
                found.push(v.to_owned());
            }
        }
    }
    found
}

#[test]
fn readme_states_the_declared_rust_version() {
    let meta = metadata();
    let declared = declared(&meta);
    let stated = stated_rust_versions(&readme());
    assert!(
        !stated.is_empty(),
        "the README does not say which Rust it needs (declared: {declared})"
    );
    for v in &stated {
        assert_eq!(
            version(v),
            version(&declared),
            "the README says Rust {v}, the workspace declares {declared}"
        );
    }
}
