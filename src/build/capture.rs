//! Capturing a finished build: what the script changed under /spfs, split into one
//! manifest per component, and checked against the output validation rules.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use ignore::gitignore::GitignoreBuilder;
use spfs::object::{Entry, EntryKind, Manifest, Tree};

use super::error::{BuildError, Result};
use crate::name::Component;
use crate::spec::{FileMatchMode, Spec, ValidationRuleName};

/// Drops from `changes` (an upper dir read against `lower`) what did not really change:
/// files touched but identical, directories only traversed, masks of paths that never
/// existed.
pub(crate) fn prune_unchanged(changes: &Tree, lower: Option<&Tree>) -> Tree {
    let mut out = Tree::new();
    for (name, entry) in changes {
        let below = lower.and_then(|t| t.get(name));
        match (&entry.kind, below) {
            (
                EntryKind::Dir(sub),
                Some(Entry {
                    kind: EntryKind::Dir(lsub),
                    mode,
                }),
            ) => {
                let pruned = prune_unchanged(sub, Some(lsub));
                if !pruned.is_empty() || *mode != entry.mode {
                    out.insert(name.clone(), Entry::dir(entry.mode, pruned));
                }
            }
            (EntryKind::Mask, None) => {}
            (_, Some(l)) if l == entry => {}
            _ => {
                out.insert(name.clone(), entry.clone());
            }
        }
    }
    out
}

/// A captured path (relative to /spfs) and whether it is a directory.
#[derive(Debug, Clone)]
struct Leaf {
    path: String,
    is_dir: bool,
}

/// The leaves of a tree: every non-directory entry and every empty directory.
fn leaves(tree: &Tree, prefix: &str, out: &mut Vec<Leaf>) {
    for (name, entry) in tree {
        let path = format!("{prefix}{}", String::from_utf8_lossy(name));
        match &entry.kind {
            EntryKind::Dir(sub) if !sub.is_empty() => leaves(sub, &format!("{path}/"), out),
            EntryKind::Dir(_) => out.push(Leaf { path, is_dir: true }),
            _ => out.push(Leaf {
                path,
                is_dir: false,
            }),
        }
    }
}

/// Keeps the entries of `tree` at the selected paths, with their parent directories.
fn select(tree: &Tree, prefix: &str, chosen: &BTreeSet<String>) -> Tree {
    let mut out = Tree::new();
    for (name, entry) in tree {
        let path = format!("{prefix}{}", String::from_utf8_lossy(name));
        if chosen.contains(&path) {
            out.insert(name.clone(), entry.clone());
        } else if let EntryKind::Dir(sub) = &entry.kind {
            let inner = select(sub, &format!("{path}/"), chosen);
            if !inner.is_empty() {
                out.insert(name.clone(), Entry::dir(entry.mode, inner));
            }
        }
    }
    out
}

/// The captured changes of one build split into components.
pub(crate) struct Split {
    /// One manifest per component.
    pub components: Vec<(Component, Manifest)>,
}

