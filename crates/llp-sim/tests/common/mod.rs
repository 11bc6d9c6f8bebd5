//! Starting a simulator for a test, and reaching it with kube-rs or kubectl.
#![allow(dead_code)]

use llp_sim::{ClusterSpec, SimOptions, Simulator, Timings};
use std::path::PathBuf;
use std::process::{Command, Output};
use std::time::{Duration, Instant};

/// A simulator with fast timings, and a kubeconfig file for it.
pub struct TestSim {
    pub sim: Simulator,
    pub kubeconfig: PathBuf,
    dir: PathBuf,
}

impl TestSim {
    pub async fn start() -> Self {
        Self::start_with(ClusterSpec {
            timings: Timings::fast(),
            ..ClusterSpec::default()
        })
        .await
    }

    pub async fn start_with(cluster: ClusterSpec) -> Self {
        let sim = Simulator::start(SimOptions {
            cluster,
            ..SimOptions::default()
        })
        .await
        .expect("simulator starts");
        Self::from_simulator(sim)
    }

    pub fn from_simulator(sim: Simulator) -> Self {
        let dir = std::env::temp_dir().join(format!("llp-sim-test-{}", uuid()));
        std::fs::create_dir_all(&dir).unwrap();
        let kubeconfig = dir.join("kubeconfig");
        std::fs::write(&kubeconfig, sim.kubeconfig("services")).unwrap();
        Self { sim, kubeconfig, dir }
    }

    /// A kube-rs client for the simulator, through the kubeconfig it wrote.
    pub async fn client(&self) -> kube::Client {
        let yaml = std::fs::read_to_string(&self.kubeconfig).unwrap();
        let kubeconfig = kube::config::Kubeconfig::from_yaml(&yaml).expect("kubeconfig parses");
        let config = kube::Config::from_custom_kubeconfig(kubeconfig, &kube::config::KubeConfigOptions::default())
            .await
            .expect("kubeconfig is usable");
        kube::Client::try_from(config).expect("client")
    }

    /// Runs the stock kubectl with a fresh cache directory, so discovery is exercised.
    pub async fn kubectl(&self, args: &[&str]) -> Output {
        let cache = self.dir.join(format!("cache-{}", uuid()));
        let mut command = Command::new("kubectl");
        command
            .env("KUBECONFIG", &self.kubeconfig)
            .arg("--cache-dir")
            .arg(&cache)
            .arg("--request-timeout=20s")
            .args(args);
        tokio::task::spawn_blocking(move || command.output().expect("kubectl runs (it is on the machine image)"))
            .await
            .unwrap()
    }

    /// kubectl's stdout, asserting it succeeded.
    pub async fn kubectl_ok(&self, args: &[&str]) -> String {
        let out = self.kubectl(args).await;
        assert!(
            out.status.success(),
            "kubectl {args:?} failed: {}\n{}",
            String::from_utf8_lossy(&out.stderr),
            String::from_utf8_lossy(&out.stdout)
        );
        String::from_utf8(out.stdout).unwrap()
    }

    /// Polls `kubectl args` until its stdout satisfies `done`, or fails after 20 s.
    pub async fn kubectl_until(&self, args: &[&str], done: impl Fn(&str) -> bool) -> String {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let out = self.kubectl(args).await;
            let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
            if out.status.success() && done(&stdout) {
                return stdout;
            }
            assert!(
                Instant::now() < deadline,
                "kubectl {args:?} never satisfied the condition; last output:\n{stdout}\n{}",
                String::from_utf8_lossy(&out.stderr)
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    pub fn write(&self, name: &str, content: &str) -> String {
        let path = self.dir.join(name);
        std::fs::write(&path, content).unwrap();
        path.to_string_lossy().into_owned()
    }
}

impl Drop for TestSim {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn uuid() -> String {
    format!("{}-{:?}", std::process::id(), Instant::now()).replace(|c: char| !c.is_ascii_alphanumeric(), "")
}

/// A StatefulSet (with a claim template) and its Service, as a user would apply them.
pub fn manifest(name: &str, image: &str, replicas: u32) -> String {
    format!(
        r#"apiVersion: apps/v1
kind: StatefulSet
metadata:
  name: {name}
  namespace: services
spec:
  replicas: {replicas}
  serviceName: {name}
  selector:
    matchLabels: {{app: {name}}}
  template:
    metadata:
      labels: {{app: {name}}}
    spec:
      nodeSelector: {{node-role.kubernetes.io/worker: worker}}
      containers:
      - name: main
        image: {image}
        ports: [{{name: http, containerPort: 80}}]
        resources:
          limits: {{cpu: "1", memory: 1Gi}}
          requests: {{cpu: "1", memory: 1Gi}}
  volumeClaimTemplates:
  - metadata: {{name: data}}
    spec:
      accessModes: [ReadWriteOnce]
      resources: {{requests: {{storage: 1Gi}}}}
---
apiVersion: v1
kind: Service
metadata:
  name: {name}
  namespace: services
spec:
  selector: {{app: {name}}}
  ports: [{{name: http, port: 80}}]
"#
    )
}
