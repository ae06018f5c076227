//! The flag that bounds the graph file, shared by every subcommand that reads one (`run`,
//! `validate`, `graph`). The other files homeostat reads from outside have fixed caps
//! (see [`crate::sys::input`] and the user guide's "Input limits").

use clap::Args;

use crate::plan::DEFAULT_MAX_GRAPH_MIB;

#[derive(Debug, Args)]
pub(super) struct GraphFileArgs {
    /// Largest graph file read, in MiB: a bigger one (sparse or not) is refused before it
    /// is read.
    #[arg(
        long = "max-graph-size",
        value_name = "MIB",
        default_value_t = DEFAULT_MAX_GRAPH_MIB,
        value_parser = clap::value_parser!(u64).range(1..=1 << 20)
    )]
    max_graph_mib: u64,
}

impl GraphFileArgs {
    /// The cap in bytes.
    pub(super) fn max_bytes(&self) -> u64 {
        self.max_graph_mib << 20
    }
}
