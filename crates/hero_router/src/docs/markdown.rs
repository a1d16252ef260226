//! The escaping filters of the Markdown templates (`md_text`, `md_line`, `md_cell`,
//! `md_code`, `md_fence`): what minijinja's HTML auto-escape is to the HTML templates.
//!
//! Text from a document (descriptions may be Markdown, per OpenRPC) keeps its Markdown, but
//! cannot break out of where it is put: raw HTML is shown as text, a code fence it opens is
//! closed, a table cell stays one cell, an inline code span holds any text.

/// Text for a paragraph: Markdown kept, raw HTML tags shown as text (`<` written `&lt;`
/// outside code), a code fence left open closed at the end.
pub(super) fn md_text(s: &str) -> String {
    let s = s.replace("\r\n", "\n").replace('\r', "\n");
    let mut out = String::with_capacity(s.len());
    // The open fence: its character and length.
    let mut fence: Option<(char, usize)> = None;
    for (i, line) in s.split('\n').enumerate() {
        if i > 0 {
            out.push('\n');
        }
        match (fence, fence_of(line)) {
            (Some((c, n)), Some((c2, n2, rest)))
                if c == c2 && n2 >= n && rest.trim().is_empty() =>
            {
                fence = None;
                out.push_str(line);
            }
            (Some(_), _) => out.push_str(line),
            (None, Some((c, n, _))) => {
                fence = Some((c, n));
                out.push_str(line);
            }
            (None, None) => inline(line, &mut out),
        }
    }
    if let Some((c, n)) = fence {
        out.push('\n');
        out.extend(std::iter::repeat_n(c, n));
    }
    out
}

/// Text on one line (a heading, a list item): [`md_text`] with line breaks made spaces.
pub(super) fn md_line(s: &str) -> String {
    md_text(&one_line(s))
}

/// Text in a table cell: [`md_line`] with `|` escaped, so the cell stays one cell.
pub(super) fn md_cell(s: &str) -> String {
    md_line(s).replace('|', "\\|")
}

/// An inline code span holding `s` exactly (on one line): the backtick fence is longer than
/// any run of backticks inside.
pub(super) fn md_code(s: &str) -> String {
    let s = one_line(s);
    if s.is_empty() {
        return "` `".to_owned();
    }
    let fence = "`".repeat(longest_backtick_run(&s) + 1);
    // A space on both sides is stripped by the reader; add one when the text would touch
    // the fence or begins and ends with a space.
    let pad = s.starts_with('`')
        || s.ends_with('`')
        || (s.starts_with(' ') && s.ends_with(' ') && !s.trim().is_empty());
    let pad = if pad { " " } else { "" };
    format!("{fence}{pad}{s}{pad}{fence}")
}

/// The fence for a fenced code block holding `s`: at least three backticks, more than any
/// run inside.
pub(super) fn md_fence(s: &str) -> String {
    "`".repeat((longest_backtick_run(s) + 1).max(3))
}

fn one_line(s: &str) -> String {
    s.split(['\r', '\n'])
        .filter(|l| !l.trim().is_empty())
        .collect::<Vec<_>>()
        .join(" ")
}

fn longest_backtick_run(s: &str) -> usize {
    s.split(|c| c != '`').map(str::len).max().unwrap_or(0)
}

/// A fence line (up to 3 spaces, then 3+ backticks or tildes): its character, its length
/// and what follows.
fn fence_of(line: &str) -> Option<(char, usize, &str)> {
    let trimmed = line.trim_start_matches(' ');
    if line.len() - trimmed.len() > 3 {
        return None;
    }
    let c = trimmed.chars().next().filter(|c| *c == '`' || *c == '~')?;
    let n = trimmed.len() - trimmed.trim_start_matches(c).len();
    (n >= 3).then(|| (c, n, &trimmed[n..]))
}

/// One line outside a code block: code spans copied, `<` before a tag-like character escaped.
fn inline(line: &str, out: &mut String) {
    let bytes = line.as_bytes();
    let mut i = 0;
    let mut copied = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'`' => {
                let run = bytes[i..].iter().take_while(|b| **b == b'`').count();
                // The span ends at the next run of exactly the same length, if there is one.
                let mut j = i + run;
                let mut end = None;
                while j < bytes.len() {
                    if bytes[j] == b'`' {
                        let r = bytes[j..].iter().take_while(|b| **b == b'`').count();
                        if r == run {
                            end = Some(j + r);
                            break;
                        }
                        j += r;
                    } else {
                        j += 1;
                    }
                }
                i = end.unwrap_or(i + run);
            }
            b'<' if bytes
                .get(i + 1)
                .is_some_and(|b| b.is_ascii_alphabetic() || matches!(b, b'/' | b'!' | b'?')) =>
            {
                out.push_str(&line[copied..i]);
                out.push_str("&lt;");
                i += 1;
                copied = i;
            }
            _ => i += 1,
        }
    }
    out.push_str(&line[copied..]);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn raw_html_is_shown_as_text_outside_code() {
        assert_eq!(
            md_text("a <script>alert(1)</script> b"),
            "a &lt;script>alert(1)&lt;/script> b"
        );
        assert_eq!(md_text("keep `Vec<u8>` as code"), "keep `Vec<u8>` as code");
        assert_eq!(md_text("x < y and 1<2"), "x < y and 1<2");
        assert_eq!(md_text("``a`<b>``"), "``a`<b>``");
        assert_eq!(md_text("lone ` then <i>"), "lone ` then &lt;i>");
    }

    #[test]
    fn fences_stay_fences_and_an_open_one_is_closed() {
        let text = "before <b>\n```\n<b>in code</b>\n```\nafter <b>";
        assert_eq!(
            md_text(text),
            "before &lt;b>\n```\n<b>in code</b>\n```\nafter &lt;b>"
        );
        assert_eq!(md_text("~~~~\nopen <x>"), "~~~~\nopen <x>\n~~~~");
    }

    #[test]
    fn cells_stay_one_cell() {
        assert_eq!(md_cell("a | b\nc\r\nd"), "a \\| b c d");
        assert_eq!(md_cell("`x | y`"), "`x \\| y`");
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
}
