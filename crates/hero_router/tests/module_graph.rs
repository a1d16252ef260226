//! The crate's top-level modules form no import cycle (issue 20): data flows one way, from
//! the framing and the registry up to the fronts and `serve`.
//!
//! A top-level module is a file or folder directly under `src/` (`lib.rs` and `main.rs` are
//! the root). Module A depends on B when a file of A (its tests included) names `crate::B` or
//! `use crate::{…B…}` in code (comments do not count). The test lists every cycle it finds
//! with the files that close it.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// Every `.rs` file below `dir`.
fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// The top-level modules a source text names through `crate::`, outside comments (a doc
/// link is not a dependency).
fn named_modules(text: &str, modules: &BTreeSet<String>) -> BTreeSet<String> {
    let code: String = text
        .lines()
        .map(|line| line.split("//").next().unwrap_or(""))
        .collect::<Vec<_>>()
        .join("\n");
    let text = code.as_str();
    let mut found = BTreeSet::new();
    let ident = |s: &str| -> String {
        s.chars()
            .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
            .collect()
    };
    for (i, _) in text.match_indices("crate::") {
        let rest = &text[i + "crate::".len()..];
        if let Some(group) = rest.strip_prefix('{') {
            // `use crate::{a, b::c, …}`: the first segment of each item.
            let group = &group[..group.find('}').unwrap_or(group.len())];
            for item in group.split(',') {
                let name = ident(item.trim());
                if modules.contains(&name) {
                    found.insert(name);
                }
            }
        } else {
            let name = ident(rest);
            if modules.contains(&name) {
                found.insert(name);
            }
        }
    }
    found
}

/// Edges by module, each with one file that makes it.
type Edges = BTreeMap<String, BTreeMap<String, PathBuf>>;

/// Every cycle a depth-first search closes, as `a -> b -> a (closed by FILE)`.
fn cycles(edges: &Edges) -> Vec<String> {
    fn visit(
        m: &str,
        edges: &Edges,
        state: &mut BTreeMap<String, u8>,
        stack: &mut Vec<String>,
        cycles: &mut Vec<String>,
    ) {
        state.insert(m.to_owned(), 1);
        stack.push(m.to_owned());
        for (to, file) in edges.get(m).into_iter().flatten() {
            match state.get(to).copied().unwrap_or(0) {
                0 => visit(to, edges, state, stack, cycles),
                1 => {
                    let from = stack.iter().position(|s| s == to).unwrap();
                    let path = stack[from..].join(" -> ");
                    cycles.push(format!("{path} -> {to} (closed by {})", file.display()));
                }
                _ => {}
            }
        }
        stack.pop();
        state.insert(m.to_owned(), 2);
    }
    let (mut state, mut found) = (BTreeMap::new(), Vec::new());
    for m in edges.keys() {
        if !state.contains_key(m) {
            visit(m, edges, &mut state, &mut Vec::new(), &mut found);
        }
    }
    found
}

#[test]
fn the_top_level_modules_form_no_cycle() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let modules: BTreeSet<String> = std::fs::read_dir(&src)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter_map(|p| {
            let name = p.file_stem()?.to_str()?.to_owned();
            let module = p.is_dir() || p.extension().is_some_and(|e| e == "rs");
            (module && name != "lib" && name != "main").then_some(name)
        })
        .collect();
    // Edges, with one file that makes each.
    let mut edges = Edges::new();
    for module in &modules {
        let mut files = Vec::new();
        let dir = src.join(module);
        if dir.is_dir() {
            rust_files(&dir, &mut files);
        } else {
            files.push(src.join(format!("{module}.rs")));
        }
        for file in files {
            let text = std::fs::read_to_string(&file).unwrap();
            for to in named_modules(&text, &modules) {
                if &to != module {
                    let rel = file.strip_prefix(&src).unwrap().to_path_buf();
                    edges
                        .entry(module.clone())
                        .or_default()
                        .entry(to)
                        .or_insert(rel);
                }
            }
        }
    }
    assert!(
        edges.values().map(BTreeMap::len).sum::<usize>() > 20,
        "the scan found the crate's imports: {edges:?}"
    );
    let cycles = cycles(&edges);
    assert!(
        cycles.is_empty(),
        "import cycles between top-level modules:\n{}",
        cycles.join("\n")
    );
}

#[test]
fn the_check_finds_a_cycle_when_there_is_one() {
    // Imports are read from `crate::x` paths and `use crate::{…}` groups, nothing else.
    let modules: BTreeSet<String> = ["a", "b", "c"].map(String::from).into();
    assert_eq!(
        named_modules("use crate::{b::X, c};\nfn f() { crate::a::g() }", &modules),
        ["a", "b", "c"].map(String::from).into()
    );
    assert!(named_modules("use std::crate_name; // crate::zz", &modules).is_empty());
    // A chain has no cycle; closing it makes one, named with the file that closes it.
    let edge = |to: &str, file: &str| (to.to_owned(), PathBuf::from(file));
    let mut edges = Edges::new();
    edges.insert("a".into(), [edge("b", "a/x.rs")].into());
    edges.insert("b".into(), [edge("c", "b.rs")].into());
    assert!(cycles(&edges).is_empty());
    edges.insert("c".into(), [edge("a", "c/y.rs")].into());
    assert_eq!(cycles(&edges), ["a -> b -> c -> a (closed by c/y.rs)"]);
}
