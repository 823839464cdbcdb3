//! `spfs run`: set up a runtime, run one program in it, and tear everything down.
//!
//! The calling process becomes the runtime's monitor. It enters a private mount
//! namespace before any thread exists, mounts a tmpfs for scratch space and the
//! overlay at /spfs, starts the program as a child, forwards signals to it, applies
//! edit/reset requests (SIGUSR1/SIGUSR2 from `spfs edit`/`spfs reset`), and when the
//! child exits unmounts everything and exits with the child's status. If the monitor
//! is killed, the child is killed with it (parent-death signal) and the namespace, with
//! every mount in it, disappears with its last process.

use std::fs;
use std::os::fd::OwnedFd;
use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};

use nix::sys::signal::{kill, SigSet, Signal};
use nix::sys::wait::{waitpid, WaitPidFlag, WaitStatus};
use nix::unistd::Pid;
use rayon::prelude::*;

use super::fuse::InodeTable;
use super::image::keeper;
use super::mounts::{self, OverlaySpec, MAX_OVERLAY_LOWERS};
use super::namespace::{self, Privilege};
use super::record::{self, Backend, RuntimeRecord};
use super::startup::{self, Program};
use crate::digest::Digest;
use crate::error::{Error, IoContext, Result};
use crate::object::{Manifest, Object};
use crate::render::render_cached;
use crate::storage::{LocalRepository, ReadThrough};

/// The mount point of every runtime.
pub const SPFS_DIR: &str = "/spfs";
/// Where each runtime mounts its private scratch tmpfs (an empty directory on the host).
pub const SCRATCH_DIR: &str = "/tmp/spfs-runtime";

/// How to set up a runtime.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct RunOptions {
    /// The stack: layers, platforms or manifests, bottom first.
    pub stack: Vec<Digest>,
    /// Lower-directory backend.
    pub backend: Backend,
    /// Writable /spfs; `None` means writable only for an empty stack.
    pub edit: Option<bool>,
    /// Size limit of the scratch tmpfs (`2G`, `50%`); kernel default when `None`.
    pub tmpfs_size: Option<String>,
    /// Keep the upper dir on disk after exit, for `--rerun`.
    pub keep: bool,
    /// Resume a kept runtime by name (its stack and edits).
    pub rerun: Option<String>,
    /// Name for the new runtime.
    pub name: Option<String>,
    /// What to run.
    pub program: Program,
    /// Working directory of the program (may lie inside /spfs); the caller's otherwise.
    #[serde(default)]
    pub cwd: Option<PathBuf>,
    /// Keep the writable upper dir in this directory on disk (created if missing, left in
    /// place after exit for the caller to capture) instead of the scratch tmpfs.
    #[serde(default)]
    pub upper_dir: Option<PathBuf>,
    /// FUSE backend: a remote (an address, `file:///path` or `s3://bucket/prefix`)
    /// from which payloads missing locally are fetched on first open instead of
    /// failing before the start.
    #[serde(default)]
    pub payloads_from: Option<String>,
    /// Symbolic links `(link, target)` to show outside /spfs, e.g.
    /// `/var/vcap/packages/x` -> `/spfs/var/vcap/packages/x`. Each distinct parent
    /// directory of a link gets a private tmpfs holding only these links (hiding what
    /// the host has there); a missing parent is created on the host as an empty mount
    /// point (root only), nothing is ever written into the host's directory.
    #[serde(default)]
    pub links: Vec<(PathBuf, PathBuf)>,
}

impl RunOptions {
    /// Options for running `program` over `stack` with the defaults of `spfs run`.
    pub fn new(stack: Vec<Digest>, program: Program) -> Self {
        RunOptions {
            stack,
            backend: Backend::Render,
            edit: None,
            tmpfs_size: None,
            keep: false,
            rerun: None,
            name: None,
            program,
            cwd: None,
            upper_dir: None,
            payloads_from: None,
            links: Vec::new(),
        }
    }
}

/// The signals the monitor handles synchronously.
fn monitor_signals() -> SigSet {
    let mut set = SigSet::empty();
    for s in [
        Signal::SIGCHLD,
        Signal::SIGINT,
        Signal::SIGTERM,
        Signal::SIGHUP,
        Signal::SIGQUIT,
        Signal::SIGUSR1,
        Signal::SIGUSR2,
    ] {
        set.add(s);
    }
    set
}

/// True when this process runs in a runtime's mount namespace (its scratch tmpfs is
/// mounted), as a nested runtime's monitor does before entering its own.
pub fn inside_a_runtime() -> bool {
    std::fs::read_to_string("/proc/self/mountinfo").is_ok_and(|text| {
        text.lines()
            .any(|l| l.split(' ').nth(4) == Some(SCRATCH_DIR))
    })
}

