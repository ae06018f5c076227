//! `homeostat run GRAPH.yaml`: run the graph until a signal, or until it has converged
//! for `--converged-timeout` seconds.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::Args;
use tokio::signal::unix::{SignalKind, signal};

use super::PluginArgs;
use crate::engine::{self, RunOptions, Settled, Stopped};
use crate::watch::WatchHub;

#[derive(Debug, Args)]
pub struct RunArgs {
    /// The graph file (YAML).
    graph: PathBuf,
    /// Exit once every resource has been converged for N seconds: 0 when all are in
    /// their declared state, 1 when some failed.
    #[arg(long, value_name = "N")]
    converged_timeout: Option<f64>,
    /// Change nothing: report what would change (exit 2 when something would).
    #[arg(long)]
    noop: bool,
    #[command(flatten)]
    plugins: PluginArgs,
}

pub async fn run(args: RunArgs) -> anyhow::Result<ExitCode> {
    let (_runtime, registry) = args.plugins.load()?;
    let plan = match crate::plan::load(&args.graph, &registry).await {
        Ok(plan) => plan,
        Err(errors) => {
            eprintln!("{errors}");
            return Ok(ExitCode::FAILURE);
        }
    };
    let converged_timeout = match args.converged_timeout {
        Some(s) if !(s.is_finite() && s >= 0.0) => {
            anyhow::bail!("--converged-timeout must be a number of seconds >= 0")
        }
        Some(s) => Some(Duration::from_secs_f64(s)),
        None => None,
    };
    tracing::info!(
        "running graph `{}`: {} resources, {} edges",
        plan.name,
        plan.resources.len(),
        plan.edges.len()
    );
    let hub = WatchHub::new()?;
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let mut sigint = signal(SignalKind::interrupt())?;
    let mut sigterm = signal(SignalKind::terminate())?;
    tokio::spawn(async move {
        tokio::select! { _ = sigint.recv() => {}, _ = sigterm.recv() => {} }
        tracing::info!(
            "stopping: waiting for check-applies in progress (signal again to abandon them)"
        );
        let _ = stop_tx.send(true);
        tokio::select! { _ = sigint.recv() => {}, _ = sigterm.recv() => {} }
        eprintln!("interrupted: abandoning check-applies in progress");
        // exit() runs no destructors: kill the commands still running ourselves.
        crate::plugin::capabilities::process::kill_all();
        std::process::exit(130);
    });
    let summary = engine::run(
        plan,
        hub,
        RunOptions {
            noop: args.noop,
            converged_timeout,
        },
        stop_rx,
    )
    .await;
    let how = match summary.stopped {
        Stopped::Shutdown => "stopped",
        Stopped::Settled(Settled::Converged) => "converged",
        Stopped::Settled(Settled::WithFailures) => "settled with failures",
    };
    eprintln!(
        "{how} after {:.2}s: {} resources, {} {}, {} failed",
        summary.elapsed.as_secs_f64(),
        summary.resources,
        summary.changes,
        if args.noop {
            "changes pending"
        } else {
            "changes"
        },
        summary.failed
    );
    Ok(match summary.stopped {
        _ if summary.failed > 0 => ExitCode::FAILURE,
        _ if args.noop && summary.pending > 0 => ExitCode::from(2),
        _ => ExitCode::SUCCESS,
    })
}
