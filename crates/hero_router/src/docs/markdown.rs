//! The escaping filters of the Markdown templates (`md_text`, `md_line`, `md_cell`,
//! `md_code`, `md_code_cell`, `md_fence`): what minijinja's HTML auto-escape is to the HTML
//! templates.
//!
//! Text from a document is hostile, and every CommonMark or GFM renderer must read it as text
//! (docs/docs-and-mcp.md#inert-markdown): it never becomes raw HTML, a code block, a heading, a
//! list, a quote, a table, a link or an image, and a table cell stays one cell. The rules:
//!
//! - `\`, `[`, `]`, `|` and `@` are backslash-escaped everywhere, so there are no links,
//!   images, link definitions, footnotes, table cells or e-mail autolinks; `<` is written
//!   `&lt;` (no raw HTML, no `<…>` autolinks) and `&` before a letter, digit or `#` is `&amp;`
//!   (no entity reference turns into another character).
//! - A line starts with neither whitespace nor ASCII punctuation (escaped), nor a list
//!   number (`1.`, `2)`: its `.` or `)` escaped), so it opens no block: no heading, fence,
//!   list, quote, thematic break, setext underline, HTML block or indented code; text never
//!   ends in `#` (a heading would drop it) or in whitespace (a hard line break). Line breaks
//!   are kept in paragraph text (`md_text`), blank lines once; anywhere else they are spaces.
//! - `:` before `/` and the `.` of `www.` are escaped, so GFM makes no autolink of a URL.
//! - A code span in the text (a run of backticks closed by a run of the same length, as in
//!   CommonMark) is written again as a code span of its own (`md_code`); any other backtick
//!   is escaped. So every code span on the page is one this module made.
//!
//! What survives of a description's Markdown: paragraphs, code spans, emphasis and strong
//! (`*`, `_`) and strikethrough (`~`), except where they would start a line. Links, images,
//! headings, lists, quotes, tables, code blocks and raw HTML are shown as the text they were
//! written as (a fenced block within one paragraph becomes a code span on one line).

use std::collections::HashMap;

/// Where escaped text goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Place {
    /// Paragraphs: line breaks and blank lines kept.
    Block,
    /// One line.
    Line,
    /// One GFM table cell: one line, and `|` escaped inside code spans too.
    Cell,
}

/// Where each run of backticks of a text starts, by its length, in order: where a code span
/// ends is found in time logarithmic in the text, not linear (a text of unclosed runs of
/// every length would otherwise cost its length squared).
#[derive(Default)]
struct Runs(HashMap<usize, Vec<usize>>);

/// Paragraph text: inert, with its line breaks, one blank line between paragraphs, and its
/// code spans, emphasis and strikethrough.
pub(super) fn md_text(s: &str) -> String {
    escape(s, Place::Block)
}

/// Text on one line (a heading, a list item, a paragraph of one line): [`md_text`] with line
/// breaks made spaces.
pub(super) fn md_line(s: &str) -> String {
    escape(s, Place::Line)
}