/// Enters the runtime's namespace. Call first, while the process is single-threaded;
/// everything else of the runtime happens in [`run`].
pub fn prepare() -> Result<Privilege> {
    let privilege = namespace::enter_private_namespace()?;
    // Threads started from here on inherit the mask, so these signals reach only the
    // monitor's wait loop.
    monitor_signals()
        .thread_block()
        .map_err(|e| Error::Supervision {
            action: "block signals".into(),
            source: e.into(),
        })?;
    Ok(privilege)
}

/// Runs the program in a new runtime and returns its exit code. The calling process
/// (entered with [`prepare`]) must exit once this returns: when no process of the
/// runtime is left, its mounts are left to the teardown of its mount namespace, which
/// dies with the process.
///
/// `host_ns`: the mount namespace the process was started in, where a keeper of image
/// views may be started (see [`super::image::keeper`]).
pub fn run(
    repo: &LocalRepository,
    privilege: Privilege,
    opts: RunOptions,
    host_ns: Option<OwnedFd>,
) -> Result<i32> {
    let mut rt = Monitor::new(repo, privilege, &opts)?;
    rt.host_ns = host_ns;
    let result = rt.start(&opts).and_then(|child| rt.supervise(child));
    let cleanup = rt.teardown();
    let code = result?;
    cleanup?;
    Ok(code)
}

/// The runtime's monitor: its mounts, record and command, from setup to teardown.
struct Monitor<'a> {
    repo: &'a LocalRepository,
    privilege: Privilege,
    record: RuntimeRecord,
    lowers: Vec<PathBuf>,
    scratch: PathBuf,
    /// What serves a FUSE-backend stack: the FUSE server, or an image view.
    view: Option<View>,
    /// A FUSE-backend stack may be served by an image view: as root, with every payload
    /// local, on a kernel that has them, unless `SPFS_FUSE_IMAGE=0`.
    image_views: bool,
    /// Image views are handed to the keeper and asked of it (`SPFS_VIEW_KEEP` not 0).
    keep_views: bool,
    /// Where a keeper may be started, until the monitor becomes a subreaper.
    host_ns: Option<OwnedFd>,
    mounted: Vec<PathBuf>,
    /// /spfs is a read-only bind of the single lower dir rather than an overlay.
    bound: bool,
    /// The single lower dir holds no whiteouts, so it can be bound directly.
    bindable: bool,
    registered: bool,
    /// The command leads its own process group (no terminal in the foreground).
    own_group: bool,
    payloads_from: Option<String>,
}

impl<'a> Monitor<'a> {
    fn new(repo: &'a LocalRepository, privilege: Privilege, opts: &RunOptions) -> Result<Self> {
        let (name, stack, editable, keep, previous) = match &opts.rerun {
            Some(name) => {
                let rec = record::load(repo, name)?;
                if rec.is_alive() {
                    return Err(Error::RuntimeStillRunning {
                        name: name.clone(),
                        pid: rec.pid,
                    });
                }
                if !rec.keep {
                    return Err(Error::RuntimeNotKept(name.clone()));
                }
                let edit = opts.edit.unwrap_or(rec.editable);
                (rec.name.clone(), rec.stack.clone(), edit, true, Some(rec))
            }
            None => (
                opts.name.clone().unwrap_or_else(record::new_name),
                opts.stack.clone(),
                opts.edit.unwrap_or(opts.stack.is_empty()),
                opts.keep,
                None,
            ),
        };
        if opts.name.is_some() && previous.is_none() {
            record::validate_name(&name)?;
            if record::load(repo, &name).is_ok() {
                return Err(Error::RuntimeExists(name));
            }
        }
        if !namespace::overlay_available() {
            return Err(Error::OverlayUnavailable);
        }
        let scratch = PathBuf::from(SCRATCH_DIR);
        let (upper, work) = if let Some(dir) = &opts.upper_dir {
            (dir.join("upper"), dir.join("work"))
        } else if keep {
            let dir = record::runtime_dir(repo, &name);
            (dir.join("upper"), dir.join("work"))
        } else {
            (scratch.join("upper"), scratch.join("work"))
        };
        let record = RuntimeRecord {
            name,
            pid: std::process::id(),
            started: namespace::process_start_time(std::process::id()).unwrap_or(0),
            host: record::hostname(),
            created: now(),
            backend: opts.backend,
            editable,
            keep,
            upper,
            work,
            stack,
            generation: previous.as_ref().map(|p| p.generation).unwrap_or(0),
            payloads_from: opts
                .payloads_from
                .clone()
                .or_else(|| previous.and_then(|p| p.payloads_from)),
        };
        let image_views = privilege == Privilege::Root
            && record.payloads_from.is_none()
            && super::image::enabled();
        Ok(Monitor {
            repo,
            privilege,
            lowers: Vec::new(),
            scratch,
            view: None,
            image_views,
            keep_views: image_views && keeper::keep_secs() > 0,
            host_ns: None,
            mounted: Vec::new(),
            bound: false,
            bindable: false,
            registered: false,
            own_group: false,
            payloads_from: record.payloads_from.clone(),
            record,
        })
    }

