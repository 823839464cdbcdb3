//! Isolated `/spfs` runtimes.

pub mod fuse;
