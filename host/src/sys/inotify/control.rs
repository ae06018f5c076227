//! The hub's control thread: places, shares and removes directory watches and moves each
//! subscriber's anchor as directories appear and disappear.
//!
//! It runs apart from the inotify event thread so that placing watches (a `stat` and a
//! `canonicalize` per directory) never holds up events. It alone changes watches; the event
//! handler only reads the alias table it publishes and sends it [`Cmd::Changed`] when an
//! event alters directories someone depends on.

use std::collections::{BTreeMap, BTreeSet, HashMap, VecDeque};
use std::fs;
use std::io;
use std::ops::Bound;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, mpsc};

use super::error::WatchError;
use super::event::mark_internal;
use super::reader::DirWatcher;
use super::routes::{Cmd, Shared, Sub, bytes, subs_below};

/// Bound on anchor moves while settling one subscriber (directories that keep flapping).
const MAX_MOVES: usize = 64;

/// The control thread: its watches and where each subscriber is anchored.
pub(super) struct Control {
    shared: Arc<Shared>,
    dirs: Dirs,
    subs: HashMap<u64, SubState>,
    /// While one batch of new subscribers is placed: the last target parent whose nearest
    /// existing directory was checked after its watch was in place, and that directory.
    /// Files of one directory come in runs, and two `stat`s per subscriber of the same
    /// directory were most of placing 10 000 of them.
    nearest: Option<(PathBuf, PathBuf)>,
}

/// What the control thread keeps per subscriber.
struct SubState {
    sub: Arc<Sub>,
    /// The directory watched for the target's own name: its parent, or the nearest existing
    /// ancestor while the parent is missing.
    anchor: Option<Hold>,
    /// Recursive subscribers: the target directory and every directory below it, by literal path.
    tree: BTreeMap<PathBuf, Hold>,
}

/// One reference to a watched directory.
struct Hold {
    /// The path as the subscriber spells it.
    literal: PathBuf,
    /// The key of the watched directory in [`Dirs::by_path`].
    canonical: PathBuf,
    /// Identity of that watch; a hold whose id no longer matches refers to a dead watch.
    id: u64,
}

/// The watched directories.
struct Dirs {
    watcher: DirWatcher,
    shared: Arc<Shared>,
    by_path: BTreeMap<PathBuf, Dir>,
    by_inode: HashMap<(u64, u64), PathBuf>,
    /// Literal path -> the canonical path it was last resolved to. A hint only: it is
    /// trusted when that directory is still watched under this literal, which lets the
    /// 10 000th file of a directory skip `canonicalize` (one `readlink` per component)
    /// and `stat`. Resolving again would not notice more: re-pointed symlinks among a
    /// watched directory's ancestors are a documented limit, and a directory that is
    /// replaced loses its watch (and so its aliases) through its own events.
    resolved: HashMap<PathBuf, PathBuf>,
    next_id: u64,
    /// Literal paths whose holders must be settled again (a watch was found dead while placing
    /// another).
    stale: Vec<PathBuf>,
}

struct Dir {
    id: u64,
    inode: (u64, u64),
    /// Literal path -> number of holds.
    aliases: BTreeMap<PathBuf, usize>,
}

enum HoldError {
    /// The directory is gone (or no longer a directory): look again.
    Vanished,
    Limit(PathBuf),
    Denied(PathBuf),
    Io(PathBuf, io::Error),
}

impl HoldError {
    /// The error for the subscriber of `target`; `None` for [`HoldError::Vanished`].
    fn for_target(self, target: &Path) -> Option<WatchError> {
        let path = target.to_path_buf();
        match self {
            HoldError::Vanished => None,
            HoldError::Limit(dir) => Some(WatchError::WatchLimit { path, dir }),
            HoldError::Denied(dir) => Some(WatchError::PermissionDenied { path, dir }),
            HoldError::Io(dir, source) => Some(WatchError::Watch { path, dir, source }),
        }
    }