/// Splits `changes` by the components' `files` patterns (gitignore-style, rooted at
/// /spfs, a matched directory taking its children). Paths under `metadata` go into every
/// component. Checks EmptyPackage and CollectAllFiles.
pub(crate) fn split(spec: &Spec, changes: &Tree, metadata: &[String]) -> Result<Split> {
    let ident = spec
        .build_ident()
        .map(|b| b.to_string())
        .unwrap_or_default();
    let mut all = Vec::new();
    leaves(changes, "", &mut all);
    let is_meta = |p: &str| {
        metadata
            .iter()
            .any(|m| p == m || p.starts_with(&format!("{m}/")))
    };
    let payload: Vec<&Leaf> = all.iter().filter(|l| !is_meta(&l.path)).collect();
    let rules = &spec.build.validation;
    if payload.is_empty() && rules.is_enabled(ValidationRuleName::EmptyPackage) {
        return Err(BuildError::Validation {
            ident,
            rule: "EmptyPackage".into(),
            message: "the build installed nothing under /spfs".into(),
            paths: vec!["install files under $PREFIX (/spfs)".into()],
        });
    }
    let root = Path::new("/spfs");
    let meta_paths: BTreeSet<String> = all
        .iter()
        .filter(|l| is_meta(&l.path))
        .map(|l| l.path.clone())
        .collect();
    let mut taken: BTreeSet<String> = BTreeSet::new();
    let mut out = Vec::new();
    for comp in spec.install.components_with_defaults() {
        let mut b = GitignoreBuilder::new(root);
        for pattern in &comp.files {
            b.add_line(None, pattern).map_err(|e| BuildError::Invalid {
                ident: ident.clone(),
                message: format!(
                    "component {}: bad files pattern '{pattern}': {e}",
                    comp.name
                ),
                help: Some("patterns follow .gitignore syntax, rooted at /spfs".into()),
            })?;
        }
        let matcher = b.build().map_err(|e| BuildError::Invalid {
            ident: ident.clone(),
            message: format!("component {}: {e}", comp.name),
            help: None,
        })?;
        let mut chosen = meta_paths.clone();
        for leaf in &payload {
            if comp.file_match_mode == FileMatchMode::Remaining && taken.contains(&leaf.path) {
                continue;
            }
            let full: PathBuf = root.join(&leaf.path);
            if matcher
                .matched_path_or_any_parents(&full, leaf.is_dir)
                .is_ignore()
            {
                chosen.insert(leaf.path.clone());
            }
        }
        taken.extend(chosen.iter().cloned());
        out.push((
            comp.name.clone(),
            Manifest::new(select(changes, "", &chosen)),
        ));
    }
    if rules.is_enabled(ValidationRuleName::CollectAllFiles) {
        let missed: Vec<String> = payload
            .iter()
            .filter(|l| !taken.contains(&l.path))
            .map(|l| format!("/spfs/{}", l.path))
            .collect();
        if !missed.is_empty() {
            return Err(BuildError::Validation {
                ident,
                rule: "CollectAllFiles".into(),
                message: format!("{} file(s) are in no component", missed.len()),
                paths: missed.into_iter().take(10).collect(),
            });
        }
    }
    Ok(Split { components: out })
}

/// Checks AlterExistingFiles and CollectExistingFiles: the build changed, removed or
/// re-captured paths that the environment (`lower`) already had. `own` lists path
/// prefixes that belong to the package itself (allowed with RecursiveBuild).
pub(crate) fn check_existing(
    spec: &Spec,
    changes: &Tree,
    lower: &Tree,
    own_allowed: bool,
) -> Result<()> {
    let ident = spec
        .build_ident()
        .map(|b| b.to_string())
        .unwrap_or_default();
    let rules = &spec.build.validation;
    let own_meta = format!("spk/pkg/{}/", spec.name());
    let mut altered = Vec::new();
    let mut collected = Vec::new();
    fn walk(
        t: &Tree,
        l: &Tree,
        prefix: &str,
        altered: &mut Vec<String>,
        collected: &mut Vec<String>,
    ) {
        for (name, entry) in t {
            let path = format!("{prefix}{}", String::from_utf8_lossy(name));
            let Some(below) = l.get(name) else { continue };
            match (&entry.kind, &below.kind) {
                (EntryKind::Dir(a), EntryKind::Dir(b)) => {
                    walk(a, b, &format!("{path}/"), altered, collected)
                }
                (EntryKind::Mask, _) => altered.push(path),
                (_, EntryKind::Dir(_)) | (EntryKind::Dir(_), _) => altered.push(path),
                _ => {
                    altered.push(path.clone());
                    collected.push(path);
                }
            }
        }
    }
    walk(changes, lower, "", &mut altered, &mut collected);
    let keep = |v: Vec<String>| -> Vec<String> {
        v.into_iter()
            .filter(|p| !(own_allowed && p.starts_with(&own_meta)))
            .map(|p| format!("/spfs/{p}"))
            .collect()
    };
    let (altered, collected) = (keep(altered), keep(collected));
    if !altered.is_empty() && rules.is_enabled(ValidationRuleName::AlterExistingFiles) {
        return Err(BuildError::Validation {
            ident,
            rule: "AlterExistingFiles".into(),
            message: format!(
                "the build changed or removed {} file(s) of its build environment",
                altered.len()
            ),
            paths: altered.into_iter().take(10).collect(),
        });
    }
    if !collected.is_empty() && rules.is_enabled(ValidationRuleName::CollectExistingFiles) {
        return Err(BuildError::Validation {
            ident,
            rule: "CollectExistingFiles".into(),
            message: format!(
                "{} captured file(s) already existed in the build environment",
                collected.len()
            ),
            paths: collected.into_iter().take(10).collect(),
        });
    }
    Ok(())
}

