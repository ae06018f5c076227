//! The bundled `pkg` kind (mgmt's params): a Debian package installed, at a version, the
//! newest, removed or purged.
//!
//! **apt and dpkg directly, not PackageKit.** mgmt talks to PackageKit over D-Bus; a
//! Debian server rarely runs PackageKit (it is a desktop daemon), while apt and dpkg are
//! always there, and a host interface for PackageKit would reach far beyond what a
//! resource needs. So the state is read from dpkg's database (`/var/lib/dpkg/status`,
//! a read grant, watched: every dpkg run replaces it, so a package removed by hand is
//! seen at once), and changed with `apt-get`, through the exact command lines each
//! resource declares. `newest` asks `apt-cache policy` for the candidate; refreshing the
//! package lists (`apt-get update`) is left to the operator or an `exec`. Every line
//! waits for dpkg's lock (`DPkg::Lock::Timeout`) rather than failing while another
//! transaction runs.
//!
//! **Grouped** (mgmt's `autogroup`, [`Resource::GROUPS`]): the packages ready at the
//! same moment are installed in one `apt-get install`, removed in one `apt-get remove`,
//! purged in one `apt-get purge`, lines the host merges from those each resource
//! declared. `homeostat resource pkg NAME` describes a package as dpkg has it.
//!
//! The database parsing and the command lines are pure, unit-tested natively.

use homeostat_sdk::{
    CheckApply, Error, GroupMember, Info, Outcome, Resource, ResourceId, Result, fs, process,
};
use serde::Deserialize;

const STATUS: &str = "/var/lib/dpkg/status";

/// The params of a `pkg` resource; the package is the resource's name.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Params {
    /// `installed`, `uninstalled`, `newest`, `purged`, or a version.
    #[serde(default = "installed")]
    pub state: String,
    #[serde(default)]
    pub allowdowngrade: bool,
    #[serde(default)]
    pub allowuntrusted: bool,
    /// mgmt's PackageKit filters, accepted and meaningless to apt.
    #[serde(default)]
    pub allownonfree: bool,
    #[serde(default)]
    pub allowunsupported: bool,
}

fn installed() -> String {
    "installed".into()
}

/// What the resource wants.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Want {
    Installed,
    Uninstalled,
    Purged,
    Newest,
    Version(String),
}

impl Want {
    pub fn of(state: &str) -> Want {
        match state {
            "installed" | "present" => Want::Installed,
            "uninstalled" | "absent" | "removed" => Want::Uninstalled,
            "purged" => Want::Purged,
            "newest" | "latest" => Want::Newest,
            v => Want::Version(v.to_string()),
        }
    }
}

/// A package as dpkg's database has it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Known {
    /// Installed (`install ok installed`); otherwise only its configuration is left.
    pub installed: bool,
    pub version: String,
}

/// `name`'s entry in dpkg status `text` (the installed one when several architectures
/// are listed).
pub fn known(text: &str, name: &str) -> Option<Known> {
    let mut best: Option<Known> = None;
    for stanza in text.split("\n\n") {
        let field = |f: &str| {
            stanza
                .lines()
                .find_map(|l| l.strip_prefix(f).map(str::trim))
        };
        if field("Package:") != Some(name) {
            continue;
        }
        let status = field("Status:").unwrap_or_default();
        if status.ends_with(" not-installed") {
            continue;
        }
        let k = Known {
            installed: status.ends_with(" installed"),
            version: field("Version:").unwrap_or_default().to_string(),
        };
        if best.as_ref().is_none_or(|b| !b.installed) {
            best = Some(k);
        }
    }
    best
}

/// The params declaring `name` as dpkg status `text` has it, as `puppet resource
/// package` says it: the installed version; `uninstalled` when only its configuration is
/// left; `purged` when dpkg knows nothing of it.
pub fn describe(text: &str, name: &str) -> serde_json::Value {
    let state = match known(text, name) {
        Some(k) if k.installed => k.version,
        Some(_) => "uninstalled".into(),
        None => "purged".into(),
    };
    serde_json::json!({ "state": state })
}

/// The candidate version in `apt-cache policy` output.
pub fn candidate(policy: &str) -> Option<String> {
    policy
        .lines()
        .find_map(|l| l.trim().strip_prefix("Candidate:").map(str::trim))
        .filter(|c| *c != "(none)")
        .map(str::to_string)
}

/// Whether `name` is a Debian package name (lower case letters, digits, `+ - .`, at
/// least two characters, starting alphanumeric; an `:arch` suffix allowed).
pub fn valid_name(name: &str) -> bool {
    let (pkg, arch) = name.split_once(':').unwrap_or((name, "x"));
    pkg.len() >= 2
        && pkg.starts_with(|c: char| c.is_ascii_lowercase() || c.is_ascii_digit())
        && pkg
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || matches!(c, '+' | '-' | '.'))
        && !arch.is_empty()
        && arch.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
}

/// How long an `apt-get` waits for dpkg's lock (seconds), as apt's option.
const LOCK_WAIT: &str = "DPkg::Lock::Timeout=300";

