//! Names and labels of the Kubernetes objects of one deployment.
//!
//! Every object is named from the base `<prefix><slug(id)>` (prefix `sd-` by default). Names
//! are deterministic, valid DNS-1035 labels (a letter first, at most 63 characters), and
//! distinct for distinct record ids: an id that slugging would change (uppercase, `_`, too
//! long) gets a hash of the exact id appended, so `A` and `a` never share objects. An id that
//! itself ends like such a hash is hashed as well, so a clean name never equals a shortened one.
//! Derived names (`<base>-<container>`) are unique across deployments as long as ids are
//! UUIDs or integers, as Directus assigns them: no such id extends another by `-<word>`.

use crate::record::RecordId;
use sha2::{Digest, Sha256};
use std::collections::BTreeMap;

/// Longest base name; leaves room for `-<ordinal>` on pods and the controller's
/// `-<revision hash>` label value (both must fit in 63).
pub const MAX_BASE_LEN: usize = 40;
/// Longest Kubernetes name label.
pub const MAX_NAME_LEN: usize = 63;
/// Hex digits of a hash suffix (64 bits).
const HASH_LEN: usize = 16;

/// Label every managed object carries: `app.kubernetes.io/managed-by: llp-k8s`.
pub const MANAGED_BY: (&str, &str) = ("app.kubernetes.io/managed-by", "llp-k8s");
/// Label holding the record id.
pub const DEPLOYMENT_LABEL: &str = "llp.kitegg.de/deployment";
/// Label holding the owner's user id.
pub const OWNER_LABEL: &str = "llp.kitegg.de/owner";
/// Label holding the base name; the StatefulSet and Services select pods by it.
pub const APP_LABEL: &str = "app";
/// Annotation of a running GPU StatefulSet: when the bookings covering it end (RFC 3339);
/// the reservation reconciler keeps it current.
pub const RESERVATION_ENDS_ANNOTATION: &str = "llp.kitegg.de/reservation-ends";
/// Annotation of a StatefulSet the reservation reconciler scaled to 0: when its booking ended
/// (RFC 3339). Removed when it is deployed or scaled up again.
pub const STOPPED_ANNOTATION: &str = "llp.kitegg.de/stopped-reservation-ended";

/// The value of [`STOPPED_ANNOTATION`] when no booking ended but the owner's deployments
/// started earlier hold what is booked.
pub const STOPPED_OVER_BUDGET: &str = "over-budget";

/// Annotation of a deployment's StatefulSet or Job: its record's `date_created`. A record
/// that later gets the same id has another date, so it never takes over these objects (nor
/// their volumes).
pub const RECORD_CREATED_ANNOTATION: &str = "llp.kitegg.de/record-created";

/// Label of a shared (`ReadWriteMany`) volume's claim: the volume's name in the spec.
pub const SHARED_VOLUME_LABEL: &str = "llp.kitegg.de/shared-volume";
/// Prefix of the labels that say which deployments declared a shared claim: one label
/// `shared.llp.kitegg.de/<deployment label>` per deployment. The claim goes with the last.
pub const SHARED_USER_PREFIX: &str = "shared.llp.kitegg.de/";

/// The label on a shared claim saying that the deployment labelled `deployment_label` uses it.
pub fn shared_user_label(deployment_label: &str) -> String {
    format!("{SHARED_USER_PREFIX}{deployment_label}")
}

/// The claim of the shared (`ReadWriteMany`) volume `volume` of `owner`: one per owner and
/// volume name, whatever deployment declares it. Derived from a hash of the owner, so no other
/// owner's deployment renders it; it ends in `-shared`, so it can never equal a per-replica
/// claim (`<volume>-<base>-<ordinal>` ends in digits).
pub fn shared_claim(prefix: &str, owner: &str, volume: &str) -> String {
    format!("{prefix}{}-{volume}-shared", hash(owner))
}

/// The ConfigMap holding the admission ledger of `owner` (see [`crate::admission`]): one per
/// owner, named by a hash of the owner so that any user id makes a valid name.
pub fn admission_ledger(owner: &str) -> String {
    format!("llp-admission-{}", hash(owner))
}

