//! `worldly`: a resource that makes the `world` call its `call` param names, in the
//! phase it names, and fails with the host's answer, so tests can read it:
//! `put-in-validate`, `get-in-validate`, `watch-in-check`, `put` (from check-apply:
//! refused only in noop), `key` (an invalid key, `../x`).

use homeostat_sdk::{CheckApply, Error, Info, Outcome, Resource, ResourceId, Result, world};
use serde::Deserialize;

#[derive(Deserialize)]
pub struct Params {
    call: String,
}

pub struct Worldly;

fn refused(what: &str, r: std::result::Result<impl std::fmt::Debug, String>) -> Result<()> {
    match r {
        Ok(v) => Err(Error::new(format!("{what}: allowed ({v:?})"))),
        Err(e) => Err(Error::new(format!("{what}: refused: {e}"))),
    }
}

impl Resource for Worldly {
    const KIND: &'static str = "worldly";
    const SCHEMA: &'static str = r#"{"type":"object","properties":{"call":{"type":"string"}},
        "required":["call"],"additionalProperties":false}"#;
    type Params = Params;

    fn validate(_: &ResourceId, p: &Params) -> Result<Info> {
        match p.call.as_str() {
            "put-in-validate" => refused("put in validate", world::put("k", "v"))?,
            "get-in-validate" => refused("get in validate", world::get("k"))?,
            "key" => refused("watch of ../x", world::watch("../x"))?,
            _ => {}
        }
        Ok(Info::new())
    }

    fn check_apply(_: &ResourceId, p: &Params, ctx: &CheckApply) -> Result<Outcome> {
        match p.call.as_str() {
            "watch-in-check" => refused("watch in check-apply", world::watch("k"))?,
            "put" => {
                world::put("k", "v")
                    .map_err(|e| Error::new(format!("put (apply: {}): refused: {e}", ctx.apply)))?;
                let mut out = Outcome::new();
                out.change("put k");
                return Ok(out);
            }
            _ => {}
        }
        Ok(Outcome::new())
    }
}

homeostat_sdk::export_resource!(Worldly; capabilities = ["world"]);
