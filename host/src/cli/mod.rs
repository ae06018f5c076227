//! The command line: clap structs, one file per subcommand. The only place `anyhow` is
//! used; it maps errors and results to exit codes ([`exit`]: 0 ok, 1 failed or
//! invalid, 2 changes pending under `--noop`, 64 a wrong command line, 130/143
//! interrupted; `--detailed-exitcodes` for Puppet's 0/2/4/6).

/// `eprintln!` after every line logged so far (see [`logging::eprint`]).
macro_rules! eprintln_in_order {
    ($($arg:tt)*) => {
        $crate::cli::logging::eprint(&format!("{}\n", format_args!($($arg)*)))
    };
}

mod ca;
mod cluster;
pub mod exit;
mod graph;
mod input;
mod load;
mod logging;
mod manual;
mod plugin;
mod remote;
mod report;
mod resource;
mod run;
mod validate;
mod world;

use std::process::ExitCode;
use std::time::Duration;

use clap::{Parser, Subcommand};

/// The commit this binary was built from (`unknown` outside a git checkout).
pub const COMMIT: &str = env!("HOMEOSTAT_COMMIT");

/// `--version`: the version, the commit, and the plugin API versions this host loads.
static VERSION: std::sync::LazyLock<String> = std::sync::LazyLock::new(|| {
    format!(
        "{} (commit {COMMIT}; plugin API homeostat:resource {})",
        env!("CARGO_PKG_VERSION"),
        crate::plugin::manifest::SUPPORTED_APIS.join(", ")
    )
});

/// homeostat keeps machines in their declared state the instant they drift.
#[derive(Debug, Parser)]
#[command(name = "homeostat", version = VERSION.as_str(), about, long_about = None)]
pub struct Cli {
    #[command(subcommand)]
    command: Command,
    /// More log output (-v: debug, -vv: trace). RUST_LOG overrides.
    #[arg(short, long, global = true, action = clap::ArgAction::Count)]
    verbose: u8,
    /// Less log output: warnings and errors only (the closing summary is still printed).
    #[arg(short, long, global = true, conflicts_with = "verbose")]
    quiet: bool,
    /// How log lines are written: text, or one JSON object per line.
    #[arg(
        long,
        global = true,
        value_enum,
        default_value_t,
        value_name = "FORMAT"
    )]
    log_format: logging::Format,
    /// Colour in text log lines: auto (a terminal, and NO_COLOR unset), always, never.
    #[arg(long, global = true, value_enum, default_value_t, value_name = "WHEN")]
    color: logging::Color,
}

/// The exit codes of commands that only check or print (docs/exit-codes.md), for their
/// `--help`.
macro_rules! exit_plain {
    () => {
        "Exit codes: 0 done, 1 failed (the error says why), 64 a wrong command line."
    };
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run a graph: watch every resource and repair drift as it happens.
    #[command(after_help = "\
Exit codes (docs/exit-codes.md):
  0  ran, nothing failed          1  resources failed, or the graph or a plugin is invalid
  2  --noop: changes pending      64 a wrong command line
  130, 143  stopped by SIGINT, SIGTERM before the run settled
  With --detailed-exitcodes: 0 nothing to do, 2 changes, 4 failures, 6 both.

Examples:
  homeostat run examples/hello.yaml
  homeostat run site.yaml --noop --converged-timeout 0 --detailed-exitcodes --report -")]
    Run(Box<run::RunArgs>),
    /// Check a graph (YAML, params, plugins, edges, cycles) without applying anything.
    #[command(after_help = "\
Exit codes: 0 the graph is valid, 1 it is not (every error with its line and column),
64 a wrong command line.

Examples:
  homeostat validate examples/hello.yaml
  homeostat validate site.yaml --plugin-dir ./plugins")]
    Validate(validate::ValidateArgs),
    /// Print the resolved graph (autoedges included) as Graphviz dot.
    #[command(after_help = concat!("\
Examples:
  homeostat graph examples/hello.yaml | dot -Tsvg > hello.svg
  homeostat graph site.yaml > site.dot

", exit_plain!()))]
    Graph(graph::GraphArgs),
    /// Print what a resource would manage, as it is now: a graph that declares it.
    #[command(after_help = "\
Exit codes: 0 described, 1 the kind, its params or the plugin refused (a kind that
cannot describe says so), 64 a wrong command line.

Examples:
  homeostat resource file /etc/hosts
  homeostat resource file /etc/ssh/ > ssh.yaml")]
    Resource(resource::ResourceArgs),
    /// Inspect a plugin file, or start a new plugin crate.
    #[command(subcommand, after_help = concat!("\
Examples:
  homeostat plugin inspect bundled:file
  homeostat plugin new ini --dir ./ini

", exit_plain!()))]
    Plugin(plugin::PluginCommand),
    /// The etcd cluster hosts share: its members and every live host's converged state.
    #[command(subcommand, after_help = concat!("\
Examples:
  homeostat cluster status --seeds http://10.0.0.1:2379
  homeostat cluster allow web1 --seeds https://10.0.0.1:2379

", exit_plain!()))]
    Cluster(cluster::ClusterCommand),
    /// Make the cluster's TLS certificates: a CA, and one certificate per host.
    #[command(subcommand, after_help = concat!("\
Examples:
  homeostat ca init
  homeostat ca issue web1 --ip 10.0.0.11

", exit_plain!()))]
    Ca(ca::CaCommand),
    /// Print a shell completion script (bash, zsh, fish, elvish, powershell).
    #[command(after_help = concat!("\
Examples:
  homeostat completions bash > /etc/bash_completion.d/homeostat
  homeostat completions zsh > \"${fpath[1]}/_homeostat\"

", exit_plain!()))]
    Completions(manual::CompletionsArgs),
    /// Print the man page, or write every page into a directory with --out.
    #[command(after_help = concat!("\
Examples:
  homeostat man | man -l -
  homeostat man --out /usr/local/share/man/man1

", exit_plain!()))]
    Man(manual::ManArgs),
}

/// Parse the command line, run the subcommand, and map the result to an exit code.
pub fn main() -> ExitCode {
    let started = std::time::Instant::now();
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        // `--help` and `--version` print and exit 0; a bad command line (an unknown flag,
        // a limit out of its range) has a code of its own, never one a run ends with.
        Err(e) => {
            let _ = e.print();
            return if e.use_stderr() {
                ExitCode::from(exit::USAGE)
            } else {
                ExitCode::SUCCESS
            };
        }
    };
    logging::init(logging::Options {
        verbose: cli.verbose,
        quiet: cli.quiet,
        format: cli.log_format,
        color: cli.color,
    });
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
            Command::Resource(args) => resource::resource(args).await,
            Command::Plugin(cmd) => plugin::plugin(cmd),
            Command::Cluster(cmd) => cluster::cluster(cmd).await,
            Command::Ca(cmd) => ca::ca(cmd),
            Command::Completions(args) => manual::completions(args),
            Command::Man(args) => manual::man(args),
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
