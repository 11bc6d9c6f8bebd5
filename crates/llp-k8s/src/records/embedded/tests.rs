use super::{EmbeddedStore, RecordInput};
use crate::records::{Identity, RecordError};
use llp_spec::RecordId;

struct Fixture {
    store: EmbeddedStore,
    alice: Identity,
    bob: Identity,
    admin: Identity,
    _dir: std::path::PathBuf,
}

fn fixture() -> Fixture {
    let dir = std::env::temp_dir().join(format!("llp-records-{}", uuid::Uuid::new_v4()));
    std::fs::create_dir_all(&dir).unwrap();
    let store = EmbeddedStore::open(&dir.join("llp.sqlite")).unwrap();
    let (alice, _) = store.add_user("alice", &[], false).unwrap();
    let (bob, _) = store.add_user("bob", &["management".into()], false).unwrap();
    let (admin, _) = store.add_user("root", &[], true).unwrap();
    Fixture {
        store,
        alice,
        bob,
        admin,
        _dir: dir,
    }
}

fn nginx() -> RecordInput {
    RecordInput {
        title: Some(Some("web".into())),
        data: Some(Some("containers: [{name: web, image: nginx}]".into())),
        ..RecordInput::default()
    }
}

#[test]
fn a_token_authenticates_its_user_and_nothing_else() {
    let f = fixture();
    let (carol, token) = f.store.add_user("carol", &["students".into()], false).unwrap();
    assert_eq!(f.store.authenticate(&token).unwrap(), carol);
    assert!(matches!(
        f.store.authenticate("llp_wrong"),
        Err(RecordError::Unauthorized)
    ));
    assert!(matches!(f.store.authenticate(""), Err(RecordError::Unauthorized)));
}

#[test]
fn a_record_belongs_to_its_creator() {
    let f = fixture();
    let record = f.store.create(&f.alice, &nginx()).unwrap();
    assert_eq!(record.user_created.as_deref(), Some(f.alice.id.as_str()));
    let id = record.id.clone().unwrap();
    assert_eq!(f.store.get(&f.alice, &id).unwrap(), record);
    assert_eq!(f.store.get(&f.admin, &id).unwrap(), record, "admins see every record");
}

#[test]
fn another_users_record_reads_like_a_missing_one() {
    let f = fixture();
    let id = f.store.create(&f.alice, &nginx()).unwrap().id.unwrap();
    let unknown = RecordId::Text(uuid::Uuid::new_v4().to_string());
    for (what, result) in [
        ("alice's", f.store.get(&f.bob, &id)),
        ("unknown", f.store.get(&f.bob, &unknown)),
    ] {
        assert!(matches!(result, Err(RecordError::NotFound)), "{what}: {result:?}");
    }
    assert!(matches!(
        f.store.update(&f.bob, &id, &nginx()),
        Err(RecordError::NotFound)
    ));
    assert!(matches!(f.store.delete(&f.bob, &id), Err(RecordError::NotFound)));
    assert!(f.store.get(&f.alice, &id).is_ok(), "bob's attempts changed nothing");
}

#[test]
fn lists_hold_only_the_callers_records_except_for_admins() {
    let f = fixture();
    f.store.create(&f.alice, &nginx()).unwrap();
    f.store.create(&f.bob, &nginx()).unwrap();
    assert_eq!(f.store.list(&f.alice).unwrap().len(), 1);
    assert_eq!(f.store.list(&f.bob).unwrap().len(), 1);
    assert_eq!(f.store.list(&f.admin).unwrap().len(), 2);
}

#[test]
fn updates_change_only_the_given_fields() {
    let f = fixture();
    let id = f.store.create(&f.alice, &nginx()).unwrap().id.unwrap();
    let changed = f
        .store
        .update(
            &f.alice,
            &id,
            &RecordInput {
                exposed_port: Some(Some(serde_json::json!(80))),
                ..RecordInput::default()
            },
        )
        .unwrap();
    assert_eq!(changed.title.as_deref(), Some("web"));
    assert_eq!(changed.exposed_port, Some(serde_json::json!(80)));
    let input: RecordInput = serde_json::from_str(r#"{"exposed_port": null}"#).unwrap();
    let cleared = f.store.update(&f.alice, &id, &input).unwrap();
    assert_eq!(
        (cleared.exposed_port, cleared.title.as_deref()),
        (None, Some("web")),
        "null clears, absent keeps"
    );
    f.store.delete(&f.alice, &id).unwrap();
    assert!(matches!(f.store.get(&f.alice, &id), Err(RecordError::NotFound)));
}

#[test]
fn the_database_keeps_users_and_records_across_opens() {
    let dir = std::env::temp_dir().join(format!("llp-records-{}", uuid::Uuid::new_v4()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("llp.sqlite");
    let (alice, token, id) = {
        let store = EmbeddedStore::open(&path).unwrap();
        let (alice, token) = store.add_user("alice", &[], false).unwrap();
        let id = store.create(&alice, &nginx()).unwrap().id.unwrap();
        (alice, token, id)
    };
    let store = EmbeddedStore::open(&path).unwrap();
    assert_eq!(store.authenticate(&token).unwrap(), alice);
    assert!(store.get(&alice, &id).is_ok());
}
