//! The filters one by one, then whole pages held to a real GFM parser (comrak, cmark-gfm's
//! rules, raw HTML on): the bypasses found so far, each by name, and generated hostile text in
//! every field of a document that reaches the page.

use std::collections::{HashMap, HashSet};

use comrak::nodes::{AstNode, NodeValue};
use comrak::{Arena, Options, format_html, parse_document};
use serde_json::{Value, json};

use super::*;
use crate::docs::{DocService, IndexEntry, index_markdown, markdown};

// --- the filters ---

#[test]
fn raw_html_and_entities_are_shown_as_text() {
    assert_eq!(
        md_text("a <script>alert(1)</script> b"),
        "a &lt;script>alert(1)&lt;/script> b"
    );
    assert_eq!(
        md_text("x < y & 1&lt;2 &#60;"),
        "x &lt; y & 1&amp;lt;2 &amp;#60;"
    );
    assert_eq!(md_text("keep `Vec<u8>` as code"), "keep `Vec<u8>` as code");
    assert_eq!(md_text("lone ` then <i>"), "lone \\` then &lt;i>");
}

#[test]
fn no_line_opens_a_block() {
    let text = "# h\n> q\n- l\n+ l\n* l\n1. o\n2) o\n    code\n===\n~~~\n<div>\n| a |\n[x]: /u\n: d\n___\n\\- e";
    assert_eq!(
        md_text(text),
        "\\# h\n\\> q\n\\- l\n\\+ l\n\\* l\n1\\. o\n2\\) o\ncode\n\\===\n\\~~~\n&lt;div>\n\\| a \\|\n\\[x\\]: /u\n\\: d\n\\___\n\\- e"
    );
    // Only a list marker is escaped: a number that starts a line stays as it is.
    assert_eq!(md_text("1.5 or 2)x"), "1.5 or 2)x");
}

#[test]
fn paragraphs_code_spans_and_emphasis_survive() {
    assert_eq!(
        md_text("  one  \n\n\n\t two\nthree\\"),
        "one\n\ntwo\nthree\\\\"
    );
    assert_eq!(md_text("a ``x`y`` b"), "a ``x`y`` b");
    assert_eq!(md_text("x *a* __b__ ~~c~~"), "x *a* __b__ ~~c~~");
    // A fence within one paragraph is a code span; its lines are spaces.
    assert_eq!(md_text("```json\n{\"a\": 1}\n```"), "`json {\"a\": 1}`");
    // An escaped backtick opens nothing; the next one does.
    assert_eq!(md_text("\\`a` <b>`"), "\\`a` <b>`");
    // A run is closed by the next run of its length; one that is not closed is escaped.
    assert_eq!(md_text("` `` ``` ``"), "\\` ````  ```  ````");
}

#[test]
fn links_and_autolinks_are_text() {
    assert_eq!(
        md_line("[x](javascript:alert(1)) ![i](data:x)"),
        "\\[x\\](javascript:alert(1)) !\\[i\\](data:x)"
    );
    assert_eq!(
        md_line("www.a.b WWW.a.b http://a.b a@b.c <http://a>"),
        "www\\.a.b WWW\\.a.b http\\://a.b a\\@b.c &lt;http\\://a>"
    );
}

#[test]
fn lines_are_one_line() {
    assert_eq!(md_line("  a\n\n  b  \r\n"), "a   b");
    assert_eq!(md_line("# not a heading #"), "\\# not a heading \\#");
}

#[test]
fn cells_stay_one_cell() {
    assert_eq!(md_cell("a | b\nc\r\nd"), "a \\| b c d");
    assert_eq!(md_cell("`x | y`"), "`x \\| y`");
    assert_eq!(md_cell("a\\|b"), "a\\|b");
    assert_eq!(md_code_cell("p|q`r"), "``p\\|q`r``");
}

#[test]
fn code_spans_hold_anything() {
    assert_eq!(md_code("echo"), "`echo`");
    assert_eq!(md_code("a`b"), "``a`b``");
    assert_eq!(md_code("`x`"), "`` `x` ``");
    assert_eq!(md_code("two\nlines"), "`two lines`");
    assert_eq!(md_code(""), "` `");
}

#[test]
fn fences_outgrow_their_content() {
    assert_eq!(md_fence("{}"), "```");
    assert_eq!(md_fence("\"````\""), "`````");
}

