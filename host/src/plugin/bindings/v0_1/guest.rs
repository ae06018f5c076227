//! Calling a 0.1 plugin's exports (`homeostat:resource/plugin`), in the engine's types.

use wasmtime::Store;
use wasmtime::component::{Component, Instance, InstancePre, Linker};

use super::wit::{ResourcePlugin, ResourcePluginIndices, wt};
use crate::plugin::store::HostState;
use crate::plugin::types::{CheckOutcome, PluginError, ResourceInfo, ResourceRef};

/// A 0.1 component, linked, and where its `plugin` exports are.
pub(crate) struct Pre {
    pre: InstancePre<HostState>,
    indices: ResourcePluginIndices,
}

/// A 0.1 instance's exports.
pub(crate) struct Guest(ResourcePlugin);

impl Pre {
    /// Link `component`; fails when it imports something the linker lacks.
    pub(crate) fn new(linker: &Linker<HostState>, component: &Component) -> wasmtime::Result<Pre> {
        let pre = linker.instantiate_pre(component)?;
        let indices = ResourcePluginIndices::new(&pre)?;
        Ok(Pre { pre, indices })
    }

    /// The linked component, to instantiate (the exports of later versions are loaded
    /// from the same instance).
    pub(crate) fn instance_pre(&self) -> &InstancePre<HostState> {
        &self.pre
    }

    /// The `plugin` exports of `instance`.
    pub(crate) fn load(
        &self,
        store: &mut Store<HostState>,
        instance: &Instance,
    ) -> wasmtime::Result<Guest> {
        self.indices.load(store, instance).map(Guest)
    }
}

impl Guest {
    pub(crate) async fn validate(
        &self,
        store: &mut Store<HostState>,
        id: &ResourceRef,
        params: &str,
    ) -> wasmtime::Result<Result<ResourceInfo, PluginError>> {
        let id = wt::ResourceId::from(id);
        let r = self
            .0
            .homeostat_resource_plugin()
            .call_validate(store, &id, params)
            .await?;
        Ok(r.map_err(PluginError::from)
            .and_then(ResourceInfo::try_from))
    }

    pub(crate) async fn check_apply(
        &self,
        store: &mut Store<HostState>,
        id: &ResourceRef,
        params: &str,
        apply: bool,
        refresh: bool,
    ) -> wasmtime::Result<Result<CheckOutcome, PluginError>> {
        let id = wt::ResourceId::from(id);
        let r = self
            .0
            .homeostat_resource_plugin()
            .call_check_apply(store, &id, params, apply, refresh)
            .await?;
        Ok(r.map(CheckOutcome::from).map_err(PluginError::from))
    }

    pub(crate) async fn cleanup(
        &self,
        store: &mut Store<HostState>,
        id: &ResourceRef,
        params: &str,
    ) -> wasmtime::Result<Result<(), PluginError>> {
        let id = wt::ResourceId::from(id);
        let r = self
            .0
            .homeostat_resource_plugin()
            .call_cleanup(store, &id, params)
            .await?;
        Ok(r.map_err(PluginError::from))
    }

    pub(crate) async fn serve(
        &self,
        store: &mut Store<HostState>,
        id: &ResourceRef,
        params: &str,
    ) -> wasmtime::Result<Result<(), PluginError>> {
        let id = wt::ResourceId::from(id);
        let r = self
            .0
            .homeostat_resource_plugin()
            .call_serve(store, &id, params)
            .await?;
        Ok(r.map_err(PluginError::from))
    }
}
