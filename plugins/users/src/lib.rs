//! The bundled `user` and `group` kinds: local accounts, as mgmt has them (`state`,
//! `uid`, `gid`, `group`, `groups`, `homedir`, `shell`, `allowduplicateuid`), with what
//! Puppet and Ansible users expect on top (`comment`, `password` as a crypt hash,
//! `managehome`).
//!
//! The account databases are read through the host's `fs` (read grants on `/etc/passwd`,
//! `/etc/group` and, for a password, `/etc/shadow`, which are also watched: an account
//! changed by hand is put back at once) and changed with the system's own tools
//! (`useradd`, `usermod`, `userdel`, `chpasswd -e`, `groupadd`, `groupmod`, `groupdel`),
//! which keep the shadow files, locks and backups right. Each resource declares the exact
//! command lines it may run, with every attribute it manages: `usermod` always sets them
//! all, which is idempotent. A password hash goes to `chpasswd` on its standard input,
//! never on a command line or in a log. `homeostat resource user NAME` (and `group`)
//! describes an account from the same databases, never with its password hash
//! ([`db::describe_user`]).
//!
//! Parsing and the command lines are pure ([`db`], [`UserSpec`]), unit-tested natively.

use homeostat_sdk::{CheckApply, Error, Info, Outcome, Resource, ResourceId, Result, fs, process};
use serde::Deserialize;

pub mod db;

const PASSWD: &str = "/etc/passwd";
const GROUP: &str = "/etc/group";
const SHADOW: &str = "/etc/shadow";

/// `exists` or `absent` (mgmt's words).
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum State {
    #[default]
    Exists,
    Absent,
}

/// The params of a `user` resource (see `schema/user.json`).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UserParams {
    #[serde(default)]
    pub state: State,
    pub uid: Option<u32>,
    pub gid: Option<u32>,
    pub group: Option<String>,
    pub groups: Option<Vec<String>>,
    pub homedir: Option<String>,
    pub shell: Option<String>,
    pub comment: Option<String>,
    pub password: Option<String>,
    #[serde(default)]
    pub allowduplicateuid: bool,
    #[serde(default)]
    pub managehome: bool,
}

/// A user resource, checked: its name and the command lines it may run.
pub struct UserSpec<'a> {
    pub name: &'a str,
    pub p: &'a UserParams,
}

