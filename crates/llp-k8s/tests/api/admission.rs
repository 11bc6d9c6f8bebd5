//! What our validation accepts, kube-apiserver accepts: every example and every shape of the
//! spec (each field at its limits, odd record ids, long names) is rendered and sent to the real
//! control plane as a server-side apply dry run (`dryRun=All`), which runs the API server's
//! full validation and admission without storing anything. A spec that passes our validation
//! but that Kubernetes refuses would be a deploy that fails half-way.

use k8s_openapi::api::apps::v1::StatefulSet;
use k8s_openapi::api::core::v1::{Namespace, Service};
use k8s_openapi::api::networking::v1::Ingress;
use kube::api::{Api, Patch, PatchParams, PostParams};
use llp_spec::{Identity, Limits, Objects, Record, RecordId, RenderConfig, Workload, render, validate_record};
use serde_json::json;

const OWNER: &str = "7c1e2d3f-0a1b-4c5d-8e9f-a0b1c2d3e4f5";

/// Specs at the edges of what validation allows.
const SHAPES: &[&str] = &[
    "containers: [{name: a, image: b}]",
    // Everything at once, at the default group's maxima.
    "replicas: 16\nrestartPolicy: Always\n\
     initContainers: [{name: init-db, image: 'busybox:1.36', command: [sh, -c, 'echo ready'], cpu: 1, memory: 0.1}]\n\
     containers:\n\
     - name: web\n  image: registry.example.org:5000/team/app@sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef\n\
       \x20 ports: [{name: http, port: 80}, {name: abcdefghijklmno, port: 65535}, {port: 1}]\n\
       \x20 cpu: 32\n  memory: 64\n  gpu: nvidia.com/gpu\n  gpuCount: 2\n\
       \x20 command: /bin/server\n  args: ['--flag=1', '']\n\
       \x20 environment: [{name: A_B, value: ''}, {name: TOKEN, fromSecret: token.key-1}, {name: MODE, fromConfig: MODE_2}]\n\
       \x20 user: 1000\n  group: 0\n  fsUser: 1000\n  fsGroup: 2000\n  changeGroupOnMismatch: true\n\
       \x20 volumeMounts: [{name: data, mountPath: /data}, {name: scratch, mountPath: /tmp/x, readOnly: true}, {name: big, mountPath: /big, type: ReadWriteMany}]\n\
     - {name: side, image: sidecar, memory: 0.5, gpu: nvidia.com/mig-1g.10gb}\n\
     volumes: [{name: data, size: 1Mi}, {name: scratch, emptyDir: {sizeLimit: 256}}, {name: big, size: 999Gi}, {name: unused, size: 5Gi}]",
    // Fractional memory that is not a whole number of MiB in Gi.
    "containers: [{name: a, image: b, memory: 0.3333}]",
    "containers: [{name: a, image: b, memory: 12.75, gpu: nvidia.com/mig-3g.40gb}]",
    // The longest names validation allows.
    "containers: [{name: abcdefghijklmnopqrstuvwxyz-abcdefghijklmnopqrstuvwxyz-012345678, image: b, ports: [{name: p, port: 8080}]}]\nvolumes: [{name: abcdefghijklmnopqrstuvwxyz-abcdefghijklmnopqrstuvwxyz-012345678, size: 1Gi}]",
    "replicas: 0\ncontainers: [{name: a, image: b, command: [python, train.py], args: ['--epochs', '10']}]",
];

/// Record ids as the LLP may have them: UUIDs, integers, and text that needs hashing.
const IDS: &[&str] = &[
    "3f2b8c1e-9a4d-4e6f-8b2a-1c3d5e7f9a0b",
    "42",
    "Mein Deployment für GPU/Training #1 — mit Umlauten und viel zu langem Namen, der gekürzt werden muss",
    "UPPER_case.id",
];

fn objects(id: &str, yaml: &str, hostname: Option<&str>, namespace: &str) -> Objects {
    let id = match id.parse::<i64>() {
        Ok(n) => RecordId::Int(n),
        Err(_) => RecordId::Text(id.into()),
    };
    let record = Record {
        id: Some(id.clone()),
        data: Some(yaml.into()),
        exposed_service: hostname.map(|_| "web".into()),
        exposed_port: hostname.map(|_| json!(80)),
        exposed_hostname: hostname.map(Into::into),
        ..Record::default()
    };
    let deployment = validate_record(&record, &Limits::default()).unwrap_or_else(|e| panic!("{yaml}: {e:?}"));
    let config = RenderConfig {
        namespace: namespace.into(),
        ..RenderConfig::default()
    };
    render(&deployment, Identity { id: &id, owner: OWNER }, &config)
}

