//! Rendering tests: the example service's document, escaping, and hostile documents (each
//! must render something that says what is wrong, within bounds, without panicking).

use serde_json::{Value, json};

use super::*;

const EXAMPLE_SPEC: &str = include_str!("../../../hero_example_service/openrpc.json");

fn example_spec() -> Value {
    serde_json::from_str(EXAMPLE_SPEC).unwrap()
}

fn svc<'a>(name: &'a str, spec: &'a Value) -> DocService<'a> {
    DocService {
        name,
        spec,
        title: None,
        version: None,
        description: None,
        invalid: None,
        served: true,
    }
}

/// Both formats, checked for the things every rendering must have.
fn both(spec: &Value) -> (String, String) {
    let s = svc("svc", spec);
    let (md, html) = (markdown(&s), html(&s));
    for out in [&md, &html] {
        assert!(!out.starts_with("hero_router docs: template"), "{out}");
    }
    assert!(html.starts_with("<!DOCTYPE html>"), "{html}");
    assert!(html.trim_end().ends_with("</html>"));
    (md, html)
}

// --- the example service ---

#[test]
fn example_service_markdown_has_every_part() {
    let spec = example_spec();
    let md = markdown(&svc("example", &spec));
    for part in [
        "# Hero example service",
        "- Version: `0.1.0`",
        "- Methods: 5",
        "- OpenRPC: `1.3.2`",
        "| [`add`](#method-add) | Returns a + b (integers stay integers). |",
        "<a id=\"method-rpc.discover\"></a>",
        "**Params** (by position):",
        "| `a` | yes | `Number` | The first addend. |",
        "| `ms` | yes | `Milliseconds` | How long to sleep, in milliseconds. |",
        "| `value` | no | `AnyValue` | Anything; it is returned inside the params it was sent in. |",
        "**Result**: `openrpc` (`OpenrpcDocument`): This OpenRPC document.",
        "| -32602 | invalid params |",
        "| -32000 | requested failure |",
        "**Example** (integers)",
        "**Example** (by name): An object comes back unchanged.",
        "**Example** (generated from the schemas)",
        "### `ParamStructure`",
        "`\"by-name\" | \"by-position\" | \"either\"`",
        "`{openrpc: string, info: Info, methods: array<Method>, components?: object}`",
    ] {
        assert!(md.contains(part), "missing {part:?} in:\n{md}");
    }
}

#[test]
fn example_requests_follow_the_param_structure() {
    let spec = example_spec();
    let md = markdown(&svc("example", &spec));
    // The spec's own example, by position.
    assert!(md.contains("\"method\": \"example.add\",\n  \"params\": [\n    2,\n    3\n  ]"));
    assert!(md.contains("\"result\": 5"));
    // Generated, by name, from the schema's `examples`.
    assert!(
        md.contains("\"method\": \"example.sleep_ms\",\n  \"params\": {\n    \"ms\": 250\n  }")
    );
    // A result that can never be: the example answers with the declared error.
    assert!(md.contains(
        "\"error\": {\n    \"code\": -32000,\n    \"message\": \"requested failure\"\n  }"
    ));
    // No params: no params member.
    assert!(md.contains("\"method\": \"example.rpc.discover\"\n}"));
    assert!(md.contains("\"openrpc\": \"1.3.2\""));
}

#[test]
fn the_caller_overrides_info() {
    let spec = example_spec();
    let s = DocService {
        title: Some("Manifest title"),
        version: Some("9.9.9"),
        description: Some("From the manifest."),
        invalid: None,
        served: true,
        ..svc("example", &spec)
    };
    let md = markdown(&s);
    assert!(md.starts_with("# Manifest title\n"), "{md}");
    assert!(md.contains("- Version: `9.9.9`"));
    assert!(md.contains("From the manifest."));
    assert!(!md.contains("A small Hero service"));
}

#[test]
fn html_is_self_contained_with_a_linked_toc() {
    let spec = example_spec();
    let html = html(&svc("example", &spec));
    assert!(html.contains("<style>"));
    for bad in ["<script", "<link", "src=", "http://", "https://"] {
        assert!(!html.contains(bad), "{bad} in the page");
    }
    for anchor in [
        "method-echo",
        "method-sleep_ms",
        "method-add",
        "method-fail",
        "method-rpc.discover",
    ] {
        assert!(
            html.contains(&format!("<a href=\"#{anchor}\">")),
            "{anchor}"
        );
        assert!(html.contains(&format!("id=\"{anchor}\"")), "{anchor}");
    }
    assert!(html.contains("<td><code>Number</code></td>"));
}

