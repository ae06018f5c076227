//! Reading a plugin's manifest: the TOML the guest SDK embeds in the custom section
//! `homeostat:manifest`, found without running any plugin code.
//!
//! The section lives in the core module nested inside the component, so the whole
//! binary is walked with `wasmparser::Parser::parse_all` (as Zed does for its API
//! version section). The same pass tells a component from a core module, so a plugin
//! built for the wrong target gets an error that says how to build it.

use std::collections::BTreeMap;

use serde::Deserialize;

/// The custom section the SDK writes the manifest into.
pub const SECTION: &str = "homeostat:manifest";

/// WIT API versions of `homeostat:resource` this host can run.
pub const SUPPORTED_APIS: &[&str] = &["0.1.0", "0.2.0", "0.3.0"];

/// What a plugin says about itself.
#[derive(Debug, Clone, Deserialize, serde::Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Manifest {
    /// WIT API version the plugin was built against, e.g. `0.1.0`.
    pub api: String,
    /// Plugin name (its crate name).
    pub name: String,
    /// Plugin version (its crate version).
    pub version: String,
    /// Host interfaces the plugin asks for (`fs`, ...). `log` is always granted.
    #[serde(default)]
    pub capabilities: Vec<String>,
    /// Kinds the plugin provides, with each kind's params schema.
    pub kinds: BTreeMap<String, KindManifest>,
}

/// One resource kind of a plugin.
#[derive(Debug, Clone, Deserialize, serde::Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct KindManifest {
    /// JSON schema of the params (JSON text).
    pub schema: String,
    /// Values check-apply publishes for send/recv: key → JSON type.
    #[serde(default)]
    pub sends: BTreeMap<String, SendType>,
    /// Whether the kind's `cleanup` does anything; `false` lets the host skip the call.
    /// Absent (plugins built before the key existed): `true`.
    #[serde(default = "yes", skip_serializing_if = "is_true")]
    pub cleanup: bool,
    /// How a graph's `collect:` pattern applies to this kind: the name of a path param
    /// that is placed in the pattern's directory (`file` says `path`). Absent: the
    /// pattern is a prefix of the names collected.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub collect_dir: Option<String>,
    /// When a resource of this kind removes what it manages (`file`: `state` is
    /// `absent`): the automatic edges from it are reversed, so what depends on the thing
    /// removed runs first (see `plan::reverse_removals`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub removes_when: Option<RemovesWhen>,
    /// The kind edits *part* of the files it writes (a line, an ini key): several of its
    /// resources, of any editing kind, may write one path, and the host serializes and
    /// batches their writes (see `sys::fs::edits`). Its write grants must name files,
    /// not trees.
    #[serde(default, skip_serializing_if = "is_false")]
    pub edits: bool,
    /// For a kind that writes whole files: the params that make a resource own a file's
    /// content (`file`: `content`, `source`, `symlink`). A resource with none of them set
    /// (and not removing, see `removes_when`) only sets attributes, so editing resources
    /// may share its path. Empty: every resource of the kind owns its files' content.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub content_params: Vec<String>,
    /// The param a resource's name stands for in `homeostat resource KIND NAME`
    /// (`file`: `path`). Absent: the name is only the name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name_param: Option<String>,
    /// Resources of this kind that are ready at the same moment are applied in one call
    /// of the plugin's `check-apply-group` (0.3; mgmt's `autogroup`: `pkg` installs its
    /// packages in one transaction). A resource says `autogroup: false` to run alone.
    #[serde(default, skip_serializing_if = "is_false")]
    pub groups: bool,
}

impl KindManifest {
    /// Whether a resource of this kind with `params` (JSON) leaves the content of the
    /// files it writes alone, so that editing resources may share them: its kind names
    /// its content params, none is set, and it does not remove what it manages.
    pub fn leaves_content(&self, params: &serde_json::Value) -> bool {
        !self.content_params.is_empty()
            && self
                .content_params
                .iter()
                .all(|p| params.get(p).is_none_or(serde_json::Value::is_null))
            && !self
                .removes_when
                .as_ref()
                .is_some_and(|r| r.removes_value(params))
    }
}

