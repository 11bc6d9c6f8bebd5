//! GPU usage (SPEC section 13): what pods held, and the report of it. Pure: the accountant
//! brings the pods it sees and the holds it stored, the route the holds, bookings and window.
//!
//! A hold is one pod's GPUs of one profile, from when its kubelet took the pod (`startTime`)
//! until it ended (its containers' last `finishedAt`, or, for a pod that went away, the last
//! time the accountant saw it). A hold is keyed by the pod's uid and the profile, so writing
//! the same hold again (another replica, a restart, a new leader) never counts it twice.
//!
//! Bookings are matched as admission matches them, instant by instant: a pod's GPUs draw first
//! on bookings naming its deployment, then on its owner's bookings naming none, the earliest
//! ending first; a booking covers at most its GPUs of a profile at a time. What no booking
//! covers is reported under no booking.

use crate::reservations::Reservation;
use crate::spec::Gpu;
use crate::status::CachedPod;
use jiff::Timestamp;
use serde::Serialize;
use std::collections::BTreeMap;

/// One pod's hold on GPUs of one profile.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Hold {
    /// The pod's uid.
    pub pod_uid: String,
    /// The pod's name.
    pub pod: String,
    /// The deployment record's id (its `llp.kitegg.de/deployment` label).
    pub deployment: String,
    /// The owner's user id (its `llp.kitegg.de/owner` label).
    pub owner: String,
    /// The profile.
    pub gpu: Gpu,
    /// How many GPUs of it the pod holds.
    pub count: u32,
    /// When the pod started holding them.
    pub start: Timestamp,
    /// When it stopped; `None` while it holds them.
    pub end: Option<Timestamp>,
    /// The last time the accountant saw it holding them (the end of a pod that went away).
    pub seen: Timestamp,
}

impl Hold {
    /// Its key: a pod holds each profile once.
    pub fn key(&self) -> (String, Gpu) {
        (self.pod_uid.clone(), self.gpu)
    }

    /// When it ended, or `now` while it lasts (nothing is counted past `now`).
    pub fn until(&self, now: Timestamp) -> Timestamp {
        self.end.map_or(now, |end| end.min(now)).max(self.start)
    }

    /// GPU-seconds it accrued within `[from, to)`, up to `now`.
    pub fn gpu_seconds(&self, from: Timestamp, to: Timestamp, now: Timestamp) -> f64 {
        f64::from(self.count) * overlap((self.start, self.until(now)), (from, to))
    }
}

/// The holds of `pod`, seen holding its GPUs at `now`: one per GPU profile it asks for (its
/// app containers' together, or an init container's if more), from its `startTime`; ended,
/// once the pod has (`Succeeded` or `Failed`), when its last container finished. A pod not
/// started yet, or without the service's labels, holds nothing.
pub fn holds_of(pod: &CachedPod, now: Timestamp) -> Vec<Hold> {
    let Some(start) = pod.status.start_time else {
        return Vec::new();
    };
    let labels = pod.metadata.labels.as_ref();
    let label = |key: &str| labels.and_then(|l| l.get(key)).cloned();
    let (Some(deployment), Some(owner), Some(pod_uid)) = (
        label(crate::names::DEPLOYMENT_LABEL),
        label(crate::names::OWNER_LABEL),
        pod.metadata.uid.clone(),
    ) else {
        return Vec::new();
    };
    let ended = matches!(pod.phase(), Some("Succeeded" | "Failed")).then(|| {
        pod.status
            .containers
            .iter()
            .filter_map(|c| c.state.terminated.as_ref()?.finished_at)
            .max()
            .unwrap_or(now)
    });
    let count = |containers: &[crate::status::CachedContainer], gpu: Gpu| -> Vec<u32> {
        containers
            .iter()
            .map(|c| {
                c.requests
                    .iter()
                    .filter(|(name, _)| name == gpu.resource_name())
                    .filter_map(|(_, q)| q.0.parse::<u32>().ok())
                    .sum()
            })
            .collect()
    };
    Gpu::ALL
        .into_iter()
        .filter_map(|gpu| {
            let app: u32 = count(&pod.containers, gpu).iter().sum();
            let init = count(&pod.init_containers, gpu).into_iter().max().unwrap_or(0);
            let held = app.max(init);
            (held > 0).then(|| Hold {
                pod_uid: pod_uid.clone(),
                pod: pod.metadata.name.clone().unwrap_or_default(),
                deployment: deployment.clone(),
                owner: owner.clone(),
                gpu,
                count: held,
                start,
                end: ended,
                seen: now,
            })
        })
        .collect()
}