// --- the oracle ---

/// The parser's options: GFM (tables, strikethrough, autolinks, task lists) and the common
/// extensions that make links or blocks (footnotes, description lists, wikilinks, alerts),
/// raw HTML passed through.
fn gfm() -> Options<'static> {
    let mut o = Options::default();
    o.extension.table = true;
    o.extension.strikethrough = true;
    o.extension.autolink = true;
    o.extension.tasklist = true;
    o.extension.footnotes = true;
    o.extension.description_lists = true;
    o.extension.wikilinks_title_after_pipe = true;
    o.extension.alerts = true;
    o.render.r#unsafe = true;
    o
}

/// What a page is made of, as a GFM parser reads it: every node but paragraphs and inline
/// text with its formatting (what service text may make), with its depth. An error names
/// what only service text could have made: raw HTML other than the template's anchors
/// (`<a id="…"></a>`), an image, a link to anything but an anchor of the page, a page of
/// the index or the service's generated clients (`/docs/{name}/client.py|.ts`).
fn skeleton(md: &str) -> Result<Vec<String>, String> {
    let arena = Arena::new();
    let root = parse_document(&arena, md, &gfm());
    let mut walk = Walk::default();
    walk.node(root, 0)?;
    for url in &walk.links {
        let to_anchor = url
            .strip_prefix('#')
            .is_some_and(|id| walk.anchors.contains(id));
        let encoded = |name: &str| {
            !name.is_empty()
                && name
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"%._~-".contains(&b))
        };
        let to_page = url.strip_suffix(".md").is_some_and(encoded);
        let to_client = ["/client.py", "/client.ts"].iter().any(|file| {
            url.strip_prefix("/docs/")
                .and_then(|u| u.strip_suffix(file))
                .is_some_and(encoded)
        });
        if !(to_anchor || to_page || to_client) {
            return Err(format!("a link to {url:?}"));
        }
    }
    Ok(walk.kinds)
}

#[derive(Default)]
struct Walk {
    kinds: Vec<String>,
    anchors: HashSet<String>,
    links: Vec<String>,
}

impl Walk {
    fn node<'a>(&mut self, node: &'a AstNode<'a>, depth: usize) -> Result<(), String> {
        let kind = match &node.data().value {
            NodeValue::Paragraph
            | NodeValue::Text(_)
            | NodeValue::SoftBreak
            | NodeValue::Code(_)
            | NodeValue::Emph
            | NodeValue::Strong
            | NodeValue::Strikethrough
            | NodeValue::Escaped => None,
            // The template's anchors, `<a id="…"></a>` (inline HTML: a tag and its end).
            NodeValue::HtmlInline(h) if h == "</a>" => Some("anchor end".to_owned()),
            NodeValue::HtmlInline(h) => {
                let id = h
                    .strip_prefix("<a id=\"")
                    .and_then(|l| l.strip_suffix("\">"))
                    .filter(|id| {
                        !id.is_empty()
                            && id
                                .bytes()
                                .all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b))
                    })
                    .ok_or_else(|| format!("inline HTML {h:?}"))?;
                self.anchors.insert(id.to_owned());
                Some("anchor".to_owned())
            }
            NodeValue::HtmlBlock(h) => return Err(format!("raw HTML {:?}", h.literal)),
            NodeValue::Raw(r) => return Err(format!("raw output {r:?}")),
            NodeValue::Image(i) => return Err(format!("an image of {:?}", i.url)),
            NodeValue::Link(l) => {
                self.links.push(l.url.clone());
                Some("link".to_owned())
            }
            NodeValue::Heading(h) => Some(format!("h{}", h.level)),
            NodeValue::CodeBlock(c) => Some(format!("code block {:?} {}", c.info, c.fenced)),
            NodeValue::TableRow(header) => Some(format!("row {header}")),
            other => {
                let name = format!("{other:?}");
                Some(name.split(['(', ' ', '{']).next().unwrap_or("").to_owned())
            }
        };
        let depth = match kind {
            Some(kind) => {
                self.kinds.push(format!("{depth} {kind}"));
                depth + 1
            }
            None => depth,
        };
        for child in node.children() {
            self.node(child, depth)?;
        }
        Ok(())
    }
}

fn html_of(md: &str) -> String {
    let arena = Arena::new();
    let root = parse_document(&arena, md, &gfm());
    let mut html = String::new();
    format_html(root, &gfm(), &mut html).unwrap();
    html
}

