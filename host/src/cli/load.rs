//! The flags of every subcommand that loads plugins (where they come from, their grants,
//! the compile cache, the limits they run under), and loading them into a runtime. The
//! limit flags accept the ranges of the metaparams that override them (`graph::Meta`'s
//! constants), checked while the command line is parsed.

use std::path::PathBuf;
use std::time::Duration;

use clap::Args;

use crate::graph::Meta;
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
    /// Memory cap per plugin instance, in MiB (1 to 4096).
    #[arg(long, value_name = "MIB", default_value_t = 64,
          value_parser = whole(1, Meta::MAX_MEMORY_MIB))]
    plugin_memory: u64,
    /// CPU time one plugin call may use, in milliseconds (1 to 86400000, one day).
    #[arg(long, value_name = "MS", default_value_t = 10_000,
          value_parser = whole(1, Meta::MAX_MILLIS))]
    plugin_cpu: u64,
    /// Wall-clock time one plugin call may take, in milliseconds (1 to 86400000, one
    /// day; metaparam `timeout` overrides it for check-apply).
    #[arg(long, value_name = "MS", default_value_t = 60_000,
          value_parser = whole(1, Meta::MAX_MILLIS))]
    plugin_timeout: u64,
    /// Instances per plugin serving calls in parallel (1 to 1024).
    #[arg(long, value_name = "N", default_value_t = super::plugin::DEFAULT_POOL as u64, value_parser = whole(1, MAX_POOL))]
    plugin_pool: u64,
}

/// Most instances per plugin `--plugin-pool` accepts: 1024 instances at the default
/// memory cap could already claim 64 GiB.
const MAX_POOL: u64 = crate::plugin::shape::MAX_POOL as u64;

/// A clap value parser for a whole number from `min` to `max`: a limit flag refuses 0
/// where 0 would stop every call, and values that would overflow once converted (MiB to
/// bytes), with a message naming the range.
pub(super) fn whole(
    min: u64,
    max: u64,
) -> impl Fn(&str) -> Result<u64, String> + Clone + Send + Sync + 'static {
    move |text| match text.parse::<u64>() {
        Ok(n) if (min..=max).contains(&n) => Ok(n),
        _ => Err(format!("expected a whole number from {min} to {max}")),
    }
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

    /// The limit flags as given, for the hosts a remote run starts (their plugins run
    /// under the same limits).
    pub(super) fn limit_args(&self) -> Vec<String> {
        [
            ("--plugin-memory", self.plugin_memory),
            ("--plugin-cpu", self.plugin_cpu),
            ("--plugin-timeout", self.plugin_timeout),
            ("--plugin-pool", self.plugin_pool),
        ]
        .into_iter()
        .flat_map(|(flag, value)| [flag.to_string(), value.to_string()])
        .collect()
    }

    /// The grants file that is read: `--grants`, or the default one when it exists.
    pub(super) fn grants_in_use(&self) -> Option<PathBuf> {
        self.grants
            .clone()
            .or_else(|| crate::plugin::grants::default_path().filter(|p| p.is_file()))
    }

    /// Start the runtime, whose plugins reach `sys`, and load every plugin.
    pub(super) fn load(&self, sys: &Services) -> anyhow::Result<(Runtime, Registry)> {
        // The parsers kept every value in its range, so these conversions cannot fail on
        // a 64-bit host; they are checked anyway rather than wrapped.
        let too_large = |flag: &str| anyhow::anyhow!("{flag} is too large for this machine");
        let limits = Limits {
            memory_bytes: self
                .plugin_memory
                .checked_mul(1 << 20)
                .and_then(|b| usize::try_from(b).ok())
                .ok_or_else(|| too_large("--plugin-memory"))?,
            cpu: Duration::from_millis(self.plugin_cpu),
            call_timeout: Duration::from_millis(self.plugin_timeout),
            pool_size: usize::try_from(self.plugin_pool).map_err(|_| too_large("--plugin-pool"))?,
        };
        let runtime = Runtime::new(self.cache_dir(), limits, sys.clone())?;
        let mut dirs = registry::default_dirs();
        dirs.extend(self.plugin_dirs.iter().cloned());
        let policy = Policy::load_default(self.grants.as_deref())?;
        let registry = Registry::load(&runtime, &dirs, &policy)?;
        Ok((runtime, registry))
    }
}
