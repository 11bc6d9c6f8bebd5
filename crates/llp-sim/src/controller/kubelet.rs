//! The life of a scheduled pod, as a kubelet would report it: images are pulled
//! (ContainerCreating), containers start and write log lines, and images carrying a marker
//! crash into CrashLoopBackOff, get OOMKilled, or never pull (ImagePullBackOff). In a pod that
//! runs to completion (`restartPolicy` `OnFailure` or `Never`), a healthy container exits 0
//! after a while; with `Never` a crash is final too. A pod whose containers all exited is
//! `Succeeded`, or `Failed` when one failed.
//!
//! [`PodRun::step`] advances one pod to `now` and returns what happened (events, log lines);
//! [`PodRun::status`] renders the pod's `status` from that state alone.

use super::cluster::{ClusterSpec, Timings};
use super::events::Severity;
use crate::store::now as timestamp;
use serde_json::{Value, json};
use std::collections::HashMap;
use std::time::{Duration, Instant};

/// How an image behaves, from the markers in its reference.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Behaviour {
    /// Starts and keeps running.
    Healthy,
    /// Exits with code 1 a moment after each start.
    Crash,
    /// Is killed for memory a moment after each start.
    Oom,
    /// Cannot be pulled.
    PullError,
}

impl Behaviour {
    /// The behaviour of `image` in `cluster`.
    pub fn of(image: &str, cluster: &ClusterSpec) -> Self {
        let has = |marker: &str| !marker.is_empty() && image.contains(marker);
        if has(&cluster.pull_error_marker) {
            Behaviour::PullError
        } else if has(&cluster.oom_marker) {
            Behaviour::Oom
        } else if has(&cluster.crash_marker) {
            Behaviour::Crash
        } else {
            Behaviour::Healthy
        }
    }
}

#[derive(Debug, Clone)]
enum State {
    Creating {
        until: Instant,
    },
    Running {
        since: Instant,
        started_at: String,
        next_log: Instant,
    },
    /// Waiting to start again after a crash. Until `shown_waiting_from` the status shows the
    /// run that just ended (`terminated`), after it `waiting: CrashLoopBackOff`: Kubernetes
    /// 1.37's kubelet reports the crash first and the back-off only at its next sync.
    BackOff {
        until: Instant,
        shown_waiting_from: Instant,
        shown_waiting: bool,
    },
    PullBackOff {
        reason: &'static str,
    },
    /// An environment variable's Secret or ConfigMap key is missing; retried each step.
    ConfigError {
        message: String,
    },
    /// Exited for good (a pod that runs to completion).
    Exited {
        terminated: Terminated,
    },
}

/// What a container does when it exits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Restart {
    /// Starts again, whatever the exit (`Always`): a healthy container never exits.
    Always,
    /// Starts again after a failure; a healthy container completes (`OnFailure`).
    OnFailure,
    /// Never starts again (`Never`).
    Never,
}

#[derive(Debug, Clone)]
struct Terminated {
    exit_code: i32,
    reason: &'static str,
    started_at: String,
    finished_at: String,
}

/// One container of a running pod.
#[derive(Debug, Clone)]
struct ContainerRun {
    name: String,
    image: String,
    behaviour: Behaviour,
    state: State,
    restarts: u32,
    last_terminated: Option<Terminated>,
    /// The termination before `last_terminated` (the `lastState` while the status still shows
    /// the run that just ended).
    prior_terminated: Option<Terminated>,
    lines: u64,
    restart: Restart,
}

/// Something a pod step produced.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Effect {
    /// An Event about the pod.
    Event {
        severity: Severity,
        reason: String,
        message: String,
    },
    /// A line a container wrote.
    Log { container: String, text: String },
    /// A container's run ended; its lines become the previous run's.
    RunEnded { container: String },
    /// A container exited for good (its pod runs to completion); its lines stay current.
    Exited { container: String },
}

/// The simulated kubelet's view of one pod.
#[derive(Debug, Clone)]
pub struct PodRun {
    start_time: String,
    init: Vec<(String, String)>,
    init_finished: Option<String>,
    containers: Vec<ContainerRun>,
    pull: Duration,
}

