//! The differential suite: one kubectl scenario, run with kubectl 1.27, 1.31 and 1.33 against
//! the simulator and against the real control plane, outputs compared after normalising
//! what legitimately differs (ages, uids, times, resourceVersions, IPs). A difference fails
//! unless `known-differences.toml` explains it; an entry that no longer explains a difference
//! fails too, so the file stays true.

use llp_sim::{ClusterSpec, SimOptions, Simulator, Timings};
use llp_testbed::{Options, Testbed};
use regex::Regex;
use serde::Deserialize;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::LazyLock;

/// kubectl versions the scenario runs with (binaries beside the machine's kubectl dispatcher).
const VERSIONS: [&str; 3] = ["1.27", "1.31", "1.33"];

/// How a step's results are compared.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Compare {
    /// Exit status, stdout and stderr, normalised.
    Output,
    /// Exit status only: the content is known to come from different sources (log files).
    Exit,
    /// Exit status and the last line: the lines before it report progress, which depends on
    /// timing (`rollout status`).
    LastLine,
}

/// One kubectl invocation; `{dir}` is the folder of the scenario's manifests.
struct Step {
    args: &'static str,
    compare: Compare,
}

const fn output(args: &'static str) -> Step {
    Step {
        args,
        compare: Compare::Output,
    }
}

const fn exit(args: &'static str) -> Step {
    Step {
        args,
        compare: Compare::Exit,
    }
}

const fn last_line(args: &'static str) -> Step {
    Step {
        args,
        compare: Compare::LastLine,
    }
}

/// The scenario: every command of the simulator's fidelity suite and the ones clients of
/// llp-k8s's objects run. Arguments are split on spaces; `|` stands for a space inside one.
const SCENARIO: &[Step] = &[
    output("get nodes"),
    output("get nodes -l node-role.kubernetes.io/worker=worker -o name"),
    output("create namespace {ns}"),
    output("get namespace {ns} -o jsonpath={.status.phase}"),
    output("create configmap settings --from-literal=mode=fast"),
    output("get configmap settings -o jsonpath={.data}"),
    output("create secret generic creds --from-literal=key=s3cret"),
    output("get secret creds -o jsonpath={.data}"),
    output("apply --validate=false -f {dir}/secret.yaml"),
    output("get secret folded -o jsonpath={.data}{.stringData}"),
    output("apply --validate=false -f {dir}/web.yaml"),
    output("apply --validate=false -f {dir}/web.yaml"),
    output("apply --server-side --validate=false -f {dir}/web.yaml"),
    last_line("rollout status statefulset/web --timeout=60s"),
    output("wait --for=condition=Ready pod/web-0 pod/web-1 --timeout=60s"),
    output("get pods"),
    output("get pods -l app=web -o name"),
    output("get statefulset web"),
    output("get service web"),
    output("get pvc"),
    output("get pod web-0 -o jsonpath={.spec.containers[0].resources}"),
    output("get pod web-0 -o jsonpath={.status.phase}|{.status.containerStatuses[0].ready}"),
    exit("logs web-0"),
    exit("logs web-0 --timestamps"),
    output("scale statefulset web --replicas=3"),
    last_line("rollout status statefulset/web --timeout=60s"),
    output("patch statefulset web -p {\"spec\":{\"replicas\":2}}"),
    output("patch statefulset web --type=merge -p {\"metadata\":{\"labels\":{\"tier\":\"web\"}}}"),
    output(
        "patch statefulset web --type=json -p [{\"op\":\"add\",\"path\":\"/metadata/annotations\",\"value\":{\"note\":\"x\"}}]",
    ),
    output("get statefulset web -o jsonpath={.spec.replicas}|{.metadata.labels.tier}|{.metadata.annotations.note}"),
    output("rollout restart statefulset/web"),
    last_line("rollout status statefulset/web --timeout=60s"),
    output("get events --field-selector involvedObject.name=web-0,reason=Scheduled -o jsonpath={.items[*].reason}"),
    output("create --validate=false -f {dir}/extra.yaml --dry-run=server -o jsonpath={.metadata.name}"),
    output("get configmap extra"),
    output("delete pod web-1"),
    output("wait --for=condition=Ready pod/web-1 --timeout=60s"),
    output("delete statefulset web --cascade=foreground"),
    output("wait --for=delete pod/web-0 --timeout=60s"),
    output("get pods"),
    output("get pvc -o name"),
    output("delete service web"),
    output("delete configmap settings"),
    output("get configmap settings"),
];

