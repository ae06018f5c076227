//! Engine rules, end to end: the real binary runs graphs of the `steer` test plugin
//! (tests/plugins/steer), whose check-applies log `steer NAME start refresh=.. in=..` and
//! `steer NAME end ..`. Ordering, overlap and refresh are read from that log, never
//! from timing; the only durations asserted are lower bounds the engine guarantees
//! (a rate limit spaces runs at least 1/limit apart).

use std::path::Path;
use std::process::ExitStatus;

use homeostat_tests::{
    Running, homeostat_in, log_time, run_converged, stderr, test_plugins, wait_content, wait_for,
    write_graph,
};

/// Write `yaml` (with `{dir}` replaced by `dir`) as `dir/graph.yaml`.
fn graph(dir: &Path, yaml: &str) -> std::path::PathBuf {
    write_graph(
        dir,
        "graph.yaml",
        &yaml.replace("{dir}", &dir.display().to_string()),
    )
}

/// `homeostat run` on `yaml` with the test plugins loaded.
fn start(dir: &Path, yaml: &str, extra: &[&str]) -> Running {
    let g = graph(dir, yaml);
    let plugins = test_plugins();
    let mut args = vec!["--plugin-dir", plugins.to_str().expect("utf-8 path")];
    args.extend_from_slice(extra);
    Running::start(&g, &args)
}

/// Run to convergence (`--converged-timeout 0.5`) and return the exit status.
fn converge(dir: &Path, yaml: &str) -> (Running, ExitStatus) {
    let mut r = start(dir, yaml, &["--converged-timeout", "0.5"]);
    let status = r.wait_exit();
    (r, status)
}

/// Index of the first log line containing every needle.
fn at(log: &[String], needles: &[&str]) -> usize {
    log.iter()
        .position(|l| needles.iter().all(|n| l.contains(n)))
        .unwrap_or_else(|| panic!("no line with {needles:?} in:\n{}", log.join("\n")))
}

fn touch(path: &Path) {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    std::fs::write(path, now.as_nanos().to_string()).expect("touch");
}

/// Let the engine act on whatever it was just told before counting what it did.
fn settle() {
    std::thread::sleep(std::time::Duration::from_millis(400));
}

#[test]
fn notify_refreshes_only_after_the_upstream_changed() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let r = start(
        d,
        r#"
graph: notify
resources:
  steer:
  - name: a
    state: {dir}/a
    watch: {dir}/poke-a
  - name: c
    state: {dir}/c
    change: refresh
    watch: {dir}/poke-c
edges:
- from: {kind: steer, name: a}
  to: {kind: steer, name: c}
  notify: true
"#,
        &[],
    );
    // a changes on its first run, so c's first run is refreshed.
    r.wait_log(&["steer c start refresh=true"]);
    r.wait_log(&["steer[c]: refreshed"]);
    // a runs again without changing anything: c is neither refreshed nor run.
    touch(&d.join("poke-a"));
    wait_for(|| (r.count_log(&["steer a end changed=false"]) >= 1).then_some(()))
        .expect("a ran again");
    settle();
    assert_eq!(
        r.count_log(&["steer c start"]),
        1,
        "c ran without a change upstream"
    );
    // c's own event runs it without refresh: the flag was cleared by its success.
    touch(&d.join("poke-c"));
    r.wait_log(&["steer c start refresh=false"]);
    settle();
    assert_eq!(r.count_log(&["steer c start refresh=true"]), 1);
}

#[test]
fn a_refresh_survives_a_failed_check_apply_and_its_retry() {
    let dir = tempfile::tempdir().unwrap();
    let (r, status) = converge(
        dir.path(),
        r#"
graph: refresh-retry
resources:
  steer:
  - name: a
    state: {dir}/a
  - name: c
    state: {dir}/c
    change: refresh
    fail: 1
    meta: {retry: 2, delay: 50}
edges:
- from: {kind: steer, name: a}
  to: {kind: steer, name: c}
  notify: true
"#,
    );
    assert!(status.success(), "{status}");
    let log = r.log();
    let first = at(&log, &["steer c start refresh=true"]);
    let failed = at(&log, &["steer[c]: failing as asked"]);
    let retried = log
        .iter()
        .skip(failed)
        .position(|l| l.contains("steer c start refresh=true"))
        .expect("the retry was refreshed too");
    assert!(first < failed && retried > 0);
    at(&log, &["steer[c]: refreshed"]);
}

