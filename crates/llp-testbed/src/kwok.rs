//! What kwok makes of pods, written for llp-k8s's scenarios: kwok has no container runtime, so
//! these stages move pods through the phases a kubelet would report, with the same image
//! markers as the simulator (`crash`, `oom`, `no-such-image`), and its kubelet endpoint serves
//! fixed log files (current and previous run) for `pods/log`.
//!
//! The stages' selectors are disjoint, since kwok picks one at random among those that match.

use std::path::Path;

/// The image markers, as a jq regular expression.
const MARKED: &str = "crash|oom|no-such-image";

/// The kwok configuration (Stages and ClusterLogs) for logs written under `dir`.
pub fn config(dir: &Path) -> String {
    let current = dir.join("container.log");
    let previous = dir.join("previous.log");
    let mut text = STAGES.replace("{MARKED}", MARKED);
    text.push_str(&format!(
        "---\napiVersion: kwok.x-k8s.io/v1alpha1\nkind: ClusterLogs\nmetadata:\n  name: every-pod\nspec:\n  logs:\n  - logsFile: {}\n    previousLogsFile: {}\n    follow: true\n",
        current.display(),
        previous.display()
    ));
    text
}

/// The log files kwok serves: CRI log format, as a container runtime writes them.
pub fn write_logs(dir: &Path) -> std::io::Result<()> {
    let line = |time: &str, text: &str| format!("{time} stdout F {text}\n");
    std::fs::write(
        dir.join("container.log"),
        [
            line(
                "2026-01-01T00:00:00.000000000Z",
                "llp-testbed: the container started (kwok: no container runtime, no image pulled)",
            ),
            line("2026-01-01T00:00:01.000000000Z", "llp-testbed: serving"),
        ]
        .concat(),
    )?;
    std::fs::write(
        dir.join("previous.log"),
        line(
            "2025-12-31T23:59:59.000000000Z",
            "llp-testbed: the previous run of the container exited",
        ),
    )
}

const STAGES: &str = r#"apiVersion: kwok.x-k8s.io/v1alpha1
kind: Stage
metadata:
  name: llp-node-ready
spec:
  resourceRef: {apiGroup: v1, kind: Node}
  selector:
    matchExpressions:
    - {key: '.status.conditions.[] | select(.type == "Ready") | .status', operator: NotIn, values: ["True"]}
  next:
    statusTemplate: |
      {{ $now := Now }}
      conditions:
      - {type: Ready, status: "True", reason: KubeletReady, message: "kubelet is posting ready status (kwok)", lastHeartbeatTime: {{ $now | Quote }}, lastTransitionTime: {{ $now | Quote }}}
      - {type: MemoryPressure, status: "False", reason: KubeletHasSufficientMemory, message: "kubelet has sufficient memory available", lastHeartbeatTime: {{ $now | Quote }}, lastTransitionTime: {{ $now | Quote }}}
      - {type: DiskPressure, status: "False", reason: KubeletHasNoDiskPressure, message: "kubelet has no disk pressure", lastHeartbeatTime: {{ $now | Quote }}, lastTransitionTime: {{ $now | Quote }}}
      - {type: PIDPressure, status: "False", reason: KubeletHasSufficientPID, message: "kubelet has sufficient PID available", lastHeartbeatTime: {{ $now | Quote }}, lastTransitionTime: {{ $now | Quote }}}
---
apiVersion: kwok.x-k8s.io/v1alpha1
kind: Stage
metadata:
  name: llp-node-heartbeat
spec:
  resourceRef: {apiGroup: v1, kind: Node}
  selector:
    matchExpressions:
    - {key: '.status.conditions.[] | select(.type == "Ready") | .status', operator: In, values: ["True"]}
  # Node leases (kwok renews them) are the heartbeat; this refreshes the conditions' times.
  delay: {durationMilliseconds: 20000, jitterDurationMilliseconds: 25000}
  next:
    statusTemplate: |
      {{ $now := Now }}
      conditions:
      {{ range .status.conditions }}
      - {type: {{ .type | Quote }}, status: {{ .status | Quote }}, reason: {{ .reason | Quote }}, message: {{ .message | Quote }}, lastHeartbeatTime: {{ $now | Quote }}, lastTransitionTime: {{ .lastTransitionTime | Quote }}}
      {{ end }}
---
apiVersion: kwok.x-k8s.io/v1alpha1
kind: Stage
metadata:
  name: llp-pod-creating
