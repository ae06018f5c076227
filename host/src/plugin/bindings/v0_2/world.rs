//! `world` (0.2): each key holds one value per host, at `values/<key>/<host>` in the
//! World (leased: a host's values go with it). Needs the `world` capability. `watch`
//! only from `validate` (it declares a watch, like the rest of `validate`'s answer);
//! `get` and `all` only from `check-apply`; `put` and `delete` only from a check-apply
//! that applies. Keys and values are checked here: a plugin never reaches another key
//! of the World.

use wasmtime::component::{HasSelf, Linker};

use crate::plugin::grants::Capability;
use crate::plugin::store::{CallPhase, HostState};
use crate::world::{Lifetime, VALUES, World, parse_value_key, value_of};

mod generated {
    wasmtime::component::bindgen!({
        path: "../wit/v0.2",
        world: "world-access",
        imports: { default: async | trappable },
    });
}

use generated::homeostat::resource::world as wworld;

/// Longest key, in bytes.
pub(crate) const MAX_KEY: usize = 256;
/// Largest value, in bytes.
pub(crate) const MAX_VALUE: usize = 64 * 1024;

pub(super) fn add_to_linker(linker: &mut Linker<HostState>) -> wasmtime::Result<()> {
    wworld::add_to_linker::<HostState, HasSelf<HostState>>(linker, |s| s)
}

/// Why `key` is not one a plugin may use.
fn check_key(key: &str) -> Result<(), String> {
    let ok = |c: char| c.is_ascii_alphanumeric() || "-_.:@+=".contains(c);
    if key.is_empty() || key.len() > MAX_KEY {
        return Err(format!("a world key is 1 to {MAX_KEY} bytes long"));
    }
    if let Some(c) = key.chars().find(|c| !ok(*c)) {
        return Err(format!(
            "{:?} cannot be part of a world key (ASCII letters, digits and `-_.:@+=`)",
            c
        ));
    }
    Ok(())
}

impl HostState {
    /// The World, if the plugin may use it in the current call (`phase` says which).
    fn world_for(
        &self,
        key: &str,
        phase: fn(CallPhase) -> bool,
        what: &str,
    ) -> Result<World, String> {
        self.granted(Capability::World).map_err(|e| e.to_string())?;
        check_key(key)?;
        if !phase(self.call) {
            let here = match self.call {
                CallPhase::Validate => "from validate",
                CallPhase::CheckApply { apply: false } => {
                    "from a check-apply that does not apply (noop)"
                }
                CallPhase::CheckApply { apply: true } => "from check-apply",
                CallPhase::Cleanup => "from cleanup",
                CallPhase::Serve => "from serve",
                CallPhase::Describe => "from describe",
                CallPhase::Idle => "between calls",
            };
            return Err(format!("world.{what} is not allowed {here}"));
        }
        self.sys()
            .world
            .get()
            .cloned()
            .ok_or_else(|| "no World is open (the host is validating only)".to_owned())
    }
}

fn in_check(p: CallPhase) -> bool {
    matches!(p, CallPhase::CheckApply { .. })
}

fn applying(p: CallPhase) -> bool {
    matches!(p, CallPhase::CheckApply { apply: true })
}

impl wworld::Host for HostState {
    async fn watch(&mut self, key: String) -> wasmtime::Result<Result<(), String>> {
        let result = (|| {
            self.granted(Capability::World).map_err(|e| e.to_string())?;
            check_key(&key)?;
            if self.call != CallPhase::Validate {
                return Err("world.watch is only allowed from validate".to_owned());
            }
            if !self.world_watches.contains(&key) {
                self.world_watches.push(key);
            }
            Ok(())
        })();
        Ok(result)
    }

    async fn get(&mut self, key: String) -> wasmtime::Result<Result<Option<String>, String>> {
        let world = match self.world_for(&key, in_check, "get") {
            Ok(w) => w,
            Err(e) => return Ok(Err(e)),
        };
        let full = value_of(&key, world.hostname());
        Ok(world
            .get(&full)
            .await
            .map(|v| v.map(|b| String::from_utf8_lossy(&b).into_owned()))
            .map_err(|e| e.to_string()))
    }

    async fn put(&mut self, key: String, value: String) -> wasmtime::Result<Result<(), String>> {
        let world = match self.world_for(&key, applying, "put") {
            Ok(w) => w,
            Err(e) => return Ok(Err(e)),
        };
        if value.len() > MAX_VALUE {
            return Ok(Err(format!(
                "a world value is at most {MAX_VALUE} bytes (this one has {})",
                value.len()
            )));
        }
        let full = value_of(&key, world.hostname());
        Ok(world
            .put(&full, value.as_bytes(), Lifetime::Leased)
            .await
            .map_err(|e| e.to_string()))
    }

    async fn delete(&mut self, key: String) -> wasmtime::Result<Result<(), String>> {
        let world = match self.world_for(&key, applying, "delete") {
            Ok(w) => w,
            Err(e) => return Ok(Err(e)),
        };
        let full = value_of(&key, world.hostname());
        Ok(world.delete(&full).await.map_err(|e| e.to_string()))
    }

    async fn all(
        &mut self,
        key: String,
    ) -> wasmtime::Result<Result<Vec<(String, String)>, String>> {
        let world = match self.world_for(&key, in_check, "all") {
            Ok(w) => w,
            Err(e) => return Ok(Err(e)),
        };
        Ok(world
            .list(VALUES)
            .await
            .map(|entries| {
                entries
                    .into_iter()
                    .filter_map(|(k, v)| {
                        let (host, of) = parse_value_key(&k)?;
                        (of == key).then(|| (host, String::from_utf8_lossy(&v).into_owned()))
                    })
                    .collect()
            })
            .map_err(|e| e.to_string()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_stay_inside_values() {
        assert!(check_key("web.port").is_ok());
        for bad in ["", "a/b", "../x", "a b", "é"] {
            assert!(check_key(bad).is_err(), "{bad:?}");
        }
        assert!(check_key(&"k".repeat(MAX_KEY + 1)).is_err());
    }
}
