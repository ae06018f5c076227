//! The bundled `noop` and `timer` kinds, as mgmt has them.
//!
//! - `noop` does nothing and is always in its state; a refresh is logged. For trying
//!   graphs out (edges, notifications, metaparams) without touching the system.
//! - `timer` pokes what depends on it every `interval` seconds: each tick is a change, so
//!   its dependents run (and those behind a `notify` edge are refreshed). A refresh it
//!   receives restarts the interval. It keeps the time of its last tick in the host's
//!   plugin state, so a tick due while homeostat was stopped comes at the next start.
//!
//! Neither touches anything: no capability but `log` and `state`.

use std::time::{SystemTime, UNIX_EPOCH};

use homeostat_sdk::{CheckApply, Error, Info, Outcome, Resource, ResourceId, Result, log, state};

/// The params of a `noop` resource.
#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NoopParams {
    #[serde(default)]
    pub comment: Option<String>,
}

/// The `noop` kind.
pub struct Noop;

impl Resource for Noop {
    const KIND: &'static str = "noop";
    const SCHEMA: &'static str = include_str!("../schema/noop.json");
    const CLEANUP: bool = false;
    type Params = NoopParams;

    fn validate(_: &ResourceId, _: &NoopParams) -> Result<Info> {
        Ok(Info::new())
    }

    fn check_apply(_: &ResourceId, _: &NoopParams, ctx: &CheckApply) -> Result<Outcome> {
        if ctx.refresh {
            log::info("received a notification");
        }
        Ok(Outcome::new())
    }
}

/// The params of a `timer` resource.
#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TimerParams {
    /// Seconds between ticks.
    pub interval: u32,
}

/// Milliseconds since the Unix epoch, now.
fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

/// What a timer does at `now` (ms) after its last tick at `last`: `None` when no tick is
/// due, else the change to report. A tick is due once 95% of the interval has passed
/// (the host's interval watch fires on time, give or take scheduling).
pub fn due(last: Option<u64>, now: u64, interval_s: u32, refresh: bool) -> Option<&'static str> {
    let interval_ms = u64::from(interval_s) * 1000;
    match last {
        _ if refresh => Some("interval restarted by a notification"),
        None => None,
        Some(last) if now.saturating_sub(last) * 20 >= interval_ms * 19 => Some("tick"),
        Some(_) => None,
    }
}

/// The `timer` kind.
pub struct Timer;

impl Resource for Timer {
    const KIND: &'static str = "timer";
    const SCHEMA: &'static str = include_str!("../schema/timer.json");
    const CLEANUP: bool = false;
    type Params = TimerParams;

    fn validate(_: &ResourceId, p: &TimerParams) -> Result<Info> {
        if p.interval == 0 {
            return Err(Error::param("interval", "an interval is at least 1 second"));
        }
        let ms = p.interval.checked_mul(1000).ok_or_else(|| {
            Error::param(
                "interval",
                "an interval is at most 4294967 seconds (49 days)",
            )
        })?;
        Ok(Info::new().watch_interval(ms))
    }

    fn check_apply(_: &ResourceId, p: &TimerParams, ctx: &CheckApply) -> Result<Outcome> {
        let now = now_ms();
        let last: Option<u64> = state::load();
        let mut out = Outcome::new();
        match due(last, now, p.interval, ctx.refresh) {
            Some(what) => {
                out.change(what);
                if ctx.apply {
                    state::save(&now);
                }
            }
            // The first check of a new timer starts its interval.
            None if last.is_none() && ctx.apply => state::save(&now),
            None => {}
        }
        Ok(out)
    }
}

homeostat_sdk::export_resource!(Noop, Timer; capabilities = []);

#[cfg(test)]
mod tests {
    use super::due;

    #[test]
    fn a_tick_is_due_once_the_interval_has_passed() {
        assert_eq!(
            due(None, 10_000, 3, false),
            None,
            "a new timer starts its interval"
        );
        assert_eq!(due(Some(10_000), 11_000, 3, false), None);
        assert_eq!(
            due(Some(10_000), 12_900, 3, false),
            Some("tick"),
            "95% is on time"
        );
        assert_eq!(due(Some(10_000), 99_000, 3, false), Some("tick"));
        assert!(
            due(Some(10_000), 10_001, 3, true).is_some(),
            "a refresh restarts it"
        );
    }
}