#[test]
fn rendering_is_deterministic() {
    let spec = example_spec();
    let s = svc("example", &spec);
    assert_eq!(markdown(&s), markdown(&s));
    assert_eq!(html(&s), html(&s));
}

// --- escaping ---

fn script_spec() -> Value {
    json!({
        "openrpc": "1.3.2",
        "info": { "title": "<script>alert('t')</script>", "version": "1\"><b>", "description": "<script>alert(1)</script> & more" },
        "methods": [{
            "name": "<img src=x onerror=alert(1)>",
            "summary": "a | b <i>",
            "description": "```\nunclosed fence",
            "params": [{ "name": "p|q`r", "description": "line one\nline | two", "schema": { "enum": ["<x>", "a|b"] } }],
            "result": { "name": "r", "schema": { "type": "string" } },
        }],
    })
}

#[test]
fn html_escapes_everything_from_the_document() {
    let (_, html) = both(&script_spec());
    assert!(!html.contains("<script>"), "{html}");
    assert!(!html.contains("<img"), "{html}");
    assert!(!html.contains("<b>"), "{html}");
    assert!(
        html.contains("&lt;script&gt;alert(1)&lt;&#x2f;script&gt; &amp; more"),
        "{html}"
    );
    assert!(html.contains("<title>&lt;script&gt;"));
}

#[test]
fn markdown_keeps_the_document_in_its_place() {
    let (md, _) = both(&script_spec());
    assert!(!md.contains("<script>"), "{md}");
    // Names are code: shown as they are, never read as HTML.
    assert!(md.contains("## `<img src=x onerror=alert(1)>`\n"), "{md}");
    assert!(
        md.contains(
            "| [`<img src=x onerror=alert(1)>`](#method--img-src-x-onerror-alert-1--) | a \\| b &lt;i> |"
        ),
        "{md}"
    );
    assert!(
        md.contains("\n&lt;script>alert(1)&lt;/script> & more\n"),
        "{md}"
    );
    // One row, four cells: every `|` inside is escaped, line breaks are spaces.
    assert!(
        md.contains("| ``p\\|q`r`` | no | `\"<x>\" \\| \"a\\|b\"` | line one line \\| two |"),
        "{md}"
    );
    // The description's fence is text, and so is what follows it.
    assert!(md.contains("\n\\`\\`\\`\nunclosed fence\n"), "{md}");
}

// --- hostile documents ---

#[test]
fn a_document_that_is_not_an_object() {
    for spec in [json!(null), json!("openrpc"), json!(42), json!([1, 2])] {
        let (md, html) = both(&spec);
        assert!(md.contains("not an OpenRPC object"), "{md}");
        assert!(md.contains("This document describes no methods."));
        assert!(html.contains("not an OpenRPC object"));
        assert!(md.starts_with("# svc\n"), "the name is the title: {md}");
    }
}

#[test]
fn methods_missing_or_not_an_array() {
    let (md, _) = both(&json!({ "openrpc": "1.3.2", "info": { "title": 5 } }));
    assert!(md.contains("The document has no `methods`."), "{md}");
    assert!(md.contains("- Methods: 0"));
    assert!(
        md.starts_with("# svc\n"),
        "a title that is not a string is ignored"
    );
    let (md, _) = both(&json!({ "methods": { "echo": {} } }));
    assert!(
        md.contains("`methods` is an object, not an array; no methods shown."),
        "{md}"
    );
}

#[test]
fn a_method_that_is_not_an_object_is_skipped_with_a_note() {
    let spec = json!({ "methods": ["echo", { "name": "real", "params": [] }, 7, null] });
    let (md, _) = both(&spec);
    assert!(
        md.contains("methods\\[0\\] is a string, not a Method object; skipped."),
        "{md}"
    );
    assert!(md.contains("methods\\[2\\] is a number"));
    assert!(md.contains("methods\\[3\\] is null"));
    assert!(md.contains("## `real`"));
    assert!(md.contains("- Methods: 1"));
}

