//! The only module that runs `bindgen!`: the host side of `homeostat:resource@0.1.0`.
//!
//! It implements the generated host traits (`log`, `fs`, `process`, `systemd`, `kmsg`,
//! `state`, `net`) for [`HostState`] by
//! delegating to the capability modules, and converts between generated types and the
//! engine's own ([`ResourceInfo`], [`CheckOutcome`], [`PluginError`]). Generated types
//! never leave this module: everything public here is a plain engine type.

use serde::{Deserialize, Serialize};
use std::path::PathBuf;

use crate::plugin::capabilities::fs as fscap;
use crate::plugin::capabilities::net as ncap;
use crate::plugin::capabilities::process as pcap;
use crate::plugin::capabilities::systemd as scap;
use crate::plugin::runtime::HostState;

mod generated {
    wasmtime::component::bindgen!({
        path: "../wit/v0.1",
        world: "resource-plugin",
        imports: { default: async | trappable },
        exports: { default: async },
    });
}

use generated::homeostat::resource::{
    fs as wfs, kmsg as wkmsg, log as wlog, net as wnet, process as wproc, state as wstate,
    systemd as wsd, types as wt,
};
pub(crate) use generated::{ResourcePlugin, ResourcePluginPre};

/// A resource's identity as the plugin sees it.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ResourceRef {
    pub kind: String,
    pub name: String,
}

impl From<&ResourceRef> for wt::ResourceId {
    fn from(r: &ResourceRef) -> Self {
        wt::ResourceId {
            kind: r.kind.clone(),
            name: r.name.clone(),
        }
    }
}

/// An expected failure reported by the plugin (a WIT `error` value).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PluginError {
    pub message: String,
    /// The param it is about, if the plugin said so.
    pub field: Option<String>,
}

impl From<wt::Error> for PluginError {
    fn from(e: wt::Error) -> Self {
        PluginError {
            message: e.message,
            field: e.field,
        }
    }
}

/// Something that may change a resource's state and should wake it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum WatchItem {
    Path {
        path: PathBuf,
        recursive: bool,
    },
    Interval {
        ms: u32,
    },
    /// Every new kernel log record.
    Kmsg,
    /// A long-running command whose stdout lines are events.
    Command(pcap::CommandSpec),
    /// A systemd unit's property changes and its manager's reloads.
    Unit {
        name: String,
        session: bool,
    },
    /// Run the plugin's `serve` export in an instance of its own (the long-running watch).
    Serve,
}

fn command_in(c: wt::Command) -> pcap::CommandSpec {
    pcap::CommandSpec {
        argv: c.argv,
        env: c.env,
        cwd: c.cwd,
        user: c.user,
        group: c.group,
    }
}

/// What `validate` returned.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ResourceInfo {
    pub footprint: fscap::Footprint,
    pub watch: Vec<WatchItem>,
    /// Paths whose managing resource this one depends on (autoedges).
    pub depends_on_paths: Vec<String>,
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
                    g.address
                ),
                field: None,
            })?;
            sockets.push(ncap::SocketGrant {
                protocol: match g.protocol {
                    wt::Protocol::Udp => ncap::Protocol::Udp,
                    wt::Protocol::Tcp => ncap::Protocol::Tcp,
                },
                address,
            });
        }
        Ok(ResourceInfo {
            footprint: fscap::Footprint {
                paths: i
                    .footprint
                    .paths
                    .into_iter()
                    .map(|g| fscap::PathGrant {
                        path: PathBuf::from(g.path),
                        recursive: g.recursive,
                        write: g.write,
                    })
                    .collect(),
                commands: i.footprint.commands,
                units: i
                    .footprint
                    .units
                    .into_iter()
                    .map(|u| scap::UnitRef {
                        name: u.name,
                        session: u.session,
                    })
                    .collect(),
                sockets,
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
                    wt::WatchItem::Unit(u) => WatchItem::Unit {
                        name: u.name,
                        session: u.session,
                    },
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
                    wt::Dependency::Unit(u) => scap::unit_file_paths(&u.name, u.session),
                })
                .collect(),
        })
    }
}

