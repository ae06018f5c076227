//! `homeostat-sdk`: everything a resource plugin author needs, and nothing of wit-bindgen.
//!
//! A plugin implements [`Resource`] for one type per kind and registers the types with
//! [`export_resource!`], which also embeds the plugin's manifest (name, version, API
//! version, kinds with their params schema, requested capabilities) in the custom
//! section `homeostat:manifest` of the component. The host reads that section without
//! running any plugin code.
//!
//! ```ignore
//! use homeostat_sdk::{Resource, ResourceId, Info, Outcome, CheckApply, Result, fs};
//!
//! #[derive(serde::Deserialize)]
//! struct Params { path: String, content: String }
//!
//! struct Motd;
//! impl Resource for Motd {
//!     const KIND: &'static str = "motd";
//!     const SCHEMA: &'static str = include_str!("../schema/motd.json");
//!     type Params = Params;
//!     fn validate(_: &ResourceId, p: &Params) -> Result<Info> {
//!         Ok(Info::new().write_path(&p.path).watch_path(&p.path))
//!     }
//!     fn check_apply(_: &ResourceId, p: &Params, ctx: &CheckApply) -> Result<Outcome> {
//!         let mut out = Outcome::new();
//!         if !fs::content_equals(&p.path, p.content.as_bytes())? {
//!             out.change("content");
//!             if ctx.apply { fs::write(&p.path, p.content.as_bytes(), fs::Attrs::default())?; }
//!         }
//!         Ok(out)
//!     }
//! }
//! homeostat_sdk::export_resource!(Motd; capabilities = ["fs"]);
//! ```
//!
//! Calls are stateless: the host passes the resource id and params on every call and may
//! route calls for different resources of a kind to the same instance, or calls for one
//! resource to different instances. Keep state in the system, not in statics.

#![deny(missing_docs)]

use serde::de::DeserializeOwned;

#[doc(hidden)]
pub mod __bindings {
    wit_bindgen::generate!({
        path: "wit/v0.1",
        world: "resource-plugin",
        pub_export_macro: true,
        export_macro_name: "__export_plugin_world",
        default_bindings_module: "homeostat_sdk::__bindings",
    });
}

/// The part 0.2 adds (`world`). A plugin that calls none of it imports none of it (the
/// component keeps only what the code uses) and stays a 0.1 plugin.
#[doc(hidden)]
pub mod __world_bindings {
    wit_bindgen::generate!({
        path: "wit/v0.2",
        world: "world-access",
        default_bindings_module: "homeostat_sdk::__world_bindings",
    });
}

/// The part 0.3 adds (`describe`, an export). Every plugin built with this SDK exports
/// it; a kind that does not override [`Resource::describe`] answers that it cannot
/// describe. A host without 0.3 ignores the export.
#[doc(hidden)]
pub mod __describe_bindings {
    wit_bindgen::generate!({
        path: "wit/v0.3",
        world: "describer",
        pub_export_macro: true,
        export_macro_name: "__export_describer",
        default_bindings_module: "homeostat_sdk::__describe_bindings",
    });
}

/// The other export 0.3 adds (`group`, for kinds that set [`Resource::GROUPS`]). Every
/// plugin built with this SDK exports it; the host calls it only for kinds whose manifest
/// says they group.
#[doc(hidden)]
pub mod __group_bindings {
    wit_bindgen::generate!({
        path: "wit/v0.3",
        world: "grouper",
        pub_export_macro: true,
        export_macro_name: "__export_grouper",
        default_bindings_module: "homeostat_sdk::__group_bindings",
    });
}

#[doc(hidden)]
pub use serde_json as __serde_json;

use __bindings::exports::homeostat::resource::plugin as wit_plugin;
use __bindings::homeostat::resource::types as wit;

/// The WIT API version of a plugin that uses only 0.1's interfaces; stamped into its
/// manifest.
pub const API_VERSION: &str = "0.1.0";

/// The WIT API version of a plugin that declares the `world` capability (0.2 added it).
pub const API_VERSION_WORLD: &str = "0.2.0";

/// Which resource a call is about: `kind[name]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResourceId {
    /// The kind, e.g. `file`.
    pub kind: String,
    /// The resource's name in the graph.
    pub name: String,
}

impl std::fmt::Display for ResourceId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}[{}]", self.kind, self.name)
    }
}

/// An expected failure, reported to the user. The host prefixes `kind[name]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Error {
    /// What went wrong, in words the user can act on.
    pub message: String,
    /// The param the error is about; the host turns it into a line and column.
    pub field: Option<String>,
}

impl Error {
    /// An error about the resource as a whole.
    pub fn new(message: impl Into<String>) -> Self {
        Error {
            message: message.into(),
            field: None,
        }
    }

    /// An error about one param, e.g. `Error::param("mode", "`9999` is not octal")`.
    pub fn param(field: &str, message: impl Into<String>) -> Self {
        Error {
            message: message.into(),
            field: Some(field.to_string()),
        }
    }
}

impl std::fmt::Display for Error {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)
    }
}

impl From<fs::Error> for Error {
    fn from(e: fs::Error) -> Self {
        Error::new(e.message)
    }
}

impl From<process::Error> for Error {
    fn from(e: process::Error) -> Self {
        Error::new(e.message)
    }
}

impl From<systemd::Error> for Error {
    fn from(e: systemd::Error) -> Self {
        Error::new(e.message)
    }
}

impl From<net::Error> for Error {
    fn from(e: net::Error) -> Self {
        Error::new(e.message)
    }
}

/// What every [`Resource`] function returns.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// What `validate` declares about a resource: its footprint (the only paths, command
/// lines and systemd units host calls may touch), what to watch, and what it depends on
/// (for automatic edges).
#[derive(Debug, Clone, Default)]
pub struct Info {
    paths: Vec<wit::PathGrant>,
    commands: Vec<Vec<String>>,
    units: Vec<wit::UnitRef>,
    sockets: Vec<wit::SocketGrant>,
    watch: Vec<wit::WatchItem>,
    depends: Vec<wit::Dependency>,
}

impl Info {
    /// Nothing declared yet: no paths, commands, units or sockets, no watches.
    pub fn new() -> Self {
        Self::default()
    }

    fn grant(mut self, path: &str, recursive: bool, write: bool) -> Self {
        self.paths.push(wit::PathGrant {
            path: path.to_string(),
            recursive,
            write,
        });
        self
    }

