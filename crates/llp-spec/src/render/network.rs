//! The deployment's NetworkPolicy: its pods take connections only from each other and, when
//! it is exposed, from the ingress controller to the exposed port. Every tenant shares one
//! namespace, so without it any user's pod could reach any other's Services (and the
//! service's own). It takes effect where the cluster's network plugin enforces policies.

use super::Context;
use crate::names::selector;
use crate::record::Exposure;
use k8s_openapi::api::networking::v1::{
    NetworkPolicy, NetworkPolicyIngressRule, NetworkPolicyPeer, NetworkPolicyPort, NetworkPolicySpec,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use std::collections::BTreeMap;

/// Renders the NetworkPolicy `<base>`, unless policies are switched off.
pub(super) fn render_network_policy(expose: Option<&Exposure>, ctx: &Context<'_>) -> Option<NetworkPolicy> {
    let config = &ctx.config.network_policy;
    if !config.enabled {
        return None;
    }
    let own_pods = LabelSelector {
        match_labels: Some(selector(ctx.names)),
        ..Default::default()
    };
    let mut ingress = vec![NetworkPolicyIngressRule {
        from: Some(vec![NetworkPolicyPeer {
            pod_selector: Some(own_pods.clone()),
            ..Default::default()
        }]),
        ports: None,
    }];
    if let Some(expose) = expose.filter(|e| e.hostname.is_some()) {
        ingress.push(NetworkPolicyIngressRule {
            from: Some(vec![NetworkPolicyPeer {
                namespace_selector: Some(LabelSelector {
                    match_labels: Some(BTreeMap::from([(
                        "kubernetes.io/metadata.name".to_owned(),
                        config.ingress_namespace.clone(),
                    )])),
                    ..Default::default()
                }),
                ..Default::default()
            }]),
            ports: Some(vec![NetworkPolicyPort {
                port: Some(IntOrString::Int(i32::from(expose.port))),
                protocol: Some("TCP".into()),
                end_port: None,
            }]),
        });
    }
    Some(NetworkPolicy {
        metadata: ctx.metadata(ctx.names.base()),
        spec: Some(NetworkPolicySpec {
            pod_selector: Some(own_pods),
            policy_types: Some(vec!["Ingress".into()]),
            ingress: Some(ingress),
            egress: None,
        }),
    })
}
