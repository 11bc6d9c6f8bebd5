//! Fidelity with kube-rs: typed requests, the errors the API server returns, patches, watches
//! (resumed, and expired with 410), a reflector, logs and the scale subresource.

mod common;

use common::{TestSim, manifest};
use futures::{StreamExt, TryStreamExt};
use k8s_openapi::api::apps::v1::StatefulSet;
use k8s_openapi::api::core::v1::{ConfigMap, Pod};
use kube::api::{Api, DeleteParams, ListParams, LogParams, Patch, PatchParams, PostParams, WatchEvent, WatchParams};
use kube::runtime::{WatchStreamExt, reflector, watcher};
use llp_sim::{ClusterSpec, SimOptions, Timings};
use serde_json::json;
use std::time::Duration;

fn config_map(name: &str, labels: serde_json::Value) -> ConfigMap {
    serde_json::from_value(json!({"metadata": {"name": name, "labels": labels}, "data": {"k": "v"}})).unwrap()
}

fn api_error(error: kube::Error) -> (u16, String) {
    match error {
        kube::Error::Api(status) => (status.code, status.reason),
        other => panic!("expected an API error, got {other:?}"),
    }
}

#[tokio::test]
async fn typed_crud_and_the_api_servers_errors() {
    let t = TestSim::start().await;
    let cms: Api<ConfigMap> = Api::namespaced(t.client().await, "services");
    let created = cms
        .create(&PostParams::default(), &config_map("a", json!({"team": "x"})))
        .await
        .unwrap();
    assert!(created.metadata.uid.is_some() && created.metadata.resource_version.is_some());
    cms.create(&PostParams::default(), &config_map("b", json!({"team": "y"})))
        .await
        .unwrap();

    let listed = cms.list(&ListParams::default().labels("team in (x)")).await.unwrap();
    assert_eq!(listed.items.len(), 1);
    assert_eq!(listed.items[0].metadata.name.as_deref(), Some("a"));

    assert_eq!(
        api_error(
            cms.create(&PostParams::default(), &config_map("a", json!({})))
                .await
                .unwrap_err()
        ),
        (409, "AlreadyExists".into())
    );
    assert_eq!(
        api_error(cms.get("missing").await.unwrap_err()),
        (404, "NotFound".into())
    );
    assert_eq!(
        api_error(
            cms.create(&PostParams::default(), &config_map("Not_Valid", json!({})))
                .await
                .unwrap_err()
        ),
        (422, "Invalid".into())
    );

    let mut stale = created.clone();
    cms.patch(
        "a",
        &PatchParams::default(),
        &Patch::Merge(json!({"data": {"k": "changed"}})),
    )
    .await
    .unwrap();
    stale.data = Some([("k".to_owned(), "mine".to_owned())].into());
    assert_eq!(
        api_error(cms.replace("a", &PostParams::default(), &stale).await.unwrap_err()),
        (409, "Conflict".into())
    );

    cms.delete("a", &DeleteParams::default()).await.unwrap();
    assert_eq!(api_error(cms.get("a").await.unwrap_err()).0, 404);
}

#[tokio::test]
async fn server_side_apply_with_a_field_manager_prunes_dropped_fields() {
    let t = TestSim::start().await;
    let cms: Api<ConfigMap> = Api::namespaced(t.client().await, "services");
    let params = PatchParams::apply("llp-k8s").force();
    let first =
        json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c"}, "data": {"a": "1", "b": "2"}});
    cms.patch("c", &params, &Patch::Apply(&first)).await.unwrap();
    let second = json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c"}, "data": {"a": "1"}});
    let applied = cms.patch("c", &params, &Patch::Apply(&second)).await.unwrap();
    assert_eq!(applied.data.unwrap().into_keys().collect::<Vec<_>>(), ["a"]);
    let strategic = cms
        .patch(
            "c",
            &PatchParams::default(),
            &Patch::Strategic(json!({"data": {"z": "9"}})),
        )
        .await
        .unwrap();
    assert_eq!(strategic.data.unwrap().len(), 2);
}

