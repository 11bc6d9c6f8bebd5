use super::*;
use proptest::prelude::*;

fn at(minute: i64) -> Timestamp {
    Timestamp::from_second(1_800_000_000 + minute * 60).unwrap()
}

fn hold(uid: &str, deployment: &str, owner: &str, count: u32, (start, end): (i64, Option<i64>)) -> Hold {
    Hold {
        pod_uid: uid.into(),
        pod: format!("{deployment}-0"),
        deployment: deployment.into(),
        owner: owner.into(),
        gpu: Gpu::Mig3g40gb,
        count,
        start: at(start),
        end: end.map(at),
        seen: at(end.unwrap_or(start)),
    }
}

fn booking(id: &str, gpus: usize, (start, end): (i64, i64), deployment: Option<&str>, users: &[&str]) -> Reservation {
    Reservation {
        id: id.into(),
        gpus: vec![Gpu::Mig3g40gb; gpus],
        start: at(start),
        end: at(end),
        deployment: deployment.map(str::to_owned),
        users: users.iter().map(|u| (*u).to_owned()).collect(),
        course: None,
    }
}

fn seconds(rows: &[Row], key: Option<&str>) -> f64 {
    rows.iter()
        .find(|r| r.key.as_deref() == key)
        .map_or(0.0, |r| r.gpu_seconds)
}

#[test]
fn a_hold_counts_its_gpus_for_the_part_of_the_window_it_lasted() {
    let ended = hold("a", "1", "alice", 2, (10, Some(20)));
    assert_eq!(ended.gpu_seconds(at(0), at(60), at(60)), 2.0 * 600.0);
    assert_eq!(
        ended.gpu_seconds(at(15), at(60), at(60)),
        2.0 * 300.0,
        "cut at the window's start"
    );
    assert_eq!(ended.gpu_seconds(at(20), at(60), at(60)), 0.0);
    let running = hold("b", "1", "alice", 1, (50, None));
    assert_eq!(
        running.gpu_seconds(at(0), at(120), at(55)),
        300.0,
        "up to now while it lasts"
    );
}

#[test]
fn rows_by_user_deployment_and_profile_add_up_the_holds() {
    let holds = [
        hold("a", "1", "alice", 1, (0, Some(10))),
        hold("b", "2", "alice", 1, (0, Some(5))),
        hold("c", "3", "bob", 2, (0, Some(10))),
    ];
    let window = (at(0), at(60));
    let by_user = report(&holds, &[], By::User, window, at(60));
    assert_eq!(seconds(&by_user, Some("alice")), 900.0);
    assert_eq!(seconds(&by_user, Some("bob")), 1200.0);
    let by_deployment = report(&holds, &[], By::Deployment, window, at(60));
    assert_eq!(by_deployment.len(), 3);
    assert_eq!(seconds(&by_deployment, Some("2")), 300.0);
    let by_profile = report(&holds, &[], By::Profile, window, at(60));
    assert_eq!(
        by_profile,
        [Row {
            key: Some("gpu-m".into()),
            gpu_seconds: 2100.0,
            booked_seconds: None,
            watt_hours: None
        }]
    );
}

#[test]
fn a_deployments_own_booking_covers_it_first_then_the_owners_and_the_rest_is_unbooked() {
    // alice: deployment 1 holds 2 GPUs for 60 minutes; a booking for deployment 1 of 1 GPU
    // (minutes 0–60), her general booking of 1 GPU (minutes 0–30).
    let holds = [hold("a", "1", "alice", 2, (0, Some(60)))];
    let bookings = [
        booking("general", 1, (0, 30), None, &["alice"]),
        booking("for-1", 1, (0, 60), Some("1"), &["alice"]),
        booking("unused", 2, (0, 60), None, &["bob"]),
    ];
    let rows = report(&holds, &bookings, By::Booking, (at(0), at(60)), at(60));
    assert_eq!(seconds(&rows, Some("for-1")), 3600.0);
    assert_eq!(seconds(&rows, Some("general")), 1800.0);
    assert_eq!(seconds(&rows, None), 1800.0, "the second GPU after minute 30");
    let unused = rows.iter().find(|r| r.key.as_deref() == Some("unused")).unwrap();
    assert_eq!(
        (unused.gpu_seconds, unused.booked_seconds),
        (0.0, Some(7200.0)),
        "booked 2 GPU-hours, used none"
    );
    let general = rows.iter().find(|r| r.key.as_deref() == Some("general")).unwrap();
    assert_eq!(general.booked_seconds, Some(1800.0));
}

