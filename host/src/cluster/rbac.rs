//! Per-host rights in etcd (its role-based access control), on a cluster over mutual TLS.
//!
//! etcd takes a client's user name from the common name of its certificate
//! (`--client-cert-auth`), which is its hostname ([`crate::tls`]). A host that bootstraps
//! a cluster over TLS turns etcd's authentication on ([`bootstrap`]); from then on a host
//! reaches the World only once it is **allowed** ([`allow`], `homeostat cluster allow`),
//! as one of two:
//!
//! - a **member** (`--serve`): etcd's `root` role. Members serve etcd, run the chooser
//!   and change the membership, which etcd lets only `root` do; they hold every key in
//!   their data directory anyway.
//! - a **host**: its own role `homeostat-host:<host>`, which may
//!   - write only its own keys: its exports `exported/<to>/<itself>/...` (to `*` and to
//!     every allowed host), `hosts/<itself>`, `converged/<itself>`,
//!     `state/<itself>/...` and `values/<itself>/...`;
//!   - read what it may collect (`exported/*/...`, `exported/<itself>/...`), the hosts'
//!     and their converged states, everyone's `values/`, and the cluster's settings,
//!     volunteers and nominees (`cluster status`);
//!   - and nothing else: not another host's export, not `volunteers/` or `nominated/`
//!     (it cannot offer itself as a member, nor nominate itself), not `cluster/`.
//!
//! Rights on `exported/<to>/<host>/` name the recipient, so allowing a host grants it
//! the exports to every host allowed before it, and grants them the exports to it.
//! [`deny`] removes a host's user: its certificate still proves who it is, but etcd lets
//! it do nothing (how a host leaves a cluster before its certificate expires).
//!
//! A cluster bootstrapped without TLS has no users: every client may do everything, as
//! with etcd's defaults (and plaintext is only allowed on loopback or with
//! `--insecure`).

use etcd_client::{Client, DeleteOptions, GetOptions, Permission, UserAddOptions};

use super::membership::{CLUSTER, NOMINATED, VOLUNTEERS};
use crate::world::converged::{CONVERGED, HOSTS};
use crate::world::exports::{EVERYWHERE, PREFIX as EXPORTED};
use crate::world::states::PREFIX as STATE;
use crate::world::{VALUES, segment};

/// etcd's all-powerful role and the user that must hold it before auth is enabled.
pub const ROOT: &str = "root";
/// The role of a host that is not a member: [`ROLE_PREFIX`] and its name.
pub const ROLE_PREFIX: &str = "homeostat-host:";

/// The role of a host that is not a member.
pub fn role_of(host: &str) -> String {
    format!("{ROLE_PREFIX}{host}")
}

/// Why a right could not be given or taken.
#[derive(Debug, thiserror::Error)]
#[error("{what}: {message}")]
pub struct RbacError {
    what: String,
    message: String,
}

fn fail(what: impl Into<String>) -> impl FnOnce(etcd_client::Error) -> RbacError {
    let what = what.into();
    move |e| RbacError {
        message: crate::world::etcd::describe(&e),
        what,
    }
}

/// Whether `e` says the thing already exists (adding it again is then a no-op).
fn exists(e: &etcd_client::Error) -> bool {
    crate::world::etcd::describe(e).contains("already exists")
}

/// Add a user without a password (its certificate authenticates it) unless it exists.
async fn add_user(client: &mut Client, name: &str) -> Result<(), RbacError> {
    let options = UserAddOptions::new().with_no_pwd();
    match client.user_add(name, "", Some(options)).await {
        Err(e) if !exists(&e) => Err(fail(format!("adding the etcd user `{name}`"))(e)),
        _ => Ok(()),
    }
}

