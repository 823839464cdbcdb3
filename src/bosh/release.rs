//! Reading a BOSH release directory: `config/final.yml`, each `packages/<name>/spec`
//! (or `spec.lock`), the files its globs select from `src/` and `blobs/`, the blobs'
//! checksums in `config/blobs.yml`, and the dependency graph. Every problem found is
//! collected, so one run reports them all before anything runs.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use rayon::prelude::*;
use serde::Deserialize;

use super::fingerprint::{self, hex_sha256_file, Entry};
use super::glob::Pattern;
use crate::name::PkgName;

/// One problem found in a release, with where it is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    /// The package it concerns, if any.
    pub package: Option<String>,
    /// The file it concerns, relative to the release directory.
    pub file: Option<String>,
    /// What is wrong (and, after "; ", what to do).
    pub message: String,
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some(p) = &self.package {
            write!(f, "package '{p}'")?;
            if self.file.is_some() {
                write!(f, ", ")?;
            }
        }
        if let Some(file) = &self.file {
            write!(f, "{file}")?;
        }
        if self.package.is_some() || self.file.is_some() {
            write!(f, ": ")?;
        }
        write!(f, "{}", self.message)
    }
}

/// What a selected file is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FileKind {
    /// A regular file.
    File {
        /// True when any execute bit is set.
        executable: bool,
    },
    /// A symbolic link, kept as one, with its link text.
    Symlink(PathBuf),
}

/// A file of a package: where it comes from and its path inside the package.
#[derive(Debug, Clone)]
pub struct PackageFile {
    /// Path inside the package (the glob-relative path).
    pub rel: String,
    /// Where it is on disk.
    pub source: PathBuf,
    /// File or symlink.
    pub kind: FileKind,
    /// Hex sha256 of the content (of the link text for a symlink).
    pub sha256: String,
}

/// One package of a release.
#[derive(Debug, Clone)]
pub struct Package {
    /// The BOSH name (`ruby_1.9.3`).
    pub name: String,
    /// The spk package name it maps to.
    pub spk_name: PkgName,
    /// `packages/<name>` in the release.
    pub dir: PathBuf,
    /// Direct dependencies (BOSH names), as the spec lists them.
    pub dependencies: Vec<String>,
    /// The selected files, sorted by path.
    pub files: Vec<PackageFile>,
    /// The BOSH fingerprint.
    pub fingerprint: String,
    /// The fingerprint came from `spec.lock`.
    pub locked: bool,
    /// `packages/<name>/pre_packaging` exists.
    pub pre_packaging: bool,
}

/// A release read from disk.
#[derive(Debug, Clone)]
pub struct Release {
    /// The release directory.
    pub dir: PathBuf,
    /// `name` (or `final_name`) of `config/final.yml`.
    pub name: String,
    /// The selected packages with everything they depend on, by BOSH name.
    pub packages: BTreeMap<String, Package>,
    /// BOSH names in dependency order (dependencies first, then by name).
    pub order: Vec<String>,
}

/// The problems that stopped a release from being read.
#[derive(Debug, Clone)]
pub struct ReleaseProblems {
    /// The release directory.
    pub dir: PathBuf,
    /// Everything found wrong.
    pub problems: Vec<Problem>,
}

#[derive(Debug, Deserialize)]
struct FinalYml {
    #[serde(default)]
    name: Option<String>,
    #[serde(default)]
    final_name: Option<String>,
}

#[derive(Debug, Deserialize)]
struct SpecYml {
    name: String,
    #[serde(default)]
    dependencies: Option<Vec<String>>,
    #[serde(default)]
    files: Option<Vec<String>>,
    #[serde(default)]
    excluded_files: Option<Vec<String>>,
}

#[derive(Debug, Deserialize)]
struct LockYml {
    name: String,
    fingerprint: String,
    #[serde(default)]
    dependencies: Option<Vec<String>>,
}

#[derive(Debug, Deserialize)]
struct BlobYml {
    #[serde(default)]
    size: Option<u64>,
    #[serde(default)]
    sha: Option<String>,
}

/// The documented name rule: lowercase ASCII, every run of other characters becomes
/// one dash, no dash at either end, then `prefix` in front (`ruby_1.9.3` -> `ruby-1-9-3`).
pub fn spk_name(prefix: &str, bosh: &str) -> Option<String> {
    let mut out = String::new();
    for c in bosh.chars() {
        let c = c.to_ascii_lowercase();
        if c.is_ascii_lowercase() || c.is_ascii_digit() {
            out.push(c);
        } else if !out.ends_with('-') {
            out.push('-');
        }
    }
    let body = out.trim_matches('-');
    if body.is_empty() {
        return None;
    }
    Some(format!("{prefix}{body}"))
}

