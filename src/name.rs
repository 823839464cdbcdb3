//! Validated names: packages, options and components.

use std::fmt;
use std::str::FromStr;

/// An invalid name.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid {what} '{}': {}", crate::text::quote(.input), crate::text::cap_message(spfs::error::split_hint(.reason).0))]
pub struct NameError {
    /// What kind of name (package name, option name, component name).
    pub what: &'static str,
    /// The offending text.
    pub input: String,
    /// Why, and what to write instead.
    pub reason: String,
}

impl spfs::Help for NameError {
    fn help(&self) -> Vec<String> {
        spfs::error::split_hint(&self.reason)
            .1
            .map(str::to_string)
            .into_iter()
            .collect()
    }
}

fn suggest_pkg_name(s: &str) -> String {
    let fixed: String = s
        .chars()
        .map(|c| match c {
            'A'..='Z' => c.to_ascii_lowercase(),
            '_' | ' ' | '.' => '-',
            c => c,
        })
        .filter(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == '-')
        .collect();
    fixed
}

/// A package name: lowercase ASCII letters, digits and dashes.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct PkgName(String);

impl PkgName {
    /// The name as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl FromStr for PkgName {
    type Err = NameError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let bad = s
            .chars()
            .find(|c| !(c.is_ascii_lowercase() || c.is_ascii_digit() || *c == '-'));
        if s.is_empty() || bad.is_some() || s.starts_with('-') || s.ends_with('-') {
            let fixed = suggest_pkg_name(s);
            let reason = match bad {
                Some(c) => format!("'{c}' is not allowed; package names use only lowercase letters, digits and dashes"),
                None if s.is_empty() => "a package name cannot be empty".to_string(),
                None => "a package name cannot start or end with a dash".to_string(),
            };
            let reason = if !fixed.is_empty() && fixed != s {
                format!(
                    "{reason} (did you mean '{}'?)",
                    crate::text::quote(fixed.trim_matches('-'))
                )
            } else {
                reason
            };
            return Err(NameError {
                what: "package name",
                input: s.to_string(),
                reason,
            });
        }
        Ok(Self(s.to_string()))
    }
}

impl fmt::Display for PkgName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl AsRef<str> for PkgName {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

/// A build option name (`debug`, `oiio_cxx`), optionally namespaced by a package (`python.abi`).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct OptName(String);

impl OptName {
    /// The full name as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The package part of a namespaced name.
    pub fn namespace(&self) -> Option<&str> {
        self.0.split_once('.').map(|(ns, _)| ns)
    }

    /// The name without its namespace.
    pub fn base_name(&self) -> &str {
        self.0.split_once('.').map(|(_, n)| n).unwrap_or(&self.0)
    }

    /// This name placed in the namespace of `pkg` (`abi` -> `python.abi`).
    pub fn with_namespace(&self, pkg: &PkgName) -> OptName {
        OptName(format!("{pkg}.{}", self.base_name()))
    }
}

impl FromStr for OptName {
    type Err = NameError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let err = |reason: String| NameError {
            what: "option name",
            input: s.to_string(),
            reason,
        };
        let (ns, base) = match s.split_once('.') {
            Some((ns, base)) => (Some(ns), base),
            None => (None, s),
        };
        if let Some(ns) = ns {
            ns.parse::<PkgName>().map_err(|e| {
                err(format!(
                    "the namespace must be a package name: {}",
                    e.reason
                ))
            })?;
        }
        if base.is_empty() {
            return Err(err("an option name cannot be empty".into()));
        }
        if let Some(c) = base
            .chars()
            .find(|c| !(c.is_ascii_alphanumeric() || *c == '_' || *c == '-'))
        {
            return Err(err(format!(
                "'{c}' is not allowed; option names use letters, digits, '_' and '-', optionally prefixed by a package name and '.'"
            )));
        }
        Ok(Self(s.to_string()))
    }
}

impl fmt::Display for OptName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A package component: `build`, `run`, `src`, the `all` wildcard, or a named one.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Component {
    /// Every component of the package.
    All,
    /// Files needed to build against the package.
    Build,
    /// Files needed to run the package.
    Run,
    /// The sources of a source build.
    Source,
    /// Any other component.
    Named(String),
}

impl Component {
    /// The component name as written.
    pub fn as_str(&self) -> &str {
        match self {
            Self::All => "all",
            Self::Build => "build",
            Self::Run => "run",
            Self::Source => "src",
            Self::Named(n) => n,
        }
    }
}

impl FromStr for Component {
    type Err = NameError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Ok(match s {
            "all" => Self::All,
            "build" => Self::Build,
            "run" => Self::Run,
            "src" => Self::Source,
            _ => {
                if s.is_empty()
                    || !s.chars().all(|c| {
                        c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '_'
                    })
                {
                    return Err(NameError {
                        what: "component name",
                        input: s.to_string(),
                        reason: "component names use only lowercase letters, digits, '-' and '_'"
                            .into(),
                    });
                }
                Self::Named(s.to_string())
            }
        })
    }
}

impl fmt::Display for Component {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

macro_rules! serde_via_str {
    ($t:ty) => {
        impl serde::Serialize for $t {
            fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.collect_str(self)
            }
        }
        impl<'de> serde::Deserialize<'de> for $t {
            fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                let s = crate::spec::de::scalar_string(d)?;
                s.parse()
                    .map_err(|e| serde::de::Error::custom(spfs::error::with_hints(&e)))
            }
        }
    };
}
pub(crate) use serde_via_str;

serde_via_str!(PkgName);
serde_via_str!(OptName);
serde_via_str!(Component);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn package_names() {
        assert!("my-pkg2".parse::<PkgName>().is_ok());
        let err = "My_Pkg".parse::<PkgName>().unwrap_err();
        assert!(err.reason.contains("did you mean 'my-pkg'"), "{err}");
        assert!("".parse::<PkgName>().is_err());
        assert!("-x".parse::<PkgName>().is_err());
        assert!("a.b".parse::<PkgName>().is_err());
    }

    #[test]
    fn option_names() {
        let n: OptName = "python.abi".parse().unwrap();
        assert_eq!(n.namespace(), Some("python"));
        assert_eq!(n.base_name(), "abi");
        assert!("oiio_cxx".parse::<OptName>().is_ok());
        assert!("Bad.abi".parse::<OptName>().is_err());
        assert!("a b".parse::<OptName>().is_err());
    }

    #[test]
    fn components() {
        assert_eq!("run".parse::<Component>().unwrap(), Component::Run);
        assert_eq!("src".parse::<Component>().unwrap(), Component::Source);
        assert_eq!("all".parse::<Component>().unwrap(), Component::All);
        assert_eq!(
            "docs".parse::<Component>().unwrap(),
            Component::Named("docs".into())
        );
        assert!("Docs!".parse::<Component>().is_err());
    }
}