#[test]
fn a_booking_covers_at_most_its_gpus_at_a_time() {
    let holds = [
        hold("a", "1", "alice", 1, (0, Some(60))),
        hold("b", "2", "alice", 1, (0, Some(60))),
    ];
    let bookings = [booking("one", 1, (0, 60), None, &["alice"])];
    let rows = report(&holds, &bookings, By::Booking, (at(0), at(60)), at(60));
    assert_eq!(seconds(&rows, Some("one")), 3600.0);
    assert_eq!(seconds(&rows, None), 3600.0);
}

fn any_hold() -> impl Strategy<Value = Hold> {
    (0..4u8, 0..3u8, 1..3u32, 0..100i64, prop::option::of(0..100i64)).prop_map(|(uid, owner, count, start, length)| {
        let owner = ["alice", "bob", "carol"][owner as usize];
        hold(
            &format!("pod-{uid}-{start}"),
            &format!("{owner}-{}", uid % 2),
            owner,
            count,
            (start, length.map(|l| start + l)),
        )
    })
}

fn any_booking() -> impl Strategy<Value = Reservation> {
    (0..50u16, 1..3usize, 0..100i64, 1..100i64, 0..3u8, any::<bool>()).prop_map(
        |(id, gpus, start, length, owner, for_one)| {
            let owner = ["alice", "bob", "carol"][owner as usize];
            let deployment = for_one.then(|| format!("{owner}-0"));
            booking(
                &format!("b{id}-{start}"),
                gpus,
                (start, start + length),
                deployment.as_deref(),
                &[owner],
            )
        },
    )
}

proptest! {
    /// Every GPU-second is attributed once: by booking (and none) sums to what the holds
    /// accrued, and no booking is used beyond what it booked.
    #[test]
    fn use_by_booking_adds_up_and_never_exceeds_a_booking(
        holds in prop::collection::vec(any_hold(), 0..6),
        bookings in prop::collection::vec(any_booking(), 0..4),
        from in 0..100i64,
        length in 1..150i64,
    ) {
        let mut holds = holds;
        holds.sort_by(|a, b| a.pod_uid.cmp(&b.pod_uid));
        holds.dedup_by(|a, b| a.pod_uid == b.pod_uid);
        let mut bookings = bookings;
        bookings.sort_by(|a, b| a.id.cmp(&b.id));
        bookings.dedup_by(|a, b| a.id == b.id);
        let (window, now) = ((at(from), at(from + length)), at(120));
        let total: f64 = report(&holds, &[], By::User, window, now).iter().map(|r| r.gpu_seconds).sum();
        let rows = report(&holds, &bookings, By::Booking, window, now);
        let attributed: f64 = rows.iter().map(|r| r.gpu_seconds).sum();
        prop_assert!((total - attributed).abs() < 1e-6, "{total} vs {attributed}");
        for row in rows.iter().filter(|r| r.key.is_some()) {
            prop_assert!(row.gpu_seconds <= row.booked_seconds.unwrap() + 1e-6, "{row:?}");
        }
    }
}

