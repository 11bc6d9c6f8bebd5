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

/// kwok's stages for the testbed's fake nodes (`{MARKED}` is filled in at start).
const STAGES: &str = include_str!("kwok-stages.yaml");
