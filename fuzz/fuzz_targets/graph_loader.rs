//! Any bytes as a graph file, through everything `homeostat validate` checks before the
//! plugins' own `validate`: `homeostat::graph::fuzzing::graph_loader` panics when the
//! loader panics or an invariant breaks (an error located outside the file, a name or a
//! number out of its range in an accepted graph), which libFuzzer reports as a crash.
//! The property tests of `host/src/graph/proptests.rs` call the same function.

#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    homeostat::graph::fuzzing::graph_loader(data);
});
