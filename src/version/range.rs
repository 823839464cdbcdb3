//! Version ranges (`^1.2`, `>=1,<2`, `1.*`, bare versions judged by `compat`...).

use std::fmt;
use std::str::FromStr;

use super::{Compat, CompatRule, ParseError, Version};

/// One version constraint.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum VersionRange {
    /// A bare version, judged by the candidate's `compat`; `required` forces `API:`/`Binary:`.
    Compat {
        /// The compatibility kind written in the range, if any.
        required: Option<CompatRule>,
        /// The version asked for.
        base: Version,
    },
    /// `^V`: at least V, below the next change of the first non-zero part.
    Caret(Version),
    /// `~V`: at least V, below the next minor (or major for one-part versions).
    Tilde(Version),
    /// `1.*`, `1.2.*`, `*`: positions given as numbers must match.
    Wildcard(Vec<Option<u32>>),
    /// `>V`.
    GreaterThan(Version),
    /// `>=V`.
    AtLeast(Version),
    /// `<V`.
    LessThan(Version),
    /// `<=V`.
    AtMost(Version),
    /// `=V`: equal under version ordering (`1.1` equals `1.1.0`).
    Equals(Version),
    /// `==V`: written identically, part count and tags included.
    DoubleEquals(Version),
    /// `!=V`: not equal under version ordering.
    NotEquals(Version),
    /// `!==V`: not written identically.
    NotDoubleEquals(Version),
}

impl VersionRange {
    /// True when `version` (of a package with `compat`) is in the range. Bare versions use
    /// `default_rule` unless the range names its own.
    pub fn contains(&self, version: &Version, compat: &Compat, default_rule: CompatRule) -> bool {
        use VersionRange::*;
        match self {
            Compat { required, base } => compat
                .check(base, version, required.unwrap_or(default_rule))
                .is_ok(),
            Caret(base) => version >= base && version.cmp_base(&caret_upper(base)).is_lt(),
            Tilde(base) => version >= base && version.cmp_base(&tilde_upper(base)).is_lt(),
            Wildcard(pattern) => wildcard_matches(pattern, version),
            GreaterThan(b) => version > b,
            AtLeast(b) => version >= b,
            LessThan(b) => version < b,
            AtMost(b) => version <= b,
            Equals(b) => version == b,
            DoubleEquals(b) => version.is_identical(b),
            NotEquals(b) => version != b,
            NotDoubleEquals(b) => !version.is_identical(b),
        }
    }

    /// True when the range names a pre-release version explicitly.
    pub fn mentions_pre_release(&self) -> bool {
        use VersionRange::*;
        match self {
            Compat { base: v, .. }
            | Caret(v)
            | Tilde(v)
            | GreaterThan(v)
            | AtLeast(v)
            | LessThan(v)
            | AtMost(v)
            | Equals(v)
            | DoubleEquals(v) => v.is_pre_release(),
            _ => false,
        }
    }

    /// The version this range is written around, if it names exactly one.
    pub fn base_version(&self) -> Option<&Version> {
        use VersionRange::*;
        match self {
            Compat { base: v, .. }
            | Caret(v)
            | Tilde(v)
            | GreaterThan(v)
            | AtLeast(v)
            | LessThan(v)
            | AtMost(v)
            | Equals(v)
            | DoubleEquals(v)
            | NotEquals(v)
            | NotDoubleEquals(v) => Some(v),
            Wildcard(_) => None,
        }
    }
}

fn bump(base: &Version, index: usize) -> Version {
    let mut parts: Vec<u32> = (0..=index).map(|i| base.part(i)).collect();
    parts[index] = parts[index].saturating_add(1);
    Version::from_parts(parts)
}

fn caret_upper(base: &Version) -> Version {
    let n = base.parts.len().max(1);
    let index = (0..n).find(|&i| base.part(i) != 0).unwrap_or(n - 1);
    bump(base, index)
}

fn tilde_upper(base: &Version) -> Version {
    let n = base.parts.len();
    let index = match n {
        0 | 1 => 0,
        2 | 3 => 1,
        _ => n - 2,
    };
    bump(base, index)
}