/// Seconds two spans `[a.0, a.1)` and `[b.0, b.1)` share.
fn overlap(a: (Timestamp, Timestamp), b: (Timestamp, Timestamp)) -> f64 {
    let start = a.0.max(b.0);
    let end = a.1.min(b.1);
    if end <= start {
        return 0.0;
    }
    (end - start).total(jiff::Unit::Second).unwrap_or(0.0)
}

/// What rows a report is grouped by.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum By {
    /// The owner.
    User,
    /// The deployment.
    Deployment,
    /// The GPU profile.
    Profile,
    /// The booking that covered the use (and what was used under none).
    Booking,
    /// The course whose bookings covered the use (bookings of no course are left out).
    Course,
}

impl By {
    /// The `by` of `?by=`.
    pub fn parse(text: &str) -> Option<By> {
        match text {
            "user" => Some(By::User),
            "deployment" => Some(By::Deployment),
            "profile" => Some(By::Profile),
            "booking" => Some(By::Booking),
            "course" => Some(By::Course),
            _ => None,
        }
    }
}

/// One row of a report.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "camelCase")]
pub struct Row {
    /// The user, deployment, profile slug, booking or course id; `null` for use no booking
    /// covered.
    pub key: Option<String>,
    /// GPU-seconds used.
    pub gpu_seconds: f64,
    /// GPU-seconds booked within the window (rows by booking or course).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub booked_seconds: Option<f64>,
    /// Watt-hours the GPUs drew, where the lab's Prometheus has their power (rows by user,
    /// deployment or profile).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub watt_hours: Option<f64>,
}

/// The usage of `holds` within `[from, to)` (up to `now`), grouped `by`; rows by booking also
/// list `bookings` that were not used. Rows are ordered by key.
pub fn report(
    holds: &[Hold],
    bookings: &[Reservation],
    by: By,
    (from, to): (Timestamp, Timestamp),
    now: Timestamp,
) -> Vec<Row> {
    let mut rows: BTreeMap<Option<String>, Row> = BTreeMap::new();
    let mut add = |key: Option<String>, seconds: f64| {
        rows.entry(key.clone())
            .or_insert(Row {
                key,
                gpu_seconds: 0.0,
                booked_seconds: None,
                watt_hours: None,
            })
            .gpu_seconds += seconds;
    };
    match by {
        By::User | By::Deployment | By::Profile => {
            for hold in holds {
                let key = match by {
                    By::User => hold.owner.clone(),
                    By::Deployment => hold.deployment.clone(),
                    _ => hold.gpu.slug().to_owned(),
                };
                add(Some(key), hold.gpu_seconds(from, to, now));
            }
        }
        By::Booking | By::Course => {
            // A booking's row, or its course's; none for a course report of a booking of none.
            let key_of = |booking: Option<&Reservation>| match by {
                By::Course => booking.map(|b| b.course.clone()),
                _ => Some(booking.map(|b| b.id.clone())),
            };
            for (booking, seconds) in covered(holds, bookings, (from, to.min(now))) {
                let booking = booking.and_then(|id| bookings.iter().find(|b| b.id == id));
                if let Some(key) = key_of(booking).filter(|k| by == By::Booking || k.is_some()) {
                    add(key, seconds);
                }
            }
            for booking in bookings {
                let Some(key) = key_of(Some(booking)).filter(Option::is_some) else {
                    continue;
                };
                let booked = booking.gpus.len() as f64 * overlap((booking.start, booking.end), (from, to));
                let row = rows.entry(key.clone()).or_insert(Row {
                    key,
                    gpu_seconds: 0.0,
                    booked_seconds: None,
                    watt_hours: None,
                });
                row.booked_seconds = Some(row.booked_seconds.unwrap_or(0.0) + booked);
            }
        }
    }
    rows.into_values()
        .filter(|r| r.gpu_seconds > 0.0 || r.booked_seconds.is_some())
        .collect()
}

