//! The `build` section: options, variants, script, validation rules and host variables.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

use serde::{Deserialize, Serialize};

use crate::name::{Component, OptName, PkgName};

use super::option::Opt;

/// A bash script, written as one string or a list of lines.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize)]
#[serde(transparent)]
pub struct Script(pub Vec<String>);

impl Script {
    /// The script as one text, lines joined with newlines.
    pub fn text(&self) -> String {
        self.0.join("\n")
    }
}

impl Default for Script {
    fn default() -> Self {
        Script(vec!["sh ./build.sh".into()])
    }
}

impl<'de> Deserialize<'de> for Script {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        crate::spec::de::one_or_many(d).map(Script)
    }
}

/// One entry of `build.variants`: option values, and components for package options
/// written as `"pkg:{comp}": version`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash)]
pub struct Variant {
    /// Option values by name.
    pub options: BTreeMap<OptName, String>,
    /// Extra components requested for package options.
    pub components: BTreeMap<PkgName, BTreeSet<Component>>,
}

impl Variant {
    /// The option map of this variant.
    pub fn option_map(&self) -> crate::option_map::OptionMap {
        self.options
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect()
    }
}

impl Variant {
    fn key_for(&self, k: &OptName) -> String {
        match k
            .as_str()
            .parse::<PkgName>()
            .ok()
            .and_then(|p| self.components.get(&p))
        {
            Some(c) if !c.is_empty() => {
                let c: Vec<&str> = c.iter().map(|c| c.as_str()).collect();
                format!("{k}:{{{}}}", c.join(","))
            }
            _ => k.to_string(),
        }
    }
}

impl fmt::Display for Variant {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let parts: Vec<String> = self
            .options
            .iter()
            .map(|(k, v)| format!("{}: {v}", self.key_for(k)))
            .collect();
        write!(f, "{{{}}}", parts.join(", "))
    }
}

impl<'de> Deserialize<'de> for Variant {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct Val(String);
        impl<'de> Deserialize<'de> for Val {
            fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                crate::spec::de::scalar_string(d).map(Val)
            }
        }
        let raw: BTreeMap<String, Val> = BTreeMap::deserialize(d)?;
        let mut out = Variant::default();
        for (key, Val(value)) in raw {
            let (name, comps) = match key.split_once(':') {
                Some((n, c)) => {
                    let inner = c
                        .strip_prefix('{')
                        .and_then(|c| c.strip_suffix('}'))
                        .unwrap_or(c);
                    let comps = inner
                        .split(',')
                        .map(|c| c.trim().parse::<Component>())
                        .collect::<Result<BTreeSet<_>, _>>()
                        .map_err(|e| serde::de::Error::custom(spfs::error::with_hints(&e)))?;
                    (n, Some(comps))
                }
                None => (key.as_str(), None),
            };
            let opt: OptName = name
                .parse()
                .map_err(|e| serde::de::Error::custom(spfs::error::with_hints(&e)))?;
            if let Some(comps) = comps {
                let pkg: PkgName = name.parse().map_err(|e| {
                    serde::de::Error::custom(format!(
                        "components in a variant need a package name: {e}"
                    ))
                })?;
                out.components.insert(pkg, comps);
            }
            out.options.insert(opt, value);
        }
        Ok(out)
    }
}

impl Serialize for Variant {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        let mut m = s.serialize_map(Some(self.options.len()))?;
        for (k, v) in &self.options {
            let key = self.key_for(k);
            m.serialize_entry(&key, v)?;
        }
        m.end()
    }
}

/// The validators that check a build's output.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub enum ValidationRuleName {
    /// The package must install at least one file.
    EmptyPackage,
    /// Every file written by the build must land in some component.
    CollectAllFiles,
    /// Files that existed before the build must not be modified.
    AlterExistingFiles,
    /// Files that existed before the build must not be captured.
    CollectExistingFiles,
    /// Another version of the same package must not be in the build environment.
    RecursiveBuild,
    /// Strong-inheritance var options need a description.
    StrongInheritanceVarDescription,
    /// Var descriptions must be at most 256 characters.
    LongVarDescription,
    /// Install requirements must include those inherited from build options.
    InheritRequirements,
    /// The license must be an SPDX identifier.
    SpdxLicense,
}

