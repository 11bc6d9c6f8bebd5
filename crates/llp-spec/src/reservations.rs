//! GPU reservations (SPEC section 10): which bookings cover a deployment's GPUs now, and the
//! exact shortfall when they do not. Pure: the caller brings the bookings, the clock and what
//! the owner's other deployments hold.
//!
//! What counts for a deployment: the active bookings that name it; if none does, the owner's
//! active bookings that name no deployment, a budget shared by the owner's deployments that
//! draw on it (what those already hold is not available twice).

use crate::spec::Gpu;
use jiff::Timestamp;
use k8s_openapi::api::core::v1::PodSpec;
use serde::Serialize;
use std::collections::BTreeMap;

/// GPUs per profile.
pub type GpuCounts = BTreeMap<Gpu, u32>;

/// One booking of GPUs for a time window.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Reservation {
    /// The booking's id.
    pub id: String,
    /// One entry per booked GPU, by slug (`gpu-l`, `gpu-m`, `gpu-s`, `gpu-xs`).
    #[cfg_attr(feature = "openapi", schema(value_type = Vec<String>, example = json!(["gpu-xs"])))]
    #[serde(serialize_with = "slugs")]
    pub gpus: Vec<Gpu>,
    /// Active from (inclusive).
    #[cfg_attr(feature = "openapi", schema(value_type = String, format = DateTime))]
    pub start: Timestamp,
    /// Active until (exclusive).
    #[cfg_attr(feature = "openapi", schema(value_type = String, format = DateTime))]
    pub end: Timestamp,
    /// The deployment record it is for; none: any deployment of its users.
    pub deployment: Option<String>,
    /// Who it is for (user ids): those it names, and, for a course's booking, the course's
    /// collaborators and members (as the record source reads them).
    pub users: Vec<String>,
    /// The course it is for, if any (SPEC section 10): its people count as named.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub course: Option<String>,
}

fn slugs<S: serde::Serializer>(gpus: &[Gpu], serializer: S) -> Result<S::Ok, S::Error> {
    serializer.collect_seq(gpus.iter().map(|g| g.slug()))
}

impl Reservation {
    /// Whether it is active at `now` (start ≤ now < end).
    pub fn active_at(&self, now: Timestamp) -> bool {
        self.start <= now && now < self.end
    }

    /// Its GPUs per profile.
    pub fn counts(&self) -> GpuCounts {
        let mut counts = GpuCounts::new();
        for gpu in &self.gpus {
            *counts.entry(*gpu).or_default() += 1;
        }
        counts
    }
}

impl Gpu {
    /// The LLP's slug of the profile in `gpu_reservations.gpus`.
    pub fn slug(self) -> &'static str {
        match self {
            Gpu::Full => "gpu-l",
            Gpu::Mig3g40gb => "gpu-m",
            Gpu::Mig2g20gb => "gpu-s",
            Gpu::Mig1g10gb => "gpu-xs",
        }
    }

    /// The profile of a slug.
    pub fn from_slug(slug: &str) -> Option<Gpu> {
        Gpu::ALL.into_iter().find(|g| g.slug() == slug)
    }

    /// The profile of a Kubernetes resource name.
    pub fn from_resource_name(name: &str) -> Option<Gpu> {
        Gpu::ALL.into_iter().find(|g| g.resource_name() == name)
    }
}

/// The GPUs one pod of `pod` holds, as the scheduler counts them: the app containers' limits
/// summed, or an init container's if larger.
pub fn pod_gpus(pod: &PodSpec) -> GpuCounts {
    let limits = |c: &k8s_openapi::api::core::v1::Container| -> GpuCounts {
        let mut counts = GpuCounts::new();
        for (name, quantity) in c.resources.iter().flat_map(|r| r.limits.iter().flatten()) {
            if let (Some(gpu), Ok(n)) = (Gpu::from_resource_name(name), quantity.0.parse::<u32>()) {
                *counts.entry(gpu).or_default() += n;
            }
        }
        counts
    };
    let mut total = GpuCounts::new();
    for container in &pod.containers {
        for (gpu, n) in limits(container) {
            *total.entry(gpu).or_default() += n;
        }
    }
    for init in pod.init_containers.iter().flatten() {
        for (gpu, n) in limits(init) {
            let entry = total.entry(gpu).or_default();
            *entry = (*entry).max(n);
        }
    }
    total.retain(|_, n| *n > 0);
    total
}