/// What one check-apply found and did.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct CheckOutcome {
    /// Already in the declared state.
    pub ok: bool,
    /// One entry per change made (or that would be made in noop).
    pub changes: Vec<Change>,
    /// Published values: name and JSON text.
    pub sends: Vec<(String, String)>,
}

/// One change a check-apply made or would make.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Change {
    /// One line, e.g. `mode 0644 -> 0600`.
    pub summary: String,
    /// A unified diff of text content, when the plugin could show one.
    pub diff: Option<String>,
}

impl From<wt::CheckResult> for CheckOutcome {
    fn from(r: wt::CheckResult) -> Self {
        CheckOutcome {
            ok: r.ok && r.changes.is_empty(),
            changes: r
                .changes
                .into_iter()
                .map(|c| Change {
                    summary: c.summary,
                    diff: c.diff,
                })
                .collect(),
            sends: r.sends,
        }
    }
}

impl wt::Host for HostState {}

impl wstate::Host for HostState {
    async fn get(&mut self) -> wasmtime::Result<Option<String>> {
        Ok(self.state_get())
    }
    async fn set(&mut self, value: String) -> wasmtime::Result<()> {
        self.state_set(value);
        Ok(())
    }
}

impl wkmsg::Host for HostState {
    async fn read(&mut self, after: Option<u64>) -> wasmtime::Result<Result<wkmsg::Batch, String>> {
        Ok(self
            .kmsg_access()
            .and_then(|()| crate::watch::kmsg::global())
            .and_then(|k| k.read(after))
            .map(|b| wkmsg::Batch {
                records: b.records.into_iter().map(|r| r.text.to_string()).collect(),
                missed: b.missed,
            }))
    }
    async fn start_seq(&mut self) -> wasmtime::Result<Result<Option<u64>, String>> {
        Ok(self
            .kmsg_access()
            .and_then(|()| crate::watch::kmsg::global())
            .map(|k| k.start_seq()))
    }
}

impl wlog::Host for HostState {
    async fn log(&mut self, level: wlog::Level, message: String) -> wasmtime::Result<()> {
        let who = self.who();
        match level {
            wlog::Level::Trace => tracing::trace!(target: "homeostat::plugin", "{who}: {message}"),
            wlog::Level::Debug => tracing::debug!(target: "homeostat::plugin", "{who}: {message}"),
            wlog::Level::Info => tracing::info!(target: "homeostat::plugin", "{who}: {message}"),
            wlog::Level::Warn => tracing::warn!(target: "homeostat::plugin", "{who}: {message}"),
            wlog::Level::Error => tracing::error!(target: "homeostat::plugin", "{who}: {message}"),
        }
        Ok(())
    }
}

fn err_out(e: fscap::FsError) -> wfs::Error {
    use fscap::ErrorCode as C;
    let code = match e.code {
        C::NotAllowed => wfs::ErrorCode::NotAllowed,
        C::NotFound => wfs::ErrorCode::NotFound,
        C::PermissionDenied => wfs::ErrorCode::PermissionDenied,
        C::WrongType => wfs::ErrorCode::WrongType,
        C::NotEmpty => wfs::ErrorCode::NotEmpty,
        C::UnknownId => wfs::ErrorCode::UnknownId,
        C::Other => wfs::ErrorCode::Other,
    };
    wfs::Error {
        code,
        message: e.message,
    }
}

fn attrs_in(a: wfs::Attrs) -> fscap::Attrs {
    fscap::Attrs {
        mode: a.mode,
        uid: a.uid,
        gid: a.gid,
    }
}

fn stat_out(s: fscap::FileStat) -> wfs::FileStat {
    wfs::FileStat {
        file_type: match s.file_type {
            fscap::FileType::File => wfs::FileType::File,
            fscap::FileType::Directory => wfs::FileType::Directory,
            fscap::FileType::Symlink => wfs::FileType::Symlink,
            fscap::FileType::Other => wfs::FileType::Other,
        },
        size: s.size,
        mode: s.mode,
        uid: s.uid,
        gid: s.gid,
    }
}

type FsResult<T> = wasmtime::Result<Result<T, wfs::Error>>;

