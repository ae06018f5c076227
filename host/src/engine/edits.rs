//! Editing resources that share a file (`line`, `ini`: grants marked `shared`, see
//! `sys::fs::edits`): one check-apply at a time on the file, and one write for the edits
//! of all those ready to run.
//!
//! Each shared file has an [`EditGroup`]. A member takes the group's *turn* before its
//! check-apply, so editors of one file never read it while another is editing it. Its
//! writes are staged by `fs`, and the next member's reads see them. After its
//! check-apply a member asks whether another member is ready to run (waiting for the
//! turn, or dirty or on its way to it, with every predecessor done): if so and it
//! changed something, it hands the turn on and waits for the write; otherwise it writes
//! what is staged (`FsHost::flush_edits`), and answers every member waiting for that
//! write with its result. So ten `line` resources made dirty together (a cold start, an editor rewriting
//! the file) converge with one write, and a failed write fails every resource whose edit
//! it carried.
//!
//! A member waits for the write at most [`HANDOFF_WAIT`]; if the members it handed on
//! to have not written by then (one was removed by a graph swap, or is slow), it takes
//! the turn and writes itself, so staged edits can never be stranded.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;

use tokio::sync::{oneshot, watch};

use super::converger::Phase;
use super::vertex::{Ctx, Vertex};
use crate::sys::footprint::Footprint;

/// How long a member that handed the turn on waits for the write before it writes
/// itself.
pub(super) const HANDOFF_WAIT: Duration = Duration::from_secs(1);

/// The result of the write carrying a member's edits, as the member's error.
type Written = Result<(), String>;

/// The edit groups of the running graph, by file.
#[derive(Default)]
pub(super) struct EditGroups {
    by_path: Mutex<HashMap<PathBuf, Arc<EditGroup>>>,
}

impl EditGroups {
    /// Put each of `vertices` that is an editing resource in the group of the file it
    /// shares (once per graph or swap: the groups whose members all left are dropped
    /// first, in one pass).
    pub(super) fn join(&self, vertices: &[Arc<Vertex>]) {
        let mut groups = self.by_path.lock().expect("edit groups lock");
        groups.retain(|_, g| super::groups::any_alive(&g.members));
        for v in vertices {
            let Some(g) = v.footprint.paths.iter().find(|g| g.write && g.shared) else {
                continue;
            };
            Self::join_one(&mut groups, g.path.clone(), v);
        }
    }

    fn join_one(groups: &mut HashMap<PathBuf, Arc<EditGroup>>, path: PathBuf, v: &Arc<Vertex>) {
        let group = groups
            .entry(path)
            .or_insert_with(|| {
                Arc::new(EditGroup {
                    turn: tokio::sync::Mutex::new(()),
                    queued: AtomicUsize::new(0),
                    members: Mutex::new(Vec::new()),
                    awaiting: Mutex::new(Vec::new()),
                })
            })
            .clone();
        super::groups::enlist(&group.members, v);
        let _ = v.edit.set(group);
    }
}

/// The editing resources of one file (see the module docs).
pub(super) struct EditGroup {
    /// Held for a member's check-apply.
    turn: tokio::sync::Mutex<()>,
    /// Members waiting for the turn.
    queued: AtomicUsize,
    members: Mutex<Vec<Weak<Vertex>>>,
    /// Members that handed the turn on with edits staged, waiting for the write: each
    /// vertex (by address) with where to send the write's result.
    awaiting: Mutex<Vec<(usize, oneshot::Sender<Written>)>>,
}

/// A member's turn on its file.
pub(super) struct Turn<'g> {
    group: &'g EditGroup,
    _guard: tokio::sync::MutexGuard<'g, ()>,
}

fn key(v: &Vertex) -> usize {
    std::ptr::from_ref(v) as usize
}

impl EditGroup {
    /// Wait for this file's turn; `None` when stopped first.
    pub(super) async fn turn(&self, stop: &mut watch::Receiver<bool>) -> Option<Turn<'_>> {
        self.queued.fetch_add(1, Ordering::AcqRel);
        let guard = tokio::select! {
            g = self.turn.lock() => Some(g),
            _ = stop.wait_for(|s| *s) => None,
        };
        self.queued.fetch_sub(1, Ordering::AcqRel);
        guard.map(|g| Turn {
            group: self,
            _guard: g,
        })
    }

    /// Whether a member other than `v` will run soon: it waits for the turn, or it is
    /// dirty (or woken and on its way) and every predecessor outside this group is done.
    /// Members waiting for a write are not counted (they run again only after it).
    fn others_ready(&self, v: &Vertex) -> bool {
        if self.queued.load(Ordering::Acquire) > 0 {
            return true;
        }
        let awaiting: Vec<usize> = self
            .awaiting
            .lock()
            .expect("awaiting lock")
            .iter()
            .map(|(k, _)| *k)
            .collect();
        let members = self.members.lock().expect("members lock");
        members.iter().filter_map(Weak::upgrade).any(|m| {
            key(&m) != key(v)
                && !awaiting.contains(&key(&m))
                && !*m.stop.borrow()
                && m.is_pending()
                && m.phase() != Phase::Failed
                && m.links.read().expect("links lock").preds.iter().all(|p| {
                    p.v.phase() == Phase::Ok
                        || p.v.edit.get().is_some_and(|g| std::ptr::eq(&**g, self))
                })
        })
    }

    /// Write what is staged for the file through `fp`, and answer every member waiting
    /// for it.
    async fn flush(&self, v: &Vertex, ctx: &Ctx, fp: &Footprint) -> Written {
        let mut result: Written = Ok(());
        let carried = self.awaiting.lock().expect("awaiting lock").len() + 1;
        for g in fp.paths.iter().filter(|g| g.write && g.shared) {
            match ctx.sys.fs.flush_edits(fp, &g.path, &v.echoes).await {
                Ok(true) => tracing::debug!(
                    "{}: wrote {} with the edits of up to {carried} resources",
                    v.id,
                    g.path.display()
                ),
                Ok(false) => {}
                Err(e) => {
                    result = Err(format!(
                        "writing {} with the edits of the resources that share it: {e}",
                        g.path.display()
                    ));
                }
            }
        }
        for (_, tx) in self.awaiting.lock().expect("awaiting lock").drain(..) {
            let _ = tx.send(result.clone());
        }
        result
    }
}

impl Turn<'_> {
    /// End `v`'s turn after its check-apply (through `fp`, which `changed` the file or
    /// not): hand on to a member ready to run, or write the staged edits (see the module
    /// docs). The result of the write carrying `v`'s edits.
    pub(super) async fn end(
        self,
        v: &Vertex,
        ctx: &Ctx,
        fp: &Footprint,
        changed: bool,
        stop: &mut watch::Receiver<bool>,
    ) -> Written {
        let group = self.group;
        if !group.others_ready(v) {
            return group.flush(v, ctx, fp).await;
        }
        if !changed {
            return Ok(());
        }
        let (tx, mut rx) = oneshot::channel();
        group
            .awaiting
            .lock()
            .expect("awaiting lock")
            .push((key(v), tx));
        drop(self);
        tokio::select! {
            r = &mut rx => return r.unwrap_or(Ok(())),
            _ = tokio::time::sleep(HANDOFF_WAIT) => {}
            _ = stop.wait_for(|s| *s) => {}
        }
        // Not written in time (or stopping): write it ourselves, with the turn, so no
        // staged edit is left behind.
        let _guard = group.turn.lock().await;
        if let Ok(r) = rx.try_recv() {
            return r;
        }
        group.flush(v, ctx, fp).await
    }
}