    /// Everything about the stack that can fail on bad input, before any mount.
    fn prepare_lowers(&self, stack: &[Digest]) -> Result<(Vec<Digest>, Lowers)> {
        if let (Backend::Fuse, Some(address)) = (self.record.backend, &self.payloads_from) {
            if !ReadThrough::all_local(self.repo, stack) {
                return self.prepare_read_through(stack, address);
            }
        }
        let manifests = keep_last_occurrence(self.repo.manifests_of(stack)?);
        let prepared = match self.record.backend {
            Backend::Render => Lowers::Rendered(self.render_lowers(&manifests)?),
            Backend::Fuse => self.fuse_lowers(&manifests, true)?,
        };
        Ok((manifests, prepared))
    }

    /// What serves a FUSE-backend stack whose objects are local: a kept view (if
    /// `ask_keeper`), a valid cached image (which needs no inode table), or the table.
    fn fuse_lowers(&self, manifests: &[Digest], ask_keeper: bool) -> Result<Lowers> {
        if !Path::new("/dev/fuse").exists() {
            return Err(Error::NoFuseDevice);
        }
        if ask_keeper && self.keep_views {
            if let Some(view) =
                keeper::view_id(self.repo, manifests).and_then(|id| keeper::fetch(&id))
            {
                return Ok(Lowers::Kept(view));
            }
        }
        let cached = self
            .image_views
            .then(|| super::image::cached_image(self.repo, manifests))
            .flatten();
        Ok(match cached {
            Some(image) => Lowers::Image(image),
            None => Lowers::Merged(self.local_table(manifests)?),
        })
    }

    /// The inode table of a stack whose objects are local.
    fn local_table(&self, manifests: &[Digest]) -> Result<InodeTable> {
        fuse_table(self.repo, manifests, self.payloads_from.is_none(), |m| {
            self.repo.merge_manifests(m)
        })
    }

    /// A FUSE stack whose objects are (partly) only in the lazy remote: the missing
    /// objects are read from it into memory and verified, never stored locally (a
    /// stored object implies its stored closure); the inode table, derived data keyed
    /// by the manifests, is cached locally as for any stack.
    fn prepare_read_through(
        &self,
        stack: &[Digest],
        address: &str,
    ) -> Result<(Vec<Digest>, Lowers)> {
        if !Path::new("/dev/fuse").exists() {
            return Err(Error::NoFuseDevice);
        }
        let remote = crate::storage::open_remote(&crate::config::Address::parse(address)?, false)?;
        let source = ReadThrough::new(self.repo, &*remote);
        let manifests = keep_last_occurrence(source.manifests_of(stack)?);
        let table = fuse_table(self.repo, &manifests, false, |m| source.merge_manifests(m))?;
        Ok((manifests, Lowers::Merged(table)))
    }

    /// Makes prepared lower dirs the runtime's (mounting the FUSE server if any).
    fn install_lowers(&mut self, manifests: &[Digest], prepared: Lowers) -> Result<()> {
        match prepared {
            Lowers::Rendered(paths) => {
                self.bindable = manifests.len() == 1
                    && paths.len() == 1
                    && !crate::render::whiteout_marker(&paths[0]).exists();
                self.lowers = paths
            }
            Lowers::Merged(table) => {
                let image = if self.image_views {
                    super::image::new_image(self.repo, &table, manifests)
                        .map_err(unavailable)
                        .ok()
                } else {
                    None
                };
                self.install_fuse_backend(manifests, image, Some(table))?
            }
            Lowers::Image(image) => self.install_fuse_backend(manifests, Some(image), None)?,
            Lowers::Kept(kept) => {
                let (mnt, _, probe) = self.view_dirs()?;
                match super::image::ImageView::mount_kept(&kept, &mnt, &probe) {
                    Ok(view) => self.use_view(View::Image(view), mnt),
                    Err(why) => {
                        unavailable(why);
                        // Let the view this runtime makes next replace it.
                        if let Some(id) = keeper::view_id(self.repo, manifests) {
                            keeper::drop_view(&id);
                        }
                        let fallback = self.fuse_lowers(manifests, false)?;
                        return self.install_lowers(manifests, fallback);
                    }
                }
            }
        }
        if self.lowers.is_empty() {
            let empty = self.scratch.join("empty");
            fs::create_dir_all(&empty).ctx("creating", &empty)?;
            self.lowers.push(empty);
            self.bindable = true;
        }
        Ok(())
    }