    /// Allow reading `path`.
    pub fn read_path(self, path: &str) -> Self {
        self.grant(path, false, false)
    }
    /// Allow reading `path` and everything below it.
    pub fn read_tree(self, path: &str) -> Self {
        self.grant(path, true, false)
    }
    /// Allow reading and replacing `path`.
    pub fn write_path(self, path: &str) -> Self {
        self.grant(path, false, true)
    }
    /// Allow reading and writing `path` and everything below it.
    pub fn write_tree(self, path: &str) -> Self {
        self.grant(path, true, true)
    }
    /// Report changes of `path` (it may not exist yet) as watch events.
    pub fn watch_path(mut self, path: &str) -> Self {
        self.watch.push(wit::WatchItem::Path(wit::WatchPath {
            path: path.to_string(),
            recursive: false,
        }));
        self
    }
    /// Report changes anywhere below the directory `path`.
    pub fn watch_tree(mut self, path: &str) -> Self {
        self.watch.push(wit::WatchItem::Path(wit::WatchPath {
            path: path.to_string(),
            recursive: true,
        }));
        self
    }
    /// Run check-apply every `ms` milliseconds.
    pub fn watch_interval(mut self, ms: u32) -> Self {
        self.watch.push(wit::WatchItem::Interval(ms));
        self
    }
    /// Run check-apply on every new kernel log record (needs the `kmsg` capability;
    /// read the records with [`kmsg::read`]).
    pub fn watch_kmsg(mut self) -> Self {
        self.watch.push(wit::WatchItem::Kmsg);
        self
    }
    /// Depend on the resource managing `path` or one of its parent directories.
    pub fn depends_on_path(mut self, path: &str) -> Self {
        self.depends.push(wit::Dependency::Path(path.to_string()));
        self
    }
    /// Allow running exactly this command line through [`process::run`].
    pub fn command(mut self, argv: &[String]) -> Self {
        if !self.commands.iter().any(|c| c.as_slice() == argv) {
            self.commands.push(argv.to_vec());
        }
        self
    }
    /// Run `cmd` for as long as the resource is in the graph; every line it prints on
    /// stdout is a watch event. Also allows its command line.
    pub fn watch_command(mut self, cmd: &process::Command) -> Self {
        self = self.command(&cmd.argv);
        self.watch.push(wit::WatchItem::Command(cmd.clone()));
        self
    }
    /// Allow querying and controlling the systemd unit `name` through [`systemd`], on
    /// the session manager (`session`) or the system manager.
    pub fn unit(mut self, name: &str, session: bool) -> Self {
        if !self
            .units
            .iter()
            .any(|u| u.name == name && u.session == session)
        {
            self.units.push(wit::UnitRef {
                name: name.to_string(),
                session,
            });
        }
        self
    }
    /// Report changes of the unit `name` (state, unit file state, manager reloads) as
    /// watch events. Also allows the unit.
    pub fn watch_unit(mut self, name: &str, session: bool) -> Self {
        self = self.unit(name, session);
        self.watch.push(wit::WatchItem::Unit(wit::UnitRef {
            name: name.to_string(),
            session,
        }));
        self
    }
    /// Allow binding UDP on `address` (`IP:PORT`, `[IPV6]:PORT`) through [`net`], and
    /// ephemeral UDP ports on the same IP.
    pub fn udp(mut self, address: &str) -> Self {
        self.sockets.push(wit::SocketGrant {
            protocol: wit::Protocol::Udp,
            address: address.to_string(),
        });
        self
    }
    /// Allow listening for TCP on `address` through [`net`].
    pub fn tcp(mut self, address: &str) -> Self {
        self.sockets.push(wit::SocketGrant {
            protocol: wit::Protocol::Tcp,
            address: address.to_string(),
        });
        self
    }
    /// Run [`Resource::serve`] in an instance of its own for as long as the resource is
    /// in the graph (the long-running watch; for servers).
    pub fn serve(mut self) -> Self {
        self.watch.push(wit::WatchItem::Serve);
        self
    }
    /// Depend on the resources managing the unit's files (the host knows where they live).
    pub fn depends_on_unit(mut self, name: &str, session: bool) -> Self {
        self.depends.push(wit::Dependency::Unit(wit::UnitRef {
            name: name.to_string(),
            session,
        }));
        self
    }
}

/// The arguments of one check-apply besides the params.
#[derive(Debug, Clone, Copy)]
pub struct CheckApply {
    /// Repair the system; when false (noop), only report what would change.
    pub apply: bool,
    /// An upstream resource with a `notify` edge changed something.
    pub refresh: bool,
}

/// One resource of a [`Resource::check_apply_group`] call.
#[derive(Debug)]
pub struct GroupMember<P> {
    /// Which resource.
    pub id: ResourceId,
    /// Its params.
    pub params: P,
    /// An upstream resource with a `notify` edge changed something.
    pub refresh: bool,
}

/// What a check-apply found and did.
#[derive(Debug, Clone, Default)]
pub struct Outcome {
    changes: Vec<(String, Option<String>)>,
    sends: Vec<(String, String)>,
}

impl Outcome {
    /// Nothing changed (yet), nothing sent.
    pub fn new() -> Self {
        Self::default()
    }
    /// Record one change (made, or that would be made in noop). A resource with no
    /// recorded change is reported as already in its declared state.
    pub fn change(&mut self, what: impl Into<String>) {
        self.changes.push((what.into(), None));
    }
    /// Record a change of text content with a unified diff of it (`--- old`/`+++ new`
    /// headers and hunks), which `--noop` prints below the change line.
    pub fn change_with_diff(&mut self, what: impl Into<String>, diff: impl Into<String>) {
        self.changes.push((what.into(), Some(diff.into())));
    }
    /// Whether any change was recorded.
    pub fn changed(&self) -> bool {
        !self.changes.is_empty()
    }
    /// Publish a value for send/recv. Declare every key in [`Resource::SENDS`]; the host
    /// drops (and logs) a value under an undeclared key.
    pub fn send(&mut self, key: &str, value: impl serde::Serialize) {
        let json = serde_json::to_string(&value).unwrap_or_else(|_| "null".to_string());
        self.sends.push((key.to_string(), json));
    }
}

/// One resource kind. Implement it and register the type with [`export_resource!`].
pub trait Resource {
    /// The kind, as written under `resources:` in a graph.
    const KIND: &'static str;
    /// JSON schema (draft 2020-12) of the params, `name` and `meta` excluded; the host
    /// validates YAML against it and reports the line and column of what is wrong.
    const SCHEMA: &'static str;
    /// The params, deserialized from JSON.
    type Params: DeserializeOwned;
    /// The values check-apply publishes for send/recv: key and JSON type (`string`,
    /// `integer`, `number`, `boolean`, `array`, `object` or `any`). The host checks a
    /// graph's `send:` mappings against them before anything runs.
    const SENDS: &'static [(&'static str, &'static str)] = &[];

