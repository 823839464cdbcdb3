//! Package specs: the YAML recipe language, its validation, and built package specs.

mod build;
pub mod de;
mod install;
mod load;
mod option;
mod source;
pub mod template;

pub use build::{
    AutoHostVars, BuildSpec, Script, TestSpec, TestStage, ValidationRule, ValidationRuleName,
    ValidationSpec, Variant,
};
pub use install::{ComponentSpec, EnvOp, FileMatchMode, InstallSpec};
pub use load::{
    load_spec_file, parse_rendered, parse_spec, render_and_parse, suggest, LoadOptions, LoadedSpec,
    SpecError, Warning,
};
pub use option::{Inheritance, Opt, PkgOpt, VarOpt};
pub use source::SourceSpec;

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::str::FromStr;
use std::sync::Arc;

use serde::{Deserialize, Serialize};

use crate::ident::{Build, BuildIdent, VersionIdent};
use crate::name::{serde_via_str, Component, OptName, PkgName};
use crate::option_map::OptionMap;
use crate::request::{PkgRequest, Request, VarRequest};
use crate::version::{Compat, Version};

/// The `pkg:` field: `name/version`, or `name/version/build` in a built package's spec.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct SpecIdent {
    /// Name and version.
    pub ident: VersionIdent,
    /// The build, for built packages.
    pub build: Option<Build>,
}

impl fmt::Display for SpecIdent {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.ident)?;
        if let Some(b) = &self.build {
            write!(f, "/{b}")?;
        }
        Ok(())
    }
}

impl FromStr for SpecIdent {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let any: crate::ident::AnyIdent = s
            .parse()
            .map_err(|e: crate::ident::IdentError| spfs::error::with_hints(&e))?;
        let ident = any
            .version_ident()
            .ok_or_else(|| format!("'pkg: {s}' needs a version, as in 'pkg: {s}/1.0.0'"))?;
        Ok(Self {
            ident,
            build: any.build,
        })
    }
}

serde_via_str!(SpecIdent);

/// Descriptive metadata (`meta:`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Meta {
    /// One-paragraph description.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// Project homepage.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub homepage: Option<String>,
    /// License, ideally an SPDX identifier.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub license: Option<String>,
    /// Arbitrary labels.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub labels: BTreeMap<String, String>,
}

impl Meta {
    fn is_empty(&self) -> bool {
        self == &Meta::default()
    }
}

/// The only spec API this implementation reads.
pub const API_V0_PACKAGE: &str = "v0/package";

fn deserialize_api<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
    let s = String::deserialize(d)?;
    if s != API_V0_PACKAGE {
        return Err(serde::de::Error::custom(format!(
            "api '{s}' is not supported; use 'api: {API_V0_PACKAGE}' (or leave it out)"
        )));
    }
    Ok(Some(s))
}

fn is_default_compat(c: &Compat) -> bool {
    c == &Compat::default()
}

fn is_false(b: &bool) -> bool {
    !*b
}

/// A package spec: a recipe (`pkg: name/version`) or a built package (`pkg: name/version/build`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Spec {
    /// Name, version and (for builds) build id.
    pub pkg: SpecIdent,
    /// The spec format; only `v0/package`.
    #[serde(
        default,
        deserialize_with = "deserialize_api",
        skip_serializing_if = "Option::is_none"
    )]
    pub api: Option<String>,
    /// Descriptive metadata.
    #[serde(default, skip_serializing_if = "Meta::is_empty")]
    pub meta: Meta,
    /// Compatibility between versions.
    #[serde(default, skip_serializing_if = "is_default_compat")]
    pub compat: Compat,
    /// Deprecated packages are only used when asked for by exact build.
    #[serde(default, skip_serializing_if = "is_false")]
    pub deprecated: bool,
    /// Where the sources come from.
    #[serde(default = "SourceSpec::default_list")]
    pub sources: Vec<SourceSpec>,
    /// How to build.
    #[serde(default)]
    pub build: BuildSpec,
    /// What installing it brings.
    #[serde(default)]
    pub install: InstallSpec,
    /// Tests of the package.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tests: Vec<TestSpec>,
}

