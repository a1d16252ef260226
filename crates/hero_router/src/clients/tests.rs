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
/// read as the caller's own properties only (an absent `valueOf_` is not Object's).
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
    // Given as `valueOf_` (an object literal cannot give `valueOf` as written).
    assert!(ts.contains(r#"own(params, "valueOf_")"#), "{ts}");
    assert!(!ts.contains(r#"params["valueOf"#), "{ts}");
}

/// A Python module file is importable and never shadows what the client imports.
#[test]
fn module_files_are_importable_and_shadow_nothing_the_client_imports() {
    assert_eq!(Lang::Python.file_name("example"), "example.py");
    assert_eq!(Lang::Python.file_name("my-svc"), "my_svc.py");
    assert_eq!(Lang::Python.file_name("json"), "json_client.py");
    assert_eq!(Lang::Python.file_name("class"), "class_client.py");
    assert_eq!(Lang::Python.file_name("2fa"), "n_2fa.py");
    assert_eq!(Lang::TypeScript.file_name("json"), "json.ts");
    // Every module the template imports is in the list.
    let template = include_str!("templates/client.py.j2");
    for line in template.lines().filter(|l| l.starts_with("import ")) {
        let module = line["import ".len()..].split(['.', ' ']).next().unwrap();
        assert!(names::PYTHON_STDLIB.contains(&module), "{module}");
    }
}

/// No module file takes a standard-library module's name, not only the ones the client
/// imports itself (`http.client` loads `email`; an `email.py` beside it broke the import).
/// The list holds every module the Python on this machine has.
#[test]
fn module_files_shadow_no_standard_library_module() {
    for m in [
        "email", "re", "abc", "enum", "types", "string", "datetime", "json",
    ] {
        assert_eq!(Lang::Python.file_name(m), format!("{m}_client.py"));
    }
    let script = "import sys; print('\\n'.join(sorted(sys.stdlib_module_names)))";
    let out = match std::process::Command::new("python3")
        .args(["-c", script])
        .output()
    {
        Ok(out) if out.status.success() => out,
        _ if std::env::var_os("HERO_REQUIRE_CLIENT_TOOLS").is_some() => {
            panic!("python3 does not run, and HERO_REQUIRE_CLIENT_TOOLS is set")
        }
        _ => return eprintln!("skipped: no python3 to compare the standard library with"),
    };
    let here = String::from_utf8(out.stdout).unwrap();
    let missing: Vec<&str> = here
        .lines()
        .filter(|m| !names::PYTHON_STDLIB.contains(m))
        .collect();
    assert!(missing.is_empty(), "not in PYTHON_STDLIB: {missing:?}");
}

/// A method with two params of one name is left out, with one note naming it: it cannot be
/// called by name with both, nor typed (TypeScript refused the duplicate key, and Python sent
/// only the second value). Nameless methods are counted in one note, not one each.
#[test]
fn methods_that_cannot_be_typed_are_left_out_with_one_note_each_kind() {
    let spec = serde_json::json!({
        "openrpc": "1.3.2",
        "info": {"title": "Calc service", "version": "1"},
        "methods": [
            {"name": "ok", "params": [{"name": "x", "schema": {"type": "string"}}]},
            {"name": "twice\n\"\"\"", "params": [
                {"name": "x", "required": true, "schema": {"type": "string"}},
                {"name": "x", "schema": {"type": "integer"}}]},
            {"name": "nameless_param", "paramStructure": "by-position", "params": [
                {"name": "a", "required": true, "schema": {"type": "string"}},
                {"required": true, "schema": {"type": "integer"}}]},
            {"params": []}, {"params": []}, {"params": []}
        ]
    })
    .to_string();
    for lang in [Lang::Python, Lang::TypeScript] {
        let out = generate(lang, "calc", &spec);
        assert!(
            out.contains("def ok(") || out.contains("async ok("),
            "{out}"
        );
        assert!(
            !out.contains("def twice") && !out.contains("async twice"),
            "{out}"
        );
        let note = "Note: methods with a param without a name, or two of one name, are left out: ";
        assert_eq!(out.matches(note).count(), 1, "{out}");
        assert_eq!(out.matches("twice").count(), 1, "only in the note: {out}");
        assert_eq!(
            out.matches("nameless_param").count(),
            1,
            "only in the note: {out}"
        );
        assert_eq!(
            out.matches("Note: 3 methods without a name are left out.")
                .count(),
            1,
            "{out}"
        );
        assert!(
            out.contains("Typed client of the Calc service, generated"),
            "{out}"
        );
    }
    let other = generate(Lang::Python, "calc", r#"{"info": {"title": "Calc"}}"#);
    assert!(
        other.contains("Typed client of the Calc service, generated"),
        "{other}"
    );
}
