//! Golden files for the docs renderer: the example service's OpenRPC document rendered to
//! Markdown and HTML, and an index, compared byte for byte with `tests/golden/`.
//!
//! After a deliberate change to the templates or the example document, rewrite them with
//! `UPDATE_GOLDEN=1 cargo test -p hero_router --test docs_golden` and review the diff.

use std::path::{Path, PathBuf};

use hero_router::test_hooks::{self as docs, DocService, IndexEntry};
use serde_json::Value;

/// Lines of context shown around the first difference.
const CONTEXT: usize = 4;

fn example_spec() -> Value {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../hero_example_service/openrpc.json");
    let text = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("reading {}: {e}", path.display()));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("parsing {}: {e}", path.display()))
}

fn example_service(spec: &Value) -> DocService<'_> {
    DocService {
        name: "example",
        spec,
        title: None,
        version: None,
        description: None,
        invalid: None,
        served: true,
    }
}

fn index_entries(spec: &Value) -> Vec<IndexEntry> {
    let info = |key: &str| spec["info"][key].as_str().map(str::to_owned);
    vec![
        IndexEntry {
            name: "example".to_owned(),
            title: info("title"),
            version: info("version"),
            description: Some(
                "A small Hero service for tests, the demo and the benchmarks.".to_owned(),
            ),
            methods_count: spec["methods"].as_array().map(Vec::len),
            spec_state: "ok".to_owned(),
        },
        IndexEntry {
            name: "blobstore".to_owned(),
            title: Some("Blob store".to_owned()),
            version: Some("2.1.0".to_owned()),
            description: None,
            methods_count: None,
            spec_state: "absent".to_owned(),
        },
    ]
}

fn golden_path(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/golden")
        .join(name)
}

/// Compares `actual` with the golden file `name`, or rewrites it under `UPDATE_GOLDEN=1`.
fn check(name: &str, actual: &str) {
    let path = golden_path(name);
    if std::env::var("UPDATE_GOLDEN").is_ok_and(|v| v == "1") {
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(&path, actual).unwrap_or_else(|e| panic!("writing {}: {e}", path.display()));
        return;
    }
    let expected = std::fs::read_to_string(&path).unwrap_or_else(|e| {
        panic!(
            "reading {}: {e}\n(run with UPDATE_GOLDEN=1 to create it)",
            path.display()
        )
    });
    if expected != actual {
        panic!(
            "{} differs from the rendering (rerun with UPDATE_GOLDEN=1 if the change is meant):\n{}",
            path.display(),
            diff_excerpt(&expected, actual)
        );
    }
}

/// The lines around the first difference, numbered, golden (`-`) against actual (`+`).
fn diff_excerpt(expected: &str, actual: &str) -> String {
    let exp: Vec<&str> = expected.lines().collect();
    let act: Vec<&str> = actual.lines().collect();
    let first = exp
        .iter()
        .zip(&act)
        .position(|(e, a)| e != a)
        .unwrap_or(exp.len().min(act.len()));
    let from = first.saturating_sub(CONTEXT);
    let mut out = format!(
        "first difference at line {} (golden {} lines, actual {} lines)\n",
        first + 1,
        exp.len(),
        act.len()
    );
    for (i, line) in exp.iter().enumerate().take(first).skip(from) {
        out.push_str(&format!("  {:>5} | {line}\n", i + 1));
    }
    for (i, line) in exp.iter().enumerate().skip(first).take(CONTEXT + 1) {
        out.push_str(&format!("- {:>5} | {line}\n", i + 1));
    }
    for (i, line) in act.iter().enumerate().skip(first).take(CONTEXT + 1) {
        out.push_str(&format!("+ {:>5} | {line}\n", i + 1));
    }
    if exp.len() == act.len() && expected.ends_with('\n') != actual.ends_with('\n') {
        out.push_str("(the difference is the final newline)\n");
    }
    out
}

#[test]
fn example_markdown() {
    let spec = example_spec();
    check("example.md", &docs::markdown(&example_service(&spec)));
}

#[test]
fn example_html() {
    let spec = example_spec();
    check("example.html", &docs::html(&example_service(&spec)));
}

#[test]
fn index_markdown() {
    let spec = example_spec();
    check("index.md", &docs::index_markdown(&index_entries(&spec)));
}

#[test]
fn index_html() {
    let spec = example_spec();
    let link = |name: &str| format!("{name}.html");
    check(
        "index.html",
        &docs::index_html(&index_entries(&spec), &link),
    );
}

#[test]
fn the_diff_excerpt_points_at_the_first_difference() {
    let excerpt = diff_excerpt("a\nb\nc\nd\n", "a\nb\nX\nd\n");
    assert!(
        excerpt.starts_with("first difference at line 3"),
        "{excerpt}"
    );
    assert!(excerpt.contains("-     3 | c"), "{excerpt}");
    assert!(excerpt.contains("+     3 | X"), "{excerpt}");
    assert!(excerpt.contains("      2 | b"), "{excerpt}");
}
