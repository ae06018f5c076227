//! `kmsg` (0.1): the kernel log records the host's reader keeps, for plugins granted
//! `kmsg`. Errors are plain strings in this version's WIT.

use wasmtime::component::Linker;

use super::wit::kmsg as wkmsg;
use super::wit::{Data, host};
use crate::plugin::grants::Capability;
use crate::plugin::store::HostState;
use crate::sys::kmsg::Kmsg;

pub(super) fn add_to_linker(linker: &mut Linker<HostState>) -> wasmtime::Result<()> {
    wkmsg::add_to_linker::<HostState, Data>(linker, host)
}

/// The host's kernel log reader, if `kmsg` is granted.
fn reader(h: &HostState) -> Result<Kmsg, String> {
    h.granted(Capability::Kmsg).map_err(|e| e.to_string())?;
    h.sys().kmsg.get().map_err(|e| e.to_string())
}

impl wkmsg::Host for HostState {
    async fn read(&mut self, after: Option<u64>) -> wasmtime::Result<Result<wkmsg::Batch, String>> {
        Ok(reader(self).and_then(|k| {
            k.read(after)
                .map(|b| wkmsg::Batch {
                    records: b.records.into_iter().map(|r| r.text.to_string()).collect(),
                    missed: b.missed,
                })
                .map_err(|e| e.to_string())
        }))
    }
    async fn start_seq(&mut self) -> wasmtime::Result<Result<Option<u64>, String>> {
        Ok(reader(self).map(|k| k.start_seq()))
    }
}
