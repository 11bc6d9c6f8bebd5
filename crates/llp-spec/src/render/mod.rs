//! Rendering: from a validated [`Deployment`] to the Kubernetes objects a deploy applies.
//!
//! Pure: takes the deployment, its id and owner and the cluster settings ([`RenderConfig`]),
//! returns [`Objects`]. The Secret and ConfigMap are not rendered here: their own routes
//! write them, and the pod only refers to them by name.

mod ingress;
mod job;
mod network;

pub use job::fresh_job;
mod pod;
mod service;
mod statefulset;

use crate::names::{Names, labels};
use crate::record::{Deployment, RecordId};
use k8s_openapi::api::apps::v1::StatefulSet;
use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::PodTemplateSpec;
use k8s_openapi::api::core::v1::{PersistentVolumeClaim, Service, Toleration};
use k8s_openapi::api::networking::v1::{Ingress, NetworkPolicy};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// The capabilities Pod Security "baseline" lets a container add.
pub const BASELINE_CAPABILITIES: &[&str] = &[
    "AUDIT_WRITE",
    "CHOWN",
    "DAC_OVERRIDE",
    "FOWNER",
    "FSETID",
    "KILL",
    "MKNOD",
    "NET_BIND_SERVICE",
    "SETFCAP",
    "SETGID",
    "SETPCAP",
    "SETUID",
    "SYS_CHROOT",
];

/// Cluster-wide settings that shape the objects.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RenderConfig {
    /// Namespace of every object.
    pub namespace: String,
    /// Prefix of every object name; must start with a letter (default `sd-`).
    pub name_prefix: String,
    /// `imagePullPolicy` of every container.
    pub image_pull_policy: String,
    /// Node selector of the pods.
    pub node_selector: BTreeMap<String, String>,
    /// Tolerations of pods that ask for a GPU (GPU nodes are often tainted so that only GPU
    /// work lands there).
    pub gpu_tolerations: Vec<Toleration>,
    /// Storage class of the volume claims; the cluster's default when unset.
    pub storage_class: Option<String>,
    /// Drop every Linux capability of every container (then give back `root_capabilities`).
    pub drop_all_capabilities: bool,
    /// What a container that may start as root gets back after every capability is dropped
    /// (unless `run_as_non_root`): what images that start as root and then switch to their
    /// own user need (nginx binds port 80, chowns its cache, sets its workers' user and
    /// signals them). Pod Security "baseline" allows only its own list ([`BASELINE_CAPABILITIES`]).
    pub root_capabilities: Vec<String>,
    /// Failed pods (or, with `OnFailure`, container restarts) a run to completion may have
    /// before it counts as failed; Kubernetes' own default is 6.
    pub job_backoff_limit: i32,
    /// Ingress settings.
    pub ingress: IngressConfig,
    /// Set `runAsNonRoot` on every pod (Pod Security "restricted"): images that run as root
    /// then do not start. Pods whose YAML says `user: 0` (groups allowed root) never get it.
    pub run_as_non_root: bool,
    /// The NetworkPolicy of each deployment.
    pub network_policy: NetworkPolicyConfig,
}

impl RenderConfig {
    /// A problem with settings the renderer cannot honour safely, e.g. a capability in
    /// `root_capabilities` that Pod Security "baseline" does not allow.
    pub fn check(&self) -> Result<(), String> {
        let beyond: Vec<&str> = self
            .root_capabilities
            .iter()
            .map(String::as_str)
            .filter(|c| !BASELINE_CAPABILITIES.contains(c))
            .collect();
        if beyond.is_empty() {
            Ok(())
        } else {
            Err(format!(
                "root_capabilities: {} beyond what Pod Security \"baseline\" allows ({})",
                beyond.join(", "),
                BASELINE_CAPABILITIES.join(", ")
            ))
        }
    }
}

/// Which connections a deployment's pods accept.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct NetworkPolicyConfig {
    /// Render one per deployment: connections only from its own pods and, when exposed, from
    /// the ingress controller to the exposed port.
    pub enabled: bool,
    /// The ingress controller's namespace.
    pub ingress_namespace: String,
}

impl Default for NetworkPolicyConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            ingress_namespace: "ingress-nginx".into(),
        }
    }
}