#[test]
fn dependencies_order_runs_and_independent_branches_overlap() {
    let dir = tempfile::tempdir().unwrap();
    let (r, status) = converge(
        dir.path(),
        r#"
graph: order
resources:
  steer:
  - name: a
    state: {dir}/a
    sleep_ms: 300
  - name: b
    state: {dir}/b
    sleep_ms: 300
  - name: c
    state: {dir}/c
edges:
- from: {kind: steer, name: a}
  to: {kind: steer, name: c}
- from: {kind: steer, name: b}
  to: {kind: steer, name: c}
"#,
    );
    assert!(status.success(), "{status}");
    let log = r.log();
    let (a0, a1) = (at(&log, &["steer a start"]), at(&log, &["steer a end"]));
    let (b0, b1) = (at(&log, &["steer b start"]), at(&log, &["steer b end"]));
    let c0 = at(&log, &["steer c start"]);
    assert!(
        a0 < b1 && b0 < a1,
        "a and b did not overlap:\n{}",
        log.join("\n")
    );
    assert!(c0 > a1 && c0 > b1, "c ran before its dependencies finished");
}

#[test]
fn a_failed_upstream_blocks_its_downstream_until_it_recovers() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let r = start(
        d,
        r#"
graph: blocked
resources:
  steer:
  - name: a
    state: {dir}/a
    fail: 1
    watch: {dir}/poke-a
  - name: c
    state: {dir}/c
edges:
- from: {kind: steer, name: a}
  to: {kind: steer, name: c}
"#,
        &[],
    );
    r.wait_log(&["steer[c]: blocked: waiting for steer[a], which failed"]);
    assert_eq!(r.count_log(&["steer c start"]), 0);
    touch(&d.join("poke-a"));
    r.wait_log(&["steer[a]: recovered"]);
    r.wait_log(&["steer[c]: unblocked"]);
    r.wait_log(&["steer c start"]);
}

/// The most calls of `names` in progress at once, from their start/end lines.
fn max_overlap(log: &[String], names: &[&str]) -> usize {
    let (mut now, mut max) = (0usize, 0usize);
    for line in log {
        for n in names {
            if line.contains(&format!("steer {n} start")) {
                now += 1;
                max = max.max(now);
            } else if line.contains(&format!("steer {n} end")) {
                now -= 1;
            }
        }
    }
    max
}

#[test]
fn semaphores_bound_how_many_run_at_once() {
    let dir = tempfile::tempdir().unwrap();
    let mut yaml = String::from("graph: sema\nresources:\n  steer:\n");
    for (name, sema) in [
        ("x1", "one"),
        ("x2", "one"),
        ("x3", "one"),
        ("y1", "two:2"),
        ("y2", "two:2"),
        ("y3", "two:2"),
        ("y4", "two:2"),
    ] {
        yaml.push_str(&format!(
            "  - name: {name}\n    state: {{dir}}/{name}\n    sleep_ms: 150\n    meta: {{sema: [\"{sema}\"]}}\n"
        ));
    }
    let (r, status) = converge(dir.path(), &yaml);
    assert!(status.success(), "{status}");
    let log = r.log();
    assert_eq!(max_overlap(&log, &["x1", "x2", "x3"]), 1);
    assert!(max_overlap(&log, &["y1", "y2", "y3", "y4"]) <= 2);
    assert_eq!(r.count_log(&["end changed=true"]), 7);
}

#[test]
fn poll_reruns_check_apply_and_still_converges() {
    let dir = tempfile::tempdir().unwrap();
    let mut r = start(
        dir.path(),
        r#"
graph: poll
resources:
  steer:
  - name: p
    state: {dir}/p
    meta: {poll: 1}
"#,
        &["--converged-timeout", "2.5"],
    );
    let status = r.wait_exit();
    assert!(
        status.success(),
        "a resource polling without changes kept the graph unconverged"
    );
    assert!(r.count_log(&["steer p start"]) >= 2, "never polled");
    r.wait_log(&["converged after"]);
}

