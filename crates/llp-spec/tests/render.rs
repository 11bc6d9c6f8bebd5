//! Rendering: whole objects as insta snapshots, plus targeted asserts on what SPEC section 4
//! names exactly (names, labels, resources, references).

use k8s_openapi::api::core::v1::Container;
use llp_spec::names::{APP_LABEL, DEPLOYMENT_LABEL, MANAGED_BY, OWNER_LABEL};
use llp_spec::{Identity, Limits, Objects, Record, RecordId, RenderConfig, Workload, render, validate_record};

const UUID: &str = "3f2b8c1e-9a4d-4e6f-8b2a-1c3d5e7f9a0b";
const OWNER: &str = "7c1e2d3f-0a1b-4c5d-8e9f-a0b1c2d3e4f5";

fn record(yaml: &str) -> Record {
    Record {
        id: Some(RecordId::Text(UUID.into())),
        data: Some(yaml.into()),
        ..Record::default()
    }
}

fn render_record(record: &Record) -> Objects {
    let deployment = validate_record(record, &Limits::default()).expect("valid record");
    let id = record.id.clone().expect("id");
    render(
        &deployment,
        Identity { id: &id, owner: OWNER },
        &RenderConfig::default(),
    )
}

/// Every object as JSON values, in apply order, for one snapshot per case.
fn all_objects(objects: &Objects) -> Vec<serde_json::Value> {
    let Objects {
        workload,
        claims,
        services,
        ingress,
        shared_claims,
        network_policy,
    } = objects;
    let mut all: Vec<serde_json::Value> = shared_claims
        .iter()
        .chain(claims)
        .map(|c| serde_json::to_value(c).unwrap())
        .collect();
    all.push(match workload {
        Workload::StatefulSet(sts) => serde_json::to_value(sts).unwrap(),
        Workload::Job(job) => serde_json::to_value(job).unwrap(),
    });
    all.extend(services.iter().map(|s| serde_json::to_value(s).unwrap()));
    all.extend(ingress.iter().map(|i| serde_json::to_value(i).unwrap()));
    all.extend(network_policy.iter().map(|p| serde_json::to_value(p).unwrap()));
    all
}

fn exposed_record() -> Record {
    serde_json::from_str(include_str!("../../../examples/record.json")).expect("example record")
}

fn containers(objects: &Objects) -> &[Container] {
    &objects
        .stateful_set()
        .unwrap()
        .spec
        .as_ref()
        .unwrap()
        .template
        .spec
        .as_ref()
        .unwrap()
        .containers
}

#[test]
fn snapshot_minimal() {
    insta::assert_yaml_snapshot!(all_objects(&render_record(&record(include_str!(
        "../../../examples/minimal.yaml"
    )))));
}

#[test]
fn snapshot_seed_example() {
    insta::assert_yaml_snapshot!(all_objects(&render_record(&record(include_str!(
        "../../../examples/seed.yaml"
    )))));
}

#[test]
fn snapshot_gpu_training() {
    insta::assert_yaml_snapshot!(all_objects(&render_record(&record(include_str!(
        "../../../examples/gpu-training.yaml"
    )))));
}

#[test]
fn snapshot_training_run() {
    insta::assert_yaml_snapshot!(all_objects(&render_record(&record(include_str!(
        "../../../examples/training-run.yaml"
    )))));
}

#[test]
fn snapshot_exposed() {
    insta::assert_yaml_snapshot!(all_objects(&render_record(&exposed_record())));
}

#[test]
fn every_object_carries_the_four_labels() {
    let objects = render_record(&exposed_record());
    let base = format!("sd-{UUID}");
    for object in all_objects(&objects) {
        let labels = &object["metadata"]["labels"];
        assert_eq!(labels[MANAGED_BY.0], MANAGED_BY.1, "{object}");
        assert_eq!(labels[DEPLOYMENT_LABEL], UUID);
        assert_eq!(labels[OWNER_LABEL], OWNER);
        assert_eq!(labels[APP_LABEL], base.as_str());
        assert_eq!(object["metadata"]["namespace"], "services");
    }
    let template_labels = objects
        .stateful_set()
        .unwrap()
        .spec
        .as_ref()
        .unwrap()
        .template
        .metadata
        .as_ref()
        .unwrap()
        .labels
        .clone();
    assert_eq!(
        template_labels.unwrap()[APP_LABEL],
        base,
        "pods are selected by the app label"
    );
}

