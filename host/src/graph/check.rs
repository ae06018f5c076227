//! Checks that need to know the kinds: unknown kinds, dangling edges, params vs JSON schema.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use jsonschema::Validator;
use jsonschema::error::ValidationErrorKind;
use jsonschema::paths::LocationSegment;
use serde_json::Value;

use super::decl::{GraphDoc, ResId, ResourceDecl};
use super::error::{GraphError, GraphErrors};
use super::suggest::{closest, did_you_mean};

/// What the graph needs to know about resource kinds: which exist, and each one's params
/// schema. The plugin registry implements it; [`SchemaCatalog`] is a ready-made one.
pub trait KindCatalog {
    /// The compiled JSON schema of `kind`'s params, or `None` if no plugin provides `kind`.
    fn schema(&self, kind: &str) -> Option<&Validator>;

    /// Every kind provided, for "unknown kind" messages.
    fn kinds(&self) -> Vec<String>;

    /// The param names `kind`'s schema declares (its `properties`), used to suggest a name
    /// for an unknown param. The default knows none, so no suggestion is made; see
    /// [`schema_param_names`].
    fn param_names(&self, kind: &str) -> Vec<String> {
        let _ = kind;
        Vec::new()
    }

    /// Why `kind` is missing when a plugin providing it could not be loaded.
    fn unavailable(&self, kind: &str) -> Option<String> {
        let _ = kind;
        None
    }
}

/// The keys of a schema's top-level `properties`, sorted.
pub fn schema_param_names(schema: &Value) -> Vec<String> {
    let mut names: Vec<String> = schema
        .get("properties")
        .and_then(Value::as_object)
        .map(|p| p.keys().cloned().collect())
        .unwrap_or_default();
    names.sort();
    names
}

/// A JSON schema that does not compile.
#[derive(Debug, thiserror::Error)]
#[error("the params schema of kind `{kind}` is invalid: {message}")]
pub struct SchemaError {
    /// The kind whose schema was given.
    pub kind: String,
    /// jsonschema's message.
    pub message: String,
}

/// A [`KindCatalog`] built from JSON schemas, one per kind.
#[derive(Default)]
pub struct SchemaCatalog {
    kinds: BTreeMap<String, (Validator, Vec<String>)>,
}

impl SchemaCatalog {
    /// An empty catalog.
    pub fn new() -> Self {
        Self::default()
    }

    /// Compiles `schema` and registers it for `kind` (replacing an earlier one).
    pub fn insert(&mut self, kind: impl Into<String>, schema: &Value) -> Result<(), SchemaError> {
        let kind = kind.into();
        let validator = jsonschema::validator_for(schema).map_err(|e| SchemaError {
            kind: kind.clone(),
            message: e.to_string(),
        })?;
        self.kinds
            .insert(kind, (validator, schema_param_names(schema)));
        Ok(())
    }
}

impl KindCatalog for SchemaCatalog {
    fn schema(&self, kind: &str) -> Option<&Validator> {
        self.kinds.get(kind).map(|(v, _)| v)
    }

    fn kinds(&self) -> Vec<String> {
        self.kinds.keys().cloned().collect()
    }

    fn param_names(&self, kind: &str) -> Vec<String> {
        self.kinds
            .get(kind)
            .map(|(_, names)| names.clone())
            .unwrap_or_default()
    }
}

/// Whether `v` is its JSON type's zero value as mgmt's YAML writes it for a param it
/// does not set: `""`, `0`, `[]`, `{}` or `null` (not `false`: that is a value).
fn is_zero(v: &Value) -> bool {
    match v {
        Value::Null => true,
        Value::String(s) => s.is_empty(),
        Value::Number(n) => n.as_f64() == Some(0.0),
        Value::Array(a) => a.is_empty(),
        Value::Object(o) => o.is_empty(),
        Value::Bool(_) => false,
    }
}

/// mgmt's YAML writes every param a resource does not set with its type's zero value
/// (`shell: ""`, `timeout: 0`, `watchcmd: ''`). Where the kind's schema refuses that zero
/// value for a param it does not require, it means "unset", as in mgmt: the param is
/// dropped before the params are checked and before any plugin sees them. A zero value
/// the schema accepts is kept as written (`content: ""` is an empty file), and one for a
/// required param is still refused (mgmt refuses it too). Only resources whose params
/// do not validate as written are looked at, so a valid graph costs nothing. Returns
/// each dropped param as `kind[name]: param`.
pub fn drop_unset_zero_values(doc: &mut GraphDoc, kinds: &dyn KindCatalog) -> Vec<String> {
    let mut dropped = Vec::new();
    for decl in &mut doc.resources {
        let Some(schema) = kinds.schema(&decl.kind) else {
            continue;
        };
        let instance = Value::Object(decl.params.clone());
        if schema.is_valid(&instance) {
            continue;
        }
        let refused: BTreeSet<String> = schema
            .iter_errors(&instance)
            .filter_map(|e| match e.instance_path().iter().next() {
                Some(LocationSegment::Property(p)) => Some(p.to_string()),
                _ => None,
            })
            .filter(|p| decl.params.get(p).is_some_and(is_zero))
            .collect();
        for p in refused {
            let mut without = decl.params.clone();
            without.remove(&p);
            let required = schema.iter_errors(&Value::Object(without)).any(|e| {
                matches!(e.kind(), ValidationErrorKind::Required { property } if property.as_str() == Some(p.as_str()))
            });
            if !required {
                decl.params.remove(&p);
                dropped.push(format!("{}: {p}", decl.id()));
            }
        }
    }
    dropped
}

