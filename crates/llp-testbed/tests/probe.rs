//! The differential probe through kube-rs: the same requests against the simulator and the
//! real control plane, and what came back compared where the service (its reflectors, its
//! writes) could notice a difference. Each check says what Kubernetes does; the simulator
//! must agree.

use futures::{StreamExt, TryStreamExt};
use k8s_openapi::api::core::v1::{ConfigMap, Namespace};
use kube::api::{Api, DeleteParams, ListParams, Patch, PatchParams, PostParams, WatchEvent, WatchParams};
use llp_sim::{ClusterSpec, SimOptions, Simulator, Timings};
use llp_testbed::{Options, Testbed};
use serde_json::json;
use std::time::Duration;

const NAMESPACE: &str = "probe";

async fn client(kubeconfig: &str) -> kube::Client {
    let kubeconfig = kube::config::Kubeconfig::from_yaml(kubeconfig).expect("a kubeconfig");
    let config = kube::Config::from_custom_kubeconfig(kubeconfig, &kube::config::KubeConfigOptions::default())
        .await
        .expect("a client configuration");
    let client = kube::Client::try_from(config).expect("a client");
    let namespace: Namespace = serde_json::from_value(json!({"metadata": {"name": NAMESPACE}})).unwrap();
    let _ = Api::<Namespace>::all(client.clone())
        .create(&PostParams::default(), &namespace)
        .await;
    client
}

/// What a watch selecting `probe=yes` reports while a ConfigMap is labelled in, out, in
/// again, then deleted: the event types, and the label the object of each carries.
async fn selected_watch(client: kube::Client) -> Vec<(String, String)> {
    let api: Api<ConfigMap> = Api::namespaced(client, NAMESPACE);
    let from = api
        .list(&ListParams::default().labels("probe=yes"))
        .await
        .unwrap()
        .metadata
        .resource_version
        .unwrap();
    let mut events = api
        .watch(&WatchParams::default().labels("probe=yes").timeout(30), &from)
        .await
        .unwrap()
        .boxed();
    let label = |value: &str| json!({"metadata": {"labels": {"probe": value}}});
    let created: ConfigMap =
        serde_json::from_value(json!({"metadata": {"name": "moving", "labels": {"probe": "yes"}}})).unwrap();
    api.create(&PostParams::default(), &created).await.unwrap();
    let merge = PatchParams::default();
    api.patch("moving", &merge, &Patch::Merge(label("no"))).await.unwrap();
    api.patch("moving", &merge, &Patch::Merge(label("no-still")))
        .await
        .unwrap();
    api.patch("moving", &merge, &Patch::Merge(label("yes"))).await.unwrap();
    api.delete("moving", &DeleteParams::default()).await.unwrap();
    let mut seen = Vec::new();
    while seen.len() < 4 {
        let next = tokio::time::timeout(Duration::from_secs(10), events.try_next())
            .await
            .expect("a watch event in time")
            .unwrap()
            .expect("the watch goes on");
        let (kind, object) = match next {
            WatchEvent::Added(o) => ("ADDED", o),
            WatchEvent::Modified(o) => ("MODIFIED", o),
            WatchEvent::Deleted(o) => ("DELETED", o),
            WatchEvent::Bookmark(_) => continue,
            WatchEvent::Error(e) => panic!("{e:?}"),
        };
        let probe = object
            .metadata
            .labels
            .unwrap_or_default()
            .remove("probe")
            .unwrap_or_default();
        seen.push((kind.to_owned(), probe));
    }
    seen
}

/// What creating `object` (a `kind` of the core or apps group) answers: 201, or the
/// failure's code and the fields its causes name.
async fn create_answer(client: kube::Client, kind: &str, object: serde_json::Value) -> (u16, Vec<String>) {
    let (resource, api) = dynamic(client, kind);
    let (code, fields) = answer_of(
        api.create(&PostParams::default(), &object_of(&resource, kind, object))
            .await,
    );
    // A create that goes through is a 201.
    (if code == 200 { 201 } else { code }, fields)
}