    fn from_io(dir: &Path, err: io::Error) -> HoldError {
        match err.kind() {
            io::ErrorKind::NotFound | io::ErrorKind::NotADirectory => HoldError::Vanished,
            io::ErrorKind::PermissionDenied => HoldError::Denied(dir.to_path_buf()),
            _ if err.raw_os_error() == Some(ENOSPC) => HoldError::Limit(dir.to_path_buf()),
            _ => HoldError::Io(dir.to_path_buf(), err),
        }
    }
}

/// `ENOSPC` on Linux: what `inotify_add_watch` returns at `fs.inotify.max_user_watches`.
const ENOSPC: i32 = 28;

/// Subscribers to wake once a command is done, each once.
#[derive(Default)]
struct Wakes(BTreeMap<u64, Arc<Sub>>);

impl Wakes {
    fn add(&mut self, sub: &Arc<Sub>) {
        self.0.entry(sub.id).or_insert_with(|| Arc::clone(sub));
    }

    fn run(self) {
        for sub in self.0.into_values() {
            sub.wake();
        }
    }
}

impl Control {
    pub(super) fn new(shared: Arc<Shared>, watcher: DirWatcher) -> Control {
        Control {
            dirs: Dirs {
                watcher,
                shared: Arc::clone(&shared),
                by_path: BTreeMap::new(),
                by_inode: HashMap::new(),
                resolved: HashMap::new(),
                next_id: 1,
                stale: Vec::new(),
            },
            shared,
            subs: HashMap::new(),
            nearest: None,
        }
    }

    pub(super) fn run(mut self, rx: mpsc::Receiver<Cmd>) {
        mark_internal();
        while let Ok(cmd) = rx.recv() {
            let mut wakes = Wakes::default();
            match cmd {
                Cmd::Shutdown => break,
                Cmd::Add { subs, reply } => {
                    let waiting = reply.is_some();
                    self.nearest = Some((PathBuf::new(), PathBuf::new()));
                    let results: Vec<_> =
                        subs.into_iter().map(|sub| self.add(sub, waiting)).collect();
                    self.nearest = None;
                    if let Some(reply) = reply {
                        let _ = reply.send(results);
                    }
                }
                Cmd::Remove { id, reply } => {
                    self.remove(id);
                    if let Some(reply) = reply {
                        let _ = reply.send(());
                    }
                }
                Cmd::Changed {
                    path,
                    mut literals,
                    gone,
                } => {
                    if gone {
                        literals.extend(self.dirs.invalidate_below(&path));
                    }
                    self.resettle(&literals, &mut wakes);
                }
                Cmd::Resync => self.resync(&mut wakes),
                Cmd::Mounts(points) => self.remounted(&points, &mut wakes),
                Cmd::Flush(reply) => {
                    let _ = reply.send(());
                }
            }
            for _ in 0..MAX_MOVES {
                let stale = std::mem::take(&mut self.dirs.stale);
                if stale.is_empty() {
                    break;
                }
                self.resettle(&stale, &mut wakes);
            }
            wakes.run();
        }
        // Drop the wakers outside the lock: dropping one may drop a Subscription.
        let routes = std::mem::take(&mut *self.shared.lock());
        drop(routes);
        tracing::debug!(dirs = self.dirs.by_path.len(), "file watch hub stopped");
    }

    /// Place a new subscriber's watches. On failure nothing is kept for it when its caller
    /// waits for the result; a subscription made inside a waker (nobody waits) is kept and
    /// settled again on the next change or resync.
    fn add(&mut self, sub: Arc<Sub>, waiting: bool) -> Result<(), WatchError> {
        let id = sub.id;
        self.subs.insert(
            id,
            SubState {
                sub,
                anchor: None,
                tree: BTreeMap::new(),
            },
        );
        let result = self.settle(id).map(|_| ());
        if let Err(e) = &result {
            if waiting {
                self.remove(id);
            } else {
                tracing::warn!(error = %e, "subscription made inside a waker has no watch yet");
            }
        }
        result
    }