#[test]
fn a_rate_limit_spaces_and_coalesces_events() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let r = start(
        d,
        r#"
graph: limit
resources:
  steer:
  - name: l
    state: {dir}/l
    change: never
    watch: {dir}/poke
    meta: {limit: 4, burst: 1}
"#,
        &[],
    );
    r.wait_log(&["steer l end"]);
    for _ in 0..20 {
        touch(&d.join("poke"));
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
    std::thread::sleep(std::time::Duration::from_millis(1200));
    let starts: Vec<f64> = r
        .log()
        .iter()
        .filter(|l| l.contains("steer l start"))
        .map(|l| log_time(l))
        .collect();
    assert!(starts.len() >= 2, "events did not run the resource");
    assert!(
        starts.len() < 21,
        "events were not coalesced: {} runs",
        starts.len()
    );
    // 0.25 s apart in the engine; the log lines come from inside the calls, so allow for
    // scheduling jitter (without the limit they would be milliseconds apart).
    for w in starts.windows(2) {
        assert!(
            w[1] - w[0] >= 0.2,
            "runs {:.3}s apart with limit 4/s",
            w[1] - w[0]
        );
    }
}

#[test]
fn hidden_resources_are_never_applied_but_do_not_block() {
    let dir = tempfile::tempdir().unwrap();
    let (r, status) = converge(
        dir.path(),
        r#"
graph: hidden
resources:
  steer:
  - name: h
    state: {dir}/h
    meta: {hidden: true}
  - name: s
    state: {dir}/s
edges:
- from: {kind: steer, name: h}
  to: {kind: steer, name: s}
"#,
    );
    assert!(status.success(), "{status}");
    assert_eq!(r.count_log(&["steer h start"]), 0);
    r.wait_log(&["steer s end changed=true"]);
    assert!(!dir.path().join("h").exists());
}

#[test]
fn send_recv_maps_values_and_a_new_value_reapplies_the_receiver() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let yaml = r#"
graph: sendrecv
resources:
  steer:
  - name: a
    state: {dir}/a
    out: "first value"
  file:
  - name: report
    path: {dir}/report.txt
edges:
- from: {kind: steer, name: a}
  to: {kind: file, name: report}
  send: {out: content}
"#;
    let r = start(d, yaml, &[]);
    wait_content(&d.join("report.txt"), "first value");
    // A new sent value (via a live edit of the sender) rewrites the receiver.
    graph(d, &yaml.replace("first value", "second value"));
    wait_content(&d.join("report.txt"), "second value");
    r.wait_log(&["file[report]: content:"]);
}

#[test]
fn live_swap_keeps_unchanged_resources_and_rejects_a_bad_graph() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let before = r#"
graph: swap
resources:
  steer:
  - name: keep
    state: {dir}/keep
    watch: {dir}/poke
  - name: edit
    state: {dir}/edit
  - name: gone
    state: {dir}/gone
"#;
    let r = start(d, before, &[]);
    for n in ["keep", "edit", "gone"] {
        r.wait_log(&[&format!("steer {n} end")]);
    }
    let after = r#"
graph: swap
resources:
  steer:
  - name: keep
    state: {dir}/keep
    watch: {dir}/poke
  - name: edit
    state: {dir}/edit
    sleep_ms: 1
  - name: new
    state: {dir}/new
edges:
- from: {kind: steer, name: keep}
  to: {kind: steer, name: new}
"#;
    graph(d, after);
    r.wait_log(&["swapped in: 1 unchanged, 1 replaced, 1 added, 1 removed"]);
    r.wait_log(&["steer[edit]: changed in the new graph; replacing it"]);
    r.wait_log(&["steer[gone]: not in the new graph; removing it"]);
    r.wait_log(&["steer new start"]);
    wait_for(|| (r.count_log(&["steer edit start"]) >= 2).then_some(())).expect("edit re-ran");
    settle();
    assert_eq!(
        r.count_log(&["steer keep start"]),
        1,
        "an unchanged resource was re-applied"
    );

    // A cycle is rejected; the running graph stays and still reacts to events.
    let cycle =
        format!("{after}- from: {{kind: steer, name: new}}\n  to: {{kind: steer, name: keep}}\n");
    graph(d, &cycle);
    r.wait_log(&["the new version is invalid; still running the previous graph"]);
    r.wait_log(&["cycle"]);
    touch(&d.join("poke"));
    // (>= 2: one write can arrive as two inotify events.)
    wait_for(|| (r.count_log(&["steer keep start"]) >= 2).then_some(()))
        .expect("the old graph stopped reacting after a rejected swap");
}

