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
            "an Ingress path without a pathType",
            "Ingress",
            json!({"metadata": {"name": "no-path-type"}, "spec": {"rules": [{"host": "app.example.org", "http": {"paths": [
            {"path": "/", "backend": {"service": {"name": "web", "port": {"number": 80}}}}]}}]}}),
        ),
        (
            "Secret data that is not base64",
            "Secret",
            json!({"metadata": {"name": "not-base64"}, "data": {"a": "not base64!"}}),
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
/// a Service's IP family and cluster IP), each as (field, value) (`-` when absent).
async fn defaults(client: kube::Client) -> Vec<(String, String)> {
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
    seen.push(("Secret type".into(), show(&secret["type"])));
    let claim = created(
        "PersistentVolumeClaim",
        json!({"metadata": {"name": "plain"}, "spec": {
        "accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "1Gi"}}}}),
    )
    .await;
    seen.push((
        "PersistentVolumeClaim status.phase".into(),
        show(&claim["status"]["phase"]),
    ));
    let pod = created(
        "Pod",
        json!({"metadata": {"name": "plain"}, "spec": {"containers": [{"name": "c", "image": "x"}]}}),
    )
    .await;
    seen.push(("Pod status.phase".into(), show(&pod["status"]["phase"])));
    seen.push(("Pod status.qosClass".into(), show(&pod["status"]["qosClass"])));
    let service = created(
        "Service",
        json!({"metadata": {"name": "plain"}, "spec": {"ports": [{"port": 80}]}}),
    )
    .await;
    seen.push(("Service spec.ipFamilies".into(), show(&service["spec"]["ipFamilies"])));
    let assigned = service["spec"]["clusterIP"].as_str().is_some_and(|ip| !ip.is_empty());
    seen.push(("Service spec.clusterIP assigned".into(), assigned.to_string()));
    seen.push(("Service status".into(), service["status"].to_string()));
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
            "a pod's containers",
            "Pod",
            json!({"metadata": {"name": "changed"}, "spec": {"nodeSelector": {"nowhere": "true"},
            "containers": [{"name": "c", "image": "x"}]}}),
            json!({"spec": {"containers": [{"name": "c", "image": "x", "env": [{"name": "A", "value": "1"}]}]}}),
        ),
        (
            "a Service's cluster IP",
            "Service",
            json!({"metadata": {"name": "moved"}, "spec": {"ports": [{"port": 80}]}}),
            json!({"spec": {"clusterIP": "10.96.222.222", "clusterIPs": ["10.96.222.222"]}}),
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

/// Item 1: a finalizer added to an object being deleted (kube-apiserver: 422), then the
/// object's own finalizer removed (it goes).
async fn terminating_finalizers(client: kube::Client) -> Vec<(String, (u16, Vec<String>))> {
    let maps: Api<ConfigMap> = Api::namespaced(client, NAMESPACE);
    let held: ConfigMap =
        serde_json::from_value(json!({"metadata": {"name": "held", "finalizers": ["example.org/hold"]}})).unwrap();
    maps.create(&PostParams::default(), &held).await.unwrap();
    maps.delete("held", &DeleteParams::default()).await.unwrap();
    let finalizers = |list: &[&str]| Patch::Merge(json!({"metadata": {"finalizers": list}}));
    let mut seen = Vec::new();
    let added = maps
        .patch(
            "held",
            &PatchParams::default(),
            &finalizers(&["example.org/hold", "example.org/more"]),
        )
        .await;
    seen.push((
        "adding a finalizer to an object being deleted".to_owned(),
        answer_of(added),
    ));
    let removed = maps.patch("held", &PatchParams::default(), &finalizers(&[])).await;
    seen.push(("removing its last finalizer".to_owned(), answer_of(removed)));
    let gone = maps.get_opt("held").await.unwrap().is_none();
    seen.push(("it is gone at once".to_owned(), (u16::from(gone), Vec::new())));
    seen
}

/// Item 4: a namespace deleted with content in it: what the delete answers, what creating
/// into it answers while it terminates and once it is gone, and what it holds when made again.
async fn namespace_deletion(client: kube::Client) -> Vec<(String, String)> {
    const DOOMED: &str = "probe-doomed";
    let namespaces: Api<Namespace> = Api::all(client.clone());
    let namespace: Namespace = serde_json::from_value(json!({"metadata": {"name": DOOMED}})).unwrap();
    namespaces.create(&PostParams::default(), &namespace).await.unwrap();
    let maps: Api<ConfigMap> = Api::namespaced(client.clone(), DOOMED);
    let map = |name: &str| serde_json::from_value::<ConfigMap>(json!({"metadata": {"name": name}})).unwrap();
    maps.create(&PostParams::default(), &map("content")).await.unwrap();
    let mut seen = Vec::new();
    let answer = match namespaces
        .delete(DOOMED, &DeleteParams::default())
        .await
        .unwrap()
        .left()
    {
        Some(ns) => format!(
            "the namespace, phase {:?}, being deleted {}",
            ns.status.and_then(|s| s.phase),
            ns.metadata.deletion_timestamp.is_some()
        ),
        None => "a Status".to_owned(),
    };
    seen.push(("the delete answers".to_owned(), answer));
    let late = maps.create(&PostParams::default(), &map("late")).await;
    seen.push((
        "creating into it while it terminates".to_owned(),
        format!("{:?}", answer_of(late).0),
    ));
    let mut gone = false;
    for _ in 0..240 {
        if namespaces.get_opt(DOOMED).await.unwrap().is_none() {
            gone = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    seen.push(("it is gone within a minute".to_owned(), gone.to_string()));
    let missing = maps.create(&PostParams::default(), &map("late")).await;
    seen.push((
        "creating into it once gone".to_owned(),
        format!("{:?}", answer_of(missing).0),
    ));
    namespaces.create(&PostParams::default(), &namespace).await.unwrap();
    let mut left: Vec<String> = maps
        .list(&ListParams::default())
        .await
        .unwrap()
        .items
        .into_iter()
        .filter_map(|m| m.metadata.name)
        .filter(|name| name != "kube-root-ca.crt") // published into every namespace by kube-controller-manager
        .collect();
    left.sort();
    seen.push(("what it holds when made again".to_owned(), format!("{left:?}")));
    let _ = namespaces.delete(DOOMED, &DeleteParams::default()).await;
    seen
}

/// Item 9: an owner deleted with `propagationPolicy: Orphan`: what the delete answers, and
/// its dependent once the owner is gone.
async fn orphan_deletion(client: kube::Client) -> Vec<(String, String)> {
    let maps: Api<ConfigMap> = Api::namespaced(client, NAMESPACE);
    let owner: ConfigMap = serde_json::from_value(json!({"metadata": {"name": "owner"}})).unwrap();
    let owner = maps.create(&PostParams::default(), &owner).await.unwrap();
    let dependent: ConfigMap = serde_json::from_value(json!({"metadata": {"name": "dependent", "ownerReferences": [
        {"apiVersion": "v1", "kind": "ConfigMap", "name": "owner", "uid": owner.metadata.uid}]}}))
    .unwrap();
    maps.create(&PostParams::default(), &dependent).await.unwrap();
    let mut seen = Vec::new();
    let answer = match maps.delete("owner", &DeleteParams::orphan()).await.unwrap().left() {
        Some(map) => format!(
            "the object, finalizers {:?}, being deleted {}",
            map.metadata.finalizers.unwrap_or_default(),
            map.metadata.deletion_timestamp.is_some()
        ),
        None => "a Status".to_owned(),
    };
    seen.push(("the delete answers".to_owned(), answer));
    let mut gone = false;
    for _ in 0..120 {
        if maps.get_opt("owner").await.unwrap().is_none() {
            gone = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    seen.push(("the owner is gone within 30 s".to_owned(), gone.to_string()));
    let dependent = maps.get("dependent").await.unwrap();
    seen.push((
        "the dependent's owner references".to_owned(),
        format!("{}", dependent.metadata.owner_references.unwrap_or_default().len()),
    ));
    seen
}

/// Item 8: a paged list while its objects change, a list at an exact past version, a list
/// at a version not yet reached, and a watch from a version long gone.
async fn list_versions(client: kube::Client) -> Vec<(String, String)> {
    let maps: Api<ConfigMap> = Api::namespaced(client, NAMESPACE);
    let map = |name: &str| {
        serde_json::from_value::<ConfigMap>(json!({"metadata": {"name": name, "labels": {"paged": "yes"}}})).unwrap()
    };
    for name in ["page-a", "page-b", "page-c"] {
        maps.create(&PostParams::default(), &map(name)).await.unwrap();
    }
    let names = |list: kube::core::ObjectList<ConfigMap>| {
        list.items
            .into_iter()
            .filter_map(|m| m.metadata.name)
            .collect::<Vec<_>>()
    };
    let selected = ListParams::default().labels("paged=yes");
    let first = maps.list(&selected.clone().limit(1)).await.unwrap();
    let version = first.metadata.resource_version.clone().unwrap();
    let mut token = first.metadata.continue_.clone();
    let mut seen = vec![("the first page".to_owned(), format!("{:?}", names(first)))];
    maps.delete("page-c", &DeleteParams::default()).await.unwrap();
    maps.create(&PostParams::default(), &map("page-d")).await.unwrap();
    let mut rest = Vec::new();
    while let Some(next) = token.filter(|t| !t.is_empty()) {
        let page = maps
            .list(&selected.clone().limit(1).continue_token(&next))
            .await
            .unwrap();
        token = page.metadata.continue_.clone();
        rest.extend(names(page));
    }
    seen.push((
        "the pages after it, while objects come and go".to_owned(),
        format!("{rest:?}"),
    ));
    let exact = maps
        .list(&selected.clone().at(&version).matching(kube::api::VersionMatch::Exact))
        .await;
    seen.push((
        "a list at the first page's version, exactly".to_owned(),
        match exact {
            Ok(list) => format!("{:?}", names(list)),
            Err(error) => format!("{:?}", answer_of::<()>(Err(error)).0),
        },
    ));
    let future = (version.parse::<u64>().unwrap() + 1_000_000).to_string();
    let ahead_params = selected
        .clone()
        .at(&future)
        .matching(kube::api::VersionMatch::NotOlderThan);
    let ahead = maps.list(&ahead_params);
    let ahead = match tokio::time::timeout(Duration::from_secs(15), ahead).await {
        Ok(answer) => format!("{:?}", answer_of(answer).0),
        // kube-rs retries a 504 (kube-apiserver: after 3 s), so an answer that stays 504 is
        // no answer.
        Err(_) => "still no answer after 15 s".to_owned(),
    };
    seen.push(("a list at a version not reached yet".to_owned(), ahead));
    let old = async {
        match maps
            .watch(&WatchParams::default().labels("paged=yes").timeout(5), "1")
            .await
        {
            Err(error) => format!("{:?}", answer_of::<()>(Err(error)).0),
            Ok(stream) => match stream.boxed().try_next().await {
                Ok(Some(WatchEvent::Error(status))) => format!("an ERROR event, {}", status.code),
                Ok(Some(_)) => "objects".to_owned(),
                Ok(None) => "nothing".to_owned(),
                Err(error) => format!("{error}"),
            },
        }
    };
    let old = tokio::time::timeout(Duration::from_secs(15), old)
        .await
        .unwrap_or_else(|_| "no answer in 15 s".to_owned());
    seen.push(("a watch from resourceVersion 1".to_owned(), old));
    seen
}

/// Item 7: server-side applies kube-apiserver refuses, then what removing the last applied
/// label leaves and what field ownership an apply records.
async fn apply_answers(client: kube::Client) -> Vec<(String, String)> {
    let request = kube::core::Request::new(format!("/api/v1/namespaces/{NAMESPACE}/configmaps"));
    let apply = |name: &str, body: serde_json::Value| {
        request
            .patch(name, &PatchParams::apply("probe"), &Patch::Apply(body))
            .unwrap()
    };
    let mut seen = Vec::new();
    for (what, name, body) in [
        (
            "an unknown field",
            "applied-unknown",
            json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "applied-unknown"}, "colour": "red"}),
        ),
        (
            "a value of the wrong type",
            "applied-type",
            json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "applied-type"}, "data": {"a": 1}}),
        ),
        (
            "a name other than the URL's",
            "applied-url",
            json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "applied-body"}}),
        ),
        (
            "no apiVersion",
            "applied-bare",
            json!({"kind": "ConfigMap", "metadata": {"name": "applied-bare"}}),
        ),
    ] {
        let answer = client.request::<serde_json::Value>(apply(name, body)).await;
        seen.push((format!("applying {what}"), format!("{:?}", answer_of(answer))));
    }
    let labelled = json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "applied", "labels": {"a": "1"}}, "data": {"k": "v"}});
    let first: serde_json::Value = client.request(apply("applied", labelled)).await.unwrap();
    seen.push((
        "the fields an apply owns".to_owned(),
        first["metadata"]["managedFields"][0]["fieldsV1"].to_string(),
    ));
    let bare = json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "applied"}, "data": {"k": "v"}});
    let second: serde_json::Value = client.request(apply("applied", bare)).await.unwrap();
    seen.push((
        "the labels once the last applied one is dropped".to_owned(),
        second["metadata"]["labels"].to_string(),
    ));
    let maps: Api<ConfigMap> = Api::namespaced(client.clone(), NAMESPACE);
    let created: ConfigMap =
        serde_json::from_value(json!({"metadata": {"name": "created", "labels": {"a": "1"}}, "data": {"k": "v"}}))
            .unwrap();
    let created = serde_json::to_value(maps.create(&PostParams::default(), &created).await.unwrap()).unwrap();
    seen.push((
        "the fields a create owns".to_owned(),
        created["metadata"]["managedFields"][0]["fieldsV1"].to_string(),
    ));
    seen
}

