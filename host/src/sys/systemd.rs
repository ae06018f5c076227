//! systemd as resources reach it (the `systemd` host interface, and unit watches): unit
//! state and jobs on the system or the session service manager, over D-Bus with zbus,
//! confined to the units the resource declared.
//!
//! **Confinement.** [`check_unit`] allows a call only for a unit listed in the footprint's
//! `units`; `daemon-reload` needs at least one declared unit.
//!
//! **Connections.** One connection per bus for the whole host ([`SystemdHost`], handed to
//! whoever needs it), made on first use and made again after it broke (a manager or bus
//! restart). Right after connecting the host calls the manager's `Subscribe`, without
//! which systemd emits neither `JobRemoved` (needed to wait for jobs) nor the unit property
//! signals the unit watches (`crate::watch::systemd`) listen to. The session bus is found through
//! `DBUS_SESSION_BUS_ADDRESS`, else `$XDG_RUNTIME_DIR/bus`, else `/run/user/EUID/bus`; the
//! system bus through `DBUS_SYSTEM_BUS_ADDRESS`, else `/var/run/dbus/system_bus_socket`
//! (zbus's rules).
//!
//! **Jobs.** `start`, `stop`, `restart` and `reload-or-restart` subscribe to `JobRemoved`
//! *before* queueing the job, then wait for the signal of their job: a call returns once
//! systemd finished, and a job that did not end `done` is an error naming the unit, the
//! result and where to look (`journalctl`).
//!
//! **Unit files.** [`unit_file_paths`] says where a unit's files live, so that an `svc`
//! depends (by autoedge) on the `file` resource writing its unit file.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use futures_util::StreamExt;
use tokio::sync::Mutex;
use zbus::message::Type as MessageType;
use zbus::zvariant::{OwnedObjectPath, OwnedValue};
use zbus::{Connection, MatchRule, MessageStream};

use crate::sys::footprint::Footprint;

/// The manager's bus name and object.
pub const DEST: &str = "org.freedesktop.systemd1";
pub const MANAGER_PATH: &str = "/org/freedesktop/systemd1";
pub const MANAGER: &str = "org.freedesktop.systemd1.Manager";
const UNIT_IFACE: &str = "org.freedesktop.systemd1.Unit";
const PROPS_IFACE: &str = "org.freedesktop.DBus.Properties";

/// How long connecting to a bus (and subscribing) may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// What went wrong (WIT `systemd.error-code`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorCode {
    NotAllowed,
    NoSuchUnit,
    Bus,
    Failed,
}

/// A `systemd` call's failure; the message names the unit and the bus.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct SystemdError {
    pub code: ErrorCode,
    pub message: String,
}

impl SystemdError {
    fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        SystemdError {
            code,
            message: message.into(),
        }
    }
}

/// A unit's state (WIT `unit-status`).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct UnitStatus {
    pub load_state: String,
    pub active_state: String,
    pub sub_state: String,
    pub unit_file_state: String,
    pub need_daemon_reload: bool,
}

/// A job to queue on the manager.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Job {
    Start,
    Stop,
    Restart,
    ReloadOrRestart,
}

impl Job {
    fn method(self) -> &'static str {
        match self {
            Job::Start => "StartUnit",
            Job::Stop => "StopUnit",
            Job::Restart => "RestartUnit",
            Job::ReloadOrRestart => "ReloadOrRestartUnit",
        }
    }
    fn verb(self) -> &'static str {
        match self {
            Job::Start => "start",
            Job::Stop => "stop",
            Job::Restart => "restart",
            Job::ReloadOrRestart => "reload or restart",
        }
    }
}

/// `session manager` / `system manager`, for messages.
pub fn bus_name(session: bool) -> &'static str {
    if session {
        "session (user) manager"
    } else {
        "system manager"
    }
}

/// Allow `unit` on that manager only when the footprint lists it.
pub fn check_unit(footprint: &Footprint, unit: &str, session: bool) -> Result<(), SystemdError> {
    if footprint
        .units
        .iter()
        .any(|u| u.name == unit && u.session == session)
    {
        Ok(())
    } else {
        Err(SystemdError::new(
            ErrorCode::NotAllowed,
            format!(
                "unit `{unit}` on the {} is not among the units this resource declared",
                bus_name(session)
            ),
        ))
    }
}

