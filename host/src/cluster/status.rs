//! What `homeostat cluster status` reports: the etcd members (voter or learner, their
//! URLs, whether each answers, which one leads) and every live host with its converged
//! state, read from any member given. Read-only: it takes no lease and writes nothing.

use std::collections::BTreeMap;
use std::time::Duration;

use etcd_client::{Client, ConnectOptions, GetOptions};
use serde::Serialize;

use crate::world::converged;

/// How long one request may take.
const TIMEOUT: Duration = Duration::from_secs(3);

/// One etcd member.
#[derive(Debug, Clone, Serialize)]
pub struct Member {
    /// Its name (the host that serves it).
    pub name: String,
    /// etcd's member id, in hex as `etcdctl` prints it.
    pub id: String,
    /// `voter`, or `learner` (not yet promoted).
    pub role: &'static str,
    pub client_urls: Vec<String>,
    pub peer_urls: Vec<String>,
    /// It answered a status request within the timeout.
    pub healthy: bool,
    /// It is the raft leader.
    pub leader: bool,
}

/// The whole report.
#[derive(Debug, Clone, Serialize)]
pub struct Status {
    /// etcd's cluster id, in hex.
    pub cluster_id: String,
    pub members: Vec<Member>,
    /// Live hosts (`hosts/`) with their converged state.
    pub hosts: BTreeMap<String, &'static str>,
}

/// Why the status could not be read.
#[derive(Debug, thiserror::Error)]
#[error("cannot read the cluster's status from {endpoints}: {message}")]
pub struct StatusError {
    endpoints: String,
    message: String,
}

/// Read the status from the etcd at `endpoints`, homeostat's keys under `prefix`.
pub async fn read(endpoints: &[String], prefix: &str) -> Result<Status, StatusError> {
    let fail = |message: String| StatusError {
        endpoints: endpoints.join(","),
        message,
    };
    let options = || {
        ConnectOptions::new()
            .with_connect_timeout(TIMEOUT)
            .with_timeout(TIMEOUT)
    };
    let mut client = Client::connect(endpoints, Some(options()))
        .await
        .map_err(|e| fail(e.to_string()))?;
    let listed = client
        .member_list()
        .await
        .map_err(|e| fail(e.to_string()))?;
    let cluster_id = listed.header().map_or(0, |h| h.cluster_id());
    let mut leader_id = None;
    let mut members = Vec::new();
    for m in listed.members() {
        // Ask each member itself: one that does not answer is unhealthy.
        let answer = match m.client_urls().first() {
            Some(url) => match Client::connect([url], Some(options())).await {
                Ok(mut c) => tokio::time::timeout(TIMEOUT, c.status())
                    .await
                    .ok()
                    .and_then(Result::ok),
                Err(_) => None,
            },
            None => None,
        };
        if let Some(s) = &answer {
            leader_id.get_or_insert(s.leader());
        }
        members.push((
            m.id(),
            Member {
                name: m.name().to_owned(),
                id: format!("{:x}", m.id()),
                role: if m.is_learner() { "learner" } else { "voter" },
                client_urls: m.client_urls().to_vec(),
                peer_urls: m.peer_urls().to_vec(),
                healthy: answer.is_some(),
                leader: false,
            },
        ));
    }
    let members = members
        .into_iter()
        .map(|(id, mut m)| {
            m.leader = leader_id == Some(id);
            m
        })
        .collect();
    let list = |what: &'static str| {
        let key = format!("{prefix}{what}");
        let mut c = client.clone();
        async move {
            let resp = c
                .get(key, Some(GetOptions::new().with_prefix()))
                .await
                .map_err(|e| e.to_string())?;
            Ok::<_, String>(
                resp.kvs()
                    .iter()
                    .filter_map(|kv| {
                        let k = kv.key_str().ok()?.strip_prefix(prefix)?;
                        Some((k.to_owned(), kv.value().to_vec()))
                    })
                    .collect::<Vec<_>>(),
            )
        }
    };
    let hosts = list(converged::HOSTS).await.map_err(fail)?;
    let states = list(converged::CONVERGED).await.map_err(fail)?;
    let hosts = converged::from_entries(hosts, states)
        .into_iter()
        .map(|(h, s)| (h, s.as_str()))
        .collect();
    Ok(Status {
        cluster_id: format!("{cluster_id:x}"),
        members,
        hosts,
    })
}

impl Status {
    /// The report as text, one member and one host per line.
    pub fn to_text(&self) -> String {
        use std::fmt::Write;
        let e = |s: &str| crate::sys::text::escape(s).into_owned();
        let mut out = format!("cluster {}\nmembers:\n", self.cluster_id);
        for m in &self.members {
            let _ = writeln!(
                out,
                "  {} ({}){}{} clients {} peers {}",
                e(&m.name),
                m.role,
                if m.leader { " leader" } else { "" },
                if m.healthy {
                    " healthy"
                } else {
                    " NOT ANSWERING"
                },
                e(&m.client_urls.join(",")),
                e(&m.peer_urls.join(",")),
            );
        }
        let _ = writeln!(out, "hosts:");
        if self.hosts.is_empty() {
            let _ = writeln!(out, "  (none live)");
        }
        for (h, s) in &self.hosts {
            let _ = writeln!(out, "  {} {s}", e(h));
        }
        out
    }
}
