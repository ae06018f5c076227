//! Which hosts are alive and whether each has converged: `hosts/<host>` (written at
//! start) and `converged/<host>` (`busy`, `converged` or `failed`), both leased, so a
//! host that dies leaves both after its lease's TTL.
//!
//! A host publishes `converged` (or `failed`) once its graph has been settled for the
//! converged timeout, and `busy` the moment something happens again. So "every live host
//! says `converged`" means every one of them has been converged for at least that long,
//! which is when `--converged-timeout` ends a run in a cluster (mgmt's issue #743: its
//! version exited on the first host's converge).

use std::collections::BTreeMap;

use super::{Entry, Lifetime, World, WorldError, segment, unsegment};

/// Live hosts.
pub const HOSTS: &str = "hosts/";
/// Their converged states.
pub const CONVERGED: &str = "converged/";

/// A host's converged state.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HostState {
    /// Something happened within its converged timeout, or it has not settled yet.
    Busy,
    /// Settled for its converged timeout, every resource in its declared state.
    Converged,
    /// Settled for its converged timeout, with resources that failed.
    Failed,
}

impl HostState {
    pub fn as_str(self) -> &'static str {
        match self {
            HostState::Busy => "busy",
            HostState::Converged => "converged",
            HostState::Failed => "failed",
        }
    }

    fn parse(text: &[u8]) -> HostState {
        match text {
            b"converged" => HostState::Converged,
            b"failed" => HostState::Failed,
            _ => HostState::Busy,
        }
    }
}

/// Say that this host is alive (and busy: it has not converged yet).
pub async fn announce(world: &World) -> Result<(), WorldError> {
    let me = segment(world.hostname()).into_owned();
    // A remote-execution initiator holds the place of a host it is setting up
    // (`{"pending": true}`): that is this host, not another.
    let pending = |about: &[u8]| {
        serde_json::from_slice::<serde_json::Value>(about)
            .is_ok_and(|v| v.get("pending") == Some(&serde_json::Value::Bool(true)))
    };
    if let Some(other) = world.get(&format!("{HOSTS}{me}")).await?
        && !pending(&other)
    {
        // Another live host with this name, or this host's previous run whose lease has
        // not expired yet (it was killed): both write the same keys.
        tracing::warn!(
            "another host announced itself as `{}` ({}); host names must be unique in a \
             cluster (--hostname). If it was this host's previous run, its keys expire \
             with its lease.",
            world.hostname(),
            String::from_utf8_lossy(&other)
        );
    }
    let about = serde_json::json!({
        "version": env!("CARGO_PKG_VERSION"),
        "pid": std::process::id(),
    });
    world
        .put(
            &format!("{HOSTS}{me}"),
            about.to_string().as_bytes(),
            Lifetime::Leased,
        )
        .await?;
    publish(world, HostState::Busy).await
}

/// Publish this host's converged state.
pub async fn publish(world: &World, state: HostState) -> Result<(), WorldError> {
    let key = format!("{CONVERGED}{}", segment(world.hostname()));
    world
        .put(&key, state.as_str().as_bytes(), Lifetime::Leased)
        .await
}

/// Every live host with its converged state (`Busy` for one that has published none).
pub async fn hosts(world: &World) -> Result<BTreeMap<String, HostState>, WorldError> {
    Ok(from_entries(
        world.list(HOSTS).await?,
        world.list(CONVERGED).await?,
    ))
}

/// The live hosts and their states from the entries under [`HOSTS`] and [`CONVERGED`].
pub fn from_entries(hosts: Vec<Entry>, states: Vec<Entry>) -> BTreeMap<String, HostState> {
    let strip = |k: &str, prefix: &str| unsegment(k.strip_prefix(prefix).unwrap_or(k));
    let states: BTreeMap<String, HostState> = states
        .into_iter()
        .map(|(k, v)| (strip(&k, CONVERGED), HostState::parse(&v)))
        .collect();
    hosts
        .into_iter()
        .map(|(k, _)| {
            let host = strip(&k, HOSTS);
            let state = states.get(&host).copied().unwrap_or(HostState::Busy);
            (host, state)
        })
        .collect()
}

/// Wait (at most `limit`) until every other live host is one of `servers`: a host that
/// serves etcd lets the hosts that do not (its clients) see the final converged states
/// and leave before it stops its etcd under them. The servers leave together: with the
/// clients gone, nobody needs their quorum any more.
pub async fn others_gone(
    world: &World,
    servers: &std::collections::BTreeSet<String>,
    limit: std::time::Duration,
) {
    let mut changed = world.watch(HOSTS);
    let me = world.hostname().to_owned();
    let wait = async {
        loop {
            let waiting_for = match hosts(world).await {
                Ok(all) => all
                    .into_keys()
                    .filter(|h| *h != me && !servers.contains(h))
                    .collect::<Vec<_>>(),
                Err(_) => return,
            };
            if waiting_for.is_empty() {
                return;
            }
            tracing::debug!(
                "waiting for {} to leave before stopping etcd",
                waiting_for.join(", ")
            );
            if changed.changed().await.is_err() {
                return;
            }
        }
    };
    let _ = tokio::time::timeout(limit, wait).await;
}

/// Wait until every live host has settled (converged or failed). Errors reading the
/// World are logged and the wait goes on (the watch says when to try again).
pub async fn all_settled(world: &World) {
    let mut hosts_changed = world.watch(HOSTS);
    let mut states_changed = world.watch(CONVERGED);
    let mut reported = false;
    loop {
        match hosts(world).await {
            Ok(all) if all.values().all(|s| *s != HostState::Busy) => {
                tracing::info!(
                    "every host has converged: {}",
                    all.iter()
                        .map(|(h, s)| format!("{h} ({})", s.as_str()))
                        .collect::<Vec<_>>()
                        .join(", ")
                );
                return;
            }
            Ok(all) => {
                let busy: Vec<&str> = all
                    .iter()
                    .filter(|(_, s)| **s == HostState::Busy)
                    .map(|(h, _)| h.as_str())
                    .collect();
                tracing::debug!("waiting for hosts to converge: {}", busy.join(", "));
                reported = false;
            }
            Err(e) if !reported => {
                tracing::warn!("cannot read the hosts' converged states: {e}");
                reported = true;
            }
            Err(_) => {}
        }
        tokio::select! {
            r = hosts_changed.changed() => if r.is_err() { std::future::pending::<()>().await },
            r = states_changed.changed() => if r.is_err() { std::future::pending::<()>().await },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    #[tokio::test]
    async fn settled_waits_for_every_live_host() {
        let dir = tempfile::tempdir().unwrap();
        let world = World::Local(Arc::new(
            super::super::local::LocalWorld::open(dir.path(), "h1").unwrap(),
        ));
        announce(&world).await.unwrap();
        // A second host, written as it would write itself.
        world
            .put("hosts/h2", b"{}", Lifetime::Leased)
            .await
            .unwrap();
        let waiting = tokio::spawn({
            let world = world.clone();
            async move { all_settled(&world).await }
        });
        publish(&world, HostState::Converged).await.unwrap();
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        assert!(!waiting.is_finished(), "h2 has published nothing");
        world
            .put("converged/h2", b"failed", Lifetime::Leased)
            .await
            .unwrap();
        tokio::time::timeout(std::time::Duration::from_secs(5), waiting)
            .await
            .expect("settled once both had")
            .unwrap();
        let all = hosts(&world).await.unwrap();
        assert_eq!(all["h1"], HostState::Converged);
        assert_eq!(all["h2"], HostState::Failed);
    }
}
