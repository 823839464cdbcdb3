//! Mount lifecycle: mounting with `mount(2)`, the FUSE handshake, the passthrough
//! probe, readiness, and unmounting (lazy detach, then aborting the connection when
//! open files keep the server alive).

use std::io;
use std::os::fd::{AsRawFd, OwnedFd};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use fuser::{BackgroundSession, BackingId, Config, Filesystem, INodeNo, Session, SessionACL};

use super::handlers::SpfsFs;
use super::inodes::InodeTable;
use super::{Shared, MAX_IO, ROOT_MODE};
use crate::error::{Error, FuseDevice, FuseProblem, Result};
use crate::object::Manifest;
use crate::storage::LocalRepository;

/// `FUSE_DEV_IOC_BACKING_CLOSE`: `_IOW(229, 2, u32)`.
const FUSE_DEV_IOC_BACKING_CLOSE: libc::c_ulong = 0x4004_e502;
/// How long the server may take to stop on its own after the lazy unmount before the
/// connection is aborted (open files keep a detached FUSE superblock alive).
const STOP_GRACE: Duration = Duration::from_secs(2);
/// How long to wait for the server after aborting the connection.
const ABORT_GRACE: Duration = Duration::from_secs(5);

/// How a [`FuseMount`] serves file contents.
#[derive(Debug, Clone)]
pub struct FuseOptions {
    /// Use FUSE passthrough for file reads when the kernel and privileges allow it; silently fall back otherwise.
    pub passthrough: bool,
    /// A remote (an address: `file:///path`, `s3://bucket/prefix`) from which a payload
    /// missing locally is fetched on its first open: verified against its digest and
    /// size, stored in the local repository, then served. A payload missing or corrupt
    /// there too fails that open with EIO and a log line.
    pub fallback: Option<String>,
}

impl Default for FuseOptions {
    fn default() -> Self {
        FuseOptions {
            passthrough: true,
            fallback: None,
        }
    }
}

/// A mounted read-only view of one manifest. Dropping it unmounts and stops the server threads.
///
/// Unmounting is lazy (`MNT_DETACH`). If files are still open through the mount afterwards
/// (including through an overlay still stacked on it), the connection is aborted after a
/// short grace period so that the server can stop; those files then fail with `ENOTCONN`.
/// Without the privilege to abort (inside a user namespace), the server keeps serving them
/// in the background until they are closed.
#[derive(Debug)]
pub struct FuseMount {
    mountpoint: PathBuf,
    /// `st_dev` of the mounted root.
    dev: u64,
    session: Option<BackgroundSession>,
    shared: Arc<Shared>,
}

impl FuseMount {
    /// Mounts `manifest` (already merged: contains no masks; ignore any Mask entries defensively) at `mountpoint`.
    /// File contents come from `repo.payload_path(digest)`. Returns once the mount is live (a stat of the mountpoint shows the root).
    pub fn mount(
        repo: &LocalRepository,
        manifest: Manifest,
        mountpoint: &Path,
        opts: &FuseOptions,
    ) -> Result<FuseMount> {
        Self::mount_table(repo, InodeTable::from_manifest(manifest), mountpoint, opts)
    }

