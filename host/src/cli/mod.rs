//! The command line: clap structs, one file per subcommand. The only place `anyhow` is
//! used; it maps errors to exit codes:
//!
//! | code | meaning |
//! |---|---|
//! | 0 | converged (or the graph is valid) |
//! | 1 | the command line, the graph or a plugin is invalid, or the run settled with failed resources |
//! | 2 | `--noop`: changes are pending |
//! | 130 | interrupted: while starting, or twice while running (in-flight check-applies were abandoned) |

/// `eprintln!` after every line logged so far (see [`logging::eprint`]).
macro_rules! eprintln_in_order {
    ($($arg:tt)*) => {
        $crate::cli::logging::eprint(&format!("{}\n", format_args!($($arg)*)))
    };
}

mod ca;
mod cluster;
mod graph;
mod input;
mod load;
mod logging;
mod plugin;
mod remote;
mod run;
mod validate;
mod world;

use std::process::ExitCode;
use std::time::Duration;

use clap::{Parser, Subcommand};

/// homeostat keeps machines in their declared state the instant they drift.
#[derive(Debug, Parser)]
#[command(name = "homeostat", version, about, long_about = None)]
pub struct Cli {
    #[command(subcommand)]
    command: Command,
    /// More log output (-v: debug, -vv: trace). RUST_LOG overrides.
    #[arg(short, long, global = true, action = clap::ArgAction::Count)]
    verbose: u8,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run a graph: watch every resource and repair drift as it happens.
    Run(Box<run::RunArgs>),
    /// Check a graph (YAML, params, plugins, edges, cycles) without applying anything.
    Validate(validate::ValidateArgs),
    /// Print the resolved graph (autoedges included) as Graphviz dot.
    Graph(graph::GraphArgs),
    /// Inspect a plugin file, or start a new plugin crate.
    #[command(subcommand)]
    Plugin(plugin::PluginCommand),
    /// The etcd cluster hosts share: its members and every live host's converged state.
    #[command(subcommand)]
    Cluster(cluster::ClusterCommand),
    /// Make the cluster's TLS certificates: a CA, and one certificate per host.
    #[command(subcommand)]
    Ca(ca::CaCommand),
}

/// Parse the command line, run the subcommand, and map the result to an exit code.
pub fn main() -> ExitCode {
    let started = std::time::Instant::now();
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        // `--help` and `--version` print and exit 0; a bad command line (an unknown flag,
        // a limit out of its range) is an error like an invalid graph: exit 1, never 2,
        // which would read as "`--noop`: changes pending".
        Err(e) => {
            let _ = e.print();
            return if e.use_stderr() {
                ExitCode::FAILURE
            } else {
                ExitCode::SUCCESS
            };
        }
    };
    logging::init(cli.verbose);
    let rt = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln_in_order!("error: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let result = rt.block_on(async {
        match cli.command {
            Command::Run(args) => run::run(*args).await,
            Command::Validate(args) => validate::validate(args).await,
            Command::Graph(args) => graph::graph(args).await,
            Command::Plugin(cmd) => plugin::plugin(cmd),
            Command::Cluster(cmd) => cluster::cluster(cmd).await,
            Command::Ca(cmd) => ca::ca(cmd),
        }
    });
    tracing::debug!("command done {:.1?} after start", started.elapsed());
    // Blocking tasks (e.g. a file read stuck on a slow file system) must not keep the
    // process alive: everything that matters was awaited before the command returned, so
    // a stop (^C) ends the process well within a second.
    rt.shutdown_timeout(Duration::from_millis(500));
    tracing::debug!("runtime shut down {:.1?} after start", started.elapsed());
    let code = match result {
        Ok(code) => code,
        Err(e) => {
            eprintln_in_order!("error: {e:#}");
            ExitCode::FAILURE
        }
    };
    logging::flush();
    code
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Parses `homeostat ARGS`; `Err` holds clap's message.
    fn parse(args: &[&str]) -> Result<Cli, String> {
        Cli::try_parse_from(std::iter::once("homeostat").chain(args.iter().copied()))
            .map_err(|e| e.to_string())
    }

    #[test]
    fn limit_flags_refuse_zero_and_overflow() {
        for sub in ["run", "validate", "graph"] {
            for (flag, bad) in [
                ("--plugin-memory", "0"),
                // MiB shifted left by 20 would wrap past 64 bits.
                ("--plugin-memory", "17592186044416"),
                ("--plugin-memory", "4097"),
                ("--plugin-memory", "-1"),
                ("--plugin-cpu", "0"),
                ("--plugin-cpu", "18446744073709551616"),
                ("--plugin-timeout", "0"),
                ("--plugin-timeout", "86400001"),
                ("--plugin-pool", "0"),
                ("--plugin-pool", "18446744073709551615"),
                ("--plugin-pool", "1.5"),
            ] {
                let arg = format!("{flag}={bad}");
                let e = parse(&[sub, "g.yaml", &arg])
                    .err()
                    .unwrap_or_else(|| panic!("{sub} {flag} {bad} accepted"));
                assert!(
                    e.contains(flag) && e.contains("expected a whole number from"),
                    "{e}"
                );
            }
            for (flag, good) in [
                ("--plugin-memory", "1"),
                ("--plugin-memory", "4096"),
                ("--plugin-cpu", "1"),
                ("--plugin-timeout", "86400000"),
                ("--plugin-pool", "1024"),
            ] {
                parse(&[sub, "g.yaml", flag, good]).unwrap_or_else(|e| panic!("{e}"));
            }
        }
    }

    #[test]
    fn converged_timeout_is_a_sane_number_of_seconds() {
        for bad in [
            "-1", "nan", "NaN", "inf", "-inf", "1e-300", "0.0001", "1e30", "86401", "x", "",
        ] {
            let arg = format!("--converged-timeout={bad}");
            let e = parse(&["run", "g.yaml", &arg])
                .err()
                .unwrap_or_else(|| panic!("--converged-timeout {bad} accepted"));
            assert!(e.contains("--converged-timeout"), "{e}");
        }
        for good in ["0", "0.0", "0.001", "0.5", "2", "86400"] {
            parse(&["run", "g.yaml", "--converged-timeout", good])
                .unwrap_or_else(|e| panic!("{good}: {e}"));
        }
    }
}