/// The ConfigMap holding the session book of `user` (see [`crate::sessions`]).
pub fn session_book(user: &str) -> String {
    format!("llp-sessions-{}", hash(user))
}

/// The names of one deployment's objects.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Names {
    base: String,
}

impl Names {
    /// The names for record `id`, with `prefix` (which must start with a letter, like `sd-`).
    pub fn new(prefix: &str, id: &RecordId) -> Self {
        let id = id.to_string();
        let slug = slugify(&id);
        let base = format!("{prefix}{slug}");
        let clean = !slug.is_empty() && slug == id && base.len() <= MAX_BASE_LEN && !looks_hashed(&slug);
        let base = if clean { base } else { shorten(&base, &id, MAX_BASE_LEN) };
        Self { base }
    }

    /// The base name: the StatefulSet, the Ingress, the Secret and the ConfigMap.
    pub fn base(&self) -> &str {
        &self.base
    }

    /// The Service of container `container`.
    pub fn service(&self, container: &str) -> String {
        self.derived(container)
    }

    /// The Secret holding `fromSecret` values.
    pub fn secret(&self) -> &str {
        &self.base
    }

    /// The ConfigMap holding `fromConfig` values.
    pub fn config_map(&self) -> &str {
        &self.base
    }

    /// The claim of volume `volume` of a run to completion (a Job has no claim per pod).
    pub fn job_claim(&self, volume: &str) -> String {
        format!("{volume}-{}", self.base)
    }

    /// The TLS Secret of the Ingress.
    pub fn tls_secret(&self) -> String {
        self.derived("tls")
    }

    /// `<base>-<suffix>`, shortened with a hash of the whole when it would exceed 63.
    fn derived(&self, suffix: &str) -> String {
        let name = format!("{}-{suffix}", self.base);
        if name.len() <= MAX_NAME_LEN {
            name
        } else {
            shorten(&name, &name, MAX_NAME_LEN)
        }
    }
}

