//! What a plugin file is, read without running or compiling it: its manifest, SHA-256,
//! and the interfaces the component imports and exports (for `homeostat plugin inspect`,
//! the grants policy and link errors that name the missing import).
//!
//! Imports are the component's top-level import names (`wasi:io/streams@0.2.6`,
//! `homeostat:resource/fs@0.1.0`), read with `wasmparser` at nesting depth 0. Whether the
//! host provides one is decided by [`host_provides`]: every WASI 0.2 interface (the WASI
//! context itself denies files, environment and network) and the `homeostat:resource`
//! interfaces the bindings of each supported version link
//! ([`crate::plugin::bindings::links`]).

use serde::Serialize;

use crate::plugin::bindings;
use crate::plugin::manifest::{self, Manifest, ManifestError};

/// Lower-case hex SHA-256 of some bytes: a plugin file (what grants name), a graph text.
pub fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(<sha2::Sha256 as sha2::Digest>::digest(bytes))
}

/// Whether the host links the interface `name` (a component import name).
pub fn host_provides(name: &str) -> bool {
    if let Some(rest) = name.strip_prefix("wasi:") {
        return rest.contains("@0.2.");
    }
    bindings::links(name)
}

/// One import of the component.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Import {
    pub name: String,
    /// Linked by this homeostat; `false` means the plugin cannot be loaded here.
    pub provided: bool,
}

/// Everything `plugin inspect` shows.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    pub sha256: String,
    pub size: usize,
    pub manifest: Manifest,
    pub imports: Vec<Import>,
    pub exports: Vec<String>,
    /// Where the imports and the declared capabilities disagree (see [`disagreements`]).
    pub warnings: Vec<String>,
    /// What one instance creates and asks for, which sizes its pool.
    pub shape: super::shape::Shape,
}

/// Where a plugin's imports and the capabilities its manifest declares disagree: an
/// interface imported without its capability (every call to it will be refused), or a
/// capability declared for an interface never imported (a grant of it is unused).
pub fn disagreements(imports: &[String], declared: &[String]) -> Vec<String> {
    use crate::plugin::grants::Capability;
    let imported: Vec<&str> = imports
        .iter()
        .filter_map(|i| i.strip_prefix("homeostat:resource/"))
        .map(|i| i.split('@').next().unwrap_or(i))
        .collect();
    let mut warnings = Vec::new();
    for iface in &imported {
        if Capability::parse(iface).is_some() && !declared.iter().any(|d| d == iface) {
            warnings.push(format!(
                "imports `homeostat:resource/{iface}` but does not declare the `{iface}` \
                 capability: every call to it will be refused (add it to \
                 the manifest's `capabilities`: `export_resource!(..; capabilities = [..])` \
                 in Rust)"
            ));
        }
    }
    for cap in declared {
        if Capability::parse(cap).is_some() && !imported.contains(&cap.as_str()) {
            warnings.push(format!(
                "declares the `{cap}` capability but never imports \
                 `homeostat:resource/{cap}`: it is unused, and so is any grant of it (drop \
                 it from the manifest)"
            ));
        }
    }
    warnings
}

/// The component's top-level import and export names, in file order.
pub fn interfaces(wasm: &[u8]) -> Result<(Vec<String>, Vec<String>), ManifestError> {
    let mut imports = Vec::new();
    let mut exports = Vec::new();
    let mut depth = 0usize;
    for payload in wasmparser::Parser::new(0).parse_all(wasm) {
        let payload = payload.map_err(|e| ManifestError::Invalid(e.to_string()))?;
        match payload {
            wasmparser::Payload::ModuleSection { .. }
            | wasmparser::Payload::ComponentSection { .. } => depth += 1,
            wasmparser::Payload::End(_) => depth = depth.saturating_sub(1),
            wasmparser::Payload::ComponentImportSection(r) if depth == 0 => {
                for i in r {
                    let i = i.map_err(|e| ManifestError::Invalid(e.to_string()))?;
                    imports.push(i.name.name.to_string());
                }
            }
            wasmparser::Payload::ComponentExportSection(r) if depth == 0 => {
                for e in r {
                    let e = e.map_err(|e| ManifestError::Invalid(e.to_string()))?;
                    exports.push(e.name.name.to_string());
                }
            }
            _ => {}
        }
    }
    Ok((imports, exports))
}

/// Imports of `wasm` the host does not provide (empty when it cannot be parsed).
pub fn missing_imports(wasm: &[u8]) -> Vec<String> {
    interfaces(wasm)
        .map(|(imports, _)| imports.into_iter().filter(|i| !host_provides(i)).collect())
        .unwrap_or_default()
}

/// Read a plugin file: manifest (checked as the registry checks it), digest, interfaces.
pub fn inspect(wasm: &[u8]) -> Result<Report, ManifestError> {
    let manifest = manifest::read(wasm)?;
    let (imports, exports) = interfaces(wasm)?;
    let warnings = disagreements(&imports, &manifest.capabilities);
    Ok(Report {
        shape: super::shape::Shape::of(wasm)?,
        sha256: sha256_hex(wasm),
        size: wasm.len(),
        warnings,
        manifest,
        imports: imports
            .into_iter()
            .map(|name| Import {
                provided: host_provides(&name),
                name,
            })
            .collect(),
        exports,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn provided_interfaces() {
        assert!(host_provides("wasi:io/streams@0.2.6"));
        assert!(host_provides("wasi:sockets/tcp@0.2.0"));
        assert!(!host_provides("wasi:http/types@0.3.0"));
        assert!(host_provides("homeostat:resource/fs@0.1.0"));
        assert!(host_provides("homeostat:resource/state@0.1.3"));
        assert!(!host_provides("homeostat:resource/nope@0.1.0"));
        assert!(!host_provides("homeostat:resource/fs@0.2.0"));
        assert!(!host_provides("test:nope/nope"));
    }

    #[test]
    fn imports_and_capabilities_must_agree() {
        let imports = |names: &[&str]| names.iter().map(|n| n.to_string()).collect::<Vec<_>>();
        let caps = imports;
        let agree = disagreements(
            &imports(&[
                "homeostat:resource/log@0.1.0",
                "homeostat:resource/fs@0.1.0",
            ]),
            &caps(&["fs"]),
        );
        assert!(agree.is_empty(), "{agree:?}");
        let w = disagreements(
            &imports(&["homeostat:resource/fs@0.1.0", "wasi:io/streams@0.2.6"]),
            &caps(&["process"]),
        );
        assert_eq!(w.len(), 2, "{w:?}");
        assert!(w[0].contains("imports `homeostat:resource/fs` but does not declare"));
        assert!(w[1].contains("declares the `process` capability but never imports"));
    }

    #[test]
    fn a_core_module_has_no_interfaces_to_inspect() {
        assert!(matches!(
            inspect(b"\0asm\x01\0\0\0"),
            Err(ManifestError::CoreModule)
        ));
    }
}