#[test]
fn params_and_members_of_the_wrong_kind() {
    let spec = json!({ "methods": [
        { "name": "a", "params": "x", "result": "y", "errors": { "code": 1 }, "examples": 3, "paramStructure": 9 },
        { "name": "b", "params": ["p", 3, { "schema": "string" }, { "name": "n", "schema": 42 }], "errors": ["e", { "message": "no code" }] },
        { "name": "c", "params": [], "examples": ["x", { "name": "e", "params": "no", "result": "no" }] },
        { "params": [] },
    ]});
    let (md, html) = both(&spec);
    for part in [
        "`params` is a string, not an array; no params shown.",
        "result is a string, not a Content Descriptor.",
        "`errors` is an object, not an array.",
        "`examples` is a number, not an array.",
        "paramStructure 9 is not by-name, by-position or either; read as either.",
        "params\\[0\\] is a string, not a Content Descriptor.",
        "| `params[1]` | no | `invalid content descriptor` |  |",
        "| `params[2]` | no | `invalid schema (a string)` |  |",
        "| `n` | no | `invalid schema (a number)` |  |",
        "errors\\[0\\] is a string, not an Error object.",
        "| ? | no code |",
        "examples\\[0\\] is a string, not an Example Pairing.",
        "examples\\[1\\].params is a string, not an array.",
        "examples\\[1\\].result is a string, not an Example object.",
        "This method has no name.",
        "## `methods[3]`",
    ] {
        assert!(md.contains(part), "missing {part:?} in:\n{md}");
    }
    assert!(html.contains("This method has no name."));
}

#[test]
fn dangling_refs_say_unresolved() {
    let spec = json!({ "methods": [{
        "name": "m",
        "params": [
            { "name": "a", "schema": { "$ref": "#/components/schemas/Nope" } },
            { "$ref": "#/components/contentDescriptors/Gone" },
        ],
        "result": { "name": "r", "schema": { "type": "array", "items": { "$ref": "#/nowhere" } } },
        "errors": [{ "$ref": "#/components/errors/Missing" }],
    }]});
    let (md, html) = both(&spec);
    assert!(
        md.contains("| `a` | no | `unresolved $ref #/components/schemas/Nope` |"),
        "{md}"
    );
    assert!(
        md.contains(
            "| `params[1]` | no | `unresolved $ref #/components/contentDescriptors/Gone` |"
        ),
        "{md}"
    );
    assert!(md.contains("(`array<unresolved $ref #/nowhere>`)"), "{md}");
    assert!(
        md.contains("| ? | unresolved $ref #/components/errors/Missing |"),
        "{md}"
    );
    assert!(md.contains("> **Note:** unresolved $ref #/components/schemas/Nope"));
    assert!(
        html.contains("unresolved $ref #&#x2f;components&#x2f;schemas&#x2f;Nope"),
        "{html}"
    );
}

#[test]
fn ref_cycles_render_by_name_with_a_note() {
    let spec = json!({
        "methods": [{
            "name": "tree",
            "params": [{ "name": "a", "schema": { "$ref": "#/components/schemas/A" } }],
            "result": { "name": "n", "schema": { "$ref": "#/components/schemas/Node" } },
        }],
        "components": { "schemas": {
            "A": { "type": "object", "properties": { "b": { "$ref": "#/components/schemas/B" } } },
            "B": { "type": "object", "properties": { "a": { "$ref": "#/components/schemas/A" } } },
            "Node": { "type": "object", "properties": { "kids": { "type": "array", "items": { "$ref": "#/components/schemas/Node" } } } },
        }},
    });
    let (md, _) = both(&spec);
    assert!(md.contains("| `a` | no | `A` |"), "{md}");
    assert!(md.contains("**Result**: `n` (`Node`)"));
    assert!(
        md.contains("> **Note:** cycle: #/components/schemas/A refers back to itself"),
        "{md}"
    );
    assert!(md.contains("> **Note:** cycle: #/components/schemas/Node refers back to itself"));
    assert!(md.contains("### `Node`\n\n`{kids?: array<Node>}`"), "{md}");
    // The generated example stops where the cycle was cut.
    assert!(md.contains("\"result\": {\n    \"kids\": []\n  }"), "{md}");
}

