//! The control plane's programs, built once from the pinned Go modules under `testbed/`
//! (etcd and Kubernetes in `testbed/go`, kwok in `testbed/kwok`, whose pins differ; a real
//! node's kubelet and kube-proxy in `testbed/node`, CoreDNS in `testbed/dns`) into
//! `target/testbed/<stamp>/`. The stamp hashes the modules and the Go version, so a changed
//! pin builds anew; a file lock per build keeps parallel test processes from building the same
//! thing at the same time.

use sha2::{Digest, Sha256};
use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

/// The built programs.
#[derive(Debug, Clone)]
pub struct Binaries {
    /// The folder holding etcd, kube-apiserver, kube-controller-manager, kube-scheduler, kwok.
    pub dir: PathBuf,
    /// The Kubernetes release they were built from, e.g. `v1.37.2`.
    pub release: String,
}

impl Binaries {
    /// The path of program `name`.
    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.join(name)
    }
}

/// Building failed.
#[derive(Debug, thiserror::Error)]
pub enum BuildError {
    /// A file of the Go modules or the build folder could not be read or written.
    #[error("testbed build: {what} {}: {source}", path.display())]
    Io {
        what: &'static str,
        path: PathBuf,
        source: std::io::Error,
    },
    /// The Go toolchain is missing.
    #[error("testbed build: cannot run `go` ({0}); the real control plane is built with Go (see docs/testing.md)")]
    NoGo(std::io::Error),
    /// `go.mod` requires no version of a module it must.
    #[error("testbed build: {} requires no version of {module}", path.display())]
    NoRelease { path: PathBuf, module: String },
    /// Building or importing the container images failed; the tool's output is in the message.
    #[error("testbed images: {what}:\n{output}")]
    Image { what: String, output: String },
    /// `go build` failed; its output is in the message.
    #[error("testbed build: `go build` in {} failed:\n{output}", dir.display())]
    Go { dir: PathBuf, output: String },
}

/// The folder of the Go modules (`<repository>/testbed`).
pub fn modules_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../testbed")
}

/// The folder build outputs go to (`<target>/testbed`).
pub(crate) fn target_dir() -> PathBuf {
    match std::env::var_os("CARGO_TARGET_DIR") {
        Some(dir) => PathBuf::from(dir).join("testbed"),
        None => Path::new(env!("CARGO_MANIFEST_DIR")).join("../../target/testbed"),
    }
}

/// The control plane's programs, built first if this version of the modules has not been
/// built yet.
pub fn ensure_built() -> Result<Binaries, BuildError> {
    let modules = modules_dir();
    let release = release(&modules.join("go/go.mod"))?;
    let files = [
        "go/go.mod",
        "go/go.sum",
        "go/cmd/etcd/main.go",
        "kwok/go.mod",
        "kwok/go.sum",
    ];
    let what = format!("the Kubernetes control plane {release} and kwok (about 13 minutes on 2 cores)");
    build_once(&release, "", &files, &what, |dir, ldflags| {
        let kubernetes = [
            "k8s.io/kubernetes/cmd/kube-apiserver",
            "k8s.io/kubernetes/cmd/kube-controller-manager",
            "k8s.io/kubernetes/cmd/kube-scheduler",
            "./cmd/etcd",
        ];
        go_build(&modules.join("go"), dir, ldflags, &kubernetes)?;
        go_build(&modules.join("kwok"), dir, "-s -w", &["sigs.k8s.io/kwok/cmd/kwok"])
    })
}

/// A real node's programs, kubelet and kube-proxy of the same release, from `testbed/node`: a
/// module of its own, so that they build only for real nodes and the control plane's stamp
/// stays as it was.
pub fn ensure_node_built() -> Result<Binaries, BuildError> {
    let modules = modules_dir();
    let release = release(&modules.join("node/go.mod"))?;
    let files = ["node/go.mod", "node/go.sum"];
    let what = format!("kubelet and kube-proxy {release} (about 3 minutes on 2 cores after the control plane)");
    build_once(&release, "node-", &files, &what, |dir, ldflags| {
        let node = ["k8s.io/kubernetes/cmd/kubelet", "k8s.io/kubernetes/cmd/kube-proxy"];
        go_build(&modules.join("node"), dir, ldflags, &node)
    })
}

/// CoreDNS, the real nodes' cluster DNS, from `testbed/dns` (its own module: its pins differ),
/// with only the plugins the testbed uses (`testbed/dns/cmd/coredns`).
pub fn ensure_dns_built() -> Result<Binaries, BuildError> {
    let modules = modules_dir();
    let version = required_version(&modules.join("dns/go.mod"), "github.com/coredns/coredns")?;
    let files = ["dns/go.mod", "dns/go.sum", "dns/cmd/coredns/main.go"];
    let what = format!("CoreDNS {version} with the plugins the testbed uses (about 2.5 minutes on 2 cores)");
    build_once(&version, "coredns-", &files, &what, |dir, _| {
        go_build(&modules.join("dns"), dir, "-s -w", &["./cmd/coredns"])
    })
}

