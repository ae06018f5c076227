//! The `mount` kind's pure parts: `/proc/self/mountinfo` and `/etc/fstab` lines, and the
//! options compared live.

use std::collections::BTreeMap;

/// A mount as `/proc/self/mountinfo` shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mounted {
    pub source: String,
    pub fstype: String,
    /// Per-mount and superblock options together.
    pub options: Vec<String>,
}

/// `\040`-style escapes of mountinfo and fstab undone.
fn unescape(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        let octal = |k: usize| {
            b.get(k)
                .filter(|c| (b'0'..=b'7').contains(c))
                .map(|c| c - b'0')
        };
        if b[i] == b'\\'
            && let (Some(x), Some(y), Some(z)) = (octal(i + 1), octal(i + 2), octal(i + 3))
        {
            out.push(x.wrapping_mul(64).wrapping_add(y * 8).wrapping_add(z));
            i += 4;
            continue;
        }
        out.push(b[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Spaces, tabs, newlines and backslashes escaped for fstab.
pub fn escape(s: &str) -> String {
    s.replace('\\', "\\134")
        .replace(' ', "\\040")
        .replace('\t', "\\011")
        .replace('\n', "\\012")
}

/// The last mount at `point` in mountinfo `text` (the one on top).
pub fn mounted(text: &str, point: &str) -> Option<Mounted> {
    text.lines().rev().find_map(|l| {
        let (before, after) = l.split_once(" - ")?;
        let f: Vec<&str> = before.split(' ').collect();
        let a: Vec<&str> = after.split(' ').collect();
        if f.len() < 6 || a.len() < 3 || unescape(f[4]) != point {
            return None;
        }
        let mut options: Vec<String> = f[5].split(',').map(str::to_string).collect();
        options.extend(a[2].split(',').map(str::to_string));
        Some(Mounted {
            source: unescape(a[1]),
            fstype: a[0].to_string(),
            options,
        })
    })
}

/// Options as `mount -o` takes them, sorted by name (`defaults` when none).
pub fn options_text(options: &BTreeMap<String, String>) -> String {
    if options.is_empty() {
        return "defaults".into();
    }
    options
        .iter()
        .map(|(k, v)| {
            if v.is_empty() {
                k.clone()
            } else {
                format!("{k}={v}")
            }
        })
        .collect::<Vec<_>>()
        .join(",")
}

/// Options that `fstab` or `mount(8)` read but the kernel never shows.
fn userspace_only(name: &str) -> bool {
    matches!(
        name,
        "defaults"
            | "auto"
            | "noauto"
            | "nofail"
            | "user"
            | "users"
            | "nouser"
            | "owner"
            | "group"
            | "_netdev"
            | "comment"
    ) || name.starts_with("x-")
}

/// The flag options asked for that the mount does not show (those with a value are
/// not compared: the kernel rewrites them, `size=1m` as `size=1024k`).
pub fn missing_flags(options: &BTreeMap<String, String>, m: &Mounted) -> Vec<String> {
    options
        .iter()
        .filter(|(k, v)| v.is_empty() && !userspace_only(k))
        .filter(|(k, _)| !m.options.iter().any(|o| o == *k))
        .map(|(k, _)| k.clone())
        .collect()
}

/// The fstab line of a mount.
pub fn fstab_line(
    device: &str,
    point: &str,
    fstype: &str,
    options: &str,
    freq: u32,
    passno: u32,
) -> String {
    format!(
        "{} {} {fstype} {options} {freq} {passno}",
        escape(device),
        escape(point)
    )
}

/// fstab `text` with the line of `point` set to `line` (`None`: removed), or `None` when
/// it already is.
pub fn edit_fstab(text: &str, point: &str, line: Option<&str>) -> Option<String> {
    let lines: Vec<&str> = text.lines().collect();
    let is_point = |l: &str| {
        let t = l.trim_start();
        !t.starts_with('#')
            && t.split_whitespace()
                .nth(1)
                .is_some_and(|p| unescape(p) == point)
    };
    let found: Vec<usize> = (0..lines.len()).filter(|&i| is_point(lines[i])).collect();
    match line {
        Some(l) if found.len() == 1 && lines[found[0]] == l => return None,
        None if found.is_empty() => return None,
        _ => {}
    }
    let mut out: Vec<&str> = Vec::with_capacity(lines.len() + 1);
    let mut placed = false;
    for (i, l) in lines.iter().enumerate() {
        if found.contains(&i) {
            if let (Some(w), false) = (line, placed) {
                out.push(w);
                placed = true;
            }
        } else {
            out.push(l);
        }
    }
    if let (Some(w), false) = (line, placed) {
        out.push(w);
    }
    let mut new = out.join("\n");
    if !new.is_empty() {
        new.push('\n');
    }
    Some(new)
}

#[cfg(test)]
mod tests {
    use super::*;

    const INFO: &str = "22 1 8:1 / / rw,relatime shared:1 - ext4 /dev/sda1 rw\n\
        90 22 0:50 / /srv/my\\040data rw,nosuid,relatime shared:40 - tmpfs tmpfs rw,size=1024k,mode=755\n";

    #[test]
    fn mountinfo_and_options() {
        let m = mounted(INFO, "/srv/my data").unwrap();
        assert_eq!(m.fstype, "tmpfs");
        assert_eq!(m.source, "tmpfs");
        assert!(mounted(INFO, "/srv").is_none());
        let mut o = BTreeMap::new();
        o.insert("size".to_string(), "1m".to_string());
        o.insert("nosuid".to_string(), String::new());
        o.insert("nofail".to_string(), String::new());
        assert!(
            missing_flags(&o, &m).is_empty(),
            "size is not compared, nofail never shows"
        );
        o.insert("noexec".to_string(), String::new());
        assert_eq!(missing_flags(&o, &m), ["noexec"]);
        assert_eq!(options_text(&o), "noexec,nofail,nosuid,size=1m");
        assert_eq!(options_text(&BTreeMap::new()), "defaults");
    }

    #[test]
    fn fstab_lines() {
        let line = fstab_line("tmpfs", "/srv/my data", "tmpfs", "size=1m", 0, 0);
        assert_eq!(line, "tmpfs /srv/my\\040data tmpfs size=1m 0 0");
        let text = "# fstab\nUUID=x / ext4 defaults 0 1\n";
        let new = edit_fstab(text, "/srv/my data", Some(&line)).unwrap();
        assert_eq!(new, format!("{text}{line}\n"));
        assert_eq!(edit_fstab(&new, "/srv/my data", Some(&line)), None);
        assert_eq!(edit_fstab(&new, "/srv/my data", None).unwrap(), text);
    }
}
