//! What `homeostat cluster status` reports: the etcd members (voter or learner, their
//! URLs, whether each answers, which one leads), the ideal size and the host that
//! chooses the members, the volunteers and the nominees, and every live host with its
//! converged state, read from any member given. Read-only: it takes no lease and writes
//! nothing.

use std::collections::BTreeMap;
use std::time::Duration;

use etcd_client::{Client, ConnectOptions, GetOptions, MemberListResponse};
use serde::Serialize;

use super::membership::{
    self, CHOOSER, IDEAL_SIZE, NOMINATED, Nomination, Probes, VOLUNTEERS, Volunteer, by_host,
};
use crate::tls::Security;
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
    /// The number of voting members the chooser keeps.
    pub ideal_size: usize,
    /// The host that chooses the members (none while the election is open).
    pub chooser: Option<String>,
    /// Hosts that offer to serve etcd, with their client and peer URLs.
    pub volunteers: BTreeMap<String, Volunteer>,
    /// Hosts nominated to serve, with the member id (hex) added for each.
    pub nominees: BTreeMap<String, String>,
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

fn options(security: &Security) -> ConnectOptions {
    security.options(
        ConnectOptions::new()
            .with_connect_timeout(TIMEOUT)
            .with_timeout(TIMEOUT),
    )
}

/// A connection to the first of `endpoints` that answers (with the member list it gave):
/// one connection to several endpoints would send some requests to one that is down.
pub async fn connect_any(
    endpoints: &[String],
    security: &Security,
) -> Result<(Client, MemberListResponse), String> {
    let mut last = String::from("no endpoint given");
    for url in endpoints {
        let answer = async {
            let mut c = Client::connect([url], Some(options(security))).await?;
            let listed = c.member_list().await?;
            Ok::<_, etcd_client::Error>((c, listed))
        };
        match answer.await {
            Ok(pair) => return Ok(pair),
            Err(e) => last = e.to_string(),
        }
    }
    Err(last)
}

/// Set the cluster's ideal size (checked by the caller) through the etcd at `endpoints`;
/// returns the one it replaces. Refused for an etcd homeostat did not form.
pub async fn set_ideal_size(
    endpoints: &[String],
    prefix: &str,
    n: usize,
    security: &Security,
) -> Result<usize, StatusError> {
    let fail = |message: String| StatusError {
        endpoints: endpoints.join(","),
        message,
    };
    let (mut client, _) = connect_any(endpoints, security).await.map_err(fail)?;
    let key = format!("{prefix}{IDEAL_SIZE}");
    let old = client
        .get(key.as_str(), None)
        .await
        .map_err(|e| fail(e.to_string()))?
        .kvs()
        .first()
        .map(|kv| membership::parse_ideal_size(kv.value()).unwrap_or(0))
        .ok_or_else(|| {
            fail(format!(
                "it is not a cluster homeostat formed (no {key}); start its first host with \
                 --ideal-cluster-size or --client-urls"
            ))
        })?;
    client
        .put(key, n.to_string(), None)
        .await
        .map_err(|e| fail(e.to_string()))?;
    Ok(old)
}

/// Read the status from the etcd at `endpoints`, homeostat's keys under `prefix`.
pub async fn read(
    endpoints: &[String],
    prefix: &str,
    security: &Security,
) -> Result<Status, StatusError> {
    let fail = |message: String| StatusError {
        endpoints: endpoints.join(","),
        message,
    };
    let (client, listed) = connect_any(endpoints, security).await.map_err(fail)?;
    let cluster_id = listed.header().map_or(0, |h| h.cluster_id());
    // Ask each member itself: one that does not answer is unhealthy.
    let urls: Vec<Option<String>> = listed
        .members()
        .iter()
        .map(|m| m.client_urls().first().cloned())
        .collect();
    let answers = Probes::new(security.clone(), TIMEOUT).status(&urls).await;
    let leader_id = answers.iter().flatten().map(|s| s.leader()).next();
    let members = listed
        .members()
        .iter()
        .zip(&answers)
        .map(|(m, answer)| Member {
            name: m.name().to_owned(),
            id: format!("{:x}", m.id()),
            role: if m.is_learner() { "learner" } else { "voter" },
            client_urls: m.client_urls().to_vec(),
            peer_urls: m.peer_urls().to_vec(),
            healthy: answer.is_some(),
            leader: leader_id == Some(m.id()),
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
    let volunteers = by_host(list(VOLUNTEERS).await.map_err(fail)?, VOLUNTEERS);
    let nominees = by_host::<Nomination>(list(NOMINATED).await.map_err(fail)?, NOMINATED)
        .into_iter()
        .map(|(h, n)| (h, n.member))
        .collect();
    let value = async |what: &str| {
        client
            .clone()
            .get(format!("{prefix}{what}"), None)
            .await
            .map(|r| r.kvs().first().map(|kv| kv.value().to_vec()))
            .map_err(|e| fail(e.to_string()))
    };
    let ideal_size = value(IDEAL_SIZE)
        .await?
        .and_then(|v| membership::parse_ideal_size(&v))
        .unwrap_or(membership::DEFAULT_IDEAL_SIZE);
    let chooser = value(CHOOSER)
        .await?
        .map(|v| String::from_utf8_lossy(&v).into_owned());
    let hosts = list(converged::HOSTS).await.map_err(fail)?;
    let states = list(converged::CONVERGED).await.map_err(fail)?;
    let hosts = converged::from_entries(hosts, states)
        .into_iter()
        .map(|(h, s)| (h, s.as_str()))
        .collect();
    Ok(Status {
        cluster_id: format!("{cluster_id:x}"),
        members,
        ideal_size,
        chooser,
        volunteers,
        nominees,
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
        let voters = self.members.iter().filter(|m| m.role == "voter").count();
        let _ = writeln!(
            out,
            "ideal size: {} ({voters} voting now); chosen by: {}",
            self.ideal_size,
            self.chooser.as_deref().map_or("(nobody yet)".into(), e)
        );
        let _ = writeln!(out, "volunteers:");
        if self.volunteers.is_empty() {
            let _ = writeln!(out, "  (none)");
        }
        for (h, v) in &self.volunteers {
            let _ = writeln!(
                out,
                "  {} clients {} peers {}",
                e(h),
                e(&v.client_urls.join(",")),
                e(&v.server_urls.join(","))
            );
        }
        let _ = writeln!(out, "nominees:");
        if self.nominees.is_empty() {
            let _ = writeln!(out, "  (none)");
        }
        for (h, id) in &self.nominees {
            let _ = writeln!(out, "  {} member {}", e(h), e(id));
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