/// How exposed deployments are reached.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct IngressConfig {
    /// Hosts are `<exposed_hostname>.<domain>`.
    pub domain: String,
    /// `ingressClassName`, when the cluster has several.
    pub class: Option<String>,
    /// Annotations of every Ingress (e.g. `cert-manager.io/cluster-issuer`).
    pub annotations: BTreeMap<String, String>,
    /// Serve TLS with the certificate in Secret `<base>-tls` (cert-manager fills it).
    pub tls: bool,
    /// Hostnames no deployment may take (`www`, the LLP's own names, …).
    pub reserved_hostnames: Vec<String>,
    /// Allow punycode hostnames (`xn--…`), which can imitate other names in a browser.
    pub allow_punycode: bool,
}

impl IngressConfig {
    /// Whether `hostname` (an `exposed_hostname`, already a valid DNS label) may be used, as
    /// a problem on `exposed_hostname` when not.
    pub fn check_hostname(&self, hostname: &str) -> Result<(), crate::FieldError> {
        let problem = if self.reserved_hostnames.iter().any(|r| r.eq_ignore_ascii_case(hostname)) {
            Some(format!("`{hostname}` is reserved: pick another name."))
        } else if hostname.starts_with("xn--") && !self.allow_punycode {
            Some(format!(
                "`{hostname}` is punycode (an encoded international name, which can look like another name in a browser): use plain letters, digits and `-`."
            ))
        } else {
            None
        };
        match problem {
            Some(message) => Err(crate::FieldError::new(
                "exposed_hostname",
                crate::Rule::Conflict,
                message,
            )),
            None => Ok(()),
        }
    }
}

impl Default for RenderConfig {
    fn default() -> Self {
        Self {
            namespace: "services".into(),
            name_prefix: "sd-".into(),
            image_pull_policy: "Always".into(),
            node_selector: BTreeMap::from([("node-role.kubernetes.io/worker".into(), "worker".into())]),
            // The taint the NVIDIA GPU operator documents for GPU nodes.
            gpu_tolerations: vec![Toleration {
                key: Some("nvidia.com/gpu".into()),
                operator: Some("Exists".into()),
                effect: Some("NoSchedule".into()),
                ..Default::default()
            }],
            storage_class: None,
            drop_all_capabilities: true,
            root_capabilities: [
                "CHOWN",
                "DAC_OVERRIDE",
                "FOWNER",
                "KILL",
                "NET_BIND_SERVICE",
                "SETGID",
                "SETUID",
            ]
            .map(String::from)
            .to_vec(),
            // A broken training run should not hold GPUs for six retries.
            job_backoff_limit: 3,
            ingress: IngressConfig::default(),
            run_as_non_root: false,
            network_policy: NetworkPolicyConfig::default(),
        }
    }
}

impl Default for IngressConfig {
    fn default() -> Self {
        Self {
            domain: "llp.example.org".into(),
            class: None,
            annotations: BTreeMap::new(),
            tls: true,
            reserved_hostnames: vec!["www".into(), "localhost".into()],
            allow_punycode: false,
        }
    }
}

/// Every object one deployment consists of (besides its Secret and ConfigMap).
#[derive(Debug, Clone, PartialEq)]
pub struct Objects {
    /// What runs the pods.
    pub workload: Workload,
    /// A run to completion's claims of its `ReadWriteOnce` volumes, one per volume (a Job has
    /// no claim templates); empty for a StatefulSet.
    pub claims: Vec<PersistentVolumeClaim>,
    /// One per app container with ports.
    pub services: Vec<Service>,
    /// When the record has an `exposed_hostname`.
    pub ingress: Option<Ingress>,
    /// Who may connect to its pods (unless switched off).
    pub network_policy: Option<NetworkPolicy>,
    /// The claims of its shared (`ReadWriteMany`) volumes, which are the owner's rather than
    /// the deployment's: other deployments of the owner may mount them too.
    pub shared_claims: Vec<PersistentVolumeClaim>,
}

/// What runs a deployment's pods: a StatefulSet for services (`restartPolicy: Always`), a Job
/// for runs to completion (`OnFailure`, `Never`), which Kubernetes refuses in a StatefulSet.
#[derive(Debug, Clone, PartialEq)]
#[allow(clippy::large_enum_variant)] // One per deploy; boxing would only add noise.
pub enum Workload {
    /// Pods that keep running, each with its own claims.
    StatefulSet(StatefulSet),
    /// Pods that run to completion.
    Job(Job),
}

impl Workload {
    /// Its name (the deployment's base name).
    pub fn name(&self) -> &str {
        let meta = match self {
            Workload::StatefulSet(s) => &s.metadata,
            Workload::Job(j) => &j.metadata,
        };
        meta.name.as_deref().unwrap_or_default()
    }