/// Manifests the scenario applies.
fn write_manifests(dir: &Path) {
    std::fs::create_dir_all(dir).unwrap();
    std::fs::write(
        dir.join("web.yaml"),
        "apiVersion: apps/v1\nkind: StatefulSet\nmetadata: {name: web, labels: {app: web}}\nspec:\n  replicas: 2\n  serviceName: web\n  selector: {matchLabels: {app: web}}\n  template:\n    metadata: {labels: {app: web}}\n    spec:\n      nodeSelector: {node-role.kubernetes.io/worker: worker}\n      containers:\n      - name: main\n        image: nginx:1.27\n        ports: [{name: http, containerPort: 80}]\n        volumeMounts: [{name: data, mountPath: /data}]\n  volumeClaimTemplates:\n  - metadata: {name: data}\n    spec: {accessModes: [ReadWriteOnce], resources: {requests: {storage: 1Gi}}}\n---\napiVersion: v1\nkind: Service\nmetadata: {name: web}\nspec:\n  selector: {app: web}\n  ports: [{name: http, port: 80}]\n",
    )
    .unwrap();
    std::fs::write(
        dir.join("secret.yaml"),
        "apiVersion: v1\nkind: Secret\nmetadata: {name: folded}\nstringData: {token: abc}\n",
    )
    .unwrap();
    std::fs::write(
        dir.join("extra.yaml"),
        "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: extra}\ndata: {a: b}\n",
    )
    .unwrap();
}

/// What one step printed.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Outcome {
    success: bool,
    stdout: String,
    stderr: String,
}

fn kubectl_binary(version: &str) -> PathBuf {
    let dispatcher = Command::new("sh")
        .args(["-c", "readlink -f \"$(command -v kubectl)\""])
        .output()
        .unwrap();
    let path = PathBuf::from(String::from_utf8(dispatcher.stdout).unwrap().trim());
    path.with_file_name(format!("kubectl.{version}"))
}

fn run_step(kubectl: &Path, kubeconfig: &Path, cache: &Path, dir: &Path, ns: &str, step: &Step) -> Outcome {
    let args: Vec<String> = step
        .args
        .replace("{dir}", &dir.display().to_string())
        .replace("{ns}", ns)
        .split(' ')
        .map(|a| a.replace('|', " "))
        .collect();
    let out = Command::new(kubectl)
        .env("KUBECONFIG", kubeconfig)
        .arg("--cache-dir")
        .arg(cache)
        .arg("--request-timeout=60s")
        .args(&args)
        .output()
        .expect("kubectl runs");
    Outcome {
        success: out.status.success(),
        stdout: normalise(&String::from_utf8_lossy(&out.stdout)),
        stderr: normalise(&String::from_utf8_lossy(&out.stderr)),
    }
}

