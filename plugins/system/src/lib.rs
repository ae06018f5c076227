//! The bundled `sysctl`, `hostname` and `mount` kinds.
//!
//! **`sysctl`**: a kernel parameter, applied live and persisted.
//!
//! The live value is read from `/proc/sys` (a read grant) and set with `sysctl -w
//! KEY=VALUE`, the one command line the resource declares. It is persisted as one line
//! of a file under `/etc/sysctl.d/` (default `99-homeostat.conf`), which this kind edits
//! as a shared file ([`Resource::EDITS`]): any number of `sysctl` resources (and `line`
//! resources) keep their own line in it. The file is watched; `/proc/sys` gives no
//! events (inotify does not see procfs changes), so the live value is also checked every
//! `pollint` seconds (default 10).
//!
//! **`hostname`** (mgmt's params): the static hostname (`/etc/hostname`), the pretty one
//! (`PRETTY_HOSTNAME` in `/etc/machine-info`, whose other lines are kept) and the
//! transient one (the kernel's, read from `/proc/sys/kernel/hostname`, set with
//! `hostname NAME`). These are the files and the call systemd-hostnamed itself reads
//! and makes, so it agrees; talking to hostnamed over D-Bus would need a host interface
//! reaching beyond units. The files are watched, and so is the kernel's name: the host
//! watches `/proc/sys/kernel/hostname` through `poll`, which the kernel signals at every
//! `sethostname`.
//!
//! **`mount`** (mgmt's params): a mounted filesystem, persisted as its line of
//! `/etc/fstab` (a shared file: one line per mount point). Mounted, remounted and
//! unmounted with the one `mount`, `mount -o remount` and `umount` command lines it
//! declares; seen in `/proc/self/mountinfo`, which the host watches through `poll` (the
//! kernel signals every change of the mount table; inotify sees none), as it does
//! `/etc/fstab`.
//!
//! Parsing is pure ([`proc_path`], [`same_value`], [`edit_conf`], [`machine_info`],
//! [`mount`]), unit-tested natively.

use homeostat_sdk::{CheckApply, Error, Info, Outcome, Resource, ResourceId, Result, fs, process};
use serde::Deserialize;

pub mod mount;

/// The default file the values are persisted in.
pub const DEFAULT_FILE: &str = "/etc/sysctl.d/99-homeostat.conf";

/// `present` or `absent`.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum State {
    #[default]
    Present,
    Absent,
}

/// The params of a `sysctl` resource (see `schema/sysctl.json`); the key is the
/// resource's name.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Params {
    pub value: Option<String>,
    #[serde(default)]
    pub state: State,
    #[serde(default = "yes")]
    pub persist: bool,
    pub file: Option<String>,
    pub pollint: Option<u32>,
}

fn yes() -> bool {
    true
}

/// `/proc/sys/...` of a dotted (or slashed) key; `None` when it is not a key.
pub fn proc_path(key: &str) -> Option<String> {
    let ok = |c: char| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.' | '/');
    if key.is_empty() || !key.chars().all(ok) || key.contains("..") || key.starts_with(['.', '/']) {
        return None;
    }
    Some(format!("/proc/sys/{}", key.replace('.', "/")))
}

/// Whether the kernel's `live` text is `want` (tabs and runs of spaces are the same).
pub fn same_value(live: &str, want: &str) -> bool {
    live.split_whitespace().eq(want.split_whitespace())
}

/// The conf file holding `text` with the line of `key` set to `value` (`None`: removed),
/// what changed, or `None` when it is already so. Lines for the key in either spelling
/// (`a.b` or `a/b`), with any spacing, are the key's.
pub fn edit_conf(text: &str, key: &str, value: Option<&str>) -> Option<(String, String)> {
    let norm = |k: &str| k.trim().replace('/', ".");
    let is_key = |l: &str| {
        let t = l.trim_start().trim_start_matches('-');
        !t.starts_with(['#', ';']) && t.split_once('=').is_some_and(|(k, _)| norm(k) == norm(key))
    };
    let lines: Vec<&str> = text.lines().collect();
    let want = value.map(|v| format!("{key} = {v}"));
    let found: Vec<usize> = (0..lines.len()).filter(|&i| is_key(lines[i])).collect();
    if let Some(w) = &want
        && found.len() == 1
        && lines[found[0]] == w
    {
        return None;
    }
    if want.is_none() && found.is_empty() {
        return None;
    }
    let mut out: Vec<&str> = Vec::with_capacity(lines.len() + 1);
    let mut placed = false;
    for (i, l) in lines.iter().enumerate() {
        if found.contains(&i) {
            if let (Some(w), false) = (&want, placed) {
                out.push(w);
                placed = true;
            }
        } else {
            out.push(l);
        }
    }
    if let (Some(w), false) = (&want, placed) {
        out.push(w);
    }
    let mut new = out.join("\n");
    if !new.is_empty() {
        new.push('\n');
    }
    let what = match (value, found.is_empty()) {
        (Some(_), true) => "persist",
        (Some(_), false) => "update the persisted value",
        (None, _) => "remove the persisted value",
    };
    Some((new, what.to_string()))
}

