//! Mounting the runtime's filesystems: tmpfs scratch space and the overlay at /spfs.
//!
//! Overlays are built with the new mount API (`fsopen`/`fsconfig`/`fsmount`/
//! `move_mount`), adding each lower directory with `lowerdir+`, so the number of
//! layers is not limited by the one-page size of a mount option string.

use std::ffi::{CString, OsStr};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use nix::mount::{MntFlags, MsFlags};

use crate::error::{Error, Result};

/// Most lower directories one overlayfs mount accepts.
pub const MAX_OVERLAY_LOWERS: usize = 500;

const FSOPEN_CLOEXEC: libc::c_uint = 1;
const FSCONFIG_SET_STRING: libc::c_uint = 1;
const FSCONFIG_SET_FLAG: libc::c_uint = 0;
const FSCONFIG_CMD_CREATE: libc::c_uint = 6;
const FSMOUNT_CLOEXEC: libc::c_uint = 1;
const MOUNT_ATTR_RDONLY: libc::c_uint = 1;
const MOUNT_ATTR_NOSUID: libc::c_uint = 2;
const MOUNT_ATTR_NODEV: libc::c_uint = 4;
const MOVE_MOUNT_F_EMPTY_PATH: libc::c_uint = 4;
const OPEN_TREE_CLONE: libc::c_uint = 1;
const OPEN_TREE_CLOEXEC: libc::c_uint = libc::O_CLOEXEC as libc::c_uint;

/// What to stack at a mount point.
#[derive(Debug, Clone)]
pub struct OverlaySpec {
    /// Lower directories, topmost first.
    pub lowers: Vec<PathBuf>,
    /// Writable upper directory.
    pub upper: PathBuf,
    /// Overlay work directory on the same filesystem as `upper`.
    pub work: PathBuf,
    /// Mount read-only (edits refused with EROFS).
    pub read_only: bool,
    /// Keep overlay metadata in `user.*` xattrs (needed inside a user namespace).
    pub user_xattr: bool,
}

fn cstr(p: &Path) -> Result<CString> {
    CString::new(p.as_os_str().as_bytes()).map_err(|_| Error::NulInPath(p.to_path_buf()))
}

/// Mounts a tmpfs at `target`, optionally limited to `size` (`2G`, `50%`, ...).
pub fn mount_tmpfs(target: &Path, size: Option<&str>) -> Result<()> {
    let data = match size {
        Some(s) => format!("mode=0755,size={s}"),
        None => "mode=0755".to_string(),
    };
    nix::mount::mount(
        Some("tmpfs"),
        target,
        Some("tmpfs"),
        MsFlags::MS_NOSUID,
        Some(data.as_str()),
    )
    .map_err(|e| Error::Mount {
        action: format!("mount tmpfs ({data}) at"),
        target: target.to_path_buf(),
        source: e.into(),
        kernel: None,
    })
}

/// Makes `source` visible read-only at `target`.
pub fn bind_read_only(source: &Path, target: &Path) -> Result<()> {
    let fail = |e: nix::errno::Errno| Error::Mount {
        action: format!("bind {} read-only at", source.display()),
        target: target.to_path_buf(),
        source: e.into(),
        kernel: None,
    };
    nix::mount::mount(
        Some(source),
        target,
        None::<&str>,
        MsFlags::MS_BIND,
        None::<&str>,
    )
    .map_err(fail)?;
    // The remount sets the flags anew: keep the source mount's nosuid and nodev (a
    // FUSE mount's or an image view's).
    let mut flags = MsFlags::MS_BIND | MsFlags::MS_REMOUNT | MsFlags::MS_RDONLY;
    if let Ok(st) = nix::sys::statvfs::statvfs(source) {
        use nix::sys::statvfs::FsFlags;
        if st.flags().contains(FsFlags::ST_NOSUID) {
            flags |= MsFlags::MS_NOSUID;
        }
        if st.flags().contains(FsFlags::ST_NODEV) {
            flags |= MsFlags::MS_NODEV;
        }
    }
    nix::mount::mount(None::<&str>, target, None::<&str>, flags, None::<&str>).map_err(fail)
}

