//! YAML text → a small node tree that remembers where every key and value came from.
//!
//! The tree is built straight from the event stream of `granit-parser` (the parser inside
//! serde-saphyr, re-exported as `serde_saphyr::granit_parser`), because going through serde
//! with `Spanned<T>` on every key and value was about twice as slow on a 10 000-resource
//! graph. Building the tree ourselves also means we enforce the limits against hostile input
//! here: input size, nesting depth, node count, and how much aliases may expand (billion
//! laughs).
//!
//! Scalars are resolved with the YAML 1.2 core schema, with one deliberate exception: a plain
//! integer with a redundant leading zero (`0644`) or a radix prefix (`0o644`, `0x1a4`) stays a
//! string, exactly as written. An unquoted file mode then reaches the plugin as the text the
//! user wrote, which reads it as octal, instead of silently becoming the decimal number 644
//! (mode 01204) or, for `0o644`, the number 420 that would read back as mode 0420. A tag
//! (`!!int 0o644`) still asks for the number.

use std::borrow::Cow;
use std::collections::HashMap;

use serde_saphyr::granit_parser::{
    ErrorKind, Event, Options, Parser, ScalarStyle, ScanError, Span, Tag,
};

/// Largest graph file accepted, in bytes. A 10 000-resource graph is about 1.4 MB.
pub(crate) const MAX_BYTES: usize = 16 << 20;
/// Deepest nesting of sequences and mappings accepted.
pub(crate) const MAX_DEPTH: usize = 64;
/// Most nodes (scalars, sequences, mappings, keys), counting alias expansions.
pub(crate) const MAX_NODES: usize = 2_000_000;
/// Most nodes that aliases (`*name`) may expand to, summed over the whole file.
pub(crate) const MAX_ALIAS_NODES: usize = 100_000;
/// Most scalar bytes that aliases may expand to, summed over the whole file.
pub(crate) const MAX_ALIAS_BYTES: usize = 16 << 20;

/// A 1-based line and column (columns count characters, not bytes).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub(crate) struct Pos {
    pub line: u32,
    pub col: u32,
}

impl Pos {
    pub(crate) const START: Pos = Pos { line: 1, col: 1 };

    fn of(span: &Span) -> Pos {
        Pos {
            line: clamp_u32(span.start.line()),
            col: clamp_u32(span.start.col().saturating_add(1)),
        }
    }
}

fn clamp_u32(n: usize) -> u32 {
    u32::try_from(n).unwrap_or(u32::MAX)
}

/// A YAML value.
#[derive(Clone, Debug)]
pub(crate) enum Val<'a> {
    Null,
    Bool(bool),
    /// A negative integer.
    Int(i64),
    /// A non-negative integer.
    UInt(u64),
    Float(f64),
    Str(Cow<'a, str>),
    Seq(Vec<Node<'a>>),
    Map(Vec<Entry<'a>>),
}

impl Val<'_> {
    /// "a string", "a list", … for error messages.
    pub(crate) fn describe(&self) -> &'static str {
        match self {
            Val::Null => "nothing (null)",
            Val::Bool(_) => "a boolean",
            Val::Int(_) | Val::UInt(_) => "an integer",
            Val::Float(_) => "a number",
            Val::Str(_) => "a string",
            Val::Seq(_) => "a list",
            Val::Map(_) => "a mapping",
        }
    }
}

/// One `key: value` pair of a mapping.
#[derive(Clone, Debug)]
pub(crate) struct Entry<'a> {
    pub key: Cow<'a, str>,
    pub key_pos: Pos,
    pub value: Node<'a>,
}

/// A value and where it starts.
#[derive(Clone, Debug)]
pub(crate) struct Node<'a> {
    pub pos: Pos,
    pub val: Val<'a>,
}

/// A problem found while loading, with its position.
#[derive(Clone, Debug)]
pub(crate) struct YamlError {
    pub pos: Pos,
    pub message: String,
}

/// A loaded document: the root node plus the non-fatal problems found (duplicate keys).
pub(crate) struct Loaded<'a> {
    pub root: Node<'a>,
    pub errors: Vec<YamlError>,
}

