//! The on-disk repository: layout, objects and durability.

use std::fs;
use std::io::Write;
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};

use super::files::{self, Expect};
use crate::digest::{is_hex, Digest};
use crate::error::{Error, IoContext, Result};
use crate::object::{Layer, Manifest, Object, Platform};

/// On-disk format version written to `VERSION`.
pub const FORMAT_VERSION: u32 = 1;

const SUBDIRS: &[&str] = &["objects", "payloads", "tags", "renders", "runtimes", "tmp"];

/// The configured repository location (docs/config.md): `$SPFS_ROOT`, else
/// `storage.root` of the configuration files, else [`builtin_root`]. A configuration
/// that cannot be read is reported by front ends through [`crate::config::current`];
/// here it falls back to `$SPFS_ROOT` or the built-in location.
pub fn default_root() -> PathBuf {
    if let Ok(cfg) = crate::config::current() {
        return cfg.root.value.clone();
    }
    if let Some(root) = std::env::var_os("SPFS_ROOT").filter(|v| !v.is_empty()) {
        return PathBuf::from(root);
    }
    builtin_root()
}

/// The built-in repository location: `$XDG_DATA_HOME/spfs`, else
/// `~/.local/share/spfs`.
pub fn builtin_root() -> PathBuf {
    if let Some(data) = std::env::var_os("XDG_DATA_HOME").filter(|v| !v.is_empty()) {
        return PathBuf::from(data).join("spfs");
    }
    let home = std::env::var_os("HOME").unwrap_or_else(|| "/tmp".into());
    PathBuf::from(home).join(".local/share/spfs")
}

/// Asks the filesystem to spread the subdirectories of `dir` over its allocation
/// groups: the "top of directory hierarchy" flag (`chattr +T`), honoured by ext2/3/4,
/// which ignore it only for directories made before it was set. The 256 shard
/// directories of `objects/` and `payloads/` then land in different block groups, and
/// the inodes of their files with them, instead of all in the group of the repository
/// root. Creating thousands of files in one group is slow on ext4 when that group
/// holds recently deleted inodes (after `spfs clean` or the removal of another
/// repository, each creation scans past them): a pull of 10,000 payloads spent half its
/// own CPU time there (docs/benchmarks.md). Filesystems without the flag refuse it;
/// that is ignored, since it is only a placement hint.
fn spread_subdirs(dir: &Path) {
    use std::os::fd::AsRawFd;
    let Ok(f) = fs::File::open(dir) else {
        return;
    };
    let Ok(mut flags) = inode_flags(&f) else {
        return;
    };
    if flags & TOPDIR_FL != 0 {
        return;
    }
    flags |= TOPDIR_FL;
    // SAFETY: FS_IOC_SETFLAGS reads one int from the valid pointer given.
    if unsafe { libc::ioctl(f.as_raw_fd(), libc::FS_IOC_SETFLAGS, &flags) } != 0 {
        tracing::debug!(
            dir = %dir.display(),
            error = %std::io::Error::last_os_error(),
            "could not ask the filesystem to spread subdirectories"
        );
    }
}

/// `FS_TOPDIR_FL` of `<linux/fs.h>` (`chattr +T`).
const TOPDIR_FL: libc::c_int = 0x0002_0000;

/// The inode flags of an open file, as `lsattr` reads them.
fn inode_flags(f: &fs::File) -> std::io::Result<libc::c_int> {
    use std::os::fd::AsRawFd;
    let mut flags: libc::c_int = 0;
    // SAFETY: FS_IOC_GETFLAGS writes one int to the valid pointer given, on an open
    // descriptor.
    if unsafe { libc::ioctl(f.as_raw_fd(), libc::FS_IOC_GETFLAGS, &mut flags) } != 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(flags)
}

/// A repository stored in a local (or network-mounted) directory.
#[derive(Debug, Clone)]
pub struct LocalRepository {
    root: PathBuf,
}

impl LocalRepository {
    /// Opens an existing repository.
    pub fn open(root: &Path) -> Result<Self> {
        let version_file = root.join("VERSION");
        let text = match files::read_text_bounded(&version_file, files::MAX_VERSION_BYTES) {
            Ok(Some(t)) => t,
            Ok(None) => return Err(Error::NoRepository(root.to_path_buf())),
            // A root that is a file, not a directory.
            Err(Error::Io { source, .. }) if source.raw_os_error() == Some(libc::ENOTDIR) => {
                return Err(Error::NoRepository(root.to_path_buf()))
            }
            Err(e) => return Err(e),
        };
        if text.trim() != FORMAT_VERSION.to_string() {
            return Err(Error::UnsupportedRepository {
                path: root.to_path_buf(),
                found: text.trim().to_string(),
                supported: FORMAT_VERSION,
            });
        }
        let repo = LocalRepository {
            root: root.to_path_buf(),
        };
        for sub in SUBDIRS {
            let p = repo.root.join(sub);
            if !p.is_dir() {
                fs::create_dir_all(&p).ctx("creating", &p)?;
            }
        }
        Ok(repo)
    }