/// Level i refers twice to level i+1: 2^40 copies if nothing stopped it.
fn fan_out_bomb(levels: usize) -> Value {
    let mut schemas = serde_json::Map::new();
    for i in 0..levels {
        let next = json!({ "$ref": format!("#/components/schemas/L{}", i + 1) });
        schemas.insert(
            format!("L{i}"),
            json!({ "type": "object", "properties": { "left": next, "right": next } }),
        );
    }
    schemas.insert(format!("L{levels}"), json!({ "type": "string" }));
    json!({
        "methods": [{
            "name": "boom",
            "params": [{ "name": "x", "schema": { "$ref": "#/components/schemas/L0" } }],
            "result": { "name": "y", "schema": { "$ref": "#/components/schemas/L0" } },
        }],
        "components": { "schemas": schemas },
    })
}

#[test]
fn a_fan_out_bomb_is_truncated_and_says_so() {
    let (md, html) = both(&fan_out_bomb(40));
    assert!(md.contains("| `x` | no | `L0` |"), "{}", &md[..2000]);
    assert!(md.contains("> **Note:** truncated:"), "no truncation note");
    assert!(md.contains("### `L39`\n\n`{left?: L40, right?: L40}`"));
    // Bounded output: the generated example is capped, the schemas are named, not expanded.
    assert!(md.len() < 1 << 20, "{} bytes", md.len());
    assert!(html.len() < 1 << 20, "{} bytes", html.len());
}

#[test]
fn ten_thousand_methods() {
    let methods: Vec<Value> = (0..10_000)
        .map(|i| {
            json!({
                "name": format!("m{i}"),
                "summary": format!("Method {i}."),
                "params": [{ "name": "x", "required": true, "schema": { "$ref": "#/components/schemas/X" } }],
                "result": { "name": "y", "schema": { "type": "integer" } },
            })
        })
        .collect();
    let spec =
        json!({ "methods": methods, "components": { "schemas": { "X": { "type": "string" } } } });
    let (md, html) = both(&spec);
    assert!(md.contains("- Methods: 10000"));
    assert!(md.contains("| [`m9999`](#method-m9999) | Method 9999. |"));
    assert!(md.contains("<a id=\"method-m9999\"></a>"));
    assert!(html.contains("id=\"method-m9999\""));
}

#[test]
fn ten_thousand_methods_of_one_name_get_unique_anchors() {
    let methods: Vec<Value> = (0..10_000)
        .map(|_| json!({ "name": "same name", "params": [] }))
        .collect();
    let (md, _) = both(&json!({ "methods": methods }));
    assert!(md.contains("(#method-same-name)"));
    assert!(md.contains("(#method-same-name-2)"));
    assert!(md.contains("(#method-same-name-10000)"));
}

#[test]
fn deep_nesting_is_cut() {
    let mut schema = json!({ "type": "string" });
    for _ in 0..1_000 {
        schema = json!({ "type": "array", "items": schema });
    }
    let spec =
        json!({ "methods": [{ "name": "deep", "params": [{ "name": "d", "schema": schema }] }] });
    let (md, _) = both(&spec);
    assert!(
        md.contains("| `d` | no | `array<array<array<array<…>>>>` |"),
        "{md}"
    );
    assert!(md.contains("nested deeper than"), "{md}");
}

#[test]
fn many_notes_are_counted_not_listed() {
    let methods: Vec<Value> = (0..50).map(|i| json!(i)).collect();
    let (md, _) = both(&json!({ "methods": methods }));
    assert_eq!(md.matches("> **Note:**").count(), 11, "{md}");
    assert!(md.contains("… and 40 more notes like these."));
}

// --- the budget ---