/// Item 5: an apply on a StatefulSet's scale by a second manager, without and with force, and
/// the field ownership it leaves (manager, operation, subresource).
async fn scale_ownership(client: kube::Client) -> Vec<(String, String)> {
    let sets: Api<k8s_openapi::api::apps::v1::StatefulSet> = Api::namespaced(client, NAMESPACE);
    let set = json!({"apiVersion": "apps/v1", "kind": "StatefulSet", "metadata": {"name": "owned-scale"},
        "spec": {"selector": {"matchLabels": {"app": "owned-scale"}}, "serviceName": "owned-scale", "replicas": 0,
            "template": {"metadata": {"labels": {"app": "owned-scale"}}, "spec": {"containers": [{"name": "c", "image": "x"}]}}}});
    sets.patch("owned-scale", &PatchParams::apply("owner"), &Patch::Apply(set))
        .await
        .unwrap();
    let scale = json!({"apiVersion": "autoscaling/v1", "kind": "Scale", "metadata": {"name": "owned-scale"}, "spec": {"replicas": 1}});
    let mut seen = Vec::new();
    let answer = sets
        .patch_scale(
            "owned-scale",
            &PatchParams::apply("scaler"),
            &Patch::Apply(scale.clone()),
        )
        .await;
    seen.push((
        "applying the scale of another manager's replicas".to_owned(),
        format!("{:?}", answer_of(answer)),
    ));
    let answer = sets
        .patch_scale(
            "owned-scale",
            &PatchParams::apply("scaler").force(),
            &Patch::Apply(scale),
        )
        .await;
    seen.push(("the same, forced".to_owned(), format!("{:?}", answer_of(answer))));
    let set = sets.get("owned-scale").await.unwrap();
    // The StatefulSet controller's status entry comes when it gets to it: left out.
    let mut owners: Vec<String> = set
        .metadata
        .managed_fields
        .unwrap_or_default()
        .into_iter()
        .filter(|entry| entry.subresource.as_deref() != Some("status"))
        .map(|entry| {
            format!(
                "{} {} {}",
                entry.manager.unwrap_or_default(),
                entry.operation.unwrap_or_default(),
                entry.subresource.unwrap_or_default()
            )
        })
        .collect();
    owners.sort();
    seen.push(("who owns what afterwards".to_owned(), format!("{owners:?}")));
    seen
}

