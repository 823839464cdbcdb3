//! Collecting one source (a local path, a git repository or a tar archive) into a
//! directory. Script sources run in a runtime and are handled by the caller.

use std::fs;
use std::io::Read;
use std::os::unix::fs::{symlink, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::Command;

use ignore::gitignore::{Gitignore, GitignoreBuilder};

use super::error::{BuildError, Result};
use crate::spec::SourceSpec;

/// Where a source is collected from and into.
pub(crate) struct SourceContext<'a> {
    /// The package, for errors.
    pub ident: &'a str,
    /// Position of the source in `sources` (1-based), for errors.
    pub index: usize,
    /// The spec file's directory: relative paths start here.
    pub spec_dir: &'a Path,
    /// A private scratch directory for downloads and clones.
    pub scratch: &'a Path,
}

impl SourceContext<'_> {
    fn fail(&self, kind: &'static str, message: impl Into<String>) -> BuildError {
        BuildError::Source {
            ident: self.ident.to_string(),
            index: self.index,
            kind,
            message: message.into(),
        }
    }
}

/// Collects a `path`, `git` or `tar` source into `dest` (created if missing). Returns
/// the paths a `path` source left out because of ignore rules, for `-v` output.
pub(crate) fn collect(
    cx: &SourceContext,
    source: &SourceSpec,
    dest: &Path,
) -> Result<Vec<PathBuf>> {
    fs::create_dir_all(dest).map_err(BuildError::io("create", dest))?;
    match source {
        SourceSpec::Local {
            path,
            filter,
            exclude,
            ..
        } => collect_local(cx, &cx.spec_dir.join(path), filter, exclude, dest),
        SourceSpec::Git {
            git,
            reference,
            depth,
            ..
        } => {
            collect_git(cx, git, reference.as_deref(), depth.unwrap_or(1), dest).map(|_| Vec::new())
        }
        SourceSpec::Tar { tar, .. } => collect_tar(cx, tar, dest).map(|_| Vec::new()),
        SourceSpec::Script { .. } => Ok(Vec::new()),
    }
}

/// Rules for a local copy: the `.gitignore` files met on the way (default), or the
/// source's own `exclude` patterns and `filter` rules.
struct LocalRules {
    defaults: bool,
    gitignore: bool,
    excludes: Gitignore,
    includes: Gitignore,
}

fn local_rules(
    cx: &SourceContext,
    root: &Path,
    filter: &[String],
    exclude: &[String],
) -> Result<LocalRules> {
    let defaults = filter.is_empty() && exclude.is_empty();
    let mut ex = GitignoreBuilder::new(root);
    let mut inc = GitignoreBuilder::new(root);
    let mut gitignore = defaults;
    for pattern in exclude {
        ex.add_line(None, pattern)
            .map_err(|e| cx.fail("path", format!("bad exclude pattern '{pattern}': {e}")))?;
    }
    for rule in filter {
        let rule = rule.trim();
        let (kind, pattern) = rule.split_once(char::is_whitespace).unwrap_or((rule, ""));
        let pattern = pattern.trim();
        match kind {
            "-" | "exclude" => {
                ex.add_line(None, pattern)
                    .map_err(|e| cx.fail("path", format!("bad filter rule '{rule}': {e}")))?;
            }
            "+" | "include" => {
                inc.add_line(None, pattern)
                    .map_err(|e| cx.fail("path", format!("bad filter rule '{rule}': {e}")))?;
            }
            ":-" | "dir-merge,-" | ":" | "dir-merge" if pattern == ".gitignore" => gitignore = true,
            _ => {
                return Err(cx.fail(
                    "path",
                    format!("unsupported filter rule '{rule}': use '- PATTERN', '+ PATTERN' or ':- .gitignore'"),
                ))
            }
        }
    }
    let build = |b: GitignoreBuilder| b.build().map_err(|e| cx.fail("path", e.to_string()));
    Ok(LocalRules {
        defaults,
        gitignore,
        excludes: build(ex)?,
        includes: build(inc)?,
    })
}