/// Every entry below `root`, not following symlinks: (relative path, is_dir, path).
fn walk(root: &Path) -> Vec<(String, bool, PathBuf)> {
    let mut out = Vec::new();
    fn rec(dir: &Path, rel: &str, out: &mut Vec<(String, bool, PathBuf)>) {
        let Ok(rd) = fs::read_dir(dir) else { return };
        for e in rd.flatten() {
            let name = e.file_name().to_string_lossy().into_owned();
            let r = if rel.is_empty() {
                name
            } else {
                format!("{rel}/{name}")
            };
            let is_dir = e.file_type().is_ok_and(|t| t.is_dir());
            out.push((r.clone(), is_dir, e.path()));
            if is_dir {
                rec(&e.path(), &r, out);
            }
        }
    }
    if root.is_dir() {
        rec(root, "", &mut out);
    }
    out
}

struct Ctx {
    problems: Vec<Problem>,
}

impl Ctx {
    fn add(&mut self, package: Option<&str>, file: Option<String>, message: impl Into<String>) {
        self.problems.push(Problem {
            package: package.map(str::to_string),
            file,
            message: message.into(),
        });
    }
}

struct Parsed {
    name: String,
    dir: PathBuf,
    dependencies: Vec<String>,
    files: Vec<String>,
    excluded: Vec<String>,
    lock: Option<String>,
}

impl Release {
    /// Reads the release at `dir`: every package named in `wanted` (all when empty)
    /// with its dependencies; `prefix` goes in front of every spk name.
    pub fn load(dir: &Path, wanted: &[String], prefix: &str) -> Result<Release, ReleaseProblems> {
        let mut cx = Ctx {
            problems: Vec::new(),
        };
        let fail = |problems| ReleaseProblems {
            dir: dir.to_path_buf(),
            problems,
        };
        if !dir.is_dir() {
            return Err(fail(vec![Problem {
                package: None,
                file: None,
                message: "is not a directory; give the path of a BOSH release directory".into(),
            }]));
        }
        let name = read_final(dir, &mut cx);
        let parsed = read_specs(dir, &mut cx);
        if !cx.problems.is_empty() && parsed.is_empty() {
            return Err(fail(cx.problems));
        }
        // The closure of the wanted packages.
        let mut selected: BTreeSet<String> = BTreeSet::new();
        let mut todo: Vec<(String, Option<String>)> = if wanted.is_empty() {
            parsed.keys().map(|k| (k.clone(), None)).collect()
        } else {
            wanted.iter().map(|k| (k.clone(), None)).collect()
        };
        while let Some((n, from)) = todo.pop() {
            let Some(p) = parsed.get(&n) else {
                match from {
                    Some(parent) => cx.add(
                        Some(&parent),
                        Some(format!("packages/{parent}/spec")),
                        format!(
                            "Expected to find package '{n}' since it's a dependency of package '{parent}'; add packages/{n} or remove the dependency"
                        ),
                    ),
                    None => cx.add(
                        None,
                        None,
                        format!(
                            "there is no package '{n}' (packages: {}); name a directory of packages/",
                            parsed.keys().cloned().collect::<Vec<_>>().join(", ")
                        ),
                    ),
                }
                continue;
            };
            if selected.insert(n.clone()) {
                for d in &p.dependencies {
                    todo.push((d.clone(), Some(n.clone())));
                }
            }
        }
        if let Some(cycle) = find_cycle(&parsed, &selected) {
            cx.add(
                Some(&cycle[0]),
                Some(format!("packages/{}/spec", cycle[0])),
                format!(
                    "circular dependency: {}; BOSH packages cannot depend on themselves, even indirectly",
                    cycle.join(" -> ")
                ),
            );
        }
        // spk names must be valid and distinct.
        let mut names: BTreeMap<String, String> = BTreeMap::new();
        let mut spk_names = BTreeMap::new();
        for n in &selected {
            match spk_name(prefix, n).and_then(|s| s.parse::<PkgName>().ok()) {
                Some(s) => {
                    if let Some(other) = names.insert(s.to_string(), n.clone()) {
                        cx.add(
                            Some(n),
                            None,
                            format!(
                                "maps to the spk name '{s}' like package '{other}'; rename one of them or import them separately"
                            ),
                        );
                    }
                    spk_names.insert(n.clone(), s);
                }
                None => cx.add(
                    Some(n),
                    None,
                    format!(
                        "has no valid spk name (prefix '{prefix}'); BOSH names need a letter or digit, prefixes only lowercase letters, digits and dashes"
                    ),
                ),
            }
        }
        let blobs = read_blobs(dir, &mut cx);
        let src_entries = walk(&dir.join("src"));
        let blob_entries = walk(&dir.join("blobs"));
        let mut packages = BTreeMap::new();
        for n in &selected {
            let p = &parsed[n];
            if let Some(pkg) = select(dir, p, &src_entries, &blob_entries, &blobs, &mut cx) {
                if let Some(s) = spk_names.get(n) {
                    packages.insert(
                        n.clone(),
                        Package {
                            spk_name: s.clone(),
                            ..pkg
                        },
                    );
                }
            }
        }
        if !cx.problems.is_empty() {
            return Err(fail(cx.problems));
        }
        let order = topo_order(&packages);
        Ok(Release {
            dir: dir.to_path_buf(),
            name,
            packages,
            order,
        })
    }
}

