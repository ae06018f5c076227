//! `homeostat validate GRAPH.yaml`: everything `run` checks before applying.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Args;

use super::input::GraphFileArgs;
use super::load::PluginArgs;
use crate::sys::text;

#[derive(Debug, Args)]
pub struct ValidateArgs {
    /// The graph file (YAML).
    graph: PathBuf,
    #[command(flatten)]
    input: GraphFileArgs,
    #[command(flatten)]
    plugins: PluginArgs,
}

pub async fn validate(args: ValidateArgs) -> anyhow::Result<ExitCode> {
    let (_runtime, registry) = args.plugins.load(&crate::sys::Services::default())?;
    // `run` skips a plugin that cannot be loaded and runs the rest; `validate` fails.
    let broken = registry.unavailable().len();
    match crate::plan::load_capped(&args.graph, args.input.max_bytes(), &registry).await {
        Ok(plan) if broken > 0 => {
            eprintln_in_order!(
                "{}: graph `{}` is valid, but {broken} plugin file(s) could not be loaded \
                 (logged above)",
                args.graph.display(),
                text::escape(&plan.name)
            );
            Ok(ExitCode::FAILURE)
        }
        Ok(plan) => {
            println!(
                "{}: graph `{}` is valid: {} resources, {} edges",
                args.graph.display(),
                text::escape(&plan.name),
                plan.resources.len(),
                plan.edges.len()
            );
            Ok(ExitCode::SUCCESS)
        }
        Err(errors) => {
            eprintln_in_order!("{errors}");
            Ok(ExitCode::FAILURE)
        }
    }
}