impl PodRun {
    /// Starts the life of `pod`, just bound to a node.
    pub fn new(pod: &Value, cluster: &ClusterSpec, now: Instant) -> Self {
        let list = |key: &str| -> Vec<(String, String)> {
            pod["spec"][key]
                .as_array()
                .into_iter()
                .flatten()
                .map(|c| {
                    (
                        c["name"].as_str().unwrap_or_default().to_owned(),
                        c["image"].as_str().unwrap_or_default().to_owned(),
                    )
                })
                .collect()
        };
        let restart = match pod["spec"]["restartPolicy"].as_str() {
            Some("OnFailure") => Restart::OnFailure,
            Some("Never") => Restart::Never,
            _ => Restart::Always,
        };
        let containers = list("containers")
            .into_iter()
            .map(|(name, image)| ContainerRun {
                restart,
                behaviour: Behaviour::of(&image, cluster),
                name,
                image,
                state: State::Creating {
                    until: now + cluster.timings.pull,
                },
                restarts: 0,
                last_terminated: None,
                prior_terminated: None,
                lines: 0,
            })
            .collect();
        Self {
            start_time: timestamp(),
            init: list("initContainers"),
            init_finished: None,
            containers,
            pull: cluster.timings.pull,
        }
    }

    /// Advances the pod to `now`; `config_errors` holds, by container, why its environment
    /// cannot be made now (a missing Secret or ConfigMap key, in the kubelet's words).
    pub fn step(&mut self, now: Instant, timings: &Timings, config_errors: &HashMap<String, String>) -> Vec<Effect> {
        let mut effects = Vec::new();
        if self.init_finished.is_none() {
            for (name, image) in &self.init {
                effects.push(event(
                    Severity::Normal,
                    "Pulled",
                    format!("Container image \"{image}\" already present on machine"),
                ));
                effects.push(Effect::Log {
                    container: name.clone(),
                    text: format!("llp-sim: init container {name} done"),
                });
            }
            self.init_finished = Some(timestamp());
            for c in &self.containers {
                effects.push(event(
                    Severity::Normal,
                    "Pulling",
                    format!("Pulling image \"{}\"", c.image),
                ));
            }
        }
        for c in &mut self.containers {
            let config_error = config_errors.get(&c.name);
            step_container(c, now, timings, self.pull, config_error, &mut effects);
        }
        effects
    }

    /// Whether a step at `now` can change anything: a container to start, crash, finish or
    /// log a line, or one waiting for a Secret or ConfigMap key (looked up each pass). Mirrors
    /// [`step_container`]'s conditions, so the kubelet passes over a settled pod without
    /// reading the store (most of a pass with thousands of pods running).
    pub fn due(&self, now: Instant, timings: &Timings) -> bool {
        self.init_finished.is_none()
            || self.containers.iter().any(|c| match &c.state {
                State::Creating { until } => now >= *until,
                State::BackOff {
                    until,
                    shown_waiting_from,
                    shown_waiting,
                } => now >= *until || (!shown_waiting && now >= *shown_waiting_from),
                State::Running { since, next_log, .. } => {
                    let dies = matches!(c.behaviour, Behaviour::Crash | Behaviour::Oom);
                    let completes = c.behaviour == Behaviour::Healthy && c.restart != Restart::Always;
                    now >= *next_log
                        || (dies && now >= *since + timings.crash_after)
                        || (completes && now >= *since + timings.complete_after)
                }
                State::ConfigError { .. } => true,
                State::PullBackOff { .. } | State::Exited { .. } => false,
            })
    }

    /// The names of the pod's (app) containers.
    pub fn container_names(&self) -> impl Iterator<Item = &str> {
        self.containers.iter().map(|c| c.name.as_str())
    }

    /// Whether every container runs (the pod is Ready).
    pub fn ready(&self) -> bool {
        self.containers.iter().all(|c| matches!(c.state, State::Running { .. }))
    }