/// Detaches whatever is mounted at `target`; a missing mount is not an error.
pub fn unmount(target: &Path) -> Result<()> {
    match nix::mount::umount2(target, MntFlags::MNT_DETACH) {
        Ok(()) | Err(nix::errno::Errno::EINVAL) | Err(nix::errno::Errno::ENOENT) => Ok(()),
        Err(e) => Err(Error::Mount {
            action: "unmount".into(),
            target: target.to_path_buf(),
            source: e.into(),
            kernel: None,
        }),
    }
}

/// Mounts an overlay described by `spec` at `target`.
pub fn mount_overlay(spec: &OverlaySpec, target: &Path) -> Result<()> {
    if spec.lowers.len() > MAX_OVERLAY_LOWERS {
        return Err(Error::TooManyLayers {
            layers: spec.lowers.len(),
            limit: MAX_OVERLAY_LOWERS,
        });
    }
    match mount_overlay_new_api(spec, target) {
        Err(MountApiError::Unsupported) => mount_overlay_legacy(spec, target),
        Err(MountApiError::Failed(e)) => Err(e),
        Ok(()) => Ok(()),
    }
}

/// How a mount with the new mount API failed.
#[derive(Debug)]
pub enum MountApiError {
    /// The kernel lacks the API or the filesystem feature asked for.
    Unsupported,
    /// Anything else.
    Failed(Error),
}

/// Mounts the EROFS image file `source` (a path, or `/proc/self/fd/N` for an open
/// one; `shown` names it in errors) read-only at `target`: a mount backed by the file
/// itself, no loop device.
pub fn mount_image(
    source: &Path,
    shown: &Path,
    target: &Path,
) -> std::result::Result<(), MountApiError> {
    let flags = MsFlags::MS_RDONLY | MsFlags::MS_NODEV | MsFlags::MS_NOSUID;
    // No ACLs: the image holds none, and without them neither EROFS nor the overlay on
    // top looks for them on every stat walker's `getxattr`.
    match nix::mount::mount(Some(source), target, Some("erofs"), flags, Some("noacl")) {
        Ok(()) => Ok(()),
        // No EROFS, or no file-backed mounts (the source is not a block device).
        Err(nix::errno::Errno::ENODEV) | Err(nix::errno::Errno::ENOTBLK) => {
            Err(MountApiError::Unsupported)
        }
        Err(e) => Err(MountApiError::Failed(Error::Mount {
            action: format!("mount the image {} at", shown.display()),
            target: target.to_path_buf(),
            source: e.into(),
            kernel: None,
        })),
    }
}

/// Mounts and detaches a writable overlay on `lower` in `dir` (on the scratch tmpfs):
/// whether a runtime's editable `/spfs` could stack there.
pub fn probe_overlay_on(lower: &Path, dir: &Path) -> Result<()> {
    let (upper, work, mnt) = (dir.join("upper"), dir.join("work"), dir.join("mnt"));
    for d in [&upper, &work, &mnt] {
        std::fs::create_dir_all(d).map_err(|e| Error::io("creating", d, e))?;
    }
    let spec = OverlaySpec {
        lowers: vec![lower.to_path_buf()],
        upper,
        work,
        read_only: false,
        user_xattr: false,
    };
    mount_overlay(&spec, &mnt)?;
    unmount(&mnt)
}

/// A read-only overlay over the metadata tree `meta`, whose metacopy files redirect
/// to their contents in the data-only layer `data`: created detached (in no mount
/// table), for [`attach`] and [`clone_detached`].
pub fn data_view(meta: &Path, data: &Path) -> std::result::Result<OwnedFd, MountApiError> {
    let on = OsStr::new("on");
    let options = [
        ("lowerdir+", Some(meta.as_os_str())),
        ("datadir+", Some(data.as_os_str())),
        ("metacopy", Some(on)),
        ("redirect_dir", Some(OsStr::new("follow"))),
    ];
    overlay_detached(
        &options,
        MOUNT_ATTR_RDONLY | MOUNT_ATTR_NOSUID | MOUNT_ATTR_NODEV,
        meta,
    )
}

