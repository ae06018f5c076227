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