    /// Creates a repository (or opens the one already there). A populated directory
    /// without a `VERSION` (one whose `VERSION` was lost) is given one: this is the
    /// explicit way to restore it (`spfs init`).
    pub fn create(root: &Path) -> Result<Self> {
        fs::create_dir_all(root).ctx("creating repository directory", root)?;
        for sub in SUBDIRS {
            let p = root.join(sub);
            fs::create_dir_all(&p).ctx("creating", &p)?;
        }
        for area in ["objects", "payloads"] {
            spread_subdirs(&root.join(area));
        }
        let version_file = root.join("VERSION");
        if !version_file.exists() {
            let tmp = root.join("tmp");
            let mut f = tempfile::NamedTempFile::new_in(&tmp).ctx("creating a file in", &tmp)?;
            writeln!(f, "{FORMAT_VERSION}").ctx("writing", f.path())?;
            match f.persist_noclobber(&version_file) {
                Ok(_) => {}
                Err(e) if e.error.kind() == std::io::ErrorKind::AlreadyExists => {}
                Err(e) => return Err(Error::io("writing", &version_file, e.error)),
            }
        }
        Self::open(root)
    }

    /// Opens the repository, creating it on first use: only where nothing is yet, or
    /// in an empty directory. A populated directory without a `VERSION` is refused
    /// ([`Error::UnversionedRepository`]): it may be a repository whose `VERSION` was
    /// deleted, and writing a new one would silently adopt whatever it holds.
    pub fn open_or_create(root: &Path) -> Result<Self> {
        match Self::open(root) {
            Err(Error::NoRepository(_)) => {
                if is_populated(root)? {
                    return Err(Error::UnversionedRepository(root.to_path_buf()));
                }
                Self::create(root)
            }
            other => other,
        }
    }

    /// The repository's root directory.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// Directory for temporary files that are renamed into place.
    pub fn tmp_dir(&self) -> PathBuf {
        self.root.join("tmp")
    }

    /// Directory holding cached renders.
    pub fn renders_dir(&self) -> PathBuf {
        self.root.join("renders")
    }

    /// Directory holding runtime records.
    pub fn runtimes_dir(&self) -> PathBuf {
        self.root.join("runtimes")
    }

    pub(super) fn sharded(&self, area: &str, digest: &Digest) -> PathBuf {
        let hex = digest.to_hex();
        self.root.join(area).join(&hex[..2]).join(&hex[2..])
    }

    /// File holding an encoded object.
    pub fn object_path(&self, digest: &Digest) -> PathBuf {
        self.sharded("objects", digest)
    }

    /// True if the object is stored.
    pub fn has_object(&self, digest: &Digest) -> bool {
        self.object_path(digest).exists()
    }

    /// Stores an object and returns its digest. Storing an existing object only
    /// refreshes its modification time (it is young again for `spfs clean`).
    pub fn write_object(&self, object: &Object) -> Result<Digest> {
        let bytes = object.encode();
        let digest = Digest::of(&bytes);
        let path = self.object_path(&digest);
        let guard = self.write_guard()?;
        if !super::touch(&path)? {
            self.write_atomic(&path, &bytes, 0o444)?;
            tracing::debug!(%digest, kind = %object.kind(), "stored object");
        }
        guard.note_fresh(digest);
        Ok(digest)
    }

    /// Writes `bytes` to `path` through a renamed temporary file; an existing file wins.
    /// The content is staged beside `path` (see [`super::STAGE_PREFIX`]), so the rename
    /// stays within one directory and the new inode is allocated near its siblings.
    pub(super) fn write_atomic(&self, path: &Path, bytes: &[u8], mode: u32) -> Result<()> {
        let mut tmp = self.stage_beside(path)?;
        tmp.as_file_mut().write_all(bytes).ctx("writing", path)?;
        self.persist(tmp, path, mode)
    }

