//! The bundled `kv` resource: one key in the World, a value per host (mgmt's `kv`,
//! across hosts). With `value`, it sets this host's value of `key` (the value may be
//! received from an upstream resource through send/recv); without, it only reads. Either
//! way it sends what every live host has set (`values`, a JSON object of host → value;
//! `count`; and `value`, this host's), so a downstream resource on any host can use
//! what the others published at runtime. It watches the key: another host's new value
//! runs its check-apply at once. `state: absent` removes this host's value.
//!
//! Needs the `world` capability (WIT 0.2). A value lives as long as its host in a
//! cluster (it is on the host's etcd lease).

use std::collections::BTreeMap;

use homeostat_sdk::{CheckApply, Error, Info, Outcome, Resource, ResourceId, Result, world};
use serde::Deserialize;

/// Longest key, in bytes.
const MAX_KEY: usize = 256;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Params {
    key: String,
    #[serde(default)]
    value: Option<String>,
    #[serde(default)]
    state: State,
    /// mgmt's `skiplessthan`: replace this host's value only by a greater one (a refresh
    /// replaces it anyway).
    #[serde(default)]
    skiplessthan: bool,
    /// mgmt's `skipcmpstyle`: how `skiplessthan` compares, 0 as integers, 1 as strings.
    #[serde(default)]
    skipcmpstyle: u8,
}

/// Whether `new` is greater than `old` in `style` (0: as integers, 1: as strings). An old
/// value that is not an integer is replaced (mgmt does the same).
fn greater(new: &str, old: &str, style: u8) -> bool {
    match style {
        0 => match (new.trim().parse::<i64>(), old.trim().parse::<i64>()) {
            (Ok(n), Ok(o)) => n > o,
            _ => true,
        },
        _ => new > old,
    }
}

#[derive(Deserialize, Default, PartialEq, Eq, Clone, Copy)]
#[serde(rename_all = "lowercase")]
enum State {
    #[default]
    Present,
    Absent,
}

/// Why `key` is not a key the World takes (checked by the host too; said here with the
/// param's name).
fn check_key(key: &str) -> Result<()> {
    let ok = |c: char| c.is_ascii_alphanumeric() || "-_.:@+=".contains(c);
    if key.is_empty() || key.len() > MAX_KEY {
        return Err(Error::param(
            "key",
            format!("a key is 1 to {MAX_KEY} bytes long"),
        ));
    }
    if let Some(c) = key.chars().find(|c| !ok(*c)) {
        return Err(Error::param(
            "key",
            format!("{c:?} cannot be part of a key (ASCII letters, digits and `-_.:@+=`)"),
        ));
    }
    Ok(())
}

/// What a check-apply does, decided from this host's current value.
#[derive(Debug, PartialEq, Eq)]
enum Action {
    Nothing,
    Set(String),
    Remove,
}

fn plan(p: &Params, current: Option<&str>, refresh: bool) -> Action {
    match (p.state, &p.value, current) {
        (State::Absent, _, Some(_)) => Action::Remove,
        (State::Present, Some(v), Some(cur))
            if p.skiplessthan && !refresh && !greater(v, cur, p.skipcmpstyle) =>
        {
            Action::Nothing
        }
        (State::Present, Some(v), cur) if cur != Some(v.as_str()) => Action::Set(v.clone()),
        _ => Action::Nothing,
    }
}

fn world_error(e: String) -> Error {
    Error::new(e)
}

pub struct Kv;