/// A rule a spec breaks, with a hint of where it is written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    /// What is wrong.
    pub message: String,
    /// How to fix it.
    pub help: Option<String>,
    /// Text near the problem, used to point at a line.
    pub near: Option<String>,
}

impl Problem {
    fn new(message: impl Into<String>, near: Option<&str>) -> Self {
        Self {
            message: message.into(),
            help: None,
            near: near.map(str::to_string),
        }
    }

    fn help(mut self, help: impl Into<String>) -> Self {
        self.help = Some(help.into());
        self
    }
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl Spec {
    /// A minimal recipe for `name/version`.
    pub fn new(ident: VersionIdent) -> Self {
        Spec {
            pkg: SpecIdent { ident, build: None },
            api: Some(API_V0_PACKAGE.into()),
            meta: Meta::default(),
            compat: Compat::default(),
            deprecated: false,
            sources: SourceSpec::default_list(),
            build: BuildSpec::default(),
            install: InstallSpec::default(),
            tests: Vec::new(),
        }
    }

    /// The package name.
    pub fn name(&self) -> &PkgName {
        &self.pkg.ident.name
    }

    /// The package version.
    pub fn version(&self) -> &Version {
        &self.pkg.ident.version
    }

    /// `name/version`.
    pub fn ident(&self) -> &VersionIdent {
        &self.pkg.ident
    }

    /// `name/version/build`, for built packages.
    pub fn build_ident(&self) -> Option<BuildIdent> {
        self.pkg.build.clone().map(|b| self.pkg.ident.to_build(b))
    }

    /// The components, `build` and `run` included.
    pub fn components(&self) -> Vec<ComponentSpec> {
        self.install.components_with_defaults()
    }

    /// The component names, `build` and `run` included.
    pub fn component_names(&self) -> BTreeSet<Component> {
        self.components().into_iter().map(|c| c.name).collect()
    }

    /// Checks the rules that the schema alone cannot express.
    pub fn validate(&self) -> Vec<Problem> {
        let mut out = Vec::new();
        let validation = &self.build.validation;

        // Options: unique names, descriptions.
        let mut seen = BTreeSet::new();
        for opt in &self.build.options {
            let name = opt.name();
            if !seen.insert(name.clone()) {
                out.push(
                    Problem::new(
                        format!("build option '{name}' is declared twice"),
                        Some(&name),
                    )
                    .help("remove one of the two entries"),
                );
            }
            if let Opt::Var(v) = opt {
                if let Some(d) = &v.description {
                    if d.chars().count() > 256
                        && validation.is_enabled(ValidationRuleName::LongVarDescription)
                    {
                        out.push(
                            Problem::new(
                                format!("the description of option '{}' is longer than 256 characters", v.var),
                                Some(v.var.as_str()),
                            )
                            .help("shorten it, or add 'allow: LongVarDescription' to build.validation.rules"),
                        );
                    }
                }
                if v.inheritance != Inheritance::Weak
                    && v.description.as_deref().unwrap_or("").trim().is_empty()
                    && validation.is_enabled(ValidationRuleName::StrongInheritanceVarDescription)
                {
                    out.push(
                        Problem::new(
                            format!("option '{}' has {:?} inheritance but no description", v.var, v.inheritance),
                            Some(v.var.as_str()),
                        )
                        .help("add a 'description', or add 'deny: StrongInheritanceVarDescription' to build.validation.rules"),
                    );
                }
            }
        }

        // Variants: values must be acceptable to the options they set.
        for (i, variant) in self.build.variants.iter().enumerate() {
            for (name, value) in &variant.options {
                let opt = self
                    .build
                    .options
                    .iter()
                    .find(|o| o.name() == name.as_str());
                if let Some(opt) = opt {
                    if let Err(e) = opt.validate(value) {
                        out.push(Problem::new(
                            format!("variant {}: {e}", i + 1),
                            Some(name.as_str()),
                        ));
                    }
                }
            }
        }

        // Components: unique, known `uses`, no `all`.
        let components = self.components();
        let names: BTreeSet<&Component> = components.iter().map(|c| &c.name).collect();
        let mut seen = BTreeSet::new();
        for c in &self.install.components {
            if c.name == Component::All {
                out.push(Problem::new(
                    "'all' is reserved and cannot name a component",
                    Some("all"),
                ));
            }
            if !seen.insert(&c.name) {
                out.push(
                    Problem::new(
                        format!("component '{}' is declared twice", c.name),
                        Some(c.name.as_str()),
                    )
                    .help("merge the two entries"),
                );
            }
            for u in &c.uses {
                if !names.contains(u) {
                    let known: Vec<&str> = names.iter().map(|n| n.as_str()).collect();
                    let mut p = Problem::new(
                        format!(
                            "component '{}' uses '{u}', which is not a component of this package",
                            c.name
                        ),
                        Some(u.as_str()),
                    );
                    p = match suggest(u.as_str(), &known) {
                        Some(s) => p.help(format!("did you mean '{s}'?")),
                        None => p.help(format!("known components: {}", known.join(", "))),
                    };
                    out.push(p);
                }
            }
        }
        if let Err(cycle) = self.component_closure_check() {
            out.push(Problem::new(
                format!("components use each other in a cycle: {cycle}"),
                None,
            ));
        }

        // Embedded packages.
        for e in self.install.embedded.iter().chain(
            self.install
                .components
                .iter()
                .flat_map(|c| c.embedded.iter()),
        ) {
            if e.name() == self.name() {
                out.push(Problem::new(
                    format!("package '{}' cannot embed itself", e.name()),
                    Some(e.name().as_str()),
                ));
            }
            if matches!(&e.pkg.build, Some(b) if *b != Build::Embedded) {
                out.push(Problem::new(
                    format!(
                        "embedded package '{}' can only have the build 'embedded'",
                        e.pkg
                    ),
                    Some(e.name().as_str()),
                ));
            }
        }
        out
    }

    fn component_closure_check(&self) -> Result<(), String> {
        let comps = self.components();
        let by_name: BTreeMap<&Component, &ComponentSpec> =
            comps.iter().map(|c| (&c.name, c)).collect();
        fn visit<'a>(
            c: &'a Component,
            by_name: &BTreeMap<&'a Component, &'a ComponentSpec>,
            stack: &mut Vec<&'a Component>,
        ) -> Result<(), String> {
            if stack.contains(&c) {
                let path: Vec<&str> = stack
                    .iter()
                    .map(|c| c.as_str())
                    .chain([c.as_str()])
                    .collect();
                return Err(path.join(" -> "));
            }
            stack.push(c);
            if let Some(spec) = by_name.get(c) {
                for u in &spec.uses {
                    visit(u, by_name, stack)?;
                }
            }
            stack.pop();
            Ok(())
        }
        for c in by_name.keys() {
            visit(c, &by_name, &mut Vec::new())?;
        }
        Ok(())
    }

