//! Opening files inside a repository, which may have been damaged or tampered with.
//!
//! Every repository file is opened here: without following a symbolic link in the
//! last component (`O_NOFOLLOW`), without blocking (`O_NONBLOCK`, so a FIFO or a device
//! cannot hang the open), then checked with `fstat`: only regular files (directories
//! where a directory is expected) are accepted. Reads are bounded by the size the
//! format allows, so a huge or endlessly growing file cannot exhaust memory.

use std::fs;
use std::io::Read;
use std::os::fd::AsRawFd;
use std::os::unix::fs::{FileTypeExt, OpenOptionsExt};
use std::path::Path;

use crate::error::{Error, Result};

/// Largest `VERSION` file accepted.
pub const MAX_VERSION_BYTES: u64 = 64;
/// Largest encoded object accepted (a manifest of several million entries).
pub const MAX_OBJECT_BYTES: u64 = 1 << 30;
/// Largest tag file accepted (several hundred thousand versions).
pub const MAX_TAG_BYTES: u64 = 64 << 20;
/// Largest runtime record accepted.
pub const MAX_RECORD_BYTES: u64 = 1 << 20;

/// What a repository path must be.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Expect {
    /// A regular file.
    File,
    /// A directory.
    Dir,
}

impl Expect {
    fn name(self) -> &'static str {
        match self {
            Expect::File => "regular file",
            Expect::Dir => "directory",
        }
    }

    fn accepts(self, ft: fs::FileType) -> bool {
        match self {
            Expect::File => ft.is_file(),
            Expect::Dir => ft.is_dir(),
        }
    }
}

/// A human name for a file type.
pub fn kind_name(ft: fs::FileType) -> &'static str {
    if ft.is_file() {
        "regular file"
    } else if ft.is_dir() {
        "directory"
    } else if ft.is_symlink() {
        "symbolic link"
    } else if ft.is_fifo() {
        "fifo"
    } else if ft.is_socket() {
        "socket"
    } else if ft.is_block_device() {
        "block device"
    } else if ft.is_char_device() {
        "character device"
    } else {
        "special file"
    }
}

fn unexpected(path: &Path, found: &'static str, expect: Expect) -> Error {
    Error::UnexpectedFileType {
        path: path.to_path_buf(),
        found,
        expected: expect.name(),
    }
}

/// How a repository file is opened: read-only, or read-write and created if missing
/// (lock files).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    /// Read only.
    Read,
    /// Read and write, creating the file (mode 0666 before umask) if missing.
    CreateRw,
}

/// Opens a repository path safely. `Ok(None)` if nothing is there.
pub fn open(
    path: &Path,
    expect: Expect,
    access: Access,
) -> Result<Option<(fs::File, fs::Metadata)>> {
    let mut opts = fs::OpenOptions::new();
    opts.read(true);
    if access == Access::CreateRw {
        opts.write(true).create(true).truncate(false).mode(0o666);
    }
    let mut flags = libc::O_NOFOLLOW | libc::O_NONBLOCK | libc::O_NOCTTY | libc::O_CLOEXEC;
    if expect == Expect::Dir {
        flags |= libc::O_DIRECTORY;
    }
    opts.custom_flags(flags);
    let file = match opts.open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => {
            // O_NOFOLLOW on a link gives ELOOP; O_DIRECTORY on a non-directory ENOTDIR;
            // a FIFO without a reader opened for writing ENXIO. Name what is there.
            if matches!(
                e.raw_os_error(),
                Some(libc::ELOOP) | Some(libc::ENOTDIR) | Some(libc::ENXIO) | Some(libc::EISDIR)
            ) {
                if let Ok(m) = fs::symlink_metadata(path) {
                    if !expect.accepts(m.file_type()) {
                        return Err(unexpected(path, kind_name(m.file_type()), expect));
                    }
                }
            }
            return Err(Error::io("opening", path, e));
        }
    };
    let meta = file.metadata().map_err(|e| Error::io("reading", path, e))?;
    if !expect.accepts(meta.file_type()) {
        return Err(unexpected(path, kind_name(meta.file_type()), expect));
    }
    if expect == Expect::File {
        clear_nonblock(&file);
    }
    Ok(Some((file, meta)))
}

/// Regular files ignore `O_NONBLOCK`, but a descriptor handed on (to FUSE passthrough,
/// to a copy) should not carry it.
pub(crate) fn clear_nonblock(file: &fs::File) {
    let fd = file.as_raw_fd();
    // SAFETY: fcntl on a descriptor we own; no memory is touched.
    unsafe {
        let fl = libc::fcntl(fd, libc::F_GETFL);
        if fl >= 0 {
            libc::fcntl(fd, libc::F_SETFL, fl & !libc::O_NONBLOCK);
        }
    }
}

/// True if only `uid` can have written what `meta` describes: it owns it and neither
/// group nor others may write it. Derived files that a privileged process trusts (an
/// inode cache, an image, a keeper's socket directory) must pass this.
pub fn written_only_by(meta: &fs::Metadata, uid: u32) -> bool {
    use std::os::unix::fs::MetadataExt;
    meta.uid() == uid && meta.mode() & 0o022 == 0
}

/// Opens a regular repository file for reading. `Ok(None)` if it does not exist.
pub fn open_file(path: &Path) -> Result<Option<(fs::File, fs::Metadata)>> {
    open(path, Expect::File, Access::Read)
}

/// Reads a whole regular repository file of at most `limit` bytes. `Ok(None)` if it
/// does not exist.
pub fn read_bounded(path: &Path, limit: u64) -> Result<Option<Vec<u8>>> {
    let Some((file, meta)) = open_file(path)? else {
        return Ok(None);
    };
    let too_large = |size| Error::FileTooLarge {
        path: path.to_path_buf(),
        size,
        limit,
    };
    if meta.len() > limit {
        return Err(too_large(meta.len()));
    }
    let mut buf = Vec::with_capacity(meta.len() as usize);
    // One byte more than allowed tells a file that grew past the limit.
    file.take(limit + 1)
        .read_to_end(&mut buf)
        .map_err(|e| Error::io("reading", path, e))?;
    if buf.len() as u64 > limit {
        return Err(too_large(buf.len() as u64));
    }
    Ok(Some(buf))
}

/// Like [`read_bounded`], for text files.
pub fn read_text_bounded(path: &Path, limit: u64) -> Result<Option<String>> {
    let Some(bytes) = read_bounded(path, limit)? else {
        return Ok(None);
    };
    String::from_utf8(bytes).map(Some).map_err(|_| Error::Io {
        action: "reading".into(),
        path: path.to_path_buf(),
        source: std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            "not UTF-8 text; the file is damaged",
        ),
    })
}

/// The metadata of a repository path, without following a link in its last component
/// and without opening it. `Ok(None)` if nothing is there; an error naming what is
/// there if it is not what `expect` asks for.
pub fn stat(path: &Path, expect: Expect) -> Result<Option<fs::Metadata>> {
    match fs::symlink_metadata(path) {
        Ok(m) if expect.accepts(m.file_type()) => Ok(Some(m)),
        Ok(m) => Err(unexpected(path, kind_name(m.file_type()), expect)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(Error::io("reading", path, e)),
    }
}