    fn remove(&mut self, id: u64) {
        if let Some(state) = self.subs.remove(&id) {
            if let Some(echo) = &state.sub.echo {
                echo.reset(false);
            }
            if let Some(hold) = state.anchor {
                self.dirs.release(hold);
            }
            for hold in state.tree.into_values() {
                self.dirs.release(hold);
            }
        }
    }

    /// Settles everyone whose watches depend on the given literal paths.
    fn resettle(&mut self, literals: &[PathBuf], wakes: &mut Wakes) {
        let mut full = BTreeSet::new();
        let mut partial = Vec::new();
        {
            let routes = self.shared.lock();
            for lit in literals {
                if let Some(subs) = routes.exact.get(bytes(lit)) {
                    full.extend(subs.iter().map(|s| s.id));
                }
                for subs in subs_below(&routes.exact, lit) {
                    full.extend(subs.iter().map(|s| s.id));
                }
                for ancestor in lit.ancestors().skip(1) {
                    if let Some(subs) = routes.recursive.get(bytes(ancestor)) {
                        partial.extend(subs.iter().map(|s| (s.id, lit.clone())));
                    }
                }
            }
        }
        for id in &full {
            let result = self.settle(*id);
            self.note(*id, result, wakes);
        }
        for (id, lit) in partial {
            if !full.contains(&id) {
                let result = self.settle_tree(id, &lit);
                self.note(id, result, wakes);
            }
        }
    }

    /// Events were lost: drop watches whose directory changed, settle everyone.
    fn resync(&mut self, wakes: &mut Wakes) {
        self.dirs.verify();
        let ids: Vec<u64> = self.subs.keys().copied().collect();
        for id in ids {
            let result = self.settle(id);
            self.note(id, result, wakes);
        }
    }

    /// Mounts appeared or went at `points`: a watched directory there may now be covered
    /// (or uncovered), and what lies below changed without an event. Watches whose path
    /// now leads to another directory are placed again, and every subscriber at or below a
    /// point (or watching a tree around it) is woken.
    fn remounted(&mut self, points: &[PathBuf], wakes: &mut Wakes) {
        self.dirs.verify();
        self.resettle(points, wakes);
        let routes = self.shared.lock();
        for point in points {
            for subs in routes
                .exact
                .get(bytes(point))
                .into_iter()
                .chain(subs_below(&routes.exact, point))
            {
                subs.iter().for_each(|s| wakes.add(s));
            }
            for ancestor in point.ancestors().skip(1) {
                if let Some(subs) = routes.recursive.get(bytes(ancestor)) {
                    subs.iter().for_each(|s| wakes.add(s));
                }
            }
        }
    }

    /// Wakes a subscriber whose watches moved (it may have missed a change meanwhile) or
    /// could not be placed.
    fn note(&mut self, id: u64, result: Result<bool, WatchError>, wakes: &mut Wakes) {
        let Some(state) = self.subs.get(&id) else {
            return;
        };
        match result {
            Ok(false) => {}
            Ok(true) => wakes.add(&state.sub),
            Err(e) => {
                tracing::warn!(error = %e, "file watch lost");
                wakes.add(&state.sub);
            }
        }
    }

    /// Places the anchor and, for a recursive subscriber, the tree. True when a watch moved.
    fn settle(&mut self, id: u64) -> Result<bool, WatchError> {
        let moved = self.settle_anchor(id)?;
        let Some(root) = self.subs.get(&id).map(|s| s.sub.target.clone()) else {
            return Ok(moved);
        };
        Ok(self.settle_tree(id, &root)? || moved)
    }

    /// Moves the anchor to the nearest existing ancestor directory of the target's parent,
    /// and tells the subscriber's [`Echo`](super::Echo) whether that is the parent itself.
    fn settle_anchor(&mut self, id: u64) -> Result<bool, WatchError> {
        let result = self.place_anchor(id);
        if let Some(state) = self.subs.get(&id)
            && let Some(echo) = &state.sub.echo
        {
            // Valid too: after too many moves the anchor may be a watch that is gone.
            let direct = result.is_ok()
                && state.anchor.as_ref().is_some_and(|hold| {
                    Some(hold.literal.as_path()) == state.sub.target.parent()
                        && self.dirs.valid(hold)
                });
            echo.anchored(direct, !matches!(result, Ok(false)));
        }
        result
    }

