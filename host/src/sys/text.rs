//! Text that reaches a terminal or a log: control characters escaped, sizes capped.
//!
//! Resource names, file contents, command output and everything a plugin says come from
//! people homeostat does not trust (other local users, plugin authors, the content of
//! managed files). Printed raw, a newline in one of them would start a line that looks
//! like homeostat's own (`… INFO file[x]: …`), and an escape sequence would reach the
//! operator's terminal. So every such string goes through [`escape`] (one line) or
//! [`escape_lines`] (keeps the line structure of text homeostat itself lays out in
//! lines, e.g. a unified diff) before it is shown; the log's formatter does it for every
//! log line (`cli/logging.rs`), and the few places that print without the log (the
//! closing summary, `validate`, `graph`, `plugin inspect`) call these functions.
//!
//! **What is escaped**: every control character except the tab (C0, DEL and C1:
//! `\n` `\r` `\0` are written so, the others `\xNN` or `\u{NNNN}`), and the Unicode
//! bidirectional controls (U+061C, U+200E/F, U+202A–U+202E, U+2066–U+2069), which reorder
//! what a terminal shows ("Trojan source"). Backslashes are not doubled: escaping is
//! idempotent, so text escaped where it enters (a plugin's error) is unchanged by the
//! log's escaping, at the price that a literal `\n` typed by someone reads like an
//! escaped newline.
//!
//! [`clip`] caps a string at a byte length on character boundaries, keeping its beginning
//! and its end (where a command's error usually is) around a visible marker saying how
//! much was cut.

use std::borrow::Cow;
use std::fmt::Write as _;

/// Whether `c` must not reach a terminal as is.
fn needs_escape(c: char) -> bool {
    (c.is_control() && c != '\t')
        || matches!(c, '\u{061C}' | '\u{200E}' | '\u{200F}' | '\u{202A}'..='\u{202E}' | '\u{2066}'..='\u{2069}')
}

/// Append `c`, escaped.
fn push_escaped(out: &mut String, c: char) {
    match c {
        '\n' => out.push_str("\\n"),
        '\r' => out.push_str("\\r"),
        '\0' => out.push_str("\\0"),
        c if (c as u32) < 0x80 => {
            let _ = write!(out, "\\x{:02x}", c as u32);
        }
        c => {
            let _ = write!(out, "\\u{{{:x}}}", c as u32);
        }
    }
}

/// `text` on one line, with every control character (newlines included) escaped.
/// Borrows when there is nothing to escape (the common case).
pub fn escape(text: &str) -> Cow<'_, str> {
    escape_keeping(text, false)
}

/// `text` with control characters escaped in each line, keeping its `\n`s: for text
/// whose lines homeostat lays out itself (a diff, an error of several paragraphs).
pub fn escape_lines(text: &str) -> Cow<'_, str> {
    escape_keeping(text, true)
}

fn escape_keeping(text: &str, newlines: bool) -> Cow<'_, str> {
    let keep = |c: char| (newlines && c == '\n') || !needs_escape(c);
    let Some(first) = text.find(|c: char| !keep(c)) else {
        return Cow::Borrowed(text);
    };
    let mut out = String::with_capacity(text.len() + 16);
    out.push_str(&text[..first]);
    for c in text[first..].chars() {
        if keep(c) {
            out.push(c);
        } else {
            push_escaped(&mut out, c);
        }
    }
    Cow::Owned(out)
}

/// `text` cut to at most `max` bytes: its first and its last `max / 2` bytes (on character
/// boundaries) around a marker naming how many were cut, e.g. `abc… [1048576 bytes
/// cut] …xyz`; unchanged when it fits. The marker is extra: the result is at most `max`
/// + [`CLIP_MARKER_MAX`] bytes.
pub fn clip(text: &str, max: usize) -> Cow<'_, str> {
    if text.len() <= max {
        return Cow::Borrowed(text);
    }
    let (head, tail) = cut_points(text, max);
    Cow::Owned(format!(
        "{}{}{}",
        &text[..head],
        clip_marker(tail - head),
        &text[tail..]
    ))
}

/// [`clip`] for an owned string, without copying when it fits.
pub fn clip_owned(text: String, max: usize) -> String {
    match clip(&text, max) {
        Cow::Borrowed(_) => text,
        Cow::Owned(clipped) => clipped,
    }
}

/// Where a cut of `text` (longer than `max`) to `max` bytes starts and ends.
fn cut_points(text: &str, max: usize) -> (usize, usize) {
    let head = text.floor_char_boundary(max / 2);
    let tail = text.ceil_char_boundary(text.len() - (max - max / 2));
    (head, tail.max(head))
}

/// A string from outside made fit for one log line: cut to `max` bytes with a marker
/// ([`clip_owned`]), then [`escape`]d (which may lengthen it, up to 4 bytes per byte
/// escaped). Takes and returns the owned string, copying only when something changes.
pub fn one_line(text: String, max: usize) -> String {
    let text = clip_owned(text, max);
    match escape(&text) {
        Cow::Borrowed(_) => text,
        Cow::Owned(escaped) => escaped,
    }
}

/// [`one_line`] for text whose lines are kept (a diff): cut to `max` bytes, then each
/// line [`escape_lines`]d.
pub fn lines(text: String, max: usize) -> String {
    let text = clip_owned(text, max);
    match escape_lines(&text) {
        Cow::Borrowed(_) => text,
        Cow::Owned(escaped) => escaped,
    }
}