fn collect_local(
    cx: &SourceContext,
    src: &Path,
    filter: &[String],
    exclude: &[String],
    dest: &Path,
) -> Result<Vec<PathBuf>> {
    let meta = fs::symlink_metadata(src)
        .map_err(|e| cx.fail("path", format!("cannot read {}: {e}", src.display())))?;
    if !meta.is_dir() {
        let name = src.file_name().unwrap_or_default();
        copy_entry(src, &dest.join(name)).map_err(|e| cx.fail("path", e))?;
        return Ok(Vec::new());
    }
    let rules = local_rules(cx, src, filter, exclude)?;
    let mut walk = ignore::WalkBuilder::new(src);
    walk.standard_filters(false)
        .git_ignore(rules.gitignore)
        .require_git(false)
        .follow_links(false)
        .sort_by_file_name(|a, b| a.cmp(b));
    if rules.defaults {
        walk.filter_entry(|e| !matches!(e.file_name().to_str(), Some(".git" | ".svn")));
    }
    let mut excluded = Vec::new();
    let mut kept = Vec::new();
    for entry in walk.build() {
        let entry = entry.map_err(|e| cx.fail("path", e.to_string()))?;
        let path = entry.path();
        let Ok(rel) = path.strip_prefix(src) else {
            continue;
        };
        if rel.as_os_str().is_empty() {
            continue;
        }
        kept.push(rel.to_path_buf());
    }
    // The walker already dropped gitignored paths; apply VCS and explicit rules here,
    // a rule on a directory taking everything below it.
    let mut skip_prefixes: Vec<PathBuf> = Vec::new();
    for rel in kept {
        if skip_prefixes.iter().any(|p| rel.starts_with(p)) {
            continue;
        }
        let is_dir = fs::symlink_metadata(src.join(&rel)).is_ok_and(|m| m.is_dir());
        let vcs = rules.defaults && rel.file_name().is_some_and(|n| n == ".git" || n == ".svn");
        let explicit = rules.excludes.matched(&rel, is_dir).is_ignore()
            && !rules.includes.matched(&rel, is_dir).is_ignore();
        if vcs || explicit {
            tracing::debug!(path = %rel.display(), "source file excluded");
            excluded.push(rel.clone());
            if is_dir {
                skip_prefixes.push(rel);
            }
            continue;
        }
        let to = dest.join(&rel);
        if is_dir {
            fs::create_dir_all(&to)
                .map_err(|e| cx.fail("path", format!("cannot create {}: {e}", to.display())))?;
            let mode = fs::metadata(src.join(&rel))
                .map(|m| m.permissions().mode())
                .unwrap_or(0o755);
            let _ = fs::set_permissions(&to, fs::Permissions::from_mode(mode | 0o700));
        } else {
            copy_entry(&src.join(&rel), &to).map_err(|e| cx.fail("path", e))?;
        }
    }
    Ok(excluded)
}

/// Copies one file or symlink, keeping its mode or target.
fn copy_entry(from: &Path, to: &Path) -> std::result::Result<(), String> {
    let meta =
        fs::symlink_metadata(from).map_err(|e| format!("cannot read {}: {e}", from.display()))?;
    if let Some(parent) = to.parent() {
        fs::create_dir_all(parent)
            .map_err(|e| format!("cannot create {}: {e}", parent.display()))?;
    }
    let _ = fs::remove_file(to);
    if meta.file_type().is_symlink() {
        let target =
            fs::read_link(from).map_err(|e| format!("cannot read {}: {e}", from.display()))?;
        symlink(target, to).map_err(|e| format!("cannot create {}: {e}", to.display()))?;
    } else if meta.is_file() {
        fs::copy(from, to).map_err(|e| format!("cannot copy {}: {e}", from.display()))?;
    } else {
        tracing::warn!("skipping special file {}", from.display());
    }
    Ok(())
}

fn run_git(cx: &SourceContext, dir: Option<&Path>, args: &[&str]) -> Result<()> {
    let mut cmd = Command::new("git");
    if let Some(d) = dir {
        cmd.arg("-C").arg(d);
    }
    cmd.args(args)
        .env("GIT_TERMINAL_PROMPT", "0")
        .stdin(std::process::Stdio::null());
    let out = cmd
        .output()
        .map_err(|e| cx.fail("git", format!("cannot run git: {e}; install git")))?;
    if !out.status.success() {
        let err = String::from_utf8_lossy(&out.stderr);
        let last = err.lines().rfind(|l| !l.trim().is_empty()).unwrap_or("");
        return Err(cx.fail(
            "git",
            format!("git {} failed: {last}", args.first().unwrap_or(&"")),
        ));
    }
    Ok(())
}

fn looks_like_sha(r: &str) -> bool {
    (7..=40).contains(&r.len()) && r.chars().all(|c| c.is_ascii_hexdigit())
}

