//! The `svc` resource end to end against a real `systemd --user` manager started by the
//! harness (its own runtime directory, session bus and unit directory): start, stop,
//! enable, disable, repair of an outside `systemctl --user stop` through the D-Bus watch,
//! a unit file written by a `file` resource (autoedge + daemon-reload), a config file whose
//! change restarts the service (notify edge), and bad input. The system-manager path is
//! exercised only where PID 1 is systemd.

use std::path::Path;

use homeostat_tests::{
    Running, UserManager, run_converged, stderr, system_manager_available, wait_for, write_graph,
};

/// A simple service that records each start in `starts`.
fn unit_text(starts: &Path) -> String {
    format!(
        "[Unit]\nDescription=homeostat test service\n\n[Service]\nExecStartPre=/bin/sh -c 'echo start >> {}'\nExecStart=/bin/sleep 1000\n\n[Install]\nWantedBy=default.target\n",
        starts.display()
    )
}

fn run_once(m: &UserManager, graph: &Path) -> std::process::Output {
    let mut cmd = homeostat_tests::command();
    cmd.envs(m.env())
        .args(["run", graph.to_str().unwrap(), "--converged-timeout", "0.5"])
        .arg("--cache-dir")
        .arg(homeostat_tests::cache_dir())
        .env("RUST_LOG", "info");
    cmd.output().expect("run homeostat")
}

fn lines(p: &Path) -> usize {
    std::fs::read_to_string(p).map_or(0, |s| s.lines().count())
}

#[test]
fn start_enable_then_stop_disable() {
    let Some(m) = UserManager::start() else {
        return;
    };
    let t = tempfile::tempdir().unwrap();
    let starts = t.path().join("starts");
    std::fs::write(m.unit_dir().join("hs-a.service"), unit_text(&starts)).unwrap();
    m.systemctl(&["daemon-reload"]);
    let up = write_graph(
        t.path(),
        "up.yaml",
        "graph: t\nresources:\n  svc:\n  - name: hs-a\n    state: running\n    startup: enabled\n    session: true\n",
    );
    let out = run_once(&m, &up);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(m.active_state("hs-a.service"), "active");
    assert_eq!(m.enabled_state("hs-a.service"), "enabled");
    assert!(stderr(&out).contains("svc[hs-a]: enabled; started (was inactive)"));

    let again = run_once(&m, &up);
    assert!(again.status.success(), "{}", stderr(&again));
    assert!(stderr(&again).contains("0 changes"), "{}", stderr(&again));

    // `homeostat resource` reads the unit's status (and may change nothing): what it
    // prints is what `up.yaml` declares.
    let o = homeostat_tests::command()
        .envs(m.env())
        .args(["resource", "svc", "hs-a", "session=true"])
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(
        String::from_utf8_lossy(&o.stdout),
        "graph: described\nresources:\n  svc:\n  - name: hs-a\n    session: true\n    \
         startup: enabled\n    state: running\n"
    );

    let down = write_graph(
        t.path(),
        "down.yaml",
        "graph: t\nresources:\n  svc:\n  - name: hs-a.service\n    state: stopped\n    startup: disabled\n    session: true\n",
    );
    let out = run_once(&m, &down);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(m.active_state("hs-a.service"), "inactive");
    assert_eq!(m.enabled_state("hs-a.service"), "disabled");
}

#[test]
fn noop_reports_and_changes_nothing() {
    let Some(m) = UserManager::start() else {
        return;
    };
    let t = tempfile::tempdir().unwrap();
    std::fs::write(
        m.unit_dir().join("hs-n.service"),
        unit_text(&t.path().join("starts")),
    )
    .unwrap();
    m.systemctl(&["daemon-reload"]);
    let g = write_graph(
        t.path(),
        "g.yaml",
        "graph: t\nresources:\n  svc:\n  - name: hs-n\n    state: running\n    startup: enabled\n    session: true\n",
    );
    let out = homeostat_tests::command()
        .envs(m.env())
        .args([
            "run",
            g.to_str().unwrap(),
            "--converged-timeout",
            "0.5",
            "--noop",
        ])
        .arg("--cache-dir")
        .arg(homeostat_tests::cache_dir())
        .output()
        .unwrap();
    let log = stderr(&out);
    assert_eq!(out.status.code(), Some(2), "{log}");
    assert!(
        log.contains("svc[hs-n]: would change (noop): enabled; started (was inactive)"),
        "{log}"
    );
    assert_eq!(m.active_state("hs-n.service"), "inactive");
    assert_eq!(m.enabled_state("hs-n.service"), "disabled");
}