/// Where the files of `unit` live, in the order systemd prefers them: for the system
/// manager `/etc/systemd/system` and `/usr/lib/systemd/system`; for the session manager
/// `$XDG_CONFIG_HOME/systemd/user` (default `$HOME/.config/systemd/user`).
pub fn unit_file_paths(unit: &str, session: bool) -> Vec<String> {
    if session {
        let config = std::env::var_os("XDG_CONFIG_HOME")
            .filter(|v| !v.is_empty())
            .map(PathBuf::from)
            .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".config")));
        config
            .map(|c| {
                vec![
                    c.join("systemd/user")
                        .join(unit)
                        .to_string_lossy()
                        .into_owned(),
                ]
            })
            .unwrap_or_default()
    } else {
        vec![
            format!("/etc/systemd/system/{unit}"),
            format!("/usr/lib/systemd/system/{unit}"),
        ]
    }
}

/// The D-Bus object path of a unit (systemd's `bus_label_escape`: every byte outside
/// `[A-Za-z0-9]`, and a leading digit, becomes `_xx`).
pub fn unit_object_path(unit: &str) -> String {
    let mut out = String::from("/org/freedesktop/systemd1/unit/");
    for (i, b) in unit.bytes().enumerate() {
        if b.is_ascii_alphabetic() || (b.is_ascii_digit() && i > 0) {
            out.push(b as char);
        } else {
            out.push_str(&format!("_{b:02x}"));
        }
    }
    out
}

/// Connections to the two buses' service managers, each made on first use. Cheap to
/// clone: the clones share the connections. The host makes one and hands it to the
/// runtime (the `systemd` interface) and the engine (unit watches).
#[derive(Clone, Default)]
pub struct SystemdHost {
    buses: Arc<Buses>,
}

#[derive(Default)]
struct Buses {
    system: Mutex<Option<Connection>>,
    session: Mutex<Option<Connection>>,
}

impl std::fmt::Debug for SystemdHost {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SystemdHost").finish_non_exhaustive()
    }
}

impl SystemdHost {
    /// No connection yet; each bus is connected to on its first call.
    pub fn new() -> SystemdHost {
        SystemdHost::default()
    }

    /// A subscribed connection to the manager on that bus.
    pub async fn connection(&self, session: bool) -> Result<Connection, SystemdError> {
        let slot = if session {
            &self.buses.session
        } else {
            &self.buses.system
        };
        let mut guard = slot.lock().await;
        if let Some(c) = guard.as_ref() {
            return Ok(c.clone());
        }
        let connect = async {
            let c = if session {
                Connection::session().await
            } else {
                Connection::system().await
            }
            .map_err(|e| connect_error(session, &e.to_string()))?;
            c.call_method(Some(DEST), MANAGER_PATH, Some(MANAGER), "Subscribe", &())
                .await
                .map_err(|e| connect_error(session, &describe(&e)))?;
            Ok::<_, SystemdError>(c)
        };
        let c = tokio::time::timeout(CONNECT_TIMEOUT, connect)
            .await
            .map_err(|_| connect_error(session, "timed out"))??;
        *guard = Some(c.clone());
        Ok(c)
    }

    /// Forget a connection that failed, so the next call connects again.
    pub async fn reset(&self, session: bool) {
        let slot = if session {
            &self.buses.session
        } else {
            &self.buses.system
        };
        *slot.lock().await = None;
    }

    /// Map a zbus error of a call about `unit`; a broken connection is dropped.
    async fn fail(&self, session: bool, what: &str, e: zbus::Error) -> SystemdError {
        let err = call_error(session, what, &e);
        if err.code == ErrorCode::Bus {
            self.reset(session).await;
        }
        err
    }

    async fn call(
        &self,
        session: bool,
        path: &str,
        iface: &str,
        method: &str,
        body: &(impl serde::Serialize + zbus::zvariant::DynamicType),
        what: &str,
    ) -> Result<zbus::Message, SystemdError> {
        let c = self.connection(session).await?;
        match c
            .call_method(Some(DEST), path, Some(iface), method, body)
            .await
        {
            Ok(m) => Ok(m),
            Err(e) => Err(self.fail(session, what, e).await),
        }
    }

