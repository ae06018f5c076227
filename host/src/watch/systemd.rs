//! systemd unit watches: D-Bus signals, not polling.
//!
//! A watch listens, on the unit's manager (system or session bus), to
//! `PropertiesChanged` of the unit's object (it starts, stops, fails, is reloaded, its
//! unit file state changes) and to the manager's `Reloading` and `UnitFilesChanged` (a
//! daemon-reload, units enabled or disabled), and wakes the resource for each. The
//! connection is the host's one of [`SystemdHost`], which has already called the manager's
//! `Subscribe` (without it systemd sends no such signals).
//! A connection that cannot be made or breaks is an error that [`super::supervise`] logs
//! and retries per the resource's `retry` and `delay`.

use std::sync::Arc;

use futures_util::StreamExt;
use zbus::message::Type as MessageType;
use zbus::{MatchRule, MessageStream};

use super::supervise::{Restarts, supervise};
use crate::sys::footprint::{Footprint, UnitRef};
use crate::sys::systemd::{
    DEST, MANAGER, MANAGER_PATH, SystemdHost, bus_name, check_unit, unit_object_path,
};
use crate::sys::waker::Waker;

/// Watch `unit` (one of `footprint`'s units) through `host` for `restarts.who` until the
/// task is aborted or the retries are spent.
pub async fn watch(
    unit: UnitRef,
    footprint: Arc<Footprint>,
    host: SystemdHost,
    restarts: Restarts,
) {
    if let Err(e) = check_unit(&footprint, &unit.name, unit.session) {
        tracing::error!("{}: cannot watch: {e}", restarts.who);
        return;
    }
    let w = restarts.wake.clone();
    supervise(restarts, move || {
        run_once(unit.clone(), host.clone(), w.clone())
    })
    .await
}

fn rule(path: &str, interface: &str, member: &str) -> Result<MatchRule<'static>, String> {
    MatchRule::builder()
        .msg_type(MessageType::Signal)
        .sender(DEST)
        .and_then(|b| b.path(path.to_string()))
        .and_then(|b| b.interface(interface.to_string()))
        .and_then(|b| b.member(member.to_string()))
        .map(|b| b.build())
        .map_err(|e| format!("cannot build a D-Bus match rule: {e}"))
}

/// One connection's worth of watching; returns why it stopped.
async fn run_once(unit: UnitRef, host: SystemdHost, wake: Waker) -> Result<(), String> {
    let UnitRef {
        name: unit,
        session,
    } = unit;
    let conn = host
        .connection(session)
        .await
        .map_err(|e| format!("cannot watch unit `{unit}`: {e}"))?;
    let path = unit_object_path(&unit);
    let mut streams = Vec::new();
    for r in [
        rule(
            &path,
            "org.freedesktop.DBus.Properties",
            "PropertiesChanged",
        )?,
        rule(MANAGER_PATH, MANAGER, "Reloading")?,
        rule(MANAGER_PATH, MANAGER, "UnitFilesChanged")?,
    ] {
        match MessageStream::for_match_rule(r, &conn, Some(64)).await {
            Ok(s) => streams.push(s),
            Err(e) => {
                host.reset(session).await;
                return Err(format!(
                    "cannot watch unit `{unit}` on the {}: {e}",
                    bus_name(session)
                ));
            }
        }
    }
    let mut all = futures_util::stream::select_all(streams);
    while let Some(msg) = all.next().await {
        if msg.is_ok() {
            wake();
        }
    }
    host.reset(session).await;
    Err(format!(
        "the connection to the {} closed while watching unit `{unit}`",
        bus_name(session)
    ))
}