/// kube-rs's watcher and kubectl list 500 at a time: a list is paged with `limit` and
/// `continue`, every page at the first page's resourceVersion.
#[tokio::test]
async fn lists_are_paged_with_limit_and_continue() {
    let t = TestSim::start().await;
    let client = t.client().await;
    let maps: Api<ConfigMap> = Api::namespaced(client.clone(), "services");
    for n in 0..5 {
        let map: ConfigMap = serde_json::from_value(json!({"metadata": {"name": format!("m{n}")}})).unwrap();
        maps.create(&PostParams::default(), &map).await.unwrap();
    }
    let first = maps.list(&ListParams::default().limit(2)).await.unwrap();
    let version = first.metadata.resource_version.clone();
    assert_eq!(first.items.len(), 2);
    assert_eq!(first.metadata.remaining_item_count, Some(3));
    let (mut names, mut token) = (Vec::new(), first.metadata.continue_.clone());
    names.extend(first.items.into_iter().filter_map(|m| m.metadata.name));
    while let Some(next) = token.filter(|t| !t.is_empty()) {
        let page = maps
            .list(&ListParams::default().limit(2).continue_token(&next))
            .await
            .unwrap();
        assert_eq!(
            page.metadata.resource_version, version,
            "every page at the first one's version"
        );
        names.extend(page.items.into_iter().filter_map(|m| m.metadata.name));
        token = page.metadata.continue_;
    }
    assert_eq!(names, ["m0", "m1", "m2", "m3", "m4"]);
    let refused = maps
        .list(&ListParams::default().limit(2).continue_token("garbage"))
        .await;
    assert!(matches!(refused, Err(kube::Error::Api(status)) if status.code == 400));
    // A watcher pages its first list and sees every object.
    let (reader, writer) = reflector::store();
    let stream = reflector::reflector(writer, watcher(maps.clone(), watcher::Config::default().page_size(2)));
    tokio::spawn(stream.applied_objects().for_each(|_| async {}));
    tokio::time::timeout(Duration::from_secs(10), reader.wait_until_ready())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(reader.state().len(), 5);
}

/// A metadata-only list or get (`as=PartialObjectMetadataList`) is answered as
/// kube-apiserver answers it: metadata only, no data.
#[tokio::test]
async fn metadata_only_requests_get_metadata_only() {
    let t = TestSim::start().await;
    let client = t.client().await;
    let maps: Api<ConfigMap> = Api::namespaced(client.clone(), "services");
    let map: ConfigMap =
        serde_json::from_value(json!({"metadata": {"name": "m", "labels": {"a": "b"}}, "data": {"k": "v"}})).unwrap();
    maps.create(&PostParams::default(), &map).await.unwrap();
    let request = kube::core::Request::new("/api/v1/namespaces/services/configmaps");
    let list: serde_json::Value = client
        .request(request.list_metadata(&ListParams::default().limit(1)).unwrap())
        .await
        .unwrap();
    assert_eq!(
        (&list["kind"], &list["apiVersion"]),
        (&json!("PartialObjectMetadataList"), &json!("meta.k8s.io/v1"))
    );
    let item = &list["items"][0];
    assert_eq!(item["kind"], "PartialObjectMetadata");
    assert_eq!(item["metadata"]["labels"]["a"], "b");
    assert!(item.get("data").is_none(), "{item}");
    let got: serde_json::Value = client
        .request(request.get_metadata("m", &kube::api::GetParams::default()).unwrap())
        .await
        .unwrap();
    assert_eq!(got["kind"], "PartialObjectMetadata");
    assert!(got.get("data").is_none(), "{got}");
    let listed = maps.list_metadata(&ListParams::default()).await.unwrap();
    assert_eq!(listed.items[0].metadata.name.as_deref(), Some("m"));
}

