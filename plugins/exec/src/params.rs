//! The params of an `exec` resource as they arrive (JSON), and [`Spec`], the checked form:
//! every command line built once, so that what `validate` declares (the footprint's
//! command lines, the watches) and what check-apply runs cannot differ. Pure: no host calls.

use std::collections::BTreeMap;

use serde::Deserialize;

use homeostat_sdk::process::Command;
use homeostat_sdk::{Error, Info, Result};

/// The params exactly as the graph gives them (see `schema/exec.json`).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Params {
    #[serde(default)]
    pub cmd: Option<String>,
    #[serde(default)]
    pub args: Option<Vec<String>>,
    #[serde(default)]
    pub shell: Option<String>,
    #[serde(default)]
    pub cwd: Option<String>,
    #[serde(default)]
    pub env: BTreeMap<String, String>,
    #[serde(default)]
    pub user: Option<IdParam>,
    #[serde(default)]
    pub group: Option<IdParam>,
    #[serde(default)]
    pub timeout: Option<u32>,
    #[serde(default)]
    pub creates: Option<String>,
    #[serde(default)]
    pub ifcmd: Option<String>,
    #[serde(default)]
    pub ifshell: Option<String>,
    #[serde(default)]
    pub nifcmd: Option<String>,
    #[serde(default)]
    pub nifshell: Option<String>,
    #[serde(default)]
    pub watchcmd: Option<String>,
    #[serde(default)]
    pub watchshell: Option<String>,
    #[serde(default)]
    pub donecmd: Option<String>,
    #[serde(default)]
    pub doneshell: Option<String>,
    #[serde(default)]
    pub refreshonly: bool,
    /// mgmt's `pollint`: check every N seconds.
    #[serde(default)]
    pub pollint: Option<u32>,
    /// mgmt's older exec graphs say `state: present` (the schema allows only that).
    #[serde(default, rename = "state")]
    pub _state: Option<String>,
}

/// `user`/`group` as written: a name or a numeric id.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(untagged)]
pub enum IdParam {
    Number(u64),
    Text(String),
}

impl IdParam {
    fn text(&self) -> String {
        match self {
            IdParam::Number(n) => n.to_string(),
            IdParam::Text(t) => t.clone(),
        }
    }
}

/// The checked params: ready-to-run commands.
#[derive(Debug, Clone)]
pub struct Spec {
    pub cmd: Command,
    pub timeout_ms: Option<u32>,
    pub creates: Option<String>,
    pub ifcmd: Option<Command>,
    pub nifcmd: Option<Command>,
    pub watchcmd: Option<Command>,
    pub donecmd: Option<Command>,
    /// Run only when refreshed by a `notify` edge (Puppet's `refreshonly`).
    pub refreshonly: bool,
    /// Check every this many milliseconds as well (mgmt's `pollint`).
    pub poll_ms: Option<u32>,
}

/// `shell -c line`, or `line` split at whitespace (no quoting, no expansion).
fn split(field: &str, line: &str, shell: Option<&str>) -> Result<Vec<String>> {
    if line.trim().is_empty() {
        return Err(Error::param(field, format!("`{field}` is empty")));
    }
    Ok(match shell {
        Some(sh) => vec![sh.to_string(), "-c".to_string(), line.to_string()],
        None => line.split_whitespace().map(str::to_string).collect(),
    })
}

fn absolute(field: &str, p: &str) -> Result<()> {
    if !p.starts_with('/') || p.split('/').any(|c| c == "..") {
        return Err(Error::param(
            field,
            format!("`{field}` must be an absolute path without `..`, got `{p}`"),
        ));
    }
    Ok(())
}

impl Spec {
    /// Check `p` (the resource is called `name`; `cmd` defaults to it).
    pub fn from_params(name: &str, p: &Params) -> Result<Spec> {
        let line = p.cmd.as_deref().unwrap_or(name);
        let shell = p.shell.as_deref();
        if let Some(sh) = shell
            && sh.trim().is_empty()
        {
            return Err(Error::param("shell", "`shell` is empty"));
        }
        let argv = match &p.args {
            Some(_) if shell.is_some() => {
                return Err(Error::param(
                    "args",
                    "`args` cannot be combined with `shell`: put the whole command line in `cmd`",
                ));
            }
            Some(_) if line.trim() != line || line.contains(char::is_whitespace) => {
                return Err(Error::param(
                    "cmd",
                    "with `args`, `cmd` is only the program (no spaces); put the arguments in `args`",
                ));
            }
            Some(_) if line.is_empty() => {
                return Err(Error::param("cmd", "`cmd` is empty"));
            }
            Some(args) => std::iter::once(line.to_string())
                .chain(args.iter().cloned())
                .collect(),
            None => split("cmd", line, shell)?,
        };
        if let Some(cwd) = &p.cwd {
            absolute("cwd", cwd)?;
        }
        if let Some(c) = &p.creates {
            absolute("creates", c)?;
        }
        if p.timeout == Some(0) {
            return Err(Error::param(
                "timeout",
                "`timeout` must be at least 1 (milliseconds); leave it out for no timeout",
            ));
        }
        for k in p.env.keys() {
            if k.is_empty() || k.contains('=') || k.contains('\0') {
                return Err(Error::param(
                    "env",
                    format!("`{k}` is not a valid environment variable name"),
                ));
            }
        }
        let base = Command {
            argv: Vec::new(),
            env: p.env.iter().map(|(k, v)| (k.clone(), v.clone())).collect(),
            cwd: p.cwd.clone(),
            user: p.user.as_ref().map(IdParam::text),
            group: p.group.as_ref().map(IdParam::text),
        };
        let with = |argv: Vec<String>| Command {
            argv,
            ..base.clone()
        };
        let other =
            |field: &str, line: &Option<String>, sh: &Option<String>| -> Result<Option<Command>> {
                match line {
                    None => Ok(None),
                    Some(l) => Ok(Some(with(split(field, l, sh.as_deref())?))),
                }
            };
        Ok(Spec {
            cmd: with(argv),
            timeout_ms: p.timeout,
            creates: p.creates.clone(),
            ifcmd: other("ifcmd", &p.ifcmd, &p.ifshell)?,
            nifcmd: other("nifcmd", &p.nifcmd, &p.nifshell)?,
            watchcmd: other("watchcmd", &p.watchcmd, &p.watchshell)?,
            donecmd: other("donecmd", &p.donecmd, &p.doneshell)?,
            refreshonly: p.refreshonly,
            poll_ms: p.pollint.map(|s| s.saturating_mul(1000)),
        })
    }

