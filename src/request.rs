//! Requests for packages and option values: `name[:comp|:{a,b}][/range[/build]]`, `pkg.var/value`.

use std::collections::BTreeSet;
use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::ident::Build;
use crate::name::{Component, OptName, PkgName};
use crate::version::{Compat, CompatRule, Version, VersionFilter};

/// A request that could not be parsed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid request '{}': {}", crate::text::quote(.input), crate::text::cap_message(spfs::error::split_hint(.reason).0))]
pub struct RequestError {
    /// The offending text.
    pub input: String,
    /// Why, and what to write instead.
    pub reason: String,
}

impl spfs::Help for RequestError {
    fn help(&self) -> Vec<String> {
        let hint = spfs::error::split_hint(&self.reason).1;
        vec![hint
            .unwrap_or("write requests as name[:component][/range[/build]] or pkg.var/value")
            .to_string()]
    }
}

/// Whether pre-release versions may satisfy a request.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum PreReleasePolicy {
    /// Pre-releases are excluded unless the range names one explicitly.
    #[default]
    ExcludeAll,
    /// Pre-releases are candidates like any other version.
    IncludeAll,
}

/// When a request adds its package to an environment.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Inclusion {
    /// The package is always added.
    #[default]
    Always,
    /// The request only constrains the package if something else brings it in.
    IfAlreadyPresent,
}

/// A request for a package.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct PkgRequest {
    /// The package asked for.
    pub name: PkgName,
    /// The components asked for; empty means the default (`run`).
    pub components: BTreeSet<Component>,
    /// The acceptable versions.
    pub range: VersionFilter,
    /// An exact build, when asked for.
    pub build: Option<Build>,
    /// Whether the package is added or only constrained.
    pub include: Inclusion,
    /// Whether pre-releases may be used.
    pub prerelease_policy: PreReleasePolicy,
    /// `fromBuildEnv`: a pin template (`Binary`, `API`, `x.x`, `true`) filled in at build time.
    pub pin: Option<String>,
    /// `ifPresentInBuildEnv: true`: a pin whose package is absent from the build
    /// environment drops the requirement instead of failing the build.
    pub if_present_in_build_env: bool,
    /// Free-form description.
    pub description: Option<String>,
}

impl PkgRequest {
    /// A request for any version of `name`.
    pub fn new(name: PkgName) -> Self {
        Self {
            name,
            components: BTreeSet::new(),
            range: VersionFilter::any(),
            build: None,
            include: Inclusion::Always,
            prerelease_policy: PreReleasePolicy::ExcludeAll,
            pin: None,
            if_present_in_build_env: false,
            description: None,
        }
    }

    /// The requested components, or `run` when none were named.
    pub fn components_or_default(&self) -> BTreeSet<Component> {
        if self.components.is_empty() {
            [Component::Run].into_iter().collect()
        } else {
            self.components.clone()
        }
    }

    /// True when a version is allowed under this request's range and pre-release policy.
    pub fn allows_version(
        &self,
        version: &Version,
        compat: &Compat,
        default_rule: CompatRule,
    ) -> bool {
        if version.is_pre_release()
            && self.prerelease_policy == PreReleasePolicy::ExcludeAll
            && !self.range.mentions_pre_release()
        {
            return false;
        }
        self.range.contains(version, compat, default_rule)
    }

    /// True when the `fromBuildEnv` pin still needs a build environment to be filled in.
    pub fn needs_pin(&self) -> bool {
        self.pin.is_some() && self.range.is_any()
    }

    /// Fills in the `fromBuildEnv` pin from the version found in the build environment.
    pub fn render_pin(&self, version: &Version) -> Result<PkgRequest, RequestError> {
        let Some(pin) = &self.pin else {
            return Ok(self.clone());
        };
        let text = render_pin_template(pin, version);
        let range = text.parse::<VersionFilter>().map_err(|e| RequestError {
            input: format!("{}/{text}", self.name),
            reason: format!("fromBuildEnv '{pin}' gave an invalid range: {}", e.reason),
        })?;
        let mut out = self.clone();
        out.range = range;
        out.pin = None;
        Ok(out)
    }

