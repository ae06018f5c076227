//! `homeostat graph GRAPH.yaml`: the resolved graph (autoedges included) as Graphviz
//! dot on stdout, after the same checks as `validate`. Pipe it to `dot -Tsvg`.

use std::fmt::Write;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::Args;

use super::input::GraphFileArgs;
use super::load::PluginArgs;
use crate::engine::Plan;
use crate::sys::text;

#[derive(Debug, Args)]
pub struct GraphArgs {
    /// The graph file (YAML).
    graph: PathBuf,
    #[command(flatten)]
    input: GraphFileArgs,
    #[command(flatten)]
    plugins: PluginArgs,
}

pub async fn graph(args: GraphArgs) -> anyhow::Result<ExitCode> {
    let (_runtime, registry) = args.plugins.load(&crate::sys::Services::default())?;
    match crate::plan::load_capped(&args.graph, args.input.max_bytes(), &registry).await {
        Ok(plan) => {
            print!("{}", dot(&plan));
            Ok(ExitCode::SUCCESS)
        }
        Err(errors) => {
            eprintln_in_order!("{errors}");
            Ok(ExitCode::FAILURE)
        }
    }
}

/// A dot string literal. Names come from the graph: a newline is dot's `\n`, and other
/// control characters are escaped so that none reaches a terminal the output is shown on.
fn quote(s: &str) -> String {
    let escaped = s
        .replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n");
    format!("\"{}\"", text::escape(&escaped))
}

/// The plan as a dot digraph: one node per resource (`kind[name]`; dashed when
/// `noop`, grey when `hidden`), one edge per dependency. Autoedges are dashed and
/// labelled `auto`; notify edges are bold; send/recv mappings label the edge.
pub fn dot(plan: &Plan) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "digraph {} {{", quote(&plan.name));
    let _ = writeln!(out, "  node [shape=box, fontname=\"monospace\"];");
    for r in &plan.resources {
        let mut attrs = Vec::new();
        if r.meta.noop {
            attrs.push("style=dashed");
        }
        if r.meta.hidden {
            attrs.push("color=grey, fontcolor=grey");
        }
        let attrs = if attrs.is_empty() {
            String::new()
        } else {
            format!(" [{}]", attrs.join(", "))
        };
        let _ = writeln!(out, "  {}{attrs};", quote(&r.id.to_string()));
    }
    for e in &plan.edges {
        let (from, to) = (&plan.resources[e.from].id, &plan.resources[e.to].id);
        let mut label: Vec<String> = Vec::new();
        let mut attrs = Vec::new();
        if e.auto {
            label.push("auto".into());
            attrs.push("style=dashed".to_string());
        }
        if e.notify {
            label.push("notify".into());
            attrs.push("style=bold".to_string());
        }
        label.extend(e.send.iter().map(|(k, p)| format!("{k} -> {p}")));
        if !label.is_empty() {
            attrs.push(format!("label={}", quote(&label.join("\n"))));
        }
        let attrs = if attrs.is_empty() {
            String::new()
        } else {
            format!(" [{}]", attrs.join(", "))
        };
        let _ = writeln!(
            out,
            "  {} -> {}{attrs};",
            quote(&from.to_string()),
            quote(&to.to_string())
        );
    }
    out.push_str("}\n");
    out
}
