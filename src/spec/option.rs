//! Build options: package options (`pkg:`) and variable options (`var:`).

use std::collections::BTreeSet;

use serde::{Deserialize, Serialize};

use crate::name::{Component, OptName, PkgName};
use crate::request::{PkgRequest, PreReleasePolicy};
use crate::version::VersionFilter;

/// How a var option propagates to packages built against this one.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Inheritance {
    /// Only this package's build sees it.
    #[default]
    Weak,
    /// Downstream builds and installs inherit it as `name.var`.
    Strong,
    /// Downstream builds inherit it; installs do not.
    StrongForBuildOnly,
}

/// A variable build option.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct VarOpt {
    /// The option name.
    pub var: OptName,
    /// The value used when none is given.
    pub default: Option<String>,
    /// The allowed values; empty means any.
    pub choices: Vec<String>,
    /// How the option propagates.
    pub inheritance: Inheritance,
    /// What the option controls.
    pub description: Option<String>,
    /// A fixed value (set in a built package's spec).
    pub static_value: Option<String>,
}

/// A package build option: a build dependency.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct PkgOpt {
    /// The package depended on.
    pub pkg: PkgName,
    /// Components of it needed for the build.
    pub components: BTreeSet<Component>,
    /// The default version range.
    pub default: Option<String>,
    /// Whether pre-releases may be used.
    pub prerelease_policy: PreReleasePolicy,
    /// The version resolved at build time (set in a built package's spec).
    pub static_value: Option<String>,
}

/// One entry of `build.options`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Opt {
    /// `var: name[/default]`.
    Var(VarOpt),
    /// `pkg: name[/default]`.
    Pkg(PkgOpt),
}

impl Opt {
    /// The option's name (the package name for package options).
    pub fn name(&self) -> String {
        match self {
            Opt::Var(v) => v.var.to_string(),
            Opt::Pkg(p) => p.pkg.to_string(),
        }
    }

    /// The value this option takes given the user's `given` value, if any.
    pub fn value(&self, given: Option<&str>) -> Option<String> {
        match self {
            Opt::Var(v) => v
                .static_value
                .clone()
                .or_else(|| given.map(str::to_string))
                .or_else(|| v.default.clone()),
            Opt::Pkg(p) => p
                .static_value
                .clone()
                .or_else(|| given.map(str::to_string))
                .or_else(|| p.default.clone()),
        }
    }

    /// Checks a value against the option (choices for vars, a valid range for packages).
    pub fn validate(&self, value: &str) -> Result<(), String> {
        match self {
            Opt::Var(v) => {
                if !v.choices.is_empty() && !v.choices.iter().any(|c| c == value) {
                    return Err(format!(
                        "'{value}' is not a valid value for option '{}'; choose one of: {}",
                        v.var,
                        v.choices.join(", ")
                    ));
                }
                if let Some(s) = &v.static_value {
                    if s != value {
                        return Err(format!(
                            "option '{}' is fixed to '{s}', not '{value}'",
                            v.var
                        ));
                    }
                }
                Ok(())
            }
            Opt::Pkg(p) => value
                .parse::<VersionFilter>()
                .map(|_| ())
                .map_err(|e| format!("option '{}': {e}", p.pkg)),
        }
    }

    /// For package options, the request that a build environment needs for `value`.
    pub fn to_request(&self, value: Option<&str>) -> Option<Result<PkgRequest, String>> {
        let Opt::Pkg(p) = self else { return None };
        let mut req = PkgRequest::new(p.pkg.clone());
        req.components = p.components.clone();
        req.prerelease_policy = p.prerelease_policy;
        if let Some(v) = value.filter(|v| !v.is_empty()) {
            match v.parse() {
                Ok(r) => req.range = r,
                Err(e) => return Some(Err(format!("option '{}': {e}", p.pkg))),
            }
        }
        Some(Ok(req))
    }
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawOpt {
    var: Option<String>,
    pkg: Option<String>,
    #[serde(default, deserialize_with = "crate::spec::de::opt_scalar_string")]
    default: Option<String>,
    #[serde(default, deserialize_with = "crate::spec::de::scalar_list")]
    choices: Vec<String>,
    inheritance: Option<Inheritance>,
    description: Option<String>,
    #[serde(
        rename = "static",
        default,
        deserialize_with = "crate::spec::de::opt_scalar_string"
    )]
    static_value: Option<String>,
    #[serde(rename = "prereleasePolicy")]
    prerelease_policy: Option<PreReleasePolicy>,
}

impl TryFrom<RawOpt> for Opt {
    type Error = String;