    /// Serves a FUSE-backend stack at a new lower dir: from `image` when the kernel
    /// mounts it, otherwise from the FUSE server, with `table` if already built.
    fn install_fuse_backend(
        &mut self,
        manifests: &[Digest],
        image: Option<super::image::Image>,
        table: Option<InodeTable>,
    ) -> Result<()> {
        let (mnt, meta, probe) = self.view_dirs()?;
        let image_view = image.and_then(|image| {
            super::image::ImageView::mount(self.repo, &image, &meta, &mnt, &probe)
                .map_err(unavailable)
                .ok()
        });
        let view = match image_view {
            Some((view, kept)) => {
                if let Some(kept) = kept.filter(|_| self.keep_views) {
                    self.keep(manifests, kept);
                }
                View::Image(view)
            }
            None => {
                let table = match table {
                    Some(table) => table,
                    None => self.local_table(manifests)?,
                };
                View::Fuse(super::fuse::FuseMount::mount_table(
                    self.repo,
                    table,
                    &mnt,
                    &super::fuse::FuseOptions {
                        passthrough: true,
                        fallback: self.payloads_from.clone(),
                    },
                )?)
            }
        };
        self.use_view(view, mnt);
        Ok(())
    }

    /// Makes `view`, mounted at `mnt`, the stack's single lower dir.
    fn use_view(&mut self, view: View, mnt: PathBuf) {
        self.view = Some(view);
        self.bindable = true;
        self.lowers = vec![mnt];
    }

    /// This generation's view directories: the view, the image's mount while the view
    /// is built, and the probe's.
    fn view_dirs(&self) -> Result<(PathBuf, PathBuf, PathBuf)> {
        let generation = self.record.generation;
        let mnt = self.scratch.join(format!("lower-{generation}"));
        fs::create_dir_all(&mnt).ctx("creating", &mnt)?;
        Ok((
            mnt,
            self.scratch.join(format!("image-{generation}")),
            self.scratch.join(format!("probe-{generation}")),
        ))
    }

    /// Hands the detached image view of `manifests` to the keeper, starting one if
    /// none runs and this runtime still may. Failing only costs later runtimes a cold
    /// view, so it is logged, never an error.
    fn keep(&self, manifests: &[Digest], view: OwnedFd) {
        let Some(id) = keeper::view_id(self.repo, manifests) else {
            return;
        };
        let result = match keeper::put(&id, self.repo.root(), &view) {
            Ok(true) => Ok(()),
            Ok(false) => match &self.host_ns {
                Some(ns) => keeper::spawn(&view, &id, self.repo.root(), ns)
                    .map_err(|e| format!("cannot start the view keeper: {e}")),
                None => Ok(()),
            },
            Err(e) => Err(e.to_string()),
        };
        if let Err(e) = result {
            tracing::warn!("the view is not kept for later runtimes: {e}");
        }
    }