/// A new detached mount of the same filesystem instance as the detached or attached
/// mount `mnt` (so the same cached inodes), with the same mount flags.
pub fn clone_detached(mnt: &impl AsRawFd) -> std::io::Result<OwnedFd> {
    let empty = CString::new("").expect("static string");
    // SAFETY: the path is NUL-terminated; the descriptor is valid.
    let fd = unsafe {
        libc::syscall(
            libc::SYS_open_tree,
            mnt.as_raw_fd(),
            empty.as_ptr(),
            OPEN_TREE_CLONE | OPEN_TREE_CLOEXEC | libc::AT_EMPTY_PATH as libc::c_uint,
        )
    };
    if fd < 0 {
        return Err(last_errno());
    }
    // SAFETY: fd is a fresh descriptor we own.
    Ok(unsafe { OwnedFd::from_raw_fd(fd as i32) })
}

/// Attaches the detached mount `mnt` at `target`.
pub fn attach(mnt: OwnedFd, target: &Path) -> Result<()> {
    let empty = CString::new("").expect("static string");
    let tgt = cstr(target)?;
    // SAFETY: both strings are NUL-terminated; descriptors are valid.
    let rc = unsafe {
        libc::syscall(
            libc::SYS_move_mount,
            mnt.as_raw_fd(),
            empty.as_ptr(),
            libc::AT_FDCWD,
            tgt.as_ptr(),
            MOVE_MOUNT_F_EMPTY_PATH,
        )
    };
    if rc < 0 {
        return Err(Error::Mount {
            action: "attach a mount at".into(),
            target: target.to_path_buf(),
            source: last_errno(),
            kernel: None,
        });
    }
    Ok(())
}

fn last_errno() -> std::io::Error {
    std::io::Error::last_os_error()
}

/// Reads the messages the kernel attached to a filesystem context.
fn context_messages(fd: &OwnedFd) -> String {
    let mut out = Vec::new();
    let mut buf = [0u8; 1024];
    loop {
        // SAFETY: reading into a local buffer of the given length.
        let n = unsafe { libc::read(fd.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len()) };
        if n <= 0 {
            break;
        }
        out.push(
            String::from_utf8_lossy(&buf[..n as usize])
                .trim()
                .to_string(),
        );
    }
    out.join("; ")
}

fn mount_overlay_new_api(
    spec: &OverlaySpec,
    target: &Path,
) -> std::result::Result<(), MountApiError> {
    let mut options: Vec<(&str, Option<&OsStr>)> = spec
        .lowers
        .iter()
        .map(|l| ("lowerdir+", Some(l.as_os_str())))
        .collect();
    options.push(("upperdir", Some(spec.upper.as_os_str())));
    options.push(("workdir", Some(spec.work.as_os_str())));
    if spec.user_xattr {
        options.push(("userxattr", None));
    }
    let attrs = if spec.read_only { MOUNT_ATTR_RDONLY } else { 0 };
    overlay_new_api(&options, attrs, target)
}

/// Mounts an overlay at `target` with the new mount API: each option a key with a
/// value or a flag; `attrs`: the mount's `MOUNT_ATTR_*` flags.
fn overlay_new_api(
    options: &[(&str, Option<&OsStr>)],
    attrs: libc::c_uint,
    target: &Path,
) -> std::result::Result<(), MountApiError> {
    let mnt = overlay_detached(options, attrs, target)?;
    attach(mnt, target).map_err(MountApiError::Failed)
}