impl UserSpec<'_> {
    /// The options every command sets: what the resource manages.
    fn options(&self) -> Vec<String> {
        let p = self.p;
        let mut o = Vec::new();
        let mut add = |flag: &str, v: Option<String>| {
            if let Some(v) = v {
                o.push(flag.to_string());
                o.push(v);
            }
        };
        add("-u", p.uid.map(|u| u.to_string()));
        add(
            "-g",
            p.gid.map(|g| g.to_string()).or_else(|| p.group.clone()),
        );
        add("-G", p.groups.as_ref().map(|g| g.join(",")));
        add("-d", p.homedir.clone());
        add("-s", p.shell.clone());
        add("-c", p.comment.clone());
        if p.allowduplicateuid && p.uid.is_some() {
            o.push("-o".into());
        }
        o
    }

    pub fn useradd(&self) -> Vec<String> {
        let mut a = vec!["useradd".to_string()];
        a.extend(self.options());
        a.push(if self.p.managehome { "-m" } else { "-M" }.into());
        a.push(self.name.to_string());
        a
    }

    /// `None` when the resource manages no attribute (nothing to modify).
    pub fn usermod(&self) -> Option<Vec<String>> {
        let o = self.options();
        (!o.is_empty()).then(|| {
            let mut a = vec!["usermod".to_string()];
            a.extend(o);
            a.push(self.name.to_string());
            a
        })
    }

    pub fn userdel(&self) -> Vec<String> {
        vec!["userdel".into(), self.name.into()]
    }

    /// What differs between the entry `cur` (with the group database `groups`) and the
    /// params, one line each (a password never shows).
    pub fn differences(&self, cur: &db::Passwd, groups: &[db::Group]) -> Result<Vec<String>> {
        let p = self.p;
        let mut d = Vec::new();
        if let Some(uid) = p.uid
            && uid != cur.uid
        {
            d.push(format!("uid {} -> {uid}", cur.uid));
        }
        let gid = match (&p.gid, &p.group) {
            (Some(g), _) => Some(*g),
            (None, Some(name)) => Some(
                groups
                    .iter()
                    .find(|g| &g.name == name)
                    .map(|g| g.gid)
                    .ok_or_else(|| {
                        Error::param("group", format!("group `{name}` does not exist"))
                    })?,
            ),
            (None, None) => None,
        };
        if let Some(gid) = gid
            && gid != cur.gid
        {
            d.push(format!("gid {} -> {gid}", cur.gid));
        }
        if let Some(want) = &p.groups {
            let mut have: Vec<&str> = groups
                .iter()
                .filter(|g| g.members.iter().any(|m| m == self.name))
                .map(|g| g.name.as_str())
                .collect();
            have.sort_unstable();
            let mut want: Vec<&str> = want.iter().map(String::as_str).collect();
            want.sort_unstable();
            want.dedup();
            if have != want {
                d.push(format!(
                    "groups [{}] -> [{}]",
                    have.join(", "),
                    want.join(", ")
                ));
            }
        }
        let mut text = |what: &str, want: &Option<String>, have: &str| {
            if let Some(w) = want
                && w != have
            {
                d.push(format!("{what} {have:?} -> {w:?}"));
            }
        };
        text("homedir", &p.homedir, &cur.home);
        text("shell", &p.shell, &cur.shell);
        text("comment", &p.comment, &cur.comment);
        Ok(d)
    }
}

fn read_text(path: &str) -> Result<String> {
    Ok(String::from_utf8_lossy(&fs::read_opt(path)?.unwrap_or_default()).into_owned())
}

/// Run `argv` (declared in the footprint), failing with its stderr.
fn run(argv: Vec<String>, stdin: Option<Vec<u8>>) -> Result<()> {
    process::run_ok(&process::Command::new(argv), stdin.as_deref(), Some(30_000)).map(|_| ())
}

fn chpasswd() -> Vec<String> {
    vec!["chpasswd".into(), "-e".into()]
}

fn check_name(name: &str) -> Result<()> {
    if db::valid_name(name) {
        Ok(())
    } else {
        Err(Error::new(format!(
            "`{name}` is not a usable account name (letters, digits, `_`, `-`, `.`, at most 32 \
             bytes, not starting with `-`, not all digits)"
        )))
    }
}

/// The `user` kind.
pub struct User;

impl Resource for User {
    const KIND: &'static str = "user";
    const SCHEMA: &'static str = include_str!("../schema/user.json");
    const CLEANUP: bool = false;
    type Params = UserParams;

    fn validate(id: &ResourceId, p: &UserParams) -> Result<Info> {
        check_name(&id.name)?;
        if p.gid.is_some() && p.group.is_some() {
            return Err(Error::param(
                "group",
                "give the primary group by `gid` or by `group`, not both",
            ));
        }
        if p.allowduplicateuid && p.uid.is_none() {
            return Err(Error::param(
                "allowduplicateuid",
                "`allowduplicateuid` needs a `uid`",
            ));
        }
        for g in p.groups.iter().flatten().chain(&p.group) {
            if !db::valid_name(g) {
                return Err(Error::param("groups", format!("`{g}` is not a group name")));
            }
        }
        for (field, v) in [
            ("homedir", &p.homedir),
            ("shell", &p.shell),
            ("comment", &p.comment),
        ] {
            if v.as_deref().is_some_and(|v| v.contains([':', '\n'])) {
                return Err(Error::param(field, "cannot contain `:` or a line break"));
            }
        }
        if let Some(h) = &p.password
            && !(h.starts_with('$') || h.starts_with('!') || h.starts_with('*'))
        {
            return Err(Error::param(
                "password",
                "`password` is a crypt(3) hash (e.g. from `mkpasswd -m yescrypt`), never the \
                 password itself; `!` locks the account",
            ));
        }
        let spec = UserSpec { name: &id.name, p };
        let mut info = Info::new()
            .read_path(PASSWD)
            .read_path(GROUP)
            .watch_path(PASSWD)
            .watch_path(GROUP)
            .command(&spec.useradd())
            .command(&spec.userdel());
        if let Some(m) = spec.usermod() {
            info = info.command(&m);
        }
        if p.password.is_some() {
            info = info
                .read_path(SHADOW)
                .watch_path(SHADOW)
                .command(&chpasswd());
        }
        Ok(info)
    }

