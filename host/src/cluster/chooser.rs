//! The chooser: the one host at a time that changes the etcd server set.
//!
//! **Election.** Every host that may serve etcd runs this task; the one that holds the
//! key `cluster/chooser` (created only when absent, on the host's lease) decides. When
//! that host dies its lease expires, the key with it, and the next host to see it gone
//! takes it. Written as one transaction rather than etcd's election service, whose
//! `Campaign` call blocks for as long as another host leads, longer than the request
//! timeout every other call of the World's connection needs. Before each change the
//! chooser checks again that it still holds the key on its current lease.
//!
//! **Rounds.** On every change under `volunteers/`, `nominated/`, `hosts/` and `cluster/`,
//! and at least every [`TICK`] while it holds the key (the others wait for a change), the
//! chooser reads the members (and asks each for its status), the live hosts, the
//! volunteers and the ideal size, lets [`super::rules::decide`] choose, and acts:
//! `member add --learner` and a nomination, `member promote`, or `member remove` and the
//! end of the nomination.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::{Duration, Instant};

use etcd_client::{Compare, CompareOp, MemberAddOptions, PutOptions, Txn, TxnOp, TxnOpResponse};

use super::membership::{
    CHOOSER, CLUSTER, NOMINATED, Nomination, Probes, VOLUNTEERS, Volunteer, ideal_size,
    list_by_host, merged_watches,
};
use super::rules::{self, Action, MemberView, View, VolunteerView};
use crate::world::etcd::{EtcdWorld, describe};
use crate::world::{WorldError, converged, segment};

/// The longest time between two rounds.
pub const TICK: Duration = Duration::from_secs(1);

/// The chooser's memory between rounds.
struct Chooser {
    world: Arc<EtcdWorld>,
    me: String,
    /// Connections to each member's client URL, for status requests.
    probes: Probes,
    /// When each unstarted learner was first seen.
    unstarted: HashMap<u64, Instant>,
    /// Whether this host held the key at the last look (to log the change once).
    leading: bool,
    /// The last reason for waiting, logged once.
    waiting: Option<String>,
}

/// Run the chooser for this host until aborted.
pub async fn run(world: Arc<EtcdWorld>) {
    let mut changes = merged_watches(&world, &[VOLUNTEERS, NOMINATED, converged::HOSTS, CLUSTER]);
    let mut chooser = Chooser {
        me: world.hostname().to_owned(),
        probes: Probes::of(&world),
        world,
        unstarted: HashMap::new(),
        leading: false,
        waiting: None,
    };
    loop {
        if let Err(e) = chooser.round().await {
            tracing::debug!("cluster: chooser round: {e}");
        }
        if chooser.leading {
            let _ = tokio::time::timeout(TICK, changes.recv()).await;
        } else {
            // Only a change can make this host the chooser: the chooser's key going away
            // with its lease is one (under `cluster/`).
            changes.recv().await;
        }
    }
}

impl Chooser {
    /// Whether this host holds the chooser key, taking it when nobody does.
    async fn hold(&mut self) -> Result<bool, WorldError> {
        let key = self.world.full(CHOOSER);
        let lease = self.world.lease_id();
        let txn = Txn::new()
            .when([Compare::create_revision(key.as_str(), CompareOp::Equal, 0)])
            .and_then([TxnOp::put(
                key.as_str(),
                self.me.as_str(),
                Some(PutOptions::new().with_lease(lease)),
            )])
            .or_else([TxnOp::get(key.as_str(), None)]);
        let resp = self.world.txn(txn).await?;
        let held = resp.succeeded()
            || resp.op_responses().iter().any(|r| match r {
                TxnOpResponse::Get(g) => g
                    .kvs()
                    .first()
                    .is_some_and(|kv| kv.value() == self.me.as_bytes() && kv.lease() == lease),
                _ => false,
            });
        if held != self.leading {
            if held {
                tracing::info!("cluster: this host now chooses the etcd members");
            } else {
                tracing::info!("cluster: another host chooses the etcd members");
            }
            self.leading = held;
        }
        Ok(held)
    }

    async fn round(&mut self) -> Result<(), String> {
        if !self.hold().await.map_err(|e| e.to_string())? {
            return Ok(());
        }
        let (view, nominations) = self.observe().await?;
        // Nominations whose member was removed (by a chooser that died before it could
        // end them) are ended now.
        for (host, n) in &nominations {
            if !view.members.iter().any(|m| Some(m.id) == n.member_id()) {
                let _ = self
                    .world
                    .delete(&format!("{NOMINATED}{}", segment(host)))
                    .await;
            }
        }
        let decision = rules::decide(&view);
        if decision.waiting != self.waiting {
            if let Some(w) = &decision.waiting {
                tracing::info!("cluster: {w}");
            }
            self.waiting = decision.waiting.clone();
        }
        for action in decision.actions {
            if !self.hold().await.map_err(|e| e.to_string())? {
                return Ok(());
            }
            self.act(action, &view, &nominations).await;
        }
        Ok(())
    }