#[test]
fn converged_timeout_waits_for_retries() {
    let dir = tempfile::tempdir().unwrap();
    let mut r = start(
        dir.path(),
        r#"
graph: retry
resources:
  steer:
  - name: r
    state: {dir}/r
    fail: 2
    meta: {retry: -1, delay: 600}
"#,
        &["--converged-timeout", "0.2"],
    );
    let status = r.wait_exit();
    assert!(status.success(), "{status}");
    let log = r.log();
    assert_eq!(r.count_log(&["failing as asked"]), 2);
    assert!(at(&log, &["steer r end changed=true"]) < at(&log, &["converged after"]));
}

#[test]
fn first_signal_finishes_in_flight_work_second_cancels_it() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let slow = r#"
graph: slow
resources:
  steer:
  - name: slow
    state: {dir}/slow
    sleep_ms: 1500
"#;
    let mut r = start(d, slow, &[]);
    r.wait_log(&["steer slow start"]);
    r.signal(libc::SIGINT);
    let status = r.wait_exit();
    // The work in flight finished, but the run was stopped before it settled: never
    // success (docs/exit-codes.md).
    assert_eq!(status.code(), Some(130), "{status}");
    r.wait_log(&["steer slow end"]);

    let mut r = start(d, &slow.replace("1500", "60000"), &[]);
    r.wait_log(&["steer slow start"]);
    r.signal(libc::SIGINT);
    r.wait_log(&["stopping: waiting for check-applies in progress"]);
    assert!(r.alive());
    r.signal(libc::SIGINT);
    let status = r.wait_exit();
    assert_eq!(status.code(), Some(130), "{status}");
    assert_eq!(r.count_log(&["steer slow end"]), 0);
}

#[test]
fn noop_lists_changes_with_a_diff_and_exits_2() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let motd = d.join("motd");
    std::fs::write(&motd, "old line\nsame\n").unwrap();
    let g = graph(
        d,
        r#"
graph: noop
resources:
  file:
  - name: motd
    path: {dir}/motd
    content: "new line\nsame\n"
  - name: quiet
    path: {dir}/quiet
    meta: {noop: true}
"#,
    );
    let out = run_converged(&g, "0.3", &["--noop"]);
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(
        err.contains("file[motd]: would change (noop): content: 14 bytes -> 14 bytes"),
        "{err}"
    );
    // The diff's lines are below the line, indented: only homeostat's own lines start at
    // the first column.
    assert!(
        err.contains("\n  -old line\n  +new line\n   same\n"),
        "{err}"
    );
    assert!(err.contains("changes pending"), "{err}");
    assert_eq!(std::fs::read_to_string(&motd).unwrap(), "old line\nsame\n");
    assert!(!d.join("quiet").exists());

    // Without --noop, only the resource with meta noop is left alone; exit 0.
    let out = run_converged(&g, "0.3", &[]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(std::fs::read_to_string(&motd).unwrap(), "new line\nsame\n");
    assert!(!d.join("quiet").exists());
    assert!(stderr(&out).contains("file[quiet]: would change (noop): create empty file"));
    // The meta-noop resource still has its change pending; without it, nothing is left
    // to change and --noop exits 0.
    let out = run_converged(&g, "0.3", &["--noop"]);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    let text = std::fs::read_to_string(&g).unwrap();
    let cut = text.find("  - name: quiet").unwrap();
    std::fs::write(&g, &text[..cut]).unwrap();
    let out = run_converged(&g, "0.3", &["--noop"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
}

#[test]
fn graph_prints_dot_with_autoedges() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let g = graph(
        d,
        r#"
graph: dot
resources:
  file:
  - name: dir
    path: {dir}/etc/
  - name: conf
    path: {dir}/etc/app.conf
    content: "x"
  steer:
  - name: restart
    state: {dir}/state
edges:
- from: {kind: file, name: conf}
  to: {kind: steer, name: restart}
  notify: true
  send: {path: in}
"#,
    );
    let plugins = test_plugins();
    let out = homeostat_in(
        d,
        &[
            "graph",
            g.to_str().unwrap(),
            "--plugin-dir",
            plugins.to_str().unwrap(),
        ],
    );
    let dot = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(dot.starts_with("digraph \"dot\" {"), "{dot}");
    assert!(
        dot.contains("\"file[dir]\" -> \"file[conf]\" [style=dashed, label=\"auto\"];"),
        "{dot}"
    );
    assert!(
        dot.contains(
            "\"file[conf]\" -> \"steer[restart]\" [style=bold, label=\"notify\\npath -> in\"];"
        ),
        "{dot}"
    );
    assert!(!d.join("etc").exists(), "graph applied something");
}

#[test]
fn a_timeout_fails_only_that_resource() {
    let dir = tempfile::tempdir().unwrap();
    let (r, status) = converge(
        dir.path(),
        r#"
graph: timeout
resources:
  steer:
  - name: slow
    state: {dir}/slow
    sleep_ms: 10000
    meta: {timeout: 300}
  - name: fine
    state: {dir}/fine
"#,
    );
    assert_eq!(status.code(), Some(1), "{status}");
    r.wait_log(&["steer[slow]:", "300"]);
    r.wait_log(&["steer fine end changed=true"]);
    r.wait_log(&["failed: steer[slow]"]);
}

#[test]
fn rewatch_restarts_a_failed_resource_on_a_swap() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let yaml = r#"
graph: rewatch
resources:
  steer:
  - name: broken
    state: {dir}/broken
    fail: 1
    meta: {rewatch: true}
  - name: other
    state: {dir}/other
"#;
    let r = start(d, yaml, &[]);
    r.wait_log(&["steer[broken]: failing as asked"]);
    r.wait_log(&["steer other end"]);
    // Only `other` changes, yet the failed `broken` is restarted (and now succeeds).
    graph(d, &yaml.replace("{dir}/other", "{dir}/other2"));
    r.wait_log(&["steer[broken]: failed earlier; restarting it (meta rewatch)"]);
    r.wait_log(&["steer broken end changed=true"]);
}