/// A param and the value of it that means "remove" (see [`KindManifest::removes_when`]).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, serde::Serialize)]
pub struct RemovesWhen {
    pub param: String,
    pub value: String,
}

impl RemovesWhen {
    /// Whether the params (JSON text) say "remove".
    pub fn removes(&self, params: &str) -> bool {
        serde_json::from_str::<serde_json::Value>(params)
            .ok()
            .is_some_and(|v| self.removes_value(&v))
    }

    /// [`RemovesWhen::removes`] of parsed params.
    pub fn removes_value(&self, params: &serde_json::Value) -> bool {
        params.get(&self.param).and_then(serde_json::Value::as_str) == Some(self.value.as_str())
    }
}

fn yes() -> bool {
    true
}

fn is_true(b: &bool) -> bool {
    *b
}

fn is_false(b: &bool) -> bool {
    !*b
}

/// The JSON type of a sent value, checked against the receiving param's schema.
#[derive(Debug, Clone, Copy, Deserialize, serde::Serialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum SendType {
    String,
    Integer,
    Number,
    Boolean,
    Array,
    Object,
    /// Any JSON value (not checked before the run).
    Any,
}

impl SendType {
    /// The JSON schema `type` name (`any` for [`SendType::Any`]).
    pub fn name(self) -> &'static str {
        match self {
            SendType::String => "string",
            SendType::Integer => "integer",
            SendType::Number => "number",
            SendType::Boolean => "boolean",
            SendType::Array => "array",
            SendType::Object => "object",
            SendType::Any => "any",
        }
    }

    /// Whether a value of this type is acceptable where a schema says `ty`
    /// (an integer is a number; `any` is accepted everywhere and checked at run time).
    pub fn fits(self, ty: &str) -> bool {
        self == SendType::Any || ty == self.name() || (self == SendType::Integer && ty == "number")
    }

    /// Whether a JSON value is of this type.
    pub fn matches(self, v: &serde_json::Value) -> bool {
        use serde_json::Value as V;
        match self {
            SendType::Any => true,
            SendType::String => v.is_string(),
            SendType::Integer => v.is_i64() || v.is_u64(),
            SendType::Number => v.is_number(),
            SendType::Boolean => v.is_boolean(),
            SendType::Array => matches!(v, V::Array(_)),
            SendType::Object => matches!(v, V::Object(_)),
        }
    }
}

/// Why a file cannot be used as a plugin.
#[derive(Debug, thiserror::Error)]
pub enum ManifestError {
    #[error("is not WebAssembly (no `\\0asm` header); a plugin is a `.wasm` component")]
    NotWasm,
    #[error(
        "is a core WebAssembly module, not a component; build plugins for the \
         `wasm32-wasip2` target (`cargo build --release --target wasm32-wasip2`), \
         which produces a component"
    )]
    CoreModule,
    #[error("is not a valid WebAssembly component: {0}")]
    Invalid(String),
    #[error(
        "has no `{SECTION}` section. A plugin built with homeostat-sdk gets it from \
         `export_resource!`; a component built with another toolchain (componentize-py, \
         jco, ...) gets one with `homeostat plugin pack IN.wasm --manifest M.toml -o \
         OUT.wasm` (the format: docs/plugin-guide.md#the-manifest). Stripping tools drop \
         custom sections: pack last"
    )]
    Missing,
    #[error("has a malformed manifest: {0}")]
    Malformed(String),
    #[error(
        "was built for API `homeostat:resource@{found}`, which this homeostat does not \
         support (supported: {}); rebuild it against a supported homeostat-sdk",
         SUPPORTED_APIS.join(", ")
    )]
    UnsupportedApi { found: String },
}