    /// Load (if needed) and describe `unit`.
    pub async fn status(&self, unit: &str, session: bool) -> Result<UnitStatus, SystemdError> {
        let what = format!("query unit `{unit}` on the {}", bus_name(session));
        let reply = self
            .call(session, MANAGER_PATH, MANAGER, "LoadUnit", &(unit,), &what)
            .await?;
        let path: OwnedObjectPath = reply
            .body()
            .deserialize()
            .map_err(|e| SystemdError::new(ErrorCode::Failed, format!("cannot {what}: {e}")))?;
        let reply = self
            .call(
                session,
                path.as_str(),
                PROPS_IFACE,
                "GetAll",
                &(UNIT_IFACE,),
                &what,
            )
            .await?;
        let props: HashMap<String, OwnedValue> = reply
            .body()
            .deserialize()
            .map_err(|e| SystemdError::new(ErrorCode::Failed, format!("cannot {what}: {e}")))?;
        let text = |k: &str| {
            props
                .get(k)
                .and_then(|v| v.downcast_ref::<&str>().ok().map(str::to_string))
                .unwrap_or_default()
        };
        Ok(UnitStatus {
            load_state: text("LoadState"),
            active_state: text("ActiveState"),
            sub_state: text("SubState"),
            unit_file_state: text("UnitFileState"),
            need_daemon_reload: props
                .get("NeedDaemonReload")
                .and_then(|v| v.downcast_ref::<bool>().ok())
                .unwrap_or(false),
        })
    }

    /// Queue `job` for `unit` and wait until systemd has finished it.
    pub async fn job(&self, unit: &str, session: bool, job: Job) -> Result<(), SystemdError> {
        let what = format!("{} unit `{unit}` on the {}", job.verb(), bus_name(session));
        let c = self.connection(session).await?;
        // Listen before queueing, or a fast job's JobRemoved is missed.
        let rule = MatchRule::builder()
            .msg_type(MessageType::Signal)
            .sender(DEST)
            .and_then(|b| b.path(MANAGER_PATH))
            .and_then(|b| b.interface(MANAGER))
            .and_then(|b| b.member("JobRemoved"))
            .map(|b| b.build())
            .map_err(|e| SystemdError::new(ErrorCode::Failed, format!("cannot {what}: {e}")))?;
        let mut removed = match MessageStream::for_match_rule(rule, &c, Some(256)).await {
            Ok(s) => s,
            Err(e) => return Err(self.fail(session, &what, e).await),
        };
        let reply = self
            .call(
                session,
                MANAGER_PATH,
                MANAGER,
                job.method(),
                &(unit, "replace"),
                &what,
            )
            .await?;
        let job_path: OwnedObjectPath = reply
            .body()
            .deserialize()
            .map_err(|e| SystemdError::new(ErrorCode::Failed, format!("cannot {what}: {e}")))?;
        while let Some(msg) = removed.next().await {
            let Ok(msg) = msg else { continue };
            let Ok((_id, path, _unit, result)) = msg
                .body()
                .deserialize::<(u32, OwnedObjectPath, String, String)>()
            else {
                continue;
            };
            if path != job_path {
                continue;
            }
            return if result == "done" {
                Ok(())
            } else {
                let user = if session { "--user " } else { "" };
                Err(SystemdError::new(
                    ErrorCode::Failed,
                    format!(
                        "cannot {what}: the job ended with result `{result}`; see \
                         `systemctl {user}status {unit}` and `journalctl {user}-u {unit}`"
                    ),
                ))
            };
        }
        self.reset(session).await;
        Err(SystemdError::new(
            ErrorCode::Bus,
            format!("cannot {what}: the connection closed while waiting for the job"),
        ))
    }

    /// Enable (`true`) or disable the unit file, then reload the manager like `systemctl`.
    pub async fn set_enabled(
        &self,
        unit: &str,
        session: bool,
        enable: bool,
    ) -> Result<(), SystemdError> {
        let verb = if enable { "enable" } else { "disable" };
        let what = format!("{verb} unit `{unit}` on the {}", bus_name(session));
        if enable {
            let reply = self
                .call(
                    session,
                    MANAGER_PATH,
                    MANAGER,
                    "EnableUnitFiles",
                    &(vec![unit], false, true),
                    &what,
                )
                .await?;
            let (install_info, _changes): (bool, Vec<(String, String, String)>) = reply
                .body()
                .deserialize()
                .map_err(|e| SystemdError::new(ErrorCode::Failed, format!("cannot {what}: {e}")))?;
            if !install_info {
                return Err(SystemdError::new(
                    ErrorCode::Failed,
                    format!(
                        "cannot {what}: the unit file has no [Install] section (add e.g. \
                         `WantedBy=default.target`), so there is nothing to enable"
                    ),
                ));
            }
        } else {
            self.call(
                session,
                MANAGER_PATH,
                MANAGER,
                "DisableUnitFiles",
                &(vec![unit], false),
                &what,
            )
            .await?;
        }
        self.daemon_reload(session).await
    }

    /// `systemctl daemon-reload`.
    pub async fn daemon_reload(&self, session: bool) -> Result<(), SystemdError> {
        let what = format!("reload the {}", bus_name(session));
        self.call(session, MANAGER_PATH, MANAGER, "Reload", &(), &what)
            .await
            .map(|_| ())
    }
}

