//! systemd unit watches: D-Bus signals, not polling.
//!
//! A watch listens, on the unit's manager (system or session bus), to
//! `PropertiesChanged` of the unit's object (it starts, stops, fails, is reloaded, its
//! unit file state changes) and to the manager's `Reloading` and `UnitFilesChanged` (a
//! daemon-reload, units enabled or disabled), and wakes the resource for each. The
//! connection is the process-wide one of `plugin::capabilities::systemd`, which has
//! already called the manager's `Subscribe` (without it systemd sends no such signals).
//! A connection that cannot be made or breaks is an error that [`super::supervise`] logs
//! and retries per the resource's `retry` and `delay`.

use std::sync::Arc;

use futures_util::StreamExt;
use zbus::message::Type as MessageType;
use zbus::{MatchRule, MessageStream};

use super::Waker;
use super::supervise::supervise;
use crate::plugin::capabilities::fs::Footprint;
use crate::plugin::capabilities::systemd::{
    self as scap, DEST, MANAGER, MANAGER_PATH, SystemdHost, bus_name,
};

/// Watch `unit` for `who` until the task is aborted or the retries are spent.
pub async fn watch(
    who: String,
    unit: String,
    session: bool,
    footprint: Arc<Footprint>,
    retry: i32,
    delay_ms: u64,
    wake: Waker,
) {
    if let Err(e) = scap::check_unit(&footprint, &unit, session) {
        tracing::error!("{who}: cannot watch: {e}");
        return;
    }
    let w = wake.clone();
    supervise(who, retry, delay_ms, wake, move || {
        run_once(unit.clone(), session, w.clone())
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
async fn run_once(unit: String, session: bool, wake: Waker) -> Result<(), String> {
    let host = SystemdHost::global();
    let conn = host
        .connection(session)
        .await
        .map_err(|e| format!("cannot watch unit `{unit}`: {e}"))?;
    let path = scap::unit_object_path(&unit);
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