    /// The components reached from `requested` through `uses` (`all` expands to every one).
    pub fn resolve_components(&self, requested: &BTreeSet<Component>) -> BTreeSet<Component> {
        let comps = self.components();
        let mut out = BTreeSet::new();
        let mut queue: Vec<Component> = if requested.contains(&Component::All) {
            comps.iter().map(|c| c.name.clone()).collect()
        } else {
            requested.iter().cloned().collect()
        };
        while let Some(c) = queue.pop() {
            if !out.insert(c.clone()) {
                continue;
            }
            if let Some(spec) = comps.iter().find(|s| s.name == c) {
                queue.extend(spec.uses.iter().cloned());
            }
        }
        out
    }

    /// The option values a build of this recipe would use, given the caller's options
    /// (command line, variant and host options). Validates every value.
    pub fn resolve_options(&self, given: &OptionMap) -> Result<OptionMap, Problem> {
        let mut out = OptionMap::new();
        for opt in &self.build.options {
            let name = opt.name();
            let value = opt
                .value(given.value_for(self.name(), &name))
                .unwrap_or_default();
            if !value.is_empty() {
                opt.validate(&value)
                    .map_err(|e| Problem::new(e, Some(&name)))?;
            } else if let Opt::Var(v) = opt {
                if !v.choices.is_empty() {
                    return Err(Problem::new(
                        format!("option '{}' needs a value", v.var),
                        Some(v.var.as_str()),
                    )
                    .help(format!(
                        "pass -o {}=<one of: {}>",
                        v.var,
                        v.choices.join(", ")
                    )));
                }
            }
            let key: OptName = name.parse().map_err(|e: crate::name::NameError| {
                Problem::new(spfs::error::with_hints(&e), None)
            })?;
            out.insert(key, value);
        }
        if let Some(auto) = self.build.auto_host_vars {
            let host = crate::option_map::host_options();
            for name in auto.names(&host) {
                if out.get_str(&name).is_none() {
                    if let (Ok(key), Some(v)) = (
                        name.parse::<OptName>(),
                        given.get_str(&name).or(host.get_str(&name)),
                    ) {
                        out.insert(key, v);
                    }
                }
            }
        }
        Ok(out)
    }

