//! User and group names through the host's name service (NSS): the owner and group a
//! `fs` write asks for, the user and group a `process` command runs as.
//!
//! Hand-written over libc on purpose: rustix has no NSS lookups, and `nix`/`uzers` would
//! add a crate for these three calls. Going through libc (not parsing `/etc/passwd`) keeps
//! LDAP and sssd users working. Lookups may go to the network, so they run on tokio's
//! blocking pool.

use std::ffi::{CStr, CString};
use std::fmt;
use std::io;

/// Which database a name is looked up in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IdKind {
    /// Users (`getpwnam_r`): a uid.
    User,
    /// Groups (`getgrnam_r`): a gid.
    Group,
}

impl fmt::Display for IdKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            IdKind::User => "user",
            IdKind::Group => "group",
        })
    }
}

/// A user's ids, as the user database has them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct UserIds {
    /// The user's uid.
    pub uid: u32,
    /// The user's primary group.
    pub gid: u32,
}

/// Why a name could not be resolved.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum IdError {
    /// No such name in the database.
    #[error("{kind} `{name}` does not exist in this host's {kind} database")]
    Unknown { kind: IdKind, name: String },
    /// A number that cannot be an id (`4294967295` is the kernel's "no change").
    #[error("`{name}` is not a valid {kind} id")]
    Invalid { kind: IdKind, name: String },
    /// The lookup itself failed (an NSS module's error).
    #[error("cannot look up {kind} `{name}`: {reason}")]
    Lookup {
        kind: IdKind,
        name: String,
        reason: String,
    },
}

/// The uid (or gid) of `name`; a decimal number is taken as the id itself.
pub async fn resolve(name: &str, kind: IdKind) -> Result<u32, IdError> {
    if let Some(id) = numeric(name, kind)? {
        return Ok(id);
    }
    let query = match kind {
        IdKind::User => Query::UserName,
        IdKind::Group => Query::GroupName,
    };
    lookup(name, kind, query).await.map(|(id, _)| id)
}

/// The uid and primary gid of the user `name`, or of the uid `name` is the number of (a
/// uid without an entry runs with its own number as gid).
pub async fn user(name: &str) -> Result<UserIds, IdError> {
    let (uid, gid) = match numeric(name, IdKind::User)? {
        Some(uid) => match lookup(name, IdKind::User, Query::Uid(uid)).await {
            Err(IdError::Unknown { .. }) => (uid, uid),
            found => found?,
        },
        None => lookup(name, IdKind::User, Query::UserName).await?,
    };
    Ok(UserIds { uid, gid })
}

/// `Some(id)` when `name` is a decimal number.
fn numeric(name: &str, kind: IdKind) -> Result<Option<u32>, IdError> {
    if name.is_empty() || !name.bytes().all(|b| b.is_ascii_digit()) {
        return Ok(None);
    }
    match name.parse::<u32>() {
        Ok(id) if id != u32::MAX => Ok(Some(id)),
        _ => Err(IdError::Invalid {
            kind,
            name: name.to_owned(),
        }),
    }
}

/// What one NSS call asks for.
#[derive(Clone, Copy)]
enum Query {
    UserName,
    Uid(u32),
    GroupName,
}

/// `(id, gid)` of `name` on the blocking pool: a user's uid and primary gid, or a group's
/// gid twice.
async fn lookup(name: &str, kind: IdKind, query: Query) -> Result<(u32, u32), IdError> {
    let unknown = || IdError::Unknown {
        kind,
        name: name.to_owned(),
    };
    let failed = |reason: String| IdError::Lookup {
        kind,
        name: name.to_owned(),
        reason,
    };
    // A name with a NUL byte cannot be in any database.
    let Ok(cname) = CString::new(name) else {
        return Err(unknown());
    };
    let found = tokio::task::spawn_blocking(move || nss(&cname, query))
        .await
        .map_err(|e| failed(format!("blocking task failed: {e}")))?
        .map_err(|e| failed(e.to_string()))?;
    found.ok_or_else(unknown)
}

