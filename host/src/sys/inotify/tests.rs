//! Tests against the real file system and real inotify, in temporary directories.
//!
//! No assertion depends on timing. A "barrier" creates a fresh file that a throw-away
//! subscriber watches and waits for its wake: inotify delivers events in order on one thread,
//! so every earlier event has been routed by then; it then waits for the control thread to go
//! idle. "No wake" is asserted after such a barrier.

use super::control;
use super::echo::Echo;
use super::error::WatchError;
use super::hub::{Request, Subscription, WatchHub, normalize};
use super::routes::{self, Sub, SubMap};
use crate::sys::waker::Waker;

use std::fs;
use std::io::Write;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicUsize;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex, mpsc};
use std::time::Duration;

use tempfile::TempDir;
use tokio::sync::mpsc::{UnboundedReceiver, unbounded_channel};
use tokio::time::timeout;

const TIMEOUT: Duration = Duration::from_secs(5);

/// A subscriber whose waker reports whether `observe` exists at the moment it is called.
struct Probe {
    rx: UnboundedReceiver<bool>,
    sub: Subscription,
}

fn probe(hub: &WatchHub, path: &Path, recursive: bool) -> Probe {
    probe_observing(hub, path, recursive, path)
}

fn probe_observing(hub: &WatchHub, path: &Path, recursive: bool, observe: &Path) -> Probe {
    let (tx, rx) = unbounded_channel();
    let observe = observe.to_path_buf();
    let waker: Waker = Arc::new(move || {
        let _ = tx.send(observe.exists());
    });
    let sub = hub.subscribe(path, recursive, waker).expect("subscribe");
    Probe { rx, sub }
}

impl Probe {
    /// The next wake; fails after 5 s.
    async fn wake(&mut self) -> bool {
        timeout(TIMEOUT, self.rx.recv())
            .await
            .expect("no wake within 5 s")
            .expect("waker dropped")
    }

    /// Waits for a wake that observed the path existing (`true`) or not.
    async fn wake_seeing(&mut self, exists: bool) {
        timeout(TIMEOUT, async {
            while self.rx.recv().await.expect("waker dropped") != exists {}
        })
        .await
        .expect("no such wake within 5 s");
    }

    fn drain(&mut self) {
        while self.rx.try_recv().is_ok() {}
    }

    /// Once everything so far has settled, a change of `path` still wakes this probe.
    async fn assert_live(&mut self, env: &Env, path: &Path, data: &str) {
        env.barrier().await;
        self.drain();
        append(path, data);
        self.wake().await;
    }

    fn assert_quiet(&mut self, what: &str) {
        assert!(self.rx.try_recv().is_err(), "unexpected wake: {what}");
    }
}

/// A temporary directory, a hub, and a barrier.
struct Env {
    dir: TempDir,
    hub: WatchHub,
    barriers: AtomicUsize,
    /// Keeps the temporary directory watched for the barrier files.
    _anchor: Subscription,
}

impl Env {
    fn new() -> Env {
        let dir = tempfile::tempdir().expect("tempdir");
        let hub = WatchHub::new().expect("hub");
        let anchor = hub
            .subscribe(&dir.path().join(".anchor"), false, Arc::new(|| {}))
            .expect("subscribe");
        Env {
            dir,
            hub,
            barriers: AtomicUsize::new(0),
            _anchor: anchor,
        }
    }

    /// Directories watched, once the control thread has handled everything queued.
    fn watched_dirs(&self) -> usize {
        self.hub.flush();
        self.hub.watched_dirs()
    }

    fn path(&self, rel: &str) -> PathBuf {
        self.dir.path().join(rel)
    }

    /// Returns once every file-system event before the call has been routed and the control
    /// thread has handled what followed from them.
    async fn barrier(&self) {
        let n = self.barriers.fetch_add(1, Ordering::Relaxed);
        let path = self.path(&format!(".barrier-{n}"));
        let mut p = probe(&self.hub, &path, false);
        fs::write(&path, b"").expect("write barrier");
        p.wake().await;
        drop(p);
        self.hub.flush();
    }
}