fn wildcard_matches(pattern: &[Option<u32>], version: &Version) -> bool {
    let open_ended = matches!(pattern.last(), Some(None));
    for (i, p) in pattern.iter().enumerate() {
        if let Some(p) = p {
            if version.part(i) != *p {
                return false;
            }
        }
    }
    open_ended || (pattern.len()..version.parts.len()).all(|i| version.part(i) == 0)
}

impl fmt::Display for VersionRange {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        use VersionRange::*;
        match self {
            Compat {
                required: Some(r),
                base,
            } => write!(f, "{}:{base}", r.name()),
            Compat {
                required: None,
                base,
            } => write!(f, "{base}"),
            Caret(v) => write!(f, "^{v}"),
            Tilde(v) => write!(f, "~{v}"),
            Wildcard(p) => {
                let s: Vec<String> = p
                    .iter()
                    .map(|x| x.map(|n| n.to_string()).unwrap_or_else(|| "*".into()))
                    .collect();
                f.write_str(&s.join("."))
            }
            GreaterThan(v) => write!(f, ">{v}"),
            AtLeast(v) => write!(f, ">={v}"),
            LessThan(v) => write!(f, "<{v}"),
            AtMost(v) => write!(f, "<={v}"),
            Equals(v) => write!(f, "={v}"),
            DoubleEquals(v) => write!(f, "=={v}"),
            NotEquals(v) => write!(f, "!={v}"),
            NotDoubleEquals(v) => write!(f, "!=={v}"),
        }
    }
}

type MakeRange = fn(Version) -> VersionRange;

impl FromStr for VersionRange {
    type Err = ParseError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let s = s.trim();
        let version = |rest: &str| -> Result<Version, ParseError> {
            rest.trim()
                .parse::<Version>()
                .map_err(|e| ParseError::new("version range", s, e.reason.to_string()))
        };
        use VersionRange::*;
        // Longest operators first.
        let ops: [(&str, MakeRange); 10] = [
            ("!==", NotDoubleEquals),
            ("!=", NotEquals),
            ("==", DoubleEquals),
            (">=", AtLeast),
            ("<=", AtMost),
            ("=", Equals),
            (">", GreaterThan),
            ("<", LessThan),
            ("^", Caret),
            ("~", Tilde),
        ];
        for (op, make) in ops {
            if let Some(rest) = s.strip_prefix(op) {
                return Ok(make(version(rest)?));
            }
        }
        if let Some(rest) = s.strip_prefix("API:") {
            return Ok(Compat {
                required: Some(CompatRule::Api),
                base: version(rest)?,
            });
        }
        if let Some(rest) = s.strip_prefix("Binary:") {
            return Ok(Compat {
                required: Some(CompatRule::Binary),
                base: version(rest)?,
            });
        }
        if s.contains('*') {
            let mut pattern = Vec::new();
            for part in s.split('.') {
                if part == "*" {
                    pattern.push(None);
                } else {
                    let n = part.parse::<u32>().map_err(|_| {
                        ParseError::new(
                            "version range",
                            s,
                            format!("'{part}' must be a number or '*' in a wildcard range such as '1.*'"),
                        )
                    })?;
                    pattern.push(Some(n));
                }
            }
            return Ok(Wildcard(pattern));
        }
        if s.is_empty() {
            return Err(ParseError::new(
                "version range",
                s,
                "the range is empty; write a version or an operator such as '>=1.0'",
            ));
        }
        if s.contains(':') {
            return Err(ParseError::new(
                "version range",
                s,
                "only 'API:' and 'Binary:' may prefix a version",
            ));
        }
        Ok(Compat {
            required: None,
            base: version(s).map_err(|e| {
                ParseError::new(
                    "version range",
                    s,
                    format!(
                        "{}; ranges are a version or one of ^ ~ * > >= < <= = == != !== followed by a version, joined with ','",
                        e.reason
                    ),
                )
            })?,
        })
    }
}

/// An intersection of version ranges (`>=1.0,<2.0`); empty means any version.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash)]
pub struct VersionFilter {
    rules: Vec<VersionRange>,
}