    /// The request text without the build (`name:{a,b}/range`).
    pub fn to_short_string(&self) -> String {
        let mut s = self.name.to_string();
        match self.components.len() {
            0 => {}
            1 => s.push_str(&format!(":{}", self.components.iter().next().unwrap())),
            _ => {
                let c: Vec<&str> = self.components.iter().map(|c| c.as_str()).collect();
                s.push_str(&format!(":{{{}}}", c.join(",")));
            }
        }
        if !self.range.is_any() || self.build.is_some() {
            s.push_str(&format!("/{}", self.range));
        }
        s
    }
}

/// Expands a pin template against a version: `x.x` keeps two parts, `Binary`/`API`
/// (and `true`, meaning `Binary`) keep the whole version with that compatibility.
pub fn render_pin_template(pin: &str, version: &Version) -> String {
    match pin {
        "true" | "Binary" => format!("Binary:{version}"),
        "API" => format!("API:{version}"),
        _ => {
            let mut out = String::new();
            let mut index = 0;
            for c in pin.chars() {
                if c == 'x' {
                    out.push_str(&version.part(index).to_string());
                    index += 1;
                } else {
                    out.push(c);
                }
            }
            out
        }
    }
}

impl fmt::Display for PkgRequest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_short_string())?;
        if let Some(b) = &self.build {
            write!(f, "/{b}")?;
        }
        Ok(())
    }
}

fn parse_components(text: &str, input: &str) -> Result<BTreeSet<Component>, RequestError> {
    let inner = match text.strip_prefix('{') {
        Some(rest) => rest.strip_suffix('}').ok_or_else(|| RequestError {
            input: input.to_string(),
            reason: "a component list must be closed with '}', as in 'name:{run,docs}'".into(),
        })?,
        None => text,
    };
    inner
        .split(',')
        .map(|c| {
            c.trim().parse::<Component>().map_err(|e| RequestError {
                input: input.to_string(),
                reason: spfs::error::with_hints(&e),
            })
        })
        .collect()
}

impl FromStr for PkgRequest {
    type Err = RequestError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let err = |reason: String| RequestError {
            input: s.to_string(),
            reason,
        };
        let s = s.trim();
        let (head, rest) = match s.split_once('/') {
            Some((h, r)) => (h, Some(r)),
            None => (s, None),
        };
        let (name, components) = match head.split_once(':') {
            Some((n, c)) => (n, parse_components(c, s)?),
            None => (head, BTreeSet::new()),
        };
        let name: PkgName = name
            .parse()
            .map_err(|e: crate::name::NameError| err(spfs::error::with_hints(&e)))?;
        let mut req = PkgRequest::new(name);
        req.components = components;
        if let Some(rest) = rest {
            let (range, build) = match rest.split_once('/') {
                Some((r, b)) => (r, Some(b)),
                None => (rest, None),
            };
            req.range = range
                .parse()
                .map_err(|e: crate::version::ParseError| err(spfs::error::with_hints(&e)))?;
            if let Some(b) = build {
                req.build = Some(
                    b.parse()
                        .map_err(|e: crate::ident::IdentError| err(e.reason))?,
                );
            }
        }
        Ok(req)
    }
}

/// A request for a build option value: `abi/cp37` (any package) or `python.abi/cp37`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct VarRequest {
    /// The option, optionally namespaced by a package.
    pub var: OptName,
    /// The required value; `None` until a `fromBuildEnv` pin is filled in.
    pub value: Option<String>,
    /// `fromBuildEnv: true`: the value comes from the build environment.
    pub pin: bool,
    /// Free-form description.
    pub description: Option<String>,
}

impl fmt::Display for VarRequest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.value {
            Some(v) => write!(f, "{}/{v}", self.var),
            None => write!(f, "{}", self.var),
        }
    }
}

