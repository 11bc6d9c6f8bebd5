//! Who a Directus user is: the parts of `/users/me` read here, and their mapping to an
//! [`Identity`] (groups from role and policy names or ids; admin from `admin_access`).

use crate::records::Identity;
use serde::Deserialize;
use std::collections::{BTreeMap, BTreeSet};

/// The fields of a user that say who they are and which role and policies they have. Fields
/// the token may not read are left out by Directus, not refused, so asking for all is safe.
pub(super) const USER_FIELDS: &str = "id,first_name,last_name,email,role.id,role.name,\
    policies.policy.id,policies.policy.name,policies.policy.admin_access,\
    role.policies.policy.id,role.policies.policy.name,role.policies.policy.admin_access";

/// The parts of `directus_users` read here; any may be missing when the token cannot read it.
#[derive(Debug, Clone, Default, Deserialize)]
pub(super) struct DirectusUser {
    pub(super) id: String,
    #[serde(default)]
    first_name: Option<String>,
    #[serde(default)]
    last_name: Option<String>,
    #[serde(default)]
    email: Option<String>,
    #[serde(default)]
    role: Option<DirectusRole>,
    #[serde(default)]
    policies: Option<Vec<Access>>,
}

#[derive(Debug, Clone, Default, Deserialize)]
struct DirectusRole {
    #[serde(default)]
    id: Option<String>,
    #[serde(default)]
    name: Option<String>,
    #[serde(default)]
    policies: Option<Vec<Access>>,
}

/// A row of `directus_access`: one policy given to a user or role.
#[derive(Debug, Clone, Default, Deserialize)]
struct Access {
    #[serde(default)]
    policy: Option<Policy>,
}

#[derive(Debug, Clone, Default, Deserialize)]
struct Policy {
    #[serde(default)]
    id: Option<String>,
    #[serde(default)]
    name: Option<String>,
    #[serde(default)]
    admin_access: Option<bool>,
}

/// The identity of `me`, with groups mapped from the role and policies that `roles` shows
/// (the same user, maybe read with a token that sees more).
pub(super) fn identity(me: &DirectusUser, roles: &DirectusUser, mapping: &BTreeMap<String, String>) -> Identity {
    let policies: Vec<&Policy> = roles
        .policies
        .iter()
        .flatten()
        .chain(roles.role.iter().flat_map(|r| r.policies.iter().flatten()))
        .filter_map(|access| access.policy.as_ref())
        .collect();
    let role_keys = roles.role.iter().flat_map(|r| [&r.id, &r.name]);
    let policy_keys = policies.iter().flat_map(|p| [&p.id, &p.name]);
    let groups: BTreeSet<String> = role_keys
        .chain(policy_keys)
        .flatten()
        .filter_map(|key| mapping.get(key).cloned())
        .collect();
    let full_name = [me.first_name.as_deref(), me.last_name.as_deref()]
        .into_iter()
        .flatten()
        .collect::<Vec<_>>()
        .join(" ");
    let name = Some(full_name)
        .filter(|n| !n.is_empty())
        .or_else(|| me.email.clone())
        .unwrap_or_else(|| me.id.clone());
    Identity {
        id: me.id.clone(),
        name,
        groups: groups.into_iter().collect(),
        admin: policies.iter().any(|p| p.admin_access == Some(true)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn user(json: serde_json::Value) -> DirectusUser {
        serde_json::from_value(json).unwrap()
    }

    #[test]
    fn groups_come_from_role_and_policy_names_and_ids_through_the_mapping() {
        let mapping = BTreeMap::from([
            ("management".to_owned(), "management".to_owned()),
            ("gpu-policy-id".to_owned(), "gpu".to_owned()),
        ]);
        let me = user(serde_json::json!({
            "id": "u1", "first_name": "Carol", "last_name": "Smith",
            "role": {"id": "r1", "name": "management", "policies": [{"policy": {"id": "p0", "name": "Students"}}]},
            "policies": [{"policy": {"id": "gpu-policy-id", "name": "GPU", "admin_access": false}}]
        }));
        let identity = identity(&me, &me, &mapping);
        assert_eq!(identity.groups, ["gpu", "management"]);
        assert_eq!(identity.name, "Carol Smith");
        assert!(!identity.admin);
    }

    #[test]
    fn a_user_who_may_read_only_their_id_is_a_plain_user() {
        let me = user(serde_json::json!({"id": "u2"}));
        let mapping = BTreeMap::from([("management".to_owned(), "management".to_owned())]);
        let identity = identity(&me, &me, &mapping);
        assert_eq!(
            identity,
            Identity {
                id: "u2".into(),
                name: "u2".into(),
                groups: vec![],
                admin: false
            }
        );
    }

    #[test]
    fn admin_access_on_any_policy_makes_an_admin() {
        let me = user(serde_json::json!({
            "id": "u3", "email": "root@example.com",
            "role": {"name": "Administrator", "policies": [{"policy": {"name": "Administrator", "admin_access": true}}]}
        }));
        let identity = identity(&me, &me, &BTreeMap::new());
        assert!(identity.admin);
        assert_eq!(identity.name, "root@example.com");
    }
}
