use bytes::BytesMut;

use super::{Answer, EXCERPT, excerpt, not_a_reply};

fn answer(status: u16, body: &str) -> Answer {
    Answer {
        status,
        body: BytesMut::from(body.as_bytes()),
    }
}

#[test]
fn an_html_error_page_is_quoted_without_its_markup() {
    // Python's http.server's page for a handler that raised.
    let page = "<!DOCTYPE HTML>\n<html lang=\"en\">\n    <head>\n        <meta charset=\"utf-8\">\n        <title>Error response</title>\n    </head>\n    <body>\n        <h1>Error response</h1>\n        <p>Error code: 500</p>\n        <p>Message: Internal Server Error.</p>\n    </body>\n</html>\n";
    let m = not_a_reply("py", &answer(500, page), "something that is not JSON");
    assert_eq!(
        m,
        "service py answered HTTP 500 with something that is not JSON: \"Error response Error response Error code: 500 Message: Internal Server Error.\""
    );
}

#[test]
fn plain_text_is_one_line_cut_and_inert() {
    let text = format!(
        "Traceback (most recent call last):\n\t\u{202E}boom\u{7}\n{}",
        "x".repeat(500)
    );
    let m = not_a_reply("py", &answer(500, &text), "something that is not JSON");
    let quoted = m.split_once(": \"").unwrap().1;
    assert!(
        quoted.starts_with("Traceback (most recent call last): boom xxx"),
        "{m}"
    );
    assert!(quoted.ends_with("…\""), "cut with a mark: {m}");
    assert_eq!(quoted.chars().count(), EXCERPT + 2, "{m}");
    assert!(
        !m.chars().any(|c| c.is_control() || c == '\u{202E}'),
        "{m:?}"
    );
    // A markup-looking body that is not HTML keeps its angle brackets only if it does not
    // start with one.
    let m = not_a_reply("py", &answer(502, "bad gateway <oops>"), "x");
    assert!(m.ends_with(": \"bad gateway <oops>\""), "{m}");
    // Nothing to quote: no quotes.
    let m = not_a_reply("py", &answer(500, " \n"), "an empty body");
    assert_eq!(m, "service py answered HTTP 500 with an empty body");
}

#[test]
fn scripts_styles_and_references_of_a_page_are_not_quoted_raw() {
    let page = "<html><head><style>body{color:red}</style><SCRIPT type=x>var x='SSSS';</script></head>\
                <body><h1>Server &amp; Error</h1><p>The &lt;thing&gt; failed &#8212; &#x41;&bogus; &</p></body></html>";
    let m = not_a_reply("py", &answer(500, page), "x");
    assert!(
        m.ends_with(": \"Server & Error The <thing> failed \u{2014} A&bogus; &\""),
        "{m}"
    );
}

/// Generated bodies (markup, references, controls, bidi, broken UTF-8): the quote never
/// panics, stays one line of at most the excerpt's length, and carries nothing a terminal or
/// a reader's eye would take as layout.
#[test]
fn excerpt_never_panics_and_stays_one_line() {
    let (cases, seed, mut rng) = crate::test_util::fuzz_setup();
    const PIECES: &[&str] = &[
        "<",
        ">",
        "</",
        "<script>",
        "</SCRIPT>",
        "<style",
        "&",
        ";",
        "&amp;",
        "&#x",
        "&#",
        "1F600",
        "99999999",
        "\u{202E}",
        "\u{7}",
        "\r\n",
        " ",
        "é",
        "x",
        "\u{1b}[2J",
    ];
    for case in 0..cases {
        let mut body = Vec::new();
        for _ in 0..rng.usize(0..40) {
            if rng.u8(..) < 16 {
                body.push(rng.u8(..));
            } else {
                body.extend_from_slice(PIECES[rng.usize(..PIECES.len())].as_bytes());
            }
        }
        let m = not_a_reply("s", &answer(500, &String::from_utf8_lossy(&body)), "x");
        let raw = excerpt(&body);
        assert!(
            raw.chars().count() <= EXCERPT + 1,
            "seed {seed} case {case}: {raw:?}"
        );
        assert!(
            !m.chars()
                .any(|c| c.is_control() || crate::browser::is_bidi_control(c)),
            "seed {seed} case {case}: {m:?}"
        );
    }
}
