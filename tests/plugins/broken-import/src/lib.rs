//! A resource plugin that imports `test:nope/nope`, an interface no homeostat provides.
//! It carries a valid manifest (kind `nope`) and exports the real `plugin` interface, so
//! the only thing wrong with it is the import: loading it must fail with an error naming
//! that import, and nothing else may suffer. Built with wit-bindgen directly (the SDK only
//! offers the host's own world). `cargo xtask build-plugins` puts it in
//! `target/test-plugins/broken/`, apart from the plugins the other tests load.

mod bindings {
    wit_bindgen::generate!({
        inline: "
            package test:nope;
            interface nope {
                poke: func() -> u32;
            }
            world broken {
                import nope;
                export homeostat:%resource/plugin@0.1.0;
            }
        ",
        path: "../../../wit/v0.1",
        world: "test:nope/broken",
        generate_all,
    });
}

use bindings::exports::homeostat::resource::plugin::Guest;
use bindings::homeostat::resource::types::{
    CheckResult, Error, Footprint, ResourceId, ResourceInfo,
};

struct Nope;

impl Guest for Nope {
    fn validate(_: ResourceId, _: String) -> Result<ResourceInfo, Error> {
        // Calling the import keeps it in the component.
        let _ = bindings::test::nope::nope::poke();
        Ok(ResourceInfo {
            footprint: Footprint {
                paths: Vec::new(),
                commands: Vec::new(),
                units: Vec::new(),
                sockets: Vec::new(),
            },
            watch: Vec::new(),
            depends: Vec::new(),
        })
    }
    fn check_apply(_: ResourceId, _: String, _: bool, _: bool) -> Result<CheckResult, Error> {
        Ok(CheckResult {
            ok: true,
            changes: Vec::new(),
            sends: Vec::new(),
        })
    }
    fn cleanup(_: ResourceId, _: String) -> Result<(), Error> {
        Ok(())
    }
    fn serve(_: ResourceId, _: String) -> Result<(), Error> {
        Ok(())
    }
}

bindings::export!(Nope with_types_in bindings);

const MANIFEST: &[u8] = b"api = \"0.1.0\"\nname = \"broken-import\"\nversion = \"0.1.0\"\ncapabilities = []\n[kinds.nope]\nschema = '{\"type\": \"object\"}'\n";

#[unsafe(link_section = "homeostat:manifest")]
#[used]
static SECTION: [u8; MANIFEST.len()] = {
    let mut out = [0u8; MANIFEST.len()];
    let mut i = 0;
    while i < MANIFEST.len() {
        out[i] = MANIFEST[i];
        i += 1;
    }
    out
};