/// A connection that could not be made.
fn connect_error(session: bool, why: &str) -> SystemdError {
    let hint = if session {
        let addr =
            std::env::var("DBUS_SESSION_BUS_ADDRESS").unwrap_or_else(|_| {
                match std::env::var("XDG_RUNTIME_DIR") {
                    Ok(d) => format!("unix:path={d}/bus (from XDG_RUNTIME_DIR)"),
                    Err(_) => format!(
                        "unix:path=/run/user/{}/bus (neither DBUS_SESSION_BUS_ADDRESS nor \
                         XDG_RUNTIME_DIR is set)",
                        rustix::process::geteuid().as_raw()
                    ),
                }
            });
        format!(
            "; session bus address: {addr}. Is a user manager running (`systemctl --user`), \
             and is homeostat started with that user's DBUS_SESSION_BUS_ADDRESS or XDG_RUNTIME_DIR?"
        )
    } else {
        "; is systemd the init system here (`/run/systemd/system` exists) and is \
         dbus running (`/run/dbus/system_bus_socket`)?"
            .to_string()
    };
    SystemdError::new(
        ErrorCode::Bus,
        format!("cannot connect to the {}: {why}{hint}", bus_name(session)),
    )
}

/// One line for a zbus error (D-Bus errors carry a name and a message).
fn describe(e: &zbus::Error) -> String {
    match e {
        zbus::Error::MethodError(name, Some(msg), _) => format!("{msg} ({name})"),
        zbus::Error::MethodError(name, None, _) => name.to_string(),
        e => e.to_string(),
    }
}

/// Classify a failed call.
fn call_error(session: bool, what: &str, e: &zbus::Error) -> SystemdError {
    let code = match e {
        zbus::Error::MethodError(name, _, _) => match name.as_str() {
            "org.freedesktop.systemd1.NoSuchUnit" | "org.freedesktop.DBus.Error.FileNotFound" => {
                ErrorCode::NoSuchUnit
            }
            "org.freedesktop.DBus.Error.ServiceUnknown"
            | "org.freedesktop.DBus.Error.NameHasNoOwner"
            | "org.freedesktop.DBus.Error.NoReply"
            | "org.freedesktop.DBus.Error.Disconnected" => ErrorCode::Bus,
            _ => ErrorCode::Failed,
        },
        zbus::Error::InputOutput(_) | zbus::Error::Handshake(_) => ErrorCode::Bus,
        _ => ErrorCode::Failed,
    };
    let hint = if code == ErrorCode::Bus {
        format!(" (is the {} still running?)", bus_name(session))
    } else {
        String::new()
    };
    SystemdError::new(code, format!("cannot {what}: {}{hint}", describe(e)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sys::footprint::UnitRef;

    #[test]
    fn object_paths_are_escaped_like_systemd() {
        assert_eq!(
            unit_object_path("nginx.service"),
            "/org/freedesktop/systemd1/unit/nginx_2eservice"
        );
        assert_eq!(
            unit_object_path("1a-b@x.service"),
            "/org/freedesktop/systemd1/unit/_31a_2db_40x_2eservice"
        );
    }

    #[test]
    fn units_outside_the_footprint_are_refused() {
        let fp = Footprint {
            units: vec![UnitRef {
                name: "a.service".into(),
                session: true,
            }],
            ..Default::default()
        };
        assert!(check_unit(&fp, "a.service", true).is_ok());
        let e = check_unit(&fp, "sshd.service", true).unwrap_err();
        assert_eq!(e.code, ErrorCode::NotAllowed);
        assert!(e.message.contains("sshd.service"));
        // A session grant does not reach the system manager's unit of the same name.
        let e = check_unit(&fp, "a.service", false).unwrap_err();
        assert!(e.message.contains("system manager"), "{}", e.message);
    }

    #[test]
    fn system_unit_files_live_in_etc_and_usr_lib() {
        assert_eq!(
            unit_file_paths("a.service", false),
            [
                "/etc/systemd/system/a.service",
                "/usr/lib/systemd/system/a.service"
            ]
        );
    }

    #[tokio::test]
    async fn an_unreachable_bus_is_a_bus_error() {
        let c = zbus::connection::Builder::address("unix:path=/nonexistent/homeostat-test-bus")
            .unwrap()
            .build()
            .await;
        let e = connect_error(true, &c.err().unwrap().to_string());
        assert_eq!(e.code, ErrorCode::Bus);
        assert!(
            e.message.contains("session (user) manager"),
            "{}",
            e.message
        );
    }
}