/// Text in a GFM table cell: [`md_line`] that stays one cell.
pub(super) fn md_cell(s: &str) -> String {
    escape(s, Place::Cell)
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

/// [`md_code`] for a GFM table cell: `|` inside is escaped, which GFM reads as part of the
/// span rather than as the end of the cell.
pub(super) fn md_code_cell(s: &str) -> String {
    md_code(s).replace('|', "\\|")
}

/// The fence for a fenced code block holding `s`: at least three backticks, more than any
/// run inside.
pub(super) fn md_fence(s: &str) -> String {
    "`".repeat((longest_backtick_run(s) + 1).max(3))
}

/// `s` as inert Markdown for `place`.
fn escape(s: &str, place: Place) -> String {
    let s = s.replace("\r\n", "\n").replace('\r', "\n");
    let mut out = String::with_capacity(s.len() + s.len() / 8);
    if place != Place::Block {
        inline(one_line(&s).trim(), place, &mut out);
        return out;
    }
    // Paragraphs: runs of non-blank lines, each line trimmed of any whitespace: indentation
    // would make a code block (and comrak reads a form feed before `-` as a table), two
    // trailing spaces a hard line break.
    let mut paragraph = String::new();
    for line in s.split('\n').map(str::trim) {
        if !line.is_empty() {
            if !paragraph.is_empty() {
                paragraph.push('\n');
            }
            paragraph.push_str(line);
            continue;
        }
        flush(&mut paragraph, &mut out);
    }
    flush(&mut paragraph, &mut out);
    out
}

/// Writes `paragraph` to `out` (after a blank line if `out` has text) and empties it.
fn flush(paragraph: &mut String, out: &mut String) {
    if paragraph.is_empty() {
        return;
    }
    if !out.is_empty() {
        out.push_str("\n\n");
    }
    inline(paragraph, Place::Block, out);
    paragraph.clear();
}

/// Escapes `text`, whose lines are already trimmed, into `out`.
fn inline(text: &str, place: Place, out: &mut String) {
    let bytes = text.as_bytes();
    let mut i = 0;
    // Where the text not yet written starts; only ASCII is ever escaped, so every cut is on
    // a character boundary.
    let mut copied = 0;
    // A cell's text never starts a line: the row does.
    let mut line_start = place != Place::Cell;
    let runs = Runs::of(bytes);
    while i < bytes.len() {
        let b = bytes[i];
        let escaped: Option<&str> = match b {
            b'\n' => {
                line_start = true;
                i += 1;
                continue;
            }
            b'`' => {
                out.push_str(&text[copied..i]);
                i = code_span(text, i, &runs, place, out);
                copied = i;
                line_start = false;
                continue;
            }
            // A backslash escape in the text stays one: the next character is literal.
            b'\\' if bytes.get(i + 1).is_some_and(u8::is_ascii_punctuation) => {
                let next = bytes[i + 1];
                out.push_str(&text[copied..i]);
                push_literal(next, out);
                i += 2;
                copied = i;
                line_start = false;
                continue;
            }
            b'\\' | b'[' | b']' | b'|' | b'@' => Some(""),
            // A heading drops `#`s that end it.
            b'#' if i + 1 == bytes.len() => Some(""),
            b'<' => Some("&lt;"),
            b'&' if bytes
                .get(i + 1)
                .is_some_and(|n| n.is_ascii_alphanumeric() || *n == b'#') =>
            {
                Some("&amp;")
            }
            b':' if bytes.get(i + 1) == Some(&b'/') => Some(""),
            b'w' | b'W'
                if bytes
                    .get(i..i + 4)
                    .is_some_and(|w| w.eq_ignore_ascii_case(b"www.")) =>
            {
                out.push_str(&text[copied..i + 3]);
                out.push_str("\\.");
                i += 4;
                copied = i;
                line_start = false;
                continue;
            }
            _ if line_start && b.is_ascii_punctuation() => Some(""),
            b'0'..=b'9' if line_start => {
                // An ordered list marker: digits, then `.` or `)`.
                let digits = bytes[i..].iter().take_while(|d| d.is_ascii_digit()).count();
                i += digits;
                let marker = matches!(bytes.get(i), Some(b'.' | b')'));
                if marker && matches!(bytes.get(i + 1), None | Some(b' ' | b'\t' | b'\n')) {
                    out.push_str(&text[copied..i]);
                    out.push('\\');
                    copied = i;
                }
                line_start = false;
                continue;
            }
            _ => None,
        };
        line_start = false;
        match escaped {
            None => i += 1,
            Some(with) => {
                out.push_str(&text[copied..i]);
                if with.is_empty() {
                    out.push('\\');
                    out.push(b as char);
                } else {
                    out.push_str(with);
                }
                i += 1;
                copied = i;
            }
        }
    }
    out.push_str(&text[copied..]);
}

/// Writes the ASCII punctuation character `b` so that it is read as itself.
fn push_literal(b: u8, out: &mut String) {
    match b {
        b'<' => out.push_str("&lt;"),
        _ => {
            out.push('\\');
            out.push(b as char);
        }
    }
}

/// At a run of backticks at `start`: writes the code span it opens (closed by the next run of
/// the same length, as CommonMark reads it) as one of [`md_code`], or the run escaped if
/// nothing closes it. Returns where the text goes on.
fn code_span(text: &str, start: usize, runs: &Runs, place: Place, out: &mut String) -> usize {
    let run = backtick_run(text.as_bytes(), start);
    let Some(end) = runs.next(run, start) else {
        for _ in 0..run {
            out.push_str("\\`");
        }
        return start + run;
    };
    let content = &text[start + run..end];
    out.push_str(&match place {
        Place::Cell => md_code_cell(content),
        Place::Block | Place::Line => md_code(content),
    });
    end + run
}

fn backtick_run(bytes: &[u8], at: usize) -> usize {
    bytes[at..].iter().take_while(|b| **b == b'`').count()
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

// === impl Runs ===

impl Runs {
    fn of(bytes: &[u8]) -> Runs {
        let mut runs = Runs::default();
        let mut i = 0;
        while let Some(at) = memchr::memchr(b'`', &bytes[i..]) {
            let start = i + at;
            let len = backtick_run(bytes, start);
            runs.0.entry(len).or_default().push(start);
            i = start + len;
        }
        runs
    }

    /// Where the first run of exactly `len` backticks after `after` starts.
    fn next(&self, len: usize, after: usize) -> Option<usize> {
        let starts = self.0.get(&len)?;
        starts.get(starts.partition_point(|s| *s <= after)).copied()
    }
}

#[cfg(test)]
mod tests;