fn read_final(dir: &Path, cx: &mut Ctx) -> String {
    let path = dir.join("config/final.yml");
    let fallback = dir
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let text = match fs::read_to_string(&path) {
        Ok(t) => t,
        Err(e) => {
            cx.add(
                None,
                Some("config/final.yml".into()),
                format!("cannot be read ({e}); a release directory needs config/final.yml with 'name: RELEASE'"),
            );
            return fallback;
        }
    };
    match serde_yaml::from_str::<FinalYml>(&text) {
        Ok(f) => match f.name.or(f.final_name) {
            Some(n) if !n.trim().is_empty() => n,
            _ => {
                cx.add(
                    None,
                    Some("config/final.yml".into()),
                    "has no 'name'; add 'name: RELEASE'",
                );
                fallback
            }
        },
        Err(e) => {
            cx.add(
                None,
                Some("config/final.yml".into()),
                format!("is not valid YAML: {e}"),
            );
            fallback
        }
    }
}

fn yaml_list(v: Option<Vec<String>>) -> Vec<String> {
    v.unwrap_or_default()
}

fn read_specs(dir: &Path, cx: &mut Ctx) -> BTreeMap<String, Parsed> {
    let mut out = BTreeMap::new();
    let pkgs = dir.join("packages");
    let mut entries: Vec<PathBuf> = match fs::read_dir(&pkgs) {
        Ok(rd) => rd
            .flatten()
            .map(|e| e.path())
            .filter(|p| p.is_dir())
            .collect(),
        Err(e) => {
            cx.add(
                None,
                Some("packages".into()),
                format!("cannot be read ({e}); a release keeps its packages in packages/<name>/"),
            );
            return out;
        }
    };
    entries.sort();
    for pdir in entries {
        let dname = pdir
            .file_name()
            .unwrap_or_default()
            .to_string_lossy()
            .into_owned();
        let rel = |f: &str| format!("packages/{dname}/{f}");
        let lock_path = pdir.join("spec.lock");
        let spec_path = pdir.join("spec");
        let mut parsed = Parsed {
            name: dname.clone(),
            dir: pdir.clone(),
            dependencies: Vec::new(),
            files: Vec::new(),
            excluded: Vec::new(),
            lock: None,
        };
        let mut ok = true;
        if lock_path.exists() {
            match fs::read_to_string(&lock_path)
                .map_err(|e| e.to_string())
                .and_then(|t| serde_yaml::from_str::<LockYml>(&t).map_err(|e| e.to_string()))
            {
                Ok(l) => {
                    if l.name != dname {
                        cx.add(Some(&dname), Some(rel("spec.lock")), format!("names the package '{}' but lies in packages/{dname}; make them agree", l.name));
                        ok = false;
                    }
                    let fp = l.fingerprint.trim().to_string();
                    if fp.len() < 40 || !fp.bytes().all(|b| b.is_ascii_hexdigit()) {
                        cx.add(
                            Some(&dname),
                            Some(rel("spec.lock")),
                            format!("fingerprint '{fp}' is not a hex sha1/sha256"),
                        );
                        ok = false;
                    }
                    parsed.dependencies = yaml_list(l.dependencies);
                    parsed.lock = Some(fp);
                }
                Err(e) => {
                    cx.add(Some(&dname), Some(rel("spec.lock")), format!("is not a valid lock: {e}; it needs 'name', 'fingerprint' and 'dependencies'"));
                    ok = false;
                }
            }
        }
        if spec_path.exists() {
            match fs::read_to_string(&spec_path)
                .map_err(|e| e.to_string())
                .and_then(|t| serde_yaml::from_str::<SpecYml>(&t).map_err(|e| e.to_string()))
            {
                Ok(s) => {
                    if s.name != dname {
                        cx.add(Some(&dname), Some(rel("spec")), format!("names the package '{}' but lies in packages/{dname}; make them agree", s.name));
                        ok = false;
                    }
                    if parsed.lock.is_none() {
                        parsed.dependencies = yaml_list(s.dependencies);
                    }
                    parsed.files = yaml_list(s.files);
                    parsed.excluded = yaml_list(s.excluded_files);
                }
                Err(e) => {
                    cx.add(Some(&dname), Some(rel("spec")), format!("is not a valid package spec: {e}; 'name' is a string, 'dependencies', 'files' and 'excluded_files' are lists of strings"));
                    ok = false;
                }
            }
        } else if parsed.lock.is_none() {
            cx.add(
                Some(&dname),
                Some(rel("spec")),
                "is missing; every package needs a spec (run 'bosh generate-package NAME')",
            );
            ok = false;
        }
        if !pdir.join("packaging").is_file() {
            cx.add(Some(&dname), Some(rel("packaging")), "is missing; every package needs a packaging script that installs into ${BOSH_INSTALL_TARGET}");
            ok = false;
        }
        let mut seen = BTreeSet::new();
        for d in &parsed.dependencies {
            if !seen.insert(d) {
                cx.add(
                    Some(&dname),
                    Some(rel("spec")),
                    format!("lists the dependency '{d}' twice"),
                );
            }
        }
        // A package with problems stays in the graph, so that its dependents do not
        // report it as missing; its problems already stop the import.
        let _ = ok;
        out.insert(dname, parsed);
    }
    out
}

