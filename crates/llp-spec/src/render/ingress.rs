//! The Ingress of an exposed deployment: `<hostname>.<domain>` to one container's port.

use super::Context;
use crate::record::Exposure;
use k8s_openapi::api::networking::v1::{
    HTTPIngressPath, HTTPIngressRuleValue, Ingress, IngressBackend, IngressRule, IngressServiceBackend, IngressSpec,
    IngressTLS, ServiceBackendPort,
};

/// Renders the Ingress `<base>`, or nothing when the deployment has no hostname.
pub(super) fn render_ingress(expose: &Exposure, ctx: &Context<'_>) -> Option<Ingress> {
    let hostname = expose.hostname.as_ref()?;
    let ingress = &ctx.config.ingress;
    let host = format!("{hostname}.{}", ingress.domain);
    let mut metadata = ctx.metadata(ctx.names.base());
    metadata.annotations = (!ingress.annotations.is_empty()).then(|| ingress.annotations.clone());
    let backend = IngressBackend {
        service: Some(IngressServiceBackend {
            name: ctx.names.service(&expose.service),
            port: Some(ServiceBackendPort {
                number: Some(i32::from(expose.port)),
                name: None,
            }),
        }),
        resource: None,
    };
    Some(Ingress {
        metadata,
        spec: Some(IngressSpec {
            ingress_class_name: ingress.class.clone(),
            rules: Some(vec![IngressRule {
                host: Some(host.clone()),
                http: Some(HTTPIngressRuleValue {
                    paths: vec![HTTPIngressPath {
                        path: Some("/".into()),
                        path_type: "Prefix".into(),
                        backend,
                    }],
                }),
            }]),
            tls: ingress.tls.then(|| {
                vec![IngressTLS {
                    hosts: Some(vec![host]),
                    secret_name: Some(ctx.names.tls_secret()),
                }]
            }),
            default_backend: None,
        }),
        status: None,
    })
}
