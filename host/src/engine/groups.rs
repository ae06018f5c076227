//! Resources of a kind that groups (manifest `groups`, `pkg`; mgmt's `autogroup`)
//! applied together: those ready to run at the same moment go to the plugin in one
//! `check-apply-group` call, so fifty packages are installed in one apt transaction.
//!
//! Each kind that groups has a [`Group`] (per plugin). A member about to check-apply
//! queues itself in its group. The first to queue *leads*: it waits while another member
//! is on its way (dirty or woken, every predecessor done, not yet queued), at most
//! [`GATHER_MAX`], then takes the queue and makes one call for everyone in it (a plain
//! `check-apply` when it is alone), and hands each its own result. The others wait for
//! theirs. Every member still goes through its own vertex loop (dependencies,
//! semaphores, retries, logging, the summary), so grouping changes how many calls the
//! plugin gets and nothing else.
//!
//! A member waiting for a result whose leader stopped (its resource left the graph in a
//! swap) takes the lead itself after [`LEADER_CHECK`]. A resource with `autogroup: false`
//! or `noop: true` never joins a group.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;

use tokio::sync::{oneshot, watch};
use tokio::time::Instant;

use super::converger::Phase;
use super::vertex::Vertex;
use crate::plugin::call::GroupMember;
use crate::plugin::types::{CallError, CheckOutcome, PluginError};
use crate::sys::footprint::Footprint;

/// The longest a leader waits for members still on their way.
pub(super) const GATHER_MAX: Duration = Duration::from_millis(250);
/// How often a leader looks whether members are still on their way.
const GATHER_TICK: Duration = Duration::from_millis(2);
/// How often a waiting member looks whether its group still has a leader.
const LEADER_CHECK: Duration = Duration::from_millis(100);

/// A member's result, as a plain check-apply's.
type Answer = Result<CheckOutcome, CallError>;

/// A failure of the group's own making (not the plugin's), as a member's error.
fn failed(message: &str) -> CallError {
    CallError::Plugin(PluginError {
        message: message.to_string(),
        field: None,
    })
}

/// The groups of the running graph, by plugin and kind.
#[derive(Default)]
pub(super) struct Groups {
    by_kind: Mutex<HashMap<(usize, String), Arc<Group>>>,
}

impl Groups {
    /// Put each of `vertices` whose kind groups (and that may be grouped) in its kind's
    /// group; groups whose members all left are dropped first.
    pub(super) fn join(&self, vertices: &[Arc<Vertex>]) {
        let mut groups = self.by_kind.lock().expect("groups lock");
        groups.retain(|_, g| any_alive(&g.members));
        for v in vertices {
            if !v.meta.autogroup || v.meta.noop || !v.plugin.groups(&v.id.kind) {
                continue;
            }
            let plugin = Arc::as_ptr(&v.plugin) as usize;
            let group = groups
                .entry((plugin, v.id.kind.clone()))
                .or_insert_with(|| Arc::new(Group::new(&v.id.kind)))
                .clone();
            enlist(&group.members, v);
            let _ = v.group.set(group);
        }
    }
}

/// The resources of one kind that are applied together (see the module docs).
pub(super) struct Group {
    kind: String,
    members: Mutex<Vec<Weak<Vertex>>>,
    queue: Mutex<Queue>,
}

#[derive(Default)]
struct Queue {
    entries: Vec<Entry>,
    /// A member is gathering or calling for the entries.
    leading: bool,
}

/// A queued member: what its call needs, and where its answer goes.
struct Entry {
    key: usize,
    member: GroupMember,
    vertex: Weak<Vertex>,
    answer: oneshot::Sender<Answer>,
}

fn key(v: &Vertex) -> usize {
    std::ptr::from_ref(v) as usize
}

/// Add `v` to a group's `members` (kept weak: a group never keeps a vertex alive).
pub(super) fn enlist(members: &Mutex<Vec<Weak<Vertex>>>, v: &Arc<Vertex>) {
    members
        .lock()
        .expect("members lock")
        .push(Arc::downgrade(v));
}

/// Whether any of `members` is still in the graph (a group of none is dropped at the
/// next join; `edits` does the same for its groups).
pub(super) fn any_alive(members: &Mutex<Vec<Weak<Vertex>>>) -> bool {
    members
        .lock()
        .expect("members lock")
        .iter()
        .any(|m| m.strong_count() > 0)
}

/// Lets go of the lead when the leader's future ends, however it ends.
struct Lead<'g>(&'g Group);

impl Drop for Lead<'_> {
    fn drop(&mut self) {
        if let Ok(mut q) = self.0.queue.lock() {
            q.leading = false;
        }
    }
}

impl Group {
    fn new(kind: &str) -> Group {
        Group {
            kind: kind.to_string(),
            members: Mutex::new(Vec::new()),
            queue: Mutex::new(Queue::default()),
        }
    }