impl ValidationRuleName {
    /// Every rule name, for suggestions.
    pub const ALL: [&'static str; 9] = [
        "EmptyPackage",
        "CollectAllFiles",
        "AlterExistingFiles",
        "CollectExistingFiles",
        "RecursiveBuild",
        "StrongInheritanceVarDescription",
        "LongVarDescription",
        "InheritRequirements",
        "SpdxLicense",
    ];
}

/// One validation rule: allow, deny or require a check.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ValidationRule {
    /// Turn the check off (allow what it would reject).
    Allow(ValidationRuleName),
    /// Turn the check on.
    Deny(ValidationRuleName),
    /// Turn the check on and make it strict.
    Require(ValidationRuleName),
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRule {
    allow: Option<ValidationRuleName>,
    deny: Option<ValidationRuleName>,
    require: Option<ValidationRuleName>,
}

impl<'de> Deserialize<'de> for ValidationRule {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let r = RawRule::deserialize(d)?;
        match (r.allow, r.deny, r.require) {
            (Some(n), None, None) => Ok(ValidationRule::Allow(n)),
            (None, Some(n), None) => Ok(ValidationRule::Deny(n)),
            (None, None, Some(n)) => Ok(ValidationRule::Require(n)),
            _ => Err(serde::de::Error::custom(
                "a validation rule is exactly one of 'allow: Rule', 'deny: Rule' or 'require: Rule'",
            )),
        }
    }
}

impl Serialize for ValidationRule {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        let mut m = s.serialize_map(Some(1))?;
        match self {
            ValidationRule::Allow(n) => m.serialize_entry("allow", n)?,
            ValidationRule::Deny(n) => m.serialize_entry("deny", n)?,
            ValidationRule::Require(n) => m.serialize_entry("require", n)?,
        }
        m.end()
    }
}

/// The `build.validation` section.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ValidationSpec {
    /// Rules in order; later ones win.
    #[serde(default)]
    pub rules: Vec<ValidationRule>,
}

impl ValidationSpec {
    /// Whether a check is on, given its default.
    pub fn is_enabled(&self, name: ValidationRuleName) -> bool {
        let mut on = !matches!(
            name,
            ValidationRuleName::SpdxLicense | ValidationRuleName::CollectAllFiles
        );
        for r in &self.rules {
            match r {
                ValidationRule::Allow(n) if *n == name => on = false,
                // The reference guide disables the description check with `deny`.
                ValidationRule::Deny(n)
                    if *n == name
                        && name == ValidationRuleName::StrongInheritanceVarDescription =>
                {
                    on = false
                }
                ValidationRule::Deny(n) | ValidationRule::Require(n) if *n == name => on = true,
                _ => {}
            }
        }
        on
    }
}

/// Which host variables are added to a build's options automatically.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum AutoHostVars {
    /// `distro`, the distro version, `arch` and `os`.
    #[default]
    Distro,
    /// `arch` and `os`.
    Arch,
    /// `os` only.
    Os,
    /// None.
    None,
}

impl AutoHostVars {
    /// The host option names this setting adds.
    pub fn names(&self, host: &crate::option_map::OptionMap) -> Vec<String> {
        let mut out = Vec::new();
        match self {
            AutoHostVars::None => {}
            AutoHostVars::Os => out.push("os".to_string()),
            AutoHostVars::Arch => out.extend(["os".to_string(), "arch".to_string()]),
            AutoHostVars::Distro => {
                out.extend(["os".to_string(), "arch".to_string(), "distro".to_string()]);
                if let Some(d) = host.get_str("distro") {
                    out.push(d.to_string());
                }
            }
        }
        out
    }
}