/// Whether `name` ends like a shortened name (`-` and 16 hex digits). Such ids are hashed
/// too, so a clean id can never equal the shortened name of another.
fn looks_hashed(name: &str) -> bool {
    name.len() > HASH_LEN
        && name.as_bytes()[name.len() - HASH_LEN - 1] == b'-'
        && name[name.len() - HASH_LEN..]
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

/// Lowercase letters and digits, other runs replaced by one `-`, no `-` at either end.
fn slugify(id: &str) -> String {
    let mut slug = String::with_capacity(id.len());
    for c in id.chars() {
        if c.is_ascii_alphanumeric() {
            slug.push(c.to_ascii_lowercase());
        } else if !slug.ends_with('-') {
            slug.push('-');
        }
    }
    slug.trim_matches('-').to_owned()
}

/// `name` cut to leave room for `-<hash of key>`, the result at most `max` long.
fn shorten(name: &str, key: &str, max: usize) -> String {
    let keep = max - HASH_LEN - 1;
    let cut = (0..=keep.min(name.len()))
        .rev()
        .find(|i| name.is_char_boundary(*i))
        .unwrap_or(0);
    let head = name[..cut].trim_end_matches('-');
    format!("{head}-{}", hash(key))
}

fn hash(key: &str) -> String {
    let digest = Sha256::digest(key.as_bytes());
    digest.iter().take(HASH_LEN / 2).map(|b| format!("{b:02x}")).collect()
}

/// A value usable as a label value: the text itself when it is one (UUIDs and integers are),
/// otherwise `h-` and a hash of it, so that any id or user id can be selected on.
pub fn label_value(text: &str) -> String {
    if is_label_value(text) {
        text.to_owned()
    } else {
        format!("h-{}", hash(text))
    }
}

fn is_label_value(s: &str) -> bool {
    let edge_ok = |c: Option<char>| c.is_some_and(|c| c.is_ascii_alphanumeric());
    s.len() <= MAX_NAME_LEN
        && edge_ok(s.chars().next())
        && edge_ok(s.chars().last())
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
}

/// The labels of every object of a deployment.
pub fn labels(names: &Names, id: &RecordId, owner: &str) -> BTreeMap<String, String> {
    BTreeMap::from([
        (MANAGED_BY.0.to_owned(), MANAGED_BY.1.to_owned()),
        (DEPLOYMENT_LABEL.to_owned(), label_value(&id.to_string())),
        (OWNER_LABEL.to_owned(), label_value(owner)),
        (APP_LABEL.to_owned(), names.base().to_owned()),
    ])
}

/// The labels that select the pods of a deployment.
pub fn selector(names: &Names) -> BTreeMap<String, String> {
    BTreeMap::from([(APP_LABEL.to_owned(), names.base().to_owned())])
}

#[cfg(test)]
mod tests {
    use super::*;

    fn text(id: &str) -> RecordId {
        RecordId::Text(id.to_owned())
    }

    #[test]
    fn a_uuid_is_kept_as_it_is() {
        let names = Names::new("sd-", &text("3f2b8c1e-9a4d-4e6f-8b2a-1c3d5e7f9a0b"));
        assert_eq!(names.base(), "sd-3f2b8c1e-9a4d-4e6f-8b2a-1c3d5e7f9a0b");
        assert_eq!(names.service("nginx"), "sd-3f2b8c1e-9a4d-4e6f-8b2a-1c3d5e7f9a0b-nginx");
    }

    #[test]
    fn an_integer_id_is_kept_as_it_is() {
        assert_eq!(Names::new("sd-", &RecordId::Int(42)).base(), "sd-42");
    }

    #[test]
    fn ids_that_slug_alike_get_different_names() {
        let a = Names::new("sd-", &text("A"));
        let b = Names::new("sd-", &text("a"));
        let c = Names::new("sd-", &text("a_"));
        assert_eq!(b.base(), "sd-a");
        assert_ne!(a.base(), b.base());
        assert_ne!(c.base(), b.base());
        assert!(a.base().starts_with("sd-a-"), "{}", a.base());
    }

    #[test]
    fn an_id_shaped_like_a_shortened_name_cannot_take_its_place() {
        let shortened = Names::new("sd-", &text("A"));
        let imitation = shortened.base().trim_start_matches("sd-").to_owned();
        assert_ne!(Names::new("sd-", &text(&imitation)), shortened);
    }

    #[test]
    fn a_long_service_name_is_shortened_with_a_hash() {
        let names = Names::new("sd-", &text("3f2b8c1e-9a4d-4e6f-8b2a-1c3d5e7f9a0b"));
        let long = names.service(&"c".repeat(63));
        assert_eq!(long.len(), 63);
        assert_ne!(long, names.service(&format!("{}d", "c".repeat(62))));
    }

    #[test]
    fn shared_claims_are_per_owner_and_never_a_replica_claim() {
        let alice = shared_claim("sd-", "alice", "data");
        assert_eq!(alice, shared_claim("sd-", "alice", "data"));
        assert_ne!(alice, shared_claim("sd-", "bob", "data"));
        assert_ne!(alice, shared_claim("sd-", "alice", "models"));
        assert!(alice.starts_with("sd-") && alice.ends_with("-data-shared"), "{alice}");
        // The longest volume name still gives a valid claim name (a DNS subdomain).
        assert!(shared_claim("sd-", "alice", &"v".repeat(63)).len() <= 253);
    }

    #[test]
    fn label_values_stay_valid() {
        assert_eq!(label_value("42"), "42");
        assert_eq!(
            label_value("3f2b8c1e-9a4d-4e6f-8b2a-1c3d5e7f9a0b"),
            "3f2b8c1e-9a4d-4e6f-8b2a-1c3d5e7f9a0b"
        );
        let odd = label_value("../../etc passwd");
        assert!(odd.starts_with("h-") && is_label_value(&odd), "{odd}");
    }
}