    fn start(&mut self, opts: &RunOptions) -> Result<std::process::Child> {
        let link_dirs = link_dirs(&opts.links)?;
        let stack = self.record.stack.clone();
        let (manifests, prepared) = self.prepare_lowers(&stack)?;
        if !Path::new(SPFS_DIR).is_dir() {
            if self.privilege == Privilege::Root {
                fs::create_dir_all(SPFS_DIR).ctx("creating", Path::new(SPFS_DIR))?;
            } else {
                return Err(Error::MissingMountPoint(PathBuf::from(SPFS_DIR)));
            }
        }
        self.mount_scratch(opts.tmpfs_size.as_deref())?;
        self.install_lowers(&manifests, prepared)?;
        self.mount_spfs()?;
        self.mount_links(&link_dirs)?;
        record::save(self.repo, &self.record)?;
        self.registered = true;
        let mut cmd = startup::build(&opts.program, &self.scratch)?;
        cmd.env("SPFS_RUNTIME", &self.record.name)
            .env("SPFS_ROOT", self.repo.root());
        if let Some(dir) = &opts.cwd {
            cmd.current_dir(dir);
        }
        let parent = std::process::id() as i32;
        // A keeper started from now on would be adopted by the monitor.
        self.host_ns = None;
        // Orphans of the command become the monitor's children, so that once the
        // command has exited the monitor knows whether any process of the runtime is
        // left (see `teardown`).
        // SAFETY: prctl with integer arguments only.
        if unsafe { libc::prctl(libc::PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) } != 0 {
            return Err(Error::Supervision {
                action: "become the subreaper of the runtime's processes".into(),
                source: std::io::Error::last_os_error(),
            });
        }
        // Without a terminal delivering signals to the whole foreground group, the
        // command leads its own process group so forwarded signals reach all of it (a
        // script and the program it waits for).
        self.own_group = !in_foreground();
        let own_group = self.own_group;
        // SAFETY: only async-signal-safe calls (prctl, getppid, setpgid, sigaction,
        // sigprocmask, _exit) run in the child.
        unsafe {
            cmd.pre_exec(move || {
                if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL) != 0 {
                    return Err(std::io::Error::last_os_error());
                }
                if libc::getppid() != parent {
                    libc::_exit(137);
                }
                if own_group {
                    libc::setpgid(0, 0);
                }
                reset_signals();
                Ok(())
            });
        }
        let program = cmd.get_program().to_string_lossy().into_owned();
        cmd.spawn()
            .map_err(|e| Error::StartCommand { program, source: e })
    }

    fn render_lowers(&self, manifests: &[Digest]) -> Result<Vec<PathBuf>> {
        let mut manifests = manifests.to_vec();
        // overlayfs takes at most MAX_OVERLAY_LOWERS lower dirs (one is kept spare):
        // flatten the bottom of taller stacks into one merged manifest.
        if manifests.len() > MAX_OVERLAY_LOWERS - 1 {
            let cut = manifests.len() - (MAX_OVERLAY_LOWERS - 2);
            let bottom = self.repo.merge_manifests(&manifests[..cut])?;
            let digest = self.repo.write_object(&Object::Manifest(bottom))?;
            tracing::info!(layers = cut, merged = %digest, "flattened the bottom of the stack");
            manifests = std::iter::once(digest)
                .chain(manifests[cut..].iter().copied())
                .collect();
        }
        // Warm path: every render already cached; no thread pool needed.
        let mut cached = Vec::with_capacity(manifests.len());
        for m in &manifests {
            match crate::render::cached_render(self.repo, m)? {
                Some(path) => cached.push(path),
                None => break,
            }
        }
        if cached.len() == manifests.len() {
            return Ok(cached.into_iter().rev().collect());
        }
        let mut paths = manifests
            .par_iter()
            .map(|m| {
                render_cached(self.repo, m).map_err(|e| match e {
                    Error::Whiteout { .. } if self.privilege == Privilege::UserNamespace => {
                        Error::WhiteoutsRefused(*m)
                    }
                    e => e,
                })
            })
            .collect::<Result<Vec<_>>>()?;
        paths.reverse(); // overlayfs wants the topmost layer first
        Ok(paths)
    }

    fn mount_scratch(&mut self, size: Option<&str>) -> Result<()> {
        let scratch = self.scratch.clone();
        if !scratch.is_dir() {
            fs::create_dir_all(&scratch).ctx("creating", &scratch)?;
            if self.privilege == Privilege::Root {
                let _ = fs::set_permissions(&scratch, fs::Permissions::from_mode(0o1777));
            }
        }
        mounts::mount_tmpfs(&scratch, size)?;
        self.mounted.push(scratch);
        for d in [&self.record.upper, &self.record.work] {
            fs::create_dir_all(d).ctx("creating", d)?;
        }
        Ok(())
    }

    /// Mounts a small private tmpfs over each directory of `dirs` and creates its links.
    fn mount_links(&mut self, dirs: &[LinkDir]) -> Result<()> {
        for (dir, links) in dirs {
            if !dir.is_dir() {
                if self.privilege != Privilege::Root {
                    return Err(Error::MissingMountPoint(dir.clone()));
                }
                fs::create_dir_all(dir).ctx("creating the mount point", dir)?;
            }
            mounts::mount_tmpfs(dir, Some("1m"))?;
            self.mounted.push(dir.clone());
            for (name, target) in links {
                let link = dir.join(name);
                std::os::unix::fs::symlink(target, &link).ctx("creating the link", &link)?;
            }
        }
        Ok(())
    }

    fn overlay_spec(&self) -> OverlaySpec {
        OverlaySpec {
            lowers: self.lowers.clone(),
            upper: self.record.upper.clone(),
            work: self.record.work.clone(),
            read_only: !self.record.editable,
            user_xattr: self.privilege == Privilege::UserNamespace,
        }
    }

    fn mount_spfs(&mut self) -> Result<()> {
        let target = Path::new(SPFS_DIR);
        // A read-only view of one lower dir needs no overlay: a read-only bind mount
        // gives native lookup speed. `spfs edit` swaps in an overlay.
        if !self.record.editable && self.bindable {
            mounts::bind_read_only(&self.lowers[0], target)?;
            self.bound = true;
        } else {
            mounts::mount_overlay(&self.overlay_spec(), target)?;
            self.bound = false;
        }
        if !self.mounted.iter().any(|p| p == target) {
            self.mounted.push(PathBuf::from(SPFS_DIR));
        }
        Ok(())
    }

    fn supervise(&mut self, child: std::process::Child) -> Result<i32> {
        let pid = Pid::from_raw(child.id() as i32);
        let set = monitor_signals();
        loop {
            let sig = set.wait().map_err(|e| Error::Supervision {
                action: "wait for signals".into(),
                source: e.into(),
            })?;
            match sig {
                // The command, or an orphan of it (the monitor is their subreaper):
                // reap every child that exited, so none stays a zombie.
                Signal::SIGCHLD => loop {
                    match waitpid(Pid::from_raw(-1), Some(WaitPidFlag::WNOHANG)) {
                        Ok(WaitStatus::Exited(p, code)) if p == pid => return Ok(code),
                        Ok(WaitStatus::Signaled(p, s, _)) if p == pid => return Ok(128 + s as i32),
                        Ok(WaitStatus::StillAlive) => break,
                        Ok(_) | Err(nix::errno::Errno::EINTR) => {}
                        Err(nix::errno::Errno::ECHILD) => return Ok(0),
                        Err(e) => {
                            return Err(Error::Supervision {
                                action: "wait for the command".into(),
                                source: e.into(),
                            })
                        }
                    }
                },
                // The terminal already delivered Ctrl-C to the command when both share
                // the foreground process group; forward it only otherwise.
                Signal::SIGINT if in_foreground() => {}
                Signal::SIGUSR1 | Signal::SIGUSR2 => {
                    if let Err(e) = self.apply_request(sig == Signal::SIGUSR2) {
                        tracing::error!("cannot apply the runtime change: {e}");
                        // Answer with the state kept, so the requester stops waiting
                        // and sees that nothing changed.
                        self.record.generation += 1;
                        if let Err(e) = record::save(self.repo, &self.record) {
                            tracing::error!("cannot restore the runtime record: {e}");
                        }
                    }
                }
                other => {
                    let target = if self.own_group {
                        Pid::from_raw(-pid.as_raw())
                    } else {
                        pid
                    };
                    let _ = kill(target, other);
                }
            }
        }
    }

    /// Re-reads the record: SIGUSR1 switches edit mode in place, SIGUSR2 mounts a
    /// fresh overlay (after `spfs reset` removed edits from the upper dir).
    fn apply_request(&mut self, fresh: bool) -> Result<()> {
        let rec = record::load(self.repo, &self.record.name)?;
        self.record.editable = rec.editable;
        let target = Path::new(SPFS_DIR);
        if rec.stack != self.record.stack {
            // A new stack (`spk install`): prepare it fully, then swap the view.
            let (manifests, prepared) = self.prepare_lowers(&rec.stack)?;
            let old_view = self.view.take();
            self.record.generation = rec.generation + 1;
            if let Err(e) = self.install_lowers(&manifests, prepared) {
                self.view = old_view;
                return Err(e);
            }
            self.record.stack = rec.stack.clone();
            mounts::unmount(target)?;
            self.mount_spfs()?;
            if let Some(v) = old_view {
                if let Err(e) = v.unmount() {
                    tracing::warn!("the previous stack's view did not stop cleanly: {e}");
                }
            }
        } else if fresh || self.bound {
            mounts::unmount(target)?;
            self.mount_spfs()?;
        } else {
            use nix::mount::MsFlags;
            let mut flags = MsFlags::MS_REMOUNT | MsFlags::MS_BIND;
            if !self.record.editable {
                flags |= MsFlags::MS_RDONLY;
            }
            nix::mount::mount(None::<&str>, target, None::<&str>, flags, None::<&str>).map_err(
                |e| Error::Mount {
                    action: if self.record.editable {
                        "remount writable".into()
                    } else {
                        "remount read-only".into()
                    },
                    target: target.to_path_buf(),
                    source: e.into(),
                    kernel: None,
                },
            )?;
        }
        self.record.generation = rec.generation + 1;
        record::save(self.repo, &self.record)
    }

    /// True if no process of the runtime is left besides the monitor: every child
    /// (the command, and its orphans, which the monitor adopts as their subreaper) has
    /// exited and is reaped here. The runtime's mount namespace then dies with the
    /// monitor, unless a process outside the runtime entered it with `setns` (which
    /// needs `CAP_SYS_ADMIN`).
    fn alone_in_namespace(&self) -> bool {
        loop {
            match waitpid(Pid::from_raw(-1), Some(WaitPidFlag::WNOHANG)) {
                Err(nix::errno::Errno::ECHILD) => return true,
                Ok(WaitStatus::StillAlive) => return false,
                Err(nix::errno::Errno::EINTR) | Ok(_) => {}
                Err(_) => return false,
            }
        }
    }

    fn teardown(&mut self) -> Result<()> {
        let mut first_err = None;
        // When the monitor is the namespace's last process, the namespace's own
        // teardown at its exit unmounts everything at once (one RCU grace period, as
        // for any namespace; each detach here would wait for one more), and the FUSE
        // server's threads end with the process. The mounts were never visible
        // outside the namespace (`/` is private), so nothing is left behind.
        if self.alone_in_namespace() {
            if let Some(v) = self.view.take() {
                v.abandon();
            }
            self.mounted.clear();
        }
        if let Some(m) = self.mounted.iter().position(|p| p == Path::new(SPFS_DIR)) {
            if let Err(e) = mounts::unmount(&self.mounted.remove(m)) {
                first_err.get_or_insert(e);
            }
        }
        if let Some(v) = self.view.take() {
            if let Err(e) = v.unmount() {
                first_err.get_or_insert(e);
            }
        }
        for m in self.mounted.drain(..).rev() {
            if let Err(e) = mounts::unmount(&m) {
                first_err.get_or_insert(e);
            }
        }
        if self.registered {
            let r = if self.record.keep {
                self.record.pid = 0;
                record::save(self.repo, &self.record)
            } else {
                record::remove(self.repo, &self.record.name)
            };
            if let Err(e) = r {
                first_err.get_or_insert(e);
            }
        }
        match first_err {
            Some(e) => Err(e),
            None => Ok(()),
        }
    }
}

