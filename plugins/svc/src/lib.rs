//! The bundled `svc` resource: a systemd unit running or stopped, enabled or disabled, on
//! the system manager or the user's session manager.
//!
//! It owns the meaning of the `svc` params (`schema/svc.json`, `docs/resources/svc.md`);
//! every system access goes through the host's `systemd` interface (D-Bus), confined to the
//! one unit `validate` declared. The host watches the unit through D-Bus signals and
//! resolves the unit file locations for the autoedges to `file` resources.
//!
//! Check-apply: when the unit file changed on disk since the manager loaded it
//! (`need-daemon-reload`; a `file` resource that wrote it ran just before, through the
//! autoedge), daemon-reload first; then `startup`, then `state`. A unit file that did not
//! exist before needs no reload: systemd loads a new unit file on first use. On
//! `refresh` (a notify edge, e.g. from the service's config file) a running unit is
//! reloaded or restarted.
//!
//! `homeostat resource svc NAME` describes a loaded unit from its status alone
//! ([`describe`]): the host lets `describe` read the status and refuses every change.

use serde::Deserialize;

use homeostat_sdk::{CheckApply, Error, Info, Outcome, Resource, ResourceId, Result, systemd};

/// Unit type suffixes: a name ending in one of them is taken as the full unit name.
const SUFFIXES: &[&str] = &[
    ".service",
    ".socket",
    ".timer",
    ".target",
    ".path",
    ".mount",
    ".automount",
    ".swap",
    ".slice",
    ".scope",
    ".device",
];

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Params {
    #[serde(default)]
    pub state: Option<State>,
    #[serde(default)]
    pub startup: Option<Startup>,
    #[serde(default)]
    pub session: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum State {
    Running,
    Stopped,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Startup {
    Enabled,
    Disabled,
}

/// The unit a resource called `name` manages.
/// The params of a `svc` resource declaring a loaded unit with these states: running
/// or stopped, and `startup` when its unit file can be enabled or disabled (not for a
/// `static` unit, whose startup nothing changes).
pub fn describe(active_state: &str, unit_file_state: &str, session: bool) -> serde_json::Value {
    let mut p = serde_json::Map::new();
    let running = matches!(active_state, "active" | "reloading" | "activating");
    p.insert(
        "state".into(),
        if running { "running" } else { "stopped" }.into(),
    );
    match unit_file_state {
        "enabled" | "enabled-runtime" => {
            p.insert("startup".into(), "enabled".into());
        }
        "disabled" => {
            p.insert("startup".into(), "disabled".into());
        }
        _ => {}
    }
    if session {
        p.insert("session".into(), true.into());
    }
    serde_json::Value::Object(p)
}

pub fn unit_name(name: &str) -> Result<String> {
    if name.is_empty() || name.contains('/') || name.contains(char::is_whitespace) {
        return Err(Error::new(format!(
            "`{name}` is not a valid unit name (no `/`, no spaces)"
        )));
    }
    Ok(if SUFFIXES.iter().any(|s| name.ends_with(s)) {
        name.to_string()
    } else {
        format!("{name}.service")
    })
}

/// The `svc` kind.
pub struct Svc;

impl Resource for Svc {
    /// Nothing to release: the host skips `cleanup` calls.
    const CLEANUP: bool = false;
    const KIND: &'static str = "svc";
    const SCHEMA: &'static str = include_str!("../schema/svc.json");
    type Params = Params;

    fn validate(id: &ResourceId, p: &Params) -> Result<Info> {
        let unit = unit_name(&id.name)?;
        Ok(Info::new()
            .watch_unit(&unit, p.session)
            .depends_on_unit(&unit, p.session))
    }

    fn describe(id: &ResourceId, p: &Params) -> Result<serde_json::Value> {
        let unit = unit_name(&id.name)?;
        let st = systemd::status(&unit, p.session)?;
        if st.load_state != "loaded" {
            return Err(Error::new(format!(
                "unit `{unit}` is not loaded on the {} manager (its load state is `{}`)",
                if p.session { "session" } else { "system" },
                st.load_state
            )));
        }
        Ok(describe(&st.active_state, &st.unit_file_state, p.session))
    }

    fn check_apply(id: &ResourceId, p: &Params, ctx: &CheckApply) -> Result<Outcome> {
        let unit = unit_name(&id.name)?;
        let session = p.session;
        let user = if session { "--user " } else { "" };
        let mut out = Outcome::new();
        let mut st = systemd::status(&unit, session)?;
        // A unit file written since the manager loaded it (e.g. by the `file` resource the
        // autoedge ran first). A unit file that did not exist before needs no reload:
        // systemd retries loading a `not-found` unit when its unit directories changed.
        // Reloading for `not-found` too would loop: every reload is a watch event.
        if st.need_daemon_reload {
            out.change("daemon-reload (unit file changed on disk)");
            if ctx.apply {
                systemd::daemon_reload(session)?;
                st = systemd::status(&unit, session)?;
            }
        }
        match st.load_state.as_str() {
            "loaded" => {}
            // A unit without a unit file that is to be stopped (or left as it is) and not
            // enabled: what it asks holds once it is not running (a unit file removed by
            // a `file` resource with `state: absent`, which runs after this one).
            "not-found"
                if !matches!(p.state, Some(State::Running))
                    && !matches!(p.startup, Some(Startup::Enabled)) =>
            {
                if matches!(
                    st.active_state.as_str(),
                    "active" | "reloading" | "activating" | "deactivating"
                ) && matches!(p.state, Some(State::Stopped))
                {
                    out.change(format!(
                        "stopped (was {}; its unit file is gone)",
                        st.active_state
                    ));
                    if ctx.apply {
                        systemd::stop(&unit, session)?;
                    }
                }
                return Ok(out);
            }
            "not-found" => {
                return Err(Error::new(format!(
                    "unit `{unit}` does not exist on the {} manager: no unit file found \
                     (`systemctl {user}cat {unit}`)",
                    if session { "session" } else { "system" }
                )));
            }
            other => {
                return Err(Error::new(format!(
                    "unit `{unit}` cannot be used: its load state is `{other}` (see \
                     `systemctl {user}status {unit}`)"
                )));
            }
        }
        let enabled = matches!(st.unit_file_state.as_str(), "enabled" | "enabled-runtime");
        match p.startup {
            Some(Startup::Enabled) if !enabled => {
                out.change("enabled");
                if ctx.apply {
                    systemd::enable(&unit, session)?;
                }
            }
            Some(Startup::Disabled) if enabled => {
                out.change("disabled");
                if ctx.apply {
                    systemd::disable(&unit, session)?;
                }
            }
            _ => {}
        }
        let active = matches!(
            st.active_state.as_str(),
            "active" | "reloading" | "activating"
        );
        match p.state {
            Some(State::Running) if !active => {
                out.change(format!("started (was {})", st.active_state));
                if ctx.apply {
                    systemd::start(&unit, session)?;
                }
            }
            Some(State::Stopped) if active || st.active_state == "deactivating" => {
                out.change(format!("stopped (was {})", st.active_state));
                if ctx.apply {
                    systemd::stop(&unit, session)?;
                }
            }
            Some(State::Stopped) => {}
            _ if ctx.refresh && active => {
                out.change("reloaded or restarted (refresh)");
                if ctx.apply {
                    systemd::reload_or_restart(&unit, session)?;
                }
            }
            _ => {}
        }
        Ok(out)
    }
}

homeostat_sdk::export_resource!(Svc; capabilities = ["systemd"]);

#[cfg(test)]
mod tests {
    use super::{describe, unit_name};

    #[test]
    fn describes_a_unit_by_its_states() {
        assert_eq!(
            describe("active", "enabled", false),
            serde_json::json!({"state": "running", "startup": "enabled"})
        );
        assert_eq!(
            describe("inactive", "static", true),
            serde_json::json!({"state": "stopped", "session": true})
        );
    }

    #[test]
    fn unit_is_the_name_plus_service_unless_it_has_a_suffix() {
        assert_eq!(unit_name("nginx").unwrap(), "nginx.service");
        assert_eq!(unit_name("nginx.service").unwrap(), "nginx.service");
        assert_eq!(unit_name("backup.timer").unwrap(), "backup.timer");
        assert_eq!(unit_name("my.app").unwrap(), "my.app.service");
        assert!(unit_name("a/b").is_err());
        assert!(unit_name("").is_err());
    }
}