    /// Check params and declare footprint, watches and dependencies. No host calls.
    fn validate(id: &ResourceId, params: &Self::Params) -> Result<Info>;

    /// Compare and (when `ctx.apply`) repair.
    fn check_apply(id: &ResourceId, params: &Self::Params, ctx: &CheckApply) -> Result<Outcome>;

    /// Release what the resource holds when it leaves the graph. Default: nothing.
    fn cleanup(_id: &ResourceId, _params: &Self::Params) -> Result<()> {
        Ok(())
    }

    /// The long-running watch, for kinds whose `validate` asked for it with
    /// [`Info::serve`]: runs in an instance of its own until the resource leaves the
    /// graph, waiting on [`net::wait`]. A param change arrives as
    /// [`net::Event::Reconfigured`]. Return an error to fail the resource (it is started
    /// again by its next check-apply). Default: this kind does not serve.
    fn serve(_id: &ResourceId, _params: &Self::Params) -> Result<()> {
        Err(Error::new(format!(
            "the kind `{}` does not serve",
            Self::KIND
        )))
    }

    /// The current state of what the resource would manage, as the params that declare
    /// it as it is (`homeostat resource KIND NAME`, like `puppet resource`): put in a
    /// graph under the same name, running them changes nothing. Leave out params whose
    /// value is the default. It runs after [`Resource::validate`] with the footprint that
    /// declared, read-only: read the paths and the units' status, nothing else. Default:
    /// this kind cannot describe. (API 0.3; a host without it never calls this.)
    fn describe(_id: &ResourceId, _params: &Self::Params) -> Result<serde_json::Value> {
        Err(Error::new(format!(
            "the kind `{}` cannot describe what it manages",
            Self::KIND
        )))
    }

    /// Whether resources of this kind that are ready at the same moment go to
    /// [`Resource::check_apply_group`] together (mgmt's `autogroup`): for changes best
    /// made in one go, such as packages installed in one transaction. Written into the
    /// manifest only when `true`; a plugin that sets it needs a host with API 0.3.
    const GROUPS: bool = false;

    /// Check-apply many resources of this kind as one; one result per member, in
    /// order. Called only when [`Resource::GROUPS`] is `true`, with the resources ready
    /// at that moment (those with `autogroup: false` or `noop` never come here). The
    /// footprint is the union of the members', and the host lets declared command lines
    /// that differ only in their last argument run merged: one `apt-get install -y a b`
    /// for members that declared `apt-get install -y a` and `... b`. `ctx.refresh` is
    /// unused: each member carries its own. Default: each member on its own.
    fn check_apply_group(
        members: &[GroupMember<Self::Params>],
        ctx: &CheckApply,
    ) -> Vec<Result<Outcome>> {
        members
            .iter()
            .map(|m| {
                Self::check_apply(
                    &m.id,
                    &m.params,
                    &CheckApply {
                        apply: ctx.apply,
                        refresh: m.refresh,
                    },
                )
            })
            .collect()
    }

    /// The param the resource's name stands for in `homeostat resource KIND NAME`
    /// (`file` says `Some("path")`: `homeostat resource file /etc/hosts` describes the
    /// resource with `path: /etc/hosts`). `None`: the name is only the name. (Written to
    /// the manifest only when set: a plugin that sets it needs a host with API 0.3.)
    const NAME_PARAM: Option<&'static str> = None;

    /// Whether [`Resource::cleanup`] does anything. A kind that keeps the default
    /// `cleanup` may say `false`: the host then skips the call for each of its
    /// resources when one leaves the graph or homeostat stops (10 000 calls that do
    /// nothing cost ~75 ms at exit). Leave it `true` whenever you override `cleanup`.
    const CLEANUP: bool = true;

    /// How a graph's `collect:` pattern applies to exported resources of this kind: the
    /// name of a path param that the pattern's directory replaces the directory of
    /// (`file` says `Some("path")`: `/srv/motd` collected with `pattern: /etc/` runs as
    /// `/etc/motd`). `None`: the pattern is a prefix of the names collected.
    const COLLECT_DIR: Option<&'static str> = None;

    /// When a resource of this kind *removes* what it manages: a param and the value that
    /// means removal (`file` says `Some(("state", "absent"))`). The host then reverses
    /// the automatic edges from it: what depends on the removed thing (a service on its
    /// unit file) runs first (the service is stopped), and the removal after. `None`:
    /// this kind never removes what it manages.
    const REMOVES_WHEN: Option<(&'static str, &'static str)> = None;

    /// Whether this kind edits *part* of the files it writes (a line, an ini key, a
    /// marked block) rather than owning them whole. `true` lets several resources (of
    /// this and other editing kinds) declare the same file with
    /// [`Info::write_path`]; the host then runs their check-applies one at a time, shows
    /// each the edits of those before it through [`fs::read`], and writes the file once
    /// for all of them. Such a resource may only read and [`fs::write`] its file: its
    /// existence, type and attributes belong to a whole-file resource (see
    /// [`Resource::CONTENT_PARAMS`]), so `remove`, `symlink`, `mkdir` and `set_attrs` on
    /// it are refused. Its write paths must be files, not trees.
    const EDITS: bool = false;

    /// For a kind that writes whole files: the params that make a resource own a file's
    /// content (`file` says `&["content", "source", "symlink"]`). A resource that sets
    /// none of them (and does not remove, see [`Resource::REMOVES_WHEN`]) only manages
    /// the file's existence and attributes, so editing resources ([`Resource::EDITS`])
    /// may share the file with it. Empty (the default): every resource of the kind owns
    /// its files' content, and a graph where an editing resource names one is refused.
    const CONTENT_PARAMS: &'static [&'static str] = &[];
}

/// Leveled logging into the host's log.
pub mod log {
    use crate::__bindings::homeostat::resource::log::{Level, log};
    /// A trace line (shown with `-vv`).
    pub fn trace(msg: &str) {
        log(Level::Trace, msg)
    }
    /// A debug line (shown with `-v`).
    pub fn debug(msg: &str) {
        log(Level::Debug, msg)
    }
    /// An info line.
    pub fn info(msg: &str) {
        log(Level::Info, msg)
    }
    /// A warning.
    pub fn warn(msg: &str) {
        log(Level::Warn, msg)
    }
    /// An error line (the call's result, not this, decides whether the resource failed).
    pub fn error(msg: &str) {
        log(Level::Error, msg)
    }
}