enum Lowers {
    Rendered(Vec<PathBuf>),
    Merged(InodeTable),
    /// A checked image of the stack (`renders/fuse/<key>.erofs`).
    Image(super::image::Image),
    /// The stack's image view, kept from an earlier runtime (detached).
    Kept(OwnedFd),
}

/// Logs why an image view is not used; the FUSE server serves the stack instead.
fn unavailable(why: super::image::Unavailable) {
    match why {
        super::image::Unavailable::Kernel(what) => {
            tracing::debug!("no image view ({what} unavailable): serving through FUSE")
        }
        super::image::Unavailable::Payload(digest) => tracing::warn!(
            %digest,
            "a payload is missing or damaged: serving the stack through FUSE, where \
             opening that file fails (`spfs check --repair` restores it from a remote)"
        ),
        // The view only speeds things up: anything that keeps it from being set up (a
        // repository on a filesystem overlayfs refuses as a layer, a full disk) leaves
        // the runtime to the FUSE server.
        super::image::Unavailable::Failed(e) => {
            tracing::warn!("no image view ({e}): serving the stack through FUSE")
        }
    }
}

/// What serves a FUSE-backend stack.
enum View {
    Fuse(super::fuse::FuseMount),
    Image(super::image::ImageView),
}

impl View {
    fn unmount(self) -> Result<()> {
        match self {
            View::Fuse(f) => f.unmount(),
            View::Image(i) => i.unmount(),
        }
    }

