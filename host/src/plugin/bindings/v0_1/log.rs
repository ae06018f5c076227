//! `log` (0.1): leveled log lines into the host's log, prefixed with `kind[name]`. Always
//! available: nothing to grant. A message is cut at [`MAX_LOG_MESSAGE`] bytes (with a
//! marker) and its control characters escaped: a plugin cannot forge a log line with a
//! newline, nor reach the operator's terminal with an escape sequence.

use wasmtime::component::Linker;

use super::wit::log as wlog;
use super::wit::{Data, host};
use crate::plugin::store::HostState;
use crate::plugin::types::MAX_LOG_MESSAGE;
use crate::sys::text;

pub(super) fn add_to_linker(linker: &mut Linker<HostState>) -> wasmtime::Result<()> {
    wlog::add_to_linker::<HostState, Data>(linker, host)
}

impl wlog::Host for HostState {
    async fn log(&mut self, level: wlog::Level, message: String) -> wasmtime::Result<()> {
        let who = self.who();
        let message = text::one_line(message, MAX_LOG_MESSAGE);
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