fn collect_git(
    cx: &SourceContext,
    url: &str,
    reference: Option<&str>,
    depth: u32,
    dest: &Path,
) -> Result<()> {
    let clone = cx.scratch.join(format!("git-{}", cx.index));
    let _ = fs::remove_dir_all(&clone);
    let depth_arg = depth.max(1).to_string();
    // Local paths are taken relative to the spec file, like path sources.
    let url = if url.contains("://") || url.contains('@') || Path::new(url).is_absolute() {
        url.to_string()
    } else {
        cx.spec_dir.join(url).display().to_string()
    };
    let url = if Path::new(&url).is_absolute() {
        format!("file://{url}")
    } else {
        url
    };
    let clone_str = clone.display().to_string();
    match reference {
        Some(r) if looks_like_sha(r) => {
            // A commit: fetch exactly it (protocol v2 serves any reachable commit),
            // falling back to a full clone for servers that refuse.
            run_git(cx, None, &["init", "-q", &clone_str])?;
            let fetched = run_git(
                cx,
                Some(&clone),
                &["fetch", "-q", "--depth", &depth_arg, &url, r],
            );
            if fetched.is_ok() {
                run_git(cx, Some(&clone), &["checkout", "-q", "FETCH_HEAD"])?;
            } else {
                run_git(
                    cx,
                    Some(&clone),
                    &[
                        "fetch",
                        "-q",
                        &url,
                        "+refs/heads/*:refs/remotes/origin/*",
                        "+refs/tags/*:refs/tags/*",
                    ],
                )?;
                run_git(cx, Some(&clone), &["checkout", "-q", r])?;
            }
            run_git(cx, Some(&clone), &["remote", "add", "origin", &url])?;
            run_git(
                cx,
                Some(&clone),
                &[
                    "submodule",
                    "update",
                    "-q",
                    "--init",
                    "--recursive",
                    "--depth",
                    &depth_arg,
                ],
            )?;
        }
        _ => {
            let mut args = vec![
                "clone",
                "-q",
                "--depth",
                &depth_arg,
                "--recurse-submodules",
                "--shallow-submodules",
            ];
            if let Some(r) = reference {
                args.extend(["--branch", r]);
            }
            args.extend([url.as_str(), clone_str.as_str()]);
            run_git(cx, None, &args)?;
        }
    }
    move_contents(&clone, dest).map_err(|e| cx.fail("git", e))
}

/// Moves every entry of `from` into `to` (same filesystem).
fn move_contents(from: &Path, to: &Path) -> std::result::Result<(), String> {
    let entries = fs::read_dir(from).map_err(|e| format!("cannot read {}: {e}", from.display()))?;
    for e in entries {
        let e = e.map_err(|e| e.to_string())?;
        let target = to.join(e.file_name());
        if target.exists() {
            return Err(format!(
                "{} already exists in the source package; give this source its own subdir",
                target.display()
            ));
        }
        fs::rename(e.path(), &target)
            .map_err(|err| format!("cannot move {}: {err}", e.path().display()))?;
    }
    Ok(())
}

fn collect_tar(cx: &SourceContext, tar: &str, dest: &Path) -> Result<()> {
    let archive = if tar.starts_with("http://") || tar.starts_with("https://") {
        let file = cx.scratch.join(format!("download-{}", cx.index));
        download(tar, &file).map_err(|e| cx.fail("tar", format!("cannot download {tar}: {e}")))?;
        file
    } else {
        cx.spec_dir.join(tar)
    };
    let mut file = fs::File::open(&archive)
        .map_err(|e| cx.fail("tar", format!("cannot open {}: {e}", archive.display())))?;
    let mut magic = [0u8; 6];
    let n = file.read(&mut magic).unwrap_or(0);
    drop(file);
    let file = fs::File::open(&archive)
        .map_err(|e| cx.fail("tar", format!("cannot open {}: {e}", archive.display())))?;
    let reader: Box<dyn Read> = match &magic[..n] {
        [0x1f, 0x8b, ..] => Box::new(flate2::read::MultiGzDecoder::new(file)),
        [b'B', b'Z', b'h', ..] => Box::new(bzip2::read::MultiBzDecoder::new(file)),
        [0xfd, b'7', b'z', b'X', b'Z', 0x00] => {
            Box::new(xz2::read::XzDecoder::new_multi_decoder(file))
        }
        [0x28, 0xb5, 0x2f, 0xfd, ..] => Box::new(
            zstd::stream::read::Decoder::new(file)
                .map_err(|e| cx.fail("tar", format!("{}: {e}", archive.display())))?,
        ),
        _ => Box::new(file),
    };
    let mut ar = tar::Archive::new(reader);
    ar.set_preserve_permissions(true);
    ar.set_overwrite(true);
    ar.unpack(dest)
        .map_err(|e| cx.fail("tar", format!("cannot extract {}: {e}", archive.display())))
}

fn download(url: &str, to: &Path) -> std::result::Result<(), String> {
    let resp = ureq::get(url).call().map_err(|e| e.to_string())?;
    let mut body = resp.into_body();
    let mut out = fs::File::create(to).map_err(|e| e.to_string())?;
    std::io::copy(&mut body.as_reader(), &mut out).map_err(|e| e.to_string())?;
    Ok(())
}