/// The `sysctl` kind.
pub struct Sysctl;

impl Sysctl {
    fn file(p: &Params) -> &str {
        p.file.as_deref().unwrap_or(DEFAULT_FILE)
    }

    fn set(key: &str, value: &str) -> Vec<String> {
        vec!["sysctl".into(), "-w".into(), format!("{key}={value}")]
    }
}

impl Resource for Sysctl {
    const KIND: &'static str = "sysctl";
    const SCHEMA: &'static str = include_str!("../schema/sysctl.json");
    const CLEANUP: bool = false;
    const EDITS: bool = true;
    type Params = Params;

    fn validate(id: &ResourceId, p: &Params) -> Result<Info> {
        let proc = proc_path(&id.name).ok_or_else(|| {
            Error::new(format!(
                "`{}` is not a kernel parameter name (e.g. `net.ipv4.ip_forward`)",
                id.name
            ))
        })?;
        let file = Self::file(p);
        if !file.starts_with('/') || file.ends_with('/') {
            return Err(Error::param(
                "file",
                format!("`{file}` is not an absolute file path"),
            ));
        }
        let mut info = Info::new().read_path(&proc);
        match (p.state, &p.value) {
            (State::Present, None) => {
                return Err(Error::param(
                    "value",
                    "`value` is required with `state: present`",
                ));
            }
            (State::Present, Some(v)) => {
                if v.contains(['\n', '\0']) || v.trim().is_empty() {
                    return Err(Error::param("value", "a value is one line, not empty"));
                }
                info = info
                    .command(&Self::set(&id.name, v))
                    .watch_interval(p.pollint.unwrap_or(10).saturating_mul(1000));
            }
            (State::Absent, _) => {}
        }
        if p.persist || p.state == State::Absent {
            info = info.write_path(file).watch_path(file).depends_on_path(file);
        }
        Ok(info)
    }

    fn check_apply(id: &ResourceId, p: &Params, ctx: &CheckApply) -> Result<Outcome> {
        let mut out = Outcome::new();
        let proc = proc_path(&id.name).expect("checked by validate");
        if let (State::Present, Some(v)) = (p.state, &p.value) {
            let live = match fs::read_opt(&proc)? {
                Some(b) => String::from_utf8_lossy(&b).into_owned(),
                None => {
                    return Err(Error::new(format!(
                        "the kernel has no parameter `{}` ({proc} does not exist)",
                        id.name
                    )));
                }
            };
            if !same_value(&live, v) {
                out.change(format!("live value {:?} -> {v:?}", live.trim()));
                if ctx.apply {
                    run_checked(Self::set(&id.name, v))?;
                }
            }
        }
        if p.persist || p.state == State::Absent {
            let file = Self::file(p);
            let text =
                String::from_utf8_lossy(&fs::read_opt(file)?.unwrap_or_default()).into_owned();
            let value = if p.state == State::Present {
                p.value.as_deref()
            } else {
                None
            };
            if let Some((new, what)) = edit_conf(&text, &id.name, value) {
                out.change(format!("{what} in {file}"));
                if ctx.apply {
                    fs::write(file, new.as_bytes(), fs::Attrs::new())?;
                }
            }
        }
        Ok(out)
    }
}

/// The params of a `hostname` resource (mgmt's names).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HostnameParams {
    /// All three, unless one is given by its own param.
    pub hostname: Option<String>,
    pub pretty_hostname: Option<String>,
    pub static_hostname: Option<String>,
    pub transient_hostname: Option<String>,
    pub pollint: Option<u32>,
}

const HOSTNAME: &str = "/etc/hostname";
const MACHINE_INFO: &str = "/etc/machine-info";
const KERNEL_HOSTNAME: &str = "/proc/sys/kernel/hostname";

