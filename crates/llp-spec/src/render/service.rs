//! One Service per app container that has ports, selecting the deployment's pods.

use super::Context;
use crate::names::selector;
use crate::spec::Spec;
use k8s_openapi::api::core::v1::{Service, ServicePort, ServiceSpec};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;

/// Renders the Services `<base>-<container>`.
pub(super) fn render_services(spec: &Spec, ctx: &Context<'_>) -> Vec<Service> {
    spec.containers
        .iter()
        .filter(|c| !c.ports.is_empty())
        .map(|c| Service {
            metadata: ctx.metadata(&ctx.names.service(&c.name)),
            spec: Some(ServiceSpec {
                selector: Some(selector(ctx.names)),
                ports: Some(
                    c.ports
                        .iter()
                        .map(|p| ServicePort {
                            name: Some(p.name.clone()),
                            port: i32::from(p.port),
                            target_port: Some(IntOrString::Int(i32::from(p.port))),
                            protocol: Some("TCP".into()),
                            ..Default::default()
                        })
                        .collect(),
                ),
                ..Default::default()
            }),
            status: None,
        })
        .collect()
}