/// sha of `config/blobs.yml` entries: path -> (size, sha with algorithm).
fn read_blobs(dir: &Path, cx: &mut Ctx) -> BTreeMap<String, BlobYml> {
    let path = dir.join("config/blobs.yml");
    let Ok(text) = fs::read_to_string(&path) else {
        return BTreeMap::new();
    };
    match serde_yaml::from_str::<Option<BTreeMap<String, BlobYml>>>(&text) {
        Ok(m) => m.unwrap_or_default(),
        Err(e) => {
            cx.add(
                None,
                Some("config/blobs.yml".into()),
                format!("is not valid: {e}; each entry is 'PATH: {{size: N, sha: HEX}}'"),
            );
            BTreeMap::new()
        }
    }
}

fn check_blob(rel: &str, path: &Path, blob: &BlobYml, pkg: &str, cx: &mut Ctx) {
    let file = Some(format!("blobs/{rel}"));
    if let Some(size) = blob.size {
        let actual = fs::metadata(path).map(|m| m.len()).unwrap_or(0);
        if actual != size {
            cx.add(Some(pkg), file, format!("has {actual} bytes but config/blobs.yml says {size}; run 'bosh sync-blobs' to fetch it again"));
            return;
        }
    }
    let Some(sha) = &blob.sha else { return };
    let (algo, want) = match sha.split_once(':') {
        Some((a, h)) => (a.to_string(), h.to_lowercase()),
        None if sha.len() == 40 => ("sha1".to_string(), sha.to_lowercase()),
        None => ("sha256".to_string(), sha.to_lowercase()),
    };
    let got = match algo.as_str() {
        "sha1" => fingerprint::hex_sha1_file(path),
        "sha256" => hex_sha256_file(path),
        other => {
            cx.add(
                Some(pkg),
                Some("config/blobs.yml".into()),
                format!("blob {rel}: unknown checksum algorithm '{other}' (use sha1 or sha256)"),
            );
            return;
        }
    };
    match got {
        Ok(g) if g == want => {}
        Ok(g) => cx.add(Some(pkg), file, format!("has {algo} {g} but config/blobs.yml says {want}; run 'bosh sync-blobs' to fetch it again")),
        Err(e) => cx.add(Some(pkg), file, format!("cannot be read: {e}")),
    }
}