/// Item 10: Events written through `events.k8s.io/v1`: a complete one (and whether the core
/// API then reads it, with its note as the message), and one without what the API requires.
async fn new_api_events(client: kube::Client) -> Vec<(String, String)> {
    let (resource, api) = dynamic(client.clone(), "Event");
    let event = json!({"metadata": {"name": "written"}, "eventTime": "2026-12-04T10:00:00.000000Z",
        "regarding": {"apiVersion": "v1", "kind": "Pod", "name": "probe-pod", "namespace": NAMESPACE},
        "note": "written through events.k8s.io", "reason": "Probed", "type": "Normal", "action": "Probing",
        "reportingController": "example.org/probe", "reportingInstance": "probe-1"});
    let mut seen = Vec::new();
    let created = api
        .create(&PostParams::default(), &object_of(&resource, "Event", event))
        .await;
    seen.push((
        "creating a complete one".to_owned(),
        format!("{:?}", answer_of(created)),
    ));
    let core: Api<k8s_openapi::api::core::v1::Event> = Api::namespaced(client, NAMESPACE);
    let read = core
        .get("written")
        .await
        .map(|e| (e.message, e.reason, e.reporting_component));
    seen.push(("reading it as a core Event".to_owned(), format!("{read:?}")));
    let bare =
        json!({"metadata": {"name": "bare"}, "regarding": {"kind": "Pod", "name": "probe-pod"}, "type": "Normal"});
    let refused = api
        .create(&PostParams::default(), &object_of(&resource, "Event", bare))
        .await;
    seen.push((
        "creating one without its required fields".to_owned(),
        format!("{:?}", answer_of(refused)),
    ));
    let deleted = api.delete("written", &DeleteParams::default()).await.map(drop);
    seen.push(("deleting it".to_owned(), format!("{:?}", answer_of(deleted))));
    seen
}