/// Every `fs` call first checks that the plugin was granted `fs`, then runs against
/// the footprint of the resource being called (and, for writes, with its path watches).
macro_rules! fs_call {
    ($self:ident, |$fs:ident, $fp:ident, $own:ident| $body:expr) => {{
        let ($fs, $fp, $own) = match $self.fs_access() {
            Ok(v) => v,
            Err(e) => return Ok(Err(err_out(e))),
        };
        Ok($body.await.map_err(err_out))
    }};
    ($self:ident, |$fs:ident, $fp:ident| $body:expr) => {
        fs_call!($self, |$fs, $fp, _own| $body)
    };
}

impl wfs::Host for HostState {
    async fn stat(&mut self, path: String) -> FsResult<Option<wfs::FileStat>> {
        fs_call!(self, |fs, fp| async {
            fs.stat(&fp, &path).await.map(|o| o.map(stat_out))
        })
    }
    async fn read(&mut self, path: String) -> FsResult<Vec<u8>> {
        fs_call!(self, |fs, fp| fs.read(&fp, &path))
    }
    async fn read_at(&mut self, path: String, offset: u64, len: u32) -> FsResult<Vec<u8>> {
        fs_call!(self, |fs, fp| fs.read_at(&fp, &path, offset, len))
    }
    async fn digest(&mut self, path: String) -> FsResult<String> {
        fs_call!(self, |fs, fp| fs.digest(&fp, &path))
    }
    async fn content_equals(&mut self, path: String, data: Vec<u8>) -> FsResult<bool> {
        fs_call!(self, |fs, fp| fs.content_equals(&fp, &path, &data))
    }
    async fn write(&mut self, path: String, data: Vec<u8>, attrs: wfs::Attrs) -> FsResult<()> {
        fs_call!(self, |fs, fp, own| fs.write(
            &fp,
            &path,
            data,
            attrs_in(attrs),
            &own
        ))
    }
    async fn copy(&mut self, source: String, path: String, attrs: wfs::Attrs) -> FsResult<()> {
        fs_call!(self, |fs, fp, own| fs.copy(
            &fp,
            &source,
            &path,
            attrs_in(attrs),
            &own
        ))
    }
    async fn symlink(&mut self, target: String, path: String) -> FsResult<()> {
        fs_call!(self, |fs, fp| fs.symlink(&fp, &target, &path))
    }
    async fn read_link(&mut self, path: String) -> FsResult<String> {
        fs_call!(self, |fs, fp| fs.read_link(&fp, &path))
    }
    async fn mkdir(&mut self, path: String, attrs: wfs::Attrs) -> FsResult<()> {
        fs_call!(self, |fs, fp| fs.mkdir(&fp, &path, attrs_in(attrs)))
    }
    async fn remove(&mut self, path: String, recursive: bool) -> FsResult<()> {
        fs_call!(self, |fs, fp| fs.remove(&fp, &path, recursive))
    }
    async fn set_attrs(&mut self, path: String, attrs: wfs::Attrs) -> FsResult<()> {
        fs_call!(self, |fs, fp| fs.set_attrs(&fp, &path, attrs_in(attrs)))
    }
    async fn read_dir(&mut self, path: String) -> FsResult<Vec<String>> {
        fs_call!(self, |fs, fp| fs.read_dir(&fp, &path))
    }
    async fn user_id(&mut self, name: String) -> FsResult<u32> {
        fs_call!(self, |fs, _fp| fs.user_id(&name))
    }
    async fn group_id(&mut self, name: String) -> FsResult<u32> {
        fs_call!(self, |fs, _fp| fs.group_id(&name))
    }
}

fn proc_err(e: pcap::ProcessError) -> wproc::Error {
    use pcap::ErrorCode as C;
    wproc::Error {
        code: match e.code {
            C::NotAllowed => wproc::ErrorCode::NotAllowed,
            C::NotFound => wproc::ErrorCode::NotFound,
            C::PermissionDenied => wproc::ErrorCode::PermissionDenied,
            C::UnknownId => wproc::ErrorCode::UnknownId,
            C::TimedOut => wproc::ErrorCode::TimedOut,
            C::Other => wproc::ErrorCode::Other,
        },
        message: e.message,
    }
}