/// Running commands through the host, confined to the command lines the resource
/// declared with [`Info::command`](crate::Info::command).
///
/// Each process gets its own process group, killed on timeout, and exactly the
/// environment in [`Command::env`](crate::process::Command::env) (empty by default: not
/// even `PATH`).
pub mod process {
    pub use crate::__bindings::homeostat::resource::process::{Error, ErrorCode, Output, run};
    pub use crate::__bindings::homeostat::resource::types::Command;

    impl Command {
        /// `argv` with an empty environment, `/` as working directory, as homeostat's user.
        pub fn new(argv: Vec<String>) -> Self {
            Command {
                argv,
                env: Vec::new(),
                cwd: None,
                user: None,
                group: None,
            }
        }
    }

    /// [`run`], where a command that cannot run or exits non-zero is a resource error
    /// naming the command line, its exit code and the last line it wrote to stderr.
    ///
    /// ```no_run
    /// # use homeostat_sdk::process::{Command, run_ok};
    /// # fn main() -> homeostat_sdk::Result<()> {
    /// let argv = vec!["sysctl".to_string(), "-w".into(), "vm.swappiness=10".into()];
    /// run_ok(&Command::new(argv), None, Some(10_000))?;
    /// # Ok(())
    /// # }
    /// ```
    pub fn run_ok(
        cmd: &Command,
        stdin: Option<&[u8]>,
        timeout_ms: Option<u32>,
    ) -> crate::Result<Output> {
        let shown = cmd.argv.join(" ");
        let out = run(cmd, stdin, timeout_ms)
            .map_err(|e| crate::Error::new(format!("cannot run `{shown}`: {}", e.message)))?;
        if out.exit_code != 0 {
            let err = String::from_utf8_lossy(&out.stderr);
            let last = err
                .lines()
                .rev()
                .find(|l| !l.trim().is_empty())
                .unwrap_or_default();
            return Err(crate::Error::new(format!(
                "`{shown}` failed (exit code {}): {}",
                out.exit_code,
                last.trim()
            )));
        }
        Ok(out)
    }
}

/// systemd units through the host over D-Bus, confined to the units the resource
/// declared with [`Info::unit`](crate::Info::unit). `session`: the user's manager instead
/// of the system one. Jobs (start, stop, ...) return once systemd finished them.
pub mod systemd {
    pub use crate::__bindings::homeostat::resource::systemd::{
        Error, ErrorCode, UnitStatus, daemon_reload, disable, enable, reload_or_restart, restart,
        start, status, stop,
    };
}

pub mod fs {
    //! File-system access through the host (capability `fs`), confined to the resource's
    //! footprint: the paths its [`Resource::validate`](crate::Resource::validate) declared with
    //! [`Info::read_path`](crate::Info::read_path), [`write_path`](crate::Info::write_path),
    //! `read_tree` and `write_tree`.
    //!
    //! **What every call confines.** Paths are absolute. A path outside the footprint, or a
    //! write through a read grant, fails with [`ErrorCode::NotAllowed`] before anything is
    //! touched; so does any call when the plugin lacks the `fs` capability (declared and
    //! granted). Symlinks on the way to a path are not followed where an unprivileged user
    //! could have placed them, and a path the running graph writes is never followed as a
    //! symlink (the host's walk; see the security guide).
    //!
    //! **What the calls return.** Every call returns `Result<_, Error>`, whose
    //! [`code`](Error::code) is one of: [`ErrorCode::NotFound`] (the path or a parent does not
    //! exist; [`stat`] says `None` instead, and [`read_opt`] too), [`ErrorCode::PermissionDenied`]
    //! (the operating system refused), [`ErrorCode::WrongType`] (a directory where a file was
    //! expected, ...), [`ErrorCode::NotEmpty`] ([`remove`] of a non-empty directory without
    //! `recursive`), [`ErrorCode::UnknownId`] ([`user_id`], [`group_id`]), or
    //! [`ErrorCode::Other`], with a message that names the path. [`write()`] and [`copy()`] replace
    //! the file atomically and durably (a temporary file, flushed, renamed into place): a
    //! reader never sees half a file, and a crash leaves the old one or the new one.
    //!
    //! ```no_run
    //! use homeostat_sdk::fs;
    //!
    //! /// Make `path` hold `want`; whether it had to.
    //! fn ensure(path: &str, want: &str) -> Result<bool, fs::Error> {
    //!     let current = fs::read_opt(path)?; // None: not there yet
    //!     if current.as_deref() == Some(want.as_bytes()) {
    //!         return Ok(false);
    //!     }
    //!     fs::write(path, want.as_bytes(), fs::Attrs::new().mode(0o644))?;
    //!     Ok(true)
    //! }
    //! ```
    //!
    //! The examples compile in the documentation's tests but do not run there: these
    //! calls reach the host, which exists only inside homeostat. Run them with the
    //! [test kit](crate::testkit).

    pub use crate::__bindings::homeostat::resource::fs::{
        Attrs, Error, ErrorCode, FileStat, FileType, content_equals, copy, digest, group_id, mkdir,
        read, read_at, read_dir, read_link, remove, set_attrs, stat, symlink, user_id, write,
    };

    /// `Attrs::default()` leaves mode and ownership as they are.
    #[allow(
        clippy::derivable_impls,
        reason = "`Attrs` is generated by wit-bindgen, which can add a derive only to every type"
    )]
    impl Default for Attrs {
        fn default() -> Self {
            Attrs {
                mode: None,
                uid: None,
                gid: None,
            }
        }
    }

    /// A builder for [`Attrs`]: set what the resource manages, leave the rest as it is.
    ///
    /// ```no_run
    /// # use homeostat_sdk::fs;
    /// # fn main() -> Result<(), fs::Error> {
    /// let uid = fs::user_id("root")?;
    /// fs::write("/etc/app.conf", b"x = 1\n", fs::Attrs::new().mode(0o640).uid(uid))?;
    /// # Ok(())
    /// # }
    /// ```
    impl Attrs {
        /// Nothing set: mode and ownership are left as they are (a new file gets `0644` and
        /// the host's user).
        pub fn new() -> Attrs {
            Attrs::default()
        }

        /// Set the permission bits (`0o7777` at most: setuid, setgid and sticky included).
        pub fn mode(self, mode: u32) -> Attrs {
            Attrs {
                mode: Some(mode),
                ..self
            }
        }

        /// Set the owner, by numeric id (names: [`user_id`]).
        pub fn uid(self, uid: u32) -> Attrs {
            Attrs {
                uid: Some(uid),
                ..self
            }
        }

        /// Set the group, by numeric id (names: [`group_id`]).
        pub fn gid(self, gid: u32) -> Attrs {
            Attrs {
                gid: Some(gid),
                ..self
            }
        }
    }

    /// The whole content of the regular file `path`, or `None` when it does not exist (nor
    /// a parent): for a resource, an absent file is a state, not an error. Every other
    /// failure is an error, as with [`read`] (outside the footprint: `not-allowed`; a
    /// directory: `wrong-type`).
    pub fn read_opt(path: &str) -> Result<Option<Vec<u8>>, Error> {
        match read(path) {
            Ok(data) => Ok(Some(data)),
            Err(e) if e.code == ErrorCode::NotFound => Ok(None),
            Err(e) => Err(e),
        }
    }
}