#[test]
fn autoedge_false_drops_automatic_edges() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let g = graph(
        d,
        r#"
graph: no-autoedge
resources:
  file:
  - name: dir
    path: {dir}/etc/
  - name: conf
    path: {dir}/etc/app.conf
    meta: {autoedge: false}
"#,
    );
    let out = homeostat_in(d, &["graph", g.to_str().unwrap()]);
    let dot = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(!dot.contains("->"), "{dot}");
}

/// `homeostat run GRAPH --converged-timeout 0 EXTRA` with the planner's debug log; the
/// run must succeed. Returns its log.
fn run_planned(g: &Path, extra: &[&str]) -> String {
    let mut args = vec![
        "run",
        g.to_str().expect("utf-8 path"),
        "--converged-timeout",
        "0",
    ];
    args.extend_from_slice(extra);
    let out = homeostat_tests::homeostat_command(g.parent().expect("a graph file"), &args)
        .env(
            "RUST_LOG",
            "homeostat=debug,homeostat::engine::vertex=info,homeostat::watch=info",
        )
        .output()
        .expect("run homeostat");
    let log = stderr(&out);
    assert!(out.status.success(), "{log}");
    log
}

/// Where `run` caches the plan of the graph file `g` (see host/src/plan/cache.rs).
fn plan_file(g: &Path) -> std::path::PathBuf {
    use sha2::Digest;
    let name = hex::encode(sha2::Sha256::digest(g.as_os_str().as_encoded_bytes()));
    homeostat_tests::cache_dir()
        .join("plans")
        .join(format!("{name}.plan"))
}

