//! spk: the package layer of the runtime environment manager.
//!
//! Packages are described by [`spec::Spec`] files, named by [`ident`]ifiers and
//! [`version`]s, stored in [`storage`] repositories (spfs tags) and resolved into
//! consistent environments by the [`solve`]r.

pub mod bosh;
pub mod build;
pub mod cli;
pub mod env;
pub mod ident;
pub mod name;
pub mod option_map;
pub mod request;
pub mod solve;
pub mod spec;
pub mod storage;
pub mod text;
pub mod version;

pub use ident::{AnyIdent, Build, BuildIdent, VersionIdent};
pub use name::{Component, OptName, PkgName};
pub use option_map::OptionMap;
pub use request::{Inclusion, PkgRequest, PreReleasePolicy, Request, VarRequest};
pub use spec::Spec;
pub use version::{Compat, CompatRule, Version, VersionFilter, VersionRange};