    /// Mounts a prepared inode table at `mountpoint`, like [`FuseMount::mount`].
    pub fn mount_table(
        repo: &LocalRepository,
        table: InodeTable,
        mountpoint: &Path,
        opts: &FuseOptions,
    ) -> Result<FuseMount> {
        let mountpoint = mountpoint.canonicalize().map_err(|e| Error::Fuse {
            path: mountpoint.to_path_buf(),
            problem: FuseProblem::MountPoint(e),
        })?;
        let fuse_err = |problem: FuseProblem| Error::Fuse {
            path: mountpoint.clone(),
            problem,
        };
        if !mountpoint.is_dir() {
            return Err(fuse_err(FuseProblem::NotADirectory));
        }

        let fallback = match &opts.fallback {
            Some(address) => Some(super::handlers::Fallback(
                crate::config::Address::parse(address)
                    .and_then(|a| crate::storage::open_remote(&a, false))
                    .map_err(|e| {
                        fuse_err(FuseProblem::Fallback {
                            remote: address.clone(),
                            source: Box::new(e),
                        })
                    })?,
            )),
            None => None,
        };
        let euid = nix::unistd::geteuid().as_raw();
        let egid = nix::unistd::getegid().as_raw();
        let shared = Arc::new(Shared::default());
        let mut fs = SpfsFs::new(repo.clone(), table, euid, egid, opts, shared.clone());
        fs.fallback = fallback;
        let probe = fs.probe_candidates();

        let dev_fuse = open_dev_fuse()?;
        // Root (also root of a user namespace) lets every user of the namespace in;
        // anyone else gets only their own requests served.
        let allow_other = euid == 0;
        let data = format!(
            "fd={},rootmode={:o},user_id={euid},group_id={egid},default_permissions,\
             max_read={MAX_IO},subtype=spfs{}",
            dev_fuse.as_raw_fd(),
            libc::S_IFDIR | ROOT_MODE,
            if allow_other { ",allow_other" } else { "" },
        );
        let flags = nix::mount::MsFlags::MS_RDONLY
            | nix::mount::MsFlags::MS_NOSUID
            | nix::mount::MsFlags::MS_NODEV;
        nix::mount::mount(
            Some("spfs"),
            &mountpoint,
            Some("fuse"),
            flags,
            Some(data.as_str()),
        )
        .map_err(|e| fuse_err(FuseProblem::Mount(e)))?;
        tracing::debug!(mountpoint = %mountpoint.display(), "FUSE filesystem mounted");

        let mut config = Config::default();
        config.n_threads = Some(worker_threads());
        config.receive_spin = receive_spin();
        let acl = if allow_other {
            SessionACL::All
        } else {
            SessionACL::Owner
        };
        // The handshake completes inside `from_fd`; on failure the device is closed,
        // which aborts the connection, and the lazy unmount removes the mount.
        let session = match Session::from_fd(fs, dev_fuse, acl, config) {
            Ok(s) => s,
            Err(e) => {
                detach(&mountpoint);
                return Err(fuse_err(FuseProblem::Handshake(e)));
            }
        };

        if opts.passthrough && shared.negotiated.load(Ordering::Relaxed) {
            match probe_passthrough(&session, &probe) {
                Ok(()) => shared.passthrough.store(true, Ordering::Relaxed),
                // Nothing local yet (payloads fetched on first open): the first open
                // tries, and falls back to userspace reads if the kernel refuses.
                Err(reason)
                    if (probe.is_empty() || reason == NO_PROBE_PAYLOAD)
                        && euid == 0
                        && in_initial_user_namespace() =>
                {
                    shared.passthrough.store(true, Ordering::Relaxed)
                }
                Err(reason) => tracing::info!(
                    "FUSE passthrough unavailable ({reason}); serving reads from userspace"
                ),
            }
        } else if opts.passthrough {
            tracing::info!(
                "the kernel does not offer FUSE passthrough; serving reads from userspace"
            );
        }

        let session = match session.spawn() {
            Ok(s) => s,
            Err(e) => {
                detach(&mountpoint);
                return Err(fuse_err(FuseProblem::Server(e)));
            }
        };
        let mut mount = FuseMount {
            mountpoint: mountpoint.clone(),
            dev: 0,
            session: Some(session),
            shared,
        };

        // Readiness: the root must answer through the new mount.
        match std::fs::metadata(&mount.mountpoint) {
            Ok(meta) if meta.is_dir() && meta.ino() == INodeNo::ROOT.0 => {
                mount.dev = meta.dev();
            }
            Ok(_) => {
                let err = fuse_err(FuseProblem::NotServed);
                let _ = mount.shutdown();
                return Err(err);
            }
            Err(e) => {
                let err = fuse_err(FuseProblem::NoAnswer(e));
                let _ = mount.shutdown();
                return Err(err);
            }
        }
        raise_readahead(mount.dev);
        tracing::debug!(
            mountpoint = %mount.mountpoint.display(),
            passthrough = mount.passthrough_active(),
            "FUSE filesystem ready"
        );
        Ok(mount)
    }