/// Checks what needs the kinds: every kind (of resources and of `collect`) is provided,
/// every edge names a declared resource, and every resource's params satisfy its kind's
/// JSON schema. Errors point at the kind key, the edge's `from`/`to`, or the param.
pub fn check_params(doc: &GraphDoc, kinds: &dyn KindCatalog) -> Result<(), GraphErrors> {
    let mut errors = Vec::new();
    let known = kinds.kinds();
    let unknown = |kind: &str| {
        if let Some(why) = kinds.unavailable(kind) {
            return format!("resource kind `{kind}` is unavailable: {why}");
        }
        let hint = did_you_mean(kind, known.iter().map(String::as_str));
        let list = if known.is_empty() {
            "none are loaded".to_owned()
        } else {
            format!("known kinds: {}", known.join(", "))
        };
        format!("unknown resource kind `{kind}`{hint} ({list})")
    };
    for (kind, loc) in &doc.kind_locs {
        if kinds.schema(kind).is_none() {
            errors.push(GraphError::UnknownKind {
                loc: loc.clone(),
                message: unknown(kind),
            });
        }
    }
    for c in &doc.collect {
        if kinds.schema(&c.kind).is_none() {
            errors.push(GraphError::UnknownKind {
                loc: c.kind_loc.clone(),
                message: format!("cannot collect: {}", unknown(&c.kind)),
            });
        }
    }
    errors.extend(edge_endpoint_errors(doc));
    let mut names_cache: HashMap<&str, Vec<String>> = HashMap::new();
    for decl in &doc.resources {
        let Some(schema) = kinds.schema(&decl.kind) else {
            continue;
        };
        let instance = Value::Object(decl.params.clone());
        if schema.is_valid(&instance) {
            continue;
        }
        let names = names_cache
            .entry(decl.kind.as_str())
            .or_insert_with(|| kinds.param_names(&decl.kind));
        for e in schema.iter_errors(&instance) {
            param_error(decl, &e, names, &mut errors);
        }
    }
    GraphErrors::check(errors)
}