    /// [`Control::settle_anchor`] without the echo. True when the anchor moved.
    fn place_anchor(&mut self, id: u64) -> Result<bool, WatchError> {
        let Some(state) = self.subs.get_mut(&id) else {
            return Ok(false);
        };
        let target = &state.sub.target;
        let start = target.parent().unwrap_or(target);
        let mut moved = false;
        for attempt in 0..MAX_MOVES {
            // In a batch, a subscriber whose parent is the last one verified takes its answer:
            // that directory has been watched since the check, so a directory made below it
            // since then has sent an event, which settles this subscriber again.
            let memo = match &self.nearest {
                Some((parent, found))
                    if attempt == 0 && parent.as_os_str() == start.as_os_str() =>
                {
                    Some(found.clone())
                }
                _ => None,
            };
            let hit = memo.is_some();
            let want = memo.unwrap_or_else(|| nearest_dir(target));
            if let Some(hold) = &state.anchor
                && hold.literal == want
                && self.dirs.valid(hold)
            {
                if let Some(nearest) = &mut self.nearest {
                    *nearest = (start.to_path_buf(), want);
                }
                return Ok(moved);
            }
            let old = state.anchor.take();
            let result = self.dirs.hold(&want);
            let from = old.as_ref().map(|h| h.literal.clone());
            if let Some(old) = old {
                self.dirs.release(old);
            }
            match result {
                Ok(hold) => {
                    tracing::debug!(
                        target = %target.display(),
                        from = ?from,
                        to = %want.display(),
                        "watch moved"
                    );
                    state.anchor = Some(hold);
                    moved = true;
                    if hit {
                        return Ok(moved);
                    }
                }
                Err(e) => {
                    if let Some(nearest) = &mut self.nearest {
                        *nearest = (PathBuf::new(), PathBuf::new());
                    }
                    if let Some(err) = e.for_target(target) {
                        return Err(err);
                    }
                }
            }
        }
        tracing::warn!(target = %target.display(), "directories keep changing; watch may be stale");
        Ok(moved)
    }

    /// Brings a recursive subscriber's directory watches at and below `scope` in line with the
    /// file system (`scope` at or above the target means the whole tree). True when
    /// directories were added.
    fn settle_tree(&mut self, id: u64, scope: &Path) -> Result<bool, WatchError> {
        let Some(state) = self.subs.get_mut(&id) else {
            return Ok(false);
        };
        if !state.sub.recursive {
            return Ok(false);
        }
        let root = &state.sub.target;
        let scope = if root.starts_with(scope) {
            root.as_path()
        } else {
            scope
        };
        let desired: BTreeSet<PathBuf> = walk_dirs(scope, scope == root);
        let current: Vec<PathBuf> = state
            .tree
            .range::<Path, _>((Bound::Included(scope), Bound::Unbounded))
            .take_while(|(k, _)| k.starts_with(scope))
            .map(|(k, _)| k.clone())
            .collect();
        for path in current {
            let keep = desired.contains(&path)
                && state.tree.get(&path).is_some_and(|h| self.dirs.valid(h));
            if !keep && let Some(hold) = state.tree.remove(&path) {
                self.dirs.release(hold);
            }
        }
        let mut added = false;
        // Parents first (paths sort before their descendants).
        let mut queue: VecDeque<PathBuf> = desired.into_iter().collect();
        while let Some(path) = queue.pop_front() {
            if state.tree.contains_key(&path) {
                continue;
            }
            match self.dirs.hold(&path) {
                Ok(hold) => {
                    state.tree.insert(path.clone(), hold);
                    added = true;
                    // Subdirectories made between the walk and the watch sent no event here.
                    queue.extend(subdirs(&path).filter(|p| !state.tree.contains_key(p)));
                }
                Err(e) => {
                    let Some(err) = e.for_target(root) else {
                        continue;
                    };
                    if path == *root || matches!(err, WatchError::WatchLimit { .. }) {
                        return Err(err);
                    }
                    tracing::warn!(error = %err, "part of a recursive watch is missing");
                }
            }
        }
        if added {
            tracing::debug!(
                target = %root.display(),
                scope = %scope.display(),
                dirs = state.tree.len(),
                "recursive watch extended"
            );
        }
        Ok(added)
    }
}