#[test]
fn names_follow_the_base_name() {
    let objects = render_record(&exposed_record());
    let base = format!("sd-{UUID}");
    assert_eq!(
        objects.stateful_set().unwrap().metadata.name.as_deref(),
        Some(base.as_str())
    );
    assert_eq!(
        objects.services[0].metadata.name.as_deref(),
        Some(format!("{base}-web").as_str())
    );
    let ingress = objects.ingress.expect("ingress for a hostname");
    let rule = &ingress.spec.as_ref().unwrap().rules.as_ref().unwrap()[0];
    assert_eq!(rule.host.as_deref(), Some("my-nginx-service.llp.example.org"));
    let backend = rule.http.as_ref().unwrap().paths[0].backend.service.as_ref().unwrap();
    assert_eq!(backend.name, format!("{base}-web"));
    assert_eq!(backend.port.as_ref().unwrap().number, Some(80));
}

#[test]
fn no_hostname_means_no_ingress() {
    let mut record = exposed_record();
    record.exposed_hostname = None;
    assert!(render_record(&record).ingress.is_none());
}

#[test]
fn only_containers_with_ports_get_a_service() {
    let yaml = "containers:\n  - {name: web, image: x, ports: [{port: 80}]}\n  - {name: worker, image: y}\n";
    let objects = render_record(&record(yaml));
    let names: Vec<_> = objects
        .services
        .iter()
        .map(|s| s.metadata.name.clone().unwrap())
        .collect();
    assert_eq!(names, vec![format!("sd-{UUID}-web")]);
}

#[test]
fn requests_equal_limits_and_include_the_gpu() {
    let objects = render_record(&record(include_str!("../../../examples/gpu-training.yaml")));
    let resources = containers(&objects)[0].resources.clone().unwrap();
    assert_eq!(resources.limits, resources.requests);
    let limits = resources.limits.unwrap();
    assert_eq!(limits["cpu"].0, "8");
    assert_eq!(limits["memory"].0, "32Gi");
    assert_eq!(limits["nvidia.com/mig-2g.20gb"].0, "2");
}

#[test]
fn secrets_and_config_are_referenced_by_the_base_name() {
    let objects = render_record(&record(include_str!("../../../examples/gpu-training.yaml")));
    let env = containers(&objects)[0].env.clone().unwrap();
    let secret = env[0].value_from.as_ref().unwrap().secret_key_ref.as_ref().unwrap();
    assert_eq!(
        (secret.name.as_str(), secret.key.as_str()),
        (format!("sd-{UUID}").as_str(), "wandb-key")
    );
    let config = env[1].value_from.as_ref().unwrap().config_map_key_ref.as_ref().unwrap();
    assert_eq!(
        (config.name.as_str(), config.key.as_str()),
        (format!("sd-{UUID}").as_str(), "dataset")
    );
}

#[test]
fn containers_are_locked_down() {
    let objects = render_record(&record(include_str!("../../../examples/seed.yaml")));
    let pod = objects
        .stateful_set()
        .unwrap()
        .spec
        .as_ref()
        .unwrap()
        .template
        .spec
        .clone()
        .unwrap();
    assert_eq!(pod.enable_service_links, Some(false));
    let security = pod.containers[0].security_context.clone().unwrap();
    assert_eq!(security.allow_privilege_escalation, Some(false));
    assert_eq!(security.capabilities.unwrap().drop, Some(vec!["ALL".to_owned()]));
    assert_eq!((security.run_as_user, security.run_as_group), (Some(1000), Some(1000)));
    let pod_security = pod.security_context.unwrap();
    assert_eq!(pod_security.fs_group, Some(1000));
    assert_eq!(pod_security.fs_group_change_policy.as_deref(), Some("OnRootMismatch"));
    assert_eq!(pod.node_selector.unwrap()["node-role.kubernetes.io/worker"], "worker");
}

