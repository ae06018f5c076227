//! `homeostat resource KIND NAME [PARAM=VALUE...]`: the current state of a thing as a
//! graph that declares it as it is (Puppet's `puppet resource`), so a graph can be
//! started from a live system.
//!
//! The resource is built as a one-entry graph and goes through everything `validate`
//! does (schema, located errors, the plugin's `validate` for its footprint). The kind's
//! plugin then answers its `describe` export (API 0.3) with the footprint made
//! read-only, and the params it answers are printed as YAML.

use std::path::Path;
use std::process::ExitCode;

use clap::Args;
use serde_json::Value;

use super::load::PluginArgs;
use crate::sys::text;

#[derive(Debug, Args)]
pub struct ResourceArgs {
    /// The kind, e.g. `file`.
    kind: String,
    /// The resource's name. For a kind whose name stands for a param (`file`: `path`),
    /// also that param: `homeostat resource file /etc/hosts`.
    name: String,
    /// More params, as PARAM=VALUE. `true`, `false` and integers are taken as such,
    /// anything else as text (`mode=0644` is the text `0644`).
    #[arg(value_name = "PARAM=VALUE")]
    params: Vec<String>,
    #[command(flatten)]
    plugins: PluginArgs,
}

/// What the one-entry graph is called in errors about it.
const WHERE: &str = "(command line)";

pub async fn resource(args: ResourceArgs) -> anyhow::Result<ExitCode> {
    let (_runtime, registry) = args.plugins.load(&crate::sys::Services::default())?;
    let Some(entry) = registry.kind(&args.kind) else {
        let known = registry.kind_names();
        let hint =
            crate::graph::suggest::did_you_mean(&args.kind, known.iter().map(String::as_str));
        anyhow::bail!(
            "no plugin provides the kind `{}`{hint} (kinds: {})",
            text::escape(&args.kind),
            known.join(", ")
        );
    };
    let name_param = entry
        .plugin
        .manifest
        .kinds
        .get(&args.kind)
        .and_then(|k| k.name_param.clone());
    let mut params = serde_json::Map::new();
    if let Some(p) = &name_param {
        params.insert(p.clone(), Value::String(args.name.clone()));
    }
    for pair in &args.params {
        let Some((key, value)) = pair.split_once('=') else {
            anyhow::bail!("`{}` is not PARAM=VALUE", text::escape(pair));
        };
        params.insert(key.to_string(), scalar(value));
    }
    let first = name_param.as_deref();
    let graph = entry_yaml("resource", &args.kind, &args.name, &params, first);
    let doc = match crate::plan::parse_text(Path::new(WHERE), &graph) {
        Ok(doc) => doc,
        Err(e) => anyhow::bail!("{e}"),
    };
    let plan = match crate::plan::check_and_plan(doc, &registry).await {
        Ok(plan) => plan,
        Err(errors) => {
            // The places are in a graph the user never saw: name the command line.
            for line in errors.to_string().lines() {
                eprintln_in_order!("{}", unplaced(line));
            }
            return Ok(ExitCode::FAILURE);
        }
    };
    let r = &plan.resources[0];
    let reference = crate::plugin::types::ResourceRef {
        kind: r.id.kind.clone(),
        name: r.id.name.clone(),
    };
    let described = r
        .plugin
        .describe(&reference, r.params.clone(), &r.info.footprint)
        .await
        .map_err(|e| anyhow::anyhow!("{}: {e}", r.id))?;
    let mut described: serde_json::Map<String, Value> = match serde_json::from_str(&described) {
        Ok(Value::Object(m)) => m,
        _ => anyhow::bail!(
            "{}: its plugin described it with something other than a JSON object of params",
            r.id
        ),
    };
    // `name` and `meta` are the entry's own keys, never params.
    described.remove("name");
    described.remove("meta");
    print!(
        "{}",
        entry_yaml("described", &args.kind, &args.name, &described, first)
    );
    Ok(ExitCode::SUCCESS)
}

/// An error line about the one-entry graph, `(command line):6:11: ...` with the place
/// (a line of a graph the user never saw) left out.
fn unplaced(line: &str) -> String {
    let Some(rest) = line.strip_prefix(WHERE) else {
        return line.to_string();
    };
    let rest = rest.trim_start_matches(|c: char| c == ':' || c.is_ascii_digit());
    format!("command line:{rest}")
}