#[tokio::test]
async fn a_watch_resumes_from_a_resource_version() {
    let t = TestSim::start().await;
    let cms: Api<ConfigMap> = Api::namespaced(t.client().await, "services");
    let first = cms
        .create(&PostParams::default(), &config_map("one", json!({})))
        .await
        .unwrap();
    let from = first.metadata.resource_version.unwrap();
    cms.create(&PostParams::default(), &config_map("two", json!({})))
        .await
        .unwrap();
    cms.delete("one", &DeleteParams::default()).await.unwrap();

    let mut events = cms
        .watch(&WatchParams::default().timeout(5), &from)
        .await
        .unwrap()
        .boxed();
    let mut seen = Vec::new();
    while seen.len() < 2 {
        match events.try_next().await.unwrap().expect("events") {
            WatchEvent::Added(cm) => seen.push(format!("added {}", cm.metadata.name.unwrap())),
            WatchEvent::Deleted(cm) => seen.push(format!("deleted {}", cm.metadata.name.unwrap())),
            other => panic!("unexpected {other:?}"),
        }
    }
    assert_eq!(seen, ["added two", "deleted one"]);
}

#[tokio::test]
async fn a_too_old_resource_version_is_gone() {
    let cluster = ClusterSpec {
        timings: Timings::fast(),
        ..ClusterSpec::default()
    };
    let sim = llp_sim::Simulator::start(SimOptions {
        cluster,
        history: 5,
        ..SimOptions::default()
    })
    .await
    .unwrap();
    let t = common::TestSim::from_simulator(sim);
    let cms: Api<ConfigMap> = Api::namespaced(t.client().await, "services");
    let first = cms
        .create(&PostParams::default(), &config_map("first", json!({})))
        .await
        .unwrap();
    for i in 0..10 {
        cms.create(&PostParams::default(), &config_map(&format!("n{i}"), json!({})))
            .await
            .unwrap();
    }
    let mut events = cms
        .watch(
            &WatchParams::default().timeout(5),
            &first.metadata.resource_version.unwrap(),
        )
        .await
        .unwrap()
        .boxed();
    match events.try_next().await.unwrap() {
        Some(WatchEvent::Error(status)) => assert_eq!((status.code, status.reason.as_str()), (410, "Expired")),
        other => panic!("expected 410, got {other:?}"),
    }
}

#[tokio::test]
async fn a_watcher_whose_version_was_compacted_lists_again() {
    let cluster = ClusterSpec {
        timings: Timings {
            compaction: Duration::from_millis(100),
            ..Timings::fast()
        },
        ..ClusterSpec::default()
    };
    let sim = llp_sim::Simulator::start(SimOptions {
        cluster,
        ..SimOptions::default()
    })
    .await
    .unwrap();
    let t = common::TestSim::from_simulator(sim);
    let client = t.client().await;
    let maps: Api<ConfigMap> = Api::namespaced(client.clone(), "services");
    // Each watch ends after a second, before any bookmark would move its version on.
    let mut events = watcher(maps.clone(), watcher::Config::default().timeout(1)).boxed();
    let (mut lists, mut gone, mut seen_late) = (0, false, false);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    while lists < 2 || !seen_late {
        let event = tokio::time::timeout_at(deadline, events.next())
            .await
            .expect("a second list, with what was made meanwhile, within 20 s")
            .expect("the watcher goes on");
        let event = match event {
            Err(watcher::Error::WatchError(status)) if status.code == 410 => {
                gone = true;
                continue;
            }
            other => other.unwrap(),
        };
        match event {
            watcher::Event::Init => lists += 1,
            watcher::Event::InitDone if lists == 1 => {
                // Other kinds move the version on while the configmaps' watch is quiet; two
                // compactions later its version is gone.
                let secrets: Api<k8s_openapi::api::core::v1::Secret> = Api::namespaced(client.clone(), "services");
                let secret = serde_json::from_value(json!({"metadata": {"name": "mover"}})).unwrap();
                secrets.create(&PostParams::default(), &secret).await.unwrap();
                tokio::time::sleep(Duration::from_millis(400)).await;
                maps.create(&PostParams::default(), &config_map("late", json!({})))
                    .await
                    .unwrap();
            }
            watcher::Event::InitApply(map) | watcher::Event::Apply(map) => {
                seen_late |= map.metadata.name.as_deref() == Some("late");
            }
            _ => {}
        }
    }
    assert!(gone, "the second list followed a 410");
}