#[test]
fn per_replica_volumes_become_claim_templates_and_scratch_dirs_memory() {
    let objects = render_record(&record(
        "containers: [{name: a, image: i, volumeMounts: [{name: data, mountPath: /d}, {name: scratch, mountPath: /s}]}]\n\
         volumes: [{name: data, size: 2Gi}, {name: scratch, emptyDir: {sizeLimit: 128}}]\n",
    ));
    let spec = objects.stateful_set().unwrap().spec.clone().unwrap();
    let claims = spec.volume_claim_templates.unwrap();
    assert_eq!(claims.len(), 1);
    assert_eq!(claims[0].metadata.name.as_deref(), Some("data"));
    let claim = claims[0].spec.clone().unwrap();
    assert_eq!(claim.access_modes, Some(vec!["ReadWriteOnce".to_owned()]));
    assert_eq!(claim.resources.unwrap().requests.unwrap()["storage"].0, "2Gi");
    let volumes = spec.template.spec.unwrap().volumes.unwrap();
    let scratch = volumes[0].empty_dir.clone().unwrap();
    assert_eq!(
        (scratch.medium.as_deref(), scratch.size_limit.map(|q| q.0)),
        (Some("Memory"), Some("128Mi".to_owned()))
    );
    assert!(objects.shared_claims.is_empty());
}

#[test]
fn a_shared_volume_is_one_claim_of_the_owner_mounted_by_every_pod() {
    let objects = render_record(&record(include_str!("../../../examples/gpu-training.yaml")));
    let spec = objects.stateful_set().unwrap().spec.clone().unwrap();
    assert!(spec.volume_claim_templates.is_none(), "no claim per replica");
    let name = llp_spec::names::shared_claim("sd-", OWNER, "datasets");
    let [claim] = objects.shared_claims.as_slice() else {
        panic!("one shared claim: {:?}", objects.shared_claims)
    };
    assert_eq!(claim.metadata.name.as_deref(), Some(name.as_str()));
    let labels = claim.metadata.labels.clone().unwrap();
    assert_eq!(labels["llp.kitegg.de/owner"], OWNER);
    assert_eq!(labels["llp.kitegg.de/shared-volume"], "datasets");
    assert!(
        !labels.contains_key("llp.kitegg.de/deployment") && !labels.contains_key("app"),
        "the owner's, not the deployment's: {labels:?}"
    );
    let claim_spec = claim.spec.clone().unwrap();
    assert_eq!(claim_spec.access_modes, Some(vec!["ReadWriteMany".to_owned()]));
    assert_eq!(claim_spec.resources.unwrap().requests.unwrap()["storage"].0, "200Gi");
    let volumes = spec.template.spec.unwrap().volumes.unwrap();
    let shared = volumes.iter().find(|v| v.name == "datasets").unwrap();
    assert_eq!(shared.persistent_volume_claim.as_ref().unwrap().claim_name, name);
}

#[test]
fn config_shapes_the_objects() {
    let record = exposed_record();
    let deployment = validate_record(&record, &Limits::default()).unwrap();
    let mut config = RenderConfig {
        namespace: "lab".into(),
        storage_class: Some("ceph".into()),
        ..RenderConfig::default()
    };
    config.ingress.class = Some("nginx".into());
    config.ingress.tls = false;
    config
        .ingress
        .annotations
        .insert("cert-manager.io/cluster-issuer".into(), "letsencrypt".into());
    let id = record.id.clone().unwrap();
    let objects = render(&deployment, Identity { id: &id, owner: OWNER }, &config);
    let ingress = objects.ingress.unwrap();
    assert_eq!(ingress.metadata.namespace.as_deref(), Some("lab"));
    assert_eq!(
        ingress.metadata.annotations.unwrap()["cert-manager.io/cluster-issuer"],
        "letsencrypt"
    );
    let spec = ingress.spec.unwrap();
    assert_eq!(spec.ingress_class_name.as_deref(), Some("nginx"));
    assert!(spec.tls.is_none());
}

