use super::*;
use crate::resources::ids;
use serde_json::json;

fn store_with_namespace() -> Store {
    let mut store = Store::new(100);
    store
        .create(ids::namespaces(), "", json!({"metadata": {"name": "ns"}}))
        .unwrap();
    store
}

fn pod(name: &str, labels: Value) -> Value {
    json!({"metadata": {"name": name, "labels": labels}, "spec": {"containers": [{"name": "c", "image": "x"}]}})
}

fn rv(object: &Value) -> u64 {
    object["metadata"]["resourceVersion"].as_str().unwrap().parse().unwrap()
}

#[test]
fn create_fills_in_identity_and_version() {
    let mut store = store_with_namespace();
    let created = store.create(ids::pods(), "ns", pod("p", json!({}))).unwrap();
    assert_eq!(created["kind"], "Pod");
    assert_eq!(created["apiVersion"], "v1");
    assert_eq!(created["metadata"]["namespace"], "ns");
    assert_eq!(created["metadata"]["generation"], 1);
    assert_eq!(created["metadata"]["uid"].as_str().unwrap().len(), 36);
    assert!(
        created["metadata"]["creationTimestamp"]
            .as_str()
            .unwrap()
            .ends_with('Z')
    );
    assert_eq!(rv(&created), store.revision());
}

#[test]
fn create_refuses_duplicates_missing_namespaces_and_bad_names() {
    let mut store = store_with_namespace();
    store.create(ids::pods(), "ns", pod("p", json!({}))).unwrap();
    assert!(matches!(
        store.create(ids::pods(), "ns", pod("p", json!({}))),
        Err(StoreError::AlreadyExists { .. })
    ));
    assert!(matches!(
        store.create(ids::pods(), "nope", pod("q", json!({}))),
        Err(StoreError::NotFound { .. })
    ));
    assert!(matches!(
        store.create(ids::pods(), "ns", pod("Bad_Name", json!({}))),
        Err(StoreError::Invalid { .. })
    ));
    assert!(matches!(
        store.create(ids::services(), "ns", pod("1svc", json!({}))),
        Err(StoreError::Invalid { .. })
    ));
}

#[test]
fn a_stale_resource_version_conflicts() {
    let mut store = store_with_namespace();
    let created = store.create(ids::pods(), "ns", pod("p", json!({}))).unwrap();
    let key = ObjectKey::new(ids::pods(), "ns", "p");
    let mut first = (*created).clone();
    first["metadata"]["labels"] = json!({"a": "1"});
    let updated = store.update(&key, first.clone(), false).unwrap();
    assert!(rv(&updated) > rv(&created));
    first["metadata"]["labels"] = json!({"a": "2"});
    assert!(
        matches!(store.update(&key, first, false), Err(StoreError::Conflict { .. })),
        "written against the old version"
    );
}

#[test]
fn generation_counts_spec_changes_only() {
    let mut store = store_with_namespace();
    let sts = json!({"metadata": {"name": "s"}, "spec": {"replicas": 1}});
    store.create(ids::stateful_sets(), "ns", sts).unwrap();
    let key = ObjectKey::new(ids::stateful_sets(), "ns", "s");
    let labelled = store
        .patch(
            &key,
            PatchKind::Merge,
            &json!({"metadata": {"labels": {"x": "y"}}}),
            false,
        )
        .unwrap();
    assert_eq!(labelled["metadata"]["generation"], 1);
    let scaled = store
        .patch(&key, PatchKind::Merge, &json!({"spec": {"replicas": 3}}), false)
        .unwrap();
    assert_eq!(scaled["metadata"]["generation"], 2);
}

#[test]
fn status_is_written_only_through_its_subresource() {
    let mut store = store_with_namespace();
    store.create(ids::pods(), "ns", pod("p", json!({}))).unwrap();
    let key = ObjectKey::new(ids::pods(), "ns", "p");
    let main = store
        .patch(&key, PatchKind::Merge, &json!({"status": {"phase": "Running"}}), false)
        .unwrap();
    assert_eq!(main["status"]["phase"], "Pending", "the main resource ignores status");
    let status = store
        .patch(
            &key,
            PatchKind::Merge,
            &json!({"status": {"phase": "Running"}, "spec": {"x": 1}}),
            true,
        )
        .unwrap();
    assert_eq!(status["status"]["phase"], "Running");
    assert!(status["spec"].get("x").is_none(), "the status subresource ignores spec");
}

