//! The flags of every subcommand that loads plugins (where they come from, their grants,
//! the compile cache, the limits they run under), and loading them into a runtime.

use std::path::PathBuf;
use std::time::Duration;

use clap::Args;

use crate::plugin::grants::Policy;
use crate::plugin::registry::{self, Registry};
use crate::plugin::runtime::Runtime;
use crate::plugin::store::Limits;
use crate::sys::Services;

/// Where plugins come from and the limits they run under; shared by subcommands.
#[derive(Debug, Args)]
pub(super) struct PluginArgs {
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
    pub(super) fn cache_dir(&self) -> Option<PathBuf> {
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

    /// Start the runtime, whose plugins reach `sys`, and load every plugin.
    pub(super) fn load(&self, sys: &Services) -> anyhow::Result<(Runtime, Registry)> {
        let limits = Limits {
            memory_bytes: self.plugin_memory << 20,
            cpu: Duration::from_millis(self.plugin_cpu),
            call_timeout: Duration::from_millis(self.plugin_timeout),
            pool_size: self.plugin_pool.max(1),
        };
        let runtime = Runtime::new(self.cache_dir(), limits, sys.clone())?;
        let mut dirs = registry::default_dirs();
        dirs.extend(self.plugin_dirs.iter().cloned());
        let policy = Policy::load_default(self.grants.as_deref())?;
        let registry = Registry::load(&runtime, &dirs, &policy)?;
        Ok((runtime, registry))
    }
}