/// Parses `text` as a single YAML document.
///
/// A syntax error or an exceeded limit stops loading and is returned as `Err`; duplicate mapping
/// keys are reported in [`Loaded::errors`] (the later entry is dropped) so that the caller can
/// report them together with its own findings.
pub(crate) fn load(text: &str) -> Result<Loaded<'_>, YamlError> {
    if text.len() > MAX_BYTES {
        return Err(YamlError {
            pos: Pos::START,
            message: format!(
                "graph file is {} bytes; the limit is {} MiB — split it into several graphs",
                text.len(),
                MAX_BYTES >> 20
            ),
        });
    }
    let mut options = Options::default();
    options.set_emit_comments(false);
    options.flow_nesting_limit = MAX_DEPTH + 1;
    options.block_nesting_limit = MAX_DEPTH + 1;
    let mut parser = Parser::new_from_str_with_options(text, options);
    let mut loader = Loader::default();
    while let Some(next) = parser.next_event() {
        let (event, span) = next.map_err(|e| scan_error(e, text))?;
        if loader.event(event, &span)? {
            break;
        }
    }
    let root = loader.root.take().unwrap_or(Node {
        pos: Pos::START,
        val: Val::Null,
    });
    Ok(Loaded {
        root,
        errors: loader.errors,
    })
}

fn scan_error(e: ScanError, text: &str) -> YamlError {
    let m = e.marker();
    let mut pos = Pos {
        line: clamp_u32(m.line()),
        col: clamp_u32(m.col().saturating_add(1)),
    };
    let info = if matches!(e.kind(), ErrorKind::RecursionLimitExceeded) {
        format!("nested more than {MAX_DEPTH} levels deep; the graph is rejected")
    } else if matches!(
        e.kind(),
        ErrorKind::TabNotAllowed
            | ErrorKind::TabInBlockIndentation
            | ErrorKind::TabAtBlockScalarStart
            | ErrorKind::TabInIndentation
            | ErrorKind::TabInPlainScalar
    ) {
        if let Some(tab) = tab_position(text, pos) {
            pos = tab;
        }
        format!("{} (indent with spaces: YAML allows no tab here)", e.info())
    } else {
        e.info()
    };
    YamlError {
        pos,
        message: if info.is_empty() {
            "invalid YAML".to_owned()
        } else {
            format!("invalid YAML: {info}")
        },
    }
}

/// Where the tab behind a tab error is. The parser reports some at the start of the plain
/// scalar before it, a line too early (`path: /x` then a tab-indented line), others just
/// after the tab: the tab is the first one on the reported line before the reported
/// column, else the first one at or after it.
fn tab_position(text: &str, reported: Pos) -> Option<Pos> {
    let mut at = Pos::START;
    let mut after = None;
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        if c == '\t' {
            if at.line == reported.line && at.col < reported.col {
                return Some(at);
            }
            if at >= reported {
                after = after.or(Some(at));
                if at.line > reported.line {
                    break;
                }
            }
        }
        // Line breaks as YAML counts them: `\n`, `\r\n`, and a lone `\r`.
        if c == '\n' || (c == '\r' && chars.peek() != Some(&'\n')) {
            at = Pos {
                line: at.line.saturating_add(1),
                col: 1,
            };
        } else {
            at.col = at.col.saturating_add(1);
        }
    }
    after
}

/// A finished node with the size of its subtree (for alias budgets).
struct Built<'a> {
    node: Node<'a>,
    nodes: usize,
    bytes: usize,
}

/// A collection being built.
struct Frame<'a> {
    pos: Pos,
    anchor: usize,
    nodes: usize,
    bytes: usize,
    kind: FrameKind<'a>,
}

enum FrameKind<'a> {
    Seq(Vec<Node<'a>>),
    Map {
        entries: Vec<Entry<'a>>,
        /// Values of `<<` merge keys, in order.
        merges: Vec<Node<'a>>,
        /// The key waiting for its value; `merge` marks a `<<` key.
        key: Option<PendingKey<'a>>,
        /// Finds duplicate keys without a quadratic scan of large mappings.
        index: KeyIndex,
    },
}

struct PendingKey<'a> {
    text: Cow<'a, str>,
    pos: Pos,
    merge: bool,
}