spec:
  resourceRef: {apiGroup: v1, kind: Pod}
  selector:
    matchExpressions:
    - {key: '.metadata.deletionTimestamp', operator: DoesNotExist}
    - {key: '.spec.nodeName', operator: Exists}
    - {key: '.status.containerStatuses', operator: DoesNotExist}
  next:
    event: {type: Normal, reason: Pulling, message: 'Pulling image (kwok: simulated)'}
    statusTemplate: |
      {{ $now := Now }}
      phase: Pending
      startTime: {{ $now | Quote }}
      hostIP: {{ NodeIPWith .spec.nodeName | Quote }}
      podIP: {{ PodIPWith .spec.nodeName ( or .spec.hostNetwork false ) ( or .metadata.uid "" ) ( or .metadata.name "" ) ( or .metadata.namespace "" ) | Quote }}
      conditions:
      - {type: PodScheduled, status: "True", lastTransitionTime: {{ $now | Quote }}}
      - {type: Initialized, status: "True", lastTransitionTime: {{ $now | Quote }}}
      - {type: Ready, status: "False", reason: ContainersNotReady, lastTransitionTime: {{ $now | Quote }}}
      - {type: ContainersReady, status: "False", reason: ContainersNotReady, lastTransitionTime: {{ $now | Quote }}}
      containerStatuses:
      {{ range .spec.containers }}
      - name: {{ .name | Quote }}
        image: {{ .image | Quote }}
        imageID: ""
        ready: false
        started: false
        restartCount: 0
        state: {waiting: {reason: ContainerCreating}}
      {{ end }}
---
apiVersion: kwok.x-k8s.io/v1alpha1
kind: Stage
metadata:
  name: llp-pod-running
spec:
  resourceRef: {apiGroup: v1, kind: Pod}
  selector:
    matchExpressions:
    - {key: '.metadata.deletionTimestamp', operator: DoesNotExist}
    - {key: '.status.phase', operator: In, values: [Pending]}
    - {key: '.status.containerStatuses.[0].state.waiting.reason', operator: In, values: [ContainerCreating]}
    - {key: '[.spec.containers.[] | select(.image | test("{MARKED}"))] | length', operator: In, values: ["0"]}
  delay: {durationMilliseconds: 300}
  next:
    event: {type: Normal, reason: Started, message: 'Started container (kwok: simulated)'}
    statusTemplate: |
      {{ $now := Now }}
      phase: Running
      conditions:
      - {type: PodScheduled, status: "True", lastTransitionTime: {{ $now | Quote }}}
      - {type: Initialized, status: "True", lastTransitionTime: {{ $now | Quote }}}
      - {type: Ready, status: "True", lastTransitionTime: {{ $now | Quote }}}
      - {type: ContainersReady, status: "True", lastTransitionTime: {{ $now | Quote }}}
      initContainerStatuses:
      {{ range .spec.initContainers }}
      - name: {{ .name | Quote }}
        image: {{ .image | Quote }}
        imageID: {{ printf "%s@sha256:kwok" .image | Quote }}
        ready: true
        restartCount: 0
        state: {terminated: {exitCode: 0, reason: Completed, startedAt: {{ $now | Quote }}, finishedAt: {{ $now | Quote }}}}
      {{ end }}
      containerStatuses:
      {{ range .spec.containers }}
      - name: {{ .name | Quote }}
        image: {{ .image | Quote }}
        imageID: {{ printf "%s@sha256:kwok" .image | Quote }}
        ready: true
        started: true
        restartCount: 0
        state: {running: {startedAt: {{ $now | Quote }}}}
      {{ end }}
---
apiVersion: kwok.x-k8s.io/v1alpha1
kind: Stage
metadata:
  name: llp-pod-crashing
spec:
  resourceRef: {apiGroup: v1, kind: Pod}
  selector:
    matchExpressions:
    - {key: '.metadata.deletionTimestamp', operator: DoesNotExist}
    - {key: '.status.phase', operator: In, values: [Pending]}
    - {key: '.status.containerStatuses.[0].state.waiting.reason', operator: In, values: [ContainerCreating]}
    - {key: '[.spec.containers.[] | select(.image | test("crash|oom"))] | length', operator: NotIn, values: ["0"]}
    - {key: '[.spec.containers.[] | select(.image | test("no-such-image"))] | length', operator: In, values: ["0"]}
  delay: {durationMilliseconds: 300}
  next:
    event: {type: Warning, reason: BackOff, message: 'Back-off restarting failed container (kwok: simulated)'}
    statusTemplate: |
      {{ $now := Now }}
      phase: Running
      conditions:
      - {type: PodScheduled, status: "True", lastTransitionTime: {{ $now | Quote }}}
      - {type: Initialized, status: "True", lastTransitionTime: {{ $now | Quote }}}
      - {type: Ready, status: "False", reason: ContainersNotReady, lastTransitionTime: {{ $now | Quote }}}
      - {type: ContainersReady, status: "False", reason: ContainersNotReady, lastTransitionTime: {{ $now | Quote }}}
      containerStatuses:
      {{ range .spec.containers }}
      - name: {{ .name | Quote }}
        image: {{ .image | Quote }}
        imageID: {{ printf "%s@sha256:kwok" .image | Quote }}
      {{ if regexMatch "oom" .image }}
        ready: false
        started: false
        restartCount: 1
        state: {waiting: {reason: CrashLoopBackOff, message: {{ printf "back-off restarting failed container %s" .name | Quote }}}}
        lastState: {terminated: {exitCode: 137, reason: OOMKilled, startedAt: {{ $now | Quote }}, finishedAt: {{ $now | Quote }}}}
      {{ else if regexMatch "crash" .image }}
        ready: false
        started: false
        restartCount: 1
        state: {waiting: {reason: CrashLoopBackOff, message: {{ printf "back-off restarting failed container %s" .name | Quote }}}}
        lastState: {terminated: {exitCode: 1, reason: Error, startedAt: {{ $now | Quote }}, finishedAt: {{ $now | Quote }}}}
      {{ else }}
        ready: true
        started: true
        restartCount: 0
        state: {running: {startedAt: {{ $now | Quote }}}}
      {{ end }}
      {{ end }}