/// Turn etcd's authentication on, for a cluster just bootstrapped over TLS by `me`:
/// the `root` user, and `me` as a member. Before this, anyone with a certificate of the
/// cluster's CA may do anything; after, only what [`allow`] gave them.
pub async fn bootstrap(client: &mut Client, me: &str) -> Result<(), RbacError> {
    for user in [ROOT, me] {
        add_user(client, user).await?;
        client
            .user_grant_role(user, ROOT)
            .await
            .map_err(fail(format!("making `{user}` a member")))?;
    }
    client
        .auth_enable()
        .await
        .map_err(fail("turning etcd's authentication on"))?;
    Ok(())
}

/// What a host that is not a member may do (see the module doc), with the World's key
/// prefix `prefix`: `(permission, what for)`, exports to other hosts aside.
fn host_permissions(prefix: &str, host: &str) -> Vec<Permission> {
    let h = segment(host);
    let own = |under: &str| Permission::read_write(format!("{prefix}{under}")).with_prefix();
    let key = |key: String| Permission::read_write(format!("{prefix}{key}"));
    let read = |under: &str| Permission::read(format!("{prefix}{under}")).with_prefix();
    vec![
        own(&format!("{EXPORTED}{EVERYWHERE}/{h}/")),
        own(&format!("{STATE}{h}/")),
        own(&format!("{VALUES}{h}/")),
        key(format!("{HOSTS}{h}")),
        key(format!("{CONVERGED}{h}")),
        read(&format!("{EXPORTED}{EVERYWHERE}/")),
        read(&format!("{EXPORTED}{h}/")),
        read(HOSTS),
        read(CONVERGED),
        read(VALUES),
        read(CLUSTER),
        read(VOLUNTEERS),
        read(NOMINATED),
    ]
}

/// The right to export from `from` to `to`.
fn export_permission(prefix: &str, to: &str, from: &str) -> Permission {
    Permission::read_write(format!(
        "{prefix}{EXPORTED}{}/{}/",
        segment(to),
        segment(from)
    ))
    .with_prefix()
}

/// The allowed hosts: every etcd user, with whether it is a member. (`root` too: a host
/// may be named so, and then it is etcd's `root`.)
async fn users(client: &mut Client) -> Result<Vec<(String, bool)>, RbacError> {
    let listed = client
        .user_list()
        .await
        .map_err(fail("listing the etcd users"))?;
    let mut out = Vec::new();
    for name in listed.users() {
        let user = client
            .user_get(name.as_str())
            .await
            .map_err(fail(format!("reading the etcd user `{name}`")))?;
        out.push((name.clone(), user.roles().iter().any(|r| r == ROOT)));
    }
    Ok(out)
}

/// Allow `host` into the cluster: as a member (`serve`), or as a host with its own
/// rights (see the module doc). Idempotent; allowing a host again as a member makes it
/// one. Needs a member's connection (etcd's `root`).
pub async fn allow(
    client: &mut Client,
    prefix: &str,
    host: &str,
    serve: bool,
) -> Result<(), RbacError> {
    let others = users(client).await?;
    add_user(client, host).await?;
    if serve {
        client
            .user_grant_role(host, ROOT)
            .await
            .map_err(fail(format!("making `{host}` a member")))?;
        // The hosts that are not members may export to it.
        for (other, member) in &others {
            if !member && other != host {
                grant(client, other, export_permission(prefix, host, other)).await?;
            }
        }
        return Ok(());
    }
    let role = role_of(host);
    match client.role_add(role.as_str()).await {
        Err(e) if !exists(&e) => return Err(fail(format!("adding the role `{role}`"))(e)),
        _ => {}
    }
    for p in host_permissions(prefix, host) {
        grant(client, host, p).await?;
    }
    for (other, member) in &others {
        if other == host {
            continue;
        }
        grant(client, host, export_permission(prefix, other, host)).await?;
        if !member {
            grant(client, other, export_permission(prefix, host, other)).await?;
        }
    }
    client
        .user_grant_role(host, role.as_str())
        .await
        .map_err(fail(format!("giving `{host}` its role")))?;
    Ok(())
}