impl FromStr for VarRequest {
    type Err = RequestError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let (name, value) = match s.split_once('/') {
            Some((n, v)) => (n, Some(v.to_string())),
            None => (s, None),
        };
        if let Some(v) = &value {
            let reason = if v.is_empty() {
                Some("the value after '/' is empty; write name/value, as in 'python.abi/cp37'")
            } else if v.contains('/') {
                Some(
                    "an option value cannot contain '/'; write name/value, as in 'python.abi/cp37'",
                )
            } else if v.chars().any(char::is_control) {
                Some("an option value cannot contain control characters")
            } else {
                None
            };
            if let Some(reason) = reason {
                return Err(RequestError {
                    input: s.to_string(),
                    reason: reason.into(),
                });
            }
        }
        let var: OptName = name
            .parse()
            .map_err(|e: crate::name::NameError| RequestError {
                input: s.to_string(),
                reason: spfs::error::with_hints(&e),
            })?;
        Ok(Self {
            var,
            value,
            pin: false,
            description: None,
        })
    }
}

/// A package request or an option request.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Request {
    /// A package request.
    Pkg(PkgRequest),
    /// An option request.
    Var(VarRequest),
}

impl Request {
    /// Parses a command-line request: `pkg.var/value` is an option request, anything else
    /// a package request.
    pub fn parse_cli(s: &str) -> Result<Request, RequestError> {
        let head = s.split('/').next().unwrap_or_default();
        if head.contains('.') && !head.contains(':') {
            let v: VarRequest = s.parse()?;
            if v.value.is_none() {
                return Err(RequestError {
                    input: s.to_string(),
                    reason: "an option request needs a value, as in 'python.abi/cp37'".into(),
                });
            }
            return Ok(Request::Var(v));
        }
        Ok(Request::Pkg(s.parse()?))
    }
}

impl fmt::Display for Request {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Request::Pkg(p) => write!(f, "{p}"),
            Request::Var(v) => write!(f, "var {v}"),
        }
    }
}

/// The YAML form of a request (`{pkg: ...}` or `{var: ...}` with their options).
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRequest {
    pkg: Option<String>,
    var: Option<String>,
    #[serde(default, deserialize_with = "crate::spec::de::opt_scalar_string")]
    value: Option<String>,
    #[serde(
        default,
        rename = "fromBuildEnv",
        deserialize_with = "crate::spec::de::string_or_bool"
    )]
    from_build_env: Option<String>,
    include: Option<Inclusion>,
    #[serde(rename = "prereleasePolicy")]
    prerelease_policy: Option<PreReleasePolicy>,
    #[serde(default, rename = "ifPresentInBuildEnv")]
    if_present_in_build_env: bool,
    description: Option<String>,
}

impl TryFrom<RawRequest> for Request {
    type Error = String;