impl Resource for Kv {
    const KIND: &'static str = "kv";
    const SCHEMA: &'static str = r#"{
        "type": "object",
        "properties": {
            "key": {"type": "string", "description": "The key: ASCII letters, digits and -_.:@+= (at most 256 bytes)."},
            "value": {"type": "string", "description": "This host's value; absent: only read the key."},
            "state": {"enum": ["present", "absent"], "description": "absent removes this host's value."},
            "skiplessthan": {"type": "boolean", "description": "Replace this host's value only by a greater one (mgmt's); a refresh replaces it anyway."},
            "skipcmpstyle": {"enum": [0, 1], "description": "How skiplessthan compares: 0 as integers (default), 1 as strings."}
        },
        "required": ["key"],
        "additionalProperties": false
    }"#;
    type Params = Params;
    const SENDS: &'static [(&'static str, &'static str)] = &[
        ("value", "string"),
        ("values", "string"),
        ("count", "integer"),
    ];
    const CLEANUP: bool = false;

    fn validate(_: &ResourceId, p: &Params) -> Result<Info> {
        check_key(&p.key)?;
        if p.state == State::Absent && p.value.is_some() {
            return Err(Error::param(
                "value",
                "`value` has no effect with `state: absent`; remove it",
            ));
        }
        world::watch(&p.key).map_err(world_error)?;
        Ok(Info::new())
    }

    fn check_apply(_: &ResourceId, p: &Params, ctx: &CheckApply) -> Result<Outcome> {
        let mut out = Outcome::new();
        let current = world::get(&p.key).map_err(world_error)?;
        match plan(p, current.as_deref(), ctx.refresh) {
            Action::Nothing => {}
            Action::Set(v) => {
                out.change(match &current {
                    Some(old) => format!("{}: {old:?} -> {v:?}", p.key),
                    None => format!("{}: set to {v:?}", p.key),
                });
                if ctx.apply {
                    world::put(&p.key, &v).map_err(world_error)?;
                }
            }
            Action::Remove => {
                out.change(format!("{}: remove this host's value", p.key));
                if ctx.apply {
                    world::delete(&p.key).map_err(world_error)?;
                }
            }
        }
        let all: BTreeMap<String, String> = world::all(&p.key)
            .map_err(world_error)?
            .into_iter()
            .collect();
        let mine = if ctx.apply {
            match (p.state, &p.value) {
                (State::Present, Some(v)) => Some(v.clone()),
                (State::Present, None) => current,
                (State::Absent, _) => None,
            }
        } else {
            current
        };
        out.send("value", mine.unwrap_or_default());
        out.send("count", all.len() as u64);
        out.send(
            "values",
            serde_json::to_string(&all).expect("a string map always serialises"),
        );
        Ok(out)
    }
}

homeostat_sdk::export_resource!(Kv; capabilities = ["world"]);

#[cfg(test)]
mod tests {
    use super::*;

    fn params(json: &str) -> Params {
        serde_json::from_str(json).unwrap()
    }

    #[test]
    fn sets_only_what_differs_and_removes_only_what_is_there() {
        let p = params(r#"{"key": "k", "value": "v"}"#);
        assert_eq!(plan(&p, None, false), Action::Set("v".into()));
        assert_eq!(plan(&p, Some("old"), false), Action::Set("v".into()));
        assert_eq!(plan(&p, Some("v"), false), Action::Nothing);
        let read_only = params(r#"{"key": "k"}"#);
        assert_eq!(plan(&read_only, Some("x"), false), Action::Nothing);
        let absent = params(r#"{"key": "k", "state": "absent"}"#);
        assert_eq!(plan(&absent, Some("x"), false), Action::Remove);
        assert_eq!(plan(&absent, None, false), Action::Nothing);
    }

    #[test]
    fn skiplessthan_keeps_a_greater_value_unless_refreshed() {
        let p = params(r#"{"key": "k", "value": "3", "skiplessthan": true}"#);
        assert_eq!(
            plan(&p, Some("10"), false),
            Action::Nothing,
            "10 > 3 as integers"
        );
        assert_eq!(plan(&p, Some("2"), false), Action::Set("3".into()));
        assert_eq!(
            plan(&p, Some("10"), true),
            Action::Set("3".into()),
            "a refresh sets it"
        );
        assert_eq!(plan(&p, None, false), Action::Set("3".into()));
        let s = params(r#"{"key": "k", "value": "3", "skiplessthan": true, "skipcmpstyle": 1}"#);
        assert_eq!(
            plan(&s, Some("10"), false),
            Action::Set("3".into()),
            "\"3\" > \"10\""
        );
    }

    #[test]
    fn keys_are_checked_with_the_param_named() {
        assert!(check_key("web.port").is_ok());
        let e = check_key("a/b").unwrap_err();
        assert_eq!(e.field.as_deref(), Some("key"));
        assert!(check_key("").is_err());
        assert!(check_key(&"x".repeat(257)).is_err());
    }
}