    fn describe(id: &ResourceId, _: &UserParams) -> Result<serde_json::Value> {
        Ok(db::describe_user(
            &id.name,
            &read_text(PASSWD)?,
            &read_text(GROUP)?,
        ))
    }

    fn check_apply(id: &ResourceId, p: &UserParams, ctx: &CheckApply) -> Result<Outcome> {
        let spec = UserSpec { name: &id.name, p };
        let mut out = Outcome::new();
        let current = db::passwd(&read_text(PASSWD)?, &id.name);
        match (p.state, current) {
            (State::Absent, None) => return Ok(out),
            (State::Absent, Some(_)) => {
                out.change("remove the user");
                if ctx.apply {
                    run(spec.userdel(), None)?;
                }
                return Ok(out);
            }
            (State::Exists, None) => {
                out.change("create the user");
                if ctx.apply {
                    run(spec.useradd(), None)?;
                }
            }
            (State::Exists, Some(cur)) => {
                let groups = db::groups(&read_text(GROUP)?);
                let diffs = spec.differences(&cur, &groups)?;
                if !diffs.is_empty() {
                    out.change(diffs.join("; "));
                    if ctx.apply
                        && let Some(m) = spec.usermod()
                    {
                        run(m, None)?;
                    }
                }
            }
        }
        if let Some(hash) = &p.password {
            let have = db::shadow_hash(&read_text(SHADOW)?, &id.name);
            if have.as_deref() != Some(hash.as_str()) {
                out.change("set the password");
                if ctx.apply {
                    run(
                        chpasswd(),
                        Some(format!("{}:{hash}\n", id.name).into_bytes()),
                    )?;
                }
            }
        }
        Ok(out)
    }
}

/// The params of a `group` resource (see `schema/group.json`).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GroupParams {
    #[serde(default)]
    pub state: State,
    pub gid: Option<u32>,
}

/// The `group` kind.
pub struct GroupKind;

fn group_commands(name: &str, p: &GroupParams) -> (Vec<String>, Option<Vec<String>>, Vec<String>) {
    let gid: Vec<String> = p
        .gid
        .map(|g| vec!["-g".to_string(), g.to_string()])
        .unwrap_or_default();
    let mut add = vec!["groupadd".to_string()];
    add.extend(gid.clone());
    add.push(name.into());
    let modify = (!gid.is_empty()).then(|| {
        let mut m = vec!["groupmod".to_string()];
        m.extend(gid);
        m.push(name.into());
        m
    });
    (add, modify, vec!["groupdel".into(), name.into()])
}

impl Resource for GroupKind {
    const KIND: &'static str = "group";
    const SCHEMA: &'static str = include_str!("../schema/group.json");
    const CLEANUP: bool = false;
    type Params = GroupParams;

    fn validate(id: &ResourceId, p: &GroupParams) -> Result<Info> {
        check_name(&id.name)?;
        let (add, modify, del) = group_commands(&id.name, p);
        let mut info = Info::new()
            .read_path(GROUP)
            .watch_path(GROUP)
            .command(&add)
            .command(&del);
        if let Some(m) = modify {
            info = info.command(&m);
        }
        Ok(info)
    }

    fn describe(id: &ResourceId, _: &GroupParams) -> Result<serde_json::Value> {
        Ok(db::describe_group(&id.name, &read_text(GROUP)?))
    }