    fn try_from(raw: RawRequest) -> Result<Self, String> {
        match (raw.pkg, raw.var) {
            (Some(_), Some(_)) => Err("a requirement has either 'pkg' or 'var', not both".into()),
            (None, None) => {
                Err("a requirement needs 'pkg: name/range' or 'var: name/value'".into())
            }
            (Some(pkg), None) => {
                if raw.value.is_some() {
                    return Err("'value' only applies to 'var' requirements".into());
                }
                let mut req: PkgRequest = pkg
                    .parse()
                    .map_err(|e: RequestError| spfs::error::with_hints(&e))?;
                req.include = raw.include.unwrap_or_default();
                req.prerelease_policy = raw.prerelease_policy.unwrap_or_default();
                req.description = raw.description;
                if let Some(pin) = raw.from_build_env {
                    if !req.range.is_any() {
                        return Err(format!(
                            "'{pkg}' has both a version range and fromBuildEnv; remove one of them"
                        ));
                    }
                    if !matches!(pin.as_str(), "true" | "Binary" | "API")
                        && !pin.chars().all(|c| "x.~^=<>!*".contains(c))
                    {
                        return Err(format!(
                            "fromBuildEnv '{pin}' must be true, 'Binary', 'API' or a template of 'x' parts such as 'x.x'"
                        ));
                    }
                    req.pin = Some(pin);
                }
                if raw.if_present_in_build_env && req.pin.is_none() {
                    return Err(format!(
                        "'{pkg}' has ifPresentInBuildEnv without fromBuildEnv; add 'fromBuildEnv: x.x' or remove it"
                    ));
                }
                req.if_present_in_build_env = raw.if_present_in_build_env;
                Ok(Request::Pkg(req))
            }
            (None, Some(var)) => {
                if raw.if_present_in_build_env {
                    return Err("'ifPresentInBuildEnv' only applies to 'pkg' requirements".into());
                }
                if raw.include.is_some() || raw.prerelease_policy.is_some() {
                    return Err(
                        "'include' and 'prereleasePolicy' only apply to 'pkg' requirements".into(),
                    );
                }
                let mut req: VarRequest = var
                    .parse()
                    .map_err(|e: RequestError| spfs::error::with_hints(&e))?;
                if let Some(v) = raw.value {
                    if req.value.is_some() {
                        return Err(format!("'{var}' already has a value; remove 'value'"));
                    }
                    req.value = Some(v);
                }
                req.description = raw.description;
                match raw.from_build_env.as_deref() {
                    Some("true") => {
                        if req.value.is_some() {
                            return Err(format!(
                                "'{var}' has both a value and fromBuildEnv; remove one of them"
                            ));
                        }
                        req.pin = true;
                    }
                    Some(other) => {
                        return Err(format!(
                            "fromBuildEnv for a var requirement must be true, not '{other}'"
                        ))
                    }
                    None => {
                        if req.value.is_none() {
                            return Err(format!(
                                "var requirement '{var}' needs a value ('{var}/value') or 'fromBuildEnv: true'"
                            ));
                        }
                    }
                }
                Ok(Request::Var(req))
            }
        }
    }
}

impl<'de> Deserialize<'de> for Request {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let raw = RawRequest::deserialize(d)?;
        Request::try_from(raw).map_err(serde::de::Error::custom)
    }
}

impl Serialize for Request {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        let mut m = s.serialize_map(None)?;
        match self {
            Request::Pkg(p) => {
                m.serialize_entry("pkg", &p.to_string())?;
                if let Some(pin) = &p.pin {
                    if pin == "true" {
                        m.serialize_entry("fromBuildEnv", &true)?;
                    } else {
                        m.serialize_entry("fromBuildEnv", pin)?;
                    }
                }
                if p.if_present_in_build_env {
                    m.serialize_entry("ifPresentInBuildEnv", &true)?;
                }
                if p.include != Inclusion::Always {
                    m.serialize_entry("include", &p.include)?;
                }
                if p.prerelease_policy != PreReleasePolicy::ExcludeAll {
                    m.serialize_entry("prereleasePolicy", &p.prerelease_policy)?;
                }
                if let Some(d) = &p.description {
                    m.serialize_entry("description", d)?;
                }
            }
            Request::Var(v) => {
                m.serialize_entry("var", &v.to_string())?;
                if v.pin {
                    m.serialize_entry("fromBuildEnv", &true)?;
                }
                if let Some(d) = &v.description {
                    m.serialize_entry("description", d)?;
                }
            }
        }
        m.end()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse_request_strings() {
        let r: PkgRequest = "python".parse().unwrap();
        assert!(r.range.is_any());
        assert_eq!(
            r.components_or_default(),
            [Component::Run].into_iter().collect()
        );
        let r: PkgRequest = "python:build/3.7".parse().unwrap();
        assert_eq!(r.components, [Component::Build].into_iter().collect());
        assert_eq!(r.range.to_string(), "3.7");
        let r: PkgRequest = "python:{run,docs}/>=3,<4/ABCDEFGH".parse().unwrap();
        assert_eq!(r.components.len(), 2);
        assert_eq!(r.build, Some(Build::Digest("ABCDEFGH".into())));
        assert_eq!(r.to_string(), "python:{run,docs}/>=3,<4/ABCDEFGH");
        assert!("python:{run/3".parse::<PkgRequest>().is_err());
        assert!("Python/3".parse::<PkgRequest>().is_err());
        assert!("python/3/nope".parse::<PkgRequest>().is_err());
        assert!("python/".parse::<PkgRequest>().is_err());
    }

