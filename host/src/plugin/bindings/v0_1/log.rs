//! `log` (0.1): leveled log lines into the host's log, prefixed with `kind[name]`. Always
//! available: nothing to grant.

use wasmtime::component::Linker;

use super::wit::log as wlog;
use super::wit::{Data, host};
use crate::plugin::store::HostState;

pub(super) fn add_to_linker(linker: &mut Linker<HostState>) -> wasmtime::Result<()> {
    wlog::add_to_linker::<HostState, Data>(linker, host)
}

impl wlog::Host for HostState {
    async fn log(&mut self, level: wlog::Level, message: String) -> wasmtime::Result<()> {
        let who = self.who();
        match level {
            wlog::Level::Trace => tracing::trace!(target: "homeostat::plugin", "{who}: {message}"),
            wlog::Level::Debug => tracing::debug!(target: "homeostat::plugin", "{who}: {message}"),
            wlog::Level::Info => tracing::info!(target: "homeostat::plugin", "{who}: {message}"),
            wlog::Level::Warn => tracing::warn!(target: "homeostat::plugin", "{who}: {message}"),
            wlog::Level::Error => tracing::error!(target: "homeostat::plugin", "{who}: {message}"),
        }
        Ok(())
    }
}