/// A detached overlay (see [`overlay_new_api`]); `target` names it in errors.
fn overlay_detached(
    options: &[(&str, Option<&OsStr>)],
    attrs: libc::c_uint,
    target: &Path,
) -> std::result::Result<OwnedFd, MountApiError> {
    let fstype = CString::new("overlay").expect("static string");
    // SAFETY: fsopen takes a NUL-terminated name and flags; returns a new descriptor.
    let fd = unsafe { libc::syscall(libc::SYS_fsopen, fstype.as_ptr(), FSOPEN_CLOEXEC) };
    if fd < 0 {
        let e = last_errno();
        return match e.raw_os_error() {
            Some(libc::ENOSYS) => Err(MountApiError::Unsupported),
            Some(libc::ENODEV) => Err(MountApiError::Failed(Error::OverlayUnavailable)),
            _ => Err(MountApiError::Failed(Error::Mount {
                action: "open an overlay filesystem context (fsopen) for".into(),
                target: target.to_path_buf(),
                source: e,
                kernel: None,
            })),
        };
    }
    // SAFETY: fd is a fresh descriptor we own.
    let fs = unsafe { OwnedFd::from_raw_fd(fd as i32) };
    let fail = |action: String, e: std::io::Error| {
        MountApiError::Failed(Error::Mount {
            action,
            target: target.to_path_buf(),
            source: e,
            kernel: Some(context_messages(&fs)),
        })
    };
    let set = |key: &str, value: Option<&OsStr>| -> std::result::Result<(), MountApiError> {
        let k = CString::new(key).expect("static key");
        let v = match value {
            Some(p) => Some(cstr(Path::new(p)).map_err(MountApiError::Failed)?),
            None => None,
        };
        let (cmd, vptr) = match &v {
            Some(v) => (FSCONFIG_SET_STRING, v.as_ptr()),
            None => (FSCONFIG_SET_FLAG, std::ptr::null()),
        };
        // SAFETY: key and value are NUL-terminated strings that outlive the call.
        let rc =
            unsafe { libc::syscall(libc::SYS_fsconfig, fs.as_raw_fd(), cmd, k.as_ptr(), vptr, 0) };
        if rc < 0 {
            let e = last_errno();
            if (key == "lowerdir+" || key == "datadir+")
                && e.raw_os_error() == Some(libc::EINVAL)
                && context_messages(&fs).contains("Unknown parameter")
            {
                return Err(MountApiError::Unsupported);
            }
            let what = match value {
                Some(p) => format!("set overlay option {key}={} for", Path::new(p).display()),
                None => format!("set overlay option {key} for"),
            };
            return Err(fail(what, e));
        }
        Ok(())
    };
    for (key, value) in options {
        set(key, *value)?;
    }
    // SAFETY: plain syscall on our descriptor.
    let rc = unsafe {
        libc::syscall(
            libc::SYS_fsconfig,
            fs.as_raw_fd(),
            FSCONFIG_CMD_CREATE,
            std::ptr::null::<libc::c_char>(),
            std::ptr::null::<libc::c_char>(),
            0,
        )
    };
    if rc < 0 {
        return Err(fail("create the overlay for".into(), last_errno()));
    }
    // SAFETY: plain syscall on our descriptor.
    let mfd = unsafe { libc::syscall(libc::SYS_fsmount, fs.as_raw_fd(), FSMOUNT_CLOEXEC, attrs) };
    if mfd < 0 {
        return Err(fail("mount the overlay for".into(), last_errno()));
    }
    // SAFETY: mfd is a fresh descriptor we own.
    Ok(unsafe { OwnedFd::from_raw_fd(mfd as i32) })
}

fn mount_overlay_legacy(spec: &OverlaySpec, target: &Path) -> Result<()> {
    let mut data = String::from("lowerdir=");
    let lowers: Vec<String> = spec
        .lowers
        .iter()
        .map(|p| {
            p.to_string_lossy()
                .replace('\\', "\\\\")
                .replace(':', "\\:")
                .replace(',', "\\,")
        })
        .collect();
    data.push_str(&lowers.join(":"));
    data.push_str(&format!(
        ",upperdir={},workdir={}",
        spec.upper.display(),
        spec.work.display()
    ));
    if spec.user_xattr {
        data.push_str(",userxattr");
    }
    let page = 4096;
    if data.len() >= page {
        return Err(Error::OverlayOptionsTooLong {
            layers: spec.lowers.len(),
            bytes: data.len(),
            limit: page,
        });
    }
    let mut flags = MsFlags::empty();
    if spec.read_only {
        flags |= MsFlags::MS_RDONLY;
    }
    nix::mount::mount(
        Some("overlay"),
        target,
        Some("overlay"),
        flags,
        Some(data.as_str()),
    )
    .map_err(|e| Error::Mount {
        action: "mount overlay at".into(),
        target: target.to_path_buf(),
        source: e.into(),
        kernel: None,
    })
}