/// The longest marker [`clip`] inserts.
pub const CLIP_MARKER_MAX: usize = 48;

fn clip_marker(cut: usize) -> String {
    format!("… [{cut} bytes cut] …")
}

/// A size for messages: `512 bytes`, `64 KiB`, `1.5 MiB`, `3 GiB`.
pub fn bytes(n: u64) -> String {
    const UNITS: [&str; 4] = ["KiB", "MiB", "GiB", "TiB"];
    if n < 1024 {
        return format!("{n} bytes");
    }
    let mut value = n as f64 / 1024.0;
    let mut unit = 0;
    while value >= 1024.0 && unit < UNITS.len() - 1 {
        value /= 1024.0;
        unit += 1;
    }
    let shown = format!("{value:.1}");
    let shown = shown.strip_suffix(".0").unwrap_or(&shown);
    format!("{shown} {}", UNITS[unit])
}

/// Largest file (either side) `run --diff` shows a diff of; larger ones get the summary
/// only, as the `file` plugin does under `--noop`.
pub const MAX_DIFF_BYTES: usize = 256 << 10;

/// A unified diff of `old` (`None`: the file did not exist) → `new` under `---`/`+++`
/// headers naming `path`; `None` when either side is not UTF-8 text, is larger than
/// [`MAX_DIFF_BYTES`], or nothing differs.
pub fn unified_diff(path: &str, old: Option<&[u8]>, new: &[u8]) -> Option<String> {
    let old = old.unwrap_or_default();
    if old.len().max(new.len()) > MAX_DIFF_BYTES || old == new {
        return None;
    }
    let (old, new) = (
        std::str::from_utf8(old).ok()?,
        std::str::from_utf8(new).ok()?,
    );
    Some(
        similar::TextDiff::from_lines(old, new)
            .unified_diff()
            .context_radius(3)
            .header(path, path)
            .to_string(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn control_characters_are_escaped_on_one_line() {
        assert!(matches!(escape("plain text, tab\tok"), Cow::Borrowed(_)));
        assert_eq!(
            escape("name\n2026-01-01T00:00:00Z  INFO forged"),
            "name\\n2026-01-01T00:00:00Z  INFO forged"
        );
        assert_eq!(escape("\x1b[31mred\x1b[0m"), "\\x1b[31mred\\x1b[0m");
        assert_eq!(escape("cr\rnul\0del\x7f"), "cr\\rnul\\0del\\x7f");
        assert_eq!(escape("c1\u{9b}31m"), "c1\\u{9b}31m");
        assert_eq!(escape("bidi\u{202e}txt"), "bidi\\u{202e}txt");
        assert_eq!(escape("ünïcödé ✓"), "ünïcödé ✓");
    }

    #[test]
    fn escaping_is_idempotent() {
        let once = escape("a\nb\x1bc").into_owned();
        assert_eq!(escape(&once), once);
        let once = escape_lines("a\nb\x1bc").into_owned();
        assert_eq!(escape_lines(&once), once);
    }

    #[test]
    fn escape_lines_keeps_the_line_structure() {
        assert_eq!(
            escape_lines("--- a\n+++ b\n-old\x1b[2J\n+new\r\n"),
            "--- a\n+++ b\n-old\\x1b[2J\n+new\\r\n"
        );
    }

    #[test]
    fn clip_keeps_both_ends_on_character_boundaries_with_a_marker() {
        assert!(matches!(clip("short", 10), Cow::Borrowed("short")));
        assert_eq!(clip("abcdefgh", 4), "ab… [4 bytes cut] …gh");
        // `é` is two bytes: a cut inside it keeps the whole character out.
        assert_eq!(clip("aébcdé", 4), "a… [5 bytes cut] …é");
        assert_eq!(clip_owned("abcdefgh".into(), 4), "ab… [4 bytes cut] …gh");
        assert_eq!(clip_owned("abc".into(), 3), "abc");
        let long = clip(&"x".repeat(1 << 20), 10).into_owned();
        assert!(long.len() <= 10 + CLIP_MARKER_MAX, "{long}");
        let end = clip(&format!("{}the final error", "x".repeat(1 << 20)), 64).into_owned();
        assert!(end.ends_with("the final error"), "{end}");
    }

    #[test]
    fn one_line_and_lines_clip_then_escape() {
        assert_eq!(one_line("a\nb".into(), 100), "a\\nb");
        assert_eq!(lines("a\nb\x1b".into(), 100), "a\nb\\x1b");
        let big = one_line("\n".repeat(1000), 10);
        assert!(
            big.starts_with("\\n\\n") && big.contains("[990 bytes cut]"),
            "{big}"
        );
    }

    #[test]
    fn sizes_read_naturally() {
        assert_eq!(bytes(512), "512 bytes");
        assert_eq!(bytes(64 << 10), "64 KiB");
        assert_eq!(bytes(3 << 19), "1.5 MiB");
        assert_eq!(bytes(65 << 20), "65 MiB");
        assert_eq!(bytes(1 << 30), "1 GiB");
        assert_eq!(bytes((17 << 20) + 2), "17 MiB");
    }
}