#[derive(Default)]
struct Loader<'a> {
    stack: Vec<Frame<'a>>,
    root: Option<Node<'a>>,
    anchors: HashMap<usize, Built<'a>>,
    documents: usize,
    nodes: usize,
    alias_nodes: usize,
    alias_bytes: usize,
    errors: Vec<YamlError>,
}

fn err<T>(pos: Pos, message: impl Into<String>) -> Result<T, YamlError> {
    Err(YamlError {
        pos,
        message: message.into(),
    })
}

impl<'a> Loader<'a> {
    /// Handles one event; returns `true` when the document is complete.
    fn event(&mut self, event: Event<'a>, span: &Span) -> Result<bool, YamlError> {
        let pos = Pos::of(span);
        match event {
            Event::DocumentStart(..) => {
                self.documents += 1;
                if self.documents > 1 {
                    return err(
                        pos,
                        "a graph file holds one YAML document; remove the second `---` \
                         or put the second graph in its own file",
                    );
                }
            }
            Event::DocumentEnd => {}
            Event::StreamEnd => return Ok(true),
            Event::Scalar(text, style, anchor, tag) => {
                self.count(pos, 1)?;
                if self.expecting_key() {
                    return self.key(text, style, pos).map(|()| false);
                }
                let bytes = text.len();
                let val = resolve(text, style, tag.as_deref(), pos)?;
                self.finish(
                    Built {
                        node: Node { pos, val },
                        nodes: 1,
                        bytes,
                    },
                    anchor,
                )?;
            }
            Event::Alias(id) => self.alias(id, pos)?,
            Event::SequenceStart(_, anchor, tag) => {
                self.check_collection_tag(tag.as_deref(), "seq", pos)?;
                self.open(pos, anchor, FrameKind::Seq(Vec::new()))?;
            }
            Event::MappingStart(_, anchor, tag) => {
                self.check_collection_tag(tag.as_deref(), "map", pos)?;
                self.open(
                    pos,
                    anchor,
                    FrameKind::Map {
                        entries: Vec::new(),
                        merges: Vec::new(),
                        key: None,
                        index: KeyIndex::default(),
                    },
                )?;
            }
            Event::SequenceEnd | Event::MappingEnd => self.close()?,
            _ => {}
        }
        Ok(false)
    }

    fn count(&mut self, pos: Pos, n: usize) -> Result<(), YamlError> {
        self.nodes = self.nodes.saturating_add(n);
        if self.nodes > MAX_NODES {
            return err(
                pos,
                format!(
                    "YAML document too large: more than {MAX_NODES} nodes — split the graph \
                     into several files"
                ),
            );
        }
        Ok(())
    }

    fn expecting_key(&self) -> bool {
        matches!(
            self.stack.last(),
            Some(Frame {
                kind: FrameKind::Map { key: None, .. },
                ..
            })
        )
    }

    fn check_collection_tag(
        &self,
        tag: Option<&Tag>,
        expected: &str,
        pos: Pos,
    ) -> Result<(), YamlError> {
        match tag {
            None => Ok(()),
            Some(t) if t.core_suffix() == Some(expected) => Ok(()),
            Some(t) => err(pos, format!("unsupported YAML tag `{}`", t.original())),
        }
    }

    fn open(&mut self, pos: Pos, anchor: usize, kind: FrameKind<'a>) -> Result<(), YamlError> {
        if self.expecting_key() {
            return err(
                pos,
                "a mapping key must be a plain string, not a list or mapping",
            );
        }
        self.count(pos, 1)?;
        if self.stack.len() >= MAX_DEPTH {
            return err(
                pos,
                format!(
                    "invalid YAML: nested more than {MAX_DEPTH} levels deep; the graph is rejected"
                ),
            );
        }
        self.stack.push(Frame {
            pos,
            anchor,
            nodes: 1,
            bytes: 0,
            kind,
        });
        Ok(())
    }

    fn key(&mut self, text: Cow<'a, str>, style: ScalarStyle, pos: Pos) -> Result<(), YamlError> {
        if text.is_empty() && style == ScalarStyle::Plain {
            return err(pos, "empty mapping key");
        }
        let merge = style == ScalarStyle::Plain && text == "<<";
        if let Some(Frame {
            bytes,
            kind: FrameKind::Map { key, .. },
            ..
        }) = self.stack.last_mut()
        {
            *bytes += text.len();
            *key = Some(PendingKey { text, pos, merge });
        }
        Ok(())
    }