#[test]
fn list_filters_by_namespace_and_labels() {
    let mut store = store_with_namespace();
    store
        .create(ids::namespaces(), "", json!({"metadata": {"name": "other"}}))
        .unwrap();
    store
        .create(ids::pods(), "ns", pod("a", json!({"app": "web"})))
        .unwrap();
    store.create(ids::pods(), "ns", pod("b", json!({"app": "db"}))).unwrap();
    store
        .create(ids::pods(), "other", pod("c", json!({"app": "web"})))
        .unwrap();
    let web = LabelSelector::parse("app=web").unwrap();
    let all_fields = FieldSelector::default();
    assert_eq!(store.list(ids::pods(), Some("ns"), &web, &all_fields).len(), 1);
    assert_eq!(store.list(ids::pods(), None, &web, &all_fields).len(), 2);
    let by_name = FieldSelector::parse("metadata.name=b").unwrap();
    assert_eq!(
        store.list(ids::pods(), None, &LabelSelector::default(), &by_name)[0]["metadata"]["name"],
        "b"
    );
}

#[test]
fn deleting_an_owner_deletes_its_dependents_unless_orphaned() {
    let mut store = store_with_namespace();
    let owner = store
        .create(
            ids::stateful_sets(),
            "ns",
            json!({"metadata": {"name": "s"}, "spec": {}}),
        )
        .unwrap();
    let uid = owner["metadata"]["uid"].as_str().unwrap().to_owned();
    let mut dependent = pod("s-0", json!({}));
    dependent["metadata"]["ownerReferences"] =
        json!([{"uid": uid, "kind": "StatefulSet", "name": "s", "apiVersion": "apps/v1"}]);
    store.create(ids::pods(), "ns", dependent.clone()).unwrap();
    store
        .delete(
            &ObjectKey::new(ids::stateful_sets(), "ns", "s"),
            Propagation::Background,
        )
        .unwrap();
    assert!(store.get(&ObjectKey::new(ids::pods(), "ns", "s-0")).is_none());

    let owner = store
        .create(
            ids::stateful_sets(),
            "ns",
            json!({"metadata": {"name": "s"}, "spec": {}}),
        )
        .unwrap();
    dependent["metadata"]["ownerReferences"][0]["uid"] = owner["metadata"]["uid"].clone();
    store.create(ids::pods(), "ns", dependent).unwrap();
    store
        .delete(&ObjectKey::new(ids::stateful_sets(), "ns", "s"), Propagation::Orphan)
        .unwrap();
    let orphan = store.get(&ObjectKey::new(ids::pods(), "ns", "s-0")).expect("kept");
    assert_eq!(orphan["metadata"].get("ownerReferences"), None, "no owner left");
}

#[test]
fn an_orphaning_delete_answers_the_owner_marked_with_the_orphan_finalizer_and_removes_it() {
    let mut store = store_with_namespace();
    store
        .create(ids::config_maps(), "ns", json!({"metadata": {"name": "owner"}}))
        .unwrap();
    let key = ObjectKey::new(ids::config_maps(), "ns", "owner");
    let answer = store.delete(&key, Propagation::Orphan).unwrap();
    assert_eq!(answer["metadata"]["finalizers"], json!([ORPHAN]));
    assert!(answer["metadata"]["deletionTimestamp"].is_string());
    assert!(store.get(&key).is_none(), "nothing to orphan: gone at once");
}