    /// Leaves everything to the dying mount namespace (see `Monitor::teardown`).
    fn abandon(self) {
        match self {
            View::Fuse(f) => f.abandon(),
            View::Image(i) => i.abandon(),
        }
    }
}

/// The FUSE backend's inode table of a stack: from the derived cache under
/// `renders/fuse/` when it holds one, otherwise merged from the manifests (with every
/// payload checked unless `verify` is off) and cached for the next runtime.
fn fuse_table(
    repo: &LocalRepository,
    manifests: &[Digest],
    verify: bool,
    merge: impl FnOnce(&[Digest]) -> Result<Manifest>,
) -> Result<InodeTable> {
    if let Some(table) = InodeTable::load_cached(repo, manifests) {
        return Ok(table);
    }
    let m = merge(manifests)?;
    if verify {
        verify_payloads(repo, &m)?;
    }
    let table = InodeTable::from_manifest(m);
    if let Err(e) = table.store_cached(repo, manifests) {
        tracing::warn!("cannot cache the stack's inode table (entering stays slower): {e}");
    }
    Ok(table)
}

/// The stack without repeated manifests, each kept at its topmost position: the merged
/// view is the same, and overlayfs refuses a lower dir given twice.
fn keep_last_occurrence(manifests: Vec<Digest>) -> Vec<Digest> {
    let mut seen = std::collections::HashSet::with_capacity(manifests.len());
    let mut out: Vec<Digest> = manifests
        .into_iter()
        .rev()
        .filter(|m| seen.insert(*m))
        .collect();
    out.reverse();
    out
}

/// A directory to cover with a tmpfs, and the links (name, target) to create in it.
pub type LinkDir = (PathBuf, Vec<(std::ffi::OsString, PathBuf)>);

/// Checks the requested links and groups them by parent directory (in order of first
/// appearance): each link must be an absolute, normalized path outside /spfs and the
/// scratch space, below a directory other than `/`, and named once.
pub fn link_dirs(links: &[(PathBuf, PathBuf)]) -> Result<Vec<LinkDir>> {
    let mut out: Vec<LinkDir> = Vec::new();
    for (link, target) in links {
        let bad = |reason: &'static str| Error::InvalidLink {
            link: link.clone(),
            target: target.clone(),
            reason,
        };
        let bytes = link.as_os_str().as_encoded_bytes();
        let normal = link.is_absolute()
            && bytes.len() > 1
            && bytes[1..]
                .split(|b| *b == b'/')
                .all(|part| !matches!(part, b"" | b"." | b".."));
        if !normal {
            return Err(bad("the link must be an absolute path without '.' or '..'"));
        }
        if link.starts_with(SPFS_DIR) || link.starts_with(SCRATCH_DIR) {
            return Err(bad(
                "the link must lie outside /spfs and the runtime's scratch space",
            ));
        }
        if target.as_os_str().is_empty() {
            return Err(bad("the target is empty"));
        }
        let (Some(parent), Some(name)) = (link.parent(), link.file_name()) else {
            return Err(bad("the link has no parent directory"));
        };
        if parent == Path::new("/") {
            return Err(bad("links directly under / are not allowed"));
        }
        let i = match out.iter().position(|(d, _)| d == parent) {
            Some(i) => i,
            None => {
                out.push((parent.to_path_buf(), Vec::new()));
                out.len() - 1
            }
        };
        if out[i].1.iter().any(|(n, _)| n == name) {
            return Err(bad("the link is named twice"));
        }
        out[i].1.push((name.to_os_string(), target.clone()));
    }
    // A link directory may not hide another one's links.
    for (a, _) in &out {
        if let Some((b, _)) = out.iter().find(|(b, _)| b != a && b.starts_with(a)) {
            return Err(Error::NestedLinkDirs {
                outer: a.clone(),
                inner: b.clone(),
            });
        }
    }
    Ok(out)
}

