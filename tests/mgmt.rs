//! Graphs written for mgmt, as mgmt's YAML writes them: every param a resource does not
//! set is there with its zero value (`shell: ''`, `timeout: 0`), and the kinds and
//! metaparams mgmt users reach for first (`noop`, `timer`, `autogroup`, `pollint`).
//! The graphs here are written for these tests in mgmt's style (docs/mgmt.md lists how
//! mgmt's own `examples/yaml` fare).

use homeostat_tests::{Running, homeostat, run_converged, stderr, wait_for, write_graph};

#[test]
fn zero_values_mgmt_writes_for_unset_params_are_taken_as_unset() {
    let d = tempfile::tempdir().unwrap();
    let out = d.path().join("ran");
    let g = write_graph(
        d.path(),
        "g.yaml",
        &format!(
            "---\ngraph: mygraph\nresources:\n  exec:\n  - name: exec1\n    cmd: touch {}\n    shell: ''\n    timeout: 0\n    watchcmd: ''\n    watchshell: ''\n    ifcmd: ''\n    ifshell: ''\n    pollint: 0\n    state: present\n  file:\n  - name: empty\n    path: {}\n    content: ''\n    state: exists\nedges: []\n",
            out.display(),
            d.path().join("empty").display()
        ),
    );
    let o = run_converged(&g, "0", &[]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(out.exists(), "the command did not run: {}", stderr(&o));
    // A zero value the schema accepts keeps its meaning: an empty file.
    assert_eq!(std::fs::read(d.path().join("empty")).unwrap(), b"");

    // A zero value for a required param is still refused, at its place.
    let bad = write_graph(
        d.path(),
        "bad.yaml",
        "graph: bad\nresources:\n  file:\n  - name: f\n    path: ''\n",
    );
    let o = homeostat(&["validate", bad.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(1));
    assert!(
        stderr(&o).contains("bad.yaml:5:11: file[f]: invalid param `path`"),
        "{}",
        stderr(&o)
    );
}

#[test]
fn a_timer_pokes_its_dependents_and_noop_hears_its_notifications() {
    let d = tempfile::tempdir().unwrap();
    let log = d.path().join("ticks");
    let g = write_graph(
        d.path(),
        "g.yaml",
        &format!(
            "graph: timer\nresources:\n  timer:\n  - name: t\n    interval: 1\n  exec:\n  - name: tick\n    cmd: echo tick >> {}\n    shell: /bin/sh\n  noop:\n  - name: listener\n    comment: hears the timer\nedges:\n- from: {{kind: timer, name: t}}\n  to: {{kind: exec, name: tick}}\n- from: {{kind: timer, name: t}}\n  to: {{kind: noop, name: listener}}\n  notify: true\n",
            log.display()
        ),
    );
    let r = Running::start(&g, &[]);
    // The first run at start, then one per tick.
    let lines = || {
        std::fs::read_to_string(&log)
            .map(|t| t.lines().count())
            .unwrap_or(0)
    };
    wait_for(|| (lines() >= 3).then_some(())).expect("the timer ticked twice");
    r.wait_log(&["timer[t]: tick"]);
    r.wait_log(&["noop[listener]: received a notification"]);
}

#[test]
fn autogroup_is_accepted_with_a_warning_and_timer_params_are_checked() {
    let d = tempfile::tempdir().unwrap();
    let g = write_graph(
        d.path(),
        "g.yaml",
        "graph: g\nresources:\n  noop:\n  - name: n\n    meta:\n      autogroup: true\n",
    );
    let o = homeostat(&["validate", g.to_str().unwrap()]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(
        stderr(&o).contains("g.yaml:6:7: metaparam `autogroup` of noop[n] has no effect"),
        "{}",
        stderr(&o)
    );
    let bad = write_graph(
        d.path(),
        "bad.yaml",
        "graph: g\nresources:\n  timer:\n  - name: t\n    interval: 0\n",
    );
    let o = homeostat(&["validate", bad.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(1));
    assert!(
        stderr(&o).contains("bad.yaml:5:15: timer[t]: invalid param `interval`"),
        "{}",
        stderr(&o)
    );
}

/// mgmt's exec `pollint`: the resource is checked every N seconds besides its events (an
/// exec without a guard runs at every check).
#[test]
fn exec_pollint_checks_every_interval() {
    let d = tempfile::tempdir().unwrap();
    let log = d.path().join("polled");
    let g = write_graph(
        d.path(),
        "g.yaml",
        &format!(
            "graph: poll\nresources:\n  exec:\n  - name: poll\n    cmd: echo polled >> {}\n    shell: /bin/sh\n    pollint: 1\n",
            log.display()
        ),
    );
    let _r = Running::start(&g, &[]);
    let lines = || {
        std::fs::read_to_string(&log)
            .map(|t| t.lines().count())
            .unwrap_or(0)
    };
    wait_for(|| (lines() >= 3).then_some(())).expect("run at start and at two polls");
}