impl VersionFilter {
    /// The filter that accepts every version.
    pub fn any() -> Self {
        Self::default()
    }

    /// A filter of one range.
    pub fn single(rule: VersionRange) -> Self {
        Self { rules: vec![rule] }
    }

    /// True when the filter has no rule (any version).
    pub fn is_any(&self) -> bool {
        self.rules.is_empty()
    }

    /// The ranges that must all hold.
    pub fn rules(&self) -> &[VersionRange] {
        &self.rules
    }

    /// True when every range contains `version` (see [`VersionRange::contains`]).
    pub fn contains(&self, version: &Version, compat: &Compat, default_rule: CompatRule) -> bool {
        self.rules
            .iter()
            .all(|r| r.contains(version, compat, default_rule))
    }

    /// The filter that holds when both `self` and `other` hold.
    pub fn intersection(&self, other: &VersionFilter) -> VersionFilter {
        let mut rules = self.rules.clone();
        for r in &other.rules {
            if !rules.contains(r) {
                rules.push(r.clone());
            }
        }
        VersionFilter { rules }
    }

    /// True when any rule names a pre-release explicitly.
    pub fn mentions_pre_release(&self) -> bool {
        self.rules.iter().any(|r| r.mentions_pre_release())
    }

    /// The single version this filter pins with `=`/`==`, or names as a bare version.
    pub fn pinned_version(&self) -> Option<&Version> {
        match self.rules.as_slice() {
            [VersionRange::Equals(v)]
            | [VersionRange::DoubleEquals(v)]
            | [VersionRange::Compat { base: v, .. }] => Some(v),
            _ => None,
        }
    }
}

impl fmt::Display for VersionFilter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.rules.is_empty() {
            return f.write_str("*");
        }
        let s: Vec<String> = self.rules.iter().map(|r| r.to_string()).collect();
        f.write_str(&s.join(","))
    }
}