// --- hostile documents ---

/// How many strings [`rich`] takes.
const SLOTS: usize = 56;

/// A document with a string of `t` in every field that reaches the page (info, methods,
/// params, schemas, results, errors, examples, tags, components), and what the router adds
/// (the manifest's title, version and description, why the document is invalid); the index
/// entries of the service. `overrides` picks the manifest's fields over the document's.
///
/// Keys get a suffix so that they stay distinct; the one `$ref` that cannot resolve whatever
/// its text, and no other, leaves a note.
fn rich(t: &[String], overrides: bool) -> (Value, [Option<String>; 4], Vec<IndexEntry>) {
    let s = |i: usize| Value::String(t[i].clone());
    let key = |i: usize, n: u8| format!("{}{n}", t[i]);
    let spec = json!({
        "openrpc": s(5),
        "info": { "title": s(6), "version": s(7), "description": s(8), "termsOfService": s(9) },
        "servers": [{ "name": s(10), "url": s(10) }],
        "methods": [
            {
                "name": s(11),
                "summary": s(12),
                "description": s(13),
                "tags": [{ "name": s(14), "description": s(15) }],
                "externalDocs": { "url": s(16), "description": s(16) },
                "paramStructure": "by-name",
                "params": [
                    {
                        "name": s(17),
                        "summary": s(18),
                        "description": s(19),
                        "required": true,
                        "schema": {
                            "type": "object",
                            "title": s(20),
                            "description": s(20),
                            "properties": {
                                key(21, 0): { "type": "string", "enum": [s(22), s(23)] },
                                key(24, 1): { "$ref": "#/components/schemas/Thing" },
                            },
                            "required": [key(21, 0)],
                        },
                    },
                    { "name": s(25), "description": s(26), "schema": { "type": s(27) } },
                    {
                        "name": s(28),
                        "schema": { "$ref": format!("#/components/schemas/Missing{}", t[29]) },
                    },
                    {
                        "name": s(30),
                        "schema": { "const": s(31), "format": s(32), "pattern": s(32) },
                    },
                ],
                "result": {
                    "name": s(33),
                    "description": s(34),
                    "schema": { "type": "array", "items": { "enum": [s(35), 1] } },
                },
                "errors": [
                    { "code": s(36), "message": s(37), "data": s(38) },
                    { "code": -32000, "message": s(39) },
                ],
                "examples": [{
                    "name": s(40),
                    "summary": s(41),
                    "description": s(42),
                    "params": [
                        { "name": s(43), "value": s(44) },
                        { "value": { t[44].clone(): [s(43)] } },
                    ],
                    "result": { "name": s(45), "value": s(45) },
                }],
            },
            {
                "name": s(46),
                "summary": s(47),
                "deprecated": true,
                "params": [],
                "result": {
                    "name": s(48),
                    "schema": { "type": "string", "default": s(48), "examples": [s(49)] },
                },
            },
        ],
        "components": { "schemas": {
            key(50, 0): { "type": "string", "description": s(51), "examples": [s(51)] },
            "Thing": {
                "type": "object",
                "description": s(52),
                "properties": { key(53, 0): { "type": "string", "default": s(53) } },
            },
            key(54, 2): { "title": s(55), "enum": [s(55)] },
        }},
    });
    let given = |i: usize| overrides.then(|| t[i].clone());
    let manifest = [given(1), given(2), given(3), Some(t[4].clone())];
    // Names sort the same whatever the text: `a…`, `b…`.
    let entry = |prefix: &str, i: usize, state: &str| IndexEntry {
        name: format!("{prefix}{}", t[i]),
        title: Some(t[i + 1].clone()),
        version: Some(t[i + 2].clone()),
        description: Some(t[i + 3].clone()),
        methods_count: Some(2),
        spec_state: state.to_owned(),
    };
    let entries = vec![entry("a", 0, "ok"), entry("b", 4, "absent")];
    (spec, manifest, entries)
}

/// The service page and the index for the strings `t`.
fn pages(t: &[String], overrides: bool) -> (String, String) {
    let (spec, [title, version, description, invalid], entries) = rich(t, overrides);
    let svc = DocService {
        name: &t[0],
        spec: &spec,
        title: title.as_deref(),
        version: version.as_deref(),
        description: description.as_deref(),
        invalid: invalid.as_deref(),
        served: true,
    };
    (markdown(&svc), index_markdown(&entries))
}

