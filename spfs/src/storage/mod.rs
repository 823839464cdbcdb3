//! Where objects, payloads and tags live.
//!
//! The local repository is a plain directory (docs/repository-layout.md) that several
//! processes and users can use at once: every write lands in a temporary file that is
//! renamed into place, so readers never see partial content.

pub mod files;
mod gc_lock;
mod local;
mod payloads;
mod references;
mod tags;
mod traits;
mod transaction;

pub(crate) use gc_lock::touch;
pub use gc_lock::{CollectGuard, WriteGuard};
pub use local::{builtin_root, default_root, LocalRepository, FORMAT_VERSION};
pub(crate) use payloads::set_mode;
pub use payloads::{hash_stream, payload_mode, read_only_mode};
pub use tags::{parse_tag_version, tag_dirs_read, validate_tag_name, TagDir, TagEntry, TagStamp};
pub use traits::{ObjectStore, PayloadStore, Repository, TagLevel, TagStore};
pub use transaction::Transaction;
