//! The `ini` kind's edit (Ansible's `ini_file`, Puppet's `ini_setting`): one key of one
//! section, set or removed, every other line (comments, blank lines, order, other
//! keys) kept as it is. A pure function of the file's text and the params, unit-tested
//! natively.
//!
//! The format read: `[section]` headers; `key = value` or `key: value` lines (the first
//! `=` or `:` separates; spaces around key and value do not count); lines starting with
//! `#` or `;` are comments. Keys before the first header belong to no section (the
//! resource's `section` left out). Section and key names are compared exactly.

use serde::Deserialize;

use crate::line::join;

/// The params of an `ini` resource (see `schema/ini.json`).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Params {
    pub path: String,
    #[serde(default)]
    pub section: Option<String>,
    #[serde(default)]
    pub key: Option<String>,
    #[serde(default)]
    pub value: Option<String>,
    #[serde(default)]
    pub state: State,
    #[serde(default = "yes")]
    pub create: bool,
    #[serde(default = "spaced")]
    pub separator: String,
}

fn yes() -> bool {
    true
}

fn spaced() -> String {
    " = ".to_string()
}

/// Whether the key (or, without `key`, the section) must be in the file.
pub use crate::line::State;

/// A param's error: the param and what is wrong.
pub type Invalid = (&'static str, String);

/// Check `p` beyond its schema.
pub fn check(p: &Params) -> Result<(), Invalid> {
    let bad = |s: &str| s.contains(['\n', '\r']);
    if let Some(s) = &p.section
        && (s.is_empty() || bad(s) || s.contains(']'))
    {
        return Err((
            "section",
            "a section name is one line, not empty, without `]`".into(),
        ));
    }
    if let Some(k) = &p.key
        && (k.trim().is_empty()
            || k.trim() != k
            || bad(k)
            || k.contains(['=', ':'])
            || k.starts_with(['#', ';', '[']))
    {
        return Err((
            "key",
            format!(
                "`{k}` cannot be a key: not empty, no spaces around it, no `=` or `:`, not \
                 starting with `#`, `;` or `[`"
            ),
        ));
    }
    if p.value.as_deref().is_some_and(bad) {
        return Err(("value", "a value is one line".into()));
    }
    let sep = p.separator.trim();
    if sep != "=" && sep != ":" {
        return Err((
            "separator",
            "the separator is `=` or `:`, with or without spaces around it".into(),
        ));
    }
    match (p.state, &p.key, &p.value) {
        (State::Present, None, _) => {
            Err(("key", "`key` is required when `state` is `present`".into()))
        }
        (State::Present, Some(_), None) => Err((
            "value",
            "`value` is required when `state` is `present`".into(),
        )),
        (State::Absent, None, _) if p.section.is_none() => Err((
            "key",
            "`state: absent` without `key` removes a whole section: name it with `section`".into(),
        )),
        _ => Ok(()),
    }
}

/// What a line of an ini file is.
#[derive(Debug, PartialEq, Eq)]
enum Kind<'a> {
    Header(&'a str),
    Entry { key: &'a str, value: &'a str },
    Other,
}

fn kind(line: &str) -> Kind<'_> {
    let t = line.trim();
    if let Some(name) = t.strip_prefix('[').and_then(|r| r.strip_suffix(']')) {
        return Kind::Header(name.trim());
    }
    if t.is_empty() || t.starts_with(['#', ';']) {
        return Kind::Other;
    }
    match t.find(['=', ':']) {
        Some(at) => Kind::Entry {
            key: t[..at].trim(),
            value: t[at + 1..].trim(),
        },
        None => Kind::Other,
    }
}