/// `getpwnam_r`, `getpwuid_r` or `getgrnam_r`, growing the buffer on `ERANGE`.
fn nss(name: &CStr, query: Query) -> io::Result<Option<(u32, u32)>> {
    let mut buf = vec![0u8; 1024];
    loop {
        // SAFETY: `name` is NUL-terminated, `buf` outlives the call and its length is
        // passed, the out-records are zeroed POD structs, and the result pointer is only
        // compared with null (it points into the record we own).
        let (rc, found) = unsafe {
            match query {
                Query::UserName | Query::Uid(_) => {
                    let mut rec: libc::passwd = std::mem::zeroed();
                    let mut res: *mut libc::passwd = std::ptr::null_mut();
                    let (ptr, len) = (buf.as_mut_ptr().cast(), buf.len());
                    let rc = match query {
                        Query::Uid(uid) => libc::getpwuid_r(uid, &mut rec, ptr, len, &mut res),
                        _ => libc::getpwnam_r(name.as_ptr(), &mut rec, ptr, len, &mut res),
                    };
                    (rc, (!res.is_null()).then_some((rec.pw_uid, rec.pw_gid)))
                }
                Query::GroupName => {
                    let mut rec: libc::group = std::mem::zeroed();
                    let mut res: *mut libc::group = std::ptr::null_mut();
                    let (ptr, len) = (buf.as_mut_ptr().cast(), buf.len());
                    let rc = libc::getgrnam_r(name.as_ptr(), &mut rec, ptr, len, &mut res);
                    (rc, (!res.is_null()).then_some((rec.gr_gid, rec.gr_gid)))
                }
            }
        };
        match rc {
            0 => return Ok(found),
            libc::ERANGE if buf.len() < (1 << 24) => buf.resize(buf.len() * 2, 0),
            libc::EINTR => {}
            // "Not found" as some NSS modules report it (getpwnam_r(3)).
            libc::ENOENT | libc::ESRCH | libc::EBADF | libc::EPERM => return Ok(None),
            rc => return Err(io::Error::from_raw_os_error(rc)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn names_and_numbers() {
        assert_eq!(resolve("root", IdKind::User).await, Ok(0));
        assert_eq!(resolve("root", IdKind::Group).await, Ok(0));
        assert_eq!(resolve("0", IdKind::User).await, Ok(0));
        assert_eq!(resolve("4242", IdKind::Group).await, Ok(4242));
        assert_eq!(user("root").await, Ok(UserIds { uid: 0, gid: 0 }));
        assert_eq!(user("0").await, Ok(UserIds { uid: 0, gid: 0 }));
        // A uid nobody has: its own number as gid.
        assert_eq!(
            user("4242000").await,
            Ok(UserIds {
                uid: 4_242_000,
                gid: 4_242_000
            })
        );
    }

    #[tokio::test]
    async fn unknown_and_invalid_names() {
        for bad in ["no-such-user-homeostat", "", "a\0b"] {
            let err = resolve(bad, IdKind::User).await.expect_err(bad);
            assert!(matches!(err, IdError::Unknown { .. }), "{bad}: {err}");
        }
        for bad in ["4294967295", "99999999999"] {
            let err = resolve(bad, IdKind::User).await.expect_err(bad);
            assert!(matches!(err, IdError::Invalid { .. }), "{bad}: {err}");
        }
        let err = user("no-such-user-xyz").await.expect_err("unknown user");
        assert!(
            err.to_string()
                .contains("user `no-such-user-xyz` does not exist"),
            "{err}"
        );
        let err = resolve("no-such-group-homeostat", IdKind::Group)
            .await
            .expect_err("unknown group");
        assert!(err.to_string().contains("no-such-group-homeostat"), "{err}");
    }
}
