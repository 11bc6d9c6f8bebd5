//! The control plane's processes. Each runs under a small shell that holds the read end of a
//! pipe whose write end only this process has: when this process ends, however it ends (a
//! finished test binary, a panic, a kill), the pipe closes and the shell stops its program, so
//! no component outlives the test or the `up` command that started it.

use std::fs::File;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};

/// One running component.
#[derive(Debug)]
pub struct Component {
    /// Its name (`etcd`, `kube-apiserver`, …).
    pub name: &'static str,
    /// Where its output goes.
    pub log: PathBuf,
    shell: Child,
    pipe: Option<ChildStdin>,
}

/// Starting a component failed.
#[derive(Debug, thiserror::Error)]
#[error("testbed: cannot start {name}: {source}")]
pub struct SpawnError {
    name: &'static str,
    source: std::io::Error,
}

// The program runs in the background with its output in the log; a watcher waits for our end
// of the pipe to send a line or close, then stops it (SIGTERM, SIGKILL 3 s later: an API
// server whose etcd is already gone never finishes its graceful stop), or kills it at once
// when the line is `kill`. The shell exits when the program does, with its status, so a
// component that dies is seen as stopped.
const SUPERVISOR: &str = r#"log="$1"; shift; exec 3<&0
"$@" >>"$log" 2>&1 </dev/null & p=$!
{ read how <&3; [ "$how" = kill ] || { kill "$p"; sleep 3; }; kill -9 "$p"; } 2>/dev/null & w=$!
wait "$p"; s=$?; kill "$w" 2>/dev/null; exit "$s""#;

impl Component {
    /// Starts `program` with `args`, its output appended to `<dir>/<name>.log`.
    pub fn start(name: &'static str, dir: &Path, program: &Path, args: &[String]) -> Result<Self, SpawnError> {
        let log = dir.join(format!("{name}.log"));
        File::create(&log).map_err(|source| SpawnError { name, source })?;
        let mut shell_args = vec![log.clone().into_os_string(), program.into()];
        shell_args.extend(args.iter().map(Into::into));
        let (shell, pipe) = shell_with_pipe(name, SUPERVISOR, &shell_args)?;
        Ok(Self { name, log, shell, pipe })
    }

    /// The last `lines` lines of its output, to explain a failure.
    pub fn tail(&self, lines: usize) -> String {
        let text = std::fs::read_to_string(&self.log).unwrap_or_default();
        let all: Vec<&str> = text.lines().collect();
        all[all.len().saturating_sub(lines)..].join("\n")
    }

    /// Whether the program is still running (its supervising shell ends only after it).
    pub fn is_running(&mut self) -> bool {
        matches!(self.shell.try_wait(), Ok(None))
    }

    /// Stops the program (SIGTERM) and waits until it has exited.
    pub fn stop(&mut self) {
        self.end(b"stop\n");
    }

    /// Kills the program at once (SIGKILL), as a crash would, and waits until it has exited.
    pub fn kill(&mut self) {
        self.end(b"kill\n");
    }

    fn end(&mut self, how: &[u8]) {
        if let Some(mut pipe) = self.pipe.take() {
            let _ = pipe.write_all(how);
        }
        let _ = self.shell.wait();
    }
}

impl Drop for Component {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Removes a folder once this process ends, however it ends (a testbed shared by a test
/// binary lives in a static and is never dropped): a shell waits for our end of a pipe to
/// close, gives the components time to stop, and removes it. With real nodes, the shell first
/// takes the machine's real-node lock (waiting for another testbed's to end), runs the
/// cleanup script once for what an earlier testbed may have left, and runs it again before
/// removing the folder; the lock is released only then.
#[derive(Debug)]
pub struct RemoveOnExit {
    shell: Child,
    pipe: Option<ChildStdin>,
}

/// The watcher: `$1` the folder, `$2` the lock file and `$3` the cleanup script (or empty).
const WATCHER: &str = r#"dir="$1" lock="$2" cleanup="$3"
if [ -n "$lock" ]; then
    exec 9>"$lock"
    flock -n 9 || { echo busy; flock 9; }
    sh "$cleanup" >/dev/null 2>&1
fi
echo ready
read how
[ "$how" = now ] || sleep 4
[ -z "$cleanup" ] || sh "$cleanup" >/dev/null 2>&1
rm -rf "$dir""#;

impl RemoveOnExit {
    /// Arranges for `dir` to be removed when this process ends; with `real_nodes` (the lock
    /// file and the cleanup script), holds the lock from now on. Returns once the lock is held.
    pub fn arrange(dir: &Path, real_nodes: Option<(&Path, &Path)>) -> Result<Self, SpawnError> {
        let (lock, cleanup) = real_nodes.map_or((Default::default(), Default::default()), |(l, c)| {
            (l.as_os_str().to_owned(), c.as_os_str().to_owned())
        });
        let mut command = Command::new("sh");
        command
            .args(["-c", WATCHER, "llp-testbed"])
            .arg(dir)
            .arg(lock)
            .arg(cleanup)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null());
        let mut shell = command.spawn().map_err(|source| SpawnError {
            name: "cleanup",
            source,
        })?;
        let pipe = shell.stdin.take();
        let stdout = shell.stdout.take().expect("a piped stdout");
        for line in std::io::BufRead::lines(std::io::BufReader::new(stdout)) {
            match line.as_deref() {
                Ok("busy") => {
                    crate::say("waiting for another testbed's real nodes to stop (the machine runs one at a time)")
                }
                Ok("ready") | Err(_) => break,
                Ok(_) => {}
            }
        }
        Ok(Self { shell, pipe })
    }

    /// Cleans up and removes the folder now (the components are stopped), returning when done.
    pub fn now(&mut self) {
        if let Some(mut pipe) = self.pipe.take() {
            let _ = pipe.write_all(b"now\n");
        }
        let _ = self.shell.wait();
    }
}

/// `sh -c script` with `args` as `$1…`, its stdin a pipe whose write end only we hold.
fn shell_with_pipe(
    name: &'static str,
    script: &str,
    args: &[std::ffi::OsString],
) -> Result<(Child, Option<ChildStdin>), SpawnError> {
    let mut shell = Command::new("sh")
        .args(["-c", script, "llp-testbed"])
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .map_err(|source| SpawnError { name, source })?;
    let pipe = shell.stdin.take();
    Ok((shell, pipe))
}