/// The new text of a file holding `text`, with what changed, or `None` when it is
/// already right.
pub fn edit(text: &str, p: &Params) -> Option<(String, String)> {
    let lines: Vec<&str> = text.lines().collect();
    let section = p.section.as_deref();
    // Which section each line is in (headers: their own).
    let mut current: Option<&str> = None;
    let mut in_section = Vec::with_capacity(lines.len());
    let mut header_at = None;
    for (i, l) in lines.iter().enumerate() {
        if let Kind::Header(name) = kind(l) {
            current = Some(name);
            if Some(name) == section && header_at.is_none() {
                header_at = Some(i);
            }
        }
        in_section.push(current == section);
    }
    let place = |k: &str| {
        format!(
            "{}{k}",
            section.map_or(String::new(), |s| format!("[{s}] "))
        )
    };
    let Some(key) = p.key.as_deref() else {
        // `state: absent` of a whole section: its header and every line up to the next.
        let kept: Vec<&str> = lines
            .iter()
            .zip(&in_section)
            .filter(|(_, inside)| !**inside)
            .map(|(l, _)| *l)
            .collect();
        return (kept.len() != lines.len()).then(|| {
            (
                join(&kept),
                format!("remove section [{}]", section.unwrap_or_default()),
            )
        });
    };
    let is_key = |i: usize| {
        in_section[i] && matches!(kind(lines[i]), Kind::Entry { key: k, .. } if k == key)
    };
    let found: Vec<usize> = (0..lines.len()).filter(|&i| is_key(i)).collect();
    match p.state {
        State::Absent => {
            if found.is_empty() {
                return None;
            }
            let kept: Vec<&str> = (0..lines.len())
                .filter(|i| !found.contains(i))
                .map(|i| lines[i])
                .collect();
            Some((join(&kept), format!("remove {}", place(key))))
        }
        State::Present => {
            let value = p.value.as_deref().expect("checked: present has a value");
            let want = format!("{key}{}{value}", p.separator);
            let right =
                |i: usize| matches!(kind(lines[i]), Kind::Entry { value: v, .. } if v == value);
            if found.len() == 1 && right(found[0]) {
                return None;
            }
            let mut out: Vec<&str> = Vec::with_capacity(lines.len() + 3);
            let header;
            let what;
            if let Some(&first) = found.first() {
                // The first occurrence is set; duplicates (which would shadow or be
                // shadowed, depending on the reader) are dropped.
                for (i, l) in lines.iter().enumerate() {
                    if i == first {
                        out.push(&want);
                    } else if !found.contains(&i) {
                        out.push(l);
                    }
                }
                what = if right(first) {
                    format!("remove duplicates of {}", place(key))
                } else {
                    format!("set {}", place(key))
                };
            } else if let (Some(name), None) = (section, header_at) {
                out.extend(&lines);
                if lines.last().is_some_and(|l| !l.trim().is_empty()) {
                    out.push("");
                }
                header = format!("[{name}]");
                out.push(&header);
                out.push(&want);
                what = format!("add {}", place(key));
            } else {
                // After the last key of the section (or right after its header),
                // before the blank lines and comments that lead to the next section.
                let start = header_at.map_or(0, |h| h + 1);
                let next = (start..lines.len())
                    .find(|&i| matches!(kind(lines[i]), Kind::Header(_)))
                    .unwrap_or(lines.len());
                // Keys outside any section with none there yet go right above the
                // first section (above the blank lines before it), after any comments
                // the file starts with.
                let no_entry = if header_at.is_some() {
                    start
                } else {
                    let mut at = next;
                    while at > 0 && lines[at - 1].trim().is_empty() {
                        at -= 1;
                    }
                    at
                };
                let at = (start..next)
                    .rev()
                    .find(|&i| matches!(kind(lines[i]), Kind::Entry { .. }))
                    .map_or(no_entry, |i| i + 1);
                out.extend(&lines[..at]);
                out.push(&want);
                out.extend(&lines[at..]);
                what = format!("add {}", place(key));
            }
            Some((join(&out), what))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn params(json: serde_json::Value) -> Params {
        let p: Params = serde_json::from_value(json).unwrap();
        check(&p).unwrap();
        p
    }

    const FILE: &str =
        "; global\nname = x\n\n[server]\n# the port\nport = 80\nhost=a\n\n[client]\nretries: 3\n";

    #[test]
    fn changes_a_value_in_place_keeping_comments_and_order() {
        let p = params(
            serde_json::json!({"path": "/x", "section": "server", "key": "port", "value": "8080"}),
        );
        let (text, what) = edit(FILE, &p).unwrap();
        assert_eq!(text, FILE.replace("port = 80\n", "port = 8080\n"));
        assert_eq!(what, "set [server] port");
        assert_eq!(edit(&text, &p), None, "idempotent");
        // Spaces around the separator do not count.
        let host = params(
            serde_json::json!({"path": "/x", "section": "server", "key": "host", "value": "a"}),
        );
        assert_eq!(edit(FILE, &host), None);
        let retries = params(
            serde_json::json!({"path": "/x", "section": "client", "key": "retries", "value": "3"}),
        );
        assert_eq!(edit(FILE, &retries), None);
    }

    #[test]
    fn adds_a_key_after_the_last_of_its_section() {
        let p = params(
            serde_json::json!({"path": "/x", "section": "server", "key": "tls", "value": "on"}),
        );
        let (text, what) = edit(FILE, &p).unwrap();
        assert_eq!(text, FILE.replace("host=a\n", "host=a\ntls = on\n"));
        assert_eq!(what, "add [server] tls");
        assert_eq!(edit(&text, &p), None);
    }

    #[test]
    fn adds_a_missing_section_at_the_end() {
        let p = params(
            serde_json::json!({"path": "/x", "section": "log", "key": "level", "value": "debug"}),
        );
        let (text, _) = edit(FILE, &p).unwrap();
        assert_eq!(text, format!("{FILE}\n[log]\nlevel = debug\n"));
        assert_eq!(edit(&text, &p), None);
        let (text, _) = edit("", &p).unwrap();
        assert_eq!(text, "[log]\nlevel = debug\n");
        // An empty section gets the key after its header.
        let (text, _) = edit("[log]\n\n[x]\n", &p).unwrap();
        assert_eq!(text, "[log]\nlevel = debug\n\n[x]\n");
    }

    #[test]
    fn keys_outside_any_section() {
        let p = params(
            serde_json::json!({"path": "/x", "key": "name", "value": "y", "separator": "="}),
        );
        let (text, _) = edit(FILE, &p).unwrap();
        assert!(text.starts_with("; global\nname=y\n\n[server]"), "{text}");
        let new = params(serde_json::json!({"path": "/x", "key": "id", "value": "1"}));
        let (text, _) = edit(FILE, &new).unwrap();
        assert!(
            text.starts_with("; global\nname = x\nid = 1\n\n[server]"),
            "{text}"
        );
        let (text, _) = edit("[s]\na = 1\n", &new).unwrap();
        assert_eq!(text, "id = 1\n[s]\na = 1\n");
        let (text, _) = edit("; top\n\n[s]\n", &new).unwrap();
        assert_eq!(text, "; top\nid = 1\n\n[s]\n");
        let (text, _) = edit("# only a comment\n", &new).unwrap();
        assert_eq!(text, "# only a comment\nid = 1\n");
    }

    #[test]
    fn duplicates_are_dropped() {
        let p = params(serde_json::json!({"path": "/x", "section": "s", "key": "a", "value": "1"}));
        let (text, what) = edit("[s]\na = 1\nb = 2\na = 3\n", &p).unwrap();
        assert_eq!(text, "[s]\na = 1\nb = 2\n");
        assert_eq!(what, "remove duplicates of [s] a");
    }

    #[test]
    fn absent_removes_a_key_or_a_section() {
        let key = params(
            serde_json::json!({"path": "/x", "section": "server", "key": "port", "state": "absent"}),
        );
        let (text, what) = edit(FILE, &key).unwrap();
        assert_eq!(text, FILE.replace("port = 80\n", ""));
        assert_eq!(what, "remove [server] port");
        assert_eq!(edit(&text, &key), None);
        let section =
            params(serde_json::json!({"path": "/x", "section": "server", "state": "absent"}));
        let (text, what) = edit(FILE, &section).unwrap();
        assert_eq!(text, "; global\nname = x\n\n[client]\nretries: 3\n");
        assert_eq!(what, "remove section [server]");
        assert_eq!(edit(&text, &section), None);
    }

    #[test]
    fn bad_params_are_refused_with_their_field() {
        let bad =
            |json: serde_json::Value| check(&serde_json::from_value(json).unwrap()).unwrap_err().0;
        assert_eq!(bad(serde_json::json!({"path": "/x", "key": "a"})), "value");
        assert_eq!(bad(serde_json::json!({"path": "/x", "value": "a"})), "key");
        assert_eq!(
            bad(serde_json::json!({"path": "/x", "key": "a b=", "value": "1"})),
            "key"
        );
        assert_eq!(
            bad(serde_json::json!({"path": "/x", "section": "a]", "key": "k", "value": "1"})),
            "section"
        );
        assert_eq!(
            bad(serde_json::json!({"path": "/x", "key": "k", "value": "1", "separator": "->"})),
            "separator"
        );
        assert_eq!(
            bad(serde_json::json!({"path": "/x", "state": "absent"})),
            "key"
        );
    }
}