/// Find, parse and check the manifest of a plugin binary.
pub fn read(wasm: &[u8]) -> Result<Manifest, ManifestError> {
    if !wasm.starts_with(b"\0asm") {
        return Err(ManifestError::NotWasm);
    }
    if wasmparser::Parser::is_core_wasm(wasm) {
        return Err(ManifestError::CoreModule);
    }
    let mut found: Option<Vec<u8>> = None;
    for payload in wasmparser::Parser::new(0).parse_all(wasm) {
        match payload.map_err(|e| ManifestError::Invalid(e.to_string()))? {
            wasmparser::Payload::CustomSection(c) if c.name() == SECTION => {
                // Several statics with the same section name are concatenated by the
                // linker; the SDK writes exactly one, so a second one is an error.
                if found.is_some() {
                    return Err(ManifestError::Malformed(format!(
                        "more than one `{SECTION}` section"
                    )));
                }
                found = Some(c.data().to_vec());
            }
            _ => {}
        }
    }
    let bytes = found.ok_or(ManifestError::Missing)?;
    let text = std::str::from_utf8(&bytes).map_err(|e| ManifestError::Malformed(e.to_string()))?;
    parse(text)
}

/// Parse and check a manifest's TOML (the section's text, or `plugin pack`'s file).
pub fn parse(text: &str) -> Result<Manifest, ManifestError> {
    let manifest: Manifest =
        toml::from_str(text).map_err(|e| ManifestError::Malformed(e.to_string()))?;
    if !SUPPORTED_APIS.contains(&manifest.api.as_str()) {
        return Err(ManifestError::UnsupportedApi {
            found: manifest.api,
        });
    }
    if manifest.kinds.is_empty() {
        return Err(ManifestError::Malformed("it declares no kinds".into()));
    }
    Ok(manifest)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn content_params_say_when_editors_may_share_a_file() {
        let kind: KindManifest = toml::from_str(
            "schema = '{}'\ncontent_params = [\"content\", \"source\"]\n\
             removes_when = { param = \"state\", value = \"absent\" }\n",
        )
        .unwrap();
        let leaves = |v: serde_json::Value| kind.leaves_content(&v);
        assert!(leaves(serde_json::json!({"path": "/a", "mode": "0600"})));
        assert!(leaves(serde_json::json!({"path": "/a", "content": null})));
        assert!(!leaves(serde_json::json!({"path": "/a", "content": ""})));
        assert!(!leaves(serde_json::json!({"path": "/a", "source": "/b"})));
        assert!(!leaves(
            serde_json::json!({"path": "/a", "state": "absent"})
        ));
        let whole: KindManifest = toml::from_str("schema = '{}'\n").unwrap();
        assert!(!whole.leaves_content(&serde_json::json!({"path": "/a"})));
        assert!(!whole.edits);
        let editor: KindManifest = toml::from_str("schema = '{}'\nedits = true\n").unwrap();
        assert!(editor.edits);
    }

    #[test]
    fn removes_when_reads_the_param() {
        let kind: KindManifest = toml::from_str(
            "schema = '{}'\nremoves_when = { param = \"state\", value = \"absent\" }\n",
        )
        .unwrap();
        let r = kind.removes_when.expect("parsed");
        assert!(r.removes(r#"{"path": "/a", "state": "absent"}"#));
        assert!(!r.removes(r#"{"path": "/a", "state": "exists"}"#));
        assert!(!r.removes(r#"{"path": "/a"}"#));
        assert!(!r.removes("not json"));
        // Plugins built before the key existed: nothing is a removal.
        let old: KindManifest = toml::from_str("schema = '{}'\n").unwrap();
        assert_eq!(old.removes_when, None);
    }

    #[test]
    fn rejects_non_wasm_and_core_modules() {
        assert!(matches!(read(b"hello"), Err(ManifestError::NotWasm)));
        // The smallest valid core module: magic + version 1.
        let core = b"\0asm\x01\0\0\0";
        assert!(matches!(read(core), Err(ManifestError::CoreModule)));
    }

    #[test]
    fn rejects_truncated_component() {
        // Component header (version 0x0d, layer 1) followed by a cut-off section.
        let truncated = b"\0asm\x0d\0\x01\0\x01\x10abc";
        assert!(matches!(read(truncated), Err(ManifestError::Invalid(_))));
    }
}
