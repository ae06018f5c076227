//! The chooser's rules: from one view of the cluster (the etcd members, the live hosts,
//! the volunteers, the ideal size) to the changes of one round. Pure, so each rule is
//! tested on its own against a described cluster, the way Consul's autopilot tests its
//! golden states. [`super::chooser`] observes, calls [`decide`] and acts.
//!
//! The rules, in the order they are applied (docs/clustering.md gives the reason for each):
//! 1. **Remove the failed first.** A member is failed when it does not answer and its
//!    host is gone (its lease expired), or its host is back without the member's data
//!    (wiped), or it is a learner that never started within [`NEVER_STARTED`]. Learners
//!    go first (they count for no quorum); voters at most a minority of the voters per
//!    round, and never so many that the voters left could not form a quorum with those
//!    that answer. A round that removes does nothing else.
//! 2. **Shrink before promoting.** With at least the ideal number of voters, a learner is
//!    removed rather than promoted.
//! 3. **Promote a learner** once it runs; etcd refuses until it has caught up with the
//!    leader, and that refusal is the rule ("promote only when etcd accepts").
//! 4. **Shrink** by one voter per round: an answering one, never the chooser's own host,
//!    the raft leader last; only while every voter answers and the rest keep a quorum.
//! 5. **Grow** by one learner at a time (etcd 3.4 allows one): a live volunteer that is
//!    not a member, only while every voter answers.

use std::time::Duration;

/// How long a learner may stay unstarted (its host was nominated but its etcd never
/// joined: the port was taken, the host died while starting) before it is removed.
pub const NEVER_STARTED: Duration = Duration::from_secs(30);

/// One etcd member, as the chooser sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MemberView {
    /// etcd's member id.
    pub id: u64,
    /// Its host: the member's name once started, else the host nominated for it.
    pub host: Option<String>,
    /// Not (yet) a voter.
    pub learner: bool,
    /// Its etcd has joined (etcd knows its name).
    pub started: bool,
    /// It answered a status request.
    pub healthy: bool,
    /// Its host's lease is alive (`hosts/` or `volunteers/`).
    pub host_live: bool,
    /// Its host, if live, says it holds this member's data (false: it came back without).
    pub holds_data: bool,
    /// How long it has been seen unstarted.
    pub unstarted_for: Duration,
    /// Its peer URLs.
    pub peer_urls: Vec<String>,
}

/// A host that offers to serve etcd.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VolunteerView {
    pub host: String,
    pub peer_urls: Vec<String>,
}

/// Everything one round decides from.
#[derive(Debug, Clone)]
pub struct View {
    pub members: Vec<MemberView>,
    pub volunteers: Vec<VolunteerView>,
    /// The ideal number of voters.
    pub ideal: usize,
    /// The chooser's own host.
    pub me: String,
    /// The raft leader's member id, if any member said.
    pub raft_leader: Option<u64>,
}

/// Why a member is removed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Why {
    /// It does not answer and its host's lease expired.
    Dead,
    /// Its host is back without the member's data.
    LostData,
    /// A learner whose etcd never joined.
    NeverStarted,
    /// More members than the ideal size.
    Shrink,
}

impl Why {
    pub fn as_str(self) -> &'static str {
        match self {
            Why::Dead => "its host is gone and it does not answer",
            Why::LostData => "its host came back without its data",
            Why::NeverStarted => "it never started",
            Why::Shrink => "the cluster is larger than its ideal size",
        }
    }
}

/// One change to the server set.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// `member remove`; the host is unnominated.
    Remove {
        id: u64,
        host: Option<String>,
        why: Why,
    },
    /// `member add --learner` for a volunteer, then nominate it.
    Add {
        host: String,
        peer_urls: Vec<String>,
    },
    /// `member promote`.
    Promote { id: u64, host: Option<String> },
}

/// What one round does: its changes, or why it does none.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Decision {
    pub actions: Vec<Action>,
    /// Why nothing (more) is done this round, when something is left to do.
    pub waiting: Option<String>,
}

/// The votes a cluster of `voters` needs.
pub fn quorum(voters: usize) -> usize {
    voters / 2 + 1
}

fn failed(m: &MemberView) -> Option<Why> {
    if m.healthy {
        return None;
    }
    if m.started {
        if !m.host_live {
            Some(Why::Dead)
        } else if !m.holds_data {
            Some(Why::LostData)
        } else {
            None
        }
    } else if !m.host_live && m.host.is_some() {
        Some(Why::Dead)
    } else if m.unstarted_for >= NEVER_STARTED {
        Some(Why::NeverStarted)
    } else {
        None
    }
}