impl Dirs {
    fn valid(&self, hold: &Hold) -> bool {
        self.by_path
            .get(&hold.canonical)
            .is_some_and(|d| d.id == hold.id)
    }

    /// Takes a reference to the directory `literal`, watching it if nobody does yet.
    fn hold(&mut self, literal: &Path) -> Result<Hold, HoldError> {
        if let Some(canonical) = self.resolved.get(literal)
            && let Some(dir) = self.by_path.get_mut(canonical)
            && let Some(count) = dir.aliases.get_mut(literal)
        {
            *count += 1;
            return Ok(Hold {
                literal: literal.to_path_buf(),
                canonical: canonical.clone(),
                id: dir.id,
            });
        }
        let canonical = fs::canonicalize(literal).map_err(|e| HoldError::from_io(literal, e))?;
        self.resolved
            .insert(literal.to_path_buf(), canonical.clone());
        let meta = fs::metadata(&canonical).map_err(|e| HoldError::from_io(&canonical, e))?;
        if !meta.is_dir() {
            return Err(HoldError::Vanished);
        }
        let inode = (meta.dev(), meta.ino());
        if let Some(existing) = self.by_inode.get(&inode).cloned() {
            let same = existing == canonical
                || fs::metadata(&existing).is_ok_and(|m| (m.dev(), m.ino()) == inode);
            if same && let Some(dir) = self.by_path.get_mut(&existing) {
                let count = dir.aliases.entry(literal.to_path_buf()).or_insert(0);
                *count += 1;
                let id = dir.id;
                if *count == 1 {
                    self.publish(&existing);
                }
                return Ok(Hold {
                    literal: literal.to_path_buf(),
                    canonical: existing,
                    id,
                });
            }
            // The inode number now belongs to another directory: that watch is dead.
            let lits = self.invalidate_below(&existing);
            self.stale.extend(lits);
        }
        if self.by_path.contains_key(&canonical) {
            // Another directory now lives at this path; the old watch follows the old one.
            let lits = self.invalidate_below(&canonical);
            self.stale.extend(lits);
        }
        let id = self.next_id;
        self.next_id += 1;
        // Publish before watching so that no event of the new watch is dropped.
        self.by_path.insert(
            canonical.clone(),
            Dir {
                id,
                inode,
                aliases: BTreeMap::from([(literal.to_path_buf(), 1)]),
            },
        );
        self.by_inode.insert(inode, canonical.clone());
        self.publish(&canonical);
        if let Err(e) = self.watcher.watch(&canonical) {
            self.forget(&canonical);
            return Err(HoldError::from_io(&canonical, e));
        }
        tracing::debug!(dir = %canonical.display(), "watching directory");
        Ok(Hold {
            literal: literal.to_path_buf(),
            canonical,
            id,
        })
    }

    /// Gives back a reference; the watch goes with the last one.
    fn release(&mut self, hold: Hold) {
        let Some(dir) = self.by_path.get_mut(&hold.canonical) else {
            return;
        };
        if dir.id != hold.id {
            return;
        }
        let mut publish = false;
        if let Some(count) = dir.aliases.get_mut(&hold.literal) {
            *count -= 1;
            if *count == 0 {
                dir.aliases.remove(&hold.literal);
                self.resolved.remove(&hold.literal);
                publish = true;
            }
        }
        if dir.aliases.is_empty() {
            self.forget(&hold.canonical);
            self.unwatch(&hold.canonical);
            tracing::debug!(dir = %hold.canonical.display(), "stopped watching directory");
        } else if publish {
            self.publish(&hold.canonical);
        }
    }