impl wproc::Host for HostState {
    async fn run(
        &mut self,
        cmd: wt::Command,
        stdin: Option<Vec<u8>>,
        timeout_ms: Option<u32>,
    ) -> wasmtime::Result<Result<wproc::Output, wproc::Error>> {
        let spec = command_in(cmd);
        let fp = match self.process_access() {
            Ok(fp) => fp,
            Err(e) => return Ok(Err(proc_err(e))),
        };
        if let Err(e) = pcap::check_argv(&fp, &spec.argv) {
            return Ok(Err(proc_err(e)));
        }
        let timeout = timeout_ms.map(|ms| std::time::Duration::from_millis(u64::from(ms)));
        Ok(pcap::run(&spec, stdin, timeout)
            .await
            .map(|o| wproc::Output {
                exit_code: o.exit_code,
                stdout: o.stdout,
                stderr: o.stderr,
                truncated: o.truncated,
            })
            .map_err(proc_err))
    }
}

fn sd_err(e: scap::SystemdError) -> wsd::Error {
    use scap::ErrorCode as C;
    wsd::Error {
        code: match e.code {
            C::NotAllowed => wsd::ErrorCode::NotAllowed,
            C::NoSuchUnit => wsd::ErrorCode::NoSuchUnit,
            C::Bus => wsd::ErrorCode::Bus,
            C::Failed => wsd::ErrorCode::Failed,
        },
        message: e.message,
    }
}

type SdResult<T> = wasmtime::Result<Result<T, wsd::Error>>;

/// Every `systemd` call first checks the capability and that the unit is in the footprint.
macro_rules! sd_call {
    ($self:ident, $unit:expr, $session:expr, |$host:ident| $body:expr) => {{
        let fp = match $self.systemd_access() {
            Ok(fp) => fp,
            Err(e) => return Ok(Err(sd_err(e))),
        };
        if let Some(unit) = $unit {
            if let Err(e) = scap::check_unit(&fp, unit, $session) {
                return Ok(Err(sd_err(e)));
            }
        } else if !fp.units.iter().any(|u| u.session == $session) {
            // daemon-reload: any declared unit on that manager will do.
            return Ok(Err(sd_err(
                scap::check_unit(&fp, "(any)", $session).unwrap_err(),
            )));
        }
        let $host = scap::SystemdHost::global();
        Ok($body.await.map_err(sd_err))
    }};
}

impl wsd::Host for HostState {
    async fn status(&mut self, unit: String, session: bool) -> SdResult<wsd::UnitStatus> {
        sd_call!(self, Some(&unit), session, |h| async {
            h.status(&unit, session).await.map(|s| wsd::UnitStatus {
                load_state: s.load_state,
                active_state: s.active_state,
                sub_state: s.sub_state,
                unit_file_state: s.unit_file_state,
                need_daemon_reload: s.need_daemon_reload,
            })
        })
    }
    async fn start(&mut self, unit: String, session: bool) -> SdResult<()> {
        sd_call!(self, Some(&unit), session, |h| h.job(
            &unit,
            session,
            scap::Job::Start
        ))
    }
    async fn stop(&mut self, unit: String, session: bool) -> SdResult<()> {
        sd_call!(self, Some(&unit), session, |h| h.job(
            &unit,
            session,
            scap::Job::Stop
        ))
    }
    async fn restart(&mut self, unit: String, session: bool) -> SdResult<()> {
        sd_call!(self, Some(&unit), session, |h| h.job(
            &unit,
            session,
            scap::Job::Restart
        ))
    }
    async fn reload_or_restart(&mut self, unit: String, session: bool) -> SdResult<()> {
        sd_call!(self, Some(&unit), session, |h| h.job(
            &unit,
            session,
            scap::Job::ReloadOrRestart
        ))
    }
    async fn enable(&mut self, unit: String, session: bool) -> SdResult<()> {
        sd_call!(self, Some(&unit), session, |h| h
            .set_enabled(&unit, session, true))
    }
    async fn disable(&mut self, unit: String, session: bool) -> SdResult<()> {
        sd_call!(self, Some(&unit), session, |h| h
            .set_enabled(&unit, session, false))
    }
    async fn daemon_reload(&mut self, session: bool) -> SdResult<()> {
        sd_call!(self, None::<&String>, session, |h| h.daemon_reload(session))
    }
}