    /// A new empty file named with [`super::STAGE_PREFIX`] in the directory of `path`
    /// (created if missing), to be renamed to `path` by [`Self::persist`] once its
    /// content is complete. Staging there keeps the rename within one directory (no
    /// filesystem-wide rename lock, no contention on one shared `tmp/` directory) and
    /// allocates the inode near its siblings; `spfs clean` removes a staged file a
    /// killed writer left behind.
    pub(super) fn stage_beside(&self, path: &Path) -> Result<tempfile::NamedTempFile> {
        let parent = path.parent().unwrap_or(&self.root);
        let staged = || stage_in(parent);
        match staged() {
            Ok(t) => Ok(t),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                fs::create_dir_all(parent).ctx("creating", parent)?;
                staged().ctx("creating a file in", parent)
            }
            Err(e) => Err(Error::io("creating a file in", parent, e)),
        }
    }

    /// Moves a finished temporary file to its final name with the given mode.
    pub(super) fn persist(
        &self,
        tmp: tempfile::NamedTempFile,
        path: &Path,
        mode: u32,
    ) -> Result<()> {
        use std::os::unix::fs::PermissionsExt;
        crate::signals::check()?;
        tmp.as_file()
            .set_permissions(fs::Permissions::from_mode(mode))
            .ctx("setting permissions on", tmp.path())?;
        // A file staged beside `path` finds its directory there; one staged elsewhere
        // may need it made first (not looked for in advance: it is the rare case).
        // An existing file wins: the contents are equal by construction.
        let stored = |r: std::result::Result<fs::File, tempfile::PersistError>| match r {
            Ok(_) => Ok(None),
            Err(e) if e.error.kind() == std::io::ErrorKind::AlreadyExists => Ok(None),
            Err(e) if e.error.kind() == std::io::ErrorKind::NotFound => Ok(Some(e)),
            Err(e) => Err(Error::io("storing", path, e.error)),
        };
        let Some(missing) = stored(tmp.persist_noclobber(path))? else {
            return Ok(());
        };
        let parent = path.parent().unwrap_or(&self.root);
        fs::create_dir_all(parent).ctx("creating", parent)?;
        match stored(missing.file.persist_noclobber(path))? {
            None => Ok(()),
            Some(e) => Err(Error::io("storing", path, e.error)),
        }
    }

    /// Reads an object's encoding, verified against its digest.
    pub fn read_object_bytes(&self, digest: &Digest) -> Result<Vec<u8>> {
        let path = self.object_path(digest);
        let Some(bytes) = files::read_bounded(&path, files::MAX_OBJECT_BYTES)? else {
            return Err(Error::MissingObject(*digest));
        };
        let actual = Digest::of(&bytes);
        if actual != *digest {
            return Err(Error::Corrupt {
                what: "object",
                digest: *digest,
                path,
                reason: format!("content hashes to {}", actual.short()),
            });
        }
        Ok(bytes)
    }

    /// Reads and verifies an object.
    pub fn read_object(&self, digest: &Digest) -> Result<Object> {
        let bytes = self.read_object_bytes(digest)?;
        Object::decode(&bytes).map_err(|e| Error::Corrupt {
            what: "object",
            digest: *digest,
            path: self.object_path(digest),
            reason: e.0,
        })
    }

    /// Reads a manifest; a layer's manifest is followed.
    pub fn read_manifest(&self, digest: &Digest) -> Result<Manifest> {
        super::ObjectStore::read_manifest(self, digest)
    }

    /// Reads a layer object.
    pub fn read_layer(&self, digest: &Digest) -> Result<Layer> {
        match self.read_object(digest)? {
            Object::Layer(l) => Ok(l),
            o => Err(Error::WrongKind {
                reference: digest.to_string(),
                actual: o.kind().name(),
                expected: "a layer",
            }),
        }
    }

    /// Reads a platform object.
    pub fn read_platform(&self, digest: &Digest) -> Result<Platform> {
        match self.read_object(digest)? {
            Object::Platform(p) => Ok(p),
            o => Err(Error::WrongKind {
                reference: digest.to_string(),
                actual: o.kind().name(),
                expected: "a platform",
            }),
        }
    }

    /// Every stored object digest.
    pub fn list_objects(&self) -> Result<Vec<Digest>> {
        self.list_area("objects")
    }

    /// Every stored payload digest.
    pub fn list_payloads(&self) -> Result<Vec<Digest>> {
        self.list_area("payloads")
    }

    fn list_area(&self, area: &str) -> Result<Vec<Digest>> {
        let dir = self.root.join(area);
        let mut out = Vec::new();
        for shard in fs::read_dir(&dir).ctx("listing", &dir)? {
            let shard = shard.ctx("listing", &dir)?;
            let sname = shard.file_name().to_string_lossy().to_string();
            if sname.len() != 2 || !is_hex(&sname) {
                continue;
            }
            let spath = shard.path();
            for f in fs::read_dir(&spath).ctx("listing", &spath)? {
                let f = f.ctx("listing", &spath)?;
                let name = f.file_name().to_string_lossy().to_string();
                if let Ok(d) = Digest::parse(&format!("{sname}{name}")) {
                    out.push(d);
                }
            }
        }
        Ok(out)
    }

    /// Digests of objects and payloads starting with `prefix` (hex, at least 2 chars).
    pub fn find_prefix(&self, prefix: &str) -> Result<Vec<Digest>> {
        let prefix = prefix.to_ascii_lowercase();
        if prefix.len() < 2 || !is_hex(&prefix) {
            return Ok(Vec::new());
        }
        let mut out = Vec::new();
        for area in ["objects", "payloads"] {
            let dir = self.root.join(area).join(&prefix[..2]);
            let entries = match fs::read_dir(&dir) {
                Ok(e) => e,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
                Err(e) => return Err(Error::io("listing", &dir, e)),
            };
            for f in entries {
                let f = f.ctx("listing", &dir)?;
                let name = f.file_name().to_string_lossy().to_string();
                if name.starts_with(&prefix[2..]) {
                    if let Ok(d) = Digest::parse(&format!("{}{name}", &prefix[..2])) {
                        if !out.contains(&d) {
                            out.push(d);
                        }
                    }
                }
            }
        }
        Ok(out)
    }

    /// Flushes everything written so far to stable storage (one `syncfs`).
    pub fn sync(&self) -> Result<()> {
        let (dir, _) = files::open(&self.root, Expect::Dir, files::Access::Read)?
            .ok_or_else(|| Error::NoRepository(self.root.clone()))?;
        // SAFETY: syncfs takes a valid open descriptor and touches no memory.
        let rc = unsafe { libc::syncfs(dir.as_raw_fd()) };
        if rc != 0 {
            return Err(Error::io(
                "flushing",
                &self.root,
                std::io::Error::last_os_error(),
            ));
        }
        Ok(())
    }
}

