//! `homeostat:resource@0.3.0`: what 0.3 adds to 0.2, the optional `describe` and `group`
//! exports. A 0.3 plugin exports 0.1's `plugin` as every plugin does, so it runs through
//! `v0_1`'s `Pre` and `Guest`; [`Optional`] finds which of the two it also exports, and
//! [`Describer`] and [`Grouper`] call them, from the same instance. 0.3 adds no host
//! interface.

use wasmtime::Store;
use wasmtime::component::{Instance, InstancePre};

use crate::plugin::store::HostState;
use crate::plugin::types::{CheckOutcome, MAX_ERROR_MESSAGE, PluginError};
use crate::sys::text;

mod describing {
    wasmtime::component::bindgen!({
        path: "../wit/v0.3",
        world: "describer",
        exports: { default: async },
    });
}

mod grouping {
    wasmtime::component::bindgen!({
        path: "../wit/v0.3",
        world: "grouper",
        exports: { default: async },
    });
}

use grouping::exports::homeostat::resource::group as wgroup;

/// The WIT package versions these bindings run: `0.3.x`.
pub(super) const SERIES: &str = "0.3";

/// The host interfaces 0.3 adds: none.
pub(super) const INTERFACES: &[&str] = &[];

/// The longest description taken from a plugin, in bytes.
const MAX_DESCRIPTION: usize = 1 << 20;

/// An instance's `describe` export.
pub(crate) struct Describer(describing::Describer);

impl Describer {
    /// `describe`: the params (JSON text) that declare the thing as it is.
    pub(crate) async fn describe(
        &self,
        store: &mut Store<HostState>,
        kind: &str,
        name: &str,
        params: &str,
    ) -> wasmtime::Result<Result<String, PluginError>> {
        let r = self
            .0
            .homeostat_resource_describe()
            .call_describe(store, kind, name, params)
            .await?;
        Ok(match r {
            Ok(json) if json.len() > MAX_DESCRIPTION => Err(PluginError {
                message: format!(
                    "its description is {} bytes, more than the {MAX_DESCRIPTION} allowed",
                    json.len()
                ),
                field: None,
            }),
            Ok(json) => Ok(json),
            Err(message) => Err(PluginError {
                message: text::one_line(message, MAX_ERROR_MESSAGE),
                field: None,
            }),
        })
    }
}

/// An instance's `group` export.
pub(crate) struct Grouper(grouping::Grouper);

/// One resource of a group call: its name, params (JSON text) and whether it is
/// refreshed.
pub(crate) struct Member<'a> {
    pub(crate) name: &'a str,
    pub(crate) params: &'a str,
    pub(crate) refresh: bool,
}

impl Grouper {
    /// `check-apply-group`: one result per member, in order. An answer with another
    /// number of results fails every member.
    pub(crate) async fn check_apply_group(
        &self,
        store: &mut Store<HostState>,
        kind: &str,
        members: &[Member<'_>],
        apply: bool,
    ) -> wasmtime::Result<Vec<Result<CheckOutcome, PluginError>>> {
        let wit: Vec<wgroup::Member> = members
            .iter()
            .map(|m| wgroup::Member {
                name: m.name.to_string(),
                params: m.params.to_string(),
                refresh: m.refresh,
            })
            .collect();
        let answers = self
            .0
            .homeostat_resource_group()
            .call_check_apply_group(store, kind, &wit, apply)
            .await?;
        if answers.len() != members.len() {
            let message = format!(
                "its group call answered {} results for {} resources",
                answers.len(),
                members.len()
            );
            return Ok(members
                .iter()
                .map(|_| {
                    Err(PluginError {
                        message: message.clone(),
                        field: None,
                    })
                })
                .collect());
        }
        Ok(answers
            .into_iter()
            .map(|r| match r {
                Ok(o) => Ok(CheckOutcome::from_plugin(
                    o.ok,
                    o.changes.into_iter().map(|c| (c.summary, c.diff)).collect(),
                    o.sends,
                )),
                Err(message) => Err(PluginError {
                    message: text::one_line(message, MAX_ERROR_MESSAGE),
                    field: None,
                }),
            })
            .collect())
    }
}

/// Where a component's optional 0.3 exports are (each `None` when it lacks it).
pub(crate) struct Optional {
    describe: Option<describing::DescriberIndices>,
    group: Option<grouping::GrouperIndices>,
}

/// An instance's optional 0.3 exports.
pub(crate) struct Loaded {
    pub(crate) describer: Option<Describer>,
    pub(crate) grouper: Option<Grouper>,
}

impl Optional {
    pub(crate) fn new(pre: &InstancePre<HostState>) -> Optional {
        Optional {
            describe: describing::DescriberIndices::new(pre).ok(),
            group: grouping::GrouperIndices::new(pre).ok(),
        }
    }

    /// The optional exports of `instance`, an instance of the component.
    pub(crate) fn load(
        &self,
        store: &mut Store<HostState>,
        instance: &Instance,
    ) -> wasmtime::Result<Loaded> {
        Ok(Loaded {
            describer: (self.describe.as_ref())
                .map(|d| d.load(&mut *store, instance).map(Describer))
                .transpose()?,
            grouper: (self.group.as_ref())
                .map(|g| g.load(&mut *store, instance).map(Grouper))
                .transpose()?,
        })
    }
}