fn name(m: &MemberView) -> String {
    m.host
        .clone()
        .unwrap_or_else(|| format!("member {:x}", m.id))
}

/// The changes of one round (see the module doc for the rules).
pub fn decide(view: &View) -> Decision {
    let mut d = Decision::default();
    let voters: Vec<&MemberView> = view.members.iter().filter(|m| !m.learner).collect();
    let answering = voters.iter().filter(|m| m.healthy).count();

    // 1. Failed members, learners first; voters a minority per round, keeping a quorum.
    let mut failed: Vec<(&MemberView, Why)> = view
        .members
        .iter()
        .filter_map(|m| failed(m).map(|w| (m, w)))
        .collect();
    if !failed.is_empty() {
        failed.sort_by_key(|(m, _)| (!m.learner, m.id));
        let mut budget = voters.len().saturating_sub(1) / 2;
        let mut left = voters.len();
        for (m, why) in failed {
            if !m.learner {
                if budget == 0 || left <= 1 || answering < quorum(left - 1) {
                    d.waiting = Some(format!(
                        "{} has failed ({}), but removing it now would take more than a \
                         minority of the {} voters or leave fewer answering than a quorum",
                        name(m),
                        why.as_str(),
                        voters.len()
                    ));
                    break;
                }
                budget -= 1;
                left -= 1;
            }
            d.actions.push(Action::Remove {
                id: m.id,
                host: m.host.clone(),
                why,
            });
        }
        if !d.actions.is_empty() {
            return d;
        }
    }

    let learners: Vec<&MemberView> = view.members.iter().filter(|m| m.learner).collect();
    // 2. Enough voters already: a learner in progress is not needed.
    if voters.len() >= view.ideal
        && let Some(l) = learners.first()
    {
        d.actions.push(Action::Remove {
            id: l.id,
            host: l.host.clone(),
            why: Why::Shrink,
        });
        return d;
    }
    // 3. Promote a learner that runs (etcd says whether it has caught up).
    if let Some(l) = learners.first() {
        if l.started && l.healthy {
            d.actions.push(Action::Promote {
                id: l.id,
                host: l.host.clone(),
            });
        } else {
            d.waiting = Some(format!("learner {} is starting", name(l)));
        }
        return d;
    }
    let unanswering: Vec<String> = voters
        .iter()
        .filter(|m| !m.healthy)
        .map(|m| name(m))
        .collect();
    // 4. Shrink by one answering voter, never this host, the raft leader last.
    if voters.len() > view.ideal {
        if !unanswering.is_empty() || answering - 1 < quorum(voters.len() - 1) {
            d.waiting = Some(format!(
                "shrinking to {} waits for {} to answer",
                view.ideal,
                unanswering.join(", ")
            ));
            return d;
        }
        let candidate = voters
            .iter()
            .filter(|m| m.host.as_deref() != Some(view.me.as_str()))
            .max_by_key(|m| (view.raft_leader != Some(m.id), m.host.clone()));
        match candidate {
            Some(m) => d.actions.push(Action::Remove {
                id: m.id,
                host: m.host.clone(),
                why: Why::Shrink,
            }),
            None => d.waiting = Some("no member to remove but this host's own".into()),
        }
        return d;
    }
    // 5. Grow by one learner: a live volunteer that is not a member.
    if voters.len() < view.ideal {
        if !unanswering.is_empty() {
            d.waiting = Some(format!(
                "growing to {} waits for {} to answer",
                view.ideal,
                unanswering.join(", ")
            ));
            return d;
        }
        let taken = |v: &VolunteerView| {
            view.members.iter().any(|m| {
                m.host.as_deref() == Some(v.host.as_str())
                    || m.peer_urls.iter().any(|u| v.peer_urls.contains(u))
            })
        };
        match view.volunteers.iter().find(|v| !taken(v)) {
            Some(v) => d.actions.push(Action::Add {
                host: v.host.clone(),
                peer_urls: v.peer_urls.clone(),
            }),
            None => {
                d.waiting = Some(format!(
                    "{} of {} voters: no volunteer to nominate",
                    voters.len(),
                    view.ideal
                ))
            }
        }
    }
    d
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A started, answering voter on a live host that holds its data.
    fn voter(id: u64, host: &str) -> MemberView {
        MemberView {
            id,
            host: Some(host.into()),
            learner: false,
            started: true,
            healthy: true,
            host_live: true,
            holds_data: true,
            unstarted_for: Duration::ZERO,
            peer_urls: vec![format!("http://{host}:2380")],
        }
    }

    /// A member that does not answer (its host still alive).
    fn silent(mut m: MemberView) -> MemberView {
        m.healthy = false;
        m
    }

    fn dead(m: MemberView) -> MemberView {
        MemberView {
            host_live: false,
            ..silent(m)
        }
    }

    fn learner(id: u64, host: &str, started: bool) -> MemberView {
        MemberView {
            learner: true,
            started,
            healthy: started,
            ..voter(id, host)
        }
    }

    fn volunteer(host: &str) -> VolunteerView {
        VolunteerView {
            host: host.into(),
            peer_urls: vec![format!("http://{host}:2380")],
        }
    }

    fn view(members: Vec<MemberView>, volunteers: &[&str], ideal: usize) -> View {
        View {
            members,
            volunteers: volunteers.iter().map(|h| volunteer(h)).collect(),
            ideal,
            me: "h1".into(),
            raft_leader: Some(1),
        }
    }

    fn remove(id: u64, host: &str, why: Why) -> Action {
        Action::Remove {
            id,
            host: Some(host.into()),
            why,
        }
    }

    fn removed(d: &Decision) -> Vec<u64> {
        d.actions
            .iter()
            .filter_map(|a| match a {
                Action::Remove { id, .. } => Some(*id),
                _ => None,
            })
            .collect()
    }

    #[test]
    fn a_volunteer_joins_as_a_learner_one_at_a_time() {
        let d = decide(&view(vec![voter(1, "h1")], &["h2", "h3"], 3));
        assert_eq!(
            d.actions,
            vec![Action::Add {
                host: "h2".into(),
                peer_urls: vec!["http://h2:2380".into()]
            }]
        );
        // A learner in progress: nobody else is added until it is promoted.
        let d = decide(&view(
            vec![voter(1, "h1"), learner(2, "h2", false)],
            &["h2", "h3"],
            3,
        ));
        assert!(d.actions.is_empty(), "{d:?}");
        assert!(d.waiting.unwrap().contains("starting"));
    }

    #[test]
    fn a_running_learner_is_promoted_and_an_unstarted_one_is_not() {
        let d = decide(&view(vec![voter(1, "h1"), learner(2, "h2", true)], &[], 3));
        assert_eq!(
            d.actions,
            vec![Action::Promote {
                id: 2,
                host: Some("h2".into())
            }]
        );
    }

    #[test]
    fn members_and_their_peer_urls_are_not_nominated_again() {
        let mut taken = voter(2, "old");
        taken.peer_urls = vec!["http://h2:2380".into()];
        let d = decide(&view(vec![voter(1, "h1"), taken], &["h1", "h2"], 3));
        assert!(d.actions.is_empty(), "{d:?}");
        assert!(d.waiting.unwrap().contains("no volunteer"));
    }

    #[test]
    fn the_dead_are_removed_before_a_replacement_is_added() {
        let members = vec![voter(1, "h1"), voter(2, "h2"), dead(voter(3, "h3"))];
        let d = decide(&view(members, &["h4"], 3));
        assert_eq!(removed(&d), vec![3]);
        assert_eq!(d.actions.len(), 1, "nothing else in the round: {d:?}");
    }

    #[test]
    fn at_most_a_minority_of_voters_is_removed_per_round() {
        // 5 voters, 2 dead: both may go (2 of 5), the 3 answering keep a quorum of 3.
        let members = vec![
            voter(1, "h1"),
            voter(2, "h2"),
            voter(3, "h3"),
            dead(voter(4, "h4")),
            dead(voter(5, "h5")),
        ];
        assert_eq!(removed(&decide(&view(members, &[], 5))), vec![4, 5]);
        // 5 voters, 3 dead: the cluster has lost its quorum; at most 2 per round, and not
        // even those, since 2 answering are no quorum of 4 or 3.
        let members = vec![
            voter(1, "h1"),
            voter(2, "h2"),
            dead(voter(3, "h3")),
            dead(voter(4, "h4")),
            dead(voter(5, "h5")),
        ];
        let d = decide(&view(members, &[], 5));
        assert!(removed(&d).is_empty(), "{d:?}");
        assert!(d.waiting.unwrap().contains("minority"));
        // 2 voters, one dead: removing it is not a minority, and etcd could not anyway.
        let d = decide(&view(vec![voter(1, "h1"), dead(voter(2, "h2"))], &[], 3));
        assert!(removed(&d).is_empty(), "{d:?}");
    }

    #[test]
    fn dead_learners_go_first_and_do_not_use_the_voters_budget() {
        let members = vec![
            voter(1, "h1"),
            voter(2, "h2"),
            dead(voter(3, "h3")),
            dead(learner(4, "h4", true)),
        ];
        assert_eq!(removed(&decide(&view(members, &[], 3))), vec![4, 3]);
    }

    #[test]
    fn a_host_back_without_its_data_has_its_member_replaced() {
        let mut wiped = silent(voter(3, "h3"));
        wiped.holds_data = false;
        let d = decide(&view(
            vec![voter(1, "h1"), voter(2, "h2"), wiped],
            &["h3"],
            3,
        ));
        assert_eq!(d.actions, vec![remove(3, "h3", Why::LostData)]);
    }

    #[test]
    fn a_member_that_does_not_answer_while_its_host_lives_is_left_alone() {
        // Its host is alive and holds its data: etcd is restarting, or partitioned. Nor
        // does the cluster grow (ideal 5) around it.
        for ideal in [3, 5] {
            let members = vec![voter(1, "h1"), voter(2, "h2"), silent(voter(3, "h3"))];
            let d = decide(&view(members, &["h4"], ideal));
            assert!(d.actions.is_empty(), "{d:?}");
            if ideal == 5 {
                assert!(d.waiting.unwrap().contains("h3"));
            }
        }
    }

    #[test]
    fn a_learner_that_never_starts_is_removed_after_the_grace() {
        let mut stuck = learner(2, "h2", false);
        stuck.unstarted_for = NEVER_STARTED - Duration::from_secs(1);
        let d = decide(&view(vec![voter(1, "h1"), stuck.clone()], &[], 3));
        assert!(d.actions.is_empty(), "{d:?}");
        stuck.unstarted_for = NEVER_STARTED;
        assert_eq!(
            decide(&view(vec![voter(1, "h1"), stuck], &[], 3)).actions,
            vec![remove(2, "h2", Why::NeverStarted)]
        );
    }

    #[test]
    fn promotion_and_removal_never_share_a_round() {
        let members = vec![
            voter(1, "h1"),
            voter(2, "h2"),
            dead(voter(3, "h3")),
            learner(4, "h4", true),
        ];
        let d = decide(&view(members, &[], 3));
        assert_eq!(removed(&d), vec![3]);
        assert!(
            !d.actions
                .iter()
                .any(|a| matches!(a, Action::Promote { .. }))
        );
    }

    #[test]
    fn shrinking_removes_one_answering_voter_never_this_host_the_leader_last() {
        let members = vec![voter(1, "h1"), voter(2, "h2"), voter(3, "h3")];
        let mut v = view(members, &[], 1);
        v.raft_leader = Some(3);
        // h3 leads raft, h1 is this host: h2 goes first.
        assert_eq!(removed(&decide(&v)), vec![2]);
        v.members.remove(1);
        // Then the raft leader, since this host is never removed by its own chooser.
        assert_eq!(removed(&decide(&v)), vec![3]);
        v.members.remove(1);
        assert!(decide(&v).actions.is_empty());
    }

    #[test]
    fn a_learner_is_not_promoted_past_the_ideal_size() {
        let members = vec![voter(1, "h1"), voter(2, "h2"), learner(3, "h3", true)];
        assert_eq!(removed(&decide(&view(members, &[], 2))), vec![3]);
    }

    #[test]
    fn no_shrinking_while_a_voter_does_not_answer() {
        let members = vec![voter(1, "h1"), voter(2, "h2"), silent(voter(3, "h3"))];
        let d = decide(&view(members, &[], 1));
        assert!(d.actions.is_empty(), "{d:?}");
    }

    #[test]
    fn quorum_is_a_majority() {
        assert_eq!(
            [1, 2, 3, 4, 5].map(quorum),
            [1, 2, 2, 3, 3],
            "an even size needs as many as the odd size above it"
        );
    }
}