/// True if `root` is a directory holding anything but the empty subdirectories a
/// repository starts with (and leftovers in `tmp/`): something that is not a new
/// repository.
fn is_populated(root: &Path) -> Result<bool> {
    let entries = match fs::read_dir(root) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(false),
        Err(e) if e.raw_os_error() == Some(libc::ENOTDIR) => {
            return Err(Error::NotADirectory {
                path: root.to_path_buf(),
                purpose: crate::error::DirectoryPurpose::Repository,
            })
        }
        Err(e) => return Err(Error::io("reading", root, e)),
    };
    for entry in entries {
        let entry = entry.ctx("reading", root)?;
        let name = entry.file_name();
        let Some(name) = name.to_str().filter(|n| SUBDIRS.contains(n)) else {
            return Ok(true);
        };
        if name == "tmp" {
            continue;
        }
        let path = entry.path();
        let empty = match fs::read_dir(&path) {
            Ok(mut rd) => rd.next().is_none(),
            Err(_) => false,
        };
        if !empty {
            return Ok(true);
        }
    }
    Ok(false)
}

/// A new empty file in `dir` named with [`super::STAGE_PREFIX`].
pub(super) fn stage_in(dir: &Path) -> std::io::Result<tempfile::NamedTempFile> {
    tempfile::Builder::new()
        .prefix(super::STAGE_PREFIX)
        .tempfile_in(dir)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn flags(path: &Path) -> libc::c_int {
        inode_flags(&fs::File::open(path).unwrap()).unwrap()
    }

    #[test]
    fn a_new_repository_asks_ext4_to_spread_its_shard_directories() {
        let dir = tempfile::tempdir().unwrap();
        let mut st: libc::statfs = unsafe { std::mem::zeroed() };
        let cpath = std::ffi::CString::new(dir.path().to_str().unwrap()).unwrap();
        // SAFETY: a NUL-terminated path and a valid statfs buffer.
        assert_eq!(unsafe { libc::statfs(cpath.as_ptr(), &mut st) }, 0);
        // EXT4_SUPER_MAGIC (ext2 and ext3 share it).
        if st.f_type != 0xEF53 {
            println!("SKIPPED a_new_repository_asks_ext4_to_spread_its_shard_directories: the temporary directory is not on ext4");
            return;
        }
        let repo = LocalRepository::create(&dir.path().join("repo")).unwrap();
        // FS_TOPDIR_FL, `chattr +T`.
        for area in ["objects", "payloads"] {
            assert_ne!(flags(&repo.root().join(area)) & 0x0002_0000, 0, "{area}");
        }
        assert_eq!(flags(&repo.tmp_dir()) & 0x0002_0000, 0);
    }
}
