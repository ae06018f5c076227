//! `homeostat:resource@0.3.0`: what 0.3 adds to 0.2, the optional `describe` export. A
//! 0.3 plugin exports 0.1's `plugin` as every plugin does, so it runs through `v0_1`'s
//! `Pre` and `Guest`; when it also exports `describe`, [`Indices`] finds it and
//! [`Describer`] calls it, from the same instance. 0.3 adds no host interface.

use wasmtime::Store;
use wasmtime::component::{Instance, InstancePre};

use crate::plugin::store::HostState;
use crate::plugin::types::{MAX_ERROR_MESSAGE, PluginError};
use crate::sys::text;

mod generated {
    wasmtime::component::bindgen!({
        path: "../wit/v0.3",
        world: "describer",
        exports: { default: async },
    });
}

/// The WIT package versions these bindings run: `0.3.x`.
pub(super) const SERIES: &str = "0.3";

/// The host interfaces 0.3 adds: none.
pub(super) const INTERFACES: &[&str] = &[];

/// The longest description taken from a plugin, in bytes.
pub(crate) const MAX_DESCRIPTION: usize = 1 << 20;

/// Where a component's `describe` export is.
pub(crate) struct Indices(generated::DescriberIndices);

/// An instance's `describe` export.
pub(crate) struct Describer(generated::Describer);

impl Indices {
    /// `None` when the component does not export `describe` of 0.3.
    pub(crate) fn new(pre: &InstancePre<HostState>) -> Option<Indices> {
        generated::DescriberIndices::new(pre).ok().map(Indices)
    }

    pub(crate) fn load(
        &self,
        store: &mut Store<HostState>,
        instance: &Instance,
    ) -> wasmtime::Result<Describer> {
        self.0.load(store, instance).map(Describer)
    }
}

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
