//! `engine::run` driven in-process, as a test or an embedder drives it: the real bundled
//! `file` plugin, a real watch hub, and the OS services handed in, with no binary and no
//! command line. Everything the engine touches is an argument, so a test can watch what
//! went through the services it handed in.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use homeostat::engine::{self, Outcome, RunOptions, Settled, Shutdown, Stopped};
use homeostat::plugin::grants::Policy;
use homeostat::plugin::registry::Registry;
use homeostat::plugin::runtime::Runtime;
use homeostat::plugin::store::Limits;
use homeostat::sys::Services;
use homeostat::sys::inotify::WatchHub;
use tokio::sync::{mpsc, watch};

/// A graph of a directory and two files in it.
fn write_graph(graph: &Path, dir: &Path, a: &str, b: &str) {
    let d = dir.display();
    let yaml = format!(
        "graph: in-process\n\
         resources:\n  \
           file:\n  \
           - name: dir\n    path: {d}/managed/\n  \
           - name: a\n    path: {d}/managed/a\n    content: {a:?}\n  \
           - name: b\n    path: {d}/managed/b\n    content: {b:?}\n    mode: \"0600\"\n"
    );
    std::fs::write(graph, yaml).expect("write the graph");
}

/// Waits (at most 10 s, checking every 10 ms) until `path` holds `content`.
async fn wait_for(path: &Path, content: &str) {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        if std::fs::read_to_string(path).ok().as_deref() == Some(content) {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "{} never held {content:?} (it holds {:?})",
            path.display(),
            std::fs::read_to_string(path).ok()
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

struct Setup {
    _dir: tempfile::TempDir,
    root: PathBuf,
    graph: PathBuf,
    sys: Services,
    _runtime: Runtime,
    registry: Registry,
}

fn setup() -> Setup {
    let dir = tempfile::tempdir().expect("temporary directory");
    let root = dir.path().to_path_buf();
    let graph = root.join("graph.yaml");
    let sys = Services::default();
    let runtime = Runtime::new(None, Limits::default(), sys.clone()).expect("runtime");
    let registry = Registry::load(&runtime, &[], &Policy::default()).expect("bundled plugins");
    Setup {
        _dir: dir,
        root,
        graph,
        sys,
        _runtime: runtime,
        registry,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn converges_repairs_swaps_and_stops() {
    let s = setup();
    write_graph(&s.graph, &s.root, "one\n", "two\n");
    let plan = homeostat::plan::load(&s.graph, &s.registry)
        .await
        .expect("the graph plans");
    let (stop, stop_rx) = watch::channel(Shutdown::Run);
    let (updates, updates_rx) = mpsc::channel(1);
    let run = tokio::spawn(engine::run(
        plan,
        WatchHub::new().expect("watch hub"),
        s.sys.clone(),
        RunOptions::default(),
        stop_rx,
        updates_rx,
    ));
    let (a, b) = (s.root.join("managed/a"), s.root.join("managed/b"));
    wait_for(&a, "one\n").await;
    wait_for(&b, "two\n").await;

    // Drift is repaired by the watch alone.
    std::fs::write(&a, "broken").expect("break a");
    wait_for(&a, "one\n").await;

    // A new plan swaps in: `b` changes, `dir` and `a` keep running.
    write_graph(&s.graph, &s.root, "one\n", "three\n");
    let next = homeostat::plan::load(&s.graph, &s.registry)
        .await
        .expect("the new graph plans");
    updates.send(next).await.expect("the engine takes updates");
    wait_for(&b, "three\n").await;

    stop.send_replace(Shutdown::Graceful);
    let summary = tokio::time::timeout(Duration::from_secs(30), run)
        .await
        .expect("the engine stops")
        .expect("the engine task does not panic");
    assert_eq!(summary.stopped, Stopped::Shutdown);
    assert_eq!(summary.resources(), 3);
    assert_eq!(summary.count(Outcome::Failed), 0, "{summary:?}");
    assert_eq!(summary.swaps, 1);
    // dir and the two files made, a repaired, b rewritten.
    assert!(summary.changes >= 5, "{summary:?}");
    // Every write went through the `fs` service handed in: a, b, a again, b again.
    assert!(s.sys.fs.stats().files >= 4, "{:?}", s.sys.fs.stats());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn noop_settles_and_changes_nothing() {
    let s = setup();
    write_graph(&s.graph, &s.root, "one\n", "two\n");
    let plan = homeostat::plan::load(&s.graph, &s.registry)
        .await
        .expect("the graph plans");
    let (_stop, stop_rx) = watch::channel(Shutdown::Run);
    let (_updates, updates_rx) = mpsc::channel(1);
    let opts = RunOptions {
        noop: true,
        diff: false,
        converged_timeout: Some(Duration::from_millis(200)),
        cluster: None,
        periods: None,
    };
    let summary = tokio::time::timeout(
        Duration::from_secs(30),
        engine::run(
            plan,
            WatchHub::new().expect("watch hub"),
            s.sys.clone(),
            opts,
            stop_rx,
            updates_rx,
        ),
    )
    .await
    .expect("a noop run settles");
    assert_eq!(summary.stopped, Stopped::Settled(Settled::Converged));
    assert_eq!(summary.count(Outcome::Failed), 0, "{summary:?}");
    assert_eq!(summary.count(Outcome::WouldChange), 3, "{summary:?}");
    assert!(!s.root.join("managed").exists());
    assert_eq!(s.sys.fs.stats().files, 0);
}