/// The plugin test kit: run your plugin's `.wasm` through the real homeostat runtime and
/// sandbox, in a fresh temporary root, as check → apply → check, and fail when the apply
/// fails or the second check still finds something to change (Terraform's plugin tests
/// do the same with an empty plan after apply). Native only: call it from an integration
/// test (`tests/kit.rs`) run with `cargo test --target x86_64-unknown-linux-gnu`.
///
/// ```no_run
/// // tests/kit.rs of a plugin crate, beside a graph `tests/kit.yaml` whose paths start
/// // with `$ROOT/` (replaced by the temporary root).
/// #[test]
/// fn converges_and_stays_converged() {
///     homeostat_sdk::testkit::check(env!("CARGO_MANIFEST_DIR"), "tests/kit.yaml").unwrap();
/// }
/// ```
///
/// It needs `homeostat` (the `HOMEOSTAT` environment variable, or the one on `PATH`) and
/// the `wasm32-wasip2` target (`rustup target add wasm32-wasip2`).
#[cfg(not(target_family = "wasm"))]
pub mod testkit {
    use std::path::{Path, PathBuf};
    use std::process::Command;

    /// Build the plugin crate at `crate_dir` (release, for `wasm32-wasip2`, into
    /// `target/testkit`: a target directory of its own, since the running `cargo test`
    /// holds the crate's; under `$CARGO_TARGET_DIR` when that is set), then run `homeostat plugin test WASM GRAPH` with `graph`
    /// (relative to `crate_dir`). `Err` holds what failed, with homeostat's report.
    pub fn check(crate_dir: &str, graph: &str) -> Result<(), String> {
        let dir = Path::new(crate_dir);
        let wasm = build(dir)?;
        let homeostat = std::env::var_os("HOMEOSTAT").unwrap_or_else(|| "homeostat".into());
        let out = Command::new(&homeostat)
            .args(["plugin", "test"])
            .arg(&wasm)
            .arg(dir.join(graph))
            .output()
            .map_err(|e| {
                format!(
                    "cannot run {} ({e}): put homeostat on PATH or set HOMEOSTAT to it",
                    Path::new(&homeostat).display()
                )
            })?;
        let text = String::from_utf8_lossy(&out.stdout).into_owned()
            + &String::from_utf8_lossy(&out.stderr);
        if out.status.success() {
            println!("{text}");
            Ok(())
        } else {
            Err(text)
        }
    }

    /// `cargo build --release --target wasm32-wasip2` of the crate at `dir`; the path of
    /// the component it built.
    pub fn build(dir: &Path) -> Result<PathBuf, String> {
        let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
        // Beside the crate's own builds (or the `CARGO_TARGET_DIR` the test runs with).
        let target = std::env::var_os("CARGO_TARGET_DIR")
            .map_or_else(|| dir.join("target"), PathBuf::from)
            .join("testkit");
        let out = Command::new(cargo)
            .current_dir(dir)
            .args(["build", "--release", "--target", "wasm32-wasip2"])
            .args(["--message-format", "json-render-diagnostics"])
            .env("CARGO_TARGET_DIR", &target)
            .env_remove("CARGO_BUILD_TARGET")
            .env_remove("RUSTFLAGS")
            .env_remove("CARGO_ENCODED_RUSTFLAGS")
            .output()
            .map_err(|e| format!("cannot run cargo: {e}"))?;
        if !out.status.success() {
            return Err(format!(
                "building the plugin for wasm32-wasip2 failed (is the target installed? \
                 `rustup target add wasm32-wasip2`):\n{}",
                String::from_utf8_lossy(&out.stderr)
            ));
        }
        // The last artifact cargo reports with a `.wasm` file is the plugin.
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
            .filter(|m| m["reason"] == "compiler-artifact")
            .flat_map(|m| {
                m["filenames"]
                    .as_array()
                    .cloned()
                    .unwrap_or_default()
                    .into_iter()
                    .filter_map(|f| f.as_str().map(PathBuf::from))
            })
            .filter(|f| f.extension().is_some_and(|e| e == "wasm"))
            .collect::<Vec<_>>()
            .pop()
            .ok_or_else(|| "cargo built no .wasm file: is the crate a cdylib?".to_string())
    }
}

/// Text helpers for log messages and change summaries.
pub mod text {
    /// At most this many changed lines shown by [`short_diff`] on each side.
    pub const SHORT_DIFF_LINES: usize = 3;

    /// A one-line description of what changed between two texts, for a log message or a
    /// change summary: the first changed lines (at most [`SHORT_DIFF_LINES`] each side),
    /// each side's lines joined by ` / `, longer lines cut with `…`.
    ///
    /// ```
    /// use homeostat_sdk::text::short_diff;
    /// assert_eq!(short_diff("a\nb\nc\n", "a\nB\nc\n"), r#"line 2: "b" -> "B""#);
    /// assert_eq!(short_diff("a\n", "a\nb\n"), r#"line 2: added "b""#);
    /// assert_eq!(short_diff("same\n", "same\n"), "no change");
    /// ```
    pub fn short_diff(old: &str, new: &str) -> String {
        let (old, new): (Vec<&str>, Vec<&str>) = (old.lines().collect(), new.lines().collect());
        let head = old.iter().zip(&new).take_while(|(a, b)| a == b).count();
        let tail = old[head..]
            .iter()
            .rev()
            .zip(new[head..].iter().rev())
            .take_while(|(a, b)| a == b)
            .count();
        let (gone, came) = (&old[head..old.len() - tail], &new[head..new.len() - tail]);
        let side = |lines: &[&str]| {
            let mut shown: Vec<String> = lines
                .iter()
                .take(SHORT_DIFF_LINES)
                .map(|l| format!("{:?}", cut(l)))
                .collect();
            if lines.len() > SHORT_DIFF_LINES {
                shown.push(format!("and {} more", lines.len() - SHORT_DIFF_LINES));
            }
            shown.join(" / ")
        };
        let at = format!("line {}", head + 1);
        match (gone.is_empty(), came.is_empty()) {
            (true, true) => "no change".to_string(),
            (true, false) => format!("{at}: added {}", side(came)),
            (false, true) => format!("{at}: removed {}", side(gone)),
            (false, false) => format!("{at}: {} -> {}", side(gone), side(came)),
        }
    }

