//! Dropping root after the listeners are bound (`smtp.ini` `user` / `group`).

use nix::unistd::{Group, User, setgid, setgroups, setuid};

/// Why privileges could not be dropped.
#[derive(Debug, thiserror::Error)]
pub enum PrivError {
    #[error("unknown user '{0}'")]
    NoUser(String),
    #[error("unknown group '{0}'")]
    NoGroup(String),
    #[error("cannot switch to {what}: {source}")]
    Switch { what: String, source: nix::Error },
}

/// Switch to `group` then `user` (names or numeric ids). `None` keeps the current one.
pub fn drop_privileges(user: Option<&str>, group: Option<&str>) -> Result<(), PrivError> {
    if let Some(g) = group {
        let gid = match g.parse::<u32>() {
            Ok(n) => nix::unistd::Gid::from_raw(n),
            Err(_) => {
                Group::from_name(g)
                    .ok()
                    .flatten()
                    .ok_or_else(|| PrivError::NoGroup(g.to_owned()))?
                    .gid
            }
        };
        setgroups(&[gid]).map_err(|source| PrivError::Switch {
            what: format!("group {g}"),
            source,
        })?;
        setgid(gid).map_err(|source| PrivError::Switch {
            what: format!("group {g}"),
            source,
        })?;
    }
    if let Some(u) = user {
        let uid = match u.parse::<u32>() {
            Ok(n) => nix::unistd::Uid::from_raw(n),
            Err(_) => {
                User::from_name(u)
                    .ok()
                    .flatten()
                    .ok_or_else(|| PrivError::NoUser(u.to_owned()))?
                    .uid
            }
        };
        setuid(uid).map_err(|source| PrivError::Switch {
            what: format!("user {u}"),
            source,
        })?;
    }
    if user.is_some() || group.is_some() {
        tracing::info!("running as user={:?} group={:?}", user, group);
    }
    Ok(())
}