/// What may differ between two clusters running the same scenario.
fn normalise(text: &str) -> String {
    static RULES: LazyLock<Vec<(Regex, &'static str)>> = LazyLock::new(|| {
        [
            (r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}", "<uid>"),
            (r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?Z", "<time>"),
            (r"\b(\d+(\.\d+){3})\b", "<ip>"),
            (r#""resourceVersion":"\d+""#, r#""resourceVersion":"<rv>""#),
            (r"\bv1\.\d+\.\d+[-+\w.]*", "<version>"),
            // Ages in tables: 5s, 3m2s, <invalid>.
            (r"(?m)(\s)(\d+[smhd])+(\s|$)", "$1<age>$3"),
            (r"<invalid>", "<age>"),
            (r"-c[a-z0-9]{9,10}\b", "-<hash>"),
        ]
        .into_iter()
        .map(|(pattern, replacement)| (Regex::new(pattern).unwrap(), replacement))
        .collect()
    });
    let mut text = text.to_owned();
    for (regex, replacement) in RULES.iter() {
        text = regex.replace_all(&text, *replacement).into_owned();
    }
    // Column widths follow the widest cell; compare cells, not spacing.
    text.lines()
        .map(|l| l.split_whitespace().collect::<Vec<_>>().join(" "))
        .collect::<Vec<_>>()
        .join("\n")
}

/// One documented difference.
#[derive(Debug, Deserialize)]
struct Known {
    /// The step's arguments, as in [`SCENARIO`].
    step: String,
    /// kubectl versions it applies to (all when empty).
    #[serde(default)]
    kubectl: Vec<String>,
    /// Why the simulator differs, and why that is acceptable (or which issue fixes it).
    why: String,
}

#[derive(Debug, Deserialize)]
struct KnownFile {
    #[serde(default)]
    difference: Vec<Known>,
}

#[test]
fn kubectl_sees_the_same_cluster_on_the_simulator_and_on_kubernetes() {
    let testbed = Testbed::up(Options::default()).expect("the real control plane starts");
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let sim = runtime
        .block_on(Simulator::start(SimOptions {
            cluster: ClusterSpec {
                timings: Timings::fast(),
                ..ClusterSpec::default()
            },
            ..SimOptions::default()
        }))
        .expect("the simulator starts");
    let root = std::env::temp_dir().join(format!("llp-differential-{}", std::process::id()));
    let manifests = root.join("manifests");
    write_manifests(&manifests);
    let known: KnownFile =
        toml::from_str(include_str!("known-differences.toml")).expect("known-differences.toml parses");

    let mut unexplained = Vec::new();
    let mut explained = vec![false; known.difference.len()];
    let handles: Vec<_> = VERSIONS
        .iter()
        .map(|version| {
            let ns = format!("diff-{}", version.replace('.', ""));
            let configs = [
                ("simulator", sim.kubeconfig(&ns)),
                ("kubernetes", testbed.kubeconfig(&ns)),
            ];
            let root = root.clone();
            let manifests = manifests.clone();
            let version = (*version).to_owned();
            std::thread::spawn(move || {
                let kubectl = kubectl_binary(&version);
                let mut results: Vec<Vec<Outcome>> = Vec::new();
                for (backend, config) in &configs {
                    let dir = root.join(format!("{backend}-{version}"));
                    std::fs::create_dir_all(&dir).unwrap();
                    let kubeconfig = dir.join("kubeconfig");
                    std::fs::write(&kubeconfig, config).unwrap();
                    let cache = dir.join("cache");
                    results.push(
                        SCENARIO
                            .iter()
                            .map(|step| run_step(&kubectl, &kubeconfig, &cache, &manifests, &ns, step))
                            .collect(),
                    );
                }
                (version, results)
            })
        })
        .collect();
    for handle in handles {
        let (version, results) = handle.join().unwrap();
        for (i, step) in SCENARIO.iter().enumerate() {
            let (sim, real) = (&results[0][i], &results[1][i]);
            let same = match step.compare {
                Compare::Output => sim == real,
                Compare::Exit => sim.success == real.success,
                Compare::LastLine => {
                    sim.success == real.success && sim.stdout.lines().last() == real.stdout.lines().last()
                }
            };
            if same {
                continue;
            }
            let explanation = known
                .difference
                .iter()
                .position(|k| k.step == step.args && (k.kubectl.is_empty() || k.kubectl.contains(&version)));
            match explanation {
                Some(k) => explained[k] = true,
                None => unexplained.push(format!(
                    "kubectl {version} {}:\n  simulator  ({}): {}\n             {}\n  kubernetes ({}): {}\n             {}",
                    step.args,
                    if sim.success { "ok" } else { "failed" },
                    sim.stdout.replace('\n', "\n             "),
                    sim.stderr,
                    if real.success { "ok" } else { "failed" },
                    real.stdout.replace('\n', "\n             "),
                    real.stderr,
                )),
            }
        }
    }
    let stale: Vec<String> = known
        .difference
        .iter()
        .zip(&explained)
        .filter(|(_, used)| !**used)
        .map(|(k, _)| format!("{} ({})", k.step, k.why))
        .collect();
    runtime.block_on(sim.stop());
    assert!(
        unexplained.is_empty() && stale.is_empty(),
        "{} unexplained differences:\n\n{}\n\nentries of known-differences.toml that explain nothing any more:\n{}",
        unexplained.len(),
        unexplained.join("\n\n"),
        stale.join("\n")
    );
}