    /// Drops the watches of `path` and everything below it (the directory was removed, renamed
    /// or replaced) and returns the literal paths they stood for.
    fn invalidate_below(&mut self, path: &Path) -> Vec<PathBuf> {
        let victims: Vec<PathBuf> = self
            .by_path
            .range::<Path, _>((Bound::Included(path), Bound::Unbounded))
            .take_while(|(k, _)| k.starts_with(path))
            .map(|(k, _)| k.clone())
            .collect();
        let mut literals = Vec::new();
        for canonical in victims {
            if let Some(dir) = self.forget(&canonical) {
                literals.extend(dir.aliases.into_keys());
            }
            self.unwatch(&canonical);
            tracing::debug!(dir = %canonical.display(), "directory gone; watch dropped");
        }
        literals
    }

    /// After lost events: drops every watch whose path no longer leads to the same directory.
    fn verify(&mut self) {
        let dead: Vec<PathBuf> = self
            .by_path
            .iter()
            .filter(|(path, dir)| {
                !fs::metadata(path).is_ok_and(|m| m.is_dir() && (m.dev(), m.ino()) == dir.inode)
            })
            .map(|(path, _)| path.clone())
            .collect();
        for path in dead {
            let lits = self.invalidate_below(&path);
            self.stale.extend(lits);
        }
    }

    /// Removes a directory from the tables (not from inotify).
    fn forget(&mut self, canonical: &Path) -> Option<Dir> {
        let dir = self.by_path.remove(canonical)?;
        if self
            .by_inode
            .get(&dir.inode)
            .is_some_and(|p| p == canonical)
        {
            self.by_inode.remove(&dir.inode);
        }
        self.publish(canonical);
        Some(dir)
    }

    fn unwatch(&mut self, canonical: &Path) {
        // The watcher has already dropped watches of deleted or moved-away directories.
        self.watcher.unwatch(canonical);
    }

    /// Makes the event handler see the current aliases of `canonical`.
    fn publish(&self, canonical: &Path) {
        let lits = self
            .by_path
            .get(canonical)
            .map(|d| d.aliases.keys().cloned().collect::<Vec<_>>());
        let mut routes = self.shared.lock();
        match lits {
            Some(lits) => {
                routes.aliases.insert(canonical.to_path_buf(), lits);
            }
            None => {
                routes.aliases.remove(canonical);
            }
        }
    }
}

/// The directory to watch for `target`: its parent, or the nearest existing ancestor.
fn nearest_dir(target: &Path) -> PathBuf {
    let start = target.parent().unwrap_or(target);
    start
        .ancestors()
        .find(|a| fs::metadata(a).is_ok_and(|m| m.is_dir()))
        .unwrap_or(Path::new("/"))
        .to_path_buf()
}

/// `scope` and every directory below it, without following symbolic links (except `scope`
/// itself when `follow_scope`). Empty when `scope` is not a directory.
fn walk_dirs(scope: &Path, follow_scope: bool) -> BTreeSet<PathBuf> {
    let mut out = BTreeSet::new();
    let meta = if follow_scope {
        fs::metadata(scope)
    } else {
        fs::symlink_metadata(scope)
    };
    if !meta.is_ok_and(|m| m.is_dir()) {
        return out;
    }
    let mut stack = vec![scope.to_path_buf()];
    while let Some(dir) = stack.pop() {
        stack.extend(subdirs(&dir));
        out.insert(dir);
    }
    out
}

/// The directories directly in `dir` (not symbolic links to directories).
fn subdirs(dir: &Path) -> impl Iterator<Item = PathBuf> {
    fs::read_dir(dir)
        .into_iter()
        .flatten()
        .flatten()
        .filter(|entry| entry.file_type().is_ok_and(|t| t.is_dir()))
        .map(|entry| entry.path())
}

/// The error a subscriber sees when the watch limit is hit (for the message test).
#[cfg(test)]
pub(super) fn hold_error_for_test(dir: &Path, target: &Path) -> WatchError {
    HoldError::from_io(dir, io::Error::from_raw_os_error(ENOSPC))
        .for_target(target)
        .expect("an error")
}