/// Objects kube-apiserver refuses as invalid that the service builds the parts of itself
/// (label values, data keys, resource requests and limits): each by kind, with why.
fn invalid_objects() -> Vec<(&'static str, &'static str, serde_json::Value)> {
    let pod = |name: &str, resources: serde_json::Value| json!({"metadata": {"name": name}, "spec": {"containers": [{"name": "c", "image": "x", "resources": resources}]}});
    vec![
        (
            "a GPU request unlike its limit",
            "Pod",
            pod(
                "gpu-unequal",
                json!({"requests": {"nvidia.com/gpu": "1"}, "limits": {"nvidia.com/gpu": "2"}}),
            ),
        ),
        (
            "a GPU request without a limit",
            "Pod",
            pod("gpu-no-limit", json!({"requests": {"nvidia.com/gpu": "1"}})),
        ),
        (
            "a CPU request above its limit",
            "Pod",
            pod("cpu-over", json!({"requests": {"cpu": "2"}, "limits": {"cpu": "1"}})),
        ),
        (
            "a label value with a space",
            "ConfigMap",
            json!({"metadata": {"name": "bad-label", "labels": {"env": "pro d"}}}),
        ),
        (
            "a label value too long",
            "ConfigMap",
            json!({"metadata": {"name": "long-label", "labels": {"env": "x".repeat(64)}}}),
        ),
        (
            "a data key with a slash",
            "ConfigMap",
            json!({"metadata": {"name": "bad-key"}, "data": {"a/b": "x"}}),
        ),
        (
            "a Service port above 65535",
            "Service",
            json!({"metadata": {"name": "big-port"}, "spec": {"ports": [{"port": 70000}]}}),
        ),
        (
            "an Ingress host with an underscore",
            "Ingress",
            json!({"metadata": {"name": "bad-host"}, "spec": {"rules": [{"host": "my_app.example.org"}]}}),
        ),
        (
            "a template's GPU request unlike its limit",
            "StatefulSet",
            json!({"metadata": {"name": "sts-gpu"}, "spec": {
            "selector": {"matchLabels": {"app": "g"}}, "serviceName": "g",
            "template": {"metadata": {"labels": {"app": "g"}}, "spec": {"containers": [{"name": "c", "image": "x",
                "resources": {"requests": {"nvidia.com/gpu": "1"}, "limits": {"nvidia.com/gpu": "2"}}}]}}}}),
        ),
    ]
}