/// The command lines a resource may run.
pub struct Commands {
    pub install: Vec<String>,
    pub remove: Vec<String>,
    pub purge: Vec<String>,
    pub policy: Vec<String>,
}

impl Commands {
    pub fn of(name: &str, p: &Params) -> Commands {
        let target = match Want::of(&p.state) {
            Want::Version(v) => format!("{name}={v}"),
            _ => name.to_string(),
        };
        // Every line waits for dpkg's lock rather than failing at once: another `pkg`
        // resource (or unattended-upgrades) may hold it.
        let mut install: Vec<String> = [
            "apt-get",
            "install",
            "-y",
            "-q",
            "-o",
            LOCK_WAIT,
            "--no-install-recommends",
        ]
        .map(String::from)
        .to_vec();
        if p.allowdowngrade {
            install.push("--allow-downgrades".into());
        }
        if p.allowuntrusted {
            install.push("--allow-unauthenticated".into());
        }
        install.push(target);
        let line = |verb: &str| {
            ["apt-get", verb, "-y", "-q", "-o", LOCK_WAIT, name]
                .map(String::from)
                .to_vec()
        };
        Commands {
            install,
            remove: line("remove"),
            purge: line("purge"),
            policy: ["apt-cache", "policy", name].map(String::from).to_vec(),
        }
    }
}

/// Run `argv` the way apt wants to be run from a tool: no questions, a plain `PATH`.
fn run(argv: &[String]) -> Result<String> {
    let mut cmd = process::Command::new(argv.to_vec());
    cmd.env = vec![
        ("DEBIAN_FRONTEND".into(), "noninteractive".into()),
        (
            "PATH".into(),
            "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin".into(),
        ),
        ("LC_ALL".into(), "C".into()),
    ];
    let o = process::run_ok(&cmd, None, Some(600_000))?;
    Ok(String::from_utf8_lossy(&o.stdout).into_owned())
}

/// The `pkg` kind.
pub struct Pkg;

impl Resource for Pkg {
    const KIND: &'static str = "pkg";
    const SCHEMA: &'static str = include_str!("../schema/pkg.json");
    const CLEANUP: bool = false;
    type Params = Params;

    fn validate(id: &ResourceId, p: &Params) -> Result<Info> {
        if !valid_name(&id.name) {
            return Err(Error::new(format!(
                "`{}` is not a Debian package name (lower case letters, digits, `+`, `-`, `.`)",
                id.name
            )));
        }
        if let Want::Version(v) = Want::of(&p.state)
            && (v.is_empty()
                || !v.starts_with(|c: char| c.is_ascii_digit())
                || v.contains(char::is_whitespace))
        {
            return Err(Error::param(
                "state",
                format!(
                    "`{v}` is neither a state (installed, uninstalled, newest, purged) nor a \
                     version (which starts with a digit)"
                ),
            ));
        }
        let c = Commands::of(&id.name, p);
        let mut info = Info::new().read_path(STATUS).watch_path(STATUS);
        info = match Want::of(&p.state) {
            Want::Uninstalled => info.command(&c.remove),
            Want::Purged => info.command(&c.purge),
            Want::Newest => info.command(&c.install).command(&c.policy),
            Want::Installed | Want::Version(_) => info.command(&c.install),
        };
        Ok(info)
    }

    fn describe(id: &ResourceId, _: &Params) -> Result<serde_json::Value> {
        Ok(describe(&read_status()?, &id.name))
    }

    fn check_apply(id: &ResourceId, p: &Params, ctx: &CheckApply) -> Result<Outcome> {
        let mut out = Outcome::new();
        if let Some((what, argv)) = needed(id, p, &read_status()?)? {
            out.change(what);
            if ctx.apply {
                run(&argv)?;
            }
        }
        Ok(out)
    }

    const GROUPS: bool = true;

    /// mgmt's autogroup: the packages of every member that needs one are installed (or
    /// removed, or purged) in one `apt-get` transaction per command line, merged from
    /// the lines the members declared (the host allows exactly that, see
    /// [`Resource::check_apply_group`]). A failed transaction fails each of its members.
    fn check_apply_group(
        members: &[GroupMember<Params>],
        ctx: &CheckApply,
    ) -> Vec<Result<Outcome>> {
        let status = match read_status() {
            Ok(s) => s,
            Err(e) => return members.iter().map(|_| Err(e.clone())).collect(),
        };
        let mut results: Vec<Result<Outcome>> = Vec::new();
        // Each merged command line's prefix, and its members with their last argument.
        let mut batches: std::collections::BTreeMap<Vec<String>, Vec<(usize, String)>> =
            std::collections::BTreeMap::new();
        for (i, m) in members.iter().enumerate() {
            let mut out = Outcome::new();
            match needed(&m.id, &m.params, &status) {
                Ok(Some((what, mut argv))) => {
                    out.change(what);
                    if let Some(last) = argv.pop() {
                        batches.entry(argv).or_default().push((i, last));
                    }
                    results.push(Ok(out));
                }
                Ok(None) => results.push(Ok(out)),
                Err(e) => results.push(Err(e)),
            }
        }
        if !ctx.apply {
            return results;
        }
        for (prefix, mut items) in batches {
            items.sort_by(|a, b| a.1.cmp(&b.1));
            let mut argv = prefix;
            argv.extend(items.iter().map(|(_, target)| target.clone()));
            if let Err(e) = run(&argv) {
                let together: Vec<String> = items
                    .iter()
                    .map(|(i, _)| format!("pkg[{}]", members[*i].id.name))
                    .collect();
                for (i, _) in &items {
                    results[*i] = Err(Error::new(format!(
                        "{} (one transaction for {})",
                        e.message,
                        together.join(", ")
                    )));
                }
            }
        }
        results
    }
}

