//! `steer`: a resource whose behaviour the engine tests steer through its params, so
//! engine rules (ordering, notify/refresh, retries, send/recv, semaphores, rate limits,
//! graph swaps) are tested without depending on file-system timing.
//!
//! Every check-apply logs `steer NAME start refresh=BOOL in=JSON` and
//! `steer NAME end changed=BOOL` at info level through the host log, so a test reads the
//! order and overlap of calls from homeostat's stderr. Calls are counted in the file at
//! `state` (the resource's whole footprint; plugin instances keep no state).
//!
//! Params:
//! - `state` (required): counter file, one decimal number: check-applies started so far.
//! - `fail`: the first N check-applies fail with an error value.
//! - `sleep_ms`: sleep this long inside each check-apply.
//! - `change`: `first` (default: the first successful call reports a change),
//!   `always`, `never`, or `refresh` (a change only when refreshed).
//! - `out`: any JSON value, published as the send `out`.
//! - `in`: any JSON value; only logged (a receiver param for send/recv tests).
//! - `text`: a string, published as the send `text`.
//! - `watch`: a path to watch; touching it makes the resource dirty.
//!
//! Sends: `count` (integer, calls so far), `out` (any), `text` (string).
//!
//! `describe` (`homeostat resource steer NAME state=PATH`) tries to write the counter
//! file, which its footprint allows in `check-apply`: the host must refuse it (describe
//! only reads), and the refusal is its answer; were the write allowed, it would answer
//! the params with the counter.

use homeostat_sdk::{CheckApply, Error, Info, Outcome, Resource, ResourceId, Result, fs, log};

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct Params {
    state: String,
    #[serde(default)]
    fail: u32,
    #[serde(default)]
    sleep_ms: u64,
    #[serde(default)]
    change: Change,
    #[serde(default)]
    out: Option<serde_json::Value>,
    #[serde(default, rename = "in")]
    input: Option<serde_json::Value>,
    #[serde(default)]
    text: Option<String>,
    #[serde(default)]
    watch: Option<String>,
}

#[derive(serde::Deserialize, Default, PartialEq, Eq, Clone, Copy)]
#[serde(rename_all = "lowercase")]
enum Change {
    #[default]
    First,
    Always,
    Never,
    Refresh,
}

const SCHEMA: &str = r#"{
  "type": "object",
  "properties": {
    "state": {"type": "string"},
    "fail": {"type": "integer", "minimum": 0},
    "sleep_ms": {"type": "integer", "minimum": 0},
    "change": {"enum": ["first", "always", "never", "refresh"]},
    "out": {},
    "in": {},
    "text": {"type": "string"},
    "watch": {"type": "string"}
  },
  "required": ["state"],
  "additionalProperties": false
}"#;

struct Steer;

impl Resource for Steer {
    const KIND: &'static str = "steer";
    const SCHEMA: &'static str = SCHEMA;
    type Params = Params;
    const SENDS: &'static [(&'static str, &'static str)] =
        &[("count", "integer"), ("out", "any"), ("text", "string")];

    fn validate(_: &ResourceId, p: &Params) -> Result<Info> {
        if !p.state.starts_with('/') {
            return Err(Error::param("state", "must be an absolute path"));
        }
        let mut info = Info::new().write_path(&p.state);
        if let Some(w) = &p.watch {
            info = info.read_path(w).watch_path(w);
        }
        Ok(info)
    }

    fn check_apply(id: &ResourceId, p: &Params, ctx: &CheckApply) -> Result<Outcome> {
        let input = p.input.as_ref().map_or("null".into(), |v| v.to_string());
        log::info(&format!(
            "steer {} start refresh={} in={input}",
            id.name, ctx.refresh
        ));
        let count = match fs::read(&p.state) {
            Ok(b) => String::from_utf8_lossy(&b)
                .trim()
                .parse::<u64>()
                .unwrap_or(0),
            Err(e) if e.code == fs::ErrorCode::NotFound => 0,
            Err(e) => return Err(e.into()),
        } + 1;
        fs::write(&p.state, count.to_string().as_bytes(), fs::Attrs::default())?;
        if p.sleep_ms > 0 {
            std::thread::sleep(std::time::Duration::from_millis(p.sleep_ms));
        }
        if count <= u64::from(p.fail) {
            log::info(&format!("steer {} end failed", id.name));
            return Err(Error::new(format!(
                "failing as asked (call {count} of {})",
                p.fail
            )));
        }
        let changed = match p.change {
            Change::First => count == u64::from(p.fail) + 1,
            Change::Always => true,
            Change::Never => false,
            Change::Refresh => ctx.refresh,
        };
        let mut out = Outcome::new();
        if changed {
            out.change(if ctx.refresh {
                "refreshed"
            } else {
                "changed as asked"
            });
        }
        out.send("count", count);
        if let Some(v) = &p.out {
            out.send("out", v);
        }
        if let Some(t) = &p.text {
            out.send("text", t);
        }
        log::info(&format!("steer {} end changed={changed}", id.name));
        Ok(out)
    }

    fn describe(_: &ResourceId, p: &Params) -> Result<serde_json::Value> {
        fs::write(&p.state, b"written by describe", fs::Attrs::default())?;
        Ok(serde_json::json!({ "state": p.state }))
    }
}

homeostat_sdk::export_resource!(Steer; capabilities = ["fs"]);
