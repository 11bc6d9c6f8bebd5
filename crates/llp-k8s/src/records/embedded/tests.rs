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
    assert_eq!(*f.store.authenticate(&token).unwrap(), carol);
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
    let id = f.store.create(&f.alice, &nginx()).unwrap().id.clone().unwrap();
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
    let id = f.store.create(&f.alice, &nginx()).unwrap().id.clone().unwrap();
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
        (cleared.exposed_port.clone(), cleared.title.as_deref()),
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
        let id = store.create(&alice, &nginx()).unwrap().id.clone().unwrap();
        (alice, token, id)
    };
    let store = EmbeddedStore::open(&path).unwrap();
    assert_eq!(*store.authenticate(&token).unwrap(), alice);
    assert!(store.get(&alice, &id).is_ok());
}

mod reservations {
    use super::*;
    use crate::records::embedded::{ReservationInput, UserRef};

    fn booking(users: &[&Identity], gpus: &[&str]) -> ReservationInput {
        ReservationInput {
            gpus: Some(gpus.iter().map(|g| (*g).to_owned()).collect()),
            start: Some("2026-11-27T10:00:00Z".into()),
            end: Some("2026-11-27T18:00:00Z".into()),
            deployment: None,
            users: Some(users.iter().map(|u| UserRef::Id(u.id.clone())).collect()),
            course: None,
        }
    }

    fn field_of(error: RecordError) -> String {
        match error {
            RecordError::InvalidField { field, .. } => field,
            other => panic!("expected a field error, got {other:?}"),
        }
    }

    #[test]
    fn admins_book_and_users_read_only_their_own() {
        let f = fixture();
        let booked = f
            .store
            .add_reservation(&f.admin, &booking(&[&f.alice], &["gpu-xs"]))
            .unwrap();
        assert_eq!(booked.users, vec![f.alice.id.clone()]);
        assert!(matches!(
            f.store.add_reservation(&f.alice, &booking(&[&f.alice], &["gpu-l"])),
            Err(RecordError::Forbidden(_))
        ));
        assert_eq!(f.store.reservations(&f.alice).unwrap().len(), 1);
        assert!(f.store.reservations(&f.bob).unwrap().is_empty());
        assert!(matches!(
            f.store.reservation(&f.bob, &booked.id),
            Err(RecordError::NotFound)
        ));
        assert!(matches!(
            f.store.remove_reservation(&f.alice, &booked.id),
            Err(RecordError::Forbidden(_))
        ));
        f.store.remove_reservation(&f.admin, &booked.id).unwrap();
        assert!(f.store.reservations(&f.admin).unwrap().is_empty());
    }

    #[test]
    fn bad_bookings_name_the_field_at_fault() {
        let f = fixture();
        let mut unknown_slug = booking(&[&f.alice], &["gpu-xs", "gpu-xl"]);
        assert_eq!(
            field_of(f.store.add_reservation(&f.admin, &unknown_slug).unwrap_err()),
            "gpus[1]"
        );
        unknown_slug.gpus = Some(Vec::new());
        assert_eq!(
            field_of(f.store.add_reservation(&f.admin, &unknown_slug).unwrap_err()),
            "gpus"
        );
        let mut backwards = booking(&[&f.alice], &["gpu-xs"]);
        backwards.end = Some("2026-11-27T09:00:00Z".into());
        assert_eq!(
            field_of(f.store.add_reservation(&f.admin, &backwards).unwrap_err()),
            "end"
        );
        let mut nobody = booking(&[&f.alice], &["gpu-xs"]);
        nobody.users = Some(vec![UserRef::Junction {
            directus_users_id: "no-such-user".into(),
        }]);
        assert_eq!(
            field_of(f.store.add_reservation(&f.admin, &nobody).unwrap_err()),
            "users[0]"
        );
        let mut nowhere = booking(&[&f.alice], &["gpu-xs"]);
        nowhere.deployment = Some(Some("no-such-record".into()));
        assert_eq!(
            field_of(f.store.add_reservation(&f.admin, &nowhere).unwrap_err()),
            "deployment"
        );
        let mut not_a_time = booking(&[&f.alice], &["gpu-xs"]);
        not_a_time.start = Some("tomorrow".into());
        assert_eq!(
            field_of(f.store.add_reservation(&f.admin, &not_a_time).unwrap_err()),
            "start"
        );
        assert!(
            f.store.reservations(&f.admin).unwrap().is_empty(),
            "nothing half-written"
        );
    }

