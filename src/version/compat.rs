//! The `compat` field: which other versions a version can stand in for.

use std::collections::BTreeSet;
use std::fmt;
use std::str::FromStr;

use super::{ParseError, Version};

/// One kind of compatibility between two versions.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum CompatRule {
    /// `x`: no compatibility.
    None,
    /// `a`: source (API) compatibility, used on the command line and for builds.
    Api,
    /// `b`: binary compatibility, used for install requirements.
    Binary,
}

impl CompatRule {
    fn from_char(c: char) -> Option<Self> {
        match c {
            'x' => Some(Self::None),
            'a' => Some(Self::Api),
            'b' => Some(Self::Binary),
            _ => None,
        }
    }

    fn as_char(self) -> char {
        match self {
            Self::None => 'x',
            Self::Api => 'a',
            Self::Binary => 'b',
        }
    }

    /// The name used in range prefixes such as `API:1.2`.
    pub fn name(self) -> &'static str {
        match self {
            Self::None => "None",
            Self::Api => "API",
            Self::Binary => "Binary",
        }
    }
}

/// The set of compatibility kinds granted for one position of a version.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct CompatRuleSet(BTreeSet<CompatRule>);

impl CompatRuleSet {
    /// True when this position grants `rule`.
    pub fn contains(&self, rule: CompatRule) -> bool {
        self.0.contains(&rule)
    }

    fn parse(s: &str, full: &str) -> Result<Self, ParseError> {
        if s.is_empty() {
            return Err(ParseError::new(
                "compat",
                full,
                "each position needs at least one of 'x', 'a' or 'b' (for example 'x.a.b')",
            ));
        }
        let mut set = BTreeSet::new();
        for c in s.chars() {
            let rule = CompatRule::from_char(c).ok_or_else(|| {
                ParseError::new(
                    "compat",
                    full,
                    format!(
                        "'{c}' is not a rule; use 'x' (incompatible), 'a' (API) or 'b' (binary)"
                    ),
                )
            })?;
            set.insert(rule);
        }
        Ok(Self(set))
    }
}

impl fmt::Display for CompatRuleSet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for r in &self.0 {
            write!(f, "{}", r.as_char())?;
        }
        Ok(())
    }
}

/// The outcome of a compatibility check, with the reason when incompatible.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Compatibility {
    /// The versions are compatible.
    Compatible,
    /// The versions are not compatible, for the given reason.
    Incompatible(String),
}

impl Compatibility {
    /// True for [`Compatibility::Compatible`].
    pub fn is_ok(&self) -> bool {
        matches!(self, Self::Compatible)
    }
}

/// A package's compatibility contract, for example `x.a.b` or `x.x.x-x+x`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Compat {
    parts: Vec<CompatRuleSet>,
    pre: Option<CompatRuleSet>,
    post: Option<CompatRuleSet>,
}

impl Default for Compat {
    fn default() -> Self {
        "x.a.b".parse().expect("default compat is valid")
    }
}

impl Compat {
    /// Checks whether `candidate` can be used where `base` was asked for, needing `required`.
    ///
    /// The first position where the versions differ decides: it must grant `required` and the
    /// candidate must be newer. Equal numbers with different pre- or post-release tags are
    /// compatible unless the `-x` / `+x` clauses say otherwise, and still must not be older.
    pub fn check(
        &self,
        base: &Version,
        candidate: &Version,
        required: CompatRule,
    ) -> Compatibility {
        let n = base.parts.len().max(candidate.parts.len());
        for i in 0..n {
            let (a, b) = (base.part(i), candidate.part(i));
            if a == b {
                continue;
            }
            let granted = self
                .parts
                .get(i)
                .map(|r| r.contains(required))
                .unwrap_or(required != CompatRule::None);
            if !granted {
                return Compatibility::Incompatible(format!(
                    "{candidate} is not {} compatible with {base} (compat {self}: position {} differs)",
                    required.name(),
                    i + 1
                ));
            }
            if b < a {
                return Compatibility::Incompatible(format!("{candidate} is older than {base}"));
            }
            return Compatibility::Compatible;
        }
        if base.pre != candidate.pre {
            if let Some(rule) = &self.pre {
                if !rule.contains(required) {
                    return Compatibility::Incompatible(format!(
                        "{candidate} has different pre-release tags than {base} (compat {self})"
                    ));
                }
            }
        }
        if base.post != candidate.post {
            if let Some(rule) = &self.post {
                if !rule.contains(required) {
                    return Compatibility::Incompatible(format!(
                        "{candidate} has different post-release tags than {base} (compat {self})"
                    ));
                }
            }
        }
        if candidate < base {
            return Compatibility::Incompatible(format!("{candidate} is older than {base}"));
        }
        Compatibility::Compatible
    }