    fn alias(&mut self, id: usize, pos: Pos) -> Result<(), YamlError> {
        let Some(anchored) = self.anchors.get(&id) else {
            return err(
                pos,
                "this alias refers to a node that contains it; recursive aliases are not supported",
            );
        };
        let (nodes, bytes) = (anchored.nodes, anchored.bytes);
        self.alias_nodes = self.alias_nodes.saturating_add(nodes);
        self.alias_bytes = self.alias_bytes.saturating_add(bytes);
        if self.alias_nodes > MAX_ALIAS_NODES || self.alias_bytes > MAX_ALIAS_BYTES {
            return err(
                pos,
                format!(
                    "YAML aliases expand to more than {MAX_ALIAS_NODES} nodes or {} MiB \
                     (a \"billion laughs\" bomb?); the graph is rejected",
                    MAX_ALIAS_BYTES >> 20
                ),
            );
        }
        self.count(pos, nodes)?;
        let Some(mut node) = self.anchors.get(&id).map(|a| a.node.clone()) else {
            return Ok(());
        };
        if self.expecting_key() {
            return match node.val {
                Val::Str(s) => self.key(s, ScalarStyle::DoubleQuoted, pos),
                _ => err(pos, "an alias used as a mapping key must refer to a string"),
            };
        }
        node.pos = pos;
        self.finish(Built { node, nodes, bytes }, 0)
    }

    fn close(&mut self) -> Result<(), YamlError> {
        let Some(frame) = self.stack.pop() else {
            return Ok(());
        };
        let val = match frame.kind {
            FrameKind::Seq(items) => Val::Seq(items),
            FrameKind::Map {
                mut entries,
                merges,
                ..
            } => {
                merge_into(&mut entries, merges, &mut self.errors);
                Val::Map(entries)
            }
        };
        self.finish(
            Built {
                node: Node {
                    pos: frame.pos,
                    val,
                },
                nodes: frame.nodes,
                bytes: frame.bytes,
            },
            frame.anchor,
        )
    }

    /// Attaches a finished node to its parent (or makes it the root).
    fn finish(&mut self, built: Built<'a>, anchor: usize) -> Result<(), YamlError> {
        if anchor != 0 {
            self.anchors.insert(
                anchor,
                Built {
                    node: built.node.clone(),
                    nodes: built.nodes,
                    bytes: built.bytes,
                },
            );
        }
        let Some(parent) = self.stack.last_mut() else {
            self.root = Some(built.node);
            return Ok(());
        };
        parent.nodes = parent.nodes.saturating_add(built.nodes);
        parent.bytes = parent.bytes.saturating_add(built.bytes);
        match &mut parent.kind {
            FrameKind::Seq(items) => items.push(built.node),
            FrameKind::Map {
                entries,
                merges,
                key,
                index,
            } => {
                let Some(k) = key.take() else {
                    // Unreachable: keys are routed to `key()` before `finish()`.
                    return err(built.node.pos, "a mapping key must be a plain string");
                };
                if k.merge {
                    match &built.node.val {
                        Val::Map(_) | Val::Seq(_) => merges.push(built.node),
                        other => {
                            return err(
                                built.node.pos,
                                format!(
                                    "a `<<` merge key needs a mapping or a list of mappings, \
                                     found {}",
                                    other.describe()
                                ),
                            );
                        }
                    }
                } else if let Some(first) = index.find(entries, &k.text) {
                    let first = entries[first].key_pos;
                    self.errors.push(YamlError {
                        pos: k.pos,
                        message: format!(
                            "duplicate key `{}` (first at line {}, column {})",
                            k.text, first.line, first.col
                        ),
                    });
                } else {
                    entries.push(Entry {
                        key: k.text,
                        key_pos: k.pos,
                        value: built.node,
                    });
                }
            }
        }
        Ok(())
    }
}

/// Looks keys up in a mapping that only grows: a linear scan while it is small (the usual
/// case, and faster than hashing), a hash map once it is large, so that a hostile mapping
/// with 100 000 keys is not quadratic.
#[derive(Default)]
struct KeyIndex {
    map: HashMap<String, usize>,
    /// How many entries `map` covers.
    indexed: usize,
}