fn select(
    dir: &Path,
    p: &Parsed,
    src: &[(String, bool, PathBuf)],
    blobs_on_disk: &[(String, bool, PathBuf)],
    blobs: &BTreeMap<String, BlobYml>,
    cx: &mut Ctx,
) -> Option<Package> {
    let name = &p.name;
    if !p.dir.join("packaging").is_file() {
        return None; // already reported
    }
    let spec_file = Some(format!("packages/{name}/spec"));
    let mut chosen: BTreeMap<String, (PathBuf, bool)> = BTreeMap::new();
    let mut ok = true;
    for g in &p.files {
        let pat = match Pattern::new(g) {
            Ok(p) => p,
            Err(e) => {
                cx.add(
                    Some(name),
                    spec_file.clone(),
                    format!("malformed pattern '{g}': {}", e.0),
                );
                ok = false;
                continue;
            }
        };
        let mut any = false;
        for (rel, is_dir, path) in src {
            if !is_dir && pat.matches(rel) {
                any = true;
                chosen.entry(rel.clone()).or_insert((path.clone(), false));
            }
        }
        for (rel, is_dir, path) in blobs_on_disk {
            if !is_dir && pat.matches(rel) {
                any = true;
                chosen.entry(rel.clone()).or_insert((path.clone(), true));
            }
        }
        // A blob listed in config/blobs.yml but not synced is named as such.
        for rel in blobs.keys() {
            if pat.matches(rel)
                && !dir.join("blobs").join(rel).exists()
                && !chosen.contains_key(rel)
            {
                cx.add(
                    Some(name),
                    Some(format!("blobs/{rel}")),
                    "is listed in config/blobs.yml but missing from blobs/; run 'bosh sync-blobs'",
                );
                ok = false;
                any = true;
            }
        }
        if !any {
            cx.add(
                Some(name),
                spec_file.clone(),
                format!("Missing files for pattern '{g}'; no file under src/ or blobs/ matches it"),
            );
            ok = false;
        }
    }
    for g in &p.excluded {
        match Pattern::new(g) {
            Ok(pat) => chosen.retain(|rel, _| !pat.matches(rel)),
            Err(e) => {
                cx.add(
                    Some(name),
                    spec_file.clone(),
                    format!("malformed excluded_files pattern '{g}': {}", e.0),
                );
                ok = false;
            }
        }
    }
    for rel in ["packaging", "pre_packaging"] {
        if chosen.contains_key(rel) {
            cx.add(Some(name), spec_file.clone(), format!("selects a file named '{rel}' (src/{rel}), which would clash with the package's own {rel} script; exclude it or move it"));
            ok = false;
        }
    }
    for (rel, (path, from_blobs)) in &chosen {
        if *from_blobs {
            if let Some(b) = blobs.get(rel) {
                check_blob(rel, path, b, name, cx);
            }
        }
    }
    if !ok {
        return None;
    }
    // Hash the files (in parallel) and compute the fingerprint.
    let hashed: Vec<Result<PackageFile, String>> = chosen
        .into_par_iter()
        .map(|(rel, (path, _))| {
            let meta =
                fs::symlink_metadata(&path).map_err(|e| format!("{}: {e}", path.display()))?;
            let (kind, sha) = if meta.file_type().is_symlink() {
                let target =
                    fs::read_link(&path).map_err(|e| format!("{}: {e}", path.display()))?;
                let sha = fingerprint::hex_sha256(target.as_os_str().as_encoded_bytes());
                (FileKind::Symlink(target), sha)
            } else {
                let sha = hex_sha256_file(&path).map_err(|e| format!("{}: {e}", path.display()))?;
                (
                    FileKind::File {
                        executable: meta.permissions().mode() & 0o111 != 0,
                    },
                    sha,
                )
            };
            Ok(PackageFile {
                rel,
                source: path,
                kind,
                sha256: sha,
            })
        })
        .collect();
    let mut files = Vec::new();
    for h in hashed {
        match h {
            Ok(f) => files.push(f),
            Err(e) => {
                cx.add(
                    Some(name),
                    None,
                    format!("cannot read a selected file: {e}"),
                );
                return None;
            }
        }
    }
    let pre_packaging = p.dir.join("pre_packaging").is_file();
    let fingerprint = match &p.lock {
        Some(fp) => fp.clone(),
        None => {
            let mut entries = Vec::new();
            for script in ["packaging", "pre_packaging"] {
                let path = p.dir.join(script);
                if script == "pre_packaging" && !pre_packaging {
                    continue;
                }
                match hex_sha256_file(&path) {
                    Ok(sha) => entries.push(Entry {
                        rel: script.to_string(),
                        sha256: sha,
                        mode: "",
                    }),
                    Err(e) => {
                        cx.add(
                            Some(name),
                            Some(format!("packages/{name}/{script}")),
                            format!("cannot be read: {e}"),
                        );
                        return None;
                    }
                }
            }
            for f in &files {
                entries.push(Entry {
                    rel: f.rel.clone(),
                    sha256: f.sha256.clone(),
                    mode: match f.kind {
                        FileKind::Symlink(_) => "symlink",
                        FileKind::File { executable: true } => "100755",
                        FileKind::File { executable: false } => "100644",
                    },
                });
            }
            fingerprint::fingerprint(entries, &p.dependencies)
        }
    };
    Some(Package {
        name: name.clone(),
        spk_name: "placeholder".parse().expect("valid name"),
        dir: p.dir.clone(),
        dependencies: p.dependencies.clone(),
        files,
        fingerprint,
        locked: p.lock.is_some(),
        pre_packaging,
    })
}

