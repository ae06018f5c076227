//! The command line: clap structs, one file per subcommand. The only place `anyhow` is
//! used; it maps errors to exit codes:
//!
//! | code | meaning |
//! |---|---|
//! | 0 | converged (or the graph is valid) |
//! | 1 | the graph or a plugin is invalid, or the run settled with failed resources |
//! | 2 | `--noop`: changes are pending |
//! | 130 | interrupted twice (in-flight check-applies were abandoned) |

/// `eprintln!` after every line logged so far (see [`logging::eprint`]).
macro_rules! eprintln_in_order {
    ($($arg:tt)*) => {
        $crate::cli::logging::eprint(&format!("{}\n", format_args!($($arg)*)))
    };
}

mod graph;
mod logging;
mod plugin;
mod run;
mod validate;

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::{Args, Parser, Subcommand};

use crate::plugin::capabilities::fs::FsHost;
use crate::plugin::grants::Policy;
use crate::plugin::registry::{self, Registry};
use crate::plugin::runtime::{Limits, Runtime};

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
    Run(run::RunArgs),
    /// Check a graph (YAML, params, plugins, edges, cycles) without applying anything.
    Validate(validate::ValidateArgs),
    /// Print the resolved graph (autoedges included) as Graphviz dot.
    Graph(graph::GraphArgs),
    /// Inspect a plugin file, or start a new plugin crate.
    #[command(subcommand)]
    Plugin(plugin::PluginCommand),
}

/// Where plugins come from and the limits they run under; shared by subcommands.
#[derive(Debug, Args)]
pub struct PluginArgs {
    /// Load third-party plugins (`*.wasm`) from this directory (repeatable).
    #[arg(long = "plugin-dir", value_name = "DIR")]
    plugin_dirs: Vec<PathBuf>,
    /// The grants policy for third-party plugins (default: /etc/homeostat/grants.toml for
    /// root, else $XDG_CONFIG_HOME/homeostat/grants.toml or ~/.config/homeostat/grants.toml).
    #[arg(long, value_name = "FILE")]
    grants: Option<PathBuf>,
    /// Where compiled plugins are cached (default: $XDG_CACHE_HOME/homeostat or
    /// ~/.cache/homeostat; /var/cache/homeostat for root).
    #[arg(long, value_name = "DIR")]
    cache_dir: Option<PathBuf>,
    /// Use no cache: compile the plugins, and plan the graph (`run`), on every start.
    #[arg(long)]
    no_cache: bool,
    /// Memory cap per plugin instance, in MiB.
    #[arg(long, value_name = "MIB", default_value_t = 64)]
    plugin_memory: usize,
    /// CPU time one plugin call may use, in milliseconds.
    #[arg(long, value_name = "MS", default_value_t = 10_000)]
    plugin_cpu: u64,
    /// Wall-clock time one plugin call may take, in milliseconds (metaparam `timeout`
    /// overrides it for check-apply).
    #[arg(long, value_name = "MS", default_value_t = 60_000)]
    plugin_timeout: u64,
    /// Instances per plugin serving calls in parallel.
    #[arg(long, value_name = "N", default_value_t = 64)]
    plugin_pool: usize,
}

impl PluginArgs {
    fn cache_dir(&self) -> Option<PathBuf> {
        if self.no_cache {
            return None;
        }
        if let Some(d) = &self.cache_dir {
            return Some(d.clone());
        }
        if rustix::process::geteuid().is_root() {
            return Some(PathBuf::from("/var/cache/homeostat"));
        }
        std::env::var_os("XDG_CACHE_HOME")
            .map(PathBuf::from)
            .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache")))
            .map(|d| d.join("homeostat"))
    }

    /// Start the runtime and load every plugin.
    pub fn load(&self) -> anyhow::Result<(Runtime, Registry)> {
        let limits = Limits {
            memory_bytes: self.plugin_memory << 20,
            cpu: Duration::from_millis(self.plugin_cpu),
            call_timeout: Duration::from_millis(self.plugin_timeout),
            pool_size: self.plugin_pool.max(1),
        };
        let runtime = Runtime::new(self.cache_dir(), limits, FsHost::new())?;
        let mut dirs = registry::default_dirs();
        dirs.extend(self.plugin_dirs.iter().cloned());
        let policy = Policy::load_default(self.grants.as_deref())?;
        let registry = Registry::load(&runtime, &dirs, &policy)?;
        Ok((runtime, registry))
    }
}

/// Parse the command line, run the subcommand, and map the result to an exit code.
pub fn main() -> ExitCode {
    let started = std::time::Instant::now();
    let cli = Cli::parse();
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
            Command::Run(args) => run::run(args).await,
            Command::Validate(args) => validate::validate(args).await,
            Command::Graph(args) => graph::graph(args).await,
            Command::Plugin(cmd) => plugin::plugin(cmd),
        }
    });
    tracing::debug!("command done {:.1?} after start", started.elapsed());
    // Blocking tasks (e.g. a stuck file read) must not keep the process alive.
    rt.shutdown_timeout(Duration::from_secs(2));
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
