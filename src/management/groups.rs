//! Entities with member users (teams, organizations): where a group lists its members and where
//! each member user lists the group back, and the changes that keep both sides in step, each in
//! one transaction.

use serde_json::{json, Value};

use super::Ctx;
use crate::error::GatewayError;
use crate::state::AppState;
use crate::store::{EntityKind, EntityRecord, KeyScope, Locked, Modified, StoreError, TxEffects};
use crate::time::now_ms;

/// How often a change whose records moved under it (see [`StoreError::Stale`]) is re-read and
/// retried before the request fails.
pub const STALE_RETRIES: usize = 5;

/// Stamp a locked record as changed now by `actor`, to be written back.
pub fn touch(l: &mut Locked, actor: &str, now: i64) {
    if let Some(r) = l.record.as_mut() {
        r.updated_at = now;
        r.updated_by = Some(actor.to_string());
        l.changed = true;
    }
}

/// Forget cached keys of `team_id` (the team's settings, members or existence changed).
pub fn invalidate_team(state: &AppState, team_id: &str) {
    if let Some(cache) = state.auth.key_cache() {
        let id = team_id.to_string();
        cache.invalidate_where(move |p| p.key.team_id.as_deref() == Some(&id))
    }
}

/// A kind of group with member users.
pub struct Group {
    pub kind: EntityKind,
    /// The group's list of member objects (`{"user_id", …}`).
    pub members_field: &'static str,
    /// The member user's list of the groups it is in.
    pub user_field: &'static str,
    /// Deleting a group deletes its keys.
    pub owns_keys: bool,
}

pub static TEAM_GROUP: Group = Group {
    kind: EntityKind::Team,
    members_field: "members_with_roles",
    user_field: "teams",
    owns_keys: true,
};

pub static ORGANIZATION_GROUP: Group = Group {
    kind: EntityKind::Organization,
    members_field: "members",
    user_field: "organizations",
    owns_keys: false,
};

impl Group {
    /// The group's member objects.
    pub fn members(&self, group: &EntityRecord) -> Vec<Value> {
        group
            .data
            .get(self.members_field)
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default()
    }

    /// The user ids of the group's members.
    pub fn member_ids(&self, group: &EntityRecord) -> Vec<String> {
        self.members(group)
            .iter()
            .filter_map(|m| m.get("user_id").and_then(Value::as_str).map(str::to_string))
            .collect()
    }

    /// Put `user` into `group` with `role`, on both records (in memory). False when already a
    /// member.
    pub fn link(&self, group: &mut EntityRecord, user: &mut EntityRecord, role: &str) -> bool {
        let mut list = self.members(group);
        if list
            .iter()
            .any(|m| m.get("user_id").and_then(Value::as_str) == Some(user.id.as_str()))
        {
            return false;
        }
        list.push(json!({"user_id": user.id, "user_email": user.alias, "role": role}));
        group
            .data
            .insert(self.members_field.into(), Value::Array(list));
        let mut groups: Vec<Value> = user
            .data
            .get(self.user_field)
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default();
        if !groups.iter().any(|g| g.as_str() == Some(group.id.as_str())) {
            groups.push(Value::String(group.id.clone()));
        }
        user.data
            .insert(self.user_field.into(), Value::Array(groups));
        true
    }

    /// Drop `user_id` from a group's members (in memory). False when it was not a member.
    pub fn unlink_member(&self, group: &mut EntityRecord, user_id: &str) -> bool {
        let mut list = self.members(group);
        let before = list.len();
        list.retain(|m| m.get("user_id").and_then(Value::as_str) != Some(user_id));
        let removed = list.len() != before;
        group
            .data
            .insert(self.members_field.into(), Value::Array(list));
        removed
    }

    /// Drop `group_id` from a user's list of groups (in memory).
    pub fn unlink_user(&self, user: &mut EntityRecord, group_id: &str) {
        if let Some(Value::Array(groups)) = user.data.get_mut(self.user_field) {
            groups.retain(|g| g.as_str() != Some(group_id));
        }
    }