#[test]
fn only_pods_asking_for_a_gpu_tolerate_the_gpu_taint() {
    let tolerations = |yaml: &str| {
        let objects = render_record(&record(yaml));
        objects
            .stateful_set()
            .unwrap()
            .spec
            .clone()
            .unwrap()
            .template
            .spec
            .unwrap()
            .tolerations
    };
    assert_eq!(tolerations("containers: [{name: a, image: b}]"), None);
    let gpu =
        tolerations("containers: [{name: a, image: b}, {name: t, image: c, gpu: nvidia.com/mig-1g.10gb}]").unwrap();
    assert_eq!(gpu.len(), 1);
    assert_eq!(
        (
            gpu[0].key.as_deref(),
            gpu[0].operator.as_deref(),
            gpu[0].effect.as_deref()
        ),
        (Some("nvidia.com/gpu"), Some("Exists"), Some("NoSchedule"))
    );
}

#[test]
fn a_run_to_completion_is_a_job_whose_volumes_are_one_claim_each() {
    let objects = render_record(&record(
        "containers: [{name: train, image: trainer, volumeMounts: [{name: ckpt, mountPath: /ckpt}, \
         {name: data, mountPath: /data, type: ReadWriteMany}]}]\n\
         volumes: [{name: ckpt, size: 5Gi}, {name: data, size: 1Gi}]\nreplicas: 2\nrestartPolicy: Never\n",
    ));
    assert!(
        objects.stateful_set().is_none(),
        "Kubernetes refuses a StatefulSet that does not restart"
    );
    let job = objects.job().expect("a Job");
    let base = format!("sd-{UUID}");
    assert_eq!(job.metadata.name.as_deref(), Some(base.as_str()));
    let spec = job.spec.clone().unwrap();
    assert_eq!(
        (spec.parallelism, spec.completions, spec.backoff_limit),
        (Some(2), Some(2), Some(3))
    );
    assert!(spec.selector.is_none(), "the API server generates it");
    let pod = spec.template.spec.unwrap();
    assert_eq!(pod.restart_policy.as_deref(), Some("Never"));
    let claim_of = |volume: &str| {
        let v = pod.volumes.iter().flatten().find(|v| v.name == volume).unwrap();
        v.persistent_volume_claim.as_ref().unwrap().claim_name.clone()
    };
    assert_eq!(claim_of("ckpt"), format!("ckpt-{base}"));
    assert_eq!(claim_of("data"), llp_spec::names::shared_claim("sd-", OWNER, "data"));
    let [claim] = objects.claims.as_slice() else {
        panic!("one claim of the Job: {:?}", objects.claims)
    };
    assert_eq!(claim.metadata.name.as_deref(), Some(format!("ckpt-{base}").as_str()));
    assert_eq!(claim.metadata.labels.as_ref().unwrap()[DEPLOYMENT_LABEL], UUID);
    assert_eq!(objects.shared_claims.len(), 1);
}

#[test]
fn pods_get_the_runtimes_seccomp_profile_and_run_as_non_root_when_configured() {
    let deployment = validate_record(&record("containers: [{name: a, image: b}]"), &Limits::default()).unwrap();
    let id = RecordId::Text(UUID.into());
    let security = |config: &RenderConfig, deployment: &llp_spec::Deployment| {
        let objects = render(deployment, Identity { id: &id, owner: OWNER }, config);
        objects
            .workload
            .pod_template()
            .unwrap()
            .spec
            .clone()
            .unwrap()
            .security_context
            .unwrap()
    };
    let default = security(&RenderConfig::default(), &deployment);
    assert_eq!(default.seccomp_profile.unwrap().type_, "RuntimeDefault");
    assert_eq!(default.run_as_non_root, None);
    let strict = RenderConfig {
        run_as_non_root: true,
        ..RenderConfig::default()
    };
    assert_eq!(security(&strict, &deployment).run_as_non_root, Some(true));
    // A group allowed root that asks for it is not refused by its own pod's context.
    let root = Limits {
        allow_root: true,
        ..Limits::default()
    };
    let as_root = validate_record(&record("containers: [{name: a, image: b, user: 0}]"), &root).unwrap();
    assert_eq!(security(&strict, &as_root).run_as_non_root, None);
}

