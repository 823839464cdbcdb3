//! Runtimes: a private mount namespace in which /spfs shows a stack of layers.

pub mod edits;
pub mod fuse;
pub mod image;
pub mod monitor;
pub mod mounts;
pub mod namespace;
pub mod record;
pub mod spawn;
pub mod startup;