    /// Whether reads go through passthrough.
    pub fn passthrough_active(&self) -> bool {
        self.shared.passthrough.load(Ordering::Relaxed)
    }

    /// The directory the filesystem is mounted on.
    pub fn mountpoint(&self) -> &Path {
        &self.mountpoint
    }

    /// Unmounts and waits for the server to stop.
    pub fn unmount(mut self) -> Result<()> {
        self.shutdown()
    }

    /// Leaves the mount and its server as they are, for a process about to exit whose
    /// mount namespace dies with it: the namespace's teardown unmounts the filesystem,
    /// and the server's threads end with the process.
    pub fn abandon(mut self) {
        if let Some(session) = self.session.take() {
            std::mem::forget(session);
        }
    }

    fn shutdown(&mut self) -> Result<()> {
        let Some(session) = self.session.take() else {
            return Ok(());
        };
        // Only detach what is still ours: something may have been mounted on top, or the
        // mount may already be gone.
        let ours = self.dev == 0
            || std::fs::symlink_metadata(&self.mountpoint)
                .map(|m| m.dev() == self.dev)
                .unwrap_or(false);
        if ours {
            detach(&self.mountpoint);
        }
        if !wait_finished(&session, STOP_GRACE) {
            // Files still open through the detached mount (or a stacked overlay that is
            // still mounted) keep the superblock, and so the server, alive.
            tracing::debug!(
                mountpoint = %self.mountpoint.display(),
                "the FUSE filesystem is still in use after unmounting; aborting its connection"
            );
            if self.dev != 0 {
                abort_connection(self.dev);
            }
            if !wait_finished(&session, ABORT_GRACE) {
                // Aborting needs root of the initial user namespace. The mount itself is
                // gone; the server thread ends when the last open file is closed.
                tracing::warn!(
                    mountpoint = %self.mountpoint.display(),
                    "files are still open on the unmounted FUSE filesystem; it keeps serving \
                     them until they are closed"
                );
                return Ok(());
            }
        }
        match session.join() {
            Ok(()) => Ok(()),
            Err(e) => {
                tracing::debug!(error = %e, "FUSE server ended with an error");
                Ok(())
            }
        }
    }
}

impl Drop for FuseMount {
    fn drop(&mut self) {
        if let Err(e) = self.shutdown() {
            tracing::warn!("{e}");
        }
    }
}

fn wait_finished(session: &BackgroundSession, limit: Duration) -> bool {
    let start = Instant::now();
    loop {
        if session.guard.is_finished() {
            return true;
        }
        if start.elapsed() >= limit {
            return false;
        }
        std::thread::sleep(Duration::from_millis(2));
    }
}

fn detach(mountpoint: &Path) {
    if let Err(e) = nix::mount::umount2(mountpoint, nix::mount::MntFlags::MNT_DETACH) {
        tracing::debug!(mountpoint = %mountpoint.display(), error = %e, "unmounting FUSE filesystem");
    }
}

/// Aborts the FUSE connection of the superblock `dev` through fusectl, mounting a private
/// instance of it when none is visible. Best effort.
fn abort_connection(dev: u64) {
    // fusectl names a connection by the kernel-internal device number.
    let name = ((libc::major(dev) << 20) | libc::minor(dev)).to_string();
    let write_abort = |dir: &Path| std::fs::write(dir.join(&name).join("abort"), b"1");
    if write_abort(Path::new("/sys/fs/fuse/connections")).is_ok() {
        return;
    }
    let Ok(tmp) = tempfile::tempdir() else {
        return;
    };
    let mounted = nix::mount::mount(
        Some("fusectl"),
        tmp.path(),
        Some("fusectl"),
        nix::mount::MsFlags::empty(),
        None::<&str>,
    );
    if mounted.is_ok() {
        if let Err(e) = write_abort(tmp.path()) {
            tracing::debug!(error = %e, "aborting FUSE connection {name}");
        }
        let _ = nix::mount::umount2(tmp.path(), nix::mount::MntFlags::MNT_DETACH);
    }
}