impl HostnameParams {
    fn static_name(&self) -> Option<&str> {
        self.static_hostname.as_deref().or(self.hostname.as_deref())
    }
    fn transient_name(&self) -> Option<&str> {
        self.transient_hostname
            .as_deref()
            .or(self.hostname.as_deref())
    }
    fn pretty_name(&self) -> Option<&str> {
        self.pretty_hostname.as_deref().or(self.hostname.as_deref())
    }
}

/// Whether `name` is a valid (static or transient) hostname: dot-separated labels of
/// letters, digits and `-`, not starting or ending with `-`, at most 64 bytes.
pub fn valid_hostname(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 64
        && name.split('.').all(|l| {
            !l.is_empty()
                && !l.starts_with('-')
                && !l.ends_with('-')
                && l.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
        })
}

/// `/etc/machine-info` holding `text` with `PRETTY_HOSTNAME` set to `pretty`, or `None`
/// when it already is. The value is written double-quoted with `\` and `"` escaped, as
/// hostnamectl does; the other lines are kept.
pub fn machine_info(text: &str, pretty: &str) -> Option<String> {
    let escaped = pretty.replace('\\', "\\\\").replace('"', "\\\"");
    let want = format!("PRETTY_HOSTNAME=\"{escaped}\"");
    let lines: Vec<&str> = text.lines().collect();
    let is_key = |l: &str| l.trim_start().starts_with("PRETTY_HOSTNAME=");
    let found: Vec<usize> = (0..lines.len()).filter(|&i| is_key(lines[i])).collect();
    if found.len() == 1 && lines[found[0]] == want {
        return None;
    }
    let mut out: Vec<&str> = lines.iter().copied().filter(|l| !is_key(l)).collect();
    let at = found.first().copied().unwrap_or(out.len()).min(out.len());
    out.insert(at, &want);
    let mut new = out.join("\n");
    new.push('\n');
    Some(new)
}

/// The `hostname` kind.
pub struct Hostname;

impl Resource for Hostname {
    const KIND: &'static str = "hostname";
    const SCHEMA: &'static str = include_str!("../schema/hostname.json");
    const CLEANUP: bool = false;
    const EDITS: bool = true;
    type Params = HostnameParams;

    fn validate(_: &ResourceId, p: &HostnameParams) -> Result<Info> {
        for (field, name) in [
            ("hostname", p.hostname.as_deref()),
            ("static_hostname", p.static_hostname.as_deref()),
            ("transient_hostname", p.transient_hostname.as_deref()),
        ] {
            if let Some(n) = name
                && !valid_hostname(n)
            {
                return Err(Error::param(
                    field,
                    format!(
                        "`{n}` is not a hostname (dot-separated labels of letters, digits and \
                         `-`, at most 64 bytes)"
                    ),
                ));
            }
        }
        if p.pretty_hostname
            .as_deref()
            .is_some_and(|n| n.contains(['\n', '\0']))
        {
            return Err(Error::param(
                "pretty_hostname",
                "a pretty hostname is one line",
            ));
        }
        let mut info = Info::new();
        if p.static_name().is_some() {
            info = info.write_path(HOSTNAME).watch_path(HOSTNAME);
        }
        if p.pretty_name().is_some() {
            info = info.write_path(MACHINE_INFO).watch_path(MACHINE_INFO);
        }
        if let Some(t) = p.transient_name() {
            info = info
                .read_path(KERNEL_HOSTNAME)
                .command(&["hostname".to_string(), t.to_string()])
                .watch_path(KERNEL_HOSTNAME);
            if let Some(s) = p.pollint {
                info = info.watch_interval(s.saturating_mul(1000));
            }
        }
        Ok(info)
    }

    fn check_apply(_: &ResourceId, p: &HostnameParams, ctx: &CheckApply) -> Result<Outcome> {
        let mut out = Outcome::new();
        let text = |path: &str| -> Result<String> {
            Ok(String::from_utf8_lossy(&fs::read_opt(path)?.unwrap_or_default()).into_owned())
        };
        if let Some(want) = p.static_name() {
            let have = text(HOSTNAME)?;
            if have.trim() != want {
                out.change(format!("static hostname {:?} -> {want:?}", have.trim()));
                if ctx.apply {
                    fs::write(
                        HOSTNAME,
                        format!("{want}\n").as_bytes(),
                        fs::Attrs::new().mode(0o644),
                    )?;
                }
            }
        }
        if let Some(want) = p.pretty_name()
            && let Some(new) = machine_info(&text(MACHINE_INFO)?, want)
        {
            out.change(format!("pretty hostname -> {want:?}"));
            if ctx.apply {
                fs::write(MACHINE_INFO, new.as_bytes(), fs::Attrs::new().mode(0o644))?;
            }
        }
        if let Some(want) = p.transient_name() {
            let have = text(KERNEL_HOSTNAME)?;
            if have.trim() != want {
                out.change(format!("transient hostname {:?} -> {want:?}", have.trim()));
                if ctx.apply {
                    run_checked(vec!["hostname".to_string(), want.to_string()])?;
                }
            }
        }
        Ok(out)
    }
}