/// Fails before anything is mounted if a payload of the tree is missing.
pub fn verify_payloads(repo: &LocalRepository, m: &Manifest) -> Result<()> {
    let files: Vec<_> = m.files().collect();
    let missing = files.par_iter().find_any(|f| !repo.has_payload(&f.digest));
    match missing {
        Some(f) => Err(Error::MissingRuntimePayload {
            digest: f.digest,
            path: String::from_utf8_lossy(&f.path).into_owned(),
        }),
        None => Ok(()),
    }
}

/// Gives the command the signal state of a fresh process: nothing blocked, every
/// disposition the monitor changed back to its default. Async-signal-safe.
pub(crate) unsafe fn reset_signals() {
    // SAFETY: sigemptyset/sigprocmask/signal are async-signal-safe and the set lives on
    // this stack frame.
    unsafe {
        let mut set: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut set);
        libc::sigprocmask(libc::SIG_SETMASK, &set, std::ptr::null_mut());
        for sig in [
            libc::SIGINT,
            libc::SIGTERM,
            libc::SIGHUP,
            libc::SIGQUIT,
            libc::SIGUSR1,
            libc::SIGUSR2,
            libc::SIGCHLD,
            libc::SIGPIPE,
        ] {
            libc::signal(sig, libc::SIG_DFL);
        }
    }
}

fn in_foreground() -> bool {
    // SAFETY: plain queries on fd 0 and our own process group.
    unsafe {
        let fg = libc::tcgetpgrp(0);
        fg > 0 && fg == libc::getpgrp()
    }
}

fn now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pair(a: &str, b: &str) -> (PathBuf, PathBuf) {
        (PathBuf::from(a), PathBuf::from(b))
    }

    #[test]
    fn links_are_grouped_by_parent_in_order() {
        let dirs = link_dirs(&[
            pair("/var/vcap/packages/b", "/spfs/var/vcap/packages/b"),
            pair("/opt/x/y", "/spfs/y"),
            pair("/var/vcap/packages/a", "/spfs/var/vcap/packages/a"),
        ])
        .unwrap();
        assert_eq!(dirs.len(), 2);
        assert_eq!(dirs[0].0, Path::new("/var/vcap/packages"));
        let names: Vec<_> = dirs[0].1.iter().map(|(n, _)| n.to_str().unwrap()).collect();
        assert_eq!(names, ["b", "a"]);
        assert_eq!(dirs[1].0, Path::new("/opt/x"));
        assert_eq!(dirs[1].1[0].1, Path::new("/spfs/y"));
        assert!(link_dirs(&[]).unwrap().is_empty());
    }

    #[test]
    fn bad_links_are_refused_before_mounting() {
        for (link, why) in [
            ("relative/x", "absolute"),
            ("/var/../etc/x", "absolute"),
            ("/var/./x", "absolute"),
            ("/spfs/x/y", "outside /spfs"),
            ("/tmp/spfs-runtime/a/b", "outside /spfs"),
            ("/x", "directly under /"),
            ("/", "absolute"),
        ] {
            let err = link_dirs(&[pair(link, "/spfs/t")]).unwrap_err().to_string();
            assert!(err.contains(why), "{link}: {err}");
        }
        let err = link_dirs(&[pair("/a/b/c", "/spfs/1"), pair("/a/b/c", "/spfs/2")])
            .unwrap_err()
            .to_string();
        assert!(err.contains("named twice"), "{err}");
        let err = link_dirs(&[pair("/a/b/c", "/spfs/1"), pair("/a/b/c/d/e", "/spfs/2")])
            .unwrap_err()
            .to_string();
        assert!(err.contains("nest"), "{err}");
        let err = link_dirs(&[pair("/a/b", "")]).unwrap_err().to_string();
        assert!(err.contains("target is empty"), "{err}");
    }

    #[test]
    fn run_options_without_links_still_deserialize() {
        let mut v = serde_json::to_value(RunOptions::new(Vec::new(), Program::Shell)).unwrap();
        v.as_object_mut().unwrap().remove("links");
        let back: RunOptions = serde_json::from_value(v).unwrap();
        assert!(back.links.is_empty());
    }
}
