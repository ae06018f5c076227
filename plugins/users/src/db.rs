//! The account databases as the kinds read them (`/etc/passwd`, `/etc/group`,
//! `/etc/shadow`), and the command lines that change them: pure functions, unit-tested
//! natively.

/// One `/etc/passwd` entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Passwd {
    pub uid: u32,
    pub gid: u32,
    pub comment: String,
    pub home: String,
    pub shell: String,
}

/// One `/etc/group` entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Group {
    pub name: String,
    pub gid: u32,
    pub members: Vec<String>,
}

/// The entry of `name` in passwd-format `text`.
pub fn passwd(text: &str, name: &str) -> Option<Passwd> {
    text.lines().find_map(|l| {
        let f: Vec<&str> = l.split(':').collect();
        (f.len() >= 7 && f[0] == name).then(|| Passwd {
            uid: f[2].parse().unwrap_or(u32::MAX),
            gid: f[3].parse().unwrap_or(u32::MAX),
            comment: f[4].to_string(),
            home: f[5].to_string(),
            shell: f[6].to_string(),
        })
    })
}

/// Every entry of group-format `text`.
pub fn groups(text: &str) -> Vec<Group> {
    text.lines()
        .filter_map(|l| {
            let f: Vec<&str> = l.split(':').collect();
            (f.len() >= 4).then(|| Group {
                name: f[0].to_string(),
                gid: f[2].parse().unwrap_or(u32::MAX),
                members: f[3]
                    .split(',')
                    .filter(|m| !m.is_empty())
                    .map(str::to_string)
                    .collect(),
            })
        })
        .collect()
}

/// The params of a `user` resource declaring `name` as `passwd` and `group` (the
/// databases' text) have it: its ids, its primary group by name, its supplementary
/// groups, home, shell and comment (never its password). `state: absent` when there is
/// no such user.
pub fn describe_user(name: &str, passwd_text: &str, group_text: &str) -> serde_json::Value {
    let Some(u) = passwd(passwd_text, name) else {
        return serde_json::json!({"state": "absent"});
    };
    let all = groups(group_text);
    let mut p = serde_json::Map::new();
    p.insert("uid".into(), u.uid.into());
    match all.iter().find(|g| g.gid == u.gid) {
        Some(g) => p.insert("group".into(), g.name.clone().into()),
        None => p.insert("gid".into(), u.gid.into()),
    };
    let mut member: Vec<&str> = all
        .iter()
        .filter(|g| g.members.iter().any(|m| m == name))
        .map(|g| g.name.as_str())
        .collect();
    member.sort_unstable();
    p.insert("groups".into(), member.into());
    p.insert("homedir".into(), u.home.into());
    p.insert("shell".into(), u.shell.into());
    if !u.comment.is_empty() {
        p.insert("comment".into(), u.comment.into());
    }
    serde_json::Value::Object(p)
}

/// The params of a `group` resource declaring `name` as `group_text` has it.
pub fn describe_group(name: &str, group_text: &str) -> serde_json::Value {
    match groups(group_text).into_iter().find(|g| g.name == name) {
        Some(g) => serde_json::json!({"gid": g.gid}),
        None => serde_json::json!({"state": "absent"}),
    }
}

/// The password hash of `name` in shadow-format `text`.
pub fn shadow_hash(text: &str, name: &str) -> Option<String> {
    text.lines().find_map(|l| {
        let mut f = l.split(':');
        (f.next() == Some(name)).then(|| f.next().unwrap_or_default().to_string())
    })
}

/// Whether `name` is a usable user or group name: what `useradd` accepts by default
/// (letters, digits, `_`, `-`, `.`, not starting with `-`, at most 32 bytes; a trailing
/// `$` for machine accounts).
pub fn valid_name(name: &str) -> bool {
    let body = name.strip_suffix('$').unwrap_or(name);
    !body.is_empty()
        && name.len() <= 32
        && !body.starts_with('-')
        && body
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.'))
        && !body.chars().all(|c| c.is_ascii_digit())
}

#[cfg(test)]
mod tests {
    use super::*;

    const PASSWD: &str = "root:x:0:0:root:/root:/bin/bash\nweb:x:1002:100:Web server,,,:/srv/web:/usr/sbin/nologin\n";
    const GROUP: &str = "root:x:0:\nusers:x:100:web\nadm:x:4:web,ops\n";

    #[test]
    fn describes_a_user_and_a_group_as_they_are() {
        assert_eq!(
            describe_user("web", PASSWD, GROUP),
            serde_json::json!({"uid": 1002, "group": "users", "groups": ["adm", "users"],
                               "homedir": "/srv/web", "shell": "/usr/sbin/nologin",
                               "comment": "Web server,,,"})
        );
        assert_eq!(
            describe_user("nobody", PASSWD, GROUP),
            serde_json::json!({"state": "absent"})
        );
        assert_eq!(describe_group("adm", GROUP), serde_json::json!({"gid": 4}));
        assert_eq!(
            describe_group("web", GROUP),
            serde_json::json!({"state": "absent"})
        );
    }

    #[test]
    fn reads_the_entries() {
        let web = passwd(PASSWD, "web").unwrap();
        assert_eq!(web.uid, 1002);
        assert_eq!(web.gid, 100);
        assert_eq!(web.comment, "Web server,,,");
        assert_eq!(web.home, "/srv/web");
        assert_eq!(web.shell, "/usr/sbin/nologin");
        assert!(passwd(PASSWD, "we").is_none());
        let g = groups(GROUP);
        assert_eq!(g[2].members, ["web", "ops"]);
        assert!(g[0].members.is_empty());
        assert_eq!(
            shadow_hash("web:$6$x:19000:0:99999:7:::\n", "web").as_deref(),
            Some("$6$x")
        );
    }

    #[test]
    fn names() {
        assert!(valid_name("web-1") && valid_name("host$") && valid_name("a.b_c"));
        assert!(!valid_name("") && !valid_name("-x") && !valid_name("a:b") && !valid_name("123"));
        assert!(!valid_name(&"a".repeat(33)));
    }
}
