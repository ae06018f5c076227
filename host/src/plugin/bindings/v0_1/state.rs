//! `state` (0.1): one value per resource, kept by the host between calls and dropped at
//! cleanup. Always available: nothing to grant.

use wasmtime::component::Linker;

use super::wit::state as wstate;
use super::wit::{Data, host};
use crate::plugin::store::HostState;

pub(super) fn add_to_linker(linker: &mut Linker<HostState>) -> wasmtime::Result<()> {
    wstate::add_to_linker::<HostState, Data>(linker, host)
}

impl wstate::Host for HostState {
    async fn get(&mut self) -> wasmtime::Result<Option<String>> {
        Ok(self.state_get())
    }
    async fn set(&mut self, value: String) -> wasmtime::Result<()> {
        self.state_set(value);
        Ok(())
    }
}
