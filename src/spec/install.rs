//! The `install` section: requirements, environment, components and embedded packages.

use serde::{Deserialize, Serialize};

use crate::name::Component;
use crate::request::Request;

use super::Spec;

/// How a package changes the environment when it is active.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum EnvOp {
    /// `set: NAME, value: V`.
    Set {
        /// Variable name.
        var: String,
        /// Value.
        value: String,
    },
    /// `append: NAME, value: V, separator: ':'`.
    Append {
        /// Variable name.
        var: String,
        /// Value.
        value: String,
        /// Separator; `:` (or `;` on Windows) when not given.
        separator: Option<String>,
    },
    /// `prepend: NAME, value: V, separator: ':'`.
    Prepend {
        /// Variable name.
        var: String,
        /// Value.
        value: String,
        /// Separator; `:` when not given.
        separator: Option<String>,
    },
    /// `comment: text` written into the activation scripts.
    Comment(String),
    /// `priority: N`: the activation scripts' sort prefix.
    Priority(u8),
}

impl EnvOp {
    /// The separator used by append/prepend.
    pub fn separator(&self) -> &str {
        match self {
            EnvOp::Append { separator, .. } | EnvOp::Prepend { separator, .. } => {
                separator.as_deref().unwrap_or(":")
            }
            _ => "",
        }
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawEnvOp {
    set: Option<String>,
    append: Option<String>,
    prepend: Option<String>,
    #[serde(default, deserialize_with = "crate::spec::de::opt_scalar_string")]
    comment: Option<String>,
    priority: Option<u8>,
    #[serde(default, deserialize_with = "crate::spec::de::opt_scalar_string")]
    value: Option<String>,
    separator: Option<String>,
}

impl TryFrom<RawEnvOp> for EnvOp {
    type Error = String;

    fn try_from(r: RawEnvOp) -> Result<Self, String> {
        let n = [
            r.set.is_some(),
            r.append.is_some(),
            r.prepend.is_some(),
            r.comment.is_some(),
            r.priority.is_some(),
        ]
        .iter()
        .filter(|x| **x)
        .count();
        if n != 1 {
            return Err("an environment entry needs exactly one of 'set', 'append', 'prepend', 'comment' or 'priority'".into());
        }
        let check_var = |v: &str| -> Result<(), String> {
            if v.is_empty()
                || !v.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
                || v.starts_with(|c: char| c.is_ascii_digit())
            {
                return Err(format!("'{v}' is not a valid environment variable name"));
            }
            Ok(())
        };
        let need_value = |op: &str, v: &str| {
            r.value
                .clone()
                .ok_or_else(|| format!("'{op}: {v}' needs a 'value'"))
        };
        if r.separator.is_some() && r.append.is_none() && r.prepend.is_none() {
            return Err("'separator' only applies to 'append' and 'prepend'".into());
        }
        if let Some(var) = &r.set {
            check_var(var)?;
            return Ok(EnvOp::Set {
                var: var.clone(),
                value: need_value("set", var)?,
            });
        }
        if let Some(var) = &r.append {
            check_var(var)?;
            return Ok(EnvOp::Append {
                var: var.clone(),
                value: need_value("append", var)?,
                separator: r.separator.clone(),
            });
        }
        if let Some(var) = &r.prepend {
            check_var(var)?;
            return Ok(EnvOp::Prepend {
                var: var.clone(),
                value: need_value("prepend", var)?,
                separator: r.separator.clone(),
            });
        }
        if r.value.is_some() {
            return Err("'value' only applies to 'set', 'append' and 'prepend'".into());
        }
        if let Some(c) = r.comment {
            return Ok(EnvOp::Comment(c));
        }
        Ok(EnvOp::Priority(r.priority.expect("one op is present")))
    }
}

impl<'de> Deserialize<'de> for EnvOp {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        EnvOp::try_from(RawEnvOp::deserialize(d)?).map_err(serde::de::Error::custom)
    }
}

impl Serialize for EnvOp {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        let mut m = s.serialize_map(None)?;
        match self {
            EnvOp::Set { var, value } => {
                m.serialize_entry("set", var)?;
                m.serialize_entry("value", value)?;
            }
            EnvOp::Append {
                var,
                value,
                separator,
            }
            | EnvOp::Prepend {
                var,
                value,
                separator,
            } => {
                let key = if matches!(self, EnvOp::Append { .. }) {
                    "append"
                } else {
                    "prepend"
                };
                m.serialize_entry(key, var)?;
                m.serialize_entry("value", value)?;
                if let Some(sep) = separator {
                    m.serialize_entry("separator", sep)?;
                }
            }
            EnvOp::Comment(c) => m.serialize_entry("comment", c)?,
            EnvOp::Priority(p) => m.serialize_entry("priority", p)?,
        }
        m.end()
    }
}

