//! Package versions, compatibility rules and version ranges.

mod compat;
mod range;

pub use compat::{Compat, CompatRule, CompatRuleSet, Compatibility};
pub use range::{VersionFilter, VersionRange};

use std::cmp::Ordering;
use std::collections::BTreeMap;
use std::fmt;
use std::hash::{Hash, Hasher};
use std::str::FromStr;

/// An error in a version, compat rule or range string.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid {what} '{}': {}", crate::text::quote(.input), crate::text::cap_message(spfs::error::split_hint(.reason).0))]
pub struct ParseError {
    /// What kind of value was being parsed (version, range, compat...).
    pub what: &'static str,
    /// The offending text.
    pub input: String,
    /// Why it was rejected and how to write it instead.
    pub reason: String,
}

impl spfs::Help for ParseError {
    fn help(&self) -> Vec<String> {
        spfs::error::split_hint(&self.reason)
            .1
            .map(str::to_string)
            .into_iter()
            .collect()
    }
}

impl ParseError {
    pub(crate) fn new(what: &'static str, input: &str, reason: impl Into<String>) -> Self {
        Self {
            what,
            input: input.to_string(),
            reason: reason.into(),
        }
    }
}

/// A set of named, numbered release tags such as `alpha.1,rc.2`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct TagSet(BTreeMap<String, u32>);

impl TagSet {
    /// True when no tag is set.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// The number of a named tag, if present.
    pub fn get(&self, name: &str) -> Option<u32> {
        self.0.get(name).copied()
    }

    /// Iterates the tags in name order.
    pub fn iter(&self) -> impl Iterator<Item = (&str, u32)> {
        self.0.iter().map(|(k, v)| (k.as_str(), *v))
    }

    /// Adds or replaces a tag.
    pub fn insert(&mut self, name: impl Into<String>, num: u32) {
        self.0.insert(name.into(), num);
    }

    fn parse(input: &str, full: &str) -> Result<Self, ParseError> {
        let mut tags = BTreeMap::new();
        for item in input.split(',') {
            let Some((name, num)) = item.split_once('.') else {
                return Err(ParseError::new(
                    "version",
                    full,
                    format!(
                        "release tag '{item}' must be written as name.number, for example 'rc.1'"
                    ),
                ));
            };
            if name.is_empty() || !name.chars().all(|c| c.is_ascii_lowercase()) {
                return Err(ParseError::new(
                    "version",
                    full,
                    format!("release tag name '{name}' must be lowercase letters only"),
                ));
            }
            let num: u32 = num.parse().map_err(|_| {
                ParseError::new(
                    "version",
                    full,
                    format!("release tag '{item}' must end in a whole number"),
                )
            })?;
            if tags.insert(name.to_string(), num).is_some() {
                return Err(ParseError::new(
                    "version",
                    full,
                    format!("release tag '{name}' is given twice"),
                ));
            }
        }
        Ok(Self(tags))
    }
}

impl fmt::Display for TagSet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut first = true;
        for (k, v) in &self.0 {
            if !first {
                f.write_str(",")?;
            }
            first = false;
            write!(f, "{k}.{v}")?;
        }
        Ok(())
    }
}

/// A package version: dotted numbers with optional pre-release and post-release tags.
///
/// Versions are totally ordered: missing trailing parts count as zero (`1.1 == 1.1.0`),
/// and a pre-release sorts before its release, which sorts before any post-release.
#[derive(Debug, Clone, Default)]
pub struct Version {
    /// The numeric parts, as written.
    pub parts: Vec<u32>,
    /// Pre-release tags (`-alpha.1`).
    pub pre: TagSet,
    /// Post-release tags (`+r.1`).
    pub post: TagSet,
}

impl Version {
    /// A version from its numeric parts, without tags.
    pub fn from_parts(parts: impl Into<Vec<u32>>) -> Self {
        Self {
            parts: parts.into(),
            ..Default::default()
        }
    }

    /// The part at `index`, counting missing parts as zero.
    pub fn part(&self, index: usize) -> u32 {
        self.parts.get(index).copied().unwrap_or(0)
    }

    /// The first part.
    pub fn major(&self) -> u32 {
        self.part(0)
    }

    /// The second part.
    pub fn minor(&self) -> u32 {
        self.part(1)
    }

    /// The third part.
    pub fn patch(&self) -> u32 {
        self.part(2)
    }

    /// True when the version has pre-release tags.
    pub fn is_pre_release(&self) -> bool {
        !self.pre.is_empty()
    }

    /// The numeric parts only, without any tags.
    pub fn base(&self) -> Version {
        Version::from_parts(self.parts.clone())
    }

    /// The numeric parts as written (`1.2.3`).
    pub fn base_string(&self) -> String {
        self.parts
            .iter()
            .map(|p| p.to_string())
            .collect::<Vec<_>>()
            .join(".")
    }

    /// Compares only the numeric parts, padding with zeros.
    pub fn cmp_base(&self, other: &Version) -> Ordering {
        let n = self.parts.len().max(other.parts.len());
        for i in 0..n {
            match self.part(i).cmp(&other.part(i)) {
                Ordering::Equal => continue,
                o => return o,
            }
        }
        Ordering::Equal
    }