    fn try_from(raw: RawOpt) -> Result<Self, String> {
        match (raw.var, raw.pkg) {
            (Some(_), Some(_)) => Err("a build option has either 'var' or 'pkg', not both".into()),
            (None, None) => Err("a build option needs 'var: name' or 'pkg: name'".into()),
            (Some(var), None) => {
                if raw.prerelease_policy.is_some() {
                    return Err("'prereleasePolicy' only applies to 'pkg' options".into());
                }
                let (name, inline) = match var.split_once('/') {
                    Some((n, d)) => (n, Some(d.to_string())),
                    None => (var.as_str(), None),
                };
                if inline.is_some() && raw.default.is_some() {
                    return Err(format!(
                        "'{var}' gives a default inline and in 'default'; keep one"
                    ));
                }
                let var_name: OptName = name
                    .parse()
                    .map_err(|e: crate::name::NameError| spfs::error::with_hints(&e))?;
                let opt = VarOpt {
                    var: var_name,
                    default: inline.or(raw.default),
                    choices: raw.choices,
                    inheritance: raw.inheritance.unwrap_or_default(),
                    description: raw.description,
                    static_value: raw.static_value,
                };
                if let Some(d) = &opt.default {
                    if !opt.choices.is_empty() && !opt.choices.contains(d) {
                        return Err(format!(
                            "default '{d}' of option '{}' is not one of its choices: {}",
                            opt.var,
                            opt.choices.join(", ")
                        ));
                    }
                }
                Ok(Opt::Var(opt))
            }
            (None, Some(pkg)) => {
                if !raw.choices.is_empty() || raw.inheritance.is_some() {
                    return Err("'choices' and 'inheritance' only apply to 'var' options".into());
                }
                let req: PkgRequest = pkg
                    .parse()
                    .map_err(|e: crate::request::RequestError| spfs::error::with_hints(&e))?;
                if req.build.is_some() {
                    return Err(format!("build option '{pkg}' cannot name a build"));
                }
                let inline = (!req.range.is_any()).then(|| req.range.to_string());
                if inline.is_some() && raw.default.is_some() {
                    return Err(format!(
                        "'{pkg}' gives a version inline and in 'default'; keep one"
                    ));
                }
                let default = inline.or(raw.default);
                if let Some(d) = &default {
                    d.parse::<VersionFilter>()
                        .map_err(|e| spfs::error::with_hints(&e))?;
                }
                Ok(Opt::Pkg(PkgOpt {
                    pkg: req.name,
                    components: req.components,
                    default,
                    prerelease_policy: raw.prerelease_policy.unwrap_or_default(),
                    static_value: raw.static_value,
                }))
            }
        }
    }
}

impl<'de> Deserialize<'de> for Opt {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        Opt::try_from(RawOpt::deserialize(d)?).map_err(serde::de::Error::custom)
    }
}

impl Serialize for Opt {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        let mut m = s.serialize_map(None)?;
        match self {
            Opt::Var(v) => {
                m.serialize_entry("var", v.var.as_str())?;
                if let Some(d) = &v.default {
                    m.serialize_entry("default", d)?;
                }
                if !v.choices.is_empty() {
                    m.serialize_entry("choices", &v.choices)?;
                }
                if v.inheritance != Inheritance::Weak {
                    m.serialize_entry("inheritance", &v.inheritance)?;
                }
                if let Some(d) = &v.description {
                    m.serialize_entry("description", d)?;
                }
                if let Some(s) = &v.static_value {
                    m.serialize_entry("static", s)?;
                }
            }
            Opt::Pkg(p) => {
                let mut name = p.pkg.to_string();
                if !p.components.is_empty() {
                    let c: Vec<&str> = p.components.iter().map(|c| c.as_str()).collect();
                    name.push_str(&format!(":{{{}}}", c.join(",")));
                }
                m.serialize_entry("pkg", &name)?;
                if let Some(d) = &p.default {
                    m.serialize_entry("default", d)?;
                }
                if p.prerelease_policy != PreReleasePolicy::ExcludeAll {
                    m.serialize_entry("prereleasePolicy", &p.prerelease_policy)?;
                }
                if let Some(s) = &p.static_value {
                    m.serialize_entry("static", s)?;
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
    fn parse_options() {
        let opts: Vec<Opt> = serde_yaml::from_str(
            "- var: debug/off\n  choices: [on, off]\n- pkg: cmake/3.16\n- pkg: gmp\n  default: 6.2\n- var: cxx\n  choices: [14, 17]\n  default: 17\n",
        )
        .unwrap();
        assert!(matches!(&opts[0], Opt::Var(v) if v.default.as_deref() == Some("off")));
        assert!(matches!(&opts[1], Opt::Pkg(p) if p.default.as_deref() == Some("3.16")));
        assert!(matches!(&opts[2], Opt::Pkg(p) if p.default.as_deref() == Some("6.2")));
        assert!(matches!(&opts[3], Opt::Var(v) if v.choices == ["14", "17"]));
        assert!(opts[0].validate("maybe").is_err());
        assert!(opts[0].validate("on").is_ok());
        assert_eq!(opts[0].value(Some("on")).as_deref(), Some("on"));
        assert_eq!(opts[0].value(None).as_deref(), Some("off"));
    }

    #[test]
    fn option_errors() {
        let err = serde_yaml::from_str::<Vec<Opt>>("- var: debug/maybe\n  choices: [on, off]\n")
            .unwrap_err();
        assert!(err.to_string().contains("not one of its choices"), "{err}");
        let err =
            serde_yaml::from_str::<Vec<Opt>>("- pkg: cmake/3.16\n  choices: [a]\n").unwrap_err();
        assert!(err.to_string().contains("only apply to 'var'"), "{err}");
        let err = serde_yaml::from_str::<Vec<Opt>>("- pkg: cmake/>=x\n").unwrap_err();
        assert!(err.to_string().contains("version range"), "{err}");
    }
}
