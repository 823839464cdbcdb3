//! spfs: a content-addressed filesystem store and isolated `/spfs` runtimes.
//!
//! - [`object`]: manifests, layers and platforms and their canonical encoding
//! - [`storage`]: the repository directory, payloads, tags and references
//! - [`commit`], [`render`], [`check`], [`diff`]: moving trees in and out and verifying
//! - [`runtime`]: isolated /spfs environments (namespaces, overlayfs, FUSE)

pub mod archive;
pub mod check;
pub mod clean;
pub mod commit;
pub mod config;
pub mod diff;
pub mod digest;
pub mod encoding;
pub mod error;
pub mod object;
pub mod progress;
pub mod render;
pub mod repair;
pub mod runtime;
pub mod signals;
pub mod storage;
pub mod sync;
#[cfg(test)]
mod test_fixture;

pub use digest::Digest;
pub use error::{Error, Help, Result};
