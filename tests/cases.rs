//! Conformance cases by directory: `tests/cases/<name>/graph.yaml`, plus
//! `expected-error.txt` when the graph must be refused. One test per directory runs
//! `homeostat validate` on it; every non-empty line of `expected-error.txt` must appear
//! in the error output (so it can pin `graph.yaml:LINE:COLUMN` and the message), and a
//! case without it must validate.

use std::path::Path;

use homeostat_tests::{homeostat_in, root, stderr};
use libtest_mimic::{Arguments, Failed, Trial};

fn check(dir: &Path) -> Result<(), Failed> {
    let out = homeostat_in(dir, &["validate", "graph.yaml"]);
    let err = stderr(&out);
    match std::fs::read_to_string(dir.join("expected-error.txt")) {
        Ok(expected) => {
            if out.status.success() {
                return Err(format!(
                    "the graph was accepted; expected an error containing:\n{expected}"
                )
                .into());
            }
            for line in expected.lines().map(str::trim).filter(|l| !l.is_empty()) {
                if !err.contains(line) {
                    return Err(
                        format!("the error does not contain {line:?}; it was:\n{err}").into(),
                    );
                }
            }
            if err.contains("panicked") {
                return Err(format!("homeostat panicked:\n{err}").into());
            }
            Ok(())
        }
        Err(_) if out.status.success() => Ok(()),
        Err(_) => Err(format!("a valid graph was refused:\n{err}").into()),
    }
}

fn main() {
    let args = Arguments::from_args();
    let mut dirs: Vec<_> = std::fs::read_dir(root().join("tests/cases"))
        .expect("tests/cases exists")
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.join("graph.yaml").is_file())
        .collect();
    dirs.sort();
    let trials = dirs
        .into_iter()
        .map(|dir| {
            let name = dir
                .file_name()
                .expect("case dir has a name")
                .to_string_lossy()
                .into_owned();
            Trial::test(name, move || check(&dir))
        })
        .collect();
    libtest_mimic::run(&args, trials).exit();
}