    /// Change group `id` and the member users `users` in one transaction, all locked: `change`
    /// gets the group (404 when it is gone), the user rows in the order given and the time;
    /// every record is then stamped as changed by the caller. Concurrent member changes of one
    /// group (or of one user) run one after the other, so none is lost.
    pub async fn change_members<F>(
        &self,
        c: &Ctx,
        id: &str,
        users: Vec<String>,
        change: F,
    ) -> Result<Modified, GatewayError>
    where
        F: FnOnce(&mut EntityRecord, &mut [Locked], i64) -> Result<TxEffects, StoreError>
            + Send
            + 'static,
    {
        let mut targets = vec![(self.kind, id.to_string())];
        targets.extend(users.into_iter().map(|u| (EntityKind::User, u)));
        let (actor, now, kind, id) = (c.caller.actor_id(), now_ms(), self.kind, id.to_string());
        let done = c
            .store
            .modify(
                targets,
                Box::new(move |rows| {
                    let (group_row, user_rows) = rows
                        .split_first_mut()
                        .expect("the group is asked for first");
                    let Some(group) = group_row.record.as_mut() else {
                        return Err(StoreError::NotFound(format!(
                            "{} {id} not found",
                            kind.name()
                        )));
                    };
                    let effects = change(group, user_rows, now)?;
                    touch(group_row, &actor, now);
                    user_rows.iter_mut().for_each(|r| touch(r, &actor, now));
                    Ok(effects)
                }),
            )
            .await?;
        Ok(done)
    }

    /// Delete groups in one transaction: each member user leaves them, their keys go (teams),
    /// then the groups. The groups and their member users are locked; if a group's members
    /// changed between reading and locking, it is read again. Returns the groups as read and
    /// the users that were unlinked.
    pub async fn delete(
        &'static self,
        c: &Ctx,
        ids: &[String],
    ) -> Result<(Vec<EntityRecord>, Vec<String>), GatewayError> {
        for _ in 0..STALE_RETRIES {
            let mut targets = Vec::new();
            let mut groups = Vec::new();
            let mut user_ids = Vec::new();
            for id in ids {
                let group = c.find(self.kind, id).await?;
                targets.push((self.kind, id.clone()));
                for uid in self.member_ids(&group) {
                    targets.push((EntityKind::User, uid.clone()));
                    user_ids.push(uid);
                }
                groups.push(group);
            }
            let (actor, now, group_ids) = (c.caller.actor_id(), now_ms(), ids.to_vec());
            let result = c
                .store
                .modify(
                    targets,
                    Box::new(move |rows| self.delete_change(rows, &group_ids, &actor, now)),
                )
                .await;
            match result {
                Err(StoreError::Stale) => continue,
                Err(e) => return Err(e.into()),
                Ok(_) => return Ok((groups, user_ids)),
            }
        }
        Err(StoreError::Stale.into())
    }

    /// The change of [`Group::delete`] on the locked rows.
    fn delete_change(
        &self,
        rows: &mut [Locked],
        group_ids: &[String],
        actor: &str,
        now: i64,
    ) -> Result<TxEffects, StoreError> {
        let mut effects = TxEffects::default();
        for id in group_ids {
            let Some(group) = rows
                .iter()
                .find(|l| l.kind == self.kind && l.id == *id)
                .and_then(|l| l.record.clone())
            else {
                return Err(StoreError::NotFound(format!(
                    "{} {id} not found",
                    self.kind.name()
                )));
            };
            for uid in self.member_ids(&group) {
                let Some(row) = rows
                    .iter_mut()
                    .find(|l| l.kind == EntityKind::User && l.id == uid)
                else {
                    // A member added after the read: read again.
                    return Err(StoreError::Stale);
                };
                if let Some(user) = row.record.as_mut() {
                    self.unlink_user(user, id);
                    touch(row, actor, now);
                }
            }
            if self.owns_keys {
                effects.delete_keys.push(KeyScope {
                    team_id: Some(id.clone()),
                    user_id: None,
                });
            }
            effects.delete_entities.push((self.kind, id.clone()));
        }
        Ok(effects)
    }
}