/// The `build` section.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BuildSpec {
    /// Build options.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub options: Vec<Opt>,
    /// The default set of variants to build.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub variants: Vec<Variant>,
    /// The build script.
    #[serde(default)]
    pub script: Script,
    /// Validation rules for the build's output.
    #[serde(default, skip_serializing_if = "is_default_validation")]
    pub validation: ValidationSpec,
    /// Which host variables become options (upstream's `auto_host_vars`). Only present when
    /// written, since spec files without it list host vars explicitly.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub auto_host_vars: Option<AutoHostVars>,
}

fn is_default_validation(v: &ValidationSpec) -> bool {
    v.rules.is_empty()
}

/// A test stage.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum TestStage {
    /// Against the source package.
    Sources,
    /// In the build environment.
    Build,
    /// Against the installed package.
    Install,
}

/// One entry of `tests`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TestSpec {
    /// When the test runs.
    pub stage: TestStage,
    /// The test script.
    pub script: Script,
    /// Variants the test applies to; empty means all.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub selectors: Vec<Variant>,
    /// Extra requirements of the test environment.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub requirements: Vec<crate::request::Request>,
}

impl TestSpec {
    /// True when the test runs for a variant with these resolved options.
    pub fn selects(&self, options: &crate::option_map::OptionMap) -> bool {
        self.selectors.is_empty()
            || self.selectors.iter().any(|s| {
                s.options
                    .iter()
                    .all(|(k, v)| options.get(k) == Some(v.as_str()))
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn variants_with_components() {
        let v: Vec<Variant> =
            serde_yaml::from_str("- { gcc: 6.3, debug: off }\n- { \"foo:docs\": \"1.0\" }\n- { \"foo:{docs,examples}\": \"2.0\" }\n")
                .unwrap();
        assert_eq!(v[0].options.len(), 2);
        let foo: PkgName = "foo".parse().unwrap();
        assert_eq!(v[1].components[&foo].len(), 1);
        assert_eq!(v[2].components[&foo].len(), 2);
        assert_eq!(v[2].options.values().next().unwrap(), "2.0");
        let back: Vec<Variant> = serde_yaml::from_str(&serde_yaml::to_string(&v).unwrap()).unwrap();
        assert_eq!(back, v);
    }

    #[test]
    fn script_forms() {
        let s: Script = serde_yaml::from_str("echo hi").unwrap();
        assert_eq!(s.0, ["echo hi"]);
        let s: Script = serde_yaml::from_str("[a, b]").unwrap();
        assert_eq!(s.text(), "a\nb");
    }

    #[test]
    fn validation_rules() {
        let v: ValidationSpec =
            serde_yaml::from_str("rules:\n  - allow: RecursiveBuild\n").unwrap();
        assert!(!v.is_enabled(ValidationRuleName::RecursiveBuild));
        assert!(v.is_enabled(ValidationRuleName::EmptyPackage));
        assert!(v.is_enabled(ValidationRuleName::StrongInheritanceVarDescription));
        let v: ValidationSpec =
            serde_yaml::from_str("rules:\n  - deny: StrongInheritanceVarDescription\n").unwrap();
        assert!(!v.is_enabled(ValidationRuleName::StrongInheritanceVarDescription));
        assert!(serde_yaml::from_str::<ValidationSpec>("rules:\n  - allow: Nope\n").is_err());
        let back: ValidationSpec =
            serde_yaml::from_str(&serde_yaml::to_string(&v).unwrap()).unwrap();
        assert_eq!(back, v);
    }

    #[test]
    fn selectors() {
        let t: TestSpec =
            serde_yaml::from_str("stage: install\nselectors: [{python: 3}]\nscript: pytest\n")
                .unwrap();
        let mut o = crate::option_map::OptionMap::new();
        o.insert("python".parse().unwrap(), "3");
        assert!(t.selects(&o));
        o.insert("python".parse().unwrap(), "3.7");
        assert!(!t.selects(&o), "selectors match values exactly");
    }
}
