//! The images real nodes run, without a registry: `testbed/images/build.sh` makes them from
//! Debian packages once (cached under `<target>/testbed/images-<stamp>/`, the stamp hashing the
//! recipe), and each node's containerd imports them under the names users write.

use crate::binaries::BuildError;
use sha2::{Digest, Sha256};
use std::path::{Path, PathBuf};
use std::process::Command;

/// The pod sandbox image containerd is configured with (never pulled: imported).
pub const PAUSE_IMAGE: &str = "registry.k8s.io/pause:3.10";

/// Each archive and the name it is imported under (its tag comes from the archive).
pub const IMAGES: &[(&str, &str)] = &[
    ("pause", "registry.k8s.io/pause"),
    ("busybox", "docker.io/library/busybox"),
    ("nginx", "docker.io/library/nginx"),
    ("python", "docker.io/library/python"),
];

/// The folder holding `<name>.tar` for every image of [`IMAGES`], built first if needed.
pub fn ensure_built() -> Result<PathBuf, BuildError> {
    let recipe = crate::binaries::modules_dir().join("images/build.sh");
    let pause_c = pause_source()?;
    let mut hash = Sha256::new();
    for file in [&recipe, &pause_c] {
        hash.update(std::fs::read(file).map_err(|source| io("read", file, source))?);
    }
    let digest = hash.finalize();
    let stamp: String = digest.iter().take(6).map(|b| format!("{b:02x}")).collect();
    let dir = crate::binaries::target_dir().join(format!("images-{stamp}"));
    let what = "the container images pause, busybox, nginx and python from Debian packages (about 1.5 minutes)";
    crate::binaries::once(&dir, what, |dir| {
        let output = Command::new("sh")
            .arg(&recipe)
            .arg(dir)
            .arg(&pause_c)
            .output()
            .map_err(|source| io("run", &recipe, source))?;
        if output.status.success() {
            return Ok(());
        }
        let mut text = String::from_utf8_lossy(&output.stderr).into_owned();
        text.push_str(&String::from_utf8_lossy(&output.stdout));
        Err(BuildError::Image {
            what: format!("{} failed", recipe.display()),
            output: text,
        })
    })?;
    Ok(dir)
}

/// `pause.c` of the pinned Kubernetes release, from Go's module cache.
fn pause_source() -> Result<PathBuf, BuildError> {
    let module = crate::binaries::modules_dir().join("node");
    let output = Command::new("go")
        .current_dir(&module)
        .args(["mod", "download", "-json", "k8s.io/kubernetes"])
        .env(
            "GOTOOLCHAIN",
            std::env::var("GOTOOLCHAIN").unwrap_or_else(|_| "local".into()),
        )
        .output()
        .map_err(BuildError::NoGo)?;
    let json: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap_or_default();
    let dir = json["Dir"].as_str().ok_or_else(|| BuildError::Image {
        what: "`go mod download -json k8s.io/kubernetes` (for pause.c) named no folder".into(),
        output: String::from_utf8_lossy(&output.stderr).into_owned(),
    })?;
    Ok(Path::new(dir).join("build/pause/linux/pause.c"))
}

/// Imports every image into the `k8s.io` namespace of the containerd at `address`.
pub fn import(images: &Path, address: &Path) -> Result<(), BuildError> {
    for (file, name) in IMAGES {
        ctr_import(&images.join(format!("{file}.tar")), address, &["--base-name", name])?;
    }
    Ok(())
}

/// Imports an archive that names its images itself (`docker save`).
pub fn import_archive(archive: &Path, address: &Path) -> Result<(), BuildError> {
    ctr_import(archive, address, &[])
}

fn ctr_import(archive: &Path, address: &Path, flags: &[&str]) -> Result<(), BuildError> {
    let output = Command::new("ctr")
        .arg("--address")
        .arg(address)
        .args(["--namespace", "k8s.io", "images", "import"])
        .args(flags)
        .arg(archive)
        .output()
        .map_err(|source| io("import", archive, source))?;
    if output.status.success() {
        return Ok(());
    }
    Err(BuildError::Image {
        what: format!("importing {}", archive.display()),
        output: String::from_utf8_lossy(&output.stderr).into_owned(),
    })
}

fn io(what: &'static str, path: &Path, source: std::io::Error) -> BuildError {
    BuildError::Io {
        what,
        path: path.to_owned(),
        source,
    }
}