/// Renders a JSON pointer's segments as `env.PATH` / `args[2]`.
fn field_path(segments: &[LocationSegment<'_>]) -> String {
    let mut s = String::new();
    for seg in segments {
        match seg {
            LocationSegment::Property(p) => {
                if !s.is_empty() {
                    s.push('.');
                }
                s.push_str(p);
            }
            LocationSegment::Index(i) => s.push_str(&format!("[{i}]")),
        }
    }
    s
}

fn param_error(
    decl: &ResourceDecl,
    e: &jsonschema::ValidationError<'_>,
    names: &[String],
    errors: &mut Vec<GraphError>,
) {
    let id = decl.id();
    let segments: Vec<LocationSegment<'_>> = e.instance_path().iter().collect();
    let top = match segments.first() {
        Some(LocationSegment::Property(p)) => Some(p.to_string()),
        _ => None,
    };
    let path = field_path(&segments);
    let unexpected = match e.kind() {
        ValidationErrorKind::AdditionalProperties { unexpected }
        | ValidationErrorKind::UnevaluatedProperties { unexpected } => Some(unexpected),
        _ => None,
    };
    match (unexpected, top) {
        (Some(unexpected), None) => {
            for name in unexpected {
                let hint = did_you_mean(name, names.iter().map(String::as_str));
                errors.push(GraphError::Param {
                    loc: decl.loc_of(Some(name)),
                    message: format!(
                        "unknown param `{name}` for kind `{}` in {id}{hint}",
                        decl.kind
                    ),
                });
            }
        }
        (Some(unexpected), Some(top)) => {
            let list = unexpected
                .iter()
                .map(|u| format!("`{u}`"))
                .collect::<Vec<_>>()
                .join(", ");
            errors.push(GraphError::Param {
                loc: decl.value_loc_of(Some(&top)),
                message: format!("{id}: param `{path}` has unknown key(s) {list}"),
            });
        }
        (None, None) => {
            let message = match e.kind() {
                ValidationErrorKind::Required { property } => {
                    let p = property
                        .as_str()
                        .map_or_else(|| property.to_string(), str::to_owned);
                    format!("{id} is missing required param `{p}`")
                }
                _ => format!("{id}: {e}"),
            };
            errors.push(GraphError::Param {
                loc: decl.loc.clone(),
                message,
            });
        }
        (None, Some(top)) => {
            errors.push(GraphError::Param {
                loc: decl.value_loc_of(Some(&top)),
                message: format!("{id}: invalid param `{path}`: {e}{}", type_hint(e)),
            });
        }
    }
}

/// A hint for the YAML typing surprises behind most type errors: an unquoted number where a
/// string is wanted (`mode: 644`), or YAML 1.1 booleans (`yes`), which YAML 1.2 reads as text.
fn type_hint(e: &jsonschema::ValidationError<'_>) -> &'static str {
    if !matches!(e.kind(), ValidationErrorKind::Type { .. }) {
        return "";
    }
    let wanted = e.to_string();
    let instance = e.instance();
    if (instance.is_number() || instance.is_boolean()) && wanted.ends_with("\"string\"") {
        return " (quote it to make it a string)";
    }
    let yaml11 = [
        "yes", "no", "on", "off", "y", "n", "Yes", "No", "On", "Off", "YES", "NO",
    ];
    if wanted.contains("\"boolean\"") && instance.as_str().is_some_and(|s| yaml11.contains(&s)) {
        return " (write `true` or `false`; YAML 1.2 reads yes/no/on/off as text)";
    }
    ""
}

/// Edges whose `from` or `to` is not a resource of the graph (or is an exported one, which is
/// not run here). Shared by [`check_params`] and [`super::build()`].
pub(crate) fn edge_endpoint_errors(doc: &GraphDoc) -> Vec<GraphError> {
    let mut errors = Vec::new();
    if doc.edges.is_empty() {
        return errors;
    }
    let mut declared: HashMap<(&str, &str), bool> = HashMap::with_capacity(doc.resources.len());
    let mut by_kind: HashMap<&str, Vec<&str>> = HashMap::new();
    for r in &doc.resources {
        declared.insert((&r.kind, &r.name), r.exported);
        by_kind.entry(&r.kind).or_default().push(&r.name);
    }
    let kinds: BTreeSet<&str> = by_kind.keys().copied().collect();
    const MAX_SUGGESTED: usize = 20;
    let mut dangling = 0;
    for (i, edge) in doc.edges.iter().enumerate() {
        for (which, id, loc) in [
            ("from", &edge.from, &edge.from_loc),
            ("to", &edge.to, &edge.to_loc),
        ] {
            match declared.get(&(id.kind.as_str(), id.name.as_str())) {
                Some(false) => {}
                Some(true) => errors.push(GraphError::DanglingEdge {
                    loc: loc.clone(),
                    message: format!(
                        "`{which}` of {} is {id}, an exported resource (`@@{}`): it is sent to \
                         other hosts, not run here, so it cannot be part of an edge",
                        edge.label(i),
                        id.name
                    ),
                }),
                None => {
                    // Suggestions scan every name of the kind; cap them so that a file full
                    // of broken edges is still checked quickly.
                    dangling += 1;
                    let message = if dangling <= MAX_SUGGESTED {
                        dangling_message(which, edge.label(i), id, &by_kind, &kinds)
                    } else {
                        format!(
                            "`{which}` of {} refers to {id}, which is not declared in this graph",
                            edge.label(i)
                        )
                    };
                    errors.push(GraphError::DanglingEdge {
                        loc: loc.clone(),
                        message,
                    });
                }
            }
        }
    }
    errors
}

fn dangling_message(
    which: &str,
    label: String,
    id: &ResId,
    by_kind: &HashMap<&str, Vec<&str>>,
    kinds: &BTreeSet<&str>,
) -> String {
    let hint = match by_kind.get(id.kind.as_str()) {
        Some(names) => closest(&id.name, names.iter().copied())
            .map(|n| format!("; did you mean {}?", ResId::new(id.kind.clone(), n)))
            .unwrap_or_default(),
        None => closest(&id.kind, kinds.iter().copied())
            .filter(|k| {
                by_kind
                    .get(k)
                    .is_some_and(|names| names.contains(&id.name.as_str()))
            })
            .map(|k| format!("; did you mean {}?", ResId::new(k, id.name.clone())))
            .unwrap_or_else(|| format!(" (no resource of kind `{}` is declared)", id.kind)),
    };
    format!("`{which}` of {label} refers to {id}, which is not declared in this graph{hint}")
}