#[test]
fn a_pod_holds_its_gpus_from_its_start_until_its_last_container_finished() {
    let pod = |phase: &str, finished: Option<&str>| -> CachedPod {
        let terminated = finished.map(|f| serde_json::json!({"terminated": {"exitCode": 0, "finishedAt": f}}));
        serde_json::from_value(serde_json::json!({
            "metadata": {"name": "sd-1-0", "uid": "u-1", "labels": {"llp.kitegg.de/deployment": "1", "llp.kitegg.de/owner": "alice"}},
            "spec": {"containers": [
                {"name": "a", "resources": {"requests": {"nvidia.com/mig-3g.40gb": "1", "cpu": "1"}}},
                {"name": "b", "resources": {"requests": {"nvidia.com/mig-3g.40gb": "1"}}}],
                "initContainers": [{"name": "i", "resources": {"requests": {"nvidia.com/gpu": "1"}}}]},
            "status": {"phase": phase, "startTime": "2027-01-15T09:00:00Z",
                "containerStatuses": [{"name": "a", "state": terminated.clone().unwrap_or(serde_json::json!({}))}, {"name": "b", "state": {}}]},
        }))
        .unwrap()
    };
    let now = "2027-01-15T10:00:00Z".parse().unwrap();
    let running = holds_of(&pod("Running", None), now);
    let held: Vec<(Gpu, u32)> = running.iter().map(|h| (h.gpu, h.count)).collect();
    assert_eq!(held, [(Gpu::Full, 1), (Gpu::Mig3g40gb, 2)], "the init container's too");
    assert!(
        running
            .iter()
            .all(|h| h.end.is_none() && h.start.to_string() == "2027-01-15T09:00:00Z")
    );
    assert_eq!(
        (
            running[1].deployment.as_str(),
            running[1].owner.as_str(),
            running[1].pod_uid.as_str()
        ),
        ("1", "alice", "u-1")
    );
    let done = holds_of(&pod("Succeeded", Some("2027-01-15T09:30:00Z")), now);
    assert_eq!(done[0].end, Some("2027-01-15T09:30:00Z".parse().unwrap()));
    let mut unlabelled = pod("Running", None);
    unlabelled.metadata.labels = None;
    assert!(holds_of(&unlabelled, now).is_empty());
}

#[test]
fn rows_by_course_add_up_the_use_and_the_bookings_of_each_course() {
    // Bob is among the people of course "ml"; two of its bookings and one of no course.
    let holds = [
        hold("a", "1", "bob", 1, (0, Some(60))),
        hold("b", "2", "carol", 1, (0, Some(30))),
    ];
    let mut first = booking("ml-1", 1, (0, 30), None, &["bob", "carol"]);
    first.course = Some("ml".into());
    let mut second = booking("ml-2", 1, (30, 60), None, &["bob"]);
    second.course = Some("ml".into());
    let own = booking("own", 1, (0, 60), None, &["carol"]);
    let rows = report(&holds, &[first, second, own], By::Course, (at(0), at(60)), at(60));
    assert_eq!(
        rows,
        [Row {
            key: Some("ml".into()),
            gpu_seconds: 3600.0,
            booked_seconds: Some(3600.0),
            watt_hours: None
        }]
    );
}

#[test]
fn a_holds_energy_is_its_pods_power_while_it_lasted() {
    // A pod named sd-1-0 held a GPU from minute 10 to 40; the same name ran again from 50.
    let first = hold("a", "1", "alice", 1, (10, Some(40)));
    let mut samples: Vec<(Timestamp, f64)> = (0..60).map(|m| (at(m), if m < 45 { 300.0 } else { 999.0 })).collect();
    samples.remove(20); // no reading at minute 20: the sample before does not stand in
    let power = Power {
        step: jiff::SignedDuration::from_secs(60),
        by_pod: [("1-0".to_owned(), samples)].into(),
    };
    let wh = power.watt_hours(&first, (at(0), at(60)), at(60));
    assert!((wh - 300.0 * 29.0 / 60.0).abs() < 1e-9, "{wh}");
    assert_eq!(
        power.watt_hours(&first, (at(0), at(25)), at(60)),
        300.0 * 14.0 / 60.0,
        "cut to the window"
    );
    let elsewhere = Hold {
        pod: "2-0".into(),
        ..first.clone()
    };
    assert_eq!(power.watt_hours(&elsewhere, (at(0), at(60)), at(60)), 0.0);

    let mut rows = report(std::slice::from_ref(&first), &[], By::User, (at(0), at(60)), at(60));
    add_energy(
        &mut rows,
        std::slice::from_ref(&first),
        By::User,
        &power,
        (at(0), at(60)),
        at(60),
    );
    assert_eq!(rows[0].watt_hours, Some(wh));
    let mut by_booking = report(std::slice::from_ref(&first), &[], By::Booking, (at(0), at(60)), at(60));
    add_energy(
        &mut by_booking,
        std::slice::from_ref(&first),
        By::Booking,
        &power,
        (at(0), at(60)),
        at(60),
    );
    assert!(by_booking.iter().all(|r| r.watt_hours.is_none()));
}
