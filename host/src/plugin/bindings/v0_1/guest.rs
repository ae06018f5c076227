//! Calling a 0.1 plugin's exports (`homeostat:resource/plugin`), in the engine's types.

use wasmtime::Store;
use wasmtime::component::{Component, Linker};

use super::wit::{ResourcePlugin, ResourcePluginPre, wt};
use crate::plugin::store::HostState;
use crate::plugin::types::{CheckOutcome, PluginError, ResourceInfo, ResourceRef};

/// A 0.1 component, linked.
pub(crate) struct Pre(ResourcePluginPre<HostState>);

/// A 0.1 instance's exports.
pub(crate) struct Guest(ResourcePlugin);

impl Pre {
    /// Link `component`; fails when it imports something the linker lacks.
    pub(crate) fn new(linker: &Linker<HostState>, component: &Component) -> wasmtime::Result<Pre> {
        linker
            .instantiate_pre(component)
            .and_then(ResourcePluginPre::new)
            .map(Pre)
    }

    /// A new instance in `store`.
    pub(crate) async fn instantiate(
        &self,
        store: &mut Store<HostState>,
    ) -> wasmtime::Result<Guest> {
        self.0.instantiate_async(store).await.map(Guest)
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