/// The same strings made plain: letters only, distinct per slot, blank where the hostile
/// one is blank (a blank field is left out of the page, which changes its shape).
fn plain(t: &[String]) -> Vec<String> {
    t.iter()
        .enumerate()
        .map(|(i, s)| {
            if s.trim().is_empty() {
                s.clone()
            } else {
                format!("x{}", char::from(b'a' + (i % 26) as u8)).repeat(1 + i / 26)
            }
        })
        .collect()
}

/// The slots whose blankness can change what a page is made of: the manifest's and the
/// document's version and the `openrpc` member (a line each), the method names (a note when
/// blank). A blank text is left out of the page, and plain text is blank where hostile text is.
const SHAPE_SLOTS: [usize; 5] = [2, 5, 7, 11, 46];

/// Why the pages of the strings `t` are not inert, if they are not: service text made raw
/// HTML, an image, a link, or changed what the page is made of (a heading, a code block, a
/// list, a quote, a table, a cell…) against the pages of the same document with plain text.
///
/// `plain_shapes` keeps the plain pages' shapes by the blankness of [`SHAPE_SLOTS`]: a page
/// of that shape passes at once; any other is held to the plain pages of its own strings, so
/// the cache only saves time and never decides.
fn check(
    t: &[String],
    overrides: bool,
    plain_shapes: &mut HashMap<(Vec<bool>, bool), [Vec<String>; 2]>,
) -> Result<(), String> {
    let (page, index) = pages(t, overrides);
    let got = [
        skeleton(&page).map_err(|e| format!("page: {e}"))?,
        skeleton(&index).map_err(|e| format!("index: {e}"))?,
    ];
    let key = (
        SHAPE_SLOTS
            .iter()
            .map(|i| t[*i].trim().is_empty())
            .collect(),
        overrides,
    );
    if plain_shapes.get(&key) == Some(&got) {
        return Ok(());
    }
    let (p, i) = pages(&plain(t), overrides);
    let expected = [skeleton(&p)?, skeleton(&i)?];
    for (got, expected, what) in [
        (&got[0], &expected[0], "page"),
        (&got[1], &expected[1], "index"),
    ] {
        if got != expected {
            let at = got.iter().zip(expected).position(|(a, b)| a != b);
            let at = at.unwrap_or(got.len().min(expected.len()));
            return Err(format!(
                "{what}: node {at} is {:?}, the template's is {:?}",
                got.get(at),
                expected.get(at)
            ));
        }
    }
    plain_shapes.insert(key, expected);
    Ok(())
}

/// `text` in every field: the page and the index are inert, and their HTML (raw HTML on) has
/// none of `tags`.
fn assert_inert_everywhere(text: &str, tags: &[&str]) {
    let t: Vec<String> = (0..SLOTS).map(|_| text.to_owned()).collect();
    for overrides in [false, true] {
        let result = check(&t, overrides, &mut HashMap::new());
        let (page, index) = pages(&t, overrides);
        assert!(result.is_ok(), "{}:\n{page}", result.unwrap_err());
        for md in [&page, &index] {
            let html = html_of(md);
            for tag in tags {
                assert!(!html.contains(tag), "{tag} in\n{html}\nfrom\n{md}");
            }
        }
    }
}

// --- the bypasses found, each by name ---

/// `\`` is a literal backtick to a renderer, not the start of a code span in which `<` would
/// be safe.
#[test]
fn an_escaped_backtick_starts_no_code_span() {
    assert_inert_everywhere("\\`<img src=x onerror=alert(1)>`", &["<img"]);
}

/// A backtick fence's info string may not hold a backtick, so ```` ```a`b ```` opens no fence
/// and the lines after it are not code.
#[test]
fn a_backtick_in_an_info_string_opens_no_fence() {
    assert_inert_everywhere(
        "```a`b\n<img src=x onerror=alert(1)>\n<script>alert(1)</script>",
        &["<img", "<script"],
    );
}

/// A title, a summary or a table cell that looks like a fence is text (it was copied as it
/// was, and a line break added after it to close the fence).
#[test]
fn a_fence_looking_title_summary_or_cell_is_text() {
    assert_inert_everywhere("~~~ <script>alert(1)</script>", &["<script"]);
    assert_inert_everywhere("```", &[]);
}