---
apiVersion: kwok.x-k8s.io/v1alpha1
kind: Stage
metadata:
  name: llp-pod-pull-error
spec:
  resourceRef: {apiGroup: v1, kind: Pod}
  selector:
    matchExpressions:
    - {key: '.metadata.deletionTimestamp', operator: DoesNotExist}
    - {key: '.status.phase', operator: In, values: [Pending]}
    - {key: '.status.containerStatuses.[0].state.waiting.reason', operator: In, values: [ContainerCreating]}
    - {key: '[.spec.containers.[] | select(.image | test("no-such-image"))] | length', operator: NotIn, values: ["0"]}
  delay: {durationMilliseconds: 300}
  next:
    event: {type: Warning, reason: Failed, message: 'Failed to pull image: not found (kwok: simulated)'}
    statusTemplate: |
      containerStatuses:
      {{ range .spec.containers }}
      - name: {{ .name | Quote }}
        image: {{ .image | Quote }}
        imageID: ""
        ready: false
        started: false
        restartCount: 0
      {{ if regexMatch "no-such-image" .image }}
        state: {waiting: {reason: ImagePullBackOff, message: {{ printf "Back-off pulling image %q: not found" .image | Quote }}}}
      {{ else }}
        state: {waiting: {reason: PodInitializing}}
      {{ end }}
      {{ end }}
---
apiVersion: kwok.x-k8s.io/v1alpha1
kind: Stage
metadata:
  name: llp-pod-completed
spec:
  resourceRef: {apiGroup: v1, kind: Pod}
  selector:
    matchExpressions:
    - {key: '.metadata.deletionTimestamp', operator: DoesNotExist}
    - {key: '.status.phase', operator: In, values: [Running]}
    - {key: '.spec.restartPolicy', operator: In, values: [Never, OnFailure]}
    - {key: '[.spec.containers.[] | select(.image | test("{MARKED}"))] | length', operator: In, values: ["0"]}
  delay: {durationMilliseconds: 1000}
  next:
    event: {type: Normal, reason: Completed, message: 'Container exited 0 (kwok: simulated)'}
    statusTemplate: |
      {{ $now := Now }}
      phase: Succeeded
      conditions:
      - {type: PodScheduled, status: "True", lastTransitionTime: {{ $now | Quote }}}
      - {type: Initialized, status: "True", lastTransitionTime: {{ $now | Quote }}}
      - {type: Ready, status: "False", reason: PodCompleted, lastTransitionTime: {{ $now | Quote }}}
      - {type: ContainersReady, status: "False", reason: PodCompleted, lastTransitionTime: {{ $now | Quote }}}
      containerStatuses:
      {{ range .spec.containers }}
      - name: {{ .name | Quote }}
        image: {{ .image | Quote }}
        imageID: {{ printf "%s@sha256:kwok" .image | Quote }}
        ready: false
        started: false
        restartCount: 0
        state: {terminated: {exitCode: 0, reason: Completed, startedAt: {{ $now | Quote }}, finishedAt: {{ $now | Quote }}}}
      {{ end }}
---
apiVersion: kwok.x-k8s.io/v1alpha1
kind: Stage
metadata:
  name: llp-pod-deleted
spec:
  resourceRef: {apiGroup: v1, kind: Pod}
  selector:
    matchExpressions:
    - {key: '.metadata.deletionTimestamp', operator: Exists}
  # The grace period a kubelet spends stopping containers: the pod stays Terminating meanwhile.
  delay: {durationMilliseconds: 1000}
  next:
    finalizers: {empty: true}
    delete: true
"#;
