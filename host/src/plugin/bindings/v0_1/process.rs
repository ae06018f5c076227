//! `process` (0.1): the calling resource's own command lines, for plugins granted
//! `process`; the work is [`crate::sys::process::Processes`]'s.

use wasmtime::component::Linker;

use super::wit::{Data, host};
use super::wit::{command_in, process as wproc, wt};
use crate::plugin::grants::Capability;
use crate::plugin::store::HostState;
use crate::sys::process::{ErrorCode, ProcessError, check_argv};

pub(super) fn add_to_linker(linker: &mut Linker<HostState>) -> wasmtime::Result<()> {
    wproc::add_to_linker::<HostState, Data>(linker, host)
}

fn proc_err(e: ProcessError) -> wproc::Error {
    use ErrorCode as C;
    wproc::Error {
        code: match e.code {
            C::NotAllowed => wproc::ErrorCode::NotAllowed,
            C::NotFound => wproc::ErrorCode::NotFound,
            C::PermissionDenied => wproc::ErrorCode::PermissionDenied,
            C::UnknownId => wproc::ErrorCode::UnknownId,
            C::TimedOut => wproc::ErrorCode::TimedOut,
            C::Other => wproc::ErrorCode::Other,
        },
        message: e.message,
    }
}

impl wproc::Host for HostState {
    async fn run(
        &mut self,
        cmd: wt::Command,
        stdin: Option<Vec<u8>>,
        timeout_ms: Option<u32>,
    ) -> wasmtime::Result<Result<wproc::Output, wproc::Error>> {
        let spec = command_in(cmd);
        let fp = match self.granted(Capability::Process) {
            Ok(fp) => fp,
            Err(e) => {
                return Ok(Err(wproc::Error {
                    code: wproc::ErrorCode::NotAllowed,
                    message: e.to_string(),
                }));
            }
        };
        if let Err(e) = check_argv(&fp, &spec.argv) {
            return Ok(Err(proc_err(e)));
        }
        let timeout = timeout_ms.map(|ms| std::time::Duration::from_millis(u64::from(ms)));
        let processes = self.sys().processes.clone();
        Ok(processes
            .run(&spec, stdin, timeout, fp.owner.as_ref())
            .await
            .map(|o| wproc::Output {
                exit_code: o.exit_code,
                stdout: o.stdout,
                stderr: o.stderr,
                truncated: o.truncated,
            })
            .map_err(proc_err))
    }
}
