//! The `lineinfile` resource: ensure one line is present in (or absent from) a text file,
//! leaving every other line alone — `PermitRootLogin no` in `sshd_config`, an entry in
//! `/etc/hosts`, `vm.swappiness = 10` in a sysctl drop-in.
//!
//! A third-party plugin: built outside homeostat's workspaces against `homeostat-sdk`,
//! loaded with `--plugin-dir`, and allowed to use `fs` only once the operator grants it
//! by name and SHA-256. All file access goes through the host's `fs` interface, confined
//! to the one path the resource declares. The editing itself is [`edit`], a pure
//! function, unit-tested natively (`cargo test --target x86_64-unknown-linux-gnu`).

use homeostat_sdk::{CheckApply, Error, Info, Outcome, Resource, ResourceId, Result, fs};

/// The params of a `line` resource (see `schema/line.json`).
#[derive(Debug, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Params {
    pub path: String,
    pub line: String,
    #[serde(default)]
    pub state: State,
    #[serde(default)]
    pub prefix: Option<String>,
    #[serde(default = "yes")]
    pub create: bool,
}

fn yes() -> bool {
    true
}

/// Whether the line must be in the file.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum State {
    #[default]
    Present,
    Absent,
}

/// The new content of a file holding `content`, or `None` when it is already right.
/// Lines are `\n`-separated; a last line without a newline gets one when the file is
/// rewritten.
pub fn edit(content: &str, p: &Params) -> Option<String> {
    let same_setting = |l: &str| p.prefix.as_deref().is_some_and(|pre| l.starts_with(pre));
    let lines: Vec<&str> = content.lines().collect();
    let mut out: Vec<&str> = Vec::with_capacity(lines.len() + 1);
    match p.state {
        State::Present => {
            let mut placed = false;
            for l in &lines {
                if *l == p.line || same_setting(l) {
                    if !placed {
                        out.push(&p.line);
                        placed = true;
                    }
                } else {
                    out.push(l);
                }
            }
            if !placed {
                out.push(&p.line);
            }
        }
        State::Absent => out.extend(
            lines
                .iter()
                .copied()
                .filter(|l| *l != p.line && !same_setting(l)),
        ),
    }
    if out == lines && (content.is_empty() || content.ends_with('\n')) {
        return None;
    }
    let mut text = out.join("\n");
    if !text.is_empty() {
        text.push('\n');
    }
    Some(text)
}

/// The `line` kind.
pub struct Line;

impl Resource for Line {
    const KIND: &'static str = "lineinfile";
    // It edits one line of a file that other lines, ini keys or a `file` resource
    // managing only its attributes may share.
    const EDITS: bool = true;
    const SCHEMA: &'static str = include_str!("../schema/line.json");
    type Params = Params;

    fn validate(_: &ResourceId, p: &Params) -> Result<Info> {
        if !p.path.starts_with('/') {
            return Err(Error::param(
                "path",
                format!("`{}` is not an absolute path", p.path),
            ));
        }
        if p.line.contains('\n') {
            return Err(Error::param("line", "a line cannot contain a newline"));
        }
        if let Some(pre) = &p.prefix {
            if pre.is_empty() {
                return Err(Error::param(
                    "prefix",
                    "an empty prefix would match every line",
                ));
            }
            if p.state == State::Present && !p.line.starts_with(pre.as_str()) {
                return Err(Error::param(
                    "prefix",
                    format!(
                        "`line` does not start with the prefix `{pre}`, so it would never be found again"
                    ),
                ));
            }
        }
        let parent = p
            .path
            .rsplit_once('/')
            .map_or("/", |(d, _)| if d.is_empty() { "/" } else { d });
        Ok(Info::new()
            .write_path(&p.path)
            .watch_path(&p.path)
            .depends_on_path(parent))
    }

    fn check_apply(_: &ResourceId, p: &Params, ctx: &CheckApply) -> Result<Outcome> {
        let mut out = Outcome::new();
        let current = match fs::stat(&p.path)? {
            None if p.state == State::Absent => return Ok(out),
            None if !p.create => {
                return Err(Error::new(format!(
                    "{} does not exist (and `create` is false)",
                    p.path
                )));
            }
            None => None,
            Some(st) if st.file_type != fs::FileType::File => {
                return Err(Error::new(format!("{} is not a regular file", p.path)));
            }
            Some(_) => Some(fs::read(&p.path)?),
        };
        let text = match &current {
            Some(bytes) => std::str::from_utf8(bytes)
                .map_err(|_| Error::new(format!("{} is not UTF-8 text", p.path)))?,
            None => "",
        };
        let Some(new) = edit(text, p) else {
            return Ok(out);
        };
        out.change(match (p.state, current.is_some()) {
            (State::Present, true) => format!("line `{}` set in {}", p.line, p.path),
            (State::Present, false) => format!("created {} with line `{}`", p.path, p.line),
            (State::Absent, _) => format!("line `{}` removed from {}", p.line, p.path),
        });
        if ctx.apply {
            // New files get 0644; a replaced file keeps its mode and owner.
            let attrs = fs::Attrs {
                mode: current.is_none().then_some(0o644),
                ..fs::Attrs::default()
            };
            fs::write(&p.path, new.as_bytes(), attrs)?;
        }
        Ok(out)
    }
}

homeostat_sdk::export_resource!(Line; capabilities = ["fs"]);

#[cfg(test)]
mod tests {
    use super::*;

    fn params(line: &str, state: State, prefix: Option<&str>) -> Params {
        Params {
            path: "/etc/x".into(),
            line: line.into(),
            state,
            prefix: prefix.map(str::to_string),
            create: true,
        }
    }

    #[test]
    fn a_missing_line_is_appended() {
        let p = params("b", State::Present, None);
        assert_eq!(edit("a\n", &p).as_deref(), Some("a\nb\n"));
        assert_eq!(edit("", &p).as_deref(), Some("b\n"));
        assert_eq!(edit("a", &p).as_deref(), Some("a\nb\n"));
    }

    #[test]
    fn a_present_line_changes_nothing() {
        let p = params("b", State::Present, None);
        assert_eq!(edit("a\nb\nc\n", &p), None);
        // ... except a missing final newline, which is added.
        assert_eq!(edit("a\nb", &p).as_deref(), Some("a\nb\n"));
    }

    #[test]
    fn a_prefix_replaces_the_setting_in_place() {
        let p = params(
            "PermitRootLogin no",
            State::Present,
            Some("PermitRootLogin "),
        );
        assert_eq!(
            edit(
                "Port 22\nPermitRootLogin yes\nX 1\nPermitRootLogin maybe\n",
                &p
            )
            .as_deref(),
            Some("Port 22\nPermitRootLogin no\nX 1\n")
        );
        assert_eq!(edit("Port 22\nPermitRootLogin no\n", &p), None);
    }

    #[test]
    fn absent_removes_every_copy() {
        let p = params("b", State::Absent, None);
        assert_eq!(edit("a\nb\nc\nb\n", &p).as_deref(), Some("a\nc\n"));
        assert_eq!(edit("a\nc\n", &p), None);
        assert_eq!(edit("b\n", &p).as_deref(), Some(""));
        let p = params("", State::Absent, Some("Debug"));
        assert_eq!(edit("Debug 1\nx\n", &p).as_deref(), Some("x\n"));
    }
}