    /// The template of its pods.
    pub fn pod_template(&self) -> Option<&PodTemplateSpec> {
        match self {
            Workload::StatefulSet(s) => s.spec.as_ref().map(|s| &s.template),
            Workload::Job(j) => j.spec.as_ref().map(|s| &s.template),
        }
    }
}

impl Objects {
    /// The StatefulSet, for a deployment whose pods keep running.
    pub fn stateful_set(&self) -> Option<&StatefulSet> {
        match &self.workload {
            Workload::StatefulSet(s) => Some(s),
            Workload::Job(_) => None,
        }
    }

    /// The Job, for a run to completion.
    pub fn job(&self) -> Option<&Job> {
        match &self.workload {
            Workload::Job(j) => Some(j),
            Workload::StatefulSet(_) => None,
        }
    }

    /// Stamps the workload with its record's `date_created` (see
    /// [`crate::names::RECORD_CREATED_ANNOTATION`]). Only the workload's own metadata: its pod
    /// template would restart the pods, and claim templates cannot change.
    pub fn stamp_record_created(&mut self, created: &str) {
        let meta = match &mut self.workload {
            Workload::StatefulSet(s) => &mut s.metadata,
            Workload::Job(j) => &mut j.metadata,
        };
        meta.annotations
            .get_or_insert_with(Default::default)
            .insert(crate::names::RECORD_CREATED_ANNOTATION.to_owned(), created.to_owned());
    }
}

/// Who a deployment is, for naming and labelling.
#[derive(Debug, Clone, Copy)]
pub struct Identity<'a> {
    /// The record id.
    pub id: &'a RecordId,
    /// The owner's user id.
    pub owner: &'a str,
}

/// Renders `deployment` into the objects to apply.
pub fn render(deployment: &Deployment, who: Identity<'_>, config: &RenderConfig) -> Objects {
    let names = Names::new(&config.name_prefix, who.id);
    let labels = labels(&names, who.id, who.owner);
    let ctx = Context {
        names: &names,
        labels: &labels,
        owner: who.owner,
        config,
        pod_user: deployment.spec.pod_security().fs_user,
    };
    let runs_to_completion = deployment.spec.restart_policy != crate::spec::RestartPolicy::Always;
    Objects {
        workload: if runs_to_completion {
            Workload::Job(job::render_job(&deployment.spec, &ctx))
        } else {
            Workload::StatefulSet(statefulset::render_stateful_set(&deployment.spec, &ctx))
        },
        claims: if runs_to_completion {
            job::render_claims(&deployment.spec, &ctx)
        } else {
            Vec::new()
        },
        services: service::render_services(&deployment.spec, &ctx),
        ingress: deployment
            .expose
            .as_ref()
            .and_then(|e| ingress::render_ingress(e, &ctx)),
        shared_claims: statefulset::render_shared_claims(&deployment.spec, &ctx),
        network_policy: network::render_network_policy(deployment.expose.as_ref(), &ctx),
    }
}

/// What every renderer needs.
struct Context<'a> {
    names: &'a Names,
    labels: &'a BTreeMap<String, String>,
    owner: &'a str,
    config: &'a RenderConfig,
    /// The pod-wide user (`fsUser`), which containers without a `user` run as.
    pod_user: Option<i64>,
}

impl Context<'_> {
    /// Metadata of an object named `name` with the deployment's labels.
    fn metadata(&self, name: &str) -> k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta {
        k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta {
            name: Some(name.to_owned()),
            namespace: Some(self.config.namespace.clone()),
            labels: Some(self.labels.clone()),
            ..Default::default()
        }
    }

    /// The claim of the owner's shared volume `volume`.
    fn shared_claim(&self, volume: &str) -> String {
        crate::names::shared_claim(&self.config.name_prefix, self.owner, volume)
    }
}

#[cfg(test)]
mod hostname_tests {
    use super::IngressConfig;

    #[test]
    fn reserved_and_punycode_hostnames_are_refused_unless_configured() {
        let config = IngressConfig::default();
        assert!(config.check_hostname("my-app").is_ok());
        assert!(config.check_hostname("www").is_err());
        assert!(config.check_hostname("LOCALHOST").is_err());
        let punycode = config.check_hostname("xn--80ak6aa92e").unwrap_err();
        assert_eq!(punycode.field, "exposed_hostname");
        let allowed = IngressConfig {
            allow_punycode: true,
            reserved_hostnames: Vec::new(),
            ..IngressConfig::default()
        };
        assert!(allowed.check_hostname("xn--80ak6aa92e").is_ok() && allowed.check_hostname("www").is_ok());
    }
}
