use super::*;
use crate::spec::Gpu::{Full, Mig1g10gb};

fn at(time: &str) -> Timestamp {
    time.parse().unwrap()
}

fn booking(id: &str, gpus: &[Gpu], start: &str, end: &str, deployment: Option<&str>, users: &[&str]) -> Reservation {
    Reservation {
        id: id.into(),
        gpus: gpus.to_vec(),
        start: at(start),
        end: at(end),
        deployment: deployment.map(str::to_owned),
        users: users.iter().map(|u| (*u).to_owned()).collect(),
        course: None,
    }
}

fn demand(per_pod: &[(Gpu, u32)], replicas: u32) -> Demand<'static> {
    Demand {
        deployment: "d1",
        owner: "alice",
        per_pod: per_pod.iter().copied().collect(),
        replicas,
    }
}

const NOW: &str = "2026-11-27T12:00:00Z";

/// alice's budget: one gpu-xs from 10:00 to 18:00.
fn alices_budget() -> Reservation {
    booking(
        "r1",
        &[Mig1g10gb],
        "2026-11-27T10:00:00Z",
        "2026-11-27T18:00:00Z",
        None,
        &["alice"],
    )
}

#[test]
fn a_deployment_without_gpus_needs_no_reservation() {
    assert_eq!(admit(&demand(&[], 3), &[], &[], at(NOW)), Ok(None));
    assert_eq!(
        admit(&demand(&[(Full, 1)], 0), &[], &[], at(NOW)),
        Ok(None),
        "0 replicas hold nothing"
    );
}

#[test]
fn a_booking_is_active_from_its_start_until_just_before_its_end() {
    let booked = [alices_budget()];
    let one = demand(&[(Mig1g10gb, 1)], 1);
    assert!(
        admit(&one, &booked, &[], at("2026-11-27T10:00:00Z")).is_ok(),
        "at the start instant"
    );
    assert!(
        admit(&one, &booked, &[], at("2026-11-27T09:59:59Z")).is_err(),
        "before it"
    );
    assert!(admit(&one, &booked, &[], at("2026-11-27T17:59:59Z")).is_ok());
    assert!(
        admit(&one, &booked, &[], at("2026-11-27T18:00:00Z")).is_err(),
        "at the end instant"
    );
    assert_eq!(
        admit(&one, &booked, &[], at(NOW)),
        Ok(Some(at("2026-11-27T18:00:00Z"))),
        "admitted until the booking ends"
    );
}

#[test]
fn replicas_and_gpu_count_multiply_and_two_bookings_add_up() {
    let two = [
        alices_budget(),
        booking(
            "r2",
            &[Mig1g10gb, Mig1g10gb, Mig1g10gb],
            "2026-11-27T11:00:00Z",
            "2026-11-27T13:00:00Z",
            None,
            &["alice", "bob"],
        ),
    ];
    assert!(
        admit(&demand(&[(Mig1g10gb, 2)], 2), &two, &[], at(NOW)).is_ok(),
        "2 × 2 = 4 of 1 + 3"
    );
    assert_eq!(
        admit(&demand(&[(Mig1g10gb, 2)], 2), &two, &[], at(NOW)),
        Ok(Some(at("2026-11-27T13:00:00Z"))),
        "until the first of them ends"
    );
    let short = admit(&demand(&[(Mig1g10gb, 1)], 5), &two, &[], at(NOW)).unwrap_err();
    assert_eq!(short.profiles[0].needed, 5);
    assert_eq!(short.profiles[0].booked, 4);
}

#[test]
fn scaling_up_beyond_the_booking_is_refused_and_down_allowed() {
    let booked = [booking(
        "r",
        &[Full, Full],
        "2026-11-27T00:00:00Z",
        "2026-11-28T00:00:00Z",
        Some("d1"),
        &["alice"],
    )];
    assert!(admit(&demand(&[(Full, 1)], 2), &booked, &[], at(NOW)).is_ok());
    assert!(admit(&demand(&[(Full, 1)], 3), &booked, &[], at(NOW)).is_err());
    assert!(admit(&demand(&[(Full, 1)], 1), &booked, &[], at(NOW)).is_ok());
}

#[test]
fn another_deployments_and_another_users_bookings_do_not_count() {
    let others = [
        booking(
            "for-d2",
            &[Mig1g10gb],
            "2026-11-27T00:00:00Z",
            "2026-11-28T00:00:00Z",
            Some("d2"),
            &["alice"],
        ),
        booking(
            "bobs",
            &[Mig1g10gb],
            "2026-11-27T00:00:00Z",
            "2026-11-28T00:00:00Z",
            None,
            &["bob"],
        ),
    ];
    let short = admit(&demand(&[(Mig1g10gb, 1)], 1), &others, &[], at(NOW)).unwrap_err();
    assert_eq!(short.profiles[0].booked, 0);
}

#[test]
fn a_booking_naming_the_deployment_replaces_the_budget() {
    let bookings = [
        alices_budget(),
        booking(
            "own",
            &[Full],
            "2026-11-27T00:00:00Z",
            "2026-11-28T00:00:00Z",
            Some("d1"),
            &["alice"],
        ),
    ];
    // The budget's gpu-xs does not count once a booking names the deployment.
    assert!(admit(&demand(&[(Mig1g10gb, 1)], 1), &bookings, &[], at(NOW)).is_err());
    assert!(admit(&demand(&[(Full, 1)], 1), &bookings, &[], at(NOW)).is_ok());
}

