//! Read-only FUSE view of a merged manifest (placeholder until the FUSE server lands).

use std::path::Path;

use crate::error::{Error, Result};
use crate::object::Manifest;
use crate::storage::LocalRepository;

/// Options of the FUSE mount.
pub struct FuseOptions {
    /// Use passthrough reads when possible.
    pub passthrough: bool,
}

/// A mounted FUSE view.
pub struct FuseMount;

impl FuseMount {
    /// Mounts `manifest` at `mountpoint`.
    pub fn mount(
        _repo: &LocalRepository,
        _manifest: Manifest,
        _mountpoint: &Path,
        _opts: &FuseOptions,
    ) -> Result<FuseMount> {
        Err(Error::Runtime(
            "the fuse backend is not available in this build; use --backend render".into(),
        ))
    }
    /// Unmounts.
    pub fn unmount(self) -> Result<()> {
        Ok(())
    }
}