/// What a create answers for objects written with nothing but what they need: the fields
/// the API server fills in at once (`type`, a claim's and a pod's phase, a pod's QoS class,
/// a Service's IP family), each as `field=value` (`-` when absent). (A Service's cluster IP
/// the simulator assigns a moment after the create, not in its answer.)
async fn defaults(client: kube::Client) -> Vec<String> {
    let mut seen = Vec::new();
    let created = |kind: &'static str, object: serde_json::Value| {
        let client = client.clone();
        async move {
            let (resource, api) = dynamic(client, kind);
            let object = object_of(&resource, kind, object);
            serde_json::to_value(api.create(&PostParams::default(), &object).await.unwrap()).unwrap()
        }
    };
    let show = |value: &serde_json::Value| match value {
        serde_json::Value::Null => "-".to_owned(),
        serde_json::Value::String(s) => s.clone(),
        other => other.to_string(),
    };
    let secret = created("Secret", json!({"metadata": {"name": "plain"}, "data": {"a": "eA=="}})).await;
    seen.push(format!("Secret type={}", show(&secret["type"])));
    let claim = created(
        "PersistentVolumeClaim",
        json!({"metadata": {"name": "plain"}, "spec": {
        "accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "1Gi"}}}}),
    )
    .await;
    seen.push(format!(
        "PersistentVolumeClaim status.phase={}",
        show(&claim["status"]["phase"])
    ));
    let pod = created(
        "Pod",
        json!({"metadata": {"name": "plain"}, "spec": {"containers": [{"name": "c", "image": "x"}]}}),
    )
    .await;
    seen.push(format!("Pod status.phase={}", show(&pod["status"]["phase"])));
    seen.push(format!("Pod status.qosClass={}", show(&pod["status"]["qosClass"])));
    let service = created(
        "Service",
        json!({"metadata": {"name": "plain"}, "spec": {"ports": [{"port": 80}]}}),
    )
    .await;
    seen.push(format!(
        "Service spec.ipFamilies={}",
        show(&service["spec"]["ipFamilies"])
    ));
    seen
}

/// What listing pods and events with each selector answers: the status code (200 or the
/// refusal's).
async fn selector_answers(client: kube::Client) -> Vec<(String, u16)> {
    let pods: Api<k8s_openapi::api::core::v1::Pod> = Api::namespaced(client.clone(), NAMESPACE);
    let events: Api<k8s_openapi::api::core::v1::Event> = Api::namespaced(client, NAMESPACE);
    let code = |result: Result<(), kube::Error>| match result {
        Ok(()) => 200,
        Err(kube::Error::Api(status)) => status.code,
        Err(other) => panic!("{other}"),
    };
    let mut seen = Vec::new();
    for fields in [
        "spec.nodeName=worker-1",
        "status.phase!=Running",
        "spec.containers=x",
        "metadata.uid=x",
    ] {
        let listed = pods.list(&ListParams::default().fields(fields)).await.map(drop);
        seen.push((format!("pods fieldSelector {fields}"), code(listed)));
    }
    for fields in ["involvedObject.kind=Pod,involvedObject.name=p", "message=x"] {
        let listed = events.list(&ListParams::default().fields(fields)).await.map(drop);
        seen.push((format!("events fieldSelector {fields}"), code(listed)));
    }
    for labels in ["app=web", "env in (a,b)", "env=pro d", "bad key!=x", "env=-x"] {
        let listed = pods.list(&ListParams::default().labels(labels)).await.map(drop);
        seen.push((format!("pods labelSelector {labels}"), code(listed)));
    }
    seen
}

/// What changing an object answers, each change of a fresh object: its kind, the object,
/// and the merge patch; the code and the fields the causes name.
async fn update_answers(client: kube::Client) -> Vec<(String, u16, Vec<String>)> {
    let changes: Vec<(&str, &str, serde_json::Value, serde_json::Value)> = vec![
        (
            "an immutable ConfigMap's data",
            "ConfigMap",
            json!({"metadata": {"name": "frozen"}, "immutable": true, "data": {"a": "1"}}),
            json!({"data": {"a": "2"}}),
        ),
        (
            "a Secret's type",
            "Secret",
            json!({"metadata": {"name": "typed"}, "type": "Opaque", "data": {"a": "eA=="}}),
            json!({"type": "example.org/custom"}),
        ),
    ];
    let mut seen = Vec::new();
    for (what, kind, object, change) in changes {
        let (resource, api) = dynamic(client.clone(), kind);
        let name = object["metadata"]["name"].as_str().unwrap().to_owned();
        api.create(&PostParams::default(), &object_of(&resource, kind, object))
            .await
            .unwrap();
        let (code, fields) = answer_of(api.patch(&name, &PatchParams::default(), &Patch::Merge(change)).await);
        seen.push((what.to_owned(), code, fields));
    }
    seen
}

/// What writing a StatefulSet's scale answers: with its current resourceVersion, then with
/// that one again once it is stale.
async fn scale_answers(client: kube::Client) -> Vec<(u16, Vec<String>)> {
    let sets: Api<k8s_openapi::api::apps::v1::StatefulSet> = Api::namespaced(client, NAMESPACE);
    let set: k8s_openapi::api::apps::v1::StatefulSet = serde_json::from_value(json!({
        "metadata": {"name": "scaled"},
        "spec": {"selector": {"matchLabels": {"app": "scaled"}}, "serviceName": "scaled", "replicas": 0,
            "template": {"metadata": {"labels": {"app": "scaled"}}, "spec": {"containers": [{"name": "c", "image": "x"}]}}},
    }))
    .unwrap();
    sets.create(&PostParams::default(), &set).await.unwrap();
    let scale = sets.get_scale("scaled").await.unwrap();
    let with_replicas = |replicas: i32| {
        let mut scale = scale.clone();
        scale.spec = Some(k8s_openapi::api::autoscaling::v1::ScaleSpec {
            replicas: Some(replicas),
        });
        scale
    };
    let mut seen = Vec::new();
    for replicas in [1, 2] {
        let answer = sets
            .replace_scale("scaled", &PostParams::default(), &with_replicas(replicas))
            .await;
        seen.push(answer_of(answer));
    }
    seen
}

/// The status codes of requests kube-apiserver refuses as unprocessable (422) or as a missing
/// resource (404): a JSON patch whose `test` fails, a delete with an unknown propagation
/// policy, an apply without a field manager, a scale to −1, an unknown core collection.
async fn refusal_codes(client: kube::Client) -> Vec<(&'static str, u16)> {
    let maps: Api<ConfigMap> = Api::namespaced(client.clone(), NAMESPACE);
    let map: ConfigMap = serde_json::from_value(json!({"metadata": {"name": "refused"}, "data": {"a": "1"}})).unwrap();
    let _ = maps.create(&PostParams::default(), &map).await;
    let code = |answer: Result<(), kube::Error>| match answer {
        Ok(()) => 200,
        Err(kube::Error::Api(status)) => status.code,
        Err(other) => panic!("{other}"),
    };
    let mut seen = Vec::new();
    let failing_test = http::Request::patch(format!("/api/v1/namespaces/{NAMESPACE}/configmaps/refused"))
        .header("content-type", "application/json-patch+json")
        .body(serde_json::to_vec(&json!([{"op": "test", "path": "/data/a", "value": "2"}])).unwrap())
        .unwrap();
    let answer = client.request::<serde_json::Value>(failing_test).await.map(|_| ());
    seen.push(("a JSON patch whose test fails", code(answer)));
    let request = kube::core::Request::new(format!("/api/v1/namespaces/{NAMESPACE}/configmaps"));
    let mut delete = request.delete("refused", &DeleteParams::default()).unwrap();
    *delete.body_mut() =
        serde_json::to_vec(&json!({"kind": "DeleteOptions", "apiVersion": "v1", "propagationPolicy": "Sideways"}))
            .unwrap();
    let answer = client.request::<serde_json::Value>(delete).await.map(|_| ());
    seen.push(("a delete with an unknown propagation policy", code(answer)));
    let apply = request
        .patch(
            "refused",
            &PatchParams::default(),
            &Patch::Apply(json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "refused"}})),
        )
        .unwrap();
    let answer = client.request::<serde_json::Value>(apply).await.map(|_| ());
    seen.push(("an apply without a field manager", code(answer)));
    let sets: Api<k8s_openapi::api::apps::v1::StatefulSet> = Api::namespaced(client.clone(), NAMESPACE);
    let set: k8s_openapi::api::apps::v1::StatefulSet = serde_json::from_value(json!({
        "metadata": {"name": "negative"},
        "spec": {"selector": {"matchLabels": {"app": "negative"}}, "serviceName": "negative", "replicas": 0,
            "template": {"metadata": {"labels": {"app": "negative"}}, "spec": {"containers": [{"name": "c", "image": "x"}]}}},
    }))
    .unwrap();
    let _ = sets.create(&PostParams::default(), &set).await;
    let answer = sets
        .patch_scale(
            "negative",
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"replicas": -1}})),
        )
        .await
        .map(|_| ());
    seen.push(("a scale to -1", code(answer)));
    let unknown = http::Request::get(format!("/api/v1/namespaces/{NAMESPACE}/widgets"))
        .body(Vec::new())
        .unwrap();
    let answer = client.request::<serde_json::Value>(unknown).await.map(|_| ());
    seen.push(("an unknown core collection", code(answer)));
    seen
}