#[test]
fn a_deleted_namespace_terminates_takes_its_contents_and_refuses_new_ones() {
    let mut store = store_with_namespace();
    store
        .create(
            ids::config_maps(),
            "ns",
            json!({"metadata": {"name": "kept", "finalizers": ["example.org/hold"]}}),
        )
        .unwrap();
    store.create(ids::pods(), "ns", pod("p", json!({}))).unwrap();
    let namespace = ObjectKey::new(ids::namespaces(), "", "ns");
    let answer = store.delete(&namespace, Propagation::Background).unwrap();
    assert_eq!(answer["status"]["phase"], "Terminating");
    assert!(store.get(&ObjectKey::new(ids::pods(), "ns", "p")).is_none());
    assert!(matches!(
        store.create(ids::config_maps(), "ns", json!({"metadata": {"name": "late"}})),
        Err(StoreError::Forbidden(_))
    ));
    store.finish_terminated_namespaces("9999-12-31T23:59:59Z");
    assert!(store.get(&namespace).is_some(), "a finalizer holds an object in it");
    store
        .remove_finalizer(&ObjectKey::new(ids::config_maps(), "ns", "kept"), "example.org/hold")
        .unwrap();
    store.finish_terminated_namespaces("9999-12-31T23:59:59Z");
    assert!(store.get(&namespace).is_none(), "empty: gone");
    assert!(matches!(
        store.create(ids::config_maps(), "ns", json!({"metadata": {"name": "late"}})),
        Err(StoreError::NotFound { .. })
    ));
}

#[test]
fn history_replays_changes_and_reports_gone_when_too_old() {
    let mut store = Store::new(3);
    store
        .create(ids::namespaces(), "", json!({"metadata": {"name": "ns"}}))
        .unwrap();
    let start = store.revision();
    for name in ["a", "b"] {
        store.create(ids::pods(), "ns", pod(name, json!({}))).unwrap();
    }
    let replay = store.changes_since(ids::pods(), start).unwrap();
    assert_eq!(replay.len(), 2);
    assert_eq!(replay[0].event, EventType::Added);
    for name in ["c", "d", "e"] {
        store.create(ids::pods(), "ns", pod(name, json!({}))).unwrap();
    }
    assert!(matches!(
        store.changes_since(ids::pods(), start),
        Err(StoreError::Gone { .. })
    ));
}

#[test]
fn server_side_apply_creates_then_prunes_what_is_no_longer_applied() {
    let mut store = store_with_namespace();
    let key = ObjectKey::new(ids::config_maps(), "ns", "cm");
    let first =
        json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "cm"}, "data": {"a": "1", "b": "2"}});
    store.set_author(Author {
        field_manager: Some("llp".into()),
        ..Author::default()
    });
    store.patch(&key, PatchKind::Apply, &first, false).unwrap();
    let second = json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "cm"}, "data": {"a": "3"}});
    let applied = store.patch(&key, PatchKind::Apply, &second, false).unwrap();
    assert_eq!(applied["data"], json!({"a": "3"}));
}

#[test]
fn a_write_that_changes_nothing_keeps_the_version() {
    let mut store = store_with_namespace();
    let created = store.create(ids::pods(), "ns", pod("p", json!({"a": "1"}))).unwrap();
    let key = ObjectKey::new(ids::pods(), "ns", "p");
    let same = store
        .patch(
            &key,
            PatchKind::Merge,
            &json!({"metadata": {"labels": {"a": "1"}}}),
            false,
        )
        .unwrap();
    assert_eq!(rv(&same), rv(&created));
}

#[test]
fn a_dry_run_is_checked_and_answered_but_not_kept() {
    let mut store = store_with_namespace();
    let before = store.revision();
    store.set_dry_run(true);
    let answered = store.create(ids::pods(), "ns", pod("p", json!({}))).unwrap();
    assert_eq!(answered["metadata"]["name"], "p");
    assert!(
        store.create(ids::pods(), "nowhere", pod("q", json!({}))).is_err(),
        "still validated"
    );
    store.set_dry_run(false);
    assert_eq!(store.revision(), before);
    assert!(store.get(&ObjectKey::new(ids::pods(), "ns", "p")).is_none());

    store.create(ids::pods(), "ns", pod("p", json!({}))).unwrap();
    store.set_dry_run(true);
    store
        .delete(&ObjectKey::new(ids::pods(), "ns", "p"), Propagation::Background)
        .unwrap();
    store.set_dry_run(false);
    assert!(store.get(&ObjectKey::new(ids::pods(), "ns", "p")).is_some());
}