/// 100 methods, each with 10 examples whose params all refer to one 200 KB value: 200 MB of
/// examples from a 200 KB document.
fn example_bomb() -> Value {
    let methods: Vec<Value> = (0..100)
        .map(|i| {
            let pairing = json!({
                "name": "big",
                "params": [{ "$ref": "#/components/examples/Big" }],
                "result": { "name": "r", "value": 1 },
            });
            json!({
                "name": format!("m{i}"),
                "params": [{ "name": "x", "schema": { "type": "string" } }],
                "result": { "name": "r", "schema": { "type": "integer" } },
                "examples": vec![pairing; 10],
            })
        })
        .collect();
    json!({
        "openrpc": "1.3.2",
        "info": { "title": "bomb", "version": "1" },
        "methods": methods,
        "components": { "examples": { "Big": { "name": "x", "value": "b".repeat(200_000) } } },
    })
}

#[test]
fn a_page_over_the_output_budget_is_the_short_page_with_a_link() {
    let spec = example_bomb();
    let s = DocService {
        title: Some("Bomb <b>#</b> [x](y)"),
        ..svc("bomb", &spec)
    };
    for format in [Format::Markdown, Format::Html] {
        assert_eq!(
            page(&s, format, &Budget::default()),
            Err(OverBudget::Output(budget::DEFAULT_OUTPUT))
        );
    }
    let md = markdown(&s);
    assert_eq!(
        md,
        "# Bomb &lt;b>#&lt;/b> \\[x\\](y)\n\n- Service: `bomb`\n\n> **Note:** This API document is too large or complex to render: the page would be larger than 16 MiB.\n\nThe document itself: [`/docs/bomb/openrpc.json`](/docs/bomb/openrpc.json)\n"
    );
    let html = html(&s);
    assert!(
        html.starts_with("<!DOCTYPE html>") && html.len() < 8 * 1024,
        "{html}"
    );
    assert!(
        html.contains("<h1>Bomb &lt;b&gt;#&lt;&#x2f;b&gt; [x](y)</h1>"),
        "{html}"
    );
    assert!(html.contains("too large or complex to render: the page would be larger than 16 MiB."));
    assert!(
        html.contains("<a href=\"&#x2f;docs&#x2f;bomb&#x2f;openrpc.json\">"),
        "{html}"
    );
}

#[test]
fn refs_that_copy_too_much_text_are_cut_and_over_budget() {
    // Forty params of one schema with a 1 MB description: 40 MB copied for a 1 MB document,
    // though the page itself shows only the type's name. The resolver copies at most 1 MiB of
    // text per method: the first param is expanded, the others keep the name with a note.
    let params: Vec<Value> = (0..40)
        .map(|i| json!({ "name": format!("p{i}"), "schema": { "$ref": "#/components/schemas/S" } }))
        .collect();
    let spec = json!({
        "methods": [{ "name": "m", "params": params }],
        "components": { "schemas": { "S": { "type": "string", "description": "d".repeat(1 << 20) } } },
    });
    let s = svc("svc", &spec);
    let md = page(&s, Format::Markdown, &Budget::default()).unwrap();
    assert!(
        md.contains("| `p0` | no | `S` |") && md.contains("| `p39` | no | `S` |"),
        "{}",
        &md[..md.len().min(4000)]
    );
    assert!(md.len() < 4 << 20, "{} bytes", md.len());
    // A page budget below what the resolver copies stops the page.
    let tight = Budget {
        copied: 512 << 10,
        ..Budget::default()
    };
    assert_eq!(
        page(&s, Format::Markdown, &tight),
        Err(OverBudget::Copied(512 << 10))
    );
}

#[test]
fn a_render_over_the_cpu_budget_stops() {
    let spec = fan_out_bomb(40);
    let tight = Budget {
        cpu: std::time::Duration::from_millis(1),
        ..Budget::default()
    };
    let s = svc("svc", &spec);
    assert_eq!(
        page(&s, Format::Html, &tight),
        Err(OverBudget::Cpu(std::time::Duration::from_millis(1)))
    );
    let md = too_large(&s, Format::Markdown, &OverBudget::Cpu(tight.cpu));
    assert!(
        md.contains("rendering it takes more than 0.001 s of CPU time."),
        "{md}"
    );
}

#[test]
fn within_the_budget_a_page_is_what_it_always_was() {
    let spec = example_spec();
    let s = svc("example", &spec);
    for format in [Format::Markdown, Format::Html] {
        let unlimited = page(&s, format, &Budget::UNLIMITED).unwrap();
        assert_eq!(page(&s, format, &Budget::default()).unwrap(), unlimited);
    }
    assert_eq!(
        markdown(&s),
        page(&s, Format::Markdown, &Budget::UNLIMITED).unwrap()
    );
}