    /// The build ids of the default variants under the given extra options.
    pub fn variant_options(&self, given: &OptionMap) -> Result<Vec<OptionMap>, Problem> {
        if self.build.variants.is_empty() {
            return Ok(vec![self.resolve_options(given)?]);
        }
        self.build
            .variants
            .iter()
            .map(|v| {
                let mut o = given.clone();
                o.extend(&v.option_map());
                self.resolve_options(&o)
            })
            .collect()
    }

    /// The spec of a build of this recipe: options pinned to `options` (from
    /// [`Spec::resolve_options`]), package options and `fromBuildEnv` requirements pinned
    /// to the packages of `build_env`, and strongly inherited options of those packages
    /// added as install requirements.
    pub fn to_build_spec(
        &self,
        options: &OptionMap,
        build_env: &[Arc<Spec>],
    ) -> Result<Spec, Problem> {
        let mut out = self.clone();
        out.pkg.build = Some(Build::Digest(options.digest()));
        // A build is one variant: the list of variants belongs to the recipe.
        out.build.variants.clear();
        let find = |name: &PkgName| build_env.iter().find(|s| s.name() == name);
        for opt in &mut out.build.options {
            let value = options.get_str(&opt.name()).map(str::to_string);
            match opt {
                Opt::Var(v) => v.static_value = value,
                Opt::Pkg(p) => {
                    p.static_value = match find(&p.pkg) {
                        Some(dep) => Some(dep.version().to_string()),
                        None => value.filter(|v| !v.is_empty()),
                    }
                }
            }
        }
        let pin = |r: &Request| -> Result<Request, Problem> {
            match r {
                Request::Pkg(p) if p.needs_pin() => {
                    let dep = find(&p.name).ok_or_else(|| {
                        Problem::new(
                            format!(
                                "'{}' uses fromBuildEnv but is not in the build environment",
                                p.name
                            ),
                            Some(p.name.as_str()),
                        )
                        .help(format!("add 'pkg: {}' to build.options", p.name))
                    })?;
                    p.render_pin(dep.version())
                        .map(Request::Pkg)
                        .map_err(|e| Problem::new(e.to_string(), Some(p.name.as_str())))
                }
                Request::Var(v) if v.pin => {
                    let value = match v.var.namespace() {
                        Some(ns) => {
                            let dep = build_env.iter().find(|s| s.name().as_str() == ns).ok_or_else(|| {
                                Problem::new(
                                    format!("'{}' uses fromBuildEnv but '{ns}' is not in the build environment", v.var),
                                    Some(v.var.as_str()),
                                )
                            })?;
                            dep.option_values()
                                .get_str(v.var.base_name())
                                .unwrap_or_default()
                                .to_string()
                        }
                        None => options
                            .get_str(v.var.as_str())
                            .unwrap_or_default()
                            .to_string(),
                    };
                    Ok(Request::Var(VarRequest {
                        value: Some(value),
                        pin: false,
                        ..v.clone()
                    }))
                }
                other => Ok(other.clone()),
            }
        };
        let present = |r: &Request| match r {
            Request::Pkg(p) if p.needs_pin() && p.if_present_in_build_env => {
                find(&p.name).is_some()
            }
            _ => true,
        };
        out.install.requirements = out
            .install
            .requirements
            .iter()
            .filter(|r| present(r))
            .map(pin)
            .collect::<Result<_, _>>()?;
        for c in &mut out.install.components {
            c.requirements = c
                .requirements
                .iter()
                .filter(|r| present(r))
                .map(pin)
                .collect::<Result<_, _>>()?;
        }
        for dep in build_env {
            for opt in &dep.build.options {
                if let Opt::Var(v) = opt {
                    if v.inheritance == Inheritance::Weak {
                        continue;
                    }
                    let var = v.var.with_namespace(dep.name());
                    let value = dep
                        .option_values()
                        .get_str(v.var.as_str())
                        .unwrap_or_default()
                        .to_string();
                    // Inherited vars join the build's options (with their value) ...
                    if !out.build.options.iter().any(|o| o.name() == var.as_str()) {
                        out.build.options.push(Opt::Var(crate::spec::VarOpt {
                            var: var.clone(),
                            default: None,
                            choices: Vec::new(),
                            inheritance: Inheritance::Weak,
                            description: v.description.clone(),
                            static_value: Some(value.clone()),
                        }));
                    }
                    // ... and, when strong, its install requirements.
                    if v.inheritance == Inheritance::Strong
                        && !out
                            .install
                            .requirements
                            .iter()
                            .any(|r| matches!(r, Request::Var(x) if x.var == var))
                    {
                        out.install.requirements.push(Request::Var(VarRequest {
                            var,
                            value: Some(value),
                            pin: false,
                            description: v.description.clone(),
                        }));
                    }
                }
            }
        }
        Ok(out)
    }