/// The first dependency cycle among `selected`, as a path that returns to its start.
fn find_cycle(
    parsed: &BTreeMap<String, Parsed>,
    selected: &BTreeSet<String>,
) -> Option<Vec<String>> {
    #[derive(Clone, Copy, PartialEq)]
    enum Mark {
        New,
        Active,
        Done,
    }
    let mut mark: BTreeMap<&str, Mark> = selected.iter().map(|s| (s.as_str(), Mark::New)).collect();
    fn visit<'a>(
        n: &'a str,
        parsed: &'a BTreeMap<String, Parsed>,
        mark: &mut BTreeMap<&'a str, Mark>,
        stack: &mut Vec<&'a str>,
    ) -> Option<Vec<String>> {
        mark.insert(n, Mark::Active);
        stack.push(n);
        if let Some(p) = parsed.get(n) {
            for d in &p.dependencies {
                match mark.get(d.as_str()).copied() {
                    Some(Mark::Active) => {
                        let start = stack.iter().position(|s| *s == d).unwrap_or(0);
                        let mut cycle: Vec<String> =
                            stack[start..].iter().map(|s| s.to_string()).collect();
                        cycle.push(d.clone());
                        return Some(cycle);
                    }
                    Some(Mark::New) => {
                        if let Some(c) = visit(d, parsed, mark, stack) {
                            return Some(c);
                        }
                    }
                    _ => {}
                }
            }
        }
        stack.pop();
        mark.insert(n, Mark::Done);
        None
    }
    for n in selected {
        if mark.get(n.as_str()) == Some(&Mark::New) {
            let mut stack = Vec::new();
            if let Some(c) = visit(n, parsed, &mut mark, &mut stack) {
                return Some(c);
            }
        }
    }
    None
}

/// Names in dependency order: repeatedly the alphabetically first package whose
/// dependencies are all placed (the graph is known to be acyclic).
fn topo_order(packages: &BTreeMap<String, Package>) -> Vec<String> {
    let mut placed: BTreeSet<&str> = BTreeSet::new();
    let mut out = Vec::new();
    while out.len() < packages.len() {
        let next = packages.values().find(|p| {
            !placed.contains(p.name.as_str())
                && p.dependencies.iter().all(|d| placed.contains(d.as_str()))
        });
        match next {
            Some(p) => {
                placed.insert(&p.name);
                out.push(p.name.clone());
            }
            None => break,
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn name_rule() {
        assert_eq!(spk_name("", "ruby_1.9.3").as_deref(), Some("ruby-1-9-3"));
        assert_eq!(
            spk_name("", "libyaml_0.1.4").as_deref(),
            Some("libyaml-0-1-4")
        );
        assert_eq!(spk_name("", "__Go-1.21__").as_deref(), Some("go-1-21"));
        assert_eq!(spk_name("bosh-", "nginx").as_deref(), Some("bosh-nginx"));
        assert_eq!(spk_name("", "a..b"), Some("a-b".into()));
        assert_eq!(spk_name("", "___"), None);
    }
}