    #[test]
    fn an_edit_is_checked_whole_and_leaves_the_booking_as_it_was_when_refused() {
        let f = fixture();
        let booked = f
            .store
            .add_reservation(&f.admin, &booking(&[&f.alice], &["gpu-xs"]))
            .unwrap();
        let ends_too_early = ReservationInput {
            end: Some("2026-11-27T09:00:00Z".into()),
            ..ReservationInput::default()
        };
        let error = f
            .store
            .update_reservation(&f.admin, &booked.id, &ends_too_early)
            .unwrap_err();
        assert_eq!(field_of(error), "end");
        assert_eq!(f.store.reservation(&f.admin, &booked.id).unwrap(), booked);
        let moved = ReservationInput {
            users: Some(vec![UserRef::Id(f.bob.id.clone())]),
            ..ReservationInput::default()
        };
        let changed = f.store.update_reservation(&f.admin, &booked.id, &moved).unwrap();
        assert_eq!((changed.users, changed.gpus), (vec![f.bob.id.clone()], booked.gpus));
    }

    #[test]
    fn admission_reads_the_owners_and_the_deployments_open_bookings() {
        let f = fixture();
        let record = f.store.create(&f.bob, &nginx()).unwrap();
        let record_id = record.id.clone().unwrap().to_string();
        f.store
            .add_reservation(&f.admin, &booking(&[&f.alice], &["gpu-xs"]))
            .unwrap();
        let mut for_record = booking(&[&f.admin], &["gpu-l"]);
        for_record.deployment = Some(Some(record_id.clone()));
        f.store.add_reservation(&f.admin, &for_record).unwrap();
        let now = "2026-11-27T12:00:00Z".parse().unwrap();
        let alices = f.store.reservations_covering(&f.alice.id, &[], now).unwrap();
        assert_eq!(alices.len(), 1);
        let bobs = f.store.reservations_covering(&f.bob.id, &[record_id], now).unwrap();
        assert_eq!(bobs.len(), 1, "the one naming bob's deployment");
        let later = "2026-11-27T18:00:00Z".parse().unwrap();
        assert!(
            f.store
                .reservations_covering(&f.alice.id, &[], later)
                .unwrap()
                .is_empty(),
            "ended ones are left out"
        );
    }
}

mod overlapping_edits {
    use super::*;
    use crate::records::embedded::{ReservationInput, UserRef};

    #[test]
    fn two_edits_at_once_never_leave_a_booking_that_ends_before_it_starts() {
        let f = fixture();
        for round in 0..40 {
            let booked = f
                .store
                .add_reservation(
                    &f.admin,
                    &ReservationInput {
                        gpus: Some(vec!["gpu-xs".into()]),
                        start: Some("2026-11-27T10:00:00Z".into()),
                        end: Some("2026-11-27T18:00:00Z".into()),
                        deployment: None,
                        users: Some(vec![UserRef::Id(f.alice.id.clone())]),
                        course: None,
                    },
                )
                .unwrap();
            // Each edit is valid against the booking as it was; together they are not.
            let later_start = ReservationInput {
                start: Some("2026-11-27T16:00:00Z".into()),
                ..ReservationInput::default()
            };
            let earlier_end = ReservationInput {
                end: Some("2026-11-27T12:00:00Z".into()),
                ..ReservationInput::default()
            };
            let barrier = std::sync::Barrier::new(2);
            let (a, b) = std::thread::scope(|scope| {
                let (barrier, store, admin, id) = (&barrier, &f.store, &f.admin, &booked.id);
                let edit = move |input: &ReservationInput| {
                    barrier.wait();
                    store.update_reservation(admin, id, input)
                };
                let a = scope.spawn(move || edit(&later_start));
                let b = scope.spawn(move || edit(&earlier_end));
                (a.join().unwrap(), b.join().unwrap())
            });
            assert!(
                a.is_ok() != b.is_ok(),
                "round {round}: exactly one edit wins: {a:?} {b:?}"
            );
            let stored = f.store.reservation(&f.admin, &booked.id).unwrap();
            assert!(stored.end > stored.start, "round {round}: {stored:?}");
        }
    }
}