/// Builds into `<target>/testbed/<prefix><stamp>/` with `build`, unless a build of the same
/// stamp (a hash of `files` under `testbed/`, the Go version and the flags) is done; one build
/// at a time across processes.
fn build_once(
    release: &str,
    prefix: &str,
    files: &[&str],
    what: &str,
    build: impl FnOnce(&Path, &str) -> Result<(), BuildError>,
) -> Result<Binaries, BuildError> {
    let modules = modules_dir();
    let root = target_dir();
    std::fs::create_dir_all(&root).map_err(|source| io("create", &root, source))?;
    let dir = root.join(format!("{prefix}{}", stamp(&modules, files, release)?));
    let binaries = Binaries {
        dir: dir.clone(),
        release: release.to_owned(),
    };
    once(&dir, what, |dir| build(dir, &version_ldflags(release)))?;
    Ok(binaries)
}

/// Runs `build` into `dir` unless a build there is done (its `done` file), one build of `dir`
/// at a time across processes (a file lock), saying what it builds and how long it took.
pub(crate) fn once(
    dir: &Path,
    what: &str,
    build: impl FnOnce(&Path) -> Result<(), BuildError>,
) -> Result<(), BuildError> {
    let done = dir.join("done");
    if done.exists() {
        return Ok(());
    }
    let root = target_dir();
    std::fs::create_dir_all(&root).map_err(|source| io("create", &root, source))?;
    // A lock per build: different builds may run at once (the images beside a Go build).
    let name = dir.file_name().and_then(|n| n.to_str()).unwrap_or("build");
    let lock_path = root.join(format!("{name}.lock"));
    let lock = File::create(&lock_path).map_err(|source| io("create", &lock_path, source))?;
    lock.lock().map_err(|source| io("lock", &lock_path, source))?;
    // Another process may have built it while this one waited for the lock.
    if done.exists() {
        return Ok(());
    }
    crate::say(&format!(
        "building {what} into {} (first time only; later runs reuse it)",
        dir.display()
    ));
    let started = Instant::now();
    std::fs::create_dir_all(dir).map_err(|source| io("create", dir, source))?;
    build(dir)?;
    std::fs::write(&done, "").map_err(|source| io("write", &done, source))?;
    crate::say(&format!("built {what} in {:.0} s", started.elapsed().as_secs_f64()));
    Ok(())
}

/// The Kubernetes release `go.mod` requires (`k8s.io/kubernetes v1.X.Y`).
fn release(go_mod: &Path) -> Result<String, BuildError> {
    required_version(go_mod, "k8s.io/kubernetes")
}

/// The version of `module` that `go.mod` requires.
fn required_version(go_mod: &Path, module: &str) -> Result<String, BuildError> {
    let text = std::fs::read_to_string(go_mod).map_err(|source| io("read", go_mod, source))?;
    let prefix = format!("{module} ");
    text.lines()
        // In a `require ( … )` block, or a one-line `require module version`.
        .map(|line| line.trim().trim_start_matches("require "))
        .filter_map(|line| line.strip_prefix(prefix.as_str()))
        .map(|rest| rest.split_whitespace().next().unwrap_or_default().to_owned())
        .find(|version| version.starts_with('v'))
        .ok_or_else(|| BuildError::NoRelease {
            path: go_mod.to_owned(),
            module: module.to_owned(),
        })
}

/// Stamps the release into the binaries, so that `/version` says `v1.X.Y` (kubectl and
/// clients choose behaviour by it) instead of `v0.0.0-master`.
fn version_ldflags(release: &str) -> String {
    let mut parts = release.trim_start_matches('v').split('.');
    let (major, minor) = (parts.next().unwrap_or("1"), parts.next().unwrap_or("0"));
    let package = "k8s.io/component-base/version";
    format!(
        "-s -w -X {package}.gitVersion={release} -X {package}.gitMajor={major} -X {package}.gitMinor={minor} \
         -X {package}.gitTreeState=clean -X {package}.buildDate=1970-01-01T00:00:00Z"
    )
}

/// A hash of everything that decides the binaries: the modules' files and the Go version.
fn stamp(modules: &Path, files: &[&str], release: &str) -> Result<String, BuildError> {
    let mut hash = Sha256::new();
    for file in files {
        let path = modules.join(file);
        hash.update(std::fs::read(&path).map_err(|source| io("read", &path, source))?);
    }
    let go = Command::new("go").arg("version").output().map_err(BuildError::NoGo)?;
    hash.update(&go.stdout);
    hash.update(version_ldflags(release));
    let digest = hash.finalize();
    Ok(format!(
        "{release}-{}",
        digest.iter().take(6).map(|b| format!("{b:02x}")).collect::<String>()
    ))
}

fn go_build(module: &Path, out: &Path, ldflags: &str, packages: &[&str]) -> Result<(), BuildError> {
    let out_arg = format!("{}/", out.display());
    let output = Command::new("go")
        .current_dir(module)
        .args([
            "build",
            "-trimpath",
            "-buildvcs=false",
            "-ldflags",
            ldflags,
            "-o",
            &out_arg,
        ])
        .args(packages)
        // The module's own Go version decides; never switch toolchains behind the user's back.
        .env(
            "GOTOOLCHAIN",
            std::env::var("GOTOOLCHAIN").unwrap_or_else(|_| "local".into()),
        )
        .output()
        .map_err(BuildError::NoGo)?;
    if !output.status.success() {
        let mut text = String::from_utf8_lossy(&output.stderr).into_owned();
        text.push_str(&String::from_utf8_lossy(&output.stdout));
        return Err(BuildError::Go {
            dir: module.to_owned(),
            output: text,
        });
    }
    Ok(())
}

fn io(what: &'static str, path: &Path, source: std::io::Error) -> BuildError {
    BuildError::Io {
        what,
        path: path.to_owned(),
        source,
    }
}