    /// `Succeeded` or `Failed` once every container exited for good.
    fn finished(&self) -> Option<&'static str> {
        let codes: Option<Vec<i32>> = self
            .containers
            .iter()
            .map(|c| match &c.state {
                State::Exited { terminated } => Some(terminated.exit_code),
                _ => None,
            })
            .collect();
        let codes = codes.filter(|c| !c.is_empty())?;
        Some(if codes.iter().all(|c| *c == 0) {
            "Succeeded"
        } else {
            "Failed"
        })
    }

    /// The pod's `status`.
    pub fn status(&self, pod_ip: &str) -> Value {
        let containers: Vec<Value> = self.containers.iter().map(container_status).collect();
        let init: Vec<Value> = self
            .init
            .iter()
            .map(|(name, image)| {
                json!({
                    "name": name, "image": image, "imageID": format!("{image}@sha256:llp-sim"), "ready": true,
                    "started": false, "restartCount": 0,
                    "state": {"terminated": {"exitCode": 0, "reason": "Completed", "startedAt": self.start_time,
                        "finishedAt": self.init_finished.clone().unwrap_or_default()}},
                })
            })
            .collect();
        let ready = self.ready();
        let condition = |kind: &str, ok: bool| json!({"type": kind, "status": if ok { "True" } else { "False" }, "lastProbeTime": null, "lastTransitionTime": self.start_time});
        let any_started = self
            .containers
            .iter()
            .any(|c| c.restarts > 0 || matches!(c.state, State::Running { .. } | State::Exited { .. }));
        let phase = match self.finished() {
            Some(finished) => finished,
            None if any_started => "Running",
            None => "Pending",
        };
        let mut status = json!({
            "phase": phase,
            "hostIP": "10.0.0.1",
            "podIP": pod_ip,
            "startTime": self.start_time,
            "conditions": [
                condition("PodScheduled", true),
                condition("Initialized", self.init_finished.is_some()),
                condition("ContainersReady", ready),
                condition("Ready", ready),
            ],
            "containerStatuses": containers,
        });
        if !init.is_empty() {
            status["initContainerStatuses"] = json!(init);
        }
        status
    }
}

fn event(severity: Severity, reason: &str, message: String) -> Effect {
    Effect::Event {
        severity,
        reason: reason.to_owned(),
        message,
    }
}

fn step_container(
    c: &mut ContainerRun,
    now: Instant,
    timings: &Timings,
    pull: Duration,
    config_error: Option<&String>,
    effects: &mut Vec<Effect>,
) {
    match c.state.clone() {
        State::ConfigError { message } => match config_error {
            None => {
                c.state = State::Creating { until: now };
                step_container(c, now, timings, pull, None, effects);
            }
            Some(now_missing) if *now_missing != message => {
                effects.push(event(Severity::Warning, "Failed", format!("Error: {now_missing}")));
                c.state = State::ConfigError {
                    message: now_missing.clone(),
                };
            }
            Some(_) => {}
        },
        State::Creating { until } if now >= until && config_error.is_some() => {
            let message = config_error.cloned().unwrap_or_default();
            effects.push(event(Severity::Warning, "Failed", format!("Error: {message}")));
            c.state = State::ConfigError { message };
        }
        State::Creating { until } if now >= until => {
            if c.behaviour == Behaviour::PullError {
                let message = format!(
                    "Failed to pull image \"{}\": rpc error: code = NotFound desc = failed to pull and unpack image \"{}\": not found",
                    c.image, c.image
                );
                effects.push(event(Severity::Warning, "Failed", message));
                effects.push(event(Severity::Warning, "Failed", "Error: ErrImagePull".into()));
                effects.push(event(
                    Severity::Normal,
                    "BackOff",
                    format!("Back-off pulling image \"{}\"", c.image),
                ));
                c.state = State::PullBackOff {
                    reason: "ImagePullBackOff",
                };
                return;
            }
            if c.restarts == 0 {
                effects.push(event(
                    Severity::Normal,
                    "Pulled",
                    format!("Successfully pulled image \"{}\" in {}ms", c.image, pull.as_millis()),
                ));
            }
            effects.push(event(
                Severity::Normal,
                "Created",
                format!("Created container: {}", c.name),
            ));
            effects.push(event(
                Severity::Normal,
                "Started",
                format!("Started container {}", c.name),
            ));
            c.lines += 1;
            effects.push(Effect::Log {
                container: c.name.clone(),
                text: format!("llp-sim: {} started ({})", c.name, c.image),
            });
            c.state = State::Running {
                since: now,
                started_at: timestamp(),
                next_log: now + timings.log_every,
            };
        }
        State::Running {
            since,
            started_at,
            next_log,
        } => {
            let dies = matches!(c.behaviour, Behaviour::Crash | Behaviour::Oom) && now >= since + timings.crash_after;
            let completes = c.behaviour == Behaviour::Healthy
                && c.restart != Restart::Always
                && now >= since + timings.complete_after;
            if completes {
                c.lines += 1;
                let line = format!("llp-sim: {} finished", c.name);
                exit_for_good(c, (0, "Completed", &line), started_at, effects);
            } else if dies && c.restart == Restart::Never {
                exit_for_good(c, last_words(c.behaviour), started_at, effects);
            } else if dies {
                let (exit_code, reason, last_words) = last_words(c.behaviour);
                effects.push(Effect::Log {
                    container: c.name.clone(),
                    text: last_words.into(),
                });
                effects.push(Effect::RunEnded {
                    container: c.name.clone(),
                });
                c.prior_terminated = c.last_terminated.replace(Terminated {
                    exit_code,
                    reason,
                    started_at,
                    finished_at: timestamp(),
                });
                c.restarts += 1;
                let backoff = timings.backoff * 2u32.pow(c.restarts.saturating_sub(1).min(3));
                c.state = State::BackOff {
                    until: now + backoff,
                    shown_waiting_from: now + backoff / 2,
                    shown_waiting: false,
                };
            } else if now >= next_log {
                c.lines += 1;
                effects.push(Effect::Log {
                    container: c.name.clone(),
                    text: format!("llp-sim: {} is running (line {})", c.name, c.lines),
                });
                c.state = State::Running {
                    since,
                    started_at,
                    next_log: now + timings.log_every,
                };
            }
        }
        State::BackOff { until, .. } if now >= until => {
            c.state = State::Creating { until: now };
            step_container(c, now, timings, pull, config_error, effects);
        }
        State::BackOff {
            until,
            shown_waiting_from,
            shown_waiting: false,
        } if now >= shown_waiting_from => {
            effects.push(event(
                Severity::Warning,
                "BackOff",
                format!("Back-off restarting failed container {}", c.name),
            ));
            c.state = State::BackOff {
                until,
                shown_waiting_from,
                shown_waiting: true,
            };
        }
        _ => {}
    }
}