impl FromStr for VersionFilter {
    type Err = ParseError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let mut out = VersionFilter::any();
        for part in s.split(',') {
            if part.trim() == "*" {
                continue;
            }
            let rule: VersionRange = part.parse().map_err(|e: ParseError| {
                if s.contains(',') {
                    ParseError::new(
                        "version range",
                        s,
                        format!("in '{}': {}", part.trim(), e.reason),
                    )
                } else {
                    e
                }
            })?;
            out = out.intersection(&VersionFilter::single(rule));
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v(s: &str) -> Version {
        s.parse().unwrap()
    }

    fn has(range: &str, version: &str) -> bool {
        let f: VersionFilter = range.parse().unwrap();
        f.contains(&v(version), &Compat::default(), CompatRule::Binary)
    }

    #[test]
    fn caret_edges() {
        assert!(has("^1.2.3", "1.2.3"));
        assert!(has("^1.2.3", "1.9.0"));
        assert!(!has("^1.2.3", "2.0.0"));
        assert!(
            !has("^1.2.3", "2.0.0-alpha.1"),
            "upper bound excludes its pre-releases"
        );
        assert!(!has("^1.2.3", "1.2.2"));
        assert!(has("^0.2.3", "0.2.9"));
        assert!(!has("^0.2.3", "0.3.0"));
        assert!(has("^0.0.3", "0.0.3"));
        assert!(!has("^0.0.3", "0.0.4"));
        assert!(has("^0", "0.9"));
        assert!(!has("^0", "1.0"));
        assert!(has("^1", "1.99.1"));
        assert!(has("^1.2", "1.2.0+r.1"));
        assert!(!has("^1.2", "1.2.0-rc.1"));
    }

    #[test]
    fn tilde_edges() {
        assert!(has("~1.2.3", "1.2.9"));
        assert!(!has("~1.2.3", "1.3.0"));
        assert!(!has("~1.2.3", "1.2.2"));
        assert!(has("~1.2", "1.2.7"));
        assert!(!has("~1.2", "1.3"));
        assert!(has("~1", "1.9"));
        assert!(!has("~1", "2.0"));
        assert!(has("~1.2.3.4", "1.2.3.9"));
        assert!(!has("~1.2.3.4", "1.2.4.0"));
        assert!(has("~0.0", "0.0.5"));
    }

    #[test]
    fn wildcard_edges() {
        assert!(has("*", "0.0.1-alpha.1"));
        assert!(has("1.*", "1.0"));
        assert!(has("1.*", "1.99.3.2"));
        assert!(!has("1.*", "2.0"));
        assert!(has("1.2.*", "1.2"));
        assert!(!has("1.2.*", "1.3.0"));
        assert!(has("1.*.3", "1.7.3"));
        assert!(!has("1.*.3", "1.7.4"));
        assert!(!has("1.*.3", "1.7.3.1"));
        assert!("1.x".parse::<VersionFilter>().is_err());
    }

    #[test]
    fn comparison_edges() {
        assert!(has(">1.0", "1.0.1"));
        assert!(!has(">1.0", "1.0.0"));
        assert!(has(">1.0", "1.0+r.1"), "post-release is greater");
        assert!(!has(">=1.0", "1.0-rc.1"), "pre-release is lower");
        assert!(has("<1.0", "1.0-rc.1"));
        assert!(has("<=1.0", "1.0.0"));
        assert!(!has("<=1.0", "1.0.0+r.1"));
        assert!(has(">=0", "0.0.0"));
    }

    #[test]
    fn equality_edges() {
        assert!(has("=1.1", "1.1.0"));
        assert!(!has("=1.1", "1.1.1"));
        assert!(!has("=1.1", "1.1+r.1"));
        assert!(!has("==1.1", "1.1.0"));
        assert!(has("==1.1.0", "1.1.0"));
        assert!(has("!=1.1", "1.1.1"));
        assert!(!has("!=1.1", "1.1.0"));
        assert!(has("!==1.1", "1.1.0"));
        assert!(!has("!==1.1.0", "1.1.0"));
    }

    #[test]
    fn compat_ranges_use_candidate_compat() {
        let default = Compat::default();
        let f: VersionFilter = "1.2".parse().unwrap();
        assert!(f.contains(&v("1.2.5"), &default, CompatRule::Binary));
        assert!(!f.contains(&v("1.3.0"), &default, CompatRule::Binary));
        assert!(f.contains(&v("1.3.0"), &default, CompatRule::Api));
        let api: VersionFilter = "API:1.2".parse().unwrap();
        assert!(api.contains(&v("1.3.0"), &default, CompatRule::Binary));
        let bin: VersionFilter = "Binary:1.2".parse().unwrap();
        assert!(!bin.contains(&v("1.3.0"), &default, CompatRule::Api));
        let loose: Compat = "x.ab".parse().unwrap();
        assert!(f.contains(&v("1.3.0"), &loose, CompatRule::Binary));
        assert!(!f.contains(&v("1.1.0"), &loose, CompatRule::Binary));
    }

    #[test]
    fn intersections() {
        assert!(has(">=1.0,<2.0", "1.5"));
        assert!(!has(">=1.0,<2.0", "2.0"));
        assert!(!has(">=1.0,<2.0", "0.9"));
        assert!(!has("^1.0,!=1.5", "1.5.0"));
        let f: VersionFilter = ">=1.0, <2.0".parse().unwrap();
        assert_eq!(f.to_string(), ">=1.0,<2.0");
    }

    #[test]
    fn display_round_trips() {
        for s in [
            "^1.2",
            "~1.2.3",
            "1.*",
            ">1",
            ">=1",
            "<1",
            "<=1",
            "=1",
            "==1",
            "!=1",
            "!==1",
            "API:1.2",
            "Binary:1.2",
            "1.2",
            ">=1,<2",
        ] {
            let f: VersionFilter = s.parse().unwrap();
            assert_eq!(f.to_string(), s);
        }
    }

    #[test]
    fn bad_ranges_explain() {
        for bad in ["", ">=", "^x", "1.2.a", "Foo:1.2", ">=1,<", "=>1.0"] {
            let err = bad.parse::<VersionFilter>().unwrap_err();
            assert_eq!(err.what, "version range", "{bad}");
        }
    }
}