/// The params of a `mount` resource (mgmt's names); the mount point is the resource's
/// name.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MountParams {
    #[serde(default)]
    pub state: MountState,
    pub device: Option<String>,
    #[serde(rename = "type")]
    pub fstype: Option<String>,
    #[serde(default)]
    pub options: std::collections::BTreeMap<String, String>,
    #[serde(default)]
    pub freq: u32,
    #[serde(default)]
    pub passno: u32,
    #[serde(default = "yes")]
    pub persist: bool,
    pub pollint: Option<u32>,
}

/// `exists` or `absent` (mgmt's words).
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum MountState {
    #[default]
    Exists,
    Absent,
}

const FSTAB: &str = "/etc/fstab";
const MOUNTINFO: &str = "/proc/self/mountinfo";

/// The `mount` kind.
pub struct Mount;

impl Mount {
    fn commands(point: &str, p: &MountParams) -> (Vec<String>, Vec<String>, Vec<String>) {
        let opts = mount::options_text(&p.options);
        let mount = vec![
            "mount".into(),
            "-t".into(),
            p.fstype.clone().unwrap_or_default(),
            "-o".into(),
            opts.clone(),
            p.device.clone().unwrap_or_default(),
            point.into(),
        ];
        let remount = vec![
            "mount".into(),
            "-o".into(),
            format!("remount,{opts}"),
            point.into(),
        ];
        (mount, remount, vec!["umount".into(), point.into()])
    }
}

/// Run one of the resource's declared command lines.
fn run_checked(argv: Vec<String>) -> Result<()> {
    process::run_ok(&process::Command::new(argv), None, Some(60_000)).map(|_| ())
}

impl Resource for Mount {
    const KIND: &'static str = "mount";
    const SCHEMA: &'static str = include_str!("../schema/mount.json");
    const CLEANUP: bool = false;
    const EDITS: bool = true;
    type Params = MountParams;

    fn validate(id: &ResourceId, p: &MountParams) -> Result<Info> {
        let point = id.name.as_str();
        if !point.starts_with('/') || point == "/" || point.contains('\n') {
            return Err(Error::new(format!(
                "`{point}` is not a mount point: the resource's name is an absolute path other \
                 than `/`"
            )));
        }
        if p.state == MountState::Exists {
            if p.device.is_none() {
                return Err(Error::param(
                    "device",
                    "`device` is required with `state: exists`",
                ));
            }
            if p.fstype.is_none() {
                return Err(Error::param(
                    "type",
                    "`type` is required with `state: exists`",
                ));
            }
        }
        for (k, v) in &p.options {
            if k.is_empty() || k.contains([',', ' ', '=']) || v.contains([',', ' ', '\n']) {
                return Err(Error::param(
                    "options",
                    format!("`{k}` is not a mount option"),
                ));
            }
        }
        let (m, r, u) = Self::commands(point, p);
        let mut info = Info::new()
            .read_path(MOUNTINFO)
            .command(&u)
            .watch_path(MOUNTINFO);
        if let Some(s) = p.pollint {
            info = info.watch_interval(s.saturating_mul(1000));
        }
        if p.state == MountState::Exists {
            info = info
                .command(&m)
                .command(&r)
                .read_path(point)
                .depends_on_path(point);
        }
        if p.persist || p.state == MountState::Absent {
            info = info
                .write_path(FSTAB)
                .watch_path(FSTAB)
                .depends_on_path(FSTAB);
        }
        Ok(info)
    }