/// `per_pod` × `replicas`.
pub fn times(per_pod: &GpuCounts, replicas: u32) -> GpuCounts {
    per_pod
        .iter()
        .map(|(gpu, n)| (*gpu, n * replicas))
        .filter(|(_, n)| *n > 0)
        .collect()
}

/// A change that would run `replicas` pods of a deployment, each holding `per_pod`.
#[derive(Debug, Clone)]
pub struct Demand<'a> {
    /// The deployment record's id.
    pub deployment: &'a str,
    /// Its owner, whose bookings without a deployment form the budget.
    pub owner: &'a str,
    /// GPUs of one pod.
    pub per_pod: GpuCounts,
    /// Pods.
    pub replicas: u32,
}

/// What another deployment of the owner holds now (its running replicas' GPUs).
#[derive(Debug, Clone)]
pub struct Holding {
    /// That deployment's id.
    pub deployment: String,
    /// Its GPUs.
    pub gpus: GpuCounts,
}

/// Enough is booked: until when the bookings used last (`None` when no GPU is needed).
pub type Admitted = Option<Timestamp>;

/// Too little is booked, profile by profile.
#[derive(Debug, Clone, PartialEq)]
pub struct Shortfall {
    /// Pods asked for.
    pub replicas: u32,
    /// One entry per profile that is short.
    pub profiles: Vec<ProfileShortfall>,
}

/// One profile of a [`Shortfall`].
#[derive(Debug, Clone, PartialEq)]
pub struct ProfileShortfall {
    /// The profile.
    pub gpu: Gpu,
    /// GPUs needed.
    pub needed: u32,
    /// GPUs booked by the bookings that count, active now.
    pub booked: u32,
    /// Of those, held by the owner's other deployments.
    pub held_elsewhere: u32,
    /// When the earliest of the counted bookings of this profile ends.
    pub until: Option<Timestamp>,
    /// When the next booking of this profile starts, if one is ahead.
    pub next_start: Option<Timestamp>,
}

impl std::fmt::Display for Shortfall {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let pods = if self.replicas == 1 { "replica" } else { "replicas" };
        let parts: Vec<String> = self
            .profiles
            .iter()
            .map(|p| {
                let mut text = format!(
                    "needs {} × {} ({}) for {} {pods}; your reservations active now cover {}",
                    p.needed,
                    p.gpu.resource_name(),
                    p.gpu.slug(),
                    self.replicas,
                    p.booked - p.held_elsewhere,
                );
                if p.held_elsewhere > 0 {
                    text.push_str(&format!(
                        " ({} booked, {} held by your other deployments)",
                        p.booked, p.held_elsewhere
                    ));
                }
                if let Some(until) = p.until {
                    text.push_str(&format!(" (until {})", readable(until)));
                }
                if let Some(next) = p.next_start {
                    text.push_str(&format!("; your next reservation of it starts {}", readable(next)));
                }
                text
            })
            .collect();
        write!(f, "not enough reserved GPUs: {}.", parts.join("; "))
    }
}

/// `27 Nov 18:00 UTC`.
pub fn readable(time: Timestamp) -> String {
    time.strftime("%-d %b %H:%M UTC").to_string()
}

