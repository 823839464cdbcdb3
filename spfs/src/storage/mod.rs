//! Where objects, payloads and tags live.
//!
//! The local repository is a plain directory (docs/repository-layout.md) that several
//! processes and users can use at once: every write lands in a temporary file that is
//! renamed into place, so readers never see partial content.

pub mod files;
mod gc_lock;

/// Prefix of a file's content staged in the directory it is renamed into (tag files,
/// small objects and payloads): listings skip such names (no tag segment or digest
/// starts with '.'), and `spfs clean` removes those a killed writer left behind.
pub const STAGE_PREFIX: &str = ".stage.";
mod local;
mod payloads;
mod read_through;
mod references;
pub mod s3;
mod tags;
mod traits;
mod transaction;

pub(crate) use gc_lock::touch;
pub use gc_lock::{CollectGuard, WriteGuard};
pub use local::{builtin_root, default_root, LocalRepository, FORMAT_VERSION};
pub(crate) use payloads::set_mode;
pub use payloads::{hash_stream, payload_mode, read_only_mode};
pub use read_through::ReadThrough;
pub use tags::{parse_tag_version, tag_dirs_read, validate_tag_name, TagDir, TagEntry, TagStamp};
pub use traits::{LocalFiles, ObjectStore, PayloadStore, Repository, TagLevel, TagStore};
pub use transaction::Transaction;

use crate::config::Address;
use crate::error::{Error, Result};

/// Opens the repository at a remote address: `file://` (a directory; `create` makes
/// a missing one, as a push does) or `s3://` (`create` writes its `VERSION`).
pub fn open_remote(address: &Address, create: bool) -> Result<Box<dyn Repository>> {
    match address {
        Address::File(path) => Ok(Box::new(if create {
            LocalRepository::open_or_create(path)?
        } else {
            LocalRepository::open(path)?
        })),
        Address::S3 {
            bucket,
            prefix,
            endpoint,
            region,
        } => Ok(Box::new(s3::S3Repository::open(
            &s3::S3Location {
                bucket: bucket.clone(),
                prefix: prefix.clone(),
                endpoint: endpoint.clone(),
                region: region.clone(),
            },
            create,
        )?)),
        Address::Tar(_) => Err(Error::RemoteUnavailable {
            name: address.to_string(),
            reason: "an archive is not opened as a repository: use 'spfs pull', 'spfs push', 'spfs import' or 'spfs export' with it".into(),
        }),
    }
}

/// Opens a remote to read closures from: as [`open_remote`], and also a `tar://`
/// archive (as [`crate::archive::ArchiveSource`]: its payloads are read in one pass by
/// the pulls of `spfs run` and by `spfs check --repair`).
pub fn open_source(address: &Address) -> Result<Box<dyn Repository>> {
    match address {
        Address::Tar(path) => Ok(Box::new(crate::archive::ArchiveSource::open(path)?)),
        other => open_remote(other, false),
    }
}