async fn dry_run(client: &kube::Client, namespace: &str, objects: &Objects, what: &str) {
    let params = PatchParams::apply("llp-k8s").dry_run().force();
    let Objects {
        workload,
        claims,
        services,
        ingress,
        shared_claims,
        network_policy,
    } = objects;
    let name = |m: &kube::api::ObjectMeta| m.name.clone().unwrap();
    for claim in shared_claims.iter().chain(claims) {
        Api::<k8s_openapi::api::core::v1::PersistentVolumeClaim>::namespaced(client.clone(), namespace)
            .patch(&name(&claim.metadata), &params, &Patch::Apply(claim))
            .await
            .unwrap_or_else(|e| panic!("{what}: claim {} is refused: {e}", name(&claim.metadata)));
    }
    match workload {
        Workload::StatefulSet(sts) => drop(
            Api::<StatefulSet>::namespaced(client.clone(), namespace)
                .patch(&name(&sts.metadata), &params, &Patch::Apply(sts))
                .await
                .unwrap_or_else(|e| panic!("{what}: the StatefulSet is refused: {e}")),
        ),
        Workload::Job(job) => drop(
            Api::<k8s_openapi::api::batch::v1::Job>::namespaced(client.clone(), namespace)
                .patch(&name(&job.metadata), &params, &Patch::Apply(job))
                .await
                .unwrap_or_else(|e| panic!("{what}: the Job is refused: {e}")),
        ),
    }
    for service in services {
        Api::<Service>::namespaced(client.clone(), namespace)
            .patch(&name(&service.metadata), &params, &Patch::Apply(service))
            .await
            .unwrap_or_else(|e| panic!("{what}: Service {} is refused: {e}", name(&service.metadata)));
    }
    if let Some(ingress) = ingress {
        Api::<Ingress>::namespaced(client.clone(), namespace)
            .patch(&name(&ingress.metadata), &params, &Patch::Apply(ingress))
            .await
            .unwrap_or_else(|e| panic!("{what}: the Ingress is refused: {e}"));
    }
    if let Some(policy) = network_policy {
        Api::<k8s_openapi::api::networking::v1::NetworkPolicy>::namespaced(client.clone(), namespace)
            .patch(&name(&policy.metadata), &params, &Patch::Apply(policy))
            .await
            .unwrap_or_else(|e| panic!("{what}: the NetworkPolicy is refused: {e}"));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_spec_our_validation_accepts_kubernetes_accepts_too() {
    let client = crate::testbed::admin();
    let namespace = "admission";
    let ns: Namespace = serde_json::from_value(json!({"metadata": {"name": namespace}})).unwrap();
    let _ = Api::<Namespace>::all(client.clone())
        .create(&PostParams::default(), &ns)
        .await;

    let examples = [
        include_str!("../../../../examples/minimal.yaml"),
        include_str!("../../../../examples/seed.yaml"),
        include_str!("../../../../examples/gpu-training.yaml"),
        include_str!("../../../../examples/training-run.yaml"),
    ];
    for (i, yaml) in examples.iter().chain(SHAPES).enumerate() {
        for id in IDS {
            dry_run(
                &client,
                namespace,
                &objects(id, yaml, None, namespace),
                &format!("shape {i}, id {id:?}"),
            )
            .await;
        }
    }
    let record: Record = serde_json::from_str(include_str!("../../../../examples/record.json")).unwrap();
    let hostname = "a".repeat(63);
    for host in [record.exposed_hostname.as_deref().unwrap(), hostname.as_str(), "x"] {
        let objects = objects(IDS[2], record.data.as_deref().unwrap(), Some(host), namespace);
        dry_run(&client, namespace, &objects, &format!("record.json exposed as {host}")).await;
    }
}

/// A pod as its StatefulSet would create it, dry-run in `namespace`: what PodSecurity
/// admission (enforced per namespace label) says of it.
async fn pod_admitted(client: &kube::Client, namespace: &str, objects: &Objects) -> Result<(), String> {
    let template = objects.workload.pod_template().unwrap().clone();
    let pod = k8s_openapi::api::core::v1::Pod {
        metadata: kube::api::ObjectMeta {
            name: Some("pod-security-probe".into()),
            ..Default::default()
        },
        spec: template.spec,
        status: None,
    };
    Api::<k8s_openapi::api::core::v1::Pod>::namespaced(client.clone(), namespace)
        .create(
            &PostParams {
                dry_run: true,
                ..Default::default()
            },
            &pod,
        )
        .await
        .map(drop)
        .map_err(|e| e.to_string())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_pods_pass_pod_security_baseline_and_restricted_with_run_as_non_root() {
    let client = crate::testbed::admin();
    for level in ["baseline", "restricted"] {
        let ns: Namespace = serde_json::from_value(json!({"metadata": {"name": format!("pss-{level}"),
            "labels": {"pod-security.kubernetes.io/enforce": level}}}))
        .unwrap();
        let _ = Api::<Namespace>::all(client.clone())
            .create(&PostParams::default(), &ns)
            .await;
    }
    let yaml = include_str!("../../../../examples/training-run.yaml");
    let default = objects(IDS[0], yaml, None, "pss-baseline");
    pod_admitted(&client, "pss-baseline", &default)
        .await
        .expect("baseline, as rendered by default");
    let refused = pod_admitted(&client, "pss-restricted", &default).await;
    assert!(
        refused.unwrap_err().contains("runAsNonRoot"),
        "restricted needs run_as_non_root"
    );

    let record = Record {
        id: Some(RecordId::Text(IDS[0].into())),
        data: Some(yaml.into()),
        ..Record::default()
    };
    let deployment = validate_record(&record, &Limits::default()).unwrap();
    let config = RenderConfig {
        namespace: "pss-restricted".into(),
        run_as_non_root: true,
        ..RenderConfig::default()
    };
    let id = RecordId::Text(IDS[0].into());
    let restricted = render(&deployment, Identity { id: &id, owner: OWNER }, &config);
    pod_admitted(&client, "pss-restricted", &restricted)
        .await
        .expect("restricted, with run_as_non_root");
}
