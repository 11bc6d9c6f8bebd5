//! Growing volumes: a larger `size` grows the claims a volume already has; a smaller one is
//! refused, since a claim cannot shrink. Pure: compares what a spec asks for with the sizes
//! its claims have now, which the caller reads from the cluster.

use crate::error::{FieldError, Rule};
use crate::quantity;
use crate::spec::{Spec, VolumeKind};
use k8s_openapi::api::core::v1::PersistentVolumeClaim;
use std::collections::BTreeMap;

/// The storage a claim (or claim template) asks for.
pub fn requested(claim: &PersistentVolumeClaim) -> Option<&str> {
    let requests = claim.spec.as_ref()?.resources.as_ref()?.requests.as_ref()?;
    requests.get("storage").map(|q| q.0.as_str())
}

/// The larger of two sizes (the first when either is unreadable).
pub fn larger<'a>(a: &'a str, b: &'a str) -> &'a str {
    if grows(a, b) { b } else { a }
}

/// Whether two lists of claim templates differ in sizes only (same names, access modes and
/// classes, in order): then the StatefulSet can be recreated around its running pods, which
/// keep their grown claims, instead of restarting them.
pub fn only_sizes_differ(old: &[PersistentVolumeClaim], new: &[PersistentVolumeClaim]) -> bool {
    let shape = |c: &PersistentVolumeClaim| {
        let spec = c.spec.clone().unwrap_or_default();
        (c.metadata.name.clone(), spec.access_modes, spec.storage_class_name)
    };
    old.len() == new.len()
        && old.iter().zip(new).all(|(o, n)| shape(o) == shape(n))
        && old.iter().zip(new).any(|(o, n)| requested(o) != requested(n))
}

/// Whether a claim of `current` size must grow to hold `wanted` (both quantities like `1Gi`).
pub fn grows(current: &str, wanted: &str) -> bool {
    matches!((quantity::parse(current), quantity::parse(wanted)), (Some(c), Some(w)) if w > c)
}

/// Every persistent volume of `spec` whose `size` is smaller than the claims it has now
/// (`current`: volume name → the largest size its claims ask for), as a problem on
/// `volumes[i].size` that names the current size.
pub fn check_no_shrink(spec: &Spec, current: &BTreeMap<String, String>) -> Result<(), Vec<FieldError>> {
    let problems: Vec<FieldError> = spec
        .volumes
        .iter()
        .enumerate()
        .filter_map(|(i, volume)| {
            let VolumeKind::Persistent { size, .. } = &volume.kind else {
                return None;
            };
            let now = current.get(&volume.name)?;
            grows(size, now).then(|| {
                FieldError::new(
                    format!("volumes[{i}].size"),
                    Rule::OutOfRange,
                    format!(
                        "`{size}` is smaller than the volume's current size, {now}: volumes can grow but never shrink. Give {now} or more (to start over with a smaller one, rename the volume)."
                    ),
                )
            })
        })
        .collect();
    if problems.is_empty() { Ok(()) } else { Err(problems) }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::limits::Limits;

    fn spec(size: &str) -> Spec {
        let yaml = format!(
            "containers: [{{name: a, image: i, volumeMounts: [{{name: data, mountPath: /d}}]}}]\nvolumes: [{{name: scratch, emptyDir: {{}}}}, {{name: data, size: {size}}}]\n"
        );
        crate::validate_yaml(&yaml, &Limits::default()).unwrap()
    }

    fn template(name: &str, storage: &str, access: &str) -> PersistentVolumeClaim {
        serde_json::from_value(serde_json::json!({
            "metadata": {"name": name},
            "spec": {"accessModes": [access], "resources": {"requests": {"storage": storage}}},
        }))
        .unwrap()
    }

    #[test]
    fn a_template_change_in_sizes_only_is_told_apart() {
        let old = [template("data", "1Gi", "ReadWriteOnce")];
        assert!(only_sizes_differ(&old, &[template("data", "2Gi", "ReadWriteOnce")]));
        assert!(!only_sizes_differ(&old, &old), "nothing differs");
        assert!(!only_sizes_differ(&old, &[template("other", "2Gi", "ReadWriteOnce")]));
        assert!(!only_sizes_differ(&old, &[template("data", "2Gi", "ReadWriteMany")]));
        assert!(!only_sizes_differ(
            &old,
            &[
                template("data", "2Gi", "ReadWriteOnce"),
                template("more", "1Gi", "ReadWriteOnce")
            ]
        ));
    }

    #[test]
    fn sizes_compare_across_units() {
        assert_eq!(larger("1Gi", "512Mi"), "1Gi");
        assert_eq!(larger("512Mi", "1Gi"), "1Gi");
        assert!(grows("1Gi", "2Gi"));
        assert!(grows("512Mi", "1Gi"));
        assert!(!grows("1Gi", "1024Mi"));
        assert!(!grows("2Gi", "1Gi"));
        assert!(!grows("1Gi", "garbage"), "an unreadable size never grows a claim");
    }

    #[test]
    fn a_smaller_size_is_refused_naming_the_current_one() {
        let current = BTreeMap::from([("data".to_owned(), "2Gi".to_owned())]);
        assert!(check_no_shrink(&spec("2Gi"), &current).is_ok());
        assert!(check_no_shrink(&spec("5Gi"), &current).is_ok(), "growing is fine");
        assert!(
            check_no_shrink(&spec("1Gi"), &BTreeMap::new()).is_ok(),
            "a new volume is fine"
        );
        let problems = check_no_shrink(&spec("1Gi"), &current).unwrap_err();
        assert_eq!(problems.len(), 1);
        assert_eq!(problems[0].field, "volumes[1].size");
        assert!(
            problems[0].message.contains("current size, 2Gi"),
            "{}",
            problems[0].message
        );
    }
}