/// Item 10: what reading a missing pod's logs answers with options kube-apiserver refuses
/// (422, before it looks for the pod), and with good ones (404).
async fn log_option_answers(client: kube::Client) -> Vec<(String, String)> {
    let mut seen = Vec::new();
    for (what, query) in [
        ("a negative tailLines", "tailLines=-1"),
        ("limitBytes 0", "limitBytes=0"),
        ("sinceSeconds 0", "sinceSeconds=0"),
        (
            "both sinceSeconds and sinceTime",
            "sinceSeconds=10&sinceTime=2026-12-04T10:00:00Z",
        ),
        (
            "good options",
            "tailLines=5&limitBytes=100&sinceTime=2026-12-04T10:00:00Z",
        ),
    ] {
        let request = http::Request::get(format!("/api/v1/namespaces/{NAMESPACE}/pods/no-such-pod/log?{query}"))
            .body(Vec::new())
            .unwrap();
        let answer = client.request_text(request).await;
        seen.push((format!("logs with {what}"), format!("{:?}", answer_of(answer).0)));
    }
    seen
}

/// Item 6: the status of a Job whose one pod ran to completion: which fields it has, and
/// its counts (`active`, `failed` left out at 0; `ready`, `terminating` written as 0).
async fn finished_job_status(client: kube::Client) -> Vec<(String, String)> {
    let jobs: Api<k8s_openapi::api::batch::v1::Job> = Api::namespaced(client, NAMESPACE);
    let job = serde_json::from_value(json!({"metadata": {"name": "finished"}, "spec": {"backoffLimit": 0,
        "template": {"spec": {"restartPolicy": "Never", "containers": [{"name": "c", "image": "x"}]}}}}))
    .unwrap();
    jobs.create(&PostParams::default(), &job).await.unwrap();
    let mut status = serde_json::Value::Null;
    for _ in 0..240 {
        let job = serde_json::to_value(jobs.get("finished").await.unwrap()).unwrap();
        let conditions = job["status"]["conditions"].as_array().cloned().unwrap_or_default();
        if conditions
            .iter()
            .any(|c| c["type"] == "Complete" && c["status"] == "True")
        {
            status = job["status"].clone();
            break;
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    let fields: Vec<String> = status
        .as_object()
        .into_iter()
        .flatten()
        .map(|(k, _)| k.clone())
        .collect();
    let counts: Vec<String> = ["active", "succeeded", "failed", "ready", "terminating"]
        .iter()
        .map(|field| format!("{field}={}", status[field]))
        .collect();
    vec![
        ("its status's fields".to_owned(), format!("{fields:?}")),
        ("its counts".to_owned(), format!("{counts:?}")),
    ]
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
        "Event" => ("events.k8s.io", "v1", "events"),
        other => panic!("no probe for {other}"),
    };
    let gvk = kube::core::GroupVersionKind::gvk(group, version, kind);
    let resource = kube::discovery::ApiResource::from_gvk_with_plural(&gvk, plural);
    let api = Api::namespaced_with(client, NAMESPACE, &resource);
    (resource, api)
}

/// A difference the probe accepts, from `known-differences.toml`.
#[derive(Debug, serde::Deserialize)]
struct Known {
    /// The question, as the probe names it.
    what: String,
    /// Why the simulator answers otherwise, and why that is acceptable.
    why: String,
}

#[derive(Debug, serde::Deserialize)]
struct KnownFile {
    #[serde(default)]
    probe: Vec<Known>,
}

/// The answers the two backends gave, compared question by question; a difference fails the
/// probe unless `known-differences.toml` explains it, and an explanation of nothing fails it too.
struct Verdicts {
    known: Vec<Known>,
    explained: Vec<bool>,
    unexplained: Vec<String>,
}

impl Verdicts {
    fn new() -> Self {
        let file: KnownFile =
            toml::from_str(include_str!("known-differences.toml")).expect("known-differences.toml parses");
        Self {
            explained: vec![false; file.probe.len()],
            known: file.probe,
            unexplained: Vec::new(),
        }
    }

    /// Compares what kube-apiserver and the simulator answered to `what`.
    fn compare(&mut self, what: &str, kubernetes: impl std::fmt::Debug, simulator: impl std::fmt::Debug) {
        let (kubernetes, simulator) = (format!("{kubernetes:?}"), format!("{simulator:?}"));
        if kubernetes == simulator {
            eprintln!("probe: the same: {what}: {kubernetes}");
            return;
        }
        match self.known.iter().position(|k| k.what == what) {
            Some(i) => self.explained[i] = true,
            None => self.unexplained.push(format!(
                "{what}:\n  kube-apiserver: {kubernetes}\n  simulator:      {simulator}"
            )),
        }
    }

    /// Compares answers given question by question, as `(question, answer)`.
    fn compare_each<T: std::fmt::Debug>(
        &mut self,
        topic: &str,
        kubernetes: Vec<(String, T)>,
        simulator: Vec<(String, T)>,
    ) {
        assert_eq!(kubernetes.len(), simulator.len(), "{topic}: as many answers");
        for ((what, real), (_, simulated)) in kubernetes.into_iter().zip(simulator) {
            self.compare(&format!("{topic}: {what}"), real, simulated);
        }
    }

    fn assert_none_unexplained(self) {
        let stale: Vec<String> = self
            .known
            .iter()
            .zip(&self.explained)
            .filter(|(_, used)| !**used)
            .map(|(k, _)| format!("{} ({})", k.what, k.why))
            .collect();
        assert!(
            self.unexplained.is_empty() && stale.is_empty(),
            "{} unexplained differences:\n\n{}\n\nentries of known-differences.toml that explain nothing any more:\n{}",
            self.unexplained.len(),
            self.unexplained.join("\n\n"),
            stale.join("\n")
        );
    }
}

/// `check`'s answers, or a failure naming it when it takes more than two minutes.
async fn within<T>(check: &str, answers: impl std::future::Future<Output = T>) -> T {
    let started = std::time::Instant::now();
    let answers = tokio::time::timeout(Duration::from_secs(120), answers)
        .await
        .unwrap_or_else(|_| panic!("{check}: no answer in two minutes"));
    eprintln!("probe: {check} in {:.1} s", started.elapsed().as_secs_f64());
    answers
}

/// What `check` answers on kube-apiserver, then on the simulator.
async fn both<F, T>(
    name: &str,
    check: impl Fn(kube::Client) -> F,
    real: &kube::Client,
    simulated: &kube::Client,
) -> (T, T)
where
    F: std::future::Future<Output = T>,
{
    let kubernetes = within(&format!("{name} on kube-apiserver"), check(real.clone())).await;
    let simulator = within(&format!("{name} on the simulator"), check(simulated.clone())).await;
    (kubernetes, simulator)
}

/// `(question, answer)` pairs from answers keyed by anything printable.
fn keyed<K: std::fmt::Display, T>(answers: Vec<(K, T)>) -> Vec<(String, T)> {
    answers.into_iter().map(|(k, v)| (k.to_string(), v)).collect()
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
        let mut verdicts = Verdicts::new();

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
        let kubernetes = within("selected_watch on kube-apiserver", selected_watch(real.clone())).await;
        assert_eq!(kubernetes, expected, "kube-apiserver");
        verdicts.compare(
            "item 2: a label-selected watch as an object leaves and enters",
            kubernetes,
            within("selected_watch on the simulator", selected_watch(simulated.clone())).await,
        );

        // Invalid objects are refused with 422, naming the same fields.
        for (what, kind, object) in invalid_objects() {
            let kubernetes = create_answer(real.clone(), kind, object.clone()).await;
            assert!(
                matches!(kubernetes.0, 400 | 422),
                "kube-apiserver refuses {what}: {kubernetes:?}"
            );
            let simulator = create_answer(simulated.clone(), kind, object).await;
            verdicts.compare(&format!("item 1: creating {what}"), kubernetes, simulator);
        }

        // Field selectors name only the fields each kind may be selected by; label selectors
        // hold valid keys and values.
        let kubernetes = within("selector_answers on kube-apiserver", selector_answers(real.clone())).await;
        assert!(kubernetes.iter().any(|(_, code)| *code == 400), "{kubernetes:?}");
        verdicts.compare_each(
            "item 3",
            kubernetes,
            within("selector_answers on the simulator", selector_answers(simulated.clone())).await,
        );

        // Changes kube-apiserver refuses.
        let kubernetes = within("update_answers on kube-apiserver", update_answers(real.clone())).await;
        assert!(kubernetes.iter().all(|(_, code, _)| *code == 422), "{kubernetes:?}");
        let answers = |seen: Vec<(String, u16, Vec<String>)>| {
            seen.into_iter()
                .map(|(what, code, fields)| (format!("changing {what}"), (code, fields)))
                .collect()
        };
        verdicts.compare_each(
            "item 1",
            answers(kubernetes),
            answers(within("update_answers on the simulator", update_answers(simulated.clone())).await),
        );

        // The scale subresource is conditional on the resourceVersion a write names.
        let kubernetes = within("scale_answers on kube-apiserver", scale_answers(real.clone())).await;
        assert_eq!(
            kubernetes.iter().map(|(code, _)| *code).collect::<Vec<_>>(),
            [200, 409],
            "{kubernetes:?}"
        );
        verdicts.compare(
            "item 5: a scale written with a current, then a stale resourceVersion",
            kubernetes,
            within("scale_answers on the simulator", scale_answers(simulated.clone())).await,
        );

        // Refusals answer kube-apiserver's status codes.
        verdicts.compare_each(
            "item 10",
            keyed(within("refusal_codes on kube-apiserver", refusal_codes(real.clone())).await),
            keyed(within("refusal_codes on the simulator", refusal_codes(simulated.clone())).await),
        );

        // What a delete answers: the object for pods and Services, a Status for others.
        let kubernetes = within("delete_answers on kube-apiserver", delete_answers(real.clone())).await;
        assert_eq!(
            kubernetes,
            [
                ("ConfigMap", "a Status"),
                ("Service", "the object"),
                ("Pod", "the object")
            ],
            "kube-apiserver"
        );
        verdicts.compare_each(
            "item 6: what deleting answers",
            keyed(kubernetes),
            keyed(within("delete_answers on the simulator", delete_answers(simulated.clone())).await),
        );

        // Questions answered question by question, each asked of both.
        let (kubernetes, simulator) = both("defaults", defaults, &real, &simulated).await;
        verdicts.compare_each("item 6: what a create fills in", kubernetes, simulator);
        let (kubernetes, simulator) = both("terminating_finalizers", terminating_finalizers, &real, &simulated).await;
        verdicts.compare_each("item 1", kubernetes, simulator);
        let (kubernetes, simulator) = both("namespace_deletion", namespace_deletion, &real, &simulated).await;
        verdicts.compare_each("item 4: a namespace deleted with content", kubernetes, simulator);
        let (kubernetes, simulator) = both("orphan_deletion", orphan_deletion, &real, &simulated).await;
        verdicts.compare_each("item 9: an orphaning delete", kubernetes, simulator);
        let (kubernetes, simulator) = both("list_versions", list_versions, &real, &simulated).await;
        verdicts.compare_each("item 8", kubernetes, simulator);
        let (kubernetes, simulator) = both("apply_answers", apply_answers, &real, &simulated).await;
        verdicts.compare_each("item 7", kubernetes, simulator);
        let (kubernetes, simulator) = both("scale_ownership", scale_ownership, &real, &simulated).await;
        verdicts.compare_each("item 5", kubernetes, simulator);
        let (kubernetes, simulator) = both("finished_job_status", finished_job_status, &real, &simulated).await;
        verdicts.compare_each("item 6: a Job run to completion", kubernetes, simulator);
        let (kubernetes, simulator) = both("log_option_answers", log_option_answers, &real, &simulated).await;
        verdicts.compare_each("item 10", kubernetes, simulator);
        let (kubernetes, simulator) = both("new_api_events", new_api_events, &real, &simulated).await;
        verdicts.compare_each("item 10: events.k8s.io writes", kubernetes, simulator);

        verdicts.assert_none_unexplained();
    });
}