// --- the index ---

fn entries() -> Vec<IndexEntry> {
    let entry = |name: &str, state: &str, count: Option<usize>| IndexEntry {
        name: name.to_owned(),
        title: Some(format!("{name} title")),
        version: Some("1.0".to_owned()),
        description: Some("Does <b>things</b> | stuff".to_owned()),
        methods_count: count,
        spec_state: state.to_owned(),
    };
    vec![
        entry("zeta", "ok", Some(3)),
        entry("alpha beta", "invalid", Some(1)),
        entry("gone", "absent", None),
    ]
}

#[test]
fn index_markdown_is_sorted_and_links_pages() {
    let md = index_markdown(&entries());
    let alpha = md.find("alpha beta").unwrap();
    let zeta = md.find("zeta").unwrap();
    let gone = md.find("gone").unwrap();
    assert!(alpha < gone && gone < zeta, "{md}");
    assert!(md.contains("| [`alpha beta`](alpha%20beta.md) | alpha beta title | 1.0 | 1 | invalid | Does &lt;b>things&lt;/b> \\| stuff |"), "{md}");
    assert!(
        md.contains("| `gone` | gone title | 1.0 |  | absent |"),
        "{md}"
    );
    assert!(md.contains("[`zeta`](zeta.md)"));
    assert_eq!(index_markdown(&[]), "# API docs\n\nNo services.\n");
}

/// A service called `index` (any case) keeps its own page file, which the index links: the
/// index's `index.md` is not its.
#[test]
fn a_service_called_index_does_not_take_the_index_file() {
    assert_eq!(pages::page_file("index", "md"), "index.service.md");
    assert_eq!(pages::page_file("Index", "html"), "Index.service.html");
    assert_eq!(pages::page_file("indexer", "md"), "indexer.md");
    let mut entries = entries();
    entries[0].name = "index".to_owned();
    let md = index_markdown(&entries);
    assert!(md.contains("[`index`](index.service.md)"), "{md}");
}

#[test]
fn index_html_uses_the_callers_links_and_escapes() {
    let html = index_html(&entries(), &|name| format!("/docs/{name}?x=\"y\""));
    assert!(
        html.contains("<a href=\"&#x2f;docs&#x2f;zeta?x=&quot;y&quot;\"><code>zeta</code></a>"),
        "{html}"
    );
    assert!(html.contains("<td><code>gone</code></td>"));
    assert!(html.contains("Does &lt;b&gt;things&lt;&#x2f;b&gt; | stuff"));
    assert!(!html.contains("<b>"));
}

/// A bidirectional control in a spec (U+202E in a method's name, a param's, an example's
/// value, the title) is written out as `\u202E` in both formats: it reorders none of the
/// page's own text around it (a name inside an example's JSON or a type, the `<title>`).
#[test]
fn bidi_controls_are_written_out() {
    let spec = json!({
        "openrpc": "1.3.2",
        "info": {"title": "Man\u{202E}Title", "version": "1"},
        "methods": [{
            "name": "get\u{202E}Evil",
            "summary": "sum\u{2067}mary",
            "params": [{"name": "p\u{202E}aram", "schema": {"type": "object",
                "properties": {"f\u{202E}ld": {"type": "string"}}}}],
            "result": {"name": "r", "schema": {"type": "string", "enum": ["a\u{202E}b"]}},
            "examples": [{"name": "ex", "params": [{"name": "p\u{202E}aram", "value": {"f\u{202E}ld": "x\u{202E}y"}}],
                "result": {"name": "r", "value": "a\u{202E}b"}}],
        }],
    });
    let (md, html) = both(&spec);
    for (format, out) in [("markdown", &md), ("html", &html)] {
        let controls: Vec<char> = out
            .chars()
            .filter(|c| matches!(c, '\u{202A}'..='\u{202E}' | '\u{2066}'..='\u{2069}'))
            .collect();
        assert!(controls.is_empty(), "{format}: {controls:?}");
        assert!(out.contains("get\\u202EEvil"), "{format}");
    }
    assert!(html.contains("<title>Man\\u202ETitle"), "{html}");
}