    /// `line`, or its first 60 characters and `…`.
    fn cut(line: &str) -> String {
        match line.char_indices().nth(60) {
            Some((at, _)) => format!("{}…", &line[..at]),
            None => line.to_string(),
        }
    }

    #[cfg(test)]
    mod tests {
        use super::short_diff;

        #[test]
        fn what_changed_in_one_line() {
            assert_eq!(short_diff("a\nb\n", "a\n"), r#"line 2: removed "b""#);
            let many = short_diff("x\n", "1\n2\n3\n4\n5\n");
            assert_eq!(many, r#"line 1: "x" -> "1" / "2" / "3" / and 2 more"#);
            let long = "y".repeat(100);
            let cut = short_diff("", &long);
            assert!(cut.ends_with("…\""), "{cut}");
            assert!(cut.len() < 90, "{cut}");
        }
    }
}

/// The kernel log, read and buffered by the host (capability `kmsg`). Records are raw
/// `/dev/kmsg` lines: `PRIO,SEQ,TIMESTAMP_US,FLAGS;MESSAGE\n` plus continuation lines.
pub mod kmsg {
    pub use crate::__bindings::homeostat::resource::kmsg::{Batch, read, start_seq};
}

/// Sockets for a [`Resource::serve`] loop (capability `net`), limited to the addresses
/// declared with [`Info::udp`](crate::Info::udp) and [`Info::tcp`](crate::Info::tcp).
/// The host waits; the loop handles what [`wait`](crate::net::wait) returns:
///
/// ```no_run
/// # use homeostat_sdk::net;
/// # fn main() -> Result<(), net::Error> {
/// let s = net::bind_udp("0.0.0.0:6969")?;
/// loop {
///     for event in net::wait(1000) {
///         if let net::Event::Datagram(d) = event {
///             net::send_to(s, &d.peer, &d.data)?; // echo
///         }
///     }
/// }
/// # }
/// ```
pub mod net {
    pub use crate::__bindings::homeostat::resource::net::{
        Accepted, Datagram, Error, ErrorCode, Event, Failure, Received, Socket, bind_udp, close,
        listen_tcp, local_address, send_to, wait, write,
    };
}

/// Values shared between hosts (WIT `homeostat:resource/world@0.2.0`; capability
/// `world`): each key holds one value per host, in the World (the local store, or etcd
/// in a cluster). Declare the keys a resource watches from [`Resource::validate`] with
/// [`watch`](crate::world::watch); read and write them from [`Resource::check_apply`]
/// ([`put`](crate::world::put) and [`delete`](crate::world::delete)
/// only when it applies). A plugin that declares `world` is a 0.2 plugin: it runs on
/// hosts that have 0.2.
pub mod world {
    pub use crate::__world_bindings::homeostat::resource::world::{all, delete, get, put, watch};
}

/// A small value the host keeps per resource between calls, and across restarts (in the
/// World: the local store, or etcd); gone when the resource leaves the graph. Calls are
/// otherwise stateless.
/// A [`set`](crate::state::set) from [`Resource::serve`] that changes the value wakes the resource, so its
/// check-apply can publish what the server did.
pub mod state {
    pub use crate::__bindings::homeostat::resource::state::{get, set};

    /// The stored value, deserialized from JSON (`None` when nothing or something
    /// unreadable was stored).
    pub fn load<T: serde::de::DeserializeOwned>() -> Option<T> {
        serde_json::from_str(&get()?).ok()
    }

    /// Store `value` as JSON.
    pub fn save<T: serde::Serialize>(value: &T) {
        if let Ok(json) = serde_json::to_string(value) {
            set(&json);
        }
    }
}

// ---- glue used by `export_resource!`; not part of the public API ----

#[doc(hidden)]
pub mod __glue {
    use super::*;

    pub use wit_plugin::Guest;
    pub type WitId = wit::ResourceId;
    pub type WitError = wit::Error;
    pub type WitInfo = wit::ResourceInfo;
    pub type WitCheck = wit::CheckResult;

    fn id(id: WitId) -> ResourceId {
        ResourceId {
            kind: id.kind,
            name: id.name,
        }
    }

    fn err(e: Error) -> WitError {
        WitError {
            message: e.message,
            field: e.field,
        }
    }

    fn params<R: Resource>(json: &str) -> Result<R::Params, WitError> {
        serde_json::from_str(json).map_err(|e| WitError {
            message: format!("params do not match the `{}` kind: {e}", R::KIND),
            field: None,
        })
    }

    pub fn validate<R: Resource>(i: WitId, json: &str) -> Result<WitInfo, WitError> {
        let p = params::<R>(json)?;
        let info = R::validate(&id(i), &p).map_err(err)?;
        Ok(WitInfo {
            footprint: wit::Footprint {
                paths: info.paths,
                commands: info.commands,
                units: info.units,
                sockets: info.sockets,
            },
            watch: info.watch,
            depends: info.depends,
        })
    }

    pub fn check_apply<R: Resource>(
        i: WitId,
        json: &str,
        apply: bool,
        refresh: bool,
    ) -> Result<WitCheck, WitError> {
        let p = params::<R>(json)?;
        let out = R::check_apply(&id(i), &p, &CheckApply { apply, refresh }).map_err(err)?;
        Ok(WitCheck {
            ok: out.changes.is_empty(),
            changes: out
                .changes
                .into_iter()
                .map(|(summary, diff)| wit::Change { summary, diff })
                .collect(),
            sends: out.sends,
        })
    }

    pub fn cleanup<R: Resource>(i: WitId, json: &str) -> Result<(), WitError> {
        let p = params::<R>(json)?;
        R::cleanup(&id(i), &p).map_err(err)
    }

    pub fn serve<R: Resource>(i: WitId, json: &str) -> Result<(), WitError> {
        let p = params::<R>(json)?;
        R::serve(&id(i), &p).map_err(err)
    }

    pub fn describe<R: Resource>(kind: String, name: String, json: &str) -> Result<String, String> {
        let p = params::<R>(json).map_err(|e| e.message)?;
        let v = R::describe(&ResourceId { kind, name }, &p).map_err(|e| e.message)?;
        Ok(v.to_string())
    }