/// GPU-seconds of `holds` within `window`, by the booking that covered them (`None`: none).
fn covered(
    holds: &[Hold],
    bookings: &[Reservation],
    (from, to): (Timestamp, Timestamp),
) -> BTreeMap<Option<String>, f64> {
    let mut used: BTreeMap<Option<String>, f64> = BTreeMap::new();
    // Between two consecutive moments where a hold or a booking starts or ends, who holds
    // what and which bookings are active does not change.
    let mut moments: Vec<Timestamp> = vec![from, to];
    for hold in holds {
        moments.extend([hold.start, hold.until(to)]);
    }
    for booking in bookings {
        moments.extend([booking.start, booking.end]);
    }
    moments.retain(|t| (from..=to).contains(t));
    moments.sort();
    moments.dedup();
    for span in moments.windows(2) {
        let (start, end) = (span[0], span[1]);
        let seconds = overlap((start, end), (from, to));
        if seconds == 0.0 {
            continue;
        }
        // Each active booking's GPUs per profile, still free in this span.
        let mut free: Vec<(&Reservation, BTreeMap<Gpu, u32>)> = bookings
            .iter()
            .filter(|b| b.start <= start && end <= b.end)
            .map(|b| (b, b.counts()))
            .collect();
        free.sort_by_key(|(b, _)| (b.end, b.id.clone()));
        let mut active: Vec<&Hold> = holds
            .iter()
            .filter(|h| h.start <= start && end <= h.until(to))
            .collect();
        active.sort_by_key(|h| (h.start, h.pod_uid.clone()));
        for hold in active {
            let mut left = hold.count;
            // Bookings naming its deployment first, then its owner's naming none.
            for naming_it in [true, false] {
                for (booking, counts) in free.iter_mut() {
                    let applies = match &booking.deployment {
                        Some(deployment) => naming_it && *deployment == hold.deployment,
                        None => !naming_it && booking.users.contains(&hold.owner),
                    };
                    let available = counts.entry(hold.gpu).or_default();
                    if !applies || *available == 0 || left == 0 {
                        continue;
                    }
                    let taken = left.min(*available);
                    *available -= taken;
                    left -= taken;
                    *used.entry(Some(booking.id.clone())).or_default() += f64::from(taken) * seconds;
                }
            }
            if left > 0 {
                *used.entry(None).or_default() += f64::from(left) * seconds;
            }
        }
    }
    used
}

/// Power that pods' GPUs drew, as samples (time, watts) per pod name in time order; a sample
/// holds until the next one, at most `step` after it (a gap means no reading).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Power {
    /// The sampling step.
    pub step: jiff::SignedDuration,
    /// Samples by pod name.
    pub by_pod: std::collections::HashMap<String, Vec<(Timestamp, f64)>>,
}

impl Power {
    /// Watt-hours `hold`'s pod drew while the hold lasted, within `window` (up to `now`). A
    /// pod's name returns when a StatefulSet starts it again: only the samples within the
    /// hold's span are its.
    pub fn watt_hours(&self, hold: &Hold, (from, to): (Timestamp, Timestamp), now: Timestamp) -> f64 {
        let Some(samples) = self.by_pod.get(&hold.pod) else {
            return 0.0;
        };
        let span = (hold.start.max(from), hold.until(now).min(to));
        samples
            .iter()
            .enumerate()
            .map(|(i, (at, watts))| {
                let held_until = *at + self.step;
                let next = samples
                    .get(i + 1)
                    .map_or(held_until, |(next, _)| (*next).min(held_until));
                watts * overlap((*at, next), span) / 3600.0
            })
            .sum()
    }
}

/// Adds to `rows` (grouped `by` user, deployment or profile) the watt-hours their holds drew;
/// rows by booking or course get none (a booking covers GPU-seconds, not a pod's power).
pub fn add_energy(
    rows: &mut [Row],
    holds: &[Hold],
    by: By,
    power: &Power,
    window: (Timestamp, Timestamp),
    now: Timestamp,
) {
    let key_of = |hold: &Hold| match by {
        By::User => Some(hold.owner.clone()),
        By::Deployment => Some(hold.deployment.clone()),
        By::Profile => Some(hold.gpu.slug().to_owned()),
        By::Booking | By::Course => None,
    };
    for row in rows.iter_mut() {
        if matches!(by, By::Booking | By::Course) {
            continue;
        }
        let drawn: f64 = holds
            .iter()
            .filter(|h| key_of(h) == row.key)
            .map(|h| power.watt_hours(h, window, now))
            .sum();
        row.watt_hours = Some(drawn);
    }
}

#[cfg(test)]
mod tests;