/// Whether the bookings cover `demand` at `now`, given what the owner's other deployments
/// hold.
pub fn admit(
    demand: &Demand<'_>,
    reservations: &[Reservation],
    others: &[Holding],
    now: Timestamp,
) -> Result<Admitted, Shortfall> {
    let needed = times(&demand.per_pod, demand.replicas);
    if needed.is_empty() {
        return Ok(None);
    }
    let names = |r: &Reservation, id: &str| r.deployment.as_deref() == Some(id);
    let active_for = |id: &str| -> Vec<&Reservation> {
        reservations
            .iter()
            .filter(|r| r.active_at(now) && names(r, id))
            .collect()
    };
    let own = active_for(demand.deployment);
    let budget = |r: &Reservation| r.deployment.is_none() && r.users.iter().any(|u| u == demand.owner);
    let (counted, held): (Vec<&Reservation>, GpuCounts) = if own.is_empty() {
        let pool = reservations.iter().filter(|r| r.active_at(now) && budget(r)).collect();
        let mut held = GpuCounts::new();
        for other in others
            .iter()
            .filter(|o| o.deployment != demand.deployment && active_for(&o.deployment).is_empty())
        {
            for (gpu, n) in &other.gpus {
                *held.entry(*gpu).or_default() += n;
            }
        }
        (pool, held)
    } else {
        (own, GpuCounts::new())
    };
    let counted_for = |gpu: Gpu| counted.iter().filter(move |r| r.gpus.contains(&gpu));
    let mut short = Vec::new();
    for (gpu, need) in &needed {
        let booked: u32 = counted_for(*gpu).map(|r| r.counts()[gpu]).sum();
        let held_elsewhere = held.get(gpu).copied().unwrap_or(0).min(booked);
        if booked - held_elsewhere < *need {
            let upcoming = reservations
                .iter()
                .filter(|r| r.start > now && r.gpus.contains(gpu))
                .filter(|r| names(r, demand.deployment) || budget(r));
            short.push(ProfileShortfall {
                gpu: *gpu,
                needed: *need,
                booked,
                held_elsewhere,
                until: counted_for(*gpu).map(|r| r.end).min(),
                next_start: upcoming.map(|r| r.start).min(),
            });
        }
    }
    if !short.is_empty() {
        return Err(Shortfall {
            replicas: demand.replicas,
            profiles: short,
        });
    }
    Ok(needed.keys().flat_map(|gpu| counted_for(*gpu).map(|r| r.end)).min())
}

/// A deployment whose pods hold GPUs now.
#[derive(Debug, Clone)]
pub struct Running {
    /// Its record id.
    pub deployment: String,
    /// Its owner.
    pub owner: String,
    /// GPUs of one pod.
    pub per_pod: GpuCounts,
    /// Pods.
    pub replicas: u32,
}

/// Whether a running deployment is still covered.
#[derive(Debug, Clone, PartialEq)]
pub enum Verdict {
    /// Covered, until when the bookings used last.
    Covered(Admitted),
    /// No longer covered: it is to stop.
    Uncovered(Shortfall),
    /// Covered by the bookings alone, but the owner's deployments started earlier hold them
    /// (more was admitted than booked, e.g. before admission was one step per owner): it is
    /// to stop.
    Overbooked(Shortfall),
}

/// Reviews running deployments against the bookings at `now`, in the order given (oldest
/// first): when an owner's shared budget shrinks, the deployments started first keep it and
/// the later ones stop.
pub fn review(running: &[Running], reservations: &[Reservation], now: Timestamp) -> Vec<Verdict> {
    let mut kept: Vec<(String, Holding)> = Vec::new();
    running
        .iter()
        .map(|r| {
            let others: Vec<Holding> = kept
                .iter()
                .filter(|(owner, _)| *owner == r.owner)
                .map(|(_, h)| h.clone())
                .collect();
            let demand = Demand {
                deployment: &r.deployment,
                owner: &r.owner,
                per_pod: r.per_pod.clone(),
                replicas: r.replicas,
            };
            match admit(&demand, reservations, &others, now) {
                Ok(until) => {
                    kept.push((
                        r.owner.clone(),
                        Holding {
                            deployment: r.deployment.clone(),
                            gpus: times(&r.per_pod, r.replicas),
                        },
                    ));
                    Verdict::Covered(until)
                }
                Err(short) if admit(&demand, reservations, &[], now).is_ok() => Verdict::Overbooked(short),
                Err(short) => Verdict::Uncovered(short),
            }
        })
        .collect()
}

#[cfg(test)]
mod tests;