    /// The option values of a built package (its options' static values).
    pub fn option_values(&self) -> OptionMap {
        let mut out = OptionMap::new();
        for opt in &self.build.options {
            if let (Ok(k), Some(v)) = (opt.name().parse::<OptName>(), opt.value(None)) {
                out.insert(k, v);
            }
        }
        out
    }

    /// Install requirements that apply when `components` are used: the install-level ones
    /// plus those of each component (a component's request for a package replaces the
    /// install-level request for it).
    pub fn requirements_for(&self, components: &BTreeSet<Component>) -> Vec<Request> {
        let mut out: Vec<Request> = self.install.requirements.clone();
        for c in self.components() {
            if !components.contains(&c.name) {
                continue;
            }
            for r in c.requirements {
                if let Request::Pkg(p) = &r {
                    out.retain(|x| !matches!(x, Request::Pkg(y) if y.name == p.name && y.include == p.include));
                }
                if !out.contains(&r) {
                    out.push(r);
                }
            }
        }
        out
    }

    /// Package requests of the build options (the build environment) under `options`.
    pub fn build_requests(&self, options: &OptionMap) -> Result<Vec<PkgRequest>, Problem> {
        self.build
            .options
            .iter()
            .filter_map(|o| o.to_request(options.get_str(&o.name())))
            .map(|r| r.map_err(|e| Problem::new(e, None)))
            .collect()
    }

    /// The spec as YAML text.
    pub fn to_yaml(&self) -> String {
        serde_yaml::to_string(self).expect("specs always serialize")
    }
}

#[cfg(test)]
mod tests;