/// A container of a run to completion exits for good with `(exit code, reason, last line)`;
/// its lines stay the current run's.
fn exit_for_good(
    c: &mut ContainerRun,
    (exit_code, reason, last_words): (i32, &'static str, &str),
    started_at: String,
    effects: &mut Vec<Effect>,
) {
    effects.push(Effect::Log {
        container: c.name.clone(),
        text: last_words.to_owned(),
    });
    effects.push(Effect::Exited {
        container: c.name.clone(),
    });
    c.state = State::Exited {
        terminated: Terminated {
            exit_code,
            reason,
            started_at,
            finished_at: timestamp(),
        },
    };
}

/// Exit code, reason and last log line of a container that dies.
fn last_words(behaviour: Behaviour) -> (i32, &'static str, &'static str) {
    match behaviour {
        Behaviour::Oom => (137, "OOMKilled", "llp-sim: allocating beyond the memory limit"),
        _ => (1, "Error", "llp-sim: fatal error, exiting with code 1"),
    }
}

fn container_status(c: &ContainerRun) -> Value {
    let state = match &c.state {
        State::Creating { .. } if c.restarts == 0 => json!({"waiting": {"reason": "ContainerCreating"}}),
        State::BackOff {
            shown_waiting: false, ..
        } if c.last_terminated.is_some() => {
            let t = c.last_terminated.as_ref().expect("a crash before the back-off");
            json!({"terminated": {
                "exitCode": t.exit_code, "reason": t.reason, "startedAt": t.started_at, "finishedAt": t.finished_at,
            }})
        }
        State::Creating { .. } | State::BackOff { .. } => json!({"waiting": {
            "reason": "CrashLoopBackOff",
            "message": format!("back-off restarting failed container {}", c.name),
        }}),
        State::PullBackOff { reason } => json!({"waiting": {
            "reason": reason,
            "message": format!("Back-off pulling image \"{}\": not found", c.image),
        }}),
        State::Running { started_at, .. } => json!({"running": {"startedAt": started_at}}),
        State::ConfigError { message } => {
            json!({"waiting": {"reason": "CreateContainerConfigError", "message": message}})
        }
        State::Exited { terminated: t } => json!({"terminated": {
            "exitCode": t.exit_code, "reason": t.reason, "startedAt": t.started_at, "finishedAt": t.finished_at,
        }}),
    };
    let mut status = json!({
        "name": c.name,
        "image": c.image,
        "imageID": if matches!(c.state, State::PullBackOff { .. }) { String::new() } else { format!("{}@sha256:llp-sim", c.image) },
        "ready": matches!(c.state, State::Running { .. }),
        "started": matches!(c.state, State::Running { .. }),
        "restartCount": c.restarts,
        "state": state,
        "lastState": {},
    });
    let showing_the_crash = matches!(
        c.state,
        State::BackOff {
            shown_waiting: false,
            ..
        }
    );
    let last = if showing_the_crash {
        &c.prior_terminated
    } else {
        &c.last_terminated
    };
    if let Some(t) = last {
        status["lastState"] = json!({"terminated": {
            "exitCode": t.exit_code, "reason": t.reason, "startedAt": t.started_at, "finishedAt": t.finished_at,
        }});
    }
    status
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pod(image: &str) -> Value {
        json!({"spec": {"containers": [{"name": "app", "image": image}]}})
    }

    fn run(image: &str, steps: &[u64]) -> (PodRun, Vec<Effect>) {
        run_with(pod(image), steps)
    }

    fn run_with(pod: Value, steps: &[u64]) -> (PodRun, Vec<Effect>) {
        let cluster = ClusterSpec {
            timings: Timings::fast(),
            ..ClusterSpec::default()
        };
        let start = Instant::now();
        let mut run = PodRun::new(&pod, &cluster, start);
        let mut effects = Vec::new();
        for ms in steps {
            effects.extend(run.step(start + Duration::from_millis(*ms), &cluster.timings, &HashMap::new()));
        }
        (run, effects)
    }

    /// `due` is what lets the kubelet pass over a pod: whenever it says no, a step changes
    /// nothing (no effect, the same status), for every behaviour and restart policy.
    #[test]
    fn a_pod_that_is_not_due_would_not_change() {
        let cluster = ClusterSpec {
            timings: Timings::fast(),
            ..ClusterSpec::default()
        };
        let images = ["nginx", "example/crash:1", "example/oom:1", "example/no-such-image:1"];
        for (image, policy) in images
            .iter()
            .flat_map(|i| ["Always", "OnFailure", "Never"].map(|p| (*i, p)))
        {
            let pod = json!({"spec": {"restartPolicy": policy, "containers": [{"name": "app", "image": image}]}});
            let start = Instant::now();
            let mut run = PodRun::new(&pod, &cluster, start);
            let (mut due, mut settled) = (0, 0);
            for ms in (0..3_000).step_by(7) {
                let now = start + Duration::from_millis(ms);
                if run.due(now, &cluster.timings) {
                    due += 1;
                } else {
                    settled += 1;
                    let mut probe = run.clone();
                    let effects = probe.step(now, &cluster.timings, &HashMap::new());
                    assert!(effects.is_empty(), "{image} {policy} at {ms} ms: {effects:?}");
                    assert_eq!(probe.status("ip"), run.status("ip"), "{image} {policy} at {ms} ms");
                }
                run.step(now, &cluster.timings, &HashMap::new());
            }
            assert!(due > 0 && settled > 0, "{image} {policy}: {due} due, {settled} settled");
        }
    }

    fn waiting_reason(run: &PodRun) -> Value {
        run.status("10.244.0.1")["containerStatuses"][0]["state"]["waiting"]["reason"].clone()
    }

    #[test]
    fn a_healthy_image_goes_from_container_creating_to_running() {
        let (creating, _) = run("nginx", &[0]);
        assert_eq!(waiting_reason(&creating), "ContainerCreating");
        assert_eq!(creating.status("ip")["phase"], "Pending");
        let (running, effects) = run("nginx", &[0, 60]);
        assert!(running.ready());
        assert_eq!(running.status("ip")["phase"], "Running");
        assert!(
            effects
                .iter()
                .any(|e| matches!(e, Effect::Event { reason, .. } if reason == "Started"))
        );
    }

    #[test]
    fn between_restarts_the_crash_shows_first_then_the_back_off_as_the_kubelet_shows_them() {
        // Timings::fast(): running at 60 ms, crashed at 170, back-off 100 ms, half of it shown
        // as the crash.
        let (crashed, _) = run("crash:1", &[0, 60, 170]);
        let c = &crashed.status("ip")["containerStatuses"][0];
        assert_eq!(c["state"]["terminated"]["reason"], "Error", "{c}");
        assert_eq!(c["restartCount"], 1);
        assert_eq!(c["lastState"], json!({}), "no run ended before this one: {c}");
        let (backing_off, _) = run("crash:1", &[0, 60, 170, 230]);
        let c = &backing_off.status("ip")["containerStatuses"][0];
        assert_eq!(c["state"]["waiting"]["reason"], "CrashLoopBackOff", "{c}");
        assert_eq!(c["lastState"]["terminated"]["exitCode"], 1);
    }

    #[test]
    fn a_crashing_image_loops_with_back_off_and_exit_code() {
        let (run, effects) = run("crash:1", &[0, 60, 200, 260]);
        let status = run.status("ip");
        let c = &status["containerStatuses"][0];
        assert_eq!(c["state"]["waiting"]["reason"], "CrashLoopBackOff");
        assert_eq!(c["restartCount"], 1);
        assert_eq!(c["lastState"]["terminated"]["exitCode"], 1);
        assert!(effects.contains(&Effect::RunEnded {
            container: "app".into()
        }));
    }

    fn run_to_completion(image: &str, policy: &str, steps: &[u64]) -> Value {
        let pod = json!({"spec": {"restartPolicy": policy, "containers": [{"name": "app", "image": image}]}});
        run_with(pod, steps).0.status("ip")
    }

    #[test]
    fn a_healthy_container_of_a_run_to_completion_pod_exits_0_and_the_pod_succeeds() {
        for policy in ["Never", "OnFailure"] {
            let running = run_to_completion("trainer", policy, &[0, 60, 200]);
            assert_eq!(running["phase"], "Running", "{policy}");
            let done = run_to_completion("trainer", policy, &[0, 60, 200, 400]);
            assert_eq!(done["phase"], "Succeeded", "{policy}");
            let state = &done["containerStatuses"][0]["state"]["terminated"];
            assert_eq!((&state["exitCode"], &state["reason"]), (&json!(0), &json!("Completed")));
        }
        let always = run_to_completion("trainer", "Always", &[0, 60, 200, 400, 1000]);
        assert_eq!(always["phase"], "Running", "a service never completes");
    }

    #[test]
    fn a_crash_is_final_with_never_and_restarts_with_on_failure() {
        let never = run_to_completion("crash:1", "Never", &[0, 60, 200, 400]);
        assert_eq!(never["phase"], "Failed");
        let c = &never["containerStatuses"][0];
        assert_eq!(
            (&c["restartCount"], &c["state"]["terminated"]["exitCode"]),
            (&json!(0), &json!(1))
        );
        let on_failure = run_to_completion("crash:1", "OnFailure", &[0, 60, 200]);
        assert_eq!(on_failure["phase"], "Running");
        assert_eq!(on_failure["containerStatuses"][0]["restartCount"], 1);
    }

    #[test]
    fn an_oom_image_is_killed_with_137() {
        let (killed, _) = run("oom-app", &[0, 60, 200]);
        let c = &killed.status("ip")["containerStatuses"][0];
        assert_eq!(c["state"]["terminated"]["reason"], "OOMKilled", "{c}");
        assert_eq!(c["state"]["terminated"]["exitCode"], 137, "{c}");
        let (backing_off, _) = run("oom-app", &[0, 60, 200, 260]);
        let c = &backing_off.status("ip")["containerStatuses"][0];
        assert_eq!(c["lastState"]["terminated"]["reason"], "OOMKilled", "{c}");
    }

    #[test]
    fn a_missing_image_backs_off_pulling() {
        let (run, _) = run("registry/no-such-image:1", &[0, 60]);
        assert_eq!(waiting_reason(&run), "ImagePullBackOff");
        assert!(!run.ready());
    }

    #[test]
    fn a_missing_config_key_holds_the_container_until_it_is_set() {
        let cluster = ClusterSpec {
            timings: Timings::fast(),
            ..ClusterSpec::default()
        };
        let start = Instant::now();
        let mut run = PodRun::new(&pod("nginx"), &cluster, start);
        let missing = HashMap::from([(
            "app".to_owned(),
            "couldn't find key mode in ConfigMap ns/sd-1".to_owned(),
        )]);
        let later = |ms| start + Duration::from_millis(ms);
        let effects = run.step(later(1_000), &cluster.timings, &missing);
        let status = run.status("ip");
        assert_eq!(
            status["containerStatuses"][0]["state"]["waiting"]["reason"],
            "CreateContainerConfigError"
        );
        assert_eq!(
            status["containerStatuses"][0]["state"]["waiting"]["message"],
            missing["app"]
        );
        assert!(
            effects
                .iter()
                .any(|e| matches!(e, Effect::Event { reason, .. } if reason == "Failed"))
        );
        run.step(later(1_100), &cluster.timings, &HashMap::new());
        assert!(run.ready(), "starts once the key is there");
    }
}