fn net_err(e: ncap::NetError) -> wnet::Error {
    use ncap::ErrorCode as C;
    wnet::Error {
        code: match e.code {
            C::NotAllowed => wnet::ErrorCode::NotAllowed,
            C::AddressInUse => wnet::ErrorCode::AddressInUse,
            C::Invalid => wnet::ErrorCode::Invalid,
            C::Other => wnet::ErrorCode::Other,
        },
        message: e.message,
    }
}

type NetResult<T> = wasmtime::Result<Result<T, wnet::Error>>;

/// `address` parsed, if the footprint allows binding it with `protocol`.
fn allowed(
    fp: &fscap::Footprint,
    protocol: ncap::Protocol,
    address: &str,
) -> Result<std::net::SocketAddr, ncap::NetError> {
    let a = ncap::parse_address(address)?;
    ncap::check_bind(fp, protocol, a).map(|()| a)
}

/// Every `net` call first checks the capability and that a `serve` call is running.
macro_rules! net_call {
    ($self:ident, |$net:ident, $fp:ident| $body:expr) => {{
        match $self.net_access() {
            Ok(($net, $fp)) => Ok($body.map_err(net_err)),
            Err(e) => Ok(Err(net_err(e))),
        }
    }};
}

impl wnet::Host for HostState {
    async fn bind_udp(&mut self, address: String) -> NetResult<wnet::Socket> {
        net_call!(
            self,
            |net, fp| match allowed(&fp, ncap::Protocol::Udp, &address) {
                Ok(a) => net.bind_udp(a).await,
                Err(e) => Err(e),
            }
        )
    }
    async fn listen_tcp(&mut self, address: String) -> NetResult<wnet::Socket> {
        net_call!(
            self,
            |net, fp| match allowed(&fp, ncap::Protocol::Tcp, &address) {
                Ok(a) => net.listen_tcp(a).await,
                Err(e) => Err(e),
            }
        )
    }
    async fn local_address(&mut self, s: wnet::Socket) -> NetResult<String> {
        net_call!(self, |net, _fp| net.local_address(s).map(|a| a.to_string()))
    }
    async fn send_to(&mut self, s: wnet::Socket, peer: String, data: Vec<u8>) -> NetResult<()> {
        net_call!(self, |net, _fp| match ncap::parse_address(&peer) {
            Ok(p) => net.send_to(s, p, &data).await,
            Err(e) => Err(e),
        })
    }
    async fn write(&mut self, s: wnet::Socket, data: Vec<u8>) -> NetResult<u32> {
        net_call!(self, |net, _fp| net.write(s, &data))
    }
    async fn close(&mut self, s: wnet::Socket) -> wasmtime::Result<()> {
        if let Ok((net, _)) = self.net_access() {
            net.close(s);
        }
        Ok(())
    }
    async fn wait(&mut self, timeout_ms: u32) -> wasmtime::Result<Vec<wnet::Event>> {
        let timeout = std::time::Duration::from_millis(u64::from(timeout_ms));
        Ok(self
            .serve_wait(timeout)
            .await
            .into_iter()
            .map(|e| match e {
                crate::plugin::serve::Event::Net(e) => match e {
                    ncap::Event::Datagram { socket, peer, data } => {
                        wnet::Event::Datagram(wnet::Datagram {
                            socket,
                            peer: peer.to_string(),
                            data,
                        })
                    }
                    ncap::Event::Accepted {
                        listener,
                        connection,
                        peer,
                    } => wnet::Event::Accepted(wnet::Accepted {
                        listener,
                        connection,
                        peer: peer.to_string(),
                    }),
                    ncap::Event::Received { connection, data } => {
                        wnet::Event::Received(wnet::Received { connection, data })
                    }
                    ncap::Event::Writable(s) => wnet::Event::Writable(s),
                    ncap::Event::Failed { socket, message } => {
                        wnet::Event::Failed(wnet::Failure { socket, message })
                    }
                },
                crate::plugin::serve::Event::Reconfigured(params) => {
                    wnet::Event::Reconfigured(params.to_string())
                }
            })
            .collect())
    }
}