    pub type WitMember = crate::__group_bindings::exports::homeostat::resource::group::Member;
    pub type WitOutcome = crate::__group_bindings::exports::homeostat::resource::group::Outcome;
    use crate::__group_bindings::exports::homeostat::resource::group::Change as WitChange;

    pub fn check_apply_group<R: Resource>(
        kind: String,
        members: Vec<WitMember>,
        apply: bool,
    ) -> Vec<Result<WitOutcome, String>> {
        // Each member's params, or why they do not parse (that member's answer).
        let mut good = Vec::new();
        let slots: Vec<Option<String>> = members
            .into_iter()
            .map(|m| match params::<R>(&m.params) {
                Ok(p) => {
                    good.push(GroupMember {
                        id: ResourceId {
                            kind: kind.clone(),
                            name: m.name,
                        },
                        params: p,
                        refresh: m.refresh,
                    });
                    None
                }
                Err(e) => Some(e.message),
            })
            .collect();
        let ctx = CheckApply {
            apply,
            refresh: false,
        };
        let mut outs = R::check_apply_group(&good, &ctx).into_iter();
        slots
            .into_iter()
            .map(|bad| {
                // A member whose params did not parse was not in the call: only the
                // others take a result.
                if let Some(message) = bad {
                    return Err(message);
                }
                match outs.next() {
                    Some(Ok(out)) => Ok(WitOutcome {
                        ok: out.changes.is_empty(),
                        changes: out
                            .changes
                            .into_iter()
                            .map(|(summary, diff)| WitChange { summary, diff })
                            .collect(),
                        sends: out.sends,
                    }),
                    Some(Err(e)) => Err(e.message),
                    None => Err(format!(
                        "the kind `{kind}` answered fewer results than it was given resources"
                    )),
                }
            })
            .collect()
    }

    #[cfg(test)]
    mod group_tests {
        use super::*;

        /// Echoes its param `n` as a change line; the host is never called.
        struct Echo;

        #[derive(serde::Deserialize)]
        struct P {
            n: u32,
        }

        impl Resource for Echo {
            const KIND: &'static str = "echo";
            const SCHEMA: &'static str = "{}";
            type Params = P;
            fn validate(_: &ResourceId, _: &P) -> Result<Info> {
                Ok(Info::new())
            }
            fn check_apply(_: &ResourceId, p: &P, _: &CheckApply) -> Result<Outcome> {
                let mut out = Outcome::new();
                out.change(format!("n={}", p.n));
                Ok(out)
            }
        }