    /// Read the members, their status, the live hosts, the volunteers and the ideal size.
    async fn observe(&mut self) -> Result<(View, BTreeMap<String, Nomination>), String> {
        let listed = self.world.members().await.map_err(|e| e.to_string())?;
        let (hosts, volunteers, nominations, ideal) = async {
            let hosts: BTreeMap<String, serde_json::Value> =
                list_by_host(&self.world, converged::HOSTS).await?;
            let volunteers: BTreeMap<String, Volunteer> =
                list_by_host(&self.world, VOLUNTEERS).await?;
            let nominations: BTreeMap<String, Nomination> =
                list_by_host(&self.world, NOMINATED).await?;
            let ideal = ideal_size(&self.world).await?;
            Ok::<_, WorldError>((hosts, volunteers, nominations, ideal))
        }
        .await
        .map_err(|e| e.to_string())?;

        let urls: Vec<Option<String>> = listed
            .iter()
            .map(|m| m.client_urls().first().cloned())
            .collect();
        let statuses = self.probes.status(&urls).await;
        let raft_leader = statuses.iter().flatten().map(|s| s.leader()).next();
        // Forget the learners that are gone, whoever removed them.
        self.unstarted
            .retain(|id, _| listed.iter().any(|m| m.id() == *id));
        let mut members = Vec::new();
        let now = Instant::now();
        for (m, status) in listed.iter().zip(statuses) {
            let started = !m.name().is_empty();
            let host = if started {
                Some(m.name().to_owned())
            } else {
                nominations
                    .iter()
                    .find(|(_, n)| n.member_id() == Some(m.id()))
                    .map(|(h, _)| h.clone())
            };
            let since = if started {
                self.unstarted.remove(&m.id());
                now
            } else {
                *self.unstarted.entry(m.id()).or_insert(now)
            };
            let host_live = host
                .as_ref()
                .is_some_and(|h| hosts.contains_key(h) || volunteers.contains_key(h));
            let holds_data = host
                .as_ref()
                .and_then(|h| volunteers.get(h))
                .is_none_or(|v| v.holds_id() == Some(m.id()));
            members.push(MemberView {
                id: m.id(),
                host,
                learner: m.is_learner(),
                started,
                healthy: status.is_some(),
                host_live,
                holds_data,
                unstarted_for: now - since,
                peer_urls: m.peer_urls().to_vec(),
            });
        }
        let volunteers = volunteers
            .into_iter()
            .map(|(host, v)| VolunteerView {
                host,
                peer_urls: v.server_urls,
            })
            .collect();
        Ok((
            View {
                members,
                volunteers,
                ideal,
                me: self.me.clone(),
                raft_leader,
            },
            nominations,
        ))
    }

    async fn act(
        &mut self,
        action: Action,
        view: &View,
        nominations: &BTreeMap<String, Nomination>,
    ) {
        let mut c = self.world.client();
        match action {
            Action::Add { host, peer_urls } => {
                let added = match c
                    .member_add(&peer_urls, Some(MemberAddOptions::new().with_is_learner()))
                    .await
                {
                    Ok(r) => r,
                    Err(e) => {
                        refused(&format!("adding host `{host}` as a learner"), &e);
                        return;
                    }
                };
                let Some(id) = added.member().map(|m| m.id()) else {
                    return;
                };
                // The new member's `--initial-cluster`: every started member, and itself.
                let mut cluster: Vec<String> = added
                    .member_list()
                    .iter()
                    .filter(|m| !m.name().is_empty())
                    .flat_map(|m| m.peer_urls().iter().map(|u| format!("{}={u}", m.name())))
                    .collect();
                cluster.extend(peer_urls.iter().map(|u| format!("{host}={u}")));
                let nomination = Nomination::new(id, cluster.join(","));
                match self
                    .world
                    .put(
                        &format!("{NOMINATED}{}", segment(&host)),
                        &serde_json::to_vec(&nomination).expect("serialises"),
                        crate::world::Lifetime::Persistent,
                    )
                    .await
                {
                    Ok(()) => tracing::info!(
                        "cluster: nominated host `{host}`: added as learner {id:x} ({} of {} \
                         voters)",
                        view.members.iter().filter(|m| !m.learner).count(),
                        view.ideal
                    ),
                    Err(e) => tracing::warn!("cluster: nominating host `{host}`: {e}"),
                }
            }
            Action::Promote { id, host } => {
                let who = host.unwrap_or_else(|| format!("{id:x}"));
                match c.member_promote(id).await {
                    Ok(_) => tracing::info!("cluster: promoted `{who}` to voter"),
                    // etcd refuses until the learner has caught up with the leader: the
                    // refusal is the rule, the next round asks again.
                    Err(e) => {
                        tracing::debug!("cluster: `{who}` not promoted yet: {}", describe(&e))
                    }
                }
            }
            Action::Remove { id, host, why } => {
                let who = host.clone().unwrap_or_else(|| format!("{id:x}"));
                if let Err(e) = c.member_remove(id).await {
                    refused(&format!("removing member `{who}` ({})", why.as_str()), &e);
                    return;
                }
                self.unstarted.remove(&id);
                if why == rules::Why::Shrink {
                    tracing::info!("cluster: unnominated `{who}`: {}", why.as_str());
                } else {
                    tracing::warn!("cluster: removed member `{who}`: {}", why.as_str());
                }
                if let Some(h) = host
                    && nominations
                        .get(&h)
                        .is_some_and(|n| n.member_id() == Some(id))
                {
                    let _ = self
                        .world
                        .delete(&format!("{NOMINATED}{}", segment(&h)))
                        .await;
                }
            }
        }
    }
}

/// Report a membership change etcd refused: at debug when etcd only asks to wait (a
/// member joined less than 5 s ago, its strict reconfiguration check), else a warning.
/// The next round asks again either way.
fn refused(what: &str, e: &etcd_client::Error) {
    let why = describe(e);
    if why.contains("unhealthy cluster") || why.contains("not enough started members") {
        tracing::debug!("cluster: {what}: etcd asks to wait: {why}");
    } else {
        tracing::warn!("cluster: {what}: {why}");
    }
}