impl KeyIndex {
    const SMALL: usize = 16;

    fn find(&mut self, entries: &[Entry<'_>], key: &str) -> Option<usize> {
        if entries.len() <= Self::SMALL {
            return entries.iter().position(|e| e.key == key);
        }
        for (i, e) in entries.iter().enumerate().skip(self.indexed) {
            self.map.entry(e.key.to_string()).or_insert(i);
        }
        self.indexed = entries.len();
        self.map.get(key).copied()
    }
}

/// Applies YAML merge keys: entries written in the mapping win over merged ones, and earlier
/// merge sources win over later ones.
fn merge_into<'a>(
    entries: &mut Vec<Entry<'a>>,
    merges: Vec<Node<'a>>,
    errors: &mut Vec<YamlError>,
) {
    for source in merges {
        let maps = match source.val {
            Val::Map(m) => vec![m],
            Val::Seq(items) => {
                let mut maps = Vec::with_capacity(items.len());
                for item in items {
                    match item.val {
                        Val::Map(m) => maps.push(m),
                        other => errors.push(YamlError {
                            pos: item.pos,
                            message: format!(
                                "a `<<` merge list must hold mappings, found {}",
                                other.describe()
                            ),
                        }),
                    }
                }
                maps
            }
            _ => Vec::new(),
        };
        let mut index = KeyIndex::default();
        for map in maps {
            for entry in map {
                if index.find(entries, &entry.key).is_none() {
                    entries.push(entry);
                }
            }
        }
    }
}

/// Resolves a scalar to a typed value (YAML 1.2 core schema, leading-zero integers as strings).
fn resolve<'a>(
    text: Cow<'a, str>,
    style: ScalarStyle,
    tag: Option<&Tag>,
    pos: Pos,
) -> Result<Val<'a>, YamlError> {
    if let Some(tag) = tag {
        let bad = |what: &str| {
            err(
                pos,
                format!(
                    "`{}` is not a valid {what} for tag `{}`",
                    text,
                    tag.original()
                ),
            )
        };
        return match tag.core_suffix() {
            Some("str") => Ok(Val::Str(text)),
            Some("null") => Ok(Val::Null),
            Some("bool") => match resolve_plain(&text) {
                Some(v @ Val::Bool(_)) => Ok(v),
                _ => bad("boolean"),
            },
            Some("int") => match resolve_int(&text, false) {
                Some(v) => Ok(v),
                None => bad("integer"),
            },
            Some("float") => match resolve_plain(&text) {
                Some(Val::Float(f)) => Ok(Val::Float(f)),
                Some(Val::Int(i)) => Ok(Val::Float(i as f64)),
                Some(Val::UInt(u)) => Ok(Val::Float(u as f64)),
                _ => bad("number"),
            },
            _ if tag.handle() == "!" && tag.suffix().is_empty() => Ok(Val::Str(text)),
            _ => err(pos, format!("unsupported YAML tag `{}`", tag.original())),
        };
    }
    if style != ScalarStyle::Plain {
        return Ok(Val::Str(text));
    }
    Ok(match resolve_plain(&text) {
        Some(v) => v,
        None => Val::Str(text),
    })
}

/// Core-schema resolution of a plain scalar; `None` means "it is a string".
fn resolve_plain(s: &str) -> Option<Val<'static>> {
    match s {
        "" | "~" | "null" | "Null" | "NULL" => return Some(Val::Null),
        "true" | "True" | "TRUE" => return Some(Val::Bool(true)),
        "false" | "False" | "FALSE" => return Some(Val::Bool(false)),
        ".inf" | ".Inf" | ".INF" | "+.inf" | "+.Inf" | "+.INF" => {
            return Some(Val::Float(f64::INFINITY));
        }
        "-.inf" | "-.Inf" | "-.INF" => return Some(Val::Float(f64::NEG_INFINITY)),
        ".nan" | ".NaN" | ".NAN" => return Some(Val::Float(f64::NAN)),
        _ => {}
    }
    let first = s.as_bytes().first().copied().unwrap_or(b'x');
    if !(first.is_ascii_digit() || matches!(first, b'-' | b'+' | b'.')) {
        return None;
    }
    if let Some(v) = resolve_int(s, true) {
        return Some(v);
    }
    let digits = s.strip_prefix(['-', '+']).unwrap_or(s);
    if digits.bytes().all(|b| b.is_ascii_digit()) {
        // `0644` (leading zero) or too large for 64 bits: keep the text.
        return None;
    }
    if is_float(s) {
        s.parse::<f64>().ok().map(Val::Float)
    } else {
        None
    }
}

