//! Where a package's sources come from: local paths, git, tar archives and scripts.

use serde::{Deserialize, Serialize};

/// One entry of `sources`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(untagged)]
pub enum SourceSpec {
    /// A local file or directory, relative to the spec file.
    Local {
        /// The path.
        path: String,
        /// rsync-style filter rules applied while copying.
        #[serde(skip_serializing_if = "Vec::is_empty")]
        filter: Vec<String>,
        /// Extra paths to exclude.
        #[serde(skip_serializing_if = "Vec::is_empty")]
        exclude: Vec<String>,
        /// Where in the source package to put it.
        #[serde(skip_serializing_if = "Option::is_none")]
        subdir: Option<String>,
    },
    /// A git repository.
    Git {
        /// The repository URL.
        git: String,
        /// The tag, branch or commit to check out.
        #[serde(rename = "ref", skip_serializing_if = "Option::is_none")]
        reference: Option<String>,
        /// Clone depth.
        #[serde(skip_serializing_if = "Option::is_none")]
        depth: Option<u32>,
        /// Where in the source package to put it.
        #[serde(skip_serializing_if = "Option::is_none")]
        subdir: Option<String>,
    },
    /// A local or remote tar archive, extracted.
    Tar {
        /// Path or URL of the archive.
        tar: String,
        /// Where in the source package to put it.
        #[serde(skip_serializing_if = "Option::is_none")]
        subdir: Option<String>,
    },
    /// A bash script run in the source package directory.
    Script {
        /// The script lines.
        script: Vec<String>,
        /// Where in the source package to run it.
        #[serde(skip_serializing_if = "Option::is_none")]
        subdir: Option<String>,
    },
}

impl SourceSpec {
    /// The default source list: the spec file's own directory.
    pub fn default_list() -> Vec<SourceSpec> {
        vec![SourceSpec::Local {
            path: ".".into(),
            filter: Vec::new(),
            exclude: Vec::new(),
            subdir: None,
        }]
    }

    /// The subdirectory this source goes into, if any.
    pub fn subdir(&self) -> Option<&str> {
        match self {
            SourceSpec::Local { subdir, .. }
            | SourceSpec::Git { subdir, .. }
            | SourceSpec::Tar { subdir, .. }
            | SourceSpec::Script { subdir, .. } => subdir.as_deref(),
        }
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawSource {
    path: Option<String>,
    git: Option<String>,
    tar: Option<String>,
    #[serde(default, deserialize_with = "crate::spec::de::one_or_many")]
    script: Vec<String>,
    #[serde(
        rename = "ref",
        default,
        deserialize_with = "crate::spec::de::opt_scalar_string"
    )]
    reference: Option<String>,
    depth: Option<u32>,
    #[serde(default)]
    filter: Vec<String>,
    #[serde(default)]
    exclude: Vec<String>,
    subdir: Option<String>,
}

impl TryFrom<RawSource> for SourceSpec {
    type Error = String;

    fn try_from(r: RawSource) -> Result<Self, String> {
        let kinds = [
            r.path.is_some(),
            r.git.is_some(),
            r.tar.is_some(),
            !r.script.is_empty(),
        ]
        .iter()
        .filter(|x| **x)
        .count();
        if kinds != 1 {
            return Err("a source needs exactly one of 'path', 'git', 'tar' or 'script'".into());
        }
        if r.git.is_none() && (r.reference.is_some() || r.depth.is_some()) {
            return Err("'ref' and 'depth' only apply to git sources".into());
        }
        if r.path.is_none() && (!r.filter.is_empty() || !r.exclude.is_empty()) {
            return Err("'filter' and 'exclude' only apply to path sources".into());
        }
        if let Some(sub) = &r.subdir {
            if sub.starts_with('/') || sub.split('/').any(|p| p == "..") {
                return Err(format!(
                    "subdir '{sub}' must be a relative path inside the source package"
                ));
            }
        }
        Ok(if let Some(path) = r.path {
            SourceSpec::Local {
                path,
                filter: r.filter,
                exclude: r.exclude,
                subdir: r.subdir,
            }
        } else if let Some(git) = r.git {
            SourceSpec::Git {
                git,
                reference: r.reference,
                depth: r.depth,
                subdir: r.subdir,
            }
        } else if let Some(tar) = r.tar {
            SourceSpec::Tar {
                tar,
                subdir: r.subdir,
            }
        } else {
            SourceSpec::Script {
                script: r.script,
                subdir: r.subdir,
            }
        })
    }
}

impl<'de> Deserialize<'de> for SourceSpec {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        SourceSpec::try_from(RawSource::deserialize(d)?).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn four_kinds() {
        let s: Vec<SourceSpec> = serde_yaml::from_str(
            "- path: ./src\n- git: https://x/y\n  ref: v1\n  subdir: y\n- tar: a.tgz\n- script: [touch a]\n- script: touch b\n",
        )
        .unwrap();
        assert!(matches!(&s[0], SourceSpec::Local { path, .. } if path == "./src"));
        assert!(matches!(&s[1], SourceSpec::Git { reference: Some(r), .. } if r == "v1"));
        assert_eq!(s[1].subdir(), Some("y"));
        assert!(matches!(&s[2], SourceSpec::Tar { .. }));
        assert!(matches!(&s[4], SourceSpec::Script { script, .. } if script == &["touch b"]));
        let back: Vec<SourceSpec> =
            serde_yaml::from_str(&serde_yaml::to_string(&s).unwrap()).unwrap();
        assert_eq!(back, s);
    }

    #[test]
    fn source_errors() {
        let e = serde_yaml::from_str::<Vec<SourceSpec>>("- path: a\n  git: b\n").unwrap_err();
        assert!(e.to_string().contains("exactly one"), "{e}");
        let e = serde_yaml::from_str::<Vec<SourceSpec>>("- tar: a\n  ref: b\n").unwrap_err();
        assert!(e.to_string().contains("only apply to git"), "{e}");
        let e = serde_yaml::from_str::<Vec<SourceSpec>>("- tar: a\n  subdir: ../x\n").unwrap_err();
        assert!(e.to_string().contains("relative path"), "{e}");
    }
}
