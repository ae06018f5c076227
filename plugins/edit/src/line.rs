//! The `line` kind's edit (Puppet's `file_line`, Ansible's `lineinfile`): a pure
//! function of the file's text and the params, unit-tested natively.

use regex_lite::Regex;
use serde::Deserialize;

/// The params of a `line` resource (see `schema/line.json`).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Params {
    pub path: String,
    #[serde(default)]
    pub line: Option<String>,
    #[serde(default)]
    pub state: State,
    #[serde(default, rename = "match")]
    pub matches: Option<String>,
    #[serde(default)]
    pub multiple: bool,
    #[serde(default)]
    pub after: Option<String>,
    #[serde(default)]
    pub create: bool,
}

/// Whether the line must be in the file.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum State {
    #[default]
    Present,
    Absent,
}

/// The params, checked, with their patterns compiled.
pub struct Line {
    pub line: Option<String>,
    pub state: State,
    pub matches: Option<Regex>,
    pub multiple: bool,
    pub after: Option<Regex>,
}

/// A param's error: the param and what is wrong.
pub type Invalid = (&'static str, String);

fn pattern(field: &'static str, p: &Option<String>) -> Result<Option<Regex>, Invalid> {
    p.as_deref()
        .map(|p| Regex::new(p).map_err(|e| (field, format!("`{p}` is not a valid pattern: {e}"))))
        .transpose()
}

impl Line {
    /// Check `p` beyond its schema.
    pub fn new(p: &Params) -> Result<Line, Invalid> {
        if let Some(l) = &p.line
            && (l.contains('\n') || l.contains('\r'))
        {
            return Err(("line", "a line cannot contain a line break".into()));
        }
        let matches = pattern("match", &p.matches)?;
        let after = pattern("after", &p.after)?;
        match (p.state, &p.line, &matches) {
            (State::Present, None, _) => {
                return Err((
                    "line",
                    "`line` is required when `state` is `present`".into(),
                ));
            }
            (State::Absent, None, None) => {
                return Err((
                    "line",
                    "`state: absent` needs `line` (the line to remove) or `match` (a pattern \
                     of the lines to remove)"
                        .into(),
                ));
            }
            _ => {}
        }
        if p.state == State::Absent && p.after.is_some() {
            return Err((
                "after",
                "`after` places a line: it has no meaning with `state: absent`".into(),
            ));
        }
        if let (State::Present, Some(l), Some(re)) = (p.state, &p.line, &matches)
            && !re.is_match(l)
        {
            return Err((
                "match",
                format!(
                    "`line` does not match `{re}`, so the line it puts in place would not be \
                     found again: every run would add it once more"
                ),
            ));
        }
        Ok(Line {
            line: p.line.clone(),
            state: p.state,
            matches,
            multiple: p.multiple,
            after,
        })
    }

    /// The new text of a file holding `text`, with what changed, or `None` when it is
    /// already right. An error when `match` finds several lines without `multiple`.
    pub fn edit(&self, text: &str) -> Result<Option<(String, String)>, String> {
        let lines: Vec<&str> = text.lines().collect();
        let mut out: Vec<&str> = Vec::with_capacity(lines.len() + 1);
        let what;
        match self.state {
            State::Present => {
                let line = self.line.as_deref().expect("checked: present has a line");
                let hit = |l: &str| self.matches.as_ref().is_some_and(|re| re.is_match(l));
                let matching = lines.iter().filter(|l| hit(l)).count();
                if matching > 1 && !self.multiple {
                    return Err(format!(
                        "{matching} lines match `{}`; set `multiple: true` to replace them all",
                        self.matches.as_ref().expect("counted")
                    ));
                }
                if lines.contains(&line) && matching == 0 {
                    what = String::new();
                    out.extend(&lines);
                } else if matching > 0 {
                    let mut replaced = 0;
                    for l in &lines {
                        if hit(l) {
                            out.push(line);
                            replaced += usize::from(*l != line);
                        } else {
                            out.push(l);
                        }
                    }
                    what = match replaced {
                        0 => String::new(),
                        1 => format!(
                            "replace the line matching `{}`",
                            self.matches.as_ref().expect("set")
                        ),
                        n => format!(
                            "replace {n} lines matching `{}`",
                            self.matches.as_ref().expect("set")
                        ),
                    };
                } else {
                    let at = self
                        .after
                        .as_ref()
                        .and_then(|re| lines.iter().position(|l| re.is_match(l)))
                        .map_or(lines.len(), |i| i + 1);
                    out.extend(&lines[..at]);
                    out.push(line);
                    out.extend(&lines[at..]);
                    what = if at == lines.len() {
                        "add the line".to_string()
                    } else {
                        format!("add the line after line {at}")
                    };
                }
            }
            State::Absent => {
                let gone = |l: &str| {
                    self.line.as_deref() == Some(l)
                        || self.matches.as_ref().is_some_and(|re| re.is_match(l))
                };
                out.extend(lines.iter().copied().filter(|l| !gone(l)));
                what = match lines.len() - out.len() {
                    0 => String::new(),
                    1 => "remove the line".to_string(),
                    n => format!("remove {n} lines"),
                };
            }
        }
        if what.is_empty() {
            return Ok(None);
        }
        Ok(Some((join(&out), what)))
    }
}

/// Lines joined, each ending with a newline.
pub fn join(lines: &[&str]) -> String {
    let mut text = String::with_capacity(lines.iter().map(|l| l.len() + 1).sum());
    for l in lines {
        text.push_str(l);
        text.push('\n');
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    fn line(json: serde_json::Value) -> Line {
        Line::new(&serde_json::from_value(json).unwrap()).unwrap()
    }

    fn invalid(json: serde_json::Value) -> Invalid {
        match Line::new(&serde_json::from_value(json).unwrap()) {
            Err(e) => e,
            Ok(_) => panic!("accepted"),
        }
    }

    #[test]
    fn present_adds_once_and_keeps_the_rest() {
        let l = line(serde_json::json!({"path": "/x", "line": "b = 2"}));
        let (text, what) = l.edit("# c\na = 1\n").unwrap().unwrap();
        assert_eq!(text, "# c\na = 1\nb = 2\n");
        assert_eq!(what, "add the line");
        assert_eq!(l.edit(&text).unwrap(), None, "idempotent");
        assert_eq!(l.edit("").unwrap().unwrap().0, "b = 2\n");
    }

    #[test]
    fn match_replaces_in_place() {
        let l = line(
            serde_json::json!({"path": "/x", "line": "PermitRootLogin no", "match": "^#?PermitRootLogin"}),
        );
        let (text, what) = l
            .edit("Port 22\n#PermitRootLogin yes\nX 1\n")
            .unwrap()
            .unwrap();
        assert_eq!(text, "Port 22\nPermitRootLogin no\nX 1\n");
        assert!(what.starts_with("replace the line"), "{what}");
        assert_eq!(l.edit(&text).unwrap(), None);
        // Nothing matches: appended.
        assert_eq!(
            l.edit("Port 22\n").unwrap().unwrap().0,
            "Port 22\nPermitRootLogin no\n"
        );
        // Two match: refused without `multiple`.
        let err = l
            .edit("PermitRootLogin yes\n#PermitRootLogin no\n")
            .unwrap_err();
        assert!(err.contains("2 lines match"), "{err}");
        let all =
            line(serde_json::json!({"path": "/x", "line": "a", "match": "^a", "multiple": true}));
        assert_eq!(all.edit("ab\nx\nac\n").unwrap().unwrap().0, "a\nx\na\n");
    }

    #[test]
    fn after_places_a_new_line() {
        let l = line(serde_json::json!({"path": "/x", "line": "new", "after": "^\\[main\\]"}));
        assert_eq!(
            l.edit("[main]\nold\n[other]\n").unwrap().unwrap().0,
            "[main]\nnew\nold\n[other]\n"
        );
        assert_eq!(l.edit("x\n").unwrap().unwrap().0, "x\nnew\n");
    }

    #[test]
    fn absent_removes_by_line_or_pattern() {
        let l = line(serde_json::json!({"path": "/x", "line": "b", "state": "absent"}));
        assert_eq!(
            l.edit("a\nb\nc\nb\n").unwrap().unwrap(),
            ("a\nc\n".to_string(), "remove 2 lines".to_string())
        );
        assert_eq!(l.edit("a\n").unwrap(), None);
        let m = line(serde_json::json!({"path": "/x", "match": "^#", "state": "absent"}));
        assert_eq!(m.edit("#a\nb\n#c\n").unwrap().unwrap().0, "b\n");
    }

    #[test]
    fn a_last_line_without_newline_is_kept_as_is_when_nothing_changes() {
        let l = line(serde_json::json!({"path": "/x", "line": "a"}));
        assert_eq!(l.edit("a").unwrap(), None);
        assert_eq!(l.edit("b").unwrap().unwrap().0, "b\na\n");
    }

    #[test]
    fn bad_params_are_refused_with_their_field() {
        assert_eq!(invalid(serde_json::json!({"path": "/x"})).0, "line");
        assert_eq!(
            invalid(serde_json::json!({"path": "/x", "state": "absent"})).0,
            "line"
        );
        assert_eq!(
            invalid(serde_json::json!({"path": "/x", "line": "a\nb"})).0,
            "line"
        );
        assert_eq!(
            invalid(serde_json::json!({"path": "/x", "line": "a", "match": "("})).0,
            "match"
        );
        let (field, why) = invalid(serde_json::json!({"path": "/x", "line": "a", "match": "^b"}));
        assert_eq!(field, "match");
        assert!(why.contains("would not be found again"), "{why}");
        assert_eq!(
            invalid(
                serde_json::json!({"path": "/x", "line": "a", "state": "absent", "after": "x"})
            )
            .0,
            "after"
        );
    }
}