    /// Footprint (command lines, `creates`), watches.
    pub fn declare(&self) -> Info {
        let mut info = Info::new().command(&self.cmd.argv);
        for c in [&self.ifcmd, &self.nifcmd, &self.donecmd]
            .into_iter()
            .flatten()
        {
            info = info.command(&c.argv);
        }
        if let Some(w) = &self.watchcmd {
            info = info.watch_command(w);
        }
        if let Some(c) = &self.creates {
            info = info.read_path(c).watch_path(c);
        }
        if let Some(ms) = self.poll_ms {
            info = info.watch_interval(ms);
        }
        info
    }
}

/// A command line for messages.
pub fn display(c: &Command) -> String {
    c.argv
        .iter()
        .map(|a| {
            if a.is_empty() || a.contains(char::is_whitespace) {
                format!("'{a}'")
            } else {
                a.clone()
            }
        })
        .collect::<Vec<_>>()
        .join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn params(json: &str) -> Params {
        serde_json::from_str(json).unwrap()
    }

    fn spec(json: &str) -> Result<Spec> {
        Spec::from_params("the-name", &params(json))
    }

    fn argv(c: &Command) -> Vec<&str> {
        c.argv.iter().map(String::as_str).collect()
    }

    #[test]
    fn cmd_defaults_to_the_name_and_splits_at_whitespace() {
        assert_eq!(argv(&spec("{}").unwrap().cmd), ["the-name"]);
        let s = spec(r#"{"cmd": "make  -C /srv  html"}"#).unwrap();
        assert_eq!(argv(&s.cmd), ["make", "-C", "/srv", "html"]);
    }

    #[test]
    fn shell_and_args_build_their_argv() {
        let s = spec(r#"{"cmd": "echo $HOME | wc", "shell": "/bin/sh"}"#).unwrap();
        assert_eq!(argv(&s.cmd), ["/bin/sh", "-c", "echo $HOME | wc"]);
        let s = spec(r#"{"cmd": "/bin/echo", "args": ["a b", ""]}"#).unwrap();
        assert_eq!(argv(&s.cmd), ["/bin/echo", "a b", ""]);
        let s =
            spec(r#"{"ifcmd": "test -f /x", "watchcmd": "tail -F /l", "watchshell": "/bin/bash"}"#)
                .unwrap();
        assert_eq!(argv(s.ifcmd.as_ref().unwrap()), ["test", "-f", "/x"]);
        assert_eq!(
            argv(s.watchcmd.as_ref().unwrap()),
            ["/bin/bash", "-c", "tail -F /l"]
        );
    }

    #[test]
    fn every_command_shares_env_cwd_user_and_group() {
        let s = spec(
            r#"{"cmd": "true", "donecmd": "true", "env": {"A": "1"}, "cwd": "/tmp", "user": 1000, "group": "www-data"}"#,
        )
        .unwrap();
        for c in [&s.cmd, s.donecmd.as_ref().unwrap()] {
            assert_eq!(c.env, [("A".to_string(), "1".to_string())]);
            assert_eq!(c.cwd.as_deref(), Some("/tmp"));
            assert_eq!(c.user.as_deref(), Some("1000"));
            assert_eq!(c.group.as_deref(), Some("www-data"));
        }
        assert!(
            spec(r#"{"cmd": "true"}"#).unwrap().cmd.env.is_empty(),
            "empty by default"
        );
    }

    #[test]
    fn bad_combinations_name_their_param() {
        for (json, field) in [
            (
                r#"{"cmd": "/bin/echo", "args": ["x"], "shell": "/bin/sh"}"#,
                "args",
            ),
            (r#"{"cmd": "echo hi", "args": ["x"]}"#, "cmd"),
            (r#"{"cwd": "tmp"}"#, "cwd"),
            (r#"{"creates": "/a/../b"}"#, "creates"),
            (r#"{"timeout": 0}"#, "timeout"),
            (r#"{"ifcmd": "  "}"#, "ifcmd"),
            (r#"{"env": {"A=B": "x"}}"#, "env"),
        ] {
            let e = spec(json).unwrap_err();
            assert_eq!(e.field.as_deref(), Some(field), "{json}: {}", e.message);
        }
    }
}