/// What a delete answers, by kind: the object deleted, or a `Status` (kube-rs: `Left` or
/// `Right`).
async fn delete_answers(client: kube::Client) -> Vec<(&'static str, &'static str)> {
    let mut seen = Vec::new();
    for (kind, object) in [
        (
            "ConfigMap",
            json!({"metadata": {"name": "deleted"}, "data": {"a": "1"}}),
        ),
        (
            "Service",
            json!({"metadata": {"name": "deleted"}, "spec": {"ports": [{"port": 80}]}}),
        ),
        // Never scheduled (no node has the label): deleted at once, no kubelet involved.
        (
            "Pod",
            json!({"metadata": {"name": "deleted"}, "spec": {"nodeSelector": {"nowhere": "true"},
            "containers": [{"name": "c", "image": "x"}]}}),
        ),
    ] {
        let (resource, api) = dynamic(client.clone(), kind);
        api.create(&PostParams::default(), &object_of(&resource, kind, object))
            .await
            .unwrap();
        let answer = api.delete("deleted", &DeleteParams::default()).await.unwrap();
        seen.push((kind, if answer.is_left() { "the object" } else { "a Status" }));
    }
    seen
}

/// `object` as a `kind` of `resource`, ready to send.
fn object_of(
    resource: &kube::discovery::ApiResource,
    kind: &str,
    mut object: serde_json::Value,
) -> kube::core::DynamicObject {
    object["apiVersion"] = json!(resource.api_version);
    object["kind"] = json!(kind);
    serde_json::from_value(object).unwrap()
}

/// A write's answer: 200, or the failure's code and the fields its causes name, sorted.
fn answer_of<T>(answer: Result<T, kube::Error>) -> (u16, Vec<String>) {
    match answer {
        Ok(_) => (200, Vec::new()),
        Err(kube::Error::Api(status)) => {
            let mut fields: Vec<String> = status
                .details
                .map(|d| d.causes.into_iter().map(|c| c.field).collect())
                .unwrap_or_default();
            fields.sort();
            (status.code, fields)
        }
        Err(other) => panic!("{other}"),
    }
}