fn append(path: &Path, data: &str) {
    let mut f = fs::OpenOptions::new()
        .append(true)
        .open(path)
        .expect("open for append");
    f.write_all(data.as_bytes()).expect("append");
}

/// Writes `data` to a temporary file beside `path` and renames it over `path`.
fn replace(path: &Path, data: &str) {
    let tmp = path.with_extension("tmp-replace");
    fs::write(&tmp, data).expect("write temp");
    fs::rename(&tmp, path).expect("rename");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn modify_content_and_close_wake() {
    let env = Env::new();
    let f = env.path("f");
    fs::write(&f, "one").unwrap();
    let mut p = probe(&env.hub, &f, false);
    let mut file = fs::OpenOptions::new().write(true).open(&f).unwrap();
    env.barrier().await;
    p.drain();
    file.write_all(b"two").unwrap(); // IN_MODIFY, file still open
    p.wake().await;
    env.barrier().await;
    p.drain();
    drop(file); // IN_CLOSE_WRITE
    p.wake().await;
    env.barrier().await;
    p.drain();
    fs::write(&f, "three").unwrap();
    p.wake().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reading_does_not_wake() {
    let env = Env::new();
    let f = env.path("f");
    fs::write(&f, "content").unwrap();
    let mut p = probe(&env.hub, &f, false);
    env.barrier().await;
    p.drain();
    for _ in 0..100 {
        assert_eq!(fs::read_to_string(&f).unwrap(), "content");
        let _ = fs::symlink_metadata(&f).unwrap();
    }
    env.barrier().await;
    p.assert_quiet("after reading the file");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn staging_files_do_not_wake_but_their_rename_does() {
    let env = Env::new();
    let tree = env.path("tree");
    fs::create_dir(&tree).unwrap();
    let target = tree.join("f");
    let mut exact = probe(&env.hub, &target, false);
    let mut whole = probe(&env.hub, &tree, true);
    env.barrier().await;
    exact.drain();
    whole.drain();
    // What the fs capability's durable write does: a staging file, filled, chmod-ed...
    let staging = tree.join(".f.homeostat-0123456789ab");
    fs::write(&staging, "new").unwrap();
    fs::set_permissions(&staging, fs::Permissions::from_mode(0o600)).unwrap();
    env.barrier().await;
    exact.assert_quiet("staging file written");
    whole.assert_quiet("staging file written (recursive)");
    // ...then renamed over the target: that wakes both.
    fs::rename(&staging, &target).unwrap();
    exact.wake().await;
    whole.wake().await;
}

/// A probe whose own changes of `path` go through the returned [`Echo`].
fn probe_with_echo(hub: &WatchHub, path: &Path) -> (Probe, Arc<Echo>) {
    let (tx, rx) = unbounded_channel();
    let observe = path.to_path_buf();
    let echo = Echo::new(path.to_path_buf());
    let mut subs = hub.subscribe_many(vec![Request {
        path: path.to_path_buf(),
        recursive: false,
        waker: Arc::new(move || {
            let _ = tx.send(observe.exists());
        }),
        echo: Some(Arc::clone(&echo)),
    }]);
    let sub = subs.pop().expect("one result").expect("subscribe");
    (Probe { rx, sub }, echo)
}

/// What the fs capability's commit thread does for a resource: the rename (or link) that
/// puts a written file in place, counted as the resource's own change.
fn own_replace(echo: &Echo, path: &Path, data: &str) {
    let tmp = path.with_extension("own-tmp");
    fs::write(&tmp, data).unwrap();
    echo.own(|| fs::rename(&tmp, path)).unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn own_changes_wake_everyone_but_their_maker() {
    let env = Env::new();
    let f = env.path("f");
    fs::write(&f, "1").unwrap();
    let (mut own, echo) = probe_with_echo(&env.hub, &f);
    let mut other = probe(&env.hub, &f, false);
    env.barrier().await;
    own.drain();
    other.drain();

    // Replaced by a rename (a file that existed), then created by a link (one that did not).
    own_replace(&echo, &f, "2");
    other.wake().await;
    env.barrier().await;
    own.assert_quiet("own rename");
    fs::remove_file(&f).unwrap();
    own.wake_seeing(false).await;
    let unnamed = env.path("unnamed");
    fs::write(&unnamed, "3").unwrap();
    echo.own(|| fs::hard_link(&unnamed, &f)).unwrap();
    other.wake_seeing(true).await;
    env.barrier().await;
    own.assert_quiet("own link");

    // Anyone else's change still wakes the maker, and a failed change counts nothing.
    echo.own(|| fs::rename(env.path("no-such-file"), &f))
        .unwrap_err();
    own.assert_live(&env, &f, "4").await;
    own.drain();
    replace(&f, "5");
    own.wake().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_outside_change_queued_with_an_own_one_still_wakes() {
    let env = Env::new();
    let stall = Stall::new(&env);
    let f = env.path("f");
    fs::write(&f, "1").unwrap();
    let (mut own, echo) = probe_with_echo(&env.hub, &f);
    env.barrier().await;
    own.drain();
    // Both events wait in the queue: an outside chmod (one event), then the own rename.
    // Whichever of them the count takes, the other wakes.
    let release = stall.hold();
    fs::set_permissions(&f, fs::Permissions::from_mode(0o600)).unwrap();
    own_replace(&echo, &f, "2");
    release.send(()).unwrap();
    own.wake().await;
    // And in the other order.
    env.barrier().await;
    own.drain();
    let release = stall.hold();
    own_replace(&echo, &f, "3");
    fs::set_permissions(&f, fs::Permissions::from_mode(0o640)).unwrap();
    release.send(()).unwrap();
    own.wake().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn own_changes_are_not_counted_while_the_parent_is_missing() {
    let env = Env::new();
    let d = env.path("d");
    let f = d.join("f");
    let (mut own, echo) = probe_with_echo(&env.hub, &f);
    // Anchored at the temporary directory, where a change of `f` would not be reported
    // under its name: what is "changed" now must not swallow the next outside change
    // (not counted, and forgotten when the watch moves down).
    echo.own(|| Ok::<(), ()>(())).unwrap();
    fs::create_dir(&d).unwrap();
    env.barrier().await;
    own.drain();
    fs::write(&f, "outside").unwrap();
    own.wake_seeing(true).await;
    // Now the parent is watched: own changes are counted again.
    env.barrier().await;
    own.drain();
    own_replace(&echo, &f, "own");
    env.barrier().await;
    own.assert_quiet("own rename once the parent exists");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn append_wakes() {
    let env = Env::new();
    let f = env.path("log");
    fs::write(&f, "a\n").unwrap();
    let mut p = probe(&env.hub, &f, false);
    env.barrier().await;
    p.drain();
    append(&f, "b\n");
    p.wake().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chmod_and_chown_wake() {
    let env = Env::new();
    let f = env.path("f");
    fs::write(&f, "x").unwrap();
    let mut p = probe(&env.hub, &f, false);
    env.barrier().await;
    p.drain();
    fs::set_permissions(&f, fs::Permissions::from_mode(0o600)).unwrap();
    p.wake().await;

    env.barrier().await;
    p.drain();
    let meta = fs::metadata(&f).unwrap();
    std::os::unix::fs::chown(&f, Some(meta.uid()), Some(meta.gid())).unwrap();
    p.wake().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn delete_and_recreate_wake() {
    let env = Env::new();
    let f = env.path("f");
    fs::write(&f, "x").unwrap();
    let mut p = probe(&env.hub, &f, false);
    fs::remove_file(&f).unwrap();
    p.wake_seeing(false).await;
    fs::write(&f, "y").unwrap();
    p.wake_seeing(true).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn atomic_replace_keeps_waking() {
    let env = Env::new();
    let f = env.path("f.conf");
    fs::write(&f, "v1").unwrap();
    let mut p = probe(&env.hub, &f, false);
    for round in 2..5 {
        env.barrier().await;
        p.drain();
        replace(&f, &format!("v{round}"));
        p.wake().await;
    }
    // The watch survived the replacements: a plain write to the new inode still wakes.
    p.assert_live(&env, &f, "more").await;
    assert_eq!(env.watched_dirs(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sed_in_place_wakes() {
    let env = Env::new();
    let f = env.path("hosts");
    fs::write(&f, "alpha\n").unwrap();
    let mut p = probe(&env.hub, &f, false);
    for (from, to) in [("alpha", "beta"), ("beta", "gamma")] {
        env.barrier().await;
        p.drain();
        let status = std::process::Command::new("sed")
            .arg("-i")
            .arg(format!("s/{from}/{to}/"))
            .arg(&f)
            .status();
        match status {
            Ok(status) => assert!(status.success(), "sed failed"),
            // No sed here: do what it does (temporary file in the same directory, rename).
            Err(_) => {
                let tmp = env.path("sedXy12Ab");
                fs::write(&tmp, format!("{to}\n")).unwrap();
                fs::rename(&tmp, &f).unwrap();
            }
        }
        p.wake().await;
        assert_eq!(fs::read_to_string(&f).unwrap(), format!("{to}\n"));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn missing_parents_are_followed_down() {
    let env = Env::new();
    let a = env.path("a");
    let b = a.join("b");
    let f = b.join("f");
    let mut p = probe(&env.hub, &f, false);
    // Watched: the temporary directory (nearest existing ancestor).
    assert_eq!(env.watched_dirs(), 1);

    fs::create_dir(&a).unwrap();
    env.barrier().await;
    assert_eq!(env.watched_dirs(), 2, "tmp + a");
    fs::create_dir(&b).unwrap();
    env.barrier().await;
    assert_eq!(env.watched_dirs(), 2, "tmp + a/b, a released");
    fs::write(&f, "x").unwrap();
    p.wake_seeing(true).await;

    p.assert_live(&env, &f, "y").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn missing_parents_created_at_once() {
    let env = Env::new();
    let f = env.path("x/y/z/f");
    let mut p = probe(&env.hub, &f, false);
    // Faster than the watch can follow: the hub must look after moving it.
    fs::create_dir_all(f.parent().unwrap()).unwrap();
    fs::write(&f, "x").unwrap();
    p.wake_seeing(true).await;
    env.barrier().await;
    assert_eq!(env.watched_dirs(), 2, "tmp + x/y/z");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn parent_removed_and_recreated() {
    let env = Env::new();
    let d = env.path("d");
    let f = d.join("f");
    fs::create_dir(&d).unwrap();
    fs::write(&f, "1").unwrap();
    let mut p = probe(&env.hub, &f, false);
    assert_eq!(env.watched_dirs(), 2);

    fs::remove_dir_all(&d).unwrap();
    p.wake_seeing(false).await;
    env.barrier().await;
    assert_eq!(env.watched_dirs(), 1, "back up to tmp");

    fs::create_dir(&d).unwrap();
    fs::write(&f, "2").unwrap();
    p.wake_seeing(true).await;
    env.barrier().await;
    assert_eq!(env.watched_dirs(), 2);
    p.drain();
    append(&f, "3");
    p.wake().await;
}

/// A subscriber whose waker, once armed, holds notify's event thread until released, so that
/// file-system events pile up unrouted in the kernel queue.
/// When armed: tell the test the thread is held, then wait for the release.
type Gate = Arc<Mutex<Option<(mpsc::Sender<()>, mpsc::Receiver<()>)>>>;

struct Stall {
    gate: Gate,
    path: PathBuf,
    _sub: Subscription,
}

impl Stall {
    fn new(env: &Env) -> Stall {
        let path = env.path(".stall");
        let gate: Gate = Arc::default();
        let gate2 = Arc::clone(&gate);
        let waker: Waker = Arc::new(move || {
            let armed = gate2.lock().unwrap().take();
            if let Some((entered, release)) = armed {
                let _ = entered.send(());
                let _ = release.recv_timeout(Duration::from_secs(30));
            }
        });
        let sub = env.hub.subscribe(&path, false, waker).unwrap();
        Stall {
            gate,
            path,
            _sub: sub,
        }
    }

    /// Blocks the event thread; returns the release handle. Call after a barrier (a blocked
    /// event thread stalls `subscribe`).
    fn hold(&self) -> mpsc::Sender<()> {
        let (entered_tx, entered_rx) = mpsc::channel();
        let (release_tx, release_rx) = mpsc::channel();
        *self.gate.lock().unwrap() = Some((entered_tx, release_rx));
        fs::write(&self.path, "").unwrap();
        entered_rx
            .recv_timeout(TIMEOUT)
            .expect("stall waker not called");
        release_tx
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn directory_replaced_while_events_queue_up() {
    let env = Env::new();
    let stall = Stall::new(&env);
    let d = env.path("d");
    let f = d.join("f");
    fs::create_dir(&d).unwrap();
    let mut p = probe(&env.hub, &f, false);
    env.barrier().await;

    // By the time the hub hears of the removal, `d` is back: a new directory, whose watch
    // must be placed afresh.
    let release = stall.hold();
    fs::remove_dir(&d).unwrap();
    fs::create_dir(&d).unwrap();
    release.send(()).unwrap();
    env.barrier().await;
    p.drain();
    fs::write(&f, "x").unwrap();
    p.wake_seeing(true).await;
}

/// A waker that, on its first call once armed, creates `file` (and its directories) from
/// inside the hub's own thread; every later call reports whether `file` exists.
fn arming_waker(
    file: PathBuf,
) -> (
    Arc<std::sync::atomic::AtomicBool>,
    Waker,
    tokio::sync::mpsc::UnboundedReceiver<bool>,
) {
    let armed = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let (tx, rx) = unbounded_channel::<bool>();
    let flag = Arc::clone(&armed);
    let waker: Waker = Arc::new(move || {
        if flag.swap(false, Ordering::SeqCst) {
            fs::create_dir_all(file.parent().unwrap()).unwrap();
            fs::write(&file, "x").unwrap();
        } else {
            let _ = tx.send(file.exists());
        }
    });
    (armed, waker, rx)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn change_before_the_moved_watch_is_placed_still_wakes() {
    let env = Env::new();
    let f = env.path("x/y/f");
    // On its first call (for the creation of `x`), the waker creates the file itself: the
    // watch on `x/y` cannot be in place yet (placing it needs this very thread), so no event
    // will tell of the file. The hub must wake again once the watch has moved.
    let (armed, waker, mut rx) = arming_waker(f.clone());
    let _sub = env.hub.subscribe(&f, false, waker).unwrap();
    env.barrier().await;
    armed.store(true, Ordering::SeqCst);
    fs::create_dir_all(f.parent().unwrap()).unwrap();
    timeout(TIMEOUT, async { while !rx.recv().await.unwrap() {} })
        .await
        .expect("no wake after the file appeared");

    // The same for a recursive subscriber and a new subdirectory.
    let tree = env.path("tree");
    fs::create_dir(&tree).unwrap();
    let g = tree.join("sub/g");
    let (armed, waker, mut rx) = arming_waker(g.clone());
    let _tree_sub = env.hub.subscribe(&tree, true, waker).unwrap();
    env.barrier().await;
    armed.store(true, Ordering::SeqCst);
    fs::create_dir(tree.join("sub")).unwrap();
    timeout(TIMEOUT, async { while !rx.recv().await.unwrap() {} })
        .await
        .expect("no wake after the file appeared");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn parent_renamed_away() {
    let env = Env::new();
    let d = env.path("d");
    let f = d.join("f");
    fs::create_dir(&d).unwrap();
    fs::write(&f, "1").unwrap();
    let mut p = probe(&env.hub, &f, false);

    let old = env.path("d.old");
    fs::rename(&d, &old).unwrap();
    p.wake_seeing(false).await;
    // The old directory is not our path any more: writes there must not wake.
    env.barrier().await;
    p.drain();
    append(&old.join("f"), "2");
    env.barrier().await;
    p.assert_quiet("write in the renamed-away directory");

    // A directory renamed into place wakes, and is then watched.
    let new = env.path("d.new");
    fs::create_dir(&new).unwrap();
    fs::write(new.join("f"), "3").unwrap();
    fs::rename(&new, &d).unwrap();
    p.wake_seeing(true).await;
    p.assert_live(&env, &f, "4").await;
}

/// A directory on the way replaced by a symbolic link some time later (a user pointing a
/// managed path elsewhere): the link's creation wakes, and the watch follows it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn parent_replaced_by_a_link_later_wakes() {
    let env = Env::new();
    let d = env.path("d");
    let f = d.join("f");
    fs::create_dir(&d).unwrap();
    fs::write(&f, "1").unwrap();
    let mut p = probe(&env.hub, &f, false);

    fs::rename(&d, env.path("d.old")).unwrap();
    p.wake_seeing(false).await;
    // Settled on the grandparent before the link appears.
    env.barrier().await;
    p.drain();
    let elsewhere = env.path("elsewhere");
    fs::create_dir(&elsewhere).unwrap();
    fs::write(elsewhere.join("f"), "2").unwrap();
    env.barrier().await;
    p.drain();
    std::os::unix::fs::symlink(&elsewhere, &d).unwrap();
    p.wake_seeing(true).await;
    p.assert_live(&env, &f, "3").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn recursive_sees_new_nested_directories() {
    let env = Env::new();
    let tree = env.path("tree");
    fs::create_dir(&tree).unwrap();
    let deep = tree.join("a/b/f");
    let mut p = probe_observing(&env.hub, &tree, true, &deep);
    assert_eq!(env.watched_dirs(), 2, "tmp (also the anchor) + tree");

    fs::create_dir(tree.join("a")).unwrap();
    fs::create_dir(tree.join("a/b")).unwrap();
    fs::write(&deep, "x").unwrap();
    p.wake_seeing(true).await;
    env.barrier().await;
    assert_eq!(env.watched_dirs(), 4, "tmp + tree + a + a/b");

    p.drain();
    append(&deep, "y");
    p.wake().await;

    // Created faster than the watches can follow.
    let deeper = tree.join("x/y/z/g");
    let mut q = probe_observing(&env.hub, &tree, true, &deeper);
    fs::create_dir_all(deeper.parent().unwrap()).unwrap();
    fs::write(&deeper, "x").unwrap();
    q.wake_seeing(true).await;

    fs::remove_dir_all(tree.join("a")).unwrap();
    fs::remove_dir_all(tree.join("x")).unwrap();
    p.wake_seeing(false).await;
    env.barrier().await;
    assert_eq!(env.watched_dirs(), 2, "subtrees dropped");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sibling_events_do_not_wake() {
    let env = Env::new();
    let f = env.path("target");
    let sibling = env.path("target.bak");
    fs::write(&f, "x").unwrap();
    let mut p = probe(&env.hub, &f, false);
    env.barrier().await;
    p.drain();

    fs::write(&sibling, "s").unwrap();
    append(&sibling, "t");
    fs::set_permissions(&sibling, fs::Permissions::from_mode(0o600)).unwrap();
    replace(&sibling, "u");
    fs::remove_file(&sibling).unwrap();
    fs::read(&f).unwrap(); // opening and reading the target is no change either
    env.barrier().await;
    p.assert_quiet("sibling change");

    append(&f, "y");
    p.wake().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dropping_the_subscription_stops_wakes_and_unwatches() {
    let env = Env::new();
    let d = env.path("d");
    let f = d.join("f");
    fs::create_dir(&d).unwrap();
    fs::write(&f, "x").unwrap();
    let Probe { mut rx, sub } = probe(&env.hub, &f, false);
    assert_eq!(env.watched_dirs(), 2);
    append(&f, "y");
    timeout(TIMEOUT, rx.recv()).await.unwrap().unwrap();

    drop(sub);
    assert_eq!(env.watched_dirs(), 1, "d's watch removed");
    env.barrier().await;
    while rx.try_recv().is_ok() {}
    append(&f, "z");
    fs::remove_file(&f).unwrap();
    env.barrier().await;
    assert!(rx.try_recv().is_err(), "wake after drop");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ten_thousand_subscribers_share_one_watch() {
    const N: usize = 10_000;
    let env = Env::new();
    let many = env.path("many");
    fs::create_dir(&many).unwrap();
    env.barrier().await; // the creation of `many` would wake its future subscribers
    let counts: Arc<Vec<AtomicUsize>> = Arc::new((0..N).map(|_| AtomicUsize::new(0)).collect());
    let subs: Vec<Subscription> = (0..N)
        .map(|i| {
            let counts = Arc::clone(&counts);
            let waker: Waker = Arc::new(move || {
                counts[i].fetch_add(1, Ordering::Relaxed);
            });
            env.hub
                .subscribe(&many.join(format!("file-{i}")), false, waker)
                .unwrap()
        })
        .collect();
    assert_eq!(env.watched_dirs(), 2, "tmp + many");

    fs::write(many.join("file-5000"), "x").unwrap();
    env.barrier().await;
    for (i, c) in counts.iter().enumerate() {
        let n = c.load(Ordering::Relaxed);
        if i == 5000 {
            assert!(n >= 1, "file-5000 not woken");
        } else {
            assert_eq!(n, 0, "file-{i} woken");
        }
    }
    drop(subs);
    assert_eq!(env.watched_dirs(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn queue_overflow_wakes_everyone() {
    let env = Env::new();
    let stall = Stall::new(&env);
    let busy = env.path("busy");
    fs::write(&busy, "").unwrap();
    fs::create_dir(env.path("quiet")).unwrap();
    let mut q = probe(&env.hub, &env.path("quiet/f"), false);
    env.barrier().await;
    q.drain();

    let release = stall.hold();
    let max_queued: usize = fs::read_to_string("/proc/sys/fs/inotify/max_queued_events")
        .ok()
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(16_384);
    // Each append queues MODIFY and CLOSE_WRITE (opens are not watched): twice the queue.
    for _ in 0..max_queued {
        append(&busy, "x");
    }
    q.assert_quiet("before overflow");
    release.send(()).unwrap();
    q.wake().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wakers_may_subscribe_and_unsubscribe() {
    let env = Env::new();
    let f = env.path("f");
    let g = env.path("g");
    let held: Arc<Mutex<Vec<Subscription>>> = Arc::default();
    let (g_tx, mut g_rx) = unbounded_channel::<()>();
    let (done_tx, done_rx) = mpsc::channel::<()>();
    let hub = env.hub.clone();
    let held2 = Arc::clone(&held);
    let g2 = g.clone();
    let _f_sub = env
        .hub
        .subscribe(
            &f,
            false,
            Arc::new(move || {
                let g_tx = g_tx.clone();
                let sub = hub
                    .subscribe(
                        &g2,
                        false,
                        Arc::new(move || {
                            let _ = g_tx.send(());
                        }),
                    )
                    .expect("subscribe from a waker");
                // Replace (and so drop) the previous one, inside the waker.
                let old = std::mem::replace(&mut *held2.lock().unwrap(), vec![sub]);
                drop(old);
                let _ = done_tx.send(());
            }),
        )
        .unwrap();
    fs::write(&f, "x").unwrap();
    done_rx.recv_timeout(TIMEOUT).expect("waker ran");
    env.barrier().await;
    while g_rx.try_recv().is_ok() {}
    fs::write(&g, "y").unwrap();
    timeout(TIMEOUT, g_rx.recv()).await.unwrap().unwrap();
    held.lock().unwrap().clear();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn symlinked_directory_shares_the_watch() {
    let env = Env::new();
    let real = env.path("real");
    fs::create_dir(&real).unwrap();
    let link = env.path("link");
    std::os::unix::fs::symlink("real", &link).unwrap();
    let mut via_link = probe(&env.hub, &link.join("f"), false);
    let mut direct = probe(&env.hub, &real.join("g"), false);
    assert_eq!(env.watched_dirs(), 2, "tmp + real, shared");

    fs::write(real.join("f"), "x").unwrap();
    via_link.wake_seeing(true).await;
    fs::write(link.join("g"), "y").unwrap();
    direct.wake_seeing(true).await;

    drop(direct.sub);
    via_link.assert_live(&env, &real.join("f"), "z").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unreadable_directory_is_a_clear_error() {
    if fs::metadata("/proc/self").is_ok_and(|m| m.uid() == 0) {
        eprintln!("skipped: root ignores directory permissions");
        return;
    }
    let env = Env::new();
    let locked = env.path("locked");
    fs::create_dir(&locked).unwrap();
    fs::set_permissions(&locked, fs::Permissions::from_mode(0o000)).unwrap();
    let err = env
        .hub
        .subscribe(&locked.join("inner/f"), false, Arc::new(|| {}))
        .unwrap_err();
    fs::set_permissions(&locked, fs::Permissions::from_mode(0o700)).unwrap();
    assert!(
        matches!(&err, WatchError::PermissionDenied { dir, .. } if dir == &locked),
        "{err}"
    );
    assert!(err.to_string().contains("permission denied"));
}

#[test]
fn watch_limit_error_names_path_and_sysctl() {
    let err = control::hold_error_for_test(Path::new("/etc/app"), Path::new("/etc/app/x.conf"));
    let text = err.to_string();
    assert!(text.contains("/etc/app"), "{text}");
    assert!(text.contains("/etc/app/x.conf"), "{text}");
    assert!(text.contains("fs.inotify.max_user_watches"), "{text}");
}

#[test]
fn paths_are_normalised() {
    assert_eq!(
        normalize(Path::new("/a/./b/../c/")).unwrap(),
        PathBuf::from("/a/c")
    );
    let cwd = std::env::current_dir().unwrap();
    assert_eq!(normalize(Path::new("x")).unwrap(), cwd.join("x"));
}

#[test]
fn hub_and_subscription_are_send_and_sync() {
    fn check<T: Send + Sync>() {}
    check::<WatchHub>();
    check::<Subscription>();
    check::<WatchError>();
}

#[test]
fn subscribers_below_a_path_are_found_in_byte_order() {
    let sub = |target: &str| {
        Arc::new(Sub {
            id: 0,
            target: PathBuf::from(target),
            recursive: false,
            waker: Arc::new(|| {}),
            echo: None,
        })
    };
    let mut map = SubMap::new();
    for t in [
        "/a/b", "/a/b-c", "/a/b/c", "/a/b/c/d", "/a/b0", "/a/bb", "/b",
    ] {
        map.insert(t.as_bytes().to_vec(), vec![sub(t)]);
    }
    let below = |p: &str| -> Vec<String> {
        routes::subs_below(&map, Path::new(p))
            .iter()
            .map(|subs| subs[0].target.display().to_string())
            .collect()
    };
    assert_eq!(below("/a/b"), ["/a/b/c", "/a/b/c/d"]);
    assert_eq!(below("/a/b/c"), ["/a/b/c/d"]);
    assert_eq!(below("/a/b-c"), Vec::<String>::new());
    assert_eq!(
        below("/"),
        [
            "/a/b", "/a/b-c", "/a/b/c", "/a/b/c/d", "/a/b0", "/a/bb", "/b"
        ]
    );
}

/// A `/proc` file the kernel signals through `poll` is watched there, not by inotify
/// (which sees nothing in procfs): no directory watch is placed for it, its subscription
/// says what it is, and the hub closes its watcher too.
#[test]
fn signalled_proc_files_are_watched_through_poll() {
    let hub = WatchHub::new().expect("hub");
    let before = hub.watched_dirs();
    let sub = hub
        .subscribe(Path::new("/proc/self/mountinfo"), false, Arc::new(|| {}))
        .expect("subscribe");
    assert_eq!(sub.path(), Path::new("/proc/self/mountinfo"));
    assert_eq!(hub.watched_dirs(), before, "an inotify watch was placed");
    hub.close();
    let err = hub
        .subscribe(Path::new("/proc/sys/kernel/hostname"), false, Arc::new(|| {}))
        .expect_err("closed");
    assert!(err.to_string().contains("through poll"), "{err}");
    drop(sub);
}
