//! The bundled `provision` resource: a read-only network install server — TFTP for
//! the firmware's first steps (PXE), HTTP for kernels, images and kickstarts — with a
//! boot-once flow so a machine that finished installing boots from its disk next.
//! See `docs/resources/provision.md`.
//!
//! The servers run in the resource's long-running watch (DESIGN.md §3): `validate`
//! declares a read-only tree on `root`, the two addresses as its socket footprint and a
//! `serve` watch; the host then runs [`serve::run`] in an instance of its own, where
//! it waits on the host `net` interface and never blocks a thread. `check_apply`
//! checks that `root` is a directory and publishes the hosts that reported done
//! (`done`), which [`serve::run`] stores through the host `state` interface.
//!
//! Everything that parses network input is here, inside the sandbox, and sans-IO (bytes
//! and the time in, bytes to send and what to do out), so it is tested natively:
//!
//! - [`files`]: path confinement ([`files::confine`]) and the [`files::FileSource`] the
//!   servers read through (inline `files` before the tree: [`files::Layered`]).
//! - [`tftp`]: packets, per-transfer state machines, the server with `max_transfers`.
//! - [`http`]: request heads, routing, `GET`/`HEAD`, `/boot/<host>` and `/done/<host>`.
//! - [`params`]: params → [`params::Spec`], and the settings for both cores.
//! - [`serve`]: the loop between the host's sockets and the cores.

pub mod files;
pub mod http;
pub mod params;
pub mod serve;
pub mod tftp;

#[cfg(test)]
mod testutil;

use homeostat_sdk::{CheckApply, Error, Info, Outcome, Resource, ResourceId, Result, fs, state};

use http::DoneSet;

use params::{Params, Spec};

/// The `provision` kind.
pub struct Provision;

impl Resource for Provision {
    const KIND: &'static str = "provision";
    const SCHEMA: &'static str = include_str!("../schema/provision.json");
    type Params = Params;

    const SENDS: &'static [(&'static str, &'static str)] = &[("done", "array")];
    // The server stops when the host drops its instance; nothing else to release.
    const CLEANUP: bool = false;

    /// Checks the params; declares `root` as a read-only tree (what the servers read
    /// through the host `fs` interface) and a dependency on it, so a `file` resource
    /// creating the directory runs first; the two addresses; and the `serve` watch.
    fn validate(_: &ResourceId, p: &Params) -> Result<Info> {
        let spec = Spec::from_params(p)?;
        let (tftp_at, http_at) = serve::addresses(&spec);
        Ok(Info::new()
            .read_tree(&spec.root)
            .depends_on_path(&spec.root)
            .udp(&tftp_at)
            .tcp(&http_at)
            .serve())
    }

    /// The servers themselves are the host's business (it starts the `serve` watch
    /// after this returns); here: `root` must be a directory. Sends `done`, the hosts
    /// that reported a finished install, sorted.
    fn check_apply(_: &ResourceId, p: &Params, _: &CheckApply) -> Result<Outcome> {
        let spec = Spec::from_params(p)?;
        match fs::stat(&spec.root)? {
            Some(s) if s.file_type == fs::FileType::Directory => {}
            Some(_) => {
                return Err(Error::param(
                    "root",
                    format!("`{}` is not a directory", spec.root),
                ));
            }
            None => {
                return Err(Error::param(
                    "root",
                    format!(
                        "`{}` does not exist (create it, e.g. with a `file` resource ending in `/`)",
                        spec.root
                    ),
                ));
            }
        }
        let done: DoneSet = state::load().unwrap_or_default();
        let mut out = Outcome::new();
        out.send("done", done.hosts().collect::<Vec<_>>());
        Ok(out)
    }

    /// TFTP and HTTP until the resource leaves the graph (see [`serve`]).
    fn serve(_: &ResourceId, p: &Params) -> Result<()> {
        serve::run(p)
    }
}

// Only in the component: the wit-bindgen export symbols (`homeostat:resource/...`) are
// not valid in a native shared library's version script, and the native builds (the
// rlib and the cdylib `cargo test` also links) exist for the tests.
#[cfg(target_arch = "wasm32")]
homeostat_sdk::export_resource!(Provision; capabilities = ["fs", "net"]);

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
    fn validate_checks_params_and_binds_the_addresses() {
        let good = params(
            r#"{"root": "/srv/install", "files": {"ks.cfg": "text\n"}, "tftp_address": "127.0.0.1:6969"}"#,
        );
        assert!(Provision::validate(&id(), &good).is_ok());
        let spec = Spec::from_params(&good).unwrap();
        assert_eq!(
            serve::addresses(&spec),
            ("127.0.0.1:6969".to_string(), "0.0.0.0:4280".to_string())
        );
        let bad = params(r#"{"root": "relative"}"#);
        assert_eq!(
            Provision::validate(&id(), &bad)
                .unwrap_err()
                .field
                .as_deref(),
            Some("root")
        );
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
