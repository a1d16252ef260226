use super::*;

#[test]
fn doc_lines_split_every_line_break_and_trim() {
    assert_eq!(doc_lines("\n a \r\nb\u{2028}c  \n\n"), [" a", "b", "c"]);
    assert!(doc_lines("  \n ").is_empty());
}

/// Whatever a spec says, a docstring or a comment cannot be ended by its text.
#[test]
fn hostile_text_stays_inside_docstrings_and_comments() {
    let spec = r#"{"info": {"title": "T", "description": "end \"\"\" here */ and \\"},
        "methods": [{"name": "m", "summary": "\"\"\"; import os; \"\"\" */ alert(1) /*", "params": []}]}"#;
    let py = generate(Lang::Python, "svc", spec);
    assert!(!py.contains("\"\"\"; import os"), "{py}");
    assert!(py.contains("\\\"\\\"\\\"; import os"), "{py}");
    let ts = generate(Lang::TypeScript, "svc", spec);
    assert!(!ts.contains("*/ alert(1)"), "{ts}");
    assert!(ts.contains("*\\/ alert(1)"), "{ts}");
}

#[test]
fn a_document_that_is_not_json_generates_a_client_without_methods() {
    for lang in [Lang::Python, Lang::TypeScript] {
        let out = generate(lang, "svc", "{not json");
        assert!(out.contains("class Client"), "{out}");
        assert!(!out.contains("template"), "{out}");
    }
}

#[test]
fn the_same_document_generates_the_same_bytes() {
    let spec = include_str!("../../../hero_example_service/openrpc.json");
    for lang in [Lang::Python, Lang::TypeScript] {
        assert_eq!(
            generate(lang, "example", spec),
            generate(lang, "example", spec)
        );
    }
}

/// Methods named like what every object has get other names in TypeScript (a `then` would
/// make the client a thenable: `await` on it would never end), and by-position params are
/// read as the caller's own properties only (an absent `valueOf` is not Object's).
#[test]
fn a_typescript_client_is_no_thenable_and_reads_only_its_callers_params() {
    let spec = r#"{"methods": [
        {"name": "then", "params": []},
        {"name": "toString", "params": []},
        {"name": "pos", "paramStructure": "by-position", "params": [
            {"name": "a", "required": true, "schema": {"type": "string"}},
            {"name": "valueOf", "schema": {"type": "string"}}]}]}"#;
    let ts = generate(Lang::TypeScript, "svc", spec);
    assert!(
        !ts.contains("async then(") && ts.contains("async then_("),
        "{ts}"
    );
    assert!(
        !ts.contains("async toString(") && ts.contains("async toString_("),
        "{ts}"
    );
    assert!(ts.contains(r#"own(params, "valueOf")"#), "{ts}");
    assert!(!ts.contains(r#"params["valueOf"]"#), "{ts}");
}

/// A Python module file is importable and never shadows what the client imports.
#[test]
fn module_files_are_importable_and_shadow_nothing_the_client_imports() {
    assert_eq!(Lang::Python.file_name("example"), "example.py");
    assert_eq!(Lang::Python.file_name("my-svc"), "my_svc.py");
    assert_eq!(Lang::Python.file_name("json"), "json_client.py");
    assert_eq!(Lang::Python.file_name("class"), "class_client.py");
    assert_eq!(Lang::TypeScript.file_name("json"), "json.ts");
    // Every module the template imports is in the list.
    let template = include_str!("templates/client.py.j2");
    for line in template.lines().filter(|l| l.starts_with("import ")) {
        let module = line["import ".len()..].split(['.', ' ']).next().unwrap();
        assert!(PYTHON_IMPORTS.contains(&module), "{module}");
    }
}