    /// API compatibility check of `candidate` against `base`.
    pub fn is_api_compatible(&self, base: &Version, candidate: &Version) -> bool {
        self.check(base, candidate, CompatRule::Api).is_ok()
    }

    /// Binary compatibility check of `candidate` against `base`.
    pub fn is_binary_compatible(&self, base: &Version, candidate: &Version) -> bool {
        self.check(base, candidate, CompatRule::Binary).is_ok()
    }

    /// Renders a version through this compat as a pin template (`x.x` keeps two parts).
    pub fn parts_len(&self) -> usize {
        self.parts.len()
    }
}

impl fmt::Display for Compat {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let parts: Vec<String> = self.parts.iter().map(|p| p.to_string()).collect();
        f.write_str(&parts.join("."))?;
        if let Some(pre) = &self.pre {
            write!(f, "-{pre}")?;
        }
        if let Some(post) = &self.post {
            write!(f, "+{post}")?;
        }
        Ok(())
    }
}

impl FromStr for Compat {
    type Err = ParseError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let (rest, post) = match s.split_once('+') {
            Some((a, b)) => (a, Some(CompatRuleSet::parse(b, s)?)),
            None => (s, None),
        };
        let (base, pre) = match rest.split_once('-') {
            Some((a, b)) => (a, Some(CompatRuleSet::parse(b, s)?)),
            None => (rest, None),
        };
        let parts = base
            .split('.')
            .map(|p| CompatRuleSet::parse(p, s))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Self { parts, pre, post })
    }
}

crate::name::serde_via_str!(Compat);

#[cfg(test)]
mod tests {
    use super::*;

    fn v(s: &str) -> Version {
        s.parse().unwrap()
    }

    #[test]
    fn default_is_x_a_b() {
        let c = Compat::default();
        assert_eq!(c.to_string(), "x.a.b");
        assert!(c.is_api_compatible(&v("1.0.0"), &v("1.5.0")));
        assert!(!c.is_binary_compatible(&v("1.0.0"), &v("1.5.0")));
        assert!(c.is_binary_compatible(&v("1.0.0"), &v("1.0.9")));
        assert!(!c.is_api_compatible(&v("1.0.0"), &v("2.0.0")));
        assert!(
            !c.is_api_compatible(&v("1.5.0"), &v("1.4.0")),
            "older is never compatible"
        );
        assert!(c.is_binary_compatible(&v("1.0"), &v("1.0.0.7")));
    }

    #[test]
    fn combined_rules() {
        let c: Compat = "x.ab".parse().unwrap();
        assert!(c.is_binary_compatible(&v("1.0"), &v("1.3")));
        assert!(c.is_api_compatible(&v("1.0"), &v("1.3")));
        assert!(!c.is_api_compatible(&v("1.0"), &v("2.0")));
        let c: Compat = "x.x.a.b".parse().unwrap();
        assert!(!c.is_api_compatible(&v("1.2.0.0"), &v("1.3.0.0")));
        assert!(c.is_api_compatible(&v("1.2.0.0"), &v("1.2.1.0")));
    }

    #[test]
    fn pre_and_post_clauses() {
        let c = Compat::default();
        assert!(c.is_binary_compatible(&v("1.0.0"), &v("1.0.0+r.1")));
        assert!(c.is_binary_compatible(&v("1.0.0-rc.1"), &v("1.0.0")));
        assert!(
            !c.is_binary_compatible(&v("1.0.0"), &v("1.0.0-rc.1")),
            "pre-release is older"
        );
        let strict: Compat = "x.x.x-x+x".parse().unwrap();
        assert_eq!(strict.to_string(), "x.x.x-x+x");
        assert!(!strict.is_binary_compatible(&v("1.0.0"), &v("1.0.0+r.1")));
        assert!(!strict.is_binary_compatible(&v("1.0.0-rc.1"), &v("1.0.0-rc.2")));
        assert!(strict.is_binary_compatible(&v("1.0.0"), &v("1.0.0")));
    }

    #[test]
    fn bad_compat() {
        assert!("x.q.b".parse::<Compat>().is_err());
        assert!("x..b".parse::<Compat>().is_err());
        assert!("".parse::<Compat>().is_err());
    }
}