/// Give the role of `host` the permission `p`.
async fn grant(client: &mut Client, host: &str, p: Permission) -> Result<(), RbacError> {
    let role = role_of(host);
    let what = format!(
        "giving `{host}` the right to {}",
        String::from_utf8_lossy(p.key())
    );
    match client.role_grant_permission(role.as_str(), p).await {
        // A member has no role of its own: it may do everything already.
        Err(e) if crate::world::etcd::describe(&e).contains("role name not found") => Ok(()),
        r => r.map(|_| ()).map_err(fail(what)),
    }
}

/// Take every right from `host`: its user and its role go, and so do its leased keys
/// (its exports, its values, its place among the live hosts and volunteers: its lease
/// would keep them alive, as etcd does not tie a lease to a user). Its plugin state
/// stays, for the day it is allowed again. Its certificate still proves who it is; etcd
/// refuses it everything. Returns whether it was a member: its etcd member stays in the
/// cluster (peers are known by their certificates, not their users) until the chooser
/// removes it once the host has stopped.
pub async fn deny(client: &mut Client, prefix: &str, host: &str) -> Result<bool, RbacError> {
    let member = client
        .user_get(host)
        .await
        .is_ok_and(|u| u.roles().iter().any(|r| r == ROOT));
    match client.user_delete(host).await {
        Err(e) if !crate::world::etcd::describe(&e).contains("not found") => {
            return Err(fail(format!("removing the etcd user `{host}`"))(e));
        }
        _ => {}
    }
    let role = role_of(host);
    match client.role_delete(role.as_str()).await {
        Err(e) if !crate::world::etcd::describe(&e).contains("not found") => {
            return Err(fail(format!("removing the role `{role}`"))(e));
        }
        _ => {}
    }
    let h = segment(host);
    let listed = client
        .get(
            format!("{prefix}{EXPORTED}"),
            Some(GetOptions::new().with_prefix().with_keys_only()),
        )
        .await
        .map_err(fail(format!("reading the exports of `{host}`")))?;
    let mut keys: Vec<(String, bool)> = listed
        .kvs()
        .iter()
        .filter_map(|kv| kv.key_str().ok())
        .filter(|k| {
            k.strip_prefix(prefix)
                .and_then(|k| crate::world::exports::parse(k, b"{}"))
                .is_some_and(|e| e.from == host)
        })
        .map(|k| (k.to_owned(), false))
        .collect();
    keys.push((format!("{prefix}{VALUES}{h}/"), true));
    for under in [HOSTS, CONVERGED, VOLUNTEERS] {
        keys.push((format!("{prefix}{under}{h}"), false));
    }
    for (key, is_prefix) in keys {
        let options = is_prefix.then(|| DeleteOptions::new().with_prefix());
        client
            .delete(key.as_str(), options)
            .await
            .map_err(fail(format!("removing {key}")))?;
    }
    Ok(member)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_host_writes_only_under_its_own_name() {
        let perms = host_permissions("/homeostat/", "web1");
        let writable: Vec<String> = perms
            .iter()
            .filter(|p| format!("{p:?}").contains("Readwrite"))
            .map(|p| String::from_utf8_lossy(p.key()).into_owned())
            .collect();
        assert_eq!(
            writable,
            [
                "/homeostat/exported/*/web1/",
                "/homeostat/state/web1/",
                "/homeostat/values/web1/",
                "/homeostat/hosts/web1",
                "/homeostat/converged/web1",
            ]
        );
        assert!(
            !perms
                .iter()
                .any(|p| String::from_utf8_lossy(p.key()).contains("nominated")
                    && format!("{p:?}").contains("Readwrite"))
        );
        let p = export_permission("/homeostat/", "db1", "web1");
        assert_eq!(p.key(), b"/homeostat/exported/db1/web1/");
    }
}
