//! What each pod of a workload holds, read from its template once: the CPU, memory and GPUs
//! it requests (the quota), the GPUs by model it is limited to (GPU reservations), and the
//! claims it mounts by name (the owner's shared volumes, a run's claims). The watch caches
//! keep this instead of the template, a tenth of its size.

use crate::quota::Usage;
use crate::reservations::{GpuCounts, pod_gpus};
use k8s_openapi::api::core::v1::{PodSpec, PodTemplateSpec};

/// What one pod of a template holds and mounts.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct PodFootprint {
    /// What it requests, for the quota ([`Usage::times`] counts `replicas` of it).
    pub usage: Usage,
    /// The GPUs it is limited to, by model (none: no entry).
    pub gpus: GpuCounts,
    /// The claims it mounts by name.
    pub claims: Vec<String>,
}

impl PodFootprint {
    /// The footprint of a pod of `template` (none without a template).
    pub fn of(template: Option<&PodTemplateSpec>) -> Self {
        template
            .and_then(|t| t.spec.as_ref())
            .map(Self::of_spec)
            .unwrap_or_default()
    }

    /// The footprint of a pod of `spec`.
    pub fn of_spec(spec: &PodSpec) -> Self {
        let claims = spec
            .volumes
            .iter()
            .flatten()
            .filter_map(|v| Some(v.persistent_volume_claim.as_ref()?.claim_name.clone()))
            .collect();
        Self {
            usage: crate::quota::per_pod(spec),
            gpus: pod_gpus(spec),
            claims,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::spec::Gpu;
    use serde_json::json;

    #[test]
    fn a_footprint_counts_requests_gpu_limits_and_claims_by_name() {
        let spec: PodSpec = serde_json::from_value(json!({
            "containers": [
                {"name": "train", "resources": {"requests": {"cpu": "2", "memory": "4Gi", "nvidia.com/gpu": "1"},
                    "limits": {"nvidia.com/gpu": "1", "memory": "4Gi"}}},
                {"name": "side", "resources": {"requests": {"cpu": "500m"}}}],
            "volumes": [{"name": "scratch", "emptyDir": {}},
                {"name": "shared", "persistentVolumeClaim": {"claimName": "sd-x-shared"}}],
        }))
        .unwrap();
        let footprint = PodFootprint::of_spec(&spec);
        assert_eq!(footprint.usage.cpu, 2.5);
        assert_eq!(footprint.usage.memory, 4.0);
        assert_eq!(footprint.usage.gpus, 1);
        assert_eq!(footprint.usage.times(3).cpu, 7.5);
        assert_eq!(footprint.gpus, GpuCounts::from([(Gpu::Full, 1)]));
        assert_eq!(footprint.claims, ["sd-x-shared"]);
        assert_eq!(PodFootprint::of(None), PodFootprint::default());
    }
}