#[tokio::test]
async fn a_reflector_follows_pods_of_a_stateful_set_to_running() {
    let t = TestSim::start().await;
    let client = t.client().await;
    let pods: Api<Pod> = Api::namespaced(client.clone(), "services");
    let (reader, writer) = reflector::store();
    let stream = reflector(writer, watcher(pods, watcher::Config::default().labels("app=refl"))).applied_objects();
    let task = tokio::spawn(stream.for_each(|_| async {}));

    let sets: Api<StatefulSet> = Api::namespaced(client.clone(), "services");
    let sts: StatefulSet =
        serde_saphyr::from_str(manifest("refl", "nginx:1.27", 2).split("---").next().unwrap()).unwrap();
    sets.create(&PostParams::default(), &sts).await.unwrap();

    let running = tokio::time::timeout(Duration::from_secs(20), async {
        loop {
            let state = reader.state();
            if state.len() == 2
                && state
                    .iter()
                    .all(|p| p.status.as_ref().and_then(|s| s.phase.as_deref()) == Some("Running"))
            {
                return;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    })
    .await;
    task.abort();
    assert!(
        running.is_ok(),
        "the reflector saw {:?}",
        reader
            .state()
            .iter()
            .map(|p| p.metadata.name.clone())
            .collect::<Vec<_>>()
    );
}

#[tokio::test]
async fn logs_and_scale_through_kube() {
    let t = TestSim::start().await;
    let client = t.client().await;
    let sets: Api<StatefulSet> = Api::namespaced(client.clone(), "services");
    let sts: StatefulSet =
        serde_saphyr::from_str(manifest("kl", "nginx:1.27", 1).split("---").next().unwrap()).unwrap();
    sets.create(&PostParams::default(), &sts).await.unwrap();
    let pods: Api<Pod> = Api::namespaced(client.clone(), "services");
    let logs = tokio::time::timeout(Duration::from_secs(20), async {
        loop {
            if let Ok(text) = pods
                .logs(
                    "kl-0",
                    &LogParams {
                        tail_lines: Some(5),
                        timestamps: true,
                        ..LogParams::default()
                    },
                )
                .await
                && !text.is_empty()
            {
                return text;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    })
    .await
    .expect("logs appear");
    assert!(logs.contains("main started"), "{logs}");
    // limitBytes cuts the output; sinceTime leaves out what came before it.
    let limited = pods
        .logs(
            "kl-0",
            &LogParams {
                limit_bytes: Some(10),
                ..LogParams::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(limited.len(), 10, "{limited}");
    assert!(
        logs.contains(&limited[..4]) || logs.contains(limited.trim()),
        "{limited} is the log's start"
    );
    let request = http::Request::get(format!(
        "/api/v1/namespaces/services/pods/kl-0/log?sinceTime={}",
        jiff::Timestamp::now() + jiff::SignedDuration::from_hours(1)
    ))
    .body(Vec::new())
    .unwrap();
    assert_eq!(
        client.request_text(request).await.unwrap(),
        "",
        "nothing after an hour from now"
    );
    // Options are checked before the pod is looked for, as kube-apiserver checks them: 422.
    for query in [
        "tailLines=-1",
        "limitBytes=0",
        "sinceSeconds=0",
        "sinceSeconds=5&sinceTime=2026-01-01T00:00:00Z",
    ] {
        let request = http::Request::get(format!("/api/v1/namespaces/services/pods/nobody/log?{query}"))
            .body(Vec::new())
            .unwrap();
        let error = client.request_text(request).await.unwrap_err();
        assert_eq!(api_error(error).0, 422, "{query}");
    }

    let scale = sets
        .patch_scale(
            "kl",
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"replicas": 3}})),
        )
        .await
        .unwrap();
    assert_eq!(scale.spec.unwrap().replicas, Some(3));
    assert_eq!(sets.get("kl").await.unwrap().spec.unwrap().replicas, Some(3));
}

#[tokio::test]
async fn events_are_served_in_both_apis() {
    let t = TestSim::start().await;
    let client = t.client().await;
    let sets: Api<StatefulSet> = Api::namespaced(client.clone(), "services");
    let sts: StatefulSet =
        serde_saphyr::from_str(manifest("ev", "nginx:1.27", 1).split("---").next().unwrap()).unwrap();
    sets.create(&PostParams::default(), &sts).await.unwrap();
    let events: Api<k8s_openapi::api::events::v1::Event> = Api::namespaced(client.clone(), "services");
    let found = tokio::time::timeout(Duration::from_secs(20), async {
        loop {
            let list = events
                .list(&ListParams::default().fields("regarding.name=ev-0"))
                .await
                .unwrap();
            if list.items.iter().any(|e| e.reason.as_deref() == Some("Started")) {
                return list;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    })
    .await
    .expect("events appear");
    assert!(
        found
            .items
            .iter()
            .all(|e| e.regarding.as_ref().and_then(|r| r.name.as_deref()) == Some("ev-0"))
    );
    let core: Api<k8s_openapi::api::core::v1::Event> = Api::namespaced(client, "services");
    assert!(
        !core
            .list(&ListParams::default().fields("involvedObject.name=ev-0"))
            .await
            .unwrap()
            .items
            .is_empty()
    );
}

#[tokio::test]
async fn the_status_mapping_reads_the_simulators_objects() {
    use k8s_openapi::api::core::v1::PersistentVolumeClaim;
    let t = TestSim::start().await;
    let client = t.client().await;
    let sets: Api<StatefulSet> = Api::namespaced(client.clone(), "services");
    let sts: StatefulSet =
        serde_saphyr::from_str(manifest("st", "example/crash:1", 1).split("---").next().unwrap()).unwrap();
    sets.create(&PostParams::default(), &sts).await.unwrap();
    // Read as the service's caches read them.
    let cached_sets: Api<llp_spec::status::CachedStatefulSet> = Api::namespaced(client.clone(), "services");
    let pods: Api<llp_spec::status::CachedPod> = Api::namespaced(client.clone(), "services");
    let claims: Api<PersistentVolumeClaim> = Api::namespaced(client.clone(), "services");
    let status = tokio::time::timeout(Duration::from_secs(20), async {
        loop {
            let sts = cached_sets.get("st").await.unwrap();
            let pods = pods.list(&ListParams::default().labels("app=st")).await.unwrap().items;
            let claims = claims
                .list(&ListParams::default().labels("app=st"))
                .await
                .unwrap()
                .items;
            let status = llp_spec::status::from_objects(&sts, &pods, &claims, None);
            if status
                .pods
                .first()
                .and_then(|p| p.containers.first())
                .and_then(|c| c.reason.as_deref())
                == Some("CrashLoopBackOff")
            {
                return status;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    })
    .await
    .expect("the pod crash-loops");
    let container = &status.pods[0].containers[0];
    assert!(
        container.message.as_deref().unwrap().contains("exited with code 1"),
        "{container:?}"
    );
    assert_eq!(status.volumes[0].name, "data");
    assert_eq!(status.volumes[0].phase, "Bound");
    assert_eq!(status.volumes[0].capacity.as_deref(), Some("1Gi"));
}

fn job(name: &str, image: &str, parallelism: u32, restart: &str) -> k8s_openapi::api::batch::v1::Job {
    serde_json::from_value(json!({
        "metadata": {"name": name},
        "spec": {"parallelism": parallelism, "completions": parallelism, "backoffLimit": 1,
            "template": {"metadata": {"labels": {"app": name}},
                "spec": {"restartPolicy": restart, "containers": [{"name": "train", "image": image}]}}},
    }))
    .unwrap()
}

async fn job_until(
    jobs: &Api<k8s_openapi::api::batch::v1::Job>,
    name: &str,
    done: impl Fn(&k8s_openapi::api::batch::v1::JobStatus) -> bool,
) -> k8s_openapi::api::batch::v1::JobStatus {
    tokio::time::timeout(Duration::from_secs(10), async {
        loop {
            let status = jobs.get(name).await.unwrap().status.unwrap_or_default();
            if done(&status) {
                return status;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    })
    .await
    .unwrap_or_else(|_| panic!("job {name} did not get there"))
}

fn has(status: &k8s_openapi::api::batch::v1::JobStatus, kind: &str) -> bool {
    status
        .conditions
        .iter()
        .flatten()
        .any(|c| c.type_ == kind && c.status == "True")
}

#[tokio::test]
async fn a_job_runs_its_pods_to_completion_or_fails_after_its_backoff_limit() {
    let t = TestSim::start_with(ClusterSpec {
        timings: Timings::fast(),
        ..ClusterSpec::default()
    })
    .await;
    let client = t.client().await;
    let jobs: Api<k8s_openapi::api::batch::v1::Job> = Api::namespaced(client.clone(), "services");
    let pods: Api<Pod> = Api::namespaced(client, "services");

    let created = jobs
        .create(&PostParams::default(), &job("train", "trainer", 2, "Never"))
        .await
        .unwrap();
    let uid = created.metadata.uid.unwrap();
    let selector = created.spec.unwrap().selector.unwrap().match_labels.unwrap();
    assert_eq!(
        selector["batch.kubernetes.io/controller-uid"], uid,
        "the API server's selector"
    );
    let done = job_until(&jobs, "train", |s| has(s, "Complete")).await;
    // `active` and `failed` are left out at 0, as kube-apiserver writes them (`omitempty`).
    assert_eq!((done.succeeded, done.active, done.failed), (Some(2), None, None));
    assert!(done.start_time.is_some() && done.completion_time.is_some());
    let finished = pods.list(&ListParams::default().labels("app=train")).await.unwrap();
    assert_eq!(finished.items.len(), 2, "finished pods stay");
    assert!(
        finished
            .iter()
            .all(|p| p.status.as_ref().unwrap().phase.as_deref() == Some("Succeeded"))
    );

    // A crashing run: each failed pod is replaced until the failures pass the limit.
    jobs.create(&PostParams::default(), &job("broken", "crash:1", 1, "Never"))
        .await
        .unwrap();
    let failed = job_until(&jobs, "broken", |s| has(s, "Failed")).await;
    assert_eq!(failed.failed, Some(2), "one failure allowed, the second ends it");
    assert!(failed.completion_time.is_none());

    // A Job's pods must run to completion; its template cannot change.
    let error = jobs
        .create(&PostParams::default(), &job("service", "nginx", 1, "Always"))
        .await
        .unwrap_err();
    assert_eq!(api_error(error).0, 422);
    let patch = json!({"spec": {"template": {"spec": {"containers": [{"name": "train", "image": "other"}]}}}});
    let error = jobs
        .patch("train", &PatchParams::default(), &Patch::Strategic(patch))
        .await
        .unwrap_err();
    assert_eq!(api_error(error).0, 422);

    // Deleting the Job deletes its pods.
    jobs.delete("train", &DeleteParams::background()).await.unwrap();
    tokio::time::timeout(Duration::from_secs(10), async {
        while !pods
            .list(&ListParams::default().labels("app=train"))
            .await
            .unwrap()
            .items
            .is_empty()
        {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    })
    .await
    .expect("the pods go with the Job");
}

/// What a deploy does to run a finished Job again: delete it in the foreground (its pods
/// first), then apply it anew.
#[tokio::test]
async fn a_finished_job_deleted_in_the_foreground_goes_and_can_run_again() {
    let t = TestSim::start().await;
    let client = t.client().await;
    let jobs: Api<k8s_openapi::api::batch::v1::Job> = Api::namespaced(client.clone(), "services");
    for round in 0..2 {
        let params = PatchParams::apply("llp-k8s").force();
        jobs.patch("train", &params, &Patch::Apply(&job("train", "trainer", 2, "Never")))
            .await
            .unwrap();
        job_until(&jobs, "train", |s| has(s, "Complete")).await;
        jobs.delete("train", &DeleteParams::foreground()).await.unwrap();
        let start = std::time::Instant::now();
        while jobs.get_opt("train").await.unwrap().is_some() {
            if start.elapsed() > Duration::from_secs(5) {
                panic!(
                    "round {round}: still there: {:?}",
                    jobs.get("train").await.unwrap().metadata
                );
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}