#[test]
fn a_graph_planned_once_starts_from_its_cached_plan_until_it_or_a_plugin_changes() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let yaml =
        "graph: cached\nresources:\n  file:\n  - name: a\n    path: {dir}/a\n    content: one\n";
    let g = graph(d, yaml);
    let hit = "plan cache: hit";

    let log = run_planned(&g, &[]);
    assert!(!log.contains(hit), "{log}");
    assert!(log.contains("validated 1 resources"), "{log}");
    assert_eq!(std::fs::read_to_string(d.join("a")).unwrap(), "one");
    assert!(plan_file(&g).is_file(), "{log}");
    // Params may be secrets: only the owner reads the plan.
    use std::os::unix::fs::PermissionsExt;
    let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode(&plan_file(&g)), 0o600);
    assert_eq!(mode(plan_file(&g).parent().unwrap()), 0o700);

    // Same text: the cached plan runs, and it repairs drift like a planned one.
    std::fs::write(d.join("a"), "drifted").unwrap();
    let log = run_planned(&g, &[]);
    assert!(log.contains(hit), "{log}");
    assert!(!log.contains("validated"), "{log}");
    assert_eq!(std::fs::read_to_string(d.join("a")).unwrap(), "one");

    // An edit plans anew: the stale plan is never used.
    graph(d, &yaml.replace("one", "two"));
    let log = run_planned(&g, &[]);
    assert!(!log.contains(hit), "{log}");
    assert!(log.contains("is for another text"), "{log}");
    assert_eq!(std::fs::read_to_string(d.join("a")).unwrap(), "two");
    assert!(run_planned(&g, &[]).contains(hit));

    // Other plugins (here: the test plugins, which add kinds) are another key.
    let plugins = test_plugins();
    let with_plugins = ["--plugin-dir", plugins.to_str().unwrap()];
    let log = run_planned(&g, &with_plugins);
    assert!(log.contains("planned with other plugins"), "{log}");
    assert!(log.contains("validated 1 resources"), "{log}");

    // A damaged file is a miss, never an error, and is replaced.
    let mut bytes = std::fs::read(plan_file(&g)).unwrap();
    let header = bytes.iter().position(|&b| b == b'\n').unwrap() + 1;
    bytes.truncate(header + 10);
    std::fs::write(plan_file(&g), &bytes).unwrap();
    let log = run_planned(&g, &with_plugins);
    assert!(log.contains("plan cache: ignoring"), "{log}");
    assert!(run_planned(&g, &with_plugins).contains(hit));

    // --no-cache neither reads nor writes it.
    std::fs::remove_file(plan_file(&g)).unwrap();
    let log = run_planned(&g, &["--no-cache"]);
    assert!(!log.contains("plan cache"), "{log}");
    assert!(!plan_file(&g).exists());
}

#[test]
fn a_graph_path_that_becomes_a_device_or_fifo_is_refused_during_live_swap() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let yaml = r#"
graph: swap
resources:
  steer:
  - name: keep
    state: {dir}/keep
"#;
    let mut r = start(d, yaml, &[]);
    r.wait_log(&["steer keep end"]);
    let g = d.join("graph.yaml");
    // Each replacement is put in place atomically (made aside, renamed over the graph).
    let aside = d.join("aside");
    std::os::unix::fs::symlink("/dev/zero", &aside).unwrap();
    std::fs::rename(&aside, &g).unwrap();
    r.wait_log(&[
        "is a character device, not a regular file",
        "still running the previous graph",
    ]);
    homeostat_tests::mkfifo(&aside);
    std::fs::rename(&aside, &g).unwrap();
    r.wait_log(&[
        "is a FIFO, not a regular file",
        "still running the previous graph",
    ]);
    std::fs::File::create(&aside)
        .unwrap()
        .set_len(65 << 20)
        .unwrap();
    std::fs::rename(&aside, &g).unwrap();
    r.wait_log(&["is 65 MiB (68157440 bytes), larger than the cap of 64 MiB"]);
    assert!(r.alive());
    // Nothing was left waiting or reading: a valid graph is swapped in as usual.
    std::fs::write(
        &aside,
        yaml.replace("{dir}", &d.display().to_string())
            + &format!("  - name: new\n    state: {}/new\n", d.display()),
    )
    .unwrap();
    std::fs::rename(&aside, &g).unwrap();
    r.wait_log(&["steer new end"]);
    assert!(
        r.rss_kib() < 512 * 1024,
        "nothing big was read: {} KiB",
        r.rss_kib()
    );
    assert!(r.stop().success());
}

#[test]
fn a_signal_during_start_up_exits_at_once() {
    // `stall` loops in `validate`, so start-up never ends by itself (its CPU budget and
    // timeout are ten minutes).
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let yaml = r#"
graph: stuck
resources:
  stall:
  - name: s
    path: {dir}/s
"#;
    let mut r = start(
        d,
        yaml,
        &["--plugin-cpu", "600000", "--plugin-timeout", "600000"],
    );
    r.wait_log(&["stall[s]: stalling in validate"]);
    r.signal(libc::SIGINT);
    let status = r.wait_exit();
    assert_eq!(status.code(), Some(130), "{status}");
    r.wait_log(&["interrupted while starting: nothing was applied"]);
}
