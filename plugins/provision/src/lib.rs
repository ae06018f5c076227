//! The bundled `provision` resource: a read-only network install server — TFTP for
//! the firmware's first steps (PXE), HTTP for kernels, images and kickstarts — with a
//! boot-once flow so a machine that finished installing boots from its disk next.
//! See `docs/resources/provision.md`.
//!
//! # Status
//!
//! Serving arrives with the host `net` interface (sockets under an allow-list) and the
//! long-running watch instance of DESIGN.md §3, neither of which exists yet. Until
//! then the resource is honest about it: `validate` checks every param and declares a
//! read footprint on `root`; `check_apply` reports the resource as in its state and
//! changes nothing. What this crate already holds is the part that does not depend on
//! sockets — the protocol core, sans-IO (no sockets, threads or clocks: bytes and the
//! time go in, bytes to send and what to do come out), so the future server loop is
//! a thin driver and everything network-facing is tested natively:
//!
//! - [`files`]: path confinement ([`files::confine`]) and the [`files::FileSource`] the
//!   servers read through (inline `files` before the tree: [`files::Layered`]).
//! - [`tftp`]: packets, per-transfer state machines, the server with `max_transfers`.
//! - [`http`]: request heads, routing, `GET`/`HEAD`, `/boot/<host>` and `/done/<host>`.
//! - [`params`]: params → [`params::Spec`], and the settings for both cores.
//!
//! Parsing of everything that comes from the network stays in this crate, inside the
//! sandbox, as DESIGN.md §3 requires.

pub mod files;
pub mod http;
pub mod params;
pub mod tftp;

#[cfg(test)]
mod testutil;

use homeostat_sdk::{CheckApply, Info, Outcome, Resource, ResourceId, Result};

use params::{Params, Spec};

/// The `provision` kind.
pub struct Provision;

impl Resource for Provision {
    const KIND: &'static str = "provision";
    const SCHEMA: &'static str = include_str!("../schema/provision.json");
    type Params = Params;

    /// Checks the params; declares `root` as a read-only tree (what the servers will
    /// read through the host `fs` interface) and a dependency on it, so a `file`
    /// resource creating the directory runs first.
    fn validate(_: &ResourceId, p: &Params) -> Result<Info> {
        let spec = Spec::from_params(p)?;
        Ok(Info::new()
            .read_tree(&spec.root)
            .depends_on_path(&spec.root))
    }

    /// Nothing to change yet: serving needs the host `net` interface (see the crate
    /// docs). The params are checked again so a bad graph never reports success.
    fn check_apply(_: &ResourceId, p: &Params, _: &CheckApply) -> Result<Outcome> {
        Spec::from_params(p)?;
        Ok(Outcome::new())
    }
}

// Only in the component: the wit-bindgen export symbols (`homeostat:resource/...`) are
// not valid in a native shared library's version script, and the native builds (the
// rlib and the cdylib `cargo test` also links) exist for the tests.
#[cfg(target_arch = "wasm32")]
homeostat_sdk::export_resource!(Provision; capabilities = []);

#[cfg(test)]
mod tests {
    use super::*;

    fn id() -> ResourceId {
        ResourceId {
            kind: "provision".into(),
            name: "pxe".into(),
        }
    }

    fn params(json: &str) -> Params {
        serde_json::from_str(json).unwrap()
    }

    #[test]
    fn validate_checks_params_and_check_apply_changes_nothing() {
        let good = params(r#"{"root": "/srv/install", "files": {"ks.cfg": "text\n"}}"#);
        assert!(Provision::validate(&id(), &good).is_ok());
        let ctx = CheckApply {
            apply: true,
            refresh: false,
        };
        let out = Provision::check_apply(&id(), &good, &ctx).unwrap();
        assert!(!out.changed());
        let bad = params(r#"{"root": "relative"}"#);
        assert_eq!(
            Provision::validate(&id(), &bad)
                .unwrap_err()
                .field
                .as_deref(),
            Some("root")
        );
        assert!(Provision::check_apply(&id(), &bad, &ctx).is_err());
    }

    /// The schema documents exactly the fields `Params` accepts.
    #[test]
    fn schema_matches_params() {
        let schema: serde_json::Value = serde_json::from_str(Provision::SCHEMA).unwrap();
        let props = schema["properties"].as_object().unwrap();
        let mut all = serde_json::Map::new();
        for (k, v) in props {
            let example = match k.as_str() {
                "root" => serde_json::json!("/srv/install"),
                _ => v["examples"][0].clone(),
            };
            assert!(!example.is_null(), "{k} has no example");
            all.insert(k.clone(), example);
        }
        let p: Params = serde_json::from_value(serde_json::Value::Object(all)).unwrap();
        assert!(Spec::from_params(&p).is_ok());
        assert_eq!(schema["required"], serde_json::json!(["root"]));
    }
}