    /// True when both versions are written identically (same number of parts and tags).
    pub fn is_identical(&self, other: &Version) -> bool {
        self.parts == other.parts && self.pre == other.pre && self.post == other.post
    }

    /// Parts with trailing zeros removed; the canonical form used for equality.
    fn significant_parts(&self) -> &[u32] {
        let mut end = self.parts.len();
        while end > 0 && self.parts[end - 1] == 0 {
            end -= 1;
        }
        &self.parts[..end]
    }
}

impl PartialEq for Version {
    fn eq(&self, other: &Self) -> bool {
        self.cmp(other) == Ordering::Equal
    }
}

impl Eq for Version {}

impl Hash for Version {
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.significant_parts().hash(state);
        self.pre.hash(state);
        self.post.hash(state);
    }
}

impl PartialOrd for Version {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for Version {
    fn cmp(&self, other: &Self) -> Ordering {
        self.cmp_base(other)
            .then_with(|| match (self.pre.is_empty(), other.pre.is_empty()) {
                (true, true) => Ordering::Equal,
                (true, false) => Ordering::Greater,
                (false, true) => Ordering::Less,
                (false, false) => self.pre.cmp(&other.pre),
            })
            .then_with(|| match (self.post.is_empty(), other.post.is_empty()) {
                (true, true) => Ordering::Equal,
                (true, false) => Ordering::Less,
                (false, true) => Ordering::Greater,
                (false, false) => self.post.cmp(&other.post),
            })
    }
}

impl fmt::Display for Version {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.base_string())?;
        if !self.pre.is_empty() {
            write!(f, "-{}", self.pre)?;
        }
        if !self.post.is_empty() {
            write!(f, "+{}", self.post)?;
        }
        Ok(())
    }
}

impl FromStr for Version {
    type Err = ParseError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        if s.is_empty() {
            return Err(ParseError::new(
                "version",
                s,
                "a version cannot be empty; write dotted numbers such as '1.0.0'",
            ));
        }
        let (rest, post) = match s.split_once('+') {
            Some((a, b)) => (a, TagSet::parse(b, s)?),
            None => (s, TagSet::default()),
        };
        let (base, pre) = match rest.split_once('-') {
            Some((a, b)) => (a, TagSet::parse(b, s)?),
            None => (rest, TagSet::default()),
        };
        let mut parts = Vec::new();
        for part in base.split('.') {
            if part.is_empty() || !part.chars().all(|c| c.is_ascii_digit()) {
                return Err(ParseError::new(
                    "version",
                    s,
                    format!(
                        "'{part}' is not a number; versions are dotted numbers such as '1.2.3', optionally followed by '-pre.1' or '+post.1'"
                    ),
                ));
            }
            parts
                .push(part.parse::<u32>().map_err(|_| {
                    ParseError::new("version", s, format!("'{part}' is too large"))
                })?);
        }
        Ok(Version { parts, pre, post })
    }
}

crate::name::serde_via_str!(Version);

#[cfg(test)]
mod tests {
    use super::*;

    fn v(s: &str) -> Version {
        s.parse().unwrap()
    }

    #[test]
    fn trailing_zeros_are_equal() {
        assert_eq!(v("1.1"), v("1.1.0"));
        assert_eq!(v("1"), v("1.0.0.0"));
        use std::collections::hash_map::DefaultHasher;
        let h = |x: &Version| {
            let mut s = DefaultHasher::new();
            x.hash(&mut s);
            s.finish()
        };
        assert_eq!(h(&v("1.1")), h(&v("1.1.0")));
        assert!(!v("1.1").is_identical(&v("1.1.0")));
    }

    #[test]
    fn pre_release_post_order() {
        assert!(v("1.0.0-alpha.1") < v("1.0.0"));
        assert!(v("1.0.0") < v("1.0.0+r.1"));
        assert!(v("1.0.0-alpha.1") < v("1.0.0-alpha.2"));
        assert!(v("1.0.0-alpha.9") < v("1.0.0-beta.1"));
        assert!(v("1.0.0+r.1") < v("1.0.1-alpha.1"));
        assert!(v("0.9.9") < v("1.0.0-alpha.1"));
        assert!(v("1.10") > v("1.9"));
    }

    #[test]
    fn parse_and_display_round_trip() {
        for s in [
            "1",
            "1.2.3.4.5",
            "1.0-alpha.1,rc.2",
            "2.0+r.1",
            "1.2-pre.0+post.3",
        ] {
            assert_eq!(v(s).to_string(), s);
        }
        let x = v("1.2.3-rc.2,alpha.1+r.1");
        assert_eq!(x.pre.get("alpha"), Some(1));
        assert_eq!(x.pre.get("rc"), Some(2));
        assert_eq!(x.post.get("r"), Some(1));
        assert_eq!(x.to_string(), "1.2.3-alpha.1,rc.2+r.1");
    }

    #[test]
    fn bad_versions_explain() {
        for bad in [
            "",
            "1..2",
            "a.b",
            "1.2-rc",
            "1.2-RC.1",
            "1.2+r.x",
            "1.2-rc.1,rc.2",
            "v1.0",
        ] {
            let err = bad.parse::<Version>().unwrap_err();
            assert_eq!(err.what, "version", "{bad}");
            assert!(!err.reason.is_empty());
        }
    }
}