#[test]
fn a_network_policy_lets_in_its_own_pods_and_the_ingress_controller_to_the_exposed_port() {
    let exposed = render_record(&exposed_record());
    let spec = exposed.network_policy.unwrap().spec.unwrap();
    let rules = spec.ingress.unwrap();
    assert_eq!(rules.len(), 2);
    let own = rules[0].from.clone().unwrap()[0].pod_selector.clone().unwrap();
    assert_eq!(own, spec.pod_selector.unwrap(), "its own pods, and only those");
    let ingress = &rules[1];
    let namespace = ingress.from.clone().unwrap()[0].namespace_selector.clone().unwrap();
    assert_eq!(
        namespace.match_labels.unwrap()["kubernetes.io/metadata.name"],
        "ingress-nginx"
    );
    let port = ingress.ports.clone().unwrap()[0].port.clone().unwrap();
    assert_eq!(port, k8s_openapi::apimachinery::pkg::util::intstr::IntOrString::Int(80));

    let internal = render_record(&record("containers: [{name: a, image: b, ports: [{port: 80}]}]"));
    assert_eq!(
        internal.network_policy.unwrap().spec.unwrap().ingress.unwrap().len(),
        1,
        "no way in from outside"
    );
    let mut off = RenderConfig::default();
    off.network_policy.enabled = false;
    let deployment = validate_record(&exposed_record(), &Limits::default()).unwrap();
    let id = RecordId::Text(UUID.into());
    assert!(
        render(&deployment, Identity { id: &id, owner: OWNER }, &off)
            .network_policy
            .is_none()
    );
}

#[test]
fn containers_that_may_start_as_root_get_back_the_capabilities_such_images_need() {
    let id = RecordId::Text(UUID.into());
    let added = |yaml: &str, config: &RenderConfig| -> Vec<Option<Vec<String>>> {
        let deployment = validate_record(&record(yaml), &Limits::default()).unwrap();
        let objects = render(&deployment, Identity { id: &id, owner: OWNER }, config);
        let template = objects.workload.pod_template().unwrap();
        template
            .spec
            .as_ref()
            .unwrap()
            .containers
            .iter()
            .map(|c| {
                let capabilities = c.security_context.as_ref().unwrap().capabilities.as_ref().unwrap();
                assert_eq!(capabilities.drop.as_deref(), Some(["ALL".to_owned()].as_slice()));
                capabilities.add.clone()
            })
            .collect()
    };
    let defaults = RenderConfig::default();
    let root_set = Some(defaults.root_capabilities.clone());
    assert!(root_set.as_ref().unwrap().contains(&"NET_BIND_SERVICE".to_owned()));
    // nginx starts as root: it gets them; a container with its own user does not need them.
    assert_eq!(
        added(
            "containers: [{name: a, image: nginx}, {name: b, image: b, user: 1000}]",
            &defaults
        ),
        [root_set.clone(), None]
    );
    // The pod-wide user (`fsUser`) counts too.
    assert_eq!(
        added(
            "containers: [{name: a, image: b, fsUser: 1000}, {name: c, image: c}]",
            &defaults
        ),
        [None, None]
    );
    // Under run_as_non_root (Pod Security "restricted") nothing comes back.
    let restricted = RenderConfig {
        run_as_non_root: true,
        ..RenderConfig::default()
    };
    assert_eq!(added("containers: [{name: a, image: nginx}]", &restricted), [None]);
}

#[test]
fn root_capabilities_beyond_pod_security_baseline_are_refused() {
    assert_eq!(RenderConfig::default().check(), Ok(()));
    let config = RenderConfig {
        root_capabilities: vec!["CHOWN".into(), "SYS_ADMIN".into()],
        ..RenderConfig::default()
    };
    let problem = config.check().unwrap_err();
    assert!(
        problem.contains("SYS_ADMIN") && problem.contains("baseline"),
        "{problem}"
    );
}