    fn check_apply(id: &ResourceId, p: &MountParams, ctx: &CheckApply) -> Result<Outcome> {
        let point = id.name.as_str();
        let mut out = Outcome::new();
        let info = String::from_utf8_lossy(&fs::read(MOUNTINFO)?).into_owned();
        let (m, r, u) = Self::commands(point, p);
        match (p.state, mount::mounted(&info, point)) {
            (MountState::Exists, None) => {
                match fs::stat(point)? {
                    Some(st) if st.file_type == fs::FileType::Directory => {}
                    Some(_) => {
                        return Err(Error::new(format!(
                            "{point} is not a directory: a mount point is one"
                        )));
                    }
                    None => {
                        return Err(Error::new(format!(
                            "{point} does not exist: make the directory first (a `file` \
                             resource with a path ending in `/`)"
                        )));
                    }
                }
                out.change("mount");
                if ctx.apply {
                    run_checked(m)?;
                }
            }
            (MountState::Exists, Some(now)) => {
                let want = p.fstype.as_deref().unwrap_or_default();
                if now.fstype != want {
                    return Err(Error::new(format!(
                        "{point} is a {} mount, not {want}: unmount it first (homeostat does \
                         not unmount what another resource may use)",
                        now.fstype
                    )));
                }
                let missing = mount::missing_flags(&p.options, &now);
                if !missing.is_empty() {
                    out.change(format!("remount with {}", missing.join(",")));
                    if ctx.apply {
                        run_checked(r)?;
                    }
                }
            }
            (MountState::Absent, Some(_)) => {
                out.change("unmount");
                if ctx.apply {
                    run_checked(u)?;
                }
            }
            (MountState::Absent, None) => {}
        }
        if p.persist || p.state == MountState::Absent {
            let line = (p.state == MountState::Exists).then(|| {
                mount::fstab_line(
                    p.device.as_deref().unwrap_or_default(),
                    point,
                    p.fstype.as_deref().unwrap_or_default(),
                    &mount::options_text(&p.options),
                    p.freq,
                    p.passno,
                )
            });
            let text =
                String::from_utf8_lossy(&fs::read_opt(FSTAB)?.unwrap_or_default()).into_owned();
            if let Some(new) = mount::edit_fstab(&text, point, line.as_deref()) {
                out.change(if line.is_some() {
                    "persist in /etc/fstab"
                } else {
                    "remove from /etc/fstab"
                });
                if ctx.apply {
                    fs::write(FSTAB, new.as_bytes(), fs::Attrs::new())?;
                }
            }
        }
        Ok(out)
    }
}

homeostat_sdk::export_resource!(Sysctl, Hostname, Mount; capabilities = ["fs", "process"]);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hostnames_and_machine_info() {
        assert!(valid_hostname("web1.example.com") && valid_hostname("a-b"));
        assert!(!valid_hostname("-a") && !valid_hostname("a..b") && !valid_hostname("a_b"));
        assert!(!valid_hostname(&"a".repeat(65)));
        let t = machine_info("CHASSIS=server\n", "Web \"one\"").unwrap();
        assert_eq!(t, "CHASSIS=server\nPRETTY_HOSTNAME=\"Web \\\"one\\\"\"\n");
        assert_eq!(machine_info(&t, "Web \"one\""), None);
        let t = machine_info("PRETTY_HOSTNAME=old\nCHASSIS=vm\n", "new").unwrap();
        assert_eq!(t, "PRETTY_HOSTNAME=\"new\"\nCHASSIS=vm\n");
    }

    #[test]
    fn keys_values_and_the_conf_line() {
        assert_eq!(
            proc_path("net.ipv4.ip_forward").as_deref(),
            Some("/proc/sys/net/ipv4/ip_forward")
        );
        assert_eq!(
            proc_path("kernel/pid_max").as_deref(),
            Some("/proc/sys/kernel/pid_max")
        );
        assert!(
            proc_path("../etc/passwd").is_none()
                && proc_path("a b").is_none()
                && proc_path("").is_none()
        );
        assert!(same_value("4096\t87380\t6291456\n", "4096 87380  6291456"));
        assert!(!same_value("0\n", "1"));
        let (t, what) =
            edit_conf("# mine\nvm.swappiness=60\n", "vm.swappiness", Some("10")).unwrap();
        assert_eq!(t, "# mine\nvm.swappiness = 10\n");
        assert_eq!(what, "update the persisted value");
        assert_eq!(edit_conf(&t, "vm.swappiness", Some("10")), None);
        let (t, _) = edit_conf("", "net.ipv4.ip_forward", Some("1")).unwrap();
        assert_eq!(t, "net.ipv4.ip_forward = 1\n");
        let (t, _) = edit_conf(
            "a = 1\nnet/ipv4/ip_forward = 1\n",
            "net.ipv4.ip_forward",
            None,
        )
        .unwrap();
        assert_eq!(t, "a = 1\n");
        assert_eq!(edit_conf("a = 1\n", "b", None), None);
    }
}