#[test]
fn a_user_another_process_adds_is_known_at_once_and_an_update_is_seen_by_the_next_read() {
    let f = fixture();
    let path = f._dir.join("llp.sqlite");
    // `llp-k8s users add` while the service runs: another connection to the same file.
    let cli = EmbeddedStore::open(&path).unwrap();
    assert!(matches!(
        f.store.authenticate("llp_nobody"),
        Err(RecordError::Unauthorized)
    ));
    let (carol, token) = cli.add_user("carol", &[], false).unwrap();
    assert_eq!(
        *f.store.authenticate(&token).unwrap(),
        carol,
        "read from the file on first sight"
    );
    assert_eq!(*f.store.authenticate(&token).unwrap(), carol, "then from the view");

    let record = f.store.create(&f.alice, &nginx()).unwrap();
    let id = record.id.clone().unwrap();
    assert_eq!(f.store.get(&f.alice, &id).unwrap(), record);
    let retitled = RecordInput {
        title: Some(Some("renamed".into())),
        ..RecordInput::default()
    };
    f.store.update(&f.alice, &id, &retitled).unwrap();
    assert_eq!(f.store.get(&f.alice, &id).unwrap().title.as_deref(), Some("renamed"));
    assert_eq!(
        cli.get(&f.alice, &id).unwrap().title.as_deref(),
        Some("renamed"),
        "the file is the truth"
    );
    f.store.delete(&f.alice, &id).unwrap();
    assert!(matches!(f.store.get(&f.alice, &id), Err(RecordError::NotFound)));
}

/// Waits (up to 5 s) until `done` holds.
fn eventually(what: &str, done: impl Fn() -> bool) {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    while !done() {
        assert!(std::time::Instant::now() < deadline, "never: {what}");
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
}

#[test]
fn two_replicas_on_one_file_see_each_others_records_changes_and_deletions() {
    let f = fixture();
    let path = f._dir.join("llp.sqlite");
    // A second replica of the service: its own connection and view, following the file.
    let other = EmbeddedStore::open(&path).unwrap();
    let _following = (
        f.store.follow_other_writers(std::time::Duration::from_millis(50)),
        other.follow_other_writers(std::time::Duration::from_millis(50)),
    );
    let record = f.store.create(&f.alice, &nginx()).unwrap();
    let id = record.id.clone().unwrap();
    assert_eq!(
        other.get(&f.alice, &id).unwrap(),
        record,
        "made by one, served by the other"
    );
    // Both views hold it now; a change through one is seen by the other.
    assert_eq!(f.store.get(&f.alice, &id).unwrap(), record);
    let retitled = RecordInput {
        title: Some(Some("renamed".into())),
        ..RecordInput::default()
    };
    other.update(&f.alice, &id, &retitled).unwrap();
    eventually("the change is seen", || {
        f.store.get(&f.alice, &id).unwrap().title.as_deref() == Some("renamed")
    });
    other.delete(&f.alice, &id).unwrap();
    eventually("the deletion is seen", || {
        matches!(f.store.get(&f.alice, &id), Err(RecordError::NotFound))
    });
    // Both write at once: neither write is lost (SQLite waits for the other's lock).
    let writers: Vec<_> = [f.store.clone(), other.clone()]
        .into_iter()
        .map(|store| {
            let alice = f.alice.clone();
            std::thread::spawn(move || {
                for _ in 0..20 {
                    store.create(&alice, &nginx()).unwrap();
                }
                20
            })
        })
        .collect();
    let made: u32 = writers.into_iter().map(|w| w.join().unwrap()).sum();
    assert_eq!(made, 40);
    assert_eq!(f.store.list(&f.alice).unwrap().len(), 40);
}
