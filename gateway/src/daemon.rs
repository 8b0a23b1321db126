//! `thingate start|stop|status`: run the gateway in the background with a pid
//! file, as the manual's `thingate start` does.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;

/// Errors of the daemon commands.
#[derive(Debug, thiserror::Error)]
pub enum DaemonError {
    /// Already running.
    #[error("ThinGate is already running (pid {0}); use `thingate stop` first")]
    AlreadyRunning(i32),
    /// Not running.
    #[error("ThinGate is not running (no live process in {0})")]
    NotRunning(String),
    /// The child did not come up.
    #[error("ThinGate did not start: {0}")]
    StartFailed(String),
    /// The process did not exit.
    #[error("ThinGate (pid {0}) did not stop within {1} s")]
    StopTimeout(i32, u64),
    /// I/O.
    #[error("{0}: {1}")]
    Io(String, std::io::Error),
}

/// `ThinGate.ini` beside the running `thingate` (symbolic links resolved), as
/// the original finds it: `sudo /opt/thingate/thingate start` works from any
/// folder, and so does an rc.local line.
pub fn config_beside_exe() -> Result<PathBuf, DaemonError> {
    let exe = std::env::current_exe().map_err(|e| DaemonError::Io("the path of this program".into(), e))?;
    let exe = exe.canonicalize().unwrap_or(exe);
    Ok(exe.parent().unwrap_or(Path::new("/")).join(crate::config::INI_NAME))
}

/// Files the daemon uses, next to `ThinGate.ini` unless given.
#[derive(Debug, Clone)]
pub struct DaemonFiles {
    /// Pid file.
    pub pid: PathBuf,
    /// Captured stdout (holds the `listening on` line).
    pub stdout: PathBuf,
    /// Captured stderr (log).
    pub stderr: PathBuf,
}

impl DaemonFiles {
    /// Default files for a config path.
    pub fn for_config(config: &Path, pid: Option<PathBuf>) -> Self {
        let dir = config.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new(".")).to_path_buf();
        Self {
            pid: pid.unwrap_or_else(|| dir.join("thingate.pid")),
            stdout: dir.join("thingate.stdout"),
            stderr: dir.join("thingate.stderr"),
        }
    }
}

/// Reads the pid file and returns the pid if that process is alive.
pub fn running_pid(files: &DaemonFiles) -> Option<i32> {
    let pid: i32 = std::fs::read_to_string(&files.pid).ok()?.trim().parse().ok()?;
    kill(Pid::from_raw(pid), None).ok().map(|_| pid)
}

/// Writes the pid file atomically.
pub fn write_pid(path: &Path) -> std::io::Result<()> {
    use std::io::Write as _;
    let dir = path.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new("."));
    let mut tmp = tempfile::NamedTempFile::new_in(dir)?;
    writeln!(tmp, "{}", std::process::id())?;
    tmp.persist(path).map(drop).map_err(|e| e.error)
}

/// Starts `thingate run` in the background; returns the `listening on` line.
pub fn start(config: &Path, files: &DaemonFiles) -> Result<String, DaemonError> {
    if let Some(pid) = running_pid(files) {
        return Err(DaemonError::AlreadyRunning(pid));
    }
    let exe = std::env::current_exe().map_err(|e| DaemonError::Io("current executable".into(), e))?;
    let open = |p: &Path| std::fs::File::create(p).map_err(|e| DaemonError::Io(p.display().to_string(), e));
    let mut cmd = std::process::Command::new(exe);
    cmd.arg("run").arg("--config").arg(config).arg("--pid-file").arg(&files.pid);
    cmd.stdin(std::process::Stdio::null()).stdout(open(&files.stdout)?).stderr(open(&files.stderr)?);
    std::os::unix::process::CommandExt::process_group(&mut cmd, 0);
    let mut child = cmd.spawn().map_err(|e| DaemonError::Io("spawn thingate run".into(), e))?;
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        if let Some(line) = std::fs::read_to_string(&files.stdout)
            .ok()
            .and_then(|s| s.lines().find(|l| l.starts_with("listening on ")).map(str::to_string))
        {
            return Ok(line);
        }
        if let Ok(Some(status)) = child.try_wait() {
            let log = std::fs::read_to_string(&files.stderr).unwrap_or_default();
            return Err(DaemonError::StartFailed(format!("exited with {status}:\n{}", log.trim_end())));
        }
        if Instant::now() > deadline {
            return Err(DaemonError::StartFailed("no `listening on` line within 20 s".into()));
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Sends SIGTERM and waits for the process to exit.
pub fn stop(files: &DaemonFiles) -> Result<i32, DaemonError> {
    let pid = running_pid(files).ok_or_else(|| DaemonError::NotRunning(files.pid.display().to_string()))?;
    let _ = kill(Pid::from_raw(pid), Signal::SIGTERM);
    let deadline = Instant::now() + Duration::from_secs(30);
    while kill(Pid::from_raw(pid), None).is_ok() {
        if Instant::now() > deadline {
            return Err(DaemonError::StopTimeout(pid, 30));
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let _ = std::fs::remove_file(&files.pid);
    Ok(pid)
}
