//! The host side of every `homeostat:resource` WIT version this host runs, one folder per
//! version (`v0_1/` for the frozen `0.1.0`). Each version has the one `bindgen!` of its
//! WIT, its own glue file per host interface (the `Host` impl, its grant check and its
//! error mapping) and its own conversions to the engine's types
//! ([`crate::plugin::types`]), so its generated types never leave its folder.
//!
//! Everything above talks to a plugin through `Pre` and `Guest`, which dispatch to the
//! version the component was built against (found by what it exports, see `Pre::new`).
//! `v0_2/` is what `0.2.0` adds (the `world` interface): a 0.2 plugin imports 0.1's
//! interfaces and exports 0.1's `plugin`, so it is linked by both folders and called
//! through `v0_1`'s `Pre`; 0.1 plugins keep running unchanged next to it. `v0_3/` is the
//! optional `describe` export 0.3 adds, loaded from the same instance when a component
//! has it. A version that changes the `plugin` export would add a `Pre` and `Guest`
//! variant here.

mod v0_1;
mod v0_2;
mod v0_3;

use wasmtime::Store;
use wasmtime::component::{Component, Linker};

use crate::plugin::store::HostState;
use crate::plugin::types::{CheckOutcome, PluginError, ResourceInfo, ResourceRef};

pub(crate) use v0_3::Member;

/// Every version series this host runs (`0.1`: any `0.1.x`, which differ only in
/// additions a `0.1.0` host ignores) and the host interfaces it links.
pub const VERSIONS: &[(&str, &[&str])] = &[
    (v0_1::SERIES, v0_1::INTERFACES),
    (v0_2::SERIES, v0_2::INTERFACES),
    (v0_3::SERIES, v0_3::INTERFACES),
];

/// Whether the host links the `homeostat:resource` interface `name`
/// (`homeostat:resource/fs@0.1.0`).
pub fn links(name: &str) -> bool {
    let Some(rest) = name.strip_prefix("homeostat:resource/") else {
        return false;
    };
    let (iface, version) = rest.split_once('@').unwrap_or((rest, ""));
    VERSIONS
        .iter()
        .any(|(series, ifaces)| in_series(version, series) && ifaces.contains(&iface))
}

/// Whether `version` (`0.1.3`) belongs to `series` (`0.1`).
fn in_series(version: &str, series: &str) -> bool {
    version
        .strip_prefix(series)
        .is_some_and(|rest| rest.starts_with('.'))
}

/// Whether the export `name` is the `plugin` interface of a version in `series`.
fn exports_plugin(name: &str, series: &str) -> bool {
    name.strip_prefix("homeostat:resource/plugin@")
        .is_some_and(|version| in_series(version, series))
}

/// Link every host interface of every version.
pub(crate) fn add_to_linker(linker: &mut Linker<HostState>) -> wasmtime::Result<()> {
    v0_1::add_to_linker(linker)?;
    v0_2::add_to_linker(linker)
}

/// A component linked and ready to instantiate, in its WIT version, with its optional
/// `describe` export (0.3).
pub(crate) enum Pre {
    V0_1(v0_1::Pre, v0_3::Optional),
}

/// An instance's exports, in its WIT version.
pub(crate) enum Guest {
    V0_1(v0_1::Guest, v0_3::Loaded),
}

impl Pre {
    /// Link `component` in the version whose `plugin` interface it exports.
    pub(crate) fn new(linker: &Linker<HostState>, component: &Component) -> wasmtime::Result<Pre> {
        let engine = linker.engine();
        let exports: Vec<String> = component
            .component_type()
            .exports(engine)
            .map(|(name, _)| name.to_owned())
            .collect();
        if exports.iter().any(|e| exports_plugin(e, v0_1::SERIES)) {
            let pre = v0_1::Pre::new(linker, component)?;
            let optional = v0_3::Optional::new(pre.instance_pre());
            return Ok(Pre::V0_1(pre, optional));
        }
        let supported: Vec<String> = VERSIONS
            .iter()
            .map(|(series, _)| format!("homeostat:resource/plugin@{series}.x"))
            .collect();
        Err(wasmtime::Error::msg(format!(
            "it exports none of `{}` (it exports `{}`)",
            supported.join("`, `"),
            exports.join("`, `")
        )))
    }