/// Integers: decimal `[-+]?[0-9]+`, `0x…`, `0o…`. With `keep_leading_zero` (a plain scalar),
/// `0644`, `0o644` and `0x1a4` are not: they stay text as written.
fn resolve_int(s: &str, keep_leading_zero: bool) -> Option<Val<'static>> {
    if keep_leading_zero && (s.starts_with("0x") || s.starts_with("0o")) {
        return None;
    }
    if let Some(hex) = s.strip_prefix("0x") {
        return u64::from_str_radix(hex, 16).ok().map(Val::UInt);
    }
    if let Some(oct) = s.strip_prefix("0o") {
        return u64::from_str_radix(oct, 8).ok().map(Val::UInt);
    }
    let (neg, digits) = match s.as_bytes().first() {
        Some(b'-') => (true, &s[1..]),
        Some(b'+') => (false, &s[1..]),
        _ => (false, s),
    };
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    if keep_leading_zero && digits.len() > 1 && digits.starts_with('0') {
        return None;
    }
    if neg {
        s.parse::<i64>()
            .ok()
            .map(|i| if i < 0 { Val::Int(i) } else { Val::UInt(0) })
    } else {
        digits.parse::<u64>().ok().map(Val::UInt)
    }
}

/// `[-+]?(\.[0-9]+|[0-9]+(\.[0-9]*)?)([eE][-+]?[0-9]+)?`
fn is_float(s: &str) -> bool {
    let b = s.as_bytes();
    let mut i = 0;
    if matches!(b.first(), Some(b'-' | b'+')) {
        i += 1;
    }
    let int_start = i;
    while i < b.len() && b[i].is_ascii_digit() {
        i += 1;
    }
    let int_digits = i - int_start;
    let mut frac_digits = 0;
    if i < b.len() && b[i] == b'.' {
        i += 1;
        let frac_start = i;
        while i < b.len() && b[i].is_ascii_digit() {
            i += 1;
        }
        frac_digits = i - frac_start;
    }
    if int_digits == 0 && frac_digits == 0 {
        return false;
    }
    if i < b.len() && matches!(b[i], b'e' | b'E') {
        i += 1;
        if i < b.len() && matches!(b[i], b'-' | b'+') {
            i += 1;
        }
        let exp_start = i;
        while i < b.len() && b[i].is_ascii_digit() {
            i += 1;
        }
        if i == exp_start {
            return false;
        }
    }
    i == b.len()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn root(text: &str) -> Node<'_> {
        match load(text) {
            Ok(l) => {
                assert!(l.errors.is_empty(), "unexpected errors");
                l.root
            }
            Err(e) => panic!("{}:{}: {}", e.pos.line, e.pos.col, e.message),
        }
    }

    fn map<'e, 'a>(n: &'e Node<'a>) -> &'e [Entry<'a>] {
        match &n.val {
            Val::Map(m) => m,
            other => panic!("not a map: {other:?}"),
        }
    }

    #[test]
    fn scalars_resolve_with_core_schema() {
        let r = root(
            "a: 1\nb: -2\nc: 0644\nd: 1.5\ne: true\nf: yes\ng: ~\nh: '1'\ni: 0x1f\nj:\nk: 1e3\n\
             l: 0o644\nm: !!int 0o644\nn: !!int 0x1f\n",
        );
        let m = map(&r);
        let got: Vec<String> = m.iter().map(|e| format!("{:?}", e.value.val)).collect();
        assert_eq!(
            got,
            [
                "UInt(1)",
                "Int(-2)",
                "Str(\"0644\")",
                "Float(1.5)",
                "Bool(true)",
                "Str(\"yes\")",
                "Null",
                "Str(\"1\")",
                "Str(\"0x1f\")",
                "Null",
                "Float(1000.0)",
                "Str(\"0o644\")",
                "UInt(420)",
                "UInt(31)",
            ]
        );
    }

    #[test]
    fn positions_are_one_based() {
        let r = root("x:\n  - name: a\n    path: /p\n");
        let x = &map(&r)[0];
        assert_eq!(x.key_pos, Pos { line: 1, col: 1 });
        let Val::Seq(items) = &x.value.val else {
            panic!()
        };
        let entry = map(&items[0]);
        assert_eq!(entry[0].key_pos, Pos { line: 2, col: 5 });
        assert_eq!(entry[1].key_pos, Pos { line: 3, col: 5 });
        assert_eq!(entry[1].value.pos, Pos { line: 3, col: 11 });
    }

    #[test]
    fn duplicate_keys_are_reported() {
        let l = load("a: 1\nb: 2\na: 3\n").ok().unwrap_or_else(|| panic!());
        assert_eq!(l.errors.len(), 1);
        assert_eq!(l.errors[0].pos, Pos { line: 3, col: 1 });
        assert!(l.errors[0].message.contains("first at line 1, column 1"));
    }

    #[test]
    fn large_mappings_are_not_quadratic() {
        let mut text = String::from("m:\n");
        for i in 0..50_000 {
            text.push_str(&format!("  k{i}: {i}\n"));
        }
        text.push_str("  k7: again\n");
        let l = load(&text).ok().unwrap_or_else(|| panic!());
        assert_eq!(l.errors.len(), 1);
        assert_eq!(l.errors[0].pos.line, 50_002);
    }

    #[test]
    fn merge_keys_and_aliases() {
        let r = root("d: &d {retry: 3, delay: 5}\nm:\n  <<: *d\n  retry: 4\n");
        let m = map(&map(&r)[1].value);
        let got: Vec<String> = m
            .iter()
            .map(|e| format!("{}={:?}", e.key, e.value.val))
            .collect();
        assert_eq!(got, ["retry=UInt(4)", "delay=UInt(5)"]);
    }

    #[test]
    fn bombs_and_depth_are_rejected() {
        let mut bomb = String::from("a: &a [\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\"]\n");
        for i in 1..12u8 {
            let (p, c) = ((b'a' + i - 1) as char, (b'a' + i) as char);
            bomb.push_str(&format!(
                "{c}: &{c} [*{p},*{p},*{p},*{p},*{p},*{p},*{p},*{p}]\n"
            ));
        }
        let e = load(&bomb).err().unwrap_or_else(|| panic!("bomb accepted"));
        assert!(e.message.contains("billion laughs"), "{}", e.message);
        let deep = "[".repeat(100_000);
        let e = load(&deep).err().unwrap_or_else(|| panic!("deep accepted"));
        assert!(e.message.contains("deep"), "{}", e.message);
        let recursive = load("a: &a [*a]\n").err().unwrap_or_else(|| panic!());
        assert!(recursive.message.contains("recursive"));
    }

    #[test]
    fn tab_errors_point_at_the_tab() {
        for (text, line, col) in [
            // Reported by the parser at the start of `/x`, on line 2.
            ("a:\n  path: /x\n\tcontent: hi\n", 3, 1),
            ("a:\n  path: \"/x\"\n\tcontent: hi\n", 3, 1),
            ("a:\n\tb: 1\n", 2, 1),
            ("a:\n  b:\n\t  hi\n", 3, 1),
            ("a:\n  b: c\n  \td: 1\n", 3, 3),
            ("a: 'x\ty'\nb:\n\tc: 1\n", 3, 1),
            ("a:\r\n  b: c\r\n\td: 1\r\n", 3, 1),
            ("a:\r  b: c\r\td: 1\r", 3, 1),
        ] {
            let e = load(text)
                .err()
                .unwrap_or_else(|| panic!("accepted {text:?}"));
            assert_eq!(
                (e.pos.line, e.pos.col),
                (line, col),
                "{text:?}: {}",
                e.message
            );
            assert!(e.message.contains("tab"), "{}", e.message);
        }
    }

    #[test]
    fn floats() {
        for ok in ["1.5", "-1.5", ".5", "1.", "1e5", "+1.5E-3"] {
            assert!(is_float(ok), "{ok}");
        }
        for bad in ["", ".", "e5", "1e", "1.5.5", "abc", "1_0"] {
            assert!(!is_float(bad), "{bad}");
        }
    }
}