        /// A member whose params do not parse gets its own error, and every other one
        /// still the result made for it (none shifted onto a neighbour).
        #[test]
        fn each_member_gets_its_own_result() {
            let member = |name: &str, params: &str| WitMember {
                name: name.into(),
                params: params.into(),
                refresh: false,
            };
            let results = check_apply_group::<Echo>(
                "echo".into(),
                vec![
                    member("a", r#"{"n": 1}"#),
                    member("bad", r#"{"n": "x"}"#),
                    member("c", r#"{"n": 3}"#),
                ],
                true,
            );
            let lines: Vec<std::result::Result<String, String>> = results
                .into_iter()
                .map(|r| r.map(|o| o.changes[0].summary.clone()))
                .collect();
            assert_eq!(lines[0], Ok("n=1".to_string()));
            assert!(
                lines[1]
                    .as_ref()
                    .is_err_and(|e| e.contains("params do not match"))
            );
            assert_eq!(lines[2], Ok("n=3".to_string()));
        }
    }

    pub fn unknown_kind(kind: &str) -> WitError {
        WitError {
            message: format!("this plugin does not provide the kind `{kind}`"),
            field: None,
        }
    }

    /// A piece of the manifest: literal text, or a kind's `SENDS` written as TOML lines
    /// `"key" = "type"` (a trait constant cannot be expanded by the macro itself).
    #[derive(Clone, Copy)]
    pub enum Piece {
        Text(&'static str),
        Sends(&'static [(&'static str, &'static str)]),
        /// `"a", "b", ` (the items of a TOML array).
        List(&'static [&'static str]),
    }

    /// Calls `emit` with every byte string the pieces stand for, in order. A macro
    /// rather than a function taking a closure, because const fns cannot call closures.
    macro_rules! each_str {
        ($pieces:expr, |$s:ident| $body:block) => {{
            let mut i = 0;
            while i < $pieces.len() {
                match $pieces[i] {
                    Piece::Text(t) => {
                        let $s = t.as_bytes();
                        $body
                    }
                    Piece::List(list) => {
                        let mut k = 0;
                        while k < list.len() {
                            let parts: [&str; 3] = ["\"", list[k], "\", "];
                            let mut p = 0;
                            while p < parts.len() {
                                let $s = parts[p].as_bytes();
                                $body
                                p += 1;
                            }
                            k += 1;
                        }
                    }
                    Piece::Sends(list) => {
                        let mut k = 0;
                        while k < list.len() {
                            let parts: [&str; 5] = ["\"", list[k].0, "\" = \"", list[k].1, "\"\n"];
                            let mut p = 0;
                            while p < parts.len() {
                                let $s = parts[p].as_bytes();
                                $body
                                p += 1;
                            }
                            k += 1;
                        }
                    }
                }
                i += 1;
            }
        }};
    }

    /// The API version a plugin with these capabilities needs: 0.2 when it declares
    /// `world`.
    pub const fn api_for(capabilities: &[&str]) -> &'static str {
        let mut i = 0;
        while i < capabilities.len() {
            let c = capabilities[i].as_bytes();
            if c.len() == 5
                && c[0] == b'w'
                && c[1] == b'o'
                && c[2] == b'r'
                && c[3] == b'l'
                && c[4] == b'd'
            {
                return crate::API_VERSION_WORLD;
            }
            i += 1;
        }
        crate::API_VERSION
    }

    /// Total length of the manifest (const, so the manifest is a fixed array).
    pub const fn manifest_len(pieces: &[Piece]) -> usize {
        let mut n = 0;
        each_str!(pieces, |s| {
            n += s.len();
        });
        n
    }

    /// Concatenate the manifest pieces into the bytes of the custom section.
    pub const fn manifest_bytes<const N: usize>(pieces: &[Piece]) -> [u8; N] {
        let mut out = [0u8; N];
        let mut at = 0;
        each_str!(pieces, |s| {
            let mut j = 0;
            while j < s.len() {
                out[at] = s[j];
                at += 1;
                j += 1;
            }
        });
        out
    }
}

/// Export resource types as this plugin's kinds and embed the manifest.
///
/// `export_resource!(File; capabilities = ["fs"]);` or, for several kinds,
/// `export_resource!(A, B; capabilities = ["fs"]);`. `log` is always available.
/// The manifest is TOML in the custom section `homeostat:manifest`; its name and
/// version come from the plugin crate's `Cargo.toml`.
#[macro_export]
macro_rules! export_resource {
    ($($res:ty),+ $(,)? ; capabilities = [$($cap:literal),* $(,)?] $(,)?) => {
        const _: () = {
            use $crate::__glue::Piece::{List, Sends, Text};
            const PIECES: &[$crate::__glue::Piece] = &[
                Text("api = \""), Text($crate::__glue::api_for(&[$($cap),*])), Text("\"\n"),
                Text("name = \""), Text(env!("CARGO_PKG_NAME")), Text("\"\n"),
                Text("version = \""), Text(env!("CARGO_PKG_VERSION")), Text("\"\n"),
                Text("capabilities = ["), $(Text("\""), Text($cap), Text("\", "),)* Text("]\n"),
                $(
                    Text("[kinds.\""), Text(<$res as $crate::Resource>::KIND), Text("\"]\n"),
                    Text("schema = '''\n"), Text(<$res as $crate::Resource>::SCHEMA), Text("'''\n"),
                    Text(if <$res as $crate::Resource>::CLEANUP { "" } else { "cleanup = false\n" }),
                    Text(if <$res as $crate::Resource>::COLLECT_DIR.is_some() { "collect_dir = \"" } else { "" }),
                    Text(match <$res as $crate::Resource>::COLLECT_DIR { Some(p) => p, None => "" }),
                    Text(if <$res as $crate::Resource>::COLLECT_DIR.is_some() { "\"\n" } else { "" }),
                    Text(if <$res as $crate::Resource>::REMOVES_WHEN.is_some() { "removes_when = { param = \"" } else { "" }),
                    Text(match <$res as $crate::Resource>::REMOVES_WHEN { Some((p, _)) => p, None => "" }),
                    Text(if <$res as $crate::Resource>::REMOVES_WHEN.is_some() { "\", value = \"" } else { "" }),
                    Text(match <$res as $crate::Resource>::REMOVES_WHEN { Some((_, v)) => v, None => "" }),
                    Text(if <$res as $crate::Resource>::REMOVES_WHEN.is_some() { "\" }\n" } else { "" }),
                    Text(if <$res as $crate::Resource>::EDITS { "edits = true\n" } else { "" }),
                    Text(if <$res as $crate::Resource>::CONTENT_PARAMS.is_empty() { "" } else { "content_params = [" }),
                    List(<$res as $crate::Resource>::CONTENT_PARAMS),
                    Text(if <$res as $crate::Resource>::CONTENT_PARAMS.is_empty() { "" } else { "]\n" }),
                    Text(if <$res as $crate::Resource>::NAME_PARAM.is_some() { "name_param = \"" } else { "" }),
                    Text(match <$res as $crate::Resource>::NAME_PARAM { Some(p) => p, None => "" }),
                    Text(if <$res as $crate::Resource>::NAME_PARAM.is_some() { "\"\n" } else { "" }),
                    Text(if <$res as $crate::Resource>::GROUPS { "groups = true\n" } else { "" }),
                    Text("[kinds.\""), Text(<$res as $crate::Resource>::KIND), Text("\".sends]\n"),
                    Sends(<$res as $crate::Resource>::SENDS),
                )+
            ];
            const LEN: usize = $crate::__glue::manifest_len(PIECES);
            #[unsafe(link_section = "homeostat:manifest")]
            #[used]
            static MANIFEST: [u8; LEN] = $crate::__glue::manifest_bytes::<LEN>(PIECES);
        };

        #[doc(hidden)]
        pub struct __HomeostatPlugin;

        impl $crate::__glue::Guest for __HomeostatPlugin {
            fn validate(id: $crate::__glue::WitId, params: String)
                -> Result<$crate::__glue::WitInfo, $crate::__glue::WitError> {
                $(if id.kind == <$res as $crate::Resource>::KIND {
                    return $crate::__glue::validate::<$res>(id, &params);
                })+
                Err($crate::__glue::unknown_kind(&id.kind))
            }
            fn check_apply(id: $crate::__glue::WitId, params: String, apply: bool, refresh: bool)
                -> Result<$crate::__glue::WitCheck, $crate::__glue::WitError> {
                $(if id.kind == <$res as $crate::Resource>::KIND {
                    return $crate::__glue::check_apply::<$res>(id, &params, apply, refresh);
                })+
                Err($crate::__glue::unknown_kind(&id.kind))
            }
            fn cleanup(id: $crate::__glue::WitId, params: String) -> Result<(), $crate::__glue::WitError> {
                $(if id.kind == <$res as $crate::Resource>::KIND {
                    return $crate::__glue::cleanup::<$res>(id, &params);
                })+
                Err($crate::__glue::unknown_kind(&id.kind))
            }
            fn serve(id: $crate::__glue::WitId, params: String) -> Result<(), $crate::__glue::WitError> {
                $(if id.kind == <$res as $crate::Resource>::KIND {
                    return $crate::__glue::serve::<$res>(id, &params);
                })+
                Err($crate::__glue::unknown_kind(&id.kind))
            }
        }

        $crate::__bindings::__export_plugin_world!(__HomeostatPlugin with_types_in $crate::__bindings);

        impl $crate::__describe_bindings::exports::homeostat::resource::describe::Guest for __HomeostatPlugin {
            fn describe(kind: String, name: String, params: String) -> Result<String, String> {
                $(if kind == <$res as $crate::Resource>::KIND {
                    return $crate::__glue::describe::<$res>(kind, name, &params);
                })+
                Err($crate::__glue::unknown_kind(&kind).message)
            }
        }

        $crate::__describe_bindings::__export_describer!(__HomeostatPlugin with_types_in $crate::__describe_bindings);

        impl $crate::__group_bindings::exports::homeostat::resource::group::Guest for __HomeostatPlugin {
            fn check_apply_group(
                kind: String,
                members: Vec<$crate::__glue::WitMember>,
                apply: bool,
            ) -> Vec<Result<$crate::__glue::WitOutcome, String>> {
                $(if kind == <$res as $crate::Resource>::KIND {
                    return $crate::__glue::check_apply_group::<$res>(kind, members, apply);
                })+
                let e = $crate::__glue::unknown_kind(&kind).message;
                members.iter().map(|_| Err(e.clone())).collect()
            }
        }

        $crate::__group_bindings::__export_grouper!(__HomeostatPlugin with_types_in $crate::__group_bindings);
    };
}
