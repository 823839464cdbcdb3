//! Package identifiers: `name/version` and `name/version/build`.

use std::fmt;
use std::str::FromStr;

use crate::name::{serde_via_str, PkgName};
use crate::version::Version;

/// An invalid identifier.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid package identifier '{}': {}", crate::text::quote(.input), crate::text::cap_message(spfs::error::split_hint(.reason).0))]
pub struct IdentError {
    /// The offending text.
    pub input: String,
    /// Why, and what to write instead.
    pub reason: String,
}

impl spfs::Help for IdentError {
    fn help(&self) -> Vec<String> {
        let hint = spfs::error::split_hint(&self.reason).1;
        vec![hint
            .unwrap_or("write packages as name, name/version or name/version/build")
            .to_string()]
    }
}

/// Which build of a package version.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Build {
    /// The source package (`src`).
    Source,
    /// A copy bundled inside another package (`embedded`).
    Embedded,
    /// A binary build, named by the digest of its resolved options (8 characters).
    Digest(String),
}

impl Build {
    /// True for binary builds.
    pub fn is_binary(&self) -> bool {
        matches!(self, Self::Digest(_))
    }
}

impl fmt::Display for Build {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Source => f.write_str("src"),
            Self::Embedded => f.write_str("embedded"),
            Self::Digest(d) => f.write_str(d),
        }
    }
}

impl FromStr for Build {
    type Err = IdentError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "src" => Ok(Self::Source),
            "embedded" => Ok(Self::Embedded),
            _ if s.len() == crate::option_map::BUILD_ID_LEN
                && s.chars().all(|c| c.is_ascii_uppercase() || ('2'..='7').contains(&c)) =>
            {
                Ok(Self::Digest(s.to_string()))
            }
            _ => Err(IdentError {
                input: s.to_string(),
                reason: format!(
                    "'{s}' is not a build; a build is 'src', 'embedded' or an {}-character id such as 'JRSXNRF4'",
                    crate::option_map::BUILD_ID_LEN
                ),
            }),
        }
    }
}

/// A package version: `name/version`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct VersionIdent {
    /// The package name.
    pub name: PkgName,
    /// The version.
    pub version: Version,
}

impl VersionIdent {
    /// A new identifier.
    pub fn new(name: PkgName, version: Version) -> Self {
        Self { name, version }
    }

    /// This version with a build.
    pub fn to_build(&self, build: Build) -> BuildIdent {
        BuildIdent {
            name: self.name.clone(),
            version: self.version.clone(),
            build,
        }
    }
}

impl fmt::Display for VersionIdent {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.name, self.version)
    }
}

/// One build of a package version: `name/version/build`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct BuildIdent {
    /// The package name.
    pub name: PkgName,
    /// The version.
    pub version: Version,
    /// The build.
    pub build: Build,
}

impl BuildIdent {
    /// The version part of this identifier.
    pub fn version_ident(&self) -> VersionIdent {
        VersionIdent::new(self.name.clone(), self.version.clone())
    }
}

impl fmt::Display for BuildIdent {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}/{}", self.name, self.version, self.build)
    }
}

/// Any identifier: a name, optionally with a version and a build.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct AnyIdent {
    /// The package name.
    pub name: PkgName,
    /// The version, if given.
    pub version: Option<Version>,
    /// The build, if given.
    pub build: Option<Build>,
}

impl AnyIdent {
    /// The version identifier, when a version was given.
    pub fn version_ident(&self) -> Option<VersionIdent> {
        self.version
            .as_ref()
            .map(|v| VersionIdent::new(self.name.clone(), v.clone()))
    }

    /// The build identifier, when both a version and a build were given.
    pub fn build_ident(&self) -> Option<BuildIdent> {
        match (&self.version, &self.build) {
            (Some(v), Some(b)) => Some(BuildIdent {
                name: self.name.clone(),
                version: v.clone(),
                build: b.clone(),
            }),
            _ => None,
        }
    }
}

impl fmt::Display for AnyIdent {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.name)?;
        if let Some(v) = &self.version {
            write!(f, "/{v}")?;
        }
        if let Some(b) = &self.build {
            write!(f, "/{b}")?;
        }
        Ok(())
    }
}

impl FromStr for AnyIdent {
    type Err = IdentError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let err = |reason: String| IdentError {
            input: s.to_string(),
            reason,
        };
        let mut parts = s.split('/');
        let name = parts.next().unwrap_or_default();
        let name: PkgName = name
            .parse()
            .map_err(|e: crate::name::NameError| err(spfs::error::with_hints(&e)))?;
        let version = match parts.next() {
            Some(v) => Some(
                v.parse::<Version>()
                    .map_err(|e| err(spfs::error::with_hints(&e)))?,
            ),
            None => None,
        };
        let build = match parts.next() {
            Some(b) => Some(b.parse::<Build>().map_err(|e| err(e.reason))?),
            None => None,
        };
        if parts.next().is_some() {
            return Err(err("expected at most name/version/build".into()));
        }
        Ok(Self {
            name,
            version,
            build,
        })
    }
}

impl FromStr for VersionIdent {
    type Err = IdentError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let any: AnyIdent = s.parse()?;
        if any.build.is_some() {
            return Err(IdentError {
                input: s.to_string(),
                reason: "expected name/version without a build".into(),
            });
        }
        any.version_ident().ok_or_else(|| IdentError {
            input: s.to_string(),
            reason: "a version is required, as in 'my-package/1.0.0'".into(),
        })
    }
}

impl FromStr for BuildIdent {
    type Err = IdentError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let any: AnyIdent = s.parse()?;
        any.build_ident().ok_or_else(|| IdentError {
            input: s.to_string(),
            reason: "expected name/version/build, as in 'my-package/1.0.0/JRSXNRF4'".into(),
        })
    }
}

serde_via_str!(Build);
serde_via_str!(VersionIdent);
serde_via_str!(BuildIdent);
serde_via_str!(AnyIdent);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse_idents() {
        let b: BuildIdent = "python/3.7.3/ABCDEFGH".parse().unwrap();
        assert_eq!(b.name.as_str(), "python");
        assert_eq!(b.build, Build::Digest("ABCDEFGH".into()));
        assert_eq!(b.to_string(), "python/3.7.3/ABCDEFGH");
        let s: BuildIdent = "python/3.7.3/src".parse().unwrap();
        assert_eq!(s.build, Build::Source);
        assert!("python/3.7.3/abc".parse::<BuildIdent>().is_err());
        assert!("python/3.7.3".parse::<BuildIdent>().is_err());
        assert!("python".parse::<VersionIdent>().is_err());
        let any: AnyIdent = "python".parse().unwrap();
        assert!(any.version.is_none());
        assert!("Python/1".parse::<AnyIdent>().is_err());
    }
}