    fn check_apply(id: &ResourceId, p: &GroupParams, ctx: &CheckApply) -> Result<Outcome> {
        let (add, modify, del) = group_commands(&id.name, p);
        let mut out = Outcome::new();
        let current = db::groups(&read_text(GROUP)?)
            .into_iter()
            .find(|g| g.name == id.name);
        match (p.state, current) {
            (State::Absent, Some(_)) => {
                out.change("remove the group");
                if ctx.apply {
                    run(del, None)?;
                }
            }
            (State::Exists, None) => {
                out.change("create the group");
                if ctx.apply {
                    run(add, None)?;
                }
            }
            (State::Exists, Some(g)) => {
                if let (Some(want), Some(m)) = (p.gid, modify)
                    && want != g.gid
                {
                    out.change(format!("gid {} -> {want}", g.gid));
                    if ctx.apply {
                        run(m, None)?;
                    }
                }
            }
            (State::Absent, None) => {}
        }
        Ok(out)
    }
}

homeostat_sdk::export_resource!(User, GroupKind; capabilities = ["fs", "process"]);

#[cfg(test)]
mod tests {
    use super::*;

    fn params(json: &str) -> UserParams {
        serde_json::from_str(json).unwrap()
    }

    #[test]
    fn commands_carry_every_managed_attribute() {
        let p = params(
            r#"{"uid": 1500, "group": "users", "groups": ["adm", "web"], "shell": "/bin/sh", "managehome": true}"#,
        );
        let s = UserSpec { name: "ops", p: &p };
        assert_eq!(
            s.useradd(),
            [
                "useradd", "-u", "1500", "-g", "users", "-G", "adm,web", "-s", "/bin/sh", "-m",
                "ops"
            ]
        );
        assert_eq!(
            s.usermod().unwrap(),
            [
                "usermod", "-u", "1500", "-g", "users", "-G", "adm,web", "-s", "/bin/sh", "ops"
            ]
        );
        let bare = params("{}");
        assert!(
            UserSpec {
                name: "x",
                p: &bare
            }
            .usermod()
            .is_none()
        );
    }

    #[test]
    fn differences_are_what_the_resource_manages() {
        let groups = db::groups("users:x:100:\nadm:x:4:ops\nweb:x:33:\n");
        let cur = db::Passwd {
            uid: 1500,
            gid: 100,
            comment: String::new(),
            home: "/home/ops".into(),
            shell: "/bin/bash".into(),
        };
        let p = params(
            r#"{"uid": 1500, "group": "users", "groups": ["adm", "web"], "shell": "/bin/sh"}"#,
        );
        let d = UserSpec { name: "ops", p: &p }
            .differences(&cur, &groups)
            .unwrap();
        assert_eq!(
            d,
            [
                "groups [adm] -> [adm, web]",
                r#"shell "/bin/bash" -> "/bin/sh""#
            ]
        );
        let same = params(r#"{"uid": 1500, "gid": 100, "groups": ["adm"]}"#);
        assert!(
            UserSpec {
                name: "ops",
                p: &same
            }
            .differences(&cur, &groups)
            .unwrap()
            .is_empty()
        );
        let missing = params(r#"{"group": "nope"}"#);
        let e = UserSpec {
            name: "ops",
            p: &missing,
        }
        .differences(&cur, &groups)
        .unwrap_err();
        assert_eq!(e.field.as_deref(), Some("group"));
    }

    #[test]
    fn group_commands_set_the_gid_only_when_given() {
        let (add, modify, del) = group_commands(
            "web",
            &GroupParams {
                state: State::Exists,
                gid: Some(33),
            },
        );
        assert_eq!(add, ["groupadd", "-g", "33", "web"]);
        assert_eq!(modify.unwrap(), ["groupmod", "-g", "33", "web"]);
        assert_eq!(del, ["groupdel", "web"]);
        assert!(
            group_commands(
                "web",
                &GroupParams {
                    state: State::Exists,
                    gid: None
                }
            )
            .1
            .is_none()
        );
    }
}
