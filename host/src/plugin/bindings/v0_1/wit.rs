//! The generated side of `homeostat:resource@0.1.0`: the one `bindgen!` of this version,
//! and the conversions between its types and the engine's ([`crate::plugin::types`]).
//! Only the files of this version (`v0_1/`) see the generated types.
//!
//! The conversions out of the guest are where its strings enter the host: error messages,
//! change summaries and diffs are cut to their caps ([`crate::plugin::types`]) and their
//! control characters escaped here, once, so every later use (the log, the summary, a
//! graph error) gets them safe.

use std::path::PathBuf;

use wasmtime::component::{HasSelf, Linker};

use crate::plugin::store::HostState;
use crate::plugin::types::{
    CheckOutcome, MAX_ERROR_MESSAGE, PluginError, ResourceInfo, ResourceRef, WatchItem,
};
use crate::sys::footprint::{Footprint, PathGrant, Protocol, SocketGrant, UnitRef};
use crate::sys::process::CommandSpec;
use crate::sys::systemd::unit_file_paths;
use crate::sys::text;

mod generated {
    wasmtime::component::bindgen!({
        path: "../wit/v0.1",
        world: "resource-plugin",
        imports: { default: async | trappable },
        exports: { default: async },
    });
}

pub(super) use generated::homeostat::resource::{
    fs, kmsg, log, net, process, state, systemd, types as wt,
};
pub(super) use generated::{ResourcePlugin, ResourcePluginIndices};

/// The getter every interface's `add_to_linker` takes: the store's data is the host.
pub(super) fn host(state: &mut HostState) -> &mut HostState {
    state
}

/// `HasSelf<HostState>`: the interfaces are implemented on [`HostState`] itself.
pub(super) type Data = HasSelf<HostState>;

/// `types` has no functions, only the types the other interfaces share.
impl wt::Host for HostState {}

impl From<&ResourceRef> for wt::ResourceId {
    fn from(r: &ResourceRef) -> Self {
        wt::ResourceId {
            kind: r.kind.clone(),
            name: r.name.clone(),
        }
    }
}

impl From<wt::Error> for PluginError {
    fn from(e: wt::Error) -> Self {
        PluginError {
            message: text::one_line(e.message, MAX_ERROR_MESSAGE),
            // A param name: anything longer is not one of the graph's keys.
            field: e.field.map(|f| text::one_line(f, 1024)),
        }
    }
}

pub(super) fn command_in(c: wt::Command) -> CommandSpec {
    CommandSpec {
        argv: c.argv,
        env: c.env,
        cwd: c.cwd,
        user: c.user,
        group: c.group,
    }
}

/// A plugin's `validate` answer is refused when a declared socket address does not parse.
impl TryFrom<wt::ResourceInfo> for ResourceInfo {
    type Error = PluginError;
    fn try_from(i: wt::ResourceInfo) -> Result<Self, PluginError> {
        let mut sockets = Vec::new();
        for g in &i.footprint.sockets {
            let address = g.address.parse().map_err(|_| PluginError {
                message: format!(
                    "the plugin declared the socket address `{}`, which is not `IP:PORT` or \
                     `[IPV6]:PORT` (a plugin bug)",
                    text::one_line(g.address.clone(), 256)
                ),
                field: None,
            })?;
            sockets.push(SocketGrant {
                protocol: match g.protocol {
                    wt::Protocol::Udp => Protocol::Udp,
                    wt::Protocol::Tcp => Protocol::Tcp,
                },
                address,
            });
        }
        Ok(ResourceInfo {
            footprint: Footprint {
                paths: i
                    .footprint
                    .paths
                    .into_iter()
                    .map(|g| PathGrant {
                        path: PathBuf::from(g.path),
                        recursive: g.recursive,
                        write: g.write,
                        shared: false,
                    })
                    .collect(),
                commands: i.footprint.commands,
                units: i
                    .footprint
                    .units
                    .into_iter()
                    .map(|u| UnitRef {
                        name: u.name,
                        session: u.session,
                    })
                    .collect(),
                sockets,
                // The engine sets these.
                trust_parents: false,
                owner: None,
                merge_commands: false,
            },
            watch: i
                .watch
                .into_iter()
                .map(|w| match w {
                    wt::WatchItem::Path(p) => WatchItem::Path {
                        path: PathBuf::from(p.path),
                        recursive: p.recursive,
                    },
                    wt::WatchItem::Interval(ms) => WatchItem::Interval { ms },
                    wt::WatchItem::Command(c) => WatchItem::Command(command_in(c)),
                    wt::WatchItem::Unit(u) => WatchItem::Unit(UnitRef {
                        name: u.name,
                        session: u.session,
                    }),
                    wt::WatchItem::Kmsg => WatchItem::Kmsg,
                    wt::WatchItem::Serve => WatchItem::Serve,
                })
                .collect(),
            depends_on_paths: i
                .depends
                .into_iter()
                .flat_map(|d| match d {
                    wt::Dependency::Path(p) => vec![p],
                    // The host knows where unit files live (and the session user's home).
                    wt::Dependency::Unit(u) => unit_file_paths(&u.name, u.session),
                })
                .collect(),
        })
    }
}

impl From<wt::CheckResult> for CheckOutcome {
    fn from(r: wt::CheckResult) -> Self {
        CheckOutcome::from_plugin(
            r.ok,
            r.changes.into_iter().map(|c| (c.summary, c.diff)).collect(),
            r.sends,
        )
    }
}

/// Link `types` (shared types only; no functions).
pub(super) fn add_to_linker(linker: &mut Linker<HostState>) -> wasmtime::Result<()> {
    wt::add_to_linker::<HostState, Data>(linker, host)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plugin::types::MAX_CHANGES;

    #[test]
    fn plugin_strings_are_capped_and_escaped_where_they_enter() {
        let e = PluginError::from(wt::Error {
            message: format!(
                "bad\n2026-01-01T00:00:00Z  INFO x[y]: forged\x1b[2J{}",
                "z".repeat(1 << 20)
            ),
            field: Some("mode\n".into()),
        });
        assert!(
            e.message
                .starts_with("bad\\n2026-01-01T00:00:00Z  INFO x[y]: forged\\x1b[2J")
        );
        assert!(
            e.message.len() < MAX_ERROR_MESSAGE + 100,
            "{}",
            e.message.len()
        );
        assert!(e.message.contains("bytes cut] …"), "a visible marker");
        assert_eq!(e.field.as_deref(), Some("mode\\n"));

        let change = |summary: &str, diff: Option<&str>| wt::Change {
            summary: summary.into(),
            diff: diff.map(str::to_string),
        };
        let out = CheckOutcome::from(wt::CheckResult {
            ok: false,
            changes: vec![change(
                "content\r\nINFO forged",
                Some("--- a\n+++ b\n-old\x1b]0;title\x07\n+new\n"),
            )],
            sends: Vec::new(),
        });
        assert_eq!(out.changes[0].summary, "content\\r\\nINFO forged");
        assert_eq!(
            out.changes[0].diff.as_deref(),
            Some("--- a\n+++ b\n-old\\x1b]0;title\\x07\n+new\n"),
            "a diff keeps its lines"
        );

        let many = CheckOutcome::from(wt::CheckResult {
            ok: true,
            changes: (0..1000).map(|i| change(&format!("c{i}"), None)).collect(),
            sends: Vec::new(),
        });
        assert_eq!(many.changes.len(), MAX_CHANGES + 1);
        assert_eq!(many.changes[MAX_CHANGES].summary, "and 744 more changes");
        assert!(!many.ok);
    }
}