    /// `v`'s check-apply as `member` says (its effective params and footprint), made
    /// together with the other members ready now.
    pub(super) async fn check_apply(
        &self,
        v: &Arc<Vertex>,
        member: GroupMember,
        apply: bool,
        stop: &mut watch::Receiver<bool>,
    ) -> Answer {
        let (tx, mut rx) = oneshot::channel();
        let me = key(v);
        let mut lead = {
            let mut q = self.queue.lock().expect("queue lock");
            q.entries.push(Entry {
                key: me,
                member,
                vertex: Arc::downgrade(v),
                answer: tx,
            });
            !std::mem::replace(&mut q.leading, true)
        };
        loop {
            if lead {
                let entries = {
                    // Let go of the lead once the queue is taken (or the wait stopped):
                    // who queues next leads the next call, and gathers meanwhile.
                    let _lead = Lead(self);
                    self.gather(stop).await;
                    if *stop.borrow() {
                        Vec::new()
                    } else {
                        std::mem::take(&mut self.queue.lock().expect("queue lock").entries)
                    }
                };
                if !entries.is_empty() {
                    self.run(v, entries, apply).await;
                }
            }
            tokio::select! {
                r = &mut rx => {
                    return r.unwrap_or_else(|_| {
                        Err(failed(
                            "its group's call was interrupted (the resource that made it left)",
                        ))
                    });
                }
                _ = tokio::time::sleep(LEADER_CHECK) => {
                    // Still queued and nobody leads: lead.
                    let mut q = self.queue.lock().expect("queue lock");
                    lead = !q.leading && q.entries.iter().any(|e| e.key == me);
                    q.leading |= lead;
                }
                _ = stop.wait_for(|s| *s) => {
                    self.queue
                        .lock()
                        .expect("queue lock")
                        .entries
                        .retain(|e| e.key != me);
                    return Err(failed("stopping"));
                }
            }
        }
    }

    /// Wait while a member not yet queued is on its way (see [`Group::coming`]), at most
    /// [`GATHER_MAX`].
    async fn gather(&self, stop: &mut watch::Receiver<bool>) {
        let deadline = Instant::now() + GATHER_MAX;
        while self.coming() && Instant::now() < deadline {
            tokio::select! {
                _ = tokio::time::sleep(GATHER_TICK) => {}
                _ = stop.wait_for(|s| *s) => return,
            }
        }
    }

    /// Whether a member that is not queued will run soon: it is dirty (or woken and on
    /// its way), not failed or stopped, and every predecessor is done.
    fn coming(&self) -> bool {
        let queued: Vec<usize> = self
            .queue
            .lock()
            .expect("queue lock")
            .entries
            .iter()
            .map(|e| e.key)
            .collect();
        let members = self.members.lock().expect("members lock");
        members.iter().filter_map(Weak::upgrade).any(|m| {
            !queued.contains(&key(&m))
                && !*m.stop.borrow()
                && m.is_pending()
                && m.phase() != Phase::Failed
                && m.links
                    .read()
                    .expect("links lock")
                    .preds
                    .iter()
                    .all(|p| p.v.phase() == Phase::Ok)
        })
    }

    /// One call for `entries` (a plain check-apply for one), each answered.
    async fn run(&self, leader: &Arc<Vertex>, entries: Vec<Entry>, apply: bool) {
        if entries.len() == 1 {
            let Some(Entry {
                member,
                vertex,
                answer,
                ..
            }) = entries.into_iter().next()
            else {
                return;
            };
            let v = vertex.upgrade().unwrap_or_else(|| leader.clone());
            let r = v
                .plugin
                .check_apply(
                    &v.reference,
                    member.params,
                    member.footprint,
                    apply,
                    member.refresh,
                    member.limits,
                    v.echoes.clone(),
                )
                .await;
            let _ = answer.send(r);
            return;
        }
        let (members, answers): (Vec<GroupMember>, Vec<_>) =
            entries.into_iter().map(|e| (e.member, e.answer)).unzip();
        tracing::debug!(
            "{}: {} resources in one call: {}",
            self.kind,
            members.len(),
            members
                .iter()
                .map(|m| m.name.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        );
        let results = leader
            .plugin
            .check_apply_group(&self.kind, &members, apply)
            .await;
        for (answer, r) in answers.into_iter().zip(results) {
            let _ = answer.send(r);
        }
    }
}

/// What a vertex's group call needs of it.
pub(super) fn member(
    v: &Vertex,
    params: Arc<str>,
    footprint: Arc<Footprint>,
    refresh: bool,
) -> GroupMember {
    GroupMember {
        name: v.id.name.clone(),
        params,
        footprint,
        refresh,
        limits: v.call_limits(),
    }
}