#[test]
fn secret_string_data_is_folded_into_data() {
    let mut store = store_with_namespace();
    let secret = json!({"metadata": {"name": "s"}, "data": {"a": "eA=="}, "stringData": {"b": "abc"}});
    let created = store.create(ids::secrets(), "ns", secret).unwrap();
    assert_eq!(created["data"], json!({"a": "eA==", "b": "YWJj"}));
    assert!(created.get("stringData").is_none());
}

#[test]
fn a_running_pod_is_only_marked_terminating_until_its_kubelet_removes_it() {
    let mut store = store_with_namespace();
    let mut running = pod("p", json!({}));
    running["spec"]["nodeName"] = json!("worker-1");
    store.create(ids::pods(), "ns", running).unwrap();
    let key = ObjectKey::new(ids::pods(), "ns", "p");
    let marked = store.delete(&key, Propagation::Background).unwrap();
    assert!(marked["metadata"]["deletionTimestamp"].is_string());
    assert_eq!(marked["metadata"]["deletionGracePeriodSeconds"], 30);
    assert!(store.get(&key).is_some(), "still there, Terminating");
    store.remove(&key).unwrap();
    assert!(store.get(&key).is_none());
    // A pod no node runs goes at once.
    store.create(ids::pods(), "ns", pod("q", json!({}))).unwrap();
    store
        .delete(&ObjectKey::new(ids::pods(), "ns", "q"), Propagation::Background)
        .unwrap();
    assert!(store.get(&ObjectKey::new(ids::pods(), "ns", "q")).is_none());
}

#[test]
fn a_claim_is_protected_until_its_finalizer_goes() {
    let mut store = store_with_namespace();
    let claim = json!({"metadata": {"name": "c"}, "spec": {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "1Gi"}}}});
    let created = store.create(ids::claims(), "ns", claim).unwrap();
    assert_eq!(created["metadata"]["finalizers"], json!([defaults::PVC_PROTECTION]));
    let key = ObjectKey::new(ids::claims(), "ns", "c");
    store.delete(&key, Propagation::Background).unwrap();
    assert!(store.get(&key).unwrap()["metadata"]["deletionTimestamp"].is_string());
    store.remove_finalizer(&key, defaults::PVC_PROTECTION).unwrap();
    assert!(store.get(&key).is_none(), "gone with its last finalizer");
}

#[test]
fn a_field_set_by_a_plain_create_survives_an_apply_that_drops_it_and_conflicts_when_changed() {
    let mut store = store_with_namespace();
    store.set_author(Author {
        user_agent: Some("kubectl".into()),
        ..Author::default()
    });
    let cm = json!({"metadata": {"name": "cm"}, "data": {"a": "1", "b": "2"}});
    let created = store.create(ids::config_maps(), "ns", cm).unwrap();
    assert_eq!(created["metadata"]["managedFields"][0]["manager"], "kubectl");
    let key = ObjectKey::new(ids::config_maps(), "ns", "cm");
    store.set_author(Author {
        field_manager: Some("llp".into()),
        ..Author::default()
    });
    let applied = store
        .patch(
            &key,
            PatchKind::Apply,
            &json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "cm"}, "data": {"a": "1"}}),
            false,
        )
        .unwrap();
    assert_eq!(applied["data"], json!({"a": "1", "b": "2"}), "`b` is kubectl's too");
    let changed = json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "cm"}, "data": {"a": "9"}});
    let conflict = store.patch(&key, PatchKind::Apply, &changed, false).unwrap_err();
    assert_eq!(
        conflict.to_string(),
        "Apply failed with 1 conflict: conflict with \"kubectl\" using v1: .data.a"
    );
    store.set_author(Author {
        field_manager: Some("llp".into()),
        force: true,
        ..Author::default()
    });
    let forced = store.patch(&key, PatchKind::Apply, &changed, false).unwrap();
    assert_eq!(forced["data"]["a"], "9");
}