/// The dynamic API of `kind` in the probe's namespace.
fn dynamic(client: kube::Client, kind: &str) -> (kube::discovery::ApiResource, Api<kube::core::DynamicObject>) {
    let (group, version, plural) = match kind {
        "Pod" => ("", "v1", "pods"),
        "ConfigMap" => ("", "v1", "configmaps"),
        "Secret" => ("", "v1", "secrets"),
        "Service" => ("", "v1", "services"),
        "PersistentVolumeClaim" => ("", "v1", "persistentvolumeclaims"),
        "StatefulSet" => ("apps", "v1", "statefulsets"),
        "Ingress" => ("networking.k8s.io", "v1", "ingresses"),
        other => panic!("no probe for {other}"),
    };
    let gvk = kube::core::GroupVersionKind::gvk(group, version, kind);
    let resource = kube::discovery::ApiResource::from_gvk_with_plural(&gvk, plural);
    let api = Api::namespaced_with(client, NAMESPACE, &resource);
    (resource, api)
}

#[test]
fn the_simulator_answers_as_kube_apiserver_where_the_service_could_notice() {
    let testbed = Testbed::up(Options::default()).expect("the real control plane starts");
    let runtime = tokio::runtime::Runtime::new().unwrap();
    runtime.block_on(async {
        let sim = Simulator::start(SimOptions {
            cluster: ClusterSpec {
                timings: Timings::fast(),
                ..ClusterSpec::default()
            },
            ..SimOptions::default()
        })
        .await
        .expect("the simulator starts");
        let (simulated, real) = (
            client(&sim.kubeconfig(NAMESPACE)).await,
            client(&testbed.kubeconfig(NAMESPACE)).await,
        );

        // An object that leaves a watch's label selection is DELETED there (its content before
        // the change), and ADDED when it enters again: a reflector must not keep it.
        let expected: Vec<(String, String)> = [
            ("ADDED", "yes"),
            ("DELETED", "yes"),
            ("ADDED", "yes"),
            ("DELETED", "yes"),
        ]
        .map(|(kind, label)| (kind.to_owned(), label.to_owned()))
        .to_vec();
        assert_eq!(selected_watch(real.clone()).await, expected, "kube-apiserver");
        assert_eq!(selected_watch(simulated.clone()).await, expected, "the simulator");

        // Invalid objects are refused with 422, naming the same fields.
        for (what, kind, object) in invalid_objects() {
            let kubernetes = create_answer(real.clone(), kind, object.clone()).await;
            assert_eq!(kubernetes.0, 422, "kube-apiserver refuses {what}: {kubernetes:?}");
            let simulator = create_answer(simulated.clone(), kind, object).await;
            assert_eq!(simulator, kubernetes, "{what}: the simulator answers as kube-apiserver");
        }

        // Field selectors name only the fields each kind may be selected by; label selectors
        // hold valid keys and values.
        let kubernetes = selector_answers(real.clone()).await;
        assert!(kubernetes.iter().any(|(_, code)| *code == 400), "{kubernetes:?}");
        assert_eq!(selector_answers(simulated.clone()).await, kubernetes, "selectors");

        // Changes kube-apiserver refuses.
        let kubernetes = update_answers(real.clone()).await;
        assert!(kubernetes.iter().all(|(_, code, _)| *code == 422), "{kubernetes:?}");
        assert_eq!(update_answers(simulated.clone()).await, kubernetes, "changes");

        // The scale subresource is conditional on the resourceVersion a write names.
        let kubernetes = scale_answers(real.clone()).await;
        assert_eq!(
            kubernetes.iter().map(|(code, _)| *code).collect::<Vec<_>>(),
            [200, 409],
            "{kubernetes:?}"
        );
        assert_eq!(scale_answers(simulated.clone()).await, kubernetes, "scale");

        // Refusals answer kube-apiserver's status codes.
        let kubernetes = refusal_codes(real.clone()).await;
        assert_eq!(refusal_codes(simulated.clone()).await, kubernetes, "refusals");

        // What a delete answers: the object for pods and Services, a Status for others.
        let kubernetes = delete_answers(real.clone()).await;
        assert_eq!(
            kubernetes,
            [
                ("ConfigMap", "a Status"),
                ("Service", "the object"),
                ("Pod", "the object")
            ],
            "kube-apiserver"
        );
        assert_eq!(delete_answers(simulated.clone()).await, kubernetes, "deletes");

        // What a create fills in at once.
        let kubernetes = defaults(real.clone()).await;
        let simulator = defaults(simulated.clone()).await;
        assert_eq!(simulator, kubernetes, "the defaults of a create");
    });
}