/// One entry of `install.components`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ComponentSpec {
    /// The component name.
    pub name: Component,
    /// gitignore-style patterns of the files it holds.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub files: Vec<String>,
    /// Other components of this package it brings in.
    #[serde(
        default,
        deserialize_with = "deserialize_uses",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub uses: Vec<Component>,
    /// Requirements added when this component is used.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub requirements: Vec<Request>,
    /// Packages embedded when this component is used.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub embedded: Vec<Spec>,
    /// Whether the patterns may take files an earlier component already took.
    #[serde(default, skip_serializing_if = "FileMatchMode::is_all")]
    pub file_match_mode: FileMatchMode,
}

/// How a component's `files` patterns share files with earlier components.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub enum FileMatchMode {
    /// Every matching file, whether or not another component has it too.
    #[default]
    All,
    /// Only matching files that no earlier component took.
    Remaining,
}

impl FileMatchMode {
    fn is_all(&self) -> bool {
        *self == FileMatchMode::All
    }
}

impl ComponentSpec {
    /// A component that holds every file.
    pub fn all_files(name: Component) -> Self {
        Self {
            name,
            files: vec!["*".into()],
            uses: Vec::new(),
            requirements: Vec::new(),
            embedded: Vec::new(),
            file_match_mode: FileMatchMode::All,
        }
    }
}

fn deserialize_uses<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Vec<Component>, D::Error> {
    crate::spec::de::one_or_many(d)?
        .into_iter()
        .map(|s| s.parse::<Component>().map_err(serde::de::Error::custom))
        .collect()
}

/// The `install` section.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct InstallSpec {
    /// Packages and option values required at run time.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub requirements: Vec<Request>,
    /// Environment changes applied when active.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub environment: Vec<EnvOp>,
    /// Components; `build` and `run` are always present.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub components: Vec<ComponentSpec>,
    /// Packages bundled inside this one.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub embedded: Vec<Spec>,
}

impl InstallSpec {
    /// The components with `build` and `run` added when missing.
    pub fn components_with_defaults(&self) -> Vec<ComponentSpec> {
        let mut out = self.components.clone();
        for c in [Component::Build, Component::Run] {
            if !out.iter().any(|x| x.name == c) {
                out.push(ComponentSpec::all_files(c));
            }
        }
        out
    }

    /// The activation script priority (`priority:` op), 50 when not given.
    pub fn priority(&self) -> u8 {
        self.environment
            .iter()
            .rev()
            .find_map(|op| match op {
                EnvOp::Priority(p) => Some(*p),
                _ => None,
            })
            .unwrap_or(50)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn env_ops() {
        let ops: Vec<EnvOp> = serde_yaml::from_str(
            "- priority: 99\n- comment: START\n- set: A\n  value: 1\n- append: PATH\n  value: /spfs/bin\n- prepend: LIST\n  value: x\n  separator: ';'\n",
        )
        .unwrap();
        assert_eq!(ops[0], EnvOp::Priority(99));
        assert!(matches!(&ops[2], EnvOp::Set { value, .. } if value == "1"));
        assert_eq!(ops[3].separator(), ":");
        assert_eq!(ops[4].separator(), ";");
        let install = InstallSpec {
            environment: ops.clone(),
            ..Default::default()
        };
        assert_eq!(install.priority(), 99);
        let back: Vec<EnvOp> = serde_yaml::from_str(&serde_yaml::to_string(&ops).unwrap()).unwrap();
        assert_eq!(back, ops);
        let e = serde_yaml::from_str::<Vec<EnvOp>>("- set: A\n").unwrap_err();
        assert!(e.to_string().contains("needs a 'value'"), "{e}");
        let e = serde_yaml::from_str::<Vec<EnvOp>>("- set: A B\n  value: 1\n").unwrap_err();
        assert!(
            e.to_string().contains("not a valid environment variable"),
            "{e}"
        );
    }

    #[test]
    fn components_default_and_uses() {
        let c: Vec<ComponentSpec> = serde_yaml::from_str(
            "- name: lib\n  files: [lib/*.so]\n- name: bin\n  uses: lib\n- name: run\n  uses: [lib, bin]\n",
        )
        .unwrap();
        assert_eq!(c[1].uses, vec![Component::Named("lib".into())]);
        let install = InstallSpec {
            components: c,
            ..Default::default()
        };
        let all = install.components_with_defaults();
        assert_eq!(all.len(), 4);
        assert!(all
            .iter()
            .any(|x| x.name == Component::Build && x.files == ["*"]));
    }
}