#[test]
fn what_the_owners_other_deployments_hold_is_not_available_twice() {
    let budget = [booking(
        "b",
        &[Mig1g10gb, Mig1g10gb],
        "2026-11-27T00:00:00Z",
        "2026-11-28T00:00:00Z",
        None,
        &["alice"],
    )];
    let holding = |id: &str, n| Holding {
        deployment: id.into(),
        gpus: GpuCounts::from([(Mig1g10gb, n)]),
    };
    let one = demand(&[(Mig1g10gb, 1)], 1);
    assert!(
        admit(&one, &budget, &[holding("d2", 1)], at(NOW)).is_ok(),
        "1 of 2 left"
    );
    let short = admit(&one, &budget, &[holding("d2", 1), holding("d3", 1)], at(NOW)).unwrap_err();
    assert_eq!((short.profiles[0].booked, short.profiles[0].held_elsewhere), (2, 2));
    assert!(
        admit(&one, &budget, &[holding("d1", 2)], at(NOW)).is_ok(),
        "the deployment's own pods are being replaced, not added"
    );
    // A deployment with a booking of its own does not draw on the budget.
    let mut bookings = budget.to_vec();
    bookings.push(booking(
        "d2s",
        &[Mig1g10gb],
        "2026-11-27T00:00:00Z",
        "2026-11-28T00:00:00Z",
        Some("d2"),
        &["alice"],
    ));
    assert!(admit(&one, &bookings, &[holding("d2", 1), holding("d3", 1)], at(NOW)).is_ok());
}

#[test]
fn the_shortfall_says_what_is_needed_what_is_covered_and_until_when() {
    let short = admit(&demand(&[(Mig1g10gb, 1)], 2), &[alices_budget()], &[], at(NOW)).unwrap_err();
    assert_eq!(
        short.to_string(),
        "not enough reserved GPUs: needs 2 × nvidia.com/mig-1g.10gb (gpu-xs) for 2 replicas; your reservations active now cover 1 (until 27 Nov 18:00 UTC)."
    );
    let later = [booking(
        "later",
        &[Full],
        "2026-11-28T09:00:00Z",
        "2026-11-28T17:00:00Z",
        None,
        &["alice"],
    )];
    let short = admit(&demand(&[(Full, 1)], 1), &later, &[], at(NOW)).unwrap_err();
    assert_eq!(
        short.to_string(),
        "not enough reserved GPUs: needs 1 × nvidia.com/gpu (gpu-l) for 1 replica; your reservations active now cover 0; your next reservation of it starts 28 Nov 09:00 UTC."
    );
}

#[test]
fn slugs_name_the_four_profiles() {
    for gpu in Gpu::ALL {
        assert_eq!(Gpu::from_slug(gpu.slug()), Some(gpu));
        assert_eq!(Gpu::from_resource_name(gpu.resource_name()), Some(gpu));
    }
    assert_eq!(Gpu::from_slug("gpu-xl"), None);
}

#[test]
fn a_pod_holds_its_containers_gpus_or_an_init_containers_if_more() {
    let pod: PodSpec = serde_json::from_value(serde_json::json!({
        "initContainers": [{"name": "i", "resources": {"limits": {"nvidia.com/gpu": "3"}}}],
        "containers": [
            {"name": "a", "resources": {"limits": {"nvidia.com/gpu": "1", "cpu": "2"}}},
            {"name": "b", "resources": {"limits": {"nvidia.com/gpu": "1", "nvidia.com/mig-1g.10gb": "2"}}},
        ],
    }))
    .unwrap();
    assert_eq!(pod_gpus(&pod), GpuCounts::from([(Full, 3), (Mig1g10gb, 2)]));
}

fn running(deployment: &str, gpus: u32) -> Running {
    Running {
        deployment: deployment.into(),
        owner: "alice".into(),
        per_pod: GpuCounts::from([(Mig1g10gb, gpus)]),
        replicas: 1,
    }
}

#[test]
fn a_review_stops_what_no_booking_covers_any_more() {
    let booked = [alices_budget()];
    let verdicts = review(&[running("d1", 1)], &booked, at("2026-11-27T17:59:59Z"));
    assert_eq!(verdicts, [Verdict::Covered(Some(at("2026-11-27T18:00:00Z")))]);
    let verdicts = review(&[running("d1", 1)], &booked, at("2026-11-27T18:00:00Z"));
    assert!(
        matches!(verdicts[0], Verdict::Uncovered(_)),
        "stopped at the end instant"
    );
}

#[test]
fn when_a_shared_budget_shrinks_the_deployments_started_first_keep_it() {
    let booked = [booking(
        "b",
        &[Mig1g10gb, Mig1g10gb],
        "2026-11-27T00:00:00Z",
        "2026-11-28T00:00:00Z",
        None,
        &["alice"],
    )];
    let three = [running("old", 1), running("mid", 1), running("new", 1)];
    let verdicts = review(&three, &booked, at(NOW));
    assert!(matches!(verdicts[0], Verdict::Covered(_)));
    assert!(matches!(verdicts[1], Verdict::Covered(_)));
    // Booked enough for it alone: it is over budget, not past a booking's end.
    assert!(matches!(verdicts[2], Verdict::Overbooked(_)));
    // Another owner's deployment is judged on their own bookings.
    let bobs = Running {
        owner: "bob".into(),
        ..running("bobs", 1)
    };
    assert!(matches!(review(&[bobs], &booked, at(NOW))[0], Verdict::Uncovered(_)));
}