/// dpkg's database, as text.
fn read_status() -> Result<String> {
    Ok(String::from_utf8_lossy(&fs::read(STATUS)?).into_owned())
}

/// What the package `id` needs to be as `p` says, with dpkg's database `status`: the
/// change line and the declared command line that makes it, `None` when it already is.
/// `newest` asks `apt-cache policy` for the candidate.
fn needed(id: &ResourceId, p: &Params, status: &str) -> Result<Option<(String, Vec<String>)>> {
    let now = known(status, &id.name);
    let have = now
        .as_ref()
        .filter(|k| k.installed)
        .map(|k| k.version.clone());
    let c = Commands::of(&id.name, p);
    Ok(match (Want::of(&p.state), &have) {
        (Want::Installed, None) => Some(("install".into(), c.install)),
        (Want::Uninstalled, Some(v)) => Some((format!("remove {v}"), c.remove)),
        (Want::Purged, _) if now.is_some() => Some(("purge".into(), c.purge)),
        (Want::Version(want), have) if have.as_deref() != Some(want.as_str()) => Some((
            match have {
                Some(v) => format!("version {v} -> {want}"),
                None => format!("install version {want}"),
            },
            c.install,
        )),
        (Want::Newest, have) => {
            let cand = candidate(&run(&c.policy)?).ok_or_else(|| {
                Error::new(format!(
                    "no candidate for {} in the package lists (is it in a source? run \
                     `apt-get update`)",
                    id.name
                ))
            })?;
            (have.as_deref() != Some(cand.as_str())).then(|| {
                (
                    match have {
                        Some(v) => format!("upgrade {v} -> {cand}"),
                        None => format!("install {cand}"),
                    },
                    c.install,
                )
            })
        }
        _ => None,
    })
}

homeostat_sdk::export_resource!(Pkg; capabilities = ["fs", "process"]);

#[cfg(test)]
mod tests {
    use super::*;

    const STATUS_TEXT: &str = "Package: curl\nStatus: install ok installed\nVersion: 7.88.1-10\n\n\
        Package: old\nStatus: deinstall ok config-files\nVersion: 1.0\n\n\
        Package: libc6\nStatus: install ok installed\nArchitecture: amd64\nVersion: 2.36-9\n";

    #[test]
    fn describes_a_package_as_dpkg_has_it() {
        let d = |n| {
            describe(STATUS_TEXT, n)["state"]
                .as_str()
                .unwrap()
                .to_string()
        };
        assert_eq!(
            (d("curl"), d("old"), d("nope")),
            ("7.88.1-10".into(), "uninstalled".into(), "purged".into())
        );
    }

    #[test]
    fn reads_the_database_and_the_candidate() {
        assert_eq!(
            known(STATUS_TEXT, "curl"),
            Some(Known {
                installed: true,
                version: "7.88.1-10".into()
            })
        );
        assert_eq!(
            known(STATUS_TEXT, "old"),
            Some(Known {
                installed: false,
                version: "1.0".into()
            })
        );
        assert_eq!(known(STATUS_TEXT, "nope"), None);
        let policy =
            "curl:\n  Installed: 7.88.1-10\n  Candidate: 7.88.1-10+deb12u5\n  Version table:\n";
        assert_eq!(candidate(policy).as_deref(), Some("7.88.1-10+deb12u5"));
        assert_eq!(
            candidate("x:\n  Installed: (none)\n  Candidate: (none)\n"),
            None
        );
    }

    #[test]
    fn states_names_and_commands() {
        assert_eq!(Want::of("installed"), Want::Installed);
        assert_eq!(Want::of("latest"), Want::Newest);
        assert_eq!(Want::of("1.2-3"), Want::Version("1.2-3".into()));
        assert!(valid_name("libc6") && valid_name("g++") && valid_name("libc6:amd64"));
        assert!(!valid_name("A") && !valid_name("x") && !valid_name("a b") && !valid_name("-x"));
        let p: Params =
            serde_json::from_str(r#"{"state": "2.0", "allowdowngrade": true}"#).unwrap();
        let c = Commands::of("hs-test", &p);
        assert_eq!(
            c.install,
            [
                "apt-get",
                "install",
                "-y",
                "-q",
                "-o",
                LOCK_WAIT,
                "--no-install-recommends",
                "--allow-downgrades",
                "hs-test=2.0"
            ]
        );
        assert_eq!(
            c.remove,
            ["apt-get", "remove", "-y", "-q", "-o", LOCK_WAIT, "hs-test"]
        );
    }
}