/// Raises the mount's readahead window from the kernel's 128 KiB to [`MAX_IO`], so that
/// sequential reads arrive as 1 MiB requests (a measured 1.5x for reads that are not
/// passed through). Best effort: sysfs is writable only by root of the initial namespace.
fn raise_readahead(dev: u64) {
    let path = format!(
        "/sys/class/bdi/{}:{}/read_ahead_kb",
        libc::major(dev),
        libc::minor(dev)
    );
    if let Err(e) = std::fs::write(&path, (MAX_IO / 1024).to_string()) {
        tracing::debug!(%path, error = %e, "keeping the default FUSE readahead");
    }
}

fn open_dev_fuse() -> Result<OwnedFd> {
    let opened = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open("/dev/fuse");
    let device = match opened {
        Ok(f) => return Ok(f.into()),
        Err(e) if e.kind() == io::ErrorKind::NotFound => FuseDevice::Missing,
        Err(e) if e.kind() == io::ErrorKind::PermissionDenied => FuseDevice::NotPermitted,
        Err(e) => FuseDevice::Open(e),
    };
    Err(Error::FuseUnavailable(device))
}

/// How long a server thread keeps asking for the next request before it sleeps:
/// `$SPFS_FUSE_SPIN_US` microseconds, default 100 (0: never). A walk's requests come
/// back to back, and one that finds the server awake is answered without the cost of
/// waking it (docs/benchmarks.md: a fresh `find` 4.1–4.7× native without, 2.7–3.2×
/// with); the price is one core kept busy for up to the window after each burst.
fn receive_spin() -> Duration {
    const DEFAULT_US: u64 = 100;
    Duration::from_micros(
        std::env::var("SPFS_FUSE_SPIN_US")
            .ok()
            .and_then(|v| v.trim().parse().ok())
            .unwrap_or(DEFAULT_US),
    )
}

fn worker_threads() -> usize {
    std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(2)
        .clamp(2, 8)
}

/// Registers one payload as a passthrough backing file and releases it again: proves the
/// kernel accepts passthrough from this process for files of this repository.
fn probe_passthrough<FS: Filesystem>(
    session: &Session<FS>,
    candidates: &[PathBuf],
) -> std::result::Result<(), String> {
    let Some(file) = candidates
        .iter()
        .find_map(|p| crate::storage::files::open_file(p).ok().flatten())
        .map(|(f, _)| f)
    else {
        return Err(NO_PROBE_PAYLOAD.into());
    };
    let id = BackingId::create_raw(session, &file).map_err(|e| e.to_string())?;
    let fd = std::os::fd::AsFd::as_fd(session).as_raw_fd();
    // SAFETY: the ioctl reads one u32 from a valid pointer; `fd` is the open FUSE device.
    let rc = unsafe { libc::ioctl(fd, FUSE_DEV_IOC_BACKING_CLOSE, &id as *const u32) };
    if rc != 0 {
        tracing::debug!(error = %io::Error::last_os_error(), "closing probe backing id");
    }
    Ok(())
}

const NO_PROBE_PAYLOAD: &str = "no payload to serve";

/// True outside any user namespace: the only place passthrough files are accepted.
fn in_initial_user_namespace() -> bool {
    std::fs::read_to_string("/proc/self/uid_map")
        .map(|m| m.split_whitespace().collect::<Vec<_>>() == ["0", "0", "4294967295"])
        .unwrap_or(false)
}