    /// A new instance in `store`.
    pub(crate) async fn instantiate(
        &self,
        store: &mut Store<HostState>,
    ) -> wasmtime::Result<Guest> {
        match self {
            Pre::V0_1(pre, optional) => {
                let instance = pre.instance_pre().instantiate_async(&mut *store).await?;
                let guest = pre.load(store, &instance)?;
                let loaded = optional.load(store, &instance)?;
                Ok(Guest::V0_1(guest, loaded))
            }
        }
    }
}

impl Guest {
    /// `validate`: the resource's footprint, watches and dependencies.
    pub(crate) async fn validate(
        &self,
        store: &mut Store<HostState>,
        id: &ResourceRef,
        params: &str,
    ) -> wasmtime::Result<Result<ResourceInfo, PluginError>> {
        match self {
            Guest::V0_1(g, _) => g.validate(store, id, params).await,
        }
    }

    /// `check-apply`.
    pub(crate) async fn check_apply(
        &self,
        store: &mut Store<HostState>,
        id: &ResourceRef,
        params: &str,
        apply: bool,
        refresh: bool,
    ) -> wasmtime::Result<Result<CheckOutcome, PluginError>> {
        match self {
            Guest::V0_1(g, _) => g.check_apply(store, id, params, apply, refresh).await,
        }
    }

    /// `cleanup`: the resource leaves the graph.
    pub(crate) async fn cleanup(
        &self,
        store: &mut Store<HostState>,
        id: &ResourceRef,
        params: &str,
    ) -> wasmtime::Result<Result<(), PluginError>> {
        match self {
            Guest::V0_1(g, _) => g.cleanup(store, id, params).await,
        }
    }

    /// `describe` (0.3): the params that declare `kind[name]`'s thing as it is. A
    /// component without the export gets an error that says so.
    pub(crate) async fn describe(
        &self,
        store: &mut Store<HostState>,
        id: &ResourceRef,
        params: &str,
    ) -> wasmtime::Result<Result<String, PluginError>> {
        let Guest::V0_1(_, loaded) = self;
        match &loaded.describer {
            Some(d) => d.describe(store, &id.kind, &id.name, params).await,
            None => Ok(Err(PluginError {
                message: format!(
                    "its plugin cannot describe `{}`: it does not export \
                     `homeostat:resource/describe@0.3.x`",
                    id.kind
                ),
                field: None,
            })),
        }
    }

    /// `check-apply-group` (0.3): `members` of `kind` as one; one result per member. A
    /// component without the export fails every member, saying so (the host calls it
    /// only for kinds whose manifest says they group).
    pub(crate) async fn check_apply_group(
        &self,
        store: &mut Store<HostState>,
        kind: &str,
        members: &[Member<'_>],
        apply: bool,
    ) -> wasmtime::Result<Vec<Result<CheckOutcome, PluginError>>> {
        let Guest::V0_1(_, loaded) = self;
        match &loaded.grouper {
            Some(g) => g.check_apply_group(store, kind, members, apply).await,
            None => Ok(members
                .iter()
                .map(|_| {
                    Err(PluginError {
                        message: format!(
                            "its plugin says `{kind}` groups but does not export \
                             `homeostat:resource/group@0.3.x`"
                        ),
                        field: None,
                    })
                })
                .collect()),
        }
    }

    /// `serve`: the long-running watch, for as long as it runs.
    pub(crate) async fn serve(
        &self,
        store: &mut Store<HostState>,
        id: &ResourceRef,
        params: &str,
    ) -> wasmtime::Result<Result<(), PluginError>> {
        match self {
            Guest::V0_1(g, _) => g.serve(store, id, params).await,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plugin::manifest::SUPPORTED_APIS;

    #[test]
    fn interfaces_by_series() {
        assert!(links("homeostat:resource/fs@0.1.0"));
        assert!(links("homeostat:resource/state@0.1.3"));
        assert!(links("homeostat:resource/types@0.1.0"));
        assert!(!links("homeostat:resource/nope@0.1.0"));
        assert!(!links("homeostat:resource/fs@0.2.0"));
        assert!(!links("homeostat:resource/fs@0.10.0"));
        assert!(!links("wasi:io/streams@0.2.6"));
        assert!(exports_plugin("homeostat:resource/plugin@0.1.0", "0.1"));
        assert!(!exports_plugin("homeostat:resource/plugin@0.11.0", "0.1"));
    }

    /// A manifest API the host accepts has bindings to run it.
    #[test]
    fn every_supported_api_has_bindings() {
        for api in SUPPORTED_APIS {
            assert!(
                VERSIONS.iter().any(|(series, _)| in_series(api, series)),
                "no bindings for API {api}"
            );
        }
    }
}
