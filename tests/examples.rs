//! Every example graph under `examples/` stays valid: the docs link to them, so a param
//! renamed or removed must fail here rather than in a reader's hands.

use homeostat_tests::{homeostat, root, stderr};

#[test]
fn every_example_graph_validates() {
    let dir = root().join("examples");
    let mut checked = 0;
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "yaml") {
            let out = homeostat(&["validate", path.to_str().unwrap()]);
            assert!(
                out.status.success(),
                "{} is not valid:\n{}",
                path.display(),
                stderr(&out)
            );
            checked += 1;
        }
    }
    assert!(checked >= 3, "only {checked} example graphs found");
}