    #[test]
    fn cli_var_requests() {
        match Request::parse_cli("python.abi/cp37").unwrap() {
            Request::Var(v) => {
                assert_eq!(v.var.as_str(), "python.abi");
                assert_eq!(v.value.as_deref(), Some("cp37"));
            }
            other => panic!("expected var request, got {other:?}"),
        }
        assert!(matches!(
            Request::parse_cli("python/3.7").unwrap(),
            Request::Pkg(_)
        ));
        assert!(Request::parse_cli("python.abi").is_err());
    }

    #[test]
    fn malformed_var_requests_are_errors() {
        for bad in [
            "python.abi/",
            "python.abi/cp37m/extra",
            "python.abi/a\tb",
            ".abi/x",
        ] {
            let err = Request::parse_cli(bad).unwrap_err();
            assert_eq!(err.input, bad);
        }
        let err = Request::parse_cli("python.abi/").unwrap_err();
        assert!(err.reason.contains("empty"), "{err}");
        let err = Request::parse_cli("python.abi/cp37m/extra").unwrap_err();
        assert!(err.reason.contains("cannot contain '/'"), "{err}");
        let err = serde_yaml::from_str::<Vec<Request>>("- var: debug/\n").unwrap_err();
        assert!(err.to_string().contains("empty"), "{err}");
    }

    #[test]
    fn pins() {
        let v: Version = "3.7.3".parse().unwrap();
        assert_eq!(render_pin_template("x.x", &v), "3.7");
        assert_eq!(render_pin_template("~x.x", &v), "~3.7");
        assert_eq!(render_pin_template("x.x.x.x", &v), "3.7.3.0");
        assert_eq!(render_pin_template("Binary", &v), "Binary:3.7.3");
        assert_eq!(render_pin_template("true", &v), "Binary:3.7.3");
        let mut r = PkgRequest::new("python".parse().unwrap());
        r.pin = Some("x.x".into());
        assert!(r.needs_pin());
        let pinned = r.render_pin(&v).unwrap();
        assert_eq!(pinned.range.to_string(), "3.7");
        assert!(!pinned.needs_pin());
    }

    #[test]
    fn yaml_requests() {
        let r: Vec<Request> = serde_yaml::from_str(
            "- pkg: python/2.7\n  include: IfAlreadyPresent\n- var: python.abi\n  fromBuildEnv: true\n- var: debug/off\n- pkg: gcc\n  fromBuildEnv: x.x\n",
        )
        .unwrap();
        match &r[0] {
            Request::Pkg(p) => assert_eq!(p.include, Inclusion::IfAlreadyPresent),
            _ => panic!("expected pkg"),
        }
        assert!(matches!(&r[1], Request::Var(v) if v.pin && v.value.is_none()));
        assert!(matches!(&r[2], Request::Var(v) if v.value.as_deref() == Some("off")));
        assert!(matches!(&r[3], Request::Pkg(p) if p.pin.as_deref() == Some("x.x")));
        let err = serde_yaml::from_str::<Vec<Request>>("- pkg: a\n  var: b/1\n").unwrap_err();
        assert!(err.to_string().contains("not both"), "{err}");
        let err = serde_yaml::from_str::<Vec<Request>>("- var: b\n").unwrap_err();
        assert!(err.to_string().contains("needs a value"), "{err}");
        let back = serde_yaml::to_string(&r).unwrap();
        let again: Vec<Request> = serde_yaml::from_str(&back).unwrap();
        assert_eq!(again, r);
    }
}