/// A command-line value: `true`, `false` and integers as such, the rest as text.
fn scalar(value: &str) -> Value {
    match value {
        "true" => Value::Bool(true),
        "false" => Value::Bool(false),
        v => v
            .parse::<i64>()
            .ok()
            .filter(|n| n.to_string() == v)
            .map_or_else(|| Value::String(v.to_string()), Value::from),
    }
}

/// A graph named `graph` of one resource `kind[name]` with `params`, as YAML; the param
/// `first` (the one the name stands for) first, the others in order.
fn entry_yaml(
    graph: &str,
    kind: &str,
    name: &str,
    params: &serde_json::Map<String, Value>,
    first: Option<&str>,
) -> String {
    let mut out = format!(
        "graph: {graph}\nresources:\n  {}:\n  - name: {}\n",
        yaml_key(kind),
        yaml_value(&Value::String(name.to_string()), "    ")
    );
    let firsts = params.iter().filter(|(k, _)| Some(k.as_str()) == first);
    let rest = params.iter().filter(|(k, _)| Some(k.as_str()) != first);
    for (key, value) in firsts.chain(rest) {
        out.push_str(&format!(
            "    {}: {}\n",
            yaml_key(key),
            yaml_value(value, "      ")
        ));
    }
    out
}

/// A mapping key: plain when it is a plain word, JSON-quoted otherwise.
fn yaml_key(key: &str) -> String {
    if !key.is_empty()
        && key
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
    {
        key.to_string()
    } else {
        Value::String(key.to_string()).to_string()
    }
}

/// A value in YAML that reads back as exactly `value`: multi-line text as a literal
/// block (lines indented by `indent`), other text plain when nothing in it could read as
/// another type or as YAML syntax, JSON (a subset of YAML) for everything else.
fn yaml_value(value: &Value, indent: &str) -> String {
    let Value::String(s) = value else {
        return value.to_string();
    };
    let printable = |s: &str| !s.chars().any(|c| c.is_control() && c != '\n');
    if s.ends_with('\n')
        && !s.ends_with("\n\n")
        && !s.starts_with([' ', '\n'])
        && printable(s)
        && !s.lines().any(|l| l.ends_with(' '))
    {
        let mut out = "|".to_string();
        for line in s.lines() {
            out.push('\n');
            if !line.is_empty() {
                out.push_str(indent);
                out.push_str(line);
            }
        }
        return out;
    }
    let plain = !s.is_empty()
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || "/._-+@".contains(c))
        && s.starts_with(|c: char| c.is_ascii_alphabetic() || c == '/' || c == '_')
        && !matches!(
            s.to_ascii_lowercase().as_str(),
            "true" | "false" | "yes" | "no" | "on" | "off" | "null" | "y" | "n"
        );
    if plain { s.clone() } else { value.to_string() }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_read_back_as_themselves() {
        assert_eq!(scalar("true"), Value::Bool(true));
        assert_eq!(scalar("42"), Value::from(42));
        assert_eq!(scalar("0644"), Value::from("0644"));
        assert_eq!(scalar("a=b"), Value::from("a=b"));
        let y = |s: &str| yaml_value(&Value::from(s), "  ");
        assert_eq!(y("/etc/hosts"), "/etc/hosts");
        assert_eq!(y("0644"), "\"0644\"");
        assert_eq!(y("yes"), "\"yes\"");
        assert_eq!(y("a: b"), "\"a: b\"");
        assert_eq!(y("one\n\ntwo\n"), "|\n  one\n\n  two");
        assert_eq!(y("no newline at end"), "\"no newline at end\"");
        assert_eq!(y(" lead\n"), "\" lead\\n\"");
        assert_eq!(y("two\n\n"), "\"two\\n\\n\"");
        assert_eq!(yaml_value(&Value::from(0), ""), "0");
        assert_eq!(yaml_key("a b"), "\"a b\"");
        assert_eq!(
            unplaced("(command line):6:11: file[x]: bad"),
            "command line: file[x]: bad"
        );
    }
}
