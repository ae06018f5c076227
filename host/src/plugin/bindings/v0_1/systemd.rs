//! `systemd` (0.1): the calling resource's own units on the system or session manager,
//! for plugins granted `systemd`; the work is [`crate::sys::systemd::SystemdHost`]'s.

use wasmtime::component::Linker;

use super::wit::systemd as wsd;
use super::wit::{Data, host};
use crate::plugin::grants::Capability;
use crate::plugin::store::{CallPhase, HostState};
use crate::sys::systemd::{ErrorCode, Job, SystemdError, check_unit};

pub(super) fn add_to_linker(linker: &mut Linker<HostState>) -> wasmtime::Result<()> {
    wsd::add_to_linker::<HostState, Data>(linker, host)
}

fn sd_err(e: SystemdError) -> wsd::Error {
    use ErrorCode as C;
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
        let fp = match $self.granted(Capability::Systemd) {
            Ok(fp) => fp,
            Err(e) => {
                return Ok(Err(wsd::Error {
                    code: wsd::ErrorCode::NotAllowed,
                    message: e.to_string(),
                }));
            }
        };
        if let Some(unit) = $unit {
            if let Err(e) = check_unit(&fp, unit, $session) {
                return Ok(Err(sd_err(e)));
            }
        } else if !fp.units.iter().any(|u| u.session == $session) {
            // daemon-reload: any declared unit on that manager will do.
            return Ok(Err(sd_err(check_unit(&fp, "(any)", $session).unwrap_err())));
        }
        let $host = $self.sys().systemd.clone();
        Ok($body.await.map_err(sd_err))
    }};
}

/// `sd_call!` for what changes a unit or its manager: refused in `describe`, which may
/// only read.
macro_rules! sd_change {
    ($self:ident, $unit:expr, $session:expr, |$host:ident| $body:expr) => {{
        if $self.call == CallPhase::Describe {
            return Ok(Err(wsd::Error {
                code: wsd::ErrorCode::NotAllowed,
                message: "describe may only read: no unit jobs, enable, disable or daemon-reload"
                    .to_string(),
            }));
        }
        sd_call!($self, $unit, $session, |$host| $body)
    }};
}

impl HostState {
    /// Run a job on `unit`; `done` names it for [`HostState::landed`].
    async fn job(&mut self, unit: String, session: bool, job: Job, done: &str) -> SdResult<()> {
        let result = sd_change!(self, Some(&unit), session, |h| h.job(&unit, session, job));
        self.landed(&result, || format!("{done} {unit}"));
        result
    }
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
        self.job(unit, session, Job::Start, "started").await
    }
    async fn stop(&mut self, unit: String, session: bool) -> SdResult<()> {
        self.job(unit, session, Job::Stop, "stopped").await
    }
    async fn restart(&mut self, unit: String, session: bool) -> SdResult<()> {
        self.job(unit, session, Job::Restart, "restarted").await
    }
    async fn reload_or_restart(&mut self, unit: String, session: bool) -> SdResult<()> {
        self.job(unit, session, Job::ReloadOrRestart, "reloaded or restarted")
            .await
    }
    async fn enable(&mut self, unit: String, session: bool) -> SdResult<()> {
        let done = sd_change!(self, Some(&unit), session, |h| h
            .set_enabled(&unit, session, true));
        self.landed(&done, || format!("enabled {unit}"));
        done
    }
    async fn disable(&mut self, unit: String, session: bool) -> SdResult<()> {
        let done = sd_change!(self, Some(&unit), session, |h| h
            .set_enabled(&unit, session, false));
        self.landed(&done, || format!("disabled {unit}"));
        done
    }
    async fn daemon_reload(&mut self, session: bool) -> SdResult<()> {
        sd_change!(self, None::<&String>, session, |h| h.daemon_reload(session))
    }
}