#[test]
fn an_outside_stop_is_repaired_through_the_dbus_watch() {
    let Some(m) = UserManager::start() else {
        return;
    };
    let t = tempfile::tempdir().unwrap();
    let starts = t.path().join("starts");
    std::fs::write(m.unit_dir().join("hs-w.service"), unit_text(&starts)).unwrap();
    m.systemctl(&["daemon-reload"]);
    let g = write_graph(
        t.path(),
        "g.yaml",
        "graph: t\nresources:\n  svc:\n  - name: hs-w\n    state: running\n    session: true\n",
    );
    let h = Running::start_env(&g, &[], &m.env());
    m.wait_active("hs-w.service", "active");
    h.wait_log(&["svc[hs-w]: started"]);
    // `--no-block`: homeostat may see `deactivating` and queue its start
    // while the stop is still running, which cancels a waiting systemctl's
    // job and makes it exit non-zero although the stop did happen.
    let o = m.systemctl(&["stop", "--no-block", "hs-w.service"]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    // Repaired by the watch: started again, without any polling configured.
    assert!(
        wait_for(|| (lines(&starts) >= 2).then_some(())).is_some(),
        "the outside stop was not repaired; log:\n{}",
        h.log().join("\n")
    );
    m.wait_active("hs-w.service", "active");
}

#[test]
fn unit_file_from_a_file_resource_and_config_change_restarts() {
    let Some(m) = UserManager::start() else {
        return;
    };
    let t = tempfile::tempdir().unwrap();
    let starts = t.path().join("starts");
    let conf = t.path().join("app.conf");
    let unit = m.unit_dir().join("hs-app.service");
    let graph = |content: &str| {
        format!(
            r#"graph: t
resources:
  file:
  - name: unit-file
    path: {unit}
    content: {unit_text:?}
  - name: app-conf
    path: {conf}
    content: {content:?}
  svc:
  - name: hs-app
    state: running
    session: true
edges:
- name: config-restarts
  from: {{kind: file, name: app-conf}}
  to: {{kind: svc, name: hs-app}}
  notify: true
"#,
            unit = unit.display(),
            unit_text = unit_text(&starts),
            conf = conf.display(),
        )
    };
    let g = write_graph(t.path(), "g.yaml", &graph("listen 80\n"));
    // The unit file does not exist yet: the autoedge makes the file resource write it
    // before svc looks for the unit.
    let h = Running::start_env(&g, &[], &m.env());
    m.wait_active("hs-app.service", "active");
    assert!(wait_for(|| (lines(&starts) >= 1).then_some(())).is_some());
    let before = lines(&starts);
    // The config changes (as an operator's edit or a graph change would): the notify edge
    // restarts the service.
    std::fs::write(&conf, "listen 8080\n").unwrap();
    assert!(
        wait_for(|| (lines(&starts) > before).then_some(())).is_some(),
        "changing the config did not restart the service; log:\n{}",
        h.log().join("\n")
    );
    h.wait_log(&["svc[hs-app]: reloaded or restarted (refresh)"]);
    assert_eq!(std::fs::read_to_string(&conf).unwrap(), "listen 80\n");
    // An outside edit of the unit file is repaired by its file resource, which pokes the
    // svc through the autoedge: the manager's copy is stale, so svc daemon-reloads.
    std::fs::write(&unit, "[Service]\nExecStart=/bin/false\n").unwrap();
    h.wait_log(&["svc[hs-app]: daemon-reload (unit file changed on disk)"]);
    m.wait_active("hs-app.service", "active");
}

#[test]
fn bad_input_names_the_resource_and_the_engine_keeps_running() {
    let Some(m) = UserManager::start() else {
        return;
    };
    let t = tempfile::tempdir().unwrap();
    let g = write_graph(
        t.path(),
        "g.yaml",
        &format!(
            r#"graph: t
resources:
  svc:
  - name: no-such-unit-xyz
    state: running
    session: true
    meta: {{retry: 1, delay: 50}}
  - name: hs-noinstall
    startup: enabled
    session: true
  file:
  - name: still-works
    path: {}
    content: "ok\n"
"#,
            t.path().join("ok").display()
        ),
    );
    std::fs::write(
        m.unit_dir().join("hs-noinstall.service"),
        "[Service]\nExecStart=/bin/sleep 1000\n",
    )
    .unwrap();
    let out = run_once(&m, &g);
    let log = stderr(&out);
    assert!(!out.status.success(), "{log}");
    assert!(
        log.contains("svc[no-such-unit-xyz]: unit `no-such-unit-xyz.service` does not exist on the session manager"),
        "{log}"
    );
    assert_eq!(
        log.matches("ERROR svc[no-such-unit-xyz]: unit").count(),
        2,
        "{log}"
    );
    assert!(
        log.contains("svc[hs-noinstall]: cannot enable unit `hs-noinstall.service`")
            && log.contains("no [Install] section"),
        "{log}"
    );
    assert_eq!(
        std::fs::read_to_string(t.path().join("ok")).unwrap(),
        "ok\n"
    );
}

#[test]
fn an_unreachable_bus_is_a_clear_error() {
    let t = tempfile::tempdir().unwrap();
    let g = write_graph(
        t.path(),
        "g.yaml",
        "graph: t\nresources:\n  svc:\n  - name: hs-x\n    state: running\n    session: true\n",
    );
    let out = homeostat_tests::command()
        .env(
            "DBUS_SESSION_BUS_ADDRESS",
            format!("unix:path={}/no-bus", t.path().display()),
        )
        .args(["run", g.to_str().unwrap(), "--converged-timeout", "0.5"])
        .arg("--cache-dir")
        .arg(homeostat_tests::cache_dir())
        .output()
        .unwrap();
    let log = stderr(&out);
    assert!(!out.status.success());
    assert!(
        log.contains("svc[hs-x]: cannot connect to the session (user) manager"),
        "{log}"
    );
    assert!(
        log.contains("no-bus"),
        "the message names the address: {log}"
    );
}

#[test]
fn system_manager_when_there_is_one() {
    if !system_manager_available() {
        eprintln!(
            "SKIP: no system service manager here (PID 1 is not systemd); the system-bus \
             path of svc is not exercised"
        );
        return;
    }
    // Query-only against a unit every systemd system has: nothing is changed.
    let t = tempfile::tempdir().unwrap();
    let g = write_graph(
        t.path(),
        "g.yaml",
        "graph: t\nresources:\n  svc:\n  - name: systemd-journald\n",
    );
    let out = run_converged(&g, "0.5", &[]);
    assert!(out.status.success(), "{}", stderr(&out));
}

/// Removing a service: its unit file `state: absent` and the service `state: stopped`.
/// The autoedge from the unit file to the service is reversed for a removal, so the
/// service is stopped first and the file removed after (as systemd users do it), and a
/// stopped service whose unit file is gone is in its declared state.
#[test]
fn removing_a_unit_stops_the_service_first() {
    let Some(m) = UserManager::start() else {
        return;
    };
    let t = tempfile::tempdir().unwrap();
    let starts = t.path().join("starts");
    let unit = m.unit_dir().join("hs-gone.service");
    std::fs::write(&unit, unit_text(&starts)).unwrap();
    m.systemctl(&["daemon-reload"]);
    m.systemctl(&["start", "hs-gone.service"]);
    m.wait_active("hs-gone.service", "active");
    let g = write_graph(
        t.path(),
        "g.yaml",
        &format!(
            "graph: t\nresources:\n  file:\n  - name: unit-file\n    path: {}\n    state: absent\n  \
             svc:\n  - name: hs-gone\n    state: stopped\n    session: true\n",
            unit.display()
        ),
    );
    let out = run_once(&m, &g);
    let err = stderr(&out);
    assert!(out.status.success(), "{err}");
    assert!(!unit.exists());
    let stopped = err.find("svc[hs-gone]: stopped").expect(&err);
    let removed = err.find("file[unit-file]: remove file").expect(&err);
    assert!(stopped < removed, "removed before stopped:\n{err}");
    assert_ne!(m.active_state("hs-gone.service"), "active");
    // Converged: nothing to do, no error about the missing unit.
    let again = run_once(&m, &g);
    assert!(again.status.success(), "{}", stderr(&again));
    assert!(
        stderr(&again).contains(", 0 changes, 0 failed"),
        "{}",
        stderr(&again)
    );
}