/// Checks SpdxLicense: `meta.license` must be a valid SPDX expression.
pub(crate) fn check_license(spec: &Spec) -> Result<()> {
    if !spec
        .build
        .validation
        .is_enabled(ValidationRuleName::SpdxLicense)
    {
        return Ok(());
    }
    let license = spec.meta.license.as_deref().unwrap_or("");
    if spdx::Expression::parse(license).is_err() {
        return Err(BuildError::Validation {
            ident: spec.ident().to_string(),
            rule: "SpdxLicense".into(),
            message: format!("meta.license '{license}' is not an SPDX license expression"),
            paths: vec!["see https://spdx.org/licenses/ for identifiers such as Apache-2.0".into()],
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use spfs::Digest;

    fn file(content: &[u8], mode: u32) -> Entry {
        Entry::file(mode, content.len() as u64, Digest::of(content))
    }

    fn tree(items: Vec<(&str, Entry)>) -> Tree {
        items
            .into_iter()
            .map(|(n, e)| (n.as_bytes().to_vec(), e))
            .collect()
    }

    #[test]
    fn touched_but_identical_files_are_not_captured() {
        let lower = tree(vec![(
            "bin",
            Entry::dir(0o755, tree(vec![("a", file(b"a", 0o755))])),
        )]);
        let changes = tree(vec![
            (
                "bin",
                Entry::dir(
                    0o755,
                    tree(vec![("a", file(b"a", 0o755)), ("b", file(b"b", 0o755))]),
                ),
            ),
            ("gone", Entry::mask()),
        ]);
        let pruned = prune_unchanged(&changes, Some(&lower));
        let mut got = Vec::new();
        leaves(&pruned, "", &mut got);
        let paths: Vec<&str> = got.iter().map(|l| l.path.as_str()).collect();
        assert_eq!(paths, vec!["bin/b"]);
    }

    #[test]
    fn components_take_matching_files_and_their_directories() {
        let spec: Spec = crate::spec::parse_rendered(
            "pkg: demo/1.0.0/3I42H3S6\ninstall:\n  components:\n    - name: lib\n      files: [lib/]\n    - name: bin\n      files: ['/bin/*']\n      file_match_mode: Remaining\n      uses: [lib]\n",
            "t",
            &Default::default(),
        )
        .unwrap()
        .spec;
        let changes = tree(vec![
            (
                "bin",
                Entry::dir(0o755, tree(vec![("tool", file(b"t", 0o755))])),
            ),
            (
                "lib",
                Entry::dir(0o755, tree(vec![("libx.so", file(b"x", 0o644))])),
            ),
            (
                "spk",
                Entry::dir(0o755, tree(vec![("meta", file(b"m", 0o644))])),
            ),
        ]);
        let split = split(&spec, &changes, &["spk".to_string()]).unwrap();
        let names = |c: &str| {
            let m = &split
                .components
                .iter()
                .find(|(n, _)| n.as_str() == c)
                .unwrap()
                .1;
            let mut v: Vec<String> = m
                .files()
                .map(|f| String::from_utf8_lossy(&f.path).into_owned())
                .collect();
            v.sort();
            v
        };
        assert_eq!(names("lib"), vec!["lib/libx.so", "spk/meta"]);
        assert_eq!(names("bin"), vec!["bin/tool", "spk/meta"]);
        // build and run default to every file.
        assert_eq!(names("run"), vec!["bin/tool", "lib/libx.so", "spk/meta"]);
    }
}
