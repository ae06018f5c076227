//! The `ssh_authorized_key` kind's edit (Puppet's `ssh_authorized_key`, Ansible's
//! `authorized_key`): one key's line in an `authorized_keys` file, every other line kept.
//! A key is the same key whatever its options and comment: its type and its base64 blob.

use serde::Deserialize;

use crate::line::join;

/// Key types `sshd` accepts in `authorized_keys`.
pub const TYPES: &[&str] = &[
    "ssh-ed25519",
    "ssh-rsa",
    "ecdsa-sha2-nistp256",
    "ecdsa-sha2-nistp384",
    "ecdsa-sha2-nistp521",
    "sk-ssh-ed25519@openssh.com",
    "sk-ecdsa-sha2-nistp256@openssh.com",
    "ssh-dss",
];

/// The params of an `ssh_authorized_key` resource (see `schema/ssh_authorized_key.json`).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Params {
    pub user: String,
    #[serde(rename = "type")]
    pub kind: String,
    pub key: String,
    #[serde(default)]
    pub state: crate::line::State,
    #[serde(default)]
    pub options: Vec<String>,
    #[serde(default)]
    pub target: Option<String>,
}

/// A param's error: the param and what is wrong.
pub type Invalid = (&'static str, String);

/// The file the key goes in: `target`, else `~USER/.ssh/authorized_keys` with `~root`
/// being `/root` and every other user's home `/home/USER` (the footprint is declared
/// before anything is read, so the home cannot be looked up: give `target` for another).
pub fn target(p: &Params) -> String {
    match &p.target {
        Some(t) => t.clone(),
        None if p.user == "root" => "/root/.ssh/authorized_keys".into(),
        None => format!("/home/{}/.ssh/authorized_keys", p.user),
    }
}

/// Check `p` beyond its schema (`comment`: the resource's name).
pub fn check(p: &Params, comment: &str) -> Result<(), Invalid> {
    if !TYPES.contains(&p.kind.as_str()) {
        return Err((
            "type",
            format!(
                "`{}` is not a key type sshd knows ({})",
                p.kind,
                TYPES.join(", ")
            ),
        ));
    }
    let b64 = |c: char| c.is_ascii_alphanumeric() || matches!(c, '+' | '/' | '=');
    if p.key.is_empty() || !p.key.chars().all(b64) {
        return Err((
            "key",
            "`key` is the base64 part of the public key only (no type, no comment)".into(),
        ));
    }
    if p.user.is_empty() || p.user.contains(['/', ':', '\n']) {
        return Err(("user", format!("`{}` is not a user name", p.user)));
    }
    if let Some(o) = p
        .options
        .iter()
        .find(|o| o.is_empty() || o.contains(['\n', ' ']) && !o.contains('"'))
    {
        return Err((
            "options",
            format!("`{o}` is not an option (e.g. `no-pty`, `from=\"10.0.0.0/8\"`)"),
        ));
    }
    if comment.contains('\n') {
        return Err(("name", "the name (the key's comment) is one line".into()));
    }
    Ok(())
}

/// The line this resource wants.
pub fn wanted(p: &Params, comment: &str) -> String {
    let mut l = String::new();
    if !p.options.is_empty() {
        l.push_str(&p.options.join(","));
        l.push(' ');
    }
    l.push_str(&p.kind);
    l.push(' ');
    l.push_str(&p.key);
    if !comment.is_empty() {
        l.push(' ');
        l.push_str(comment);
    }
    l
}

/// The `(type, blob)` of an `authorized_keys` line: its first token that is a key type
/// (options before it may hold quoted spaces), and the next.
fn key_of(line: &str) -> Option<(&str, &str)> {
    let t = line.trim_start();
    if t.is_empty() || t.starts_with('#') {
        return None;
    }
    let mut quoted = false;
    let mut start = 0;
    let mut tokens = Vec::new();
    for (i, c) in t.char_indices() {
        match c {
            '"' => quoted = !quoted,
            ' ' | '\t' if !quoted => {
                if i > start {
                    tokens.push(&t[start..i]);
                }
                start = i + 1;
            }
            _ => {}
        }
    }
    if start < t.len() {
        tokens.push(&t[start..]);
    }
    let at = tokens.iter().position(|tok| TYPES.contains(tok))?;
    Some((tokens[at], tokens.get(at + 1)?))
}

/// The new text of an `authorized_keys` file holding `text`, with what changed, or `None`
/// when the key is already as wanted.
pub fn edit(text: &str, p: &Params, comment: &str) -> Option<(String, String)> {
    let want = wanted(p, comment);
    let lines: Vec<&str> = text.lines().collect();
    let same = |l: &str| key_of(l) == Some((p.kind.as_str(), p.key.as_str()));
    let found: Vec<usize> = (0..lines.len()).filter(|&i| same(lines[i])).collect();
    let mut out: Vec<&str> = Vec::with_capacity(lines.len() + 1);
    let what = match p.state {
        crate::line::State::Absent => {
            if found.is_empty() {
                return None;
            }
            out.extend(
                (0..lines.len())
                    .filter(|i| !found.contains(i))
                    .map(|i| lines[i]),
            );
            "remove the key"
        }
        crate::line::State::Present => {
            if found.len() == 1 && lines[found[0]] == want {
                return None;
            }
            let mut placed = false;
            for (i, l) in lines.iter().enumerate() {
                if found.contains(&i) {
                    if !placed {
                        out.push(&want);
                        placed = true;
                    }
                } else {
                    out.push(l);
                }
            }
            if placed {
                "update the key's options or comment"
            } else {
                out.push(&want);
                "add the key"
            }
        }
    };
    Some((join(&out), what.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn params(json: serde_json::Value) -> Params {
        serde_json::from_value(json).unwrap()
    }

    const KEY: &str = "AAAAC3NzaC1lZDI1NTE5AAAAIGx0ZXN0a2V5";

    #[test]
    fn one_line_per_key_whatever_its_options() {
        let p = params(
            serde_json::json!({"user": "web", "type": "ssh-ed25519", "key": KEY, "options": ["no-pty", "from=\"10.0.0.0/8\""]}),
        );
        let want = format!("no-pty,from=\"10.0.0.0/8\" ssh-ed25519 {KEY} deploy@ci");
        let (text, what) = edit("# keys\nssh-rsa AAAAB3other x@y\n", &p, "deploy@ci").unwrap();
        assert_eq!(text, format!("# keys\nssh-rsa AAAAB3other x@y\n{want}\n"));
        assert_eq!(what, "add the key");
        assert_eq!(edit(&text, &p, "deploy@ci"), None);
        // The same key with other options and a quoted space: replaced in place.
        let old =
            format!("command=\"echo hi there\" ssh-ed25519 {KEY} old\nssh-rsa AAAAB3other x@y\n");
        let (text, what) = edit(&old, &p, "deploy@ci").unwrap();
        assert_eq!(text, format!("{want}\nssh-rsa AAAAB3other x@y\n"));
        assert_eq!(what, "update the key's options or comment");
        // Absent removes every line of the key.
        let gone = params(
            serde_json::json!({"user": "web", "type": "ssh-ed25519", "key": KEY, "state": "absent"}),
        );
        let (text, _) = edit(
            &format!("{want}\nssh-rsa AAAAB3other x@y\nssh-ed25519 {KEY}\n"),
            &gone,
            "",
        )
        .unwrap();
        assert_eq!(text, "ssh-rsa AAAAB3other x@y\n");
    }

    #[test]
    fn targets_and_bad_params() {
        let p = params(serde_json::json!({"user": "root", "type": "ssh-ed25519", "key": KEY}));
        assert_eq!(target(&p), "/root/.ssh/authorized_keys");
        let p = params(serde_json::json!({"user": "web", "type": "ssh-ed25519", "key": KEY}));
        assert_eq!(target(&p), "/home/web/.ssh/authorized_keys");
        assert!(check(&p, "c").is_ok());
        let bad = params(serde_json::json!({"user": "web", "type": "ssh-foo", "key": KEY}));
        assert_eq!(check(&bad, "c").unwrap_err().0, "type");
        let bad =
            params(serde_json::json!({"user": "web", "type": "ssh-rsa", "key": "ssh-rsa AAAA x"}));
        assert_eq!(check(&bad, "c").unwrap_err().0, "key");
    }
}