/// Links and images are text, whatever their target.
#[test]
fn javascript_and_data_links_are_text() {
    assert_inert_everywhere(
        "[x](javascript:alert(1)) [y](vbscript:msgbox) ![z](data:text/html,<script>)\n\n[r]: javascript:alert(1)\n[r]",
        &["href=\"javascript", "href=\"vbscript", "<img", "src="],
    );
}

/// GFM autolinks (www., http://, e-mail) are text too.
#[test]
fn autolinks_are_text() {
    assert_inert_everywhere(
        "see www.example.com, http://x.y/z, <javascript:alert(1)> and a@b.co",
        &["href=\"http", "href=\"mailto", "href=\"javascript"],
    );
}

/// A line that began with a form feed (or another space that is not indentation to
/// CommonMark) kept its first character: comrak read `\f-` under a line as the delimiter row
/// of a table. Found by the property test.
#[test]
fn a_line_trimmed_of_any_whitespace_opens_no_block() {
    assert_inert_everywhere("x\n\x0c-\n\u{a0}# y\n\x0b> z", &[]);
}

/// A list item that began with a link to a method name was read as a link reference
/// definition (`[label]: target`, no matter the code span): the name defined a link target
/// and the entry of the contents was gone.
#[test]
fn a_method_name_defines_no_link() {
    // The summary after the link is the definition's title, in quotes.
    assert_inert_everywhere("x]: javascript:alert(1) \"", &["href=\"javascript"]);
}

// --- generated hostile text ---

/// What hostile strings are made of.
const PIECES: [&str; 70] = [
    "`",
    "``",
    "```",
    "~~~",
    "~",
    "<",
    ">",
    "&",
    "[",
    "]",
    "(",
    ")",
    "!",
    "#",
    "|",
    "*",
    "_",
    "\\",
    "\n",
    "\r",
    "\r\n",
    "\n\n",
    " ",
    "    ",
    "\t",
    "-",
    "+",
    "=",
    ":",
    ".",
    "1.",
    "2)",
    "@",
    "a",
    "b1",
    "é",
    "\u{a0}",
    "\0",
    "javascript:",
    "vbscript:",
    "data:",
    "alert(1)",
    "<script>",
    "</script>",
    "<img src=x onerror=alert(1)>",
    "<a href=\"javascript:x\">",
    "&#60;",
    "&lt;",
    "&#x3C;script&#x3E;",
    "&amp;",
    "<!--",
    "-->",
    "<![CDATA[",
    "]]>",
    "<?",
    "<!X",
    "www.",
    "http://",
    "https://a.b/c",
    "a@b.co",
    "[x]: /u",
    "![i](",
    "](",
    "<div>",
    "\"",
    "'",
    "[^1]",
    "[[w]]",
    "\x0c",
    "0",
];

/// A hostile string: up to 12 pieces.
fn hostile(rng: &mut fastrand::Rng) -> String {
    (0..rng.usize(..12))
        .map(|_| PIECES[rng.usize(..PIECES.len())])
        .collect()
}

/// Generated hostile text in every field of a document, rendered as Markdown and read back by
/// a GFM parser with raw HTML on: no raw HTML but the template's anchors, no image, no link
/// but the template's, and every heading, code block, list, quote, table and cell where the
/// template put it. `HERO_FUZZ_CASES` sets the count (`make fuzz` runs 1,000,000 in
/// release); without it, 500 pages (each case renders a whole page, about a thousand times a
/// codec case).
#[test]
fn markdown_of_hostile_documents_stays_inert() {
    let (cases, seed, mut rng) = crate::test_util::fuzz_setup();
    let cases = if std::env::var_os("HERO_FUZZ_CASES").is_some() {
        cases
    } else {
        500
    };
    let mut plain_shapes = HashMap::new();
    for case in 0..cases {
        let t: Vec<String> = (0..SLOTS).map(|_| hostile(&mut rng)).collect();
        let overrides = rng.bool();
        if let Err(e) = check(&t, overrides, &mut plain_shapes) {
            panic!(
                "seed {seed} case {case}: {e}\nstrings: {t:?}\n{}",
                pages(&t, overrides).0
            );
        }
    }
    eprintln!("markdown: {cases} hostile documents, every page inert (seed {seed})");
}
