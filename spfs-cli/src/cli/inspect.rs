//! Commands that only read: log, tags, ls, read, info, diff.

use spfs::diff::Change;
use spfs::object::{Entry, EntryKind, Manifest, Object};
use spfs::progress::human_bytes;
use spfs::storage::LocalRepository;
use spfs::Error;

use super::{invalid, Result};

/// Writes to stdout; a closed pipe ends the command quietly (see `cli_policy`).
fn emit(bytes: &[u8]) -> Result<()> {
    cli_policy::write_stdout_bytes(bytes);
    Ok(())
}

pub fn log(repo: &LocalRepository, name: &str) -> Result<i32> {
    let history = repo.tag_history(name)?;
    if history.is_empty() {
        return Err(Error::UnknownReference(name.to_string()).into());
    }
    let mut text = String::new();
    for (i, e) in history.iter().enumerate() {
        text.push_str(&format!(
            "{name}~{i} {} {} {}\n",
            e.target,
            format_time(e.time),
            e.user
        ));
    }
    emit(text.as_bytes())?;
    Ok(0)
}

fn format_time(secs: u64) -> String {
    // Civil-from-days (proleptic Gregorian), UTC.
    let days = (secs / 86400) as i64;
    let rem = secs % 86400;
    let z = days + 719468;
    let era = z.div_euclid(146097);
    let doe = z - era * 146097;
    let yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = if m <= 2 { y + 1 } else { y };
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z",
        rem / 3600,
        (rem % 3600) / 60,
        rem % 60
    )
}

pub fn tags(repo: &LocalRepository, prefix: Option<&str>) -> Result<i32> {
    let mut text = String::new();
    for name in repo.list_tags(prefix.unwrap_or(""))? {
        if let Some(d) = repo.resolve_tag(&name)? {
            text.push_str(&format!("{name} {}\n", d.short()));
        }
    }
    emit(text.as_bytes())?;
    Ok(0)
}

fn mode_string(e: &Entry) -> String {
    let mut s = String::new();
    s.push(e.kind_char());
    for shift in [6, 3, 0] {
        let bits = (e.mode >> shift) & 7;
        s.push(if bits & 4 != 0 { 'r' } else { '-' });
        s.push(if bits & 2 != 0 { 'w' } else { '-' });
        s.push(if bits & 1 != 0 { 'x' } else { '-' });
    }
    s
}

fn entry_line(name: &str, e: &Entry, long: bool) -> String {
    let suffix = match &e.kind {
        EntryKind::Dir(_) => "/".to_string(),
        EntryKind::Symlink(t) if long => format!(" -> {}", String::from_utf8_lossy(t)),
        _ => String::new(),
    };
    if !long {
        return format!("{name}{suffix}\n");
    }
    let digest = match &e.kind {
        EntryKind::File { digest, .. } => digest.short(),
        _ => "-".repeat(12),
    };
    format!(
        "{} {:>10} {digest} {name}{suffix}\n",
        mode_string(e),
        e.size()
    )
}

fn display_path(p: &[u8]) -> String {
    String::from_utf8_lossy(p).into_owned()
}

pub fn ls(
    repo: &LocalRepository,
    reference: &str,
    path: Option<&str>,
    long: bool,
    recursive: bool,
) -> Result<i32> {
    let manifest = repo.merged_manifest(reference)?;
    let path = path.unwrap_or("").trim_matches('/');
    let tree = match manifest.list(path.as_bytes()) {
        Some(t) => t,
        None => match manifest.get(path.as_bytes()) {
            Some(e) => {
                emit(entry_line(path, e, long).as_bytes())?;
                return Ok(0);
            }
            None => {
                return Err(Error::NoSuchPath {
                    path: path.to_string(),
                    reference: reference.to_string(),
                }
                .into())
            }
        },
    };
    let mut text = String::new();
    if recursive {
        let sub = Manifest::new(tree.clone());
        for w in sub.walk() {
            text.push_str(&entry_line(&display_path(&w.path), w.entry, long));
        }
    } else {
        for (name, e) in tree {
            text.push_str(&entry_line(&display_path(name), e, long));
        }
    }
    emit(text.as_bytes())?;
    Ok(0)
}

pub fn read(repo: &LocalRepository, reference: &str, path: Option<&str>) -> Result<i32> {
    let (digest, size) = match path {
        None => {
            let d = repo.resolve(reference)?;
            if repo.has_object(&d) {
                return Err(invalid(format!(
                    "{reference} is a {}, not a file",
                    repo.kind_of(&d)?
                ))
                .help("give a PATH inside it to read"));
            }
            (d, None)
        }
        Some(p) => {
            let manifest = repo.merged_manifest(reference)?;
            let p = p.trim_matches('/');
            match manifest.get(p.as_bytes()).map(|e| &e.kind) {
                Some(EntryKind::File { digest, size }) => (*digest, Some(*size)),
                Some(EntryKind::Symlink(t)) => {
                    return Err(invalid(format!(
                        "'{p}' is a symlink to '{}' in {reference}",
                        String::from_utf8_lossy(t)
                    ))
                    .help("read the target path instead"))
                }
                Some(EntryKind::Dir(_)) => {
                    return Err(invalid(format!("'{p}' is a directory in {reference}"))
                        .help(format!("list it with 'spfs ls {reference} {p}'")))
                }
                _ => {
                    return Err(Error::NoSuchPath {
                        path: p.to_string(),
                        reference: reference.to_string(),
                    }
                    .into())
                }
            }
        }
    };
    let mut f = repo.open_payload(&digest, size)?;
    match std::io::copy(&mut f, &mut std::io::stdout().lock()) {
        Ok(_) => Ok(0),
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Ok(0),
        Err(e) => Err(Error::io("copying payload to", "stdout", e).into()),
    }
}

pub fn info(repo: &LocalRepository, reference: &str) -> Result<i32> {
    let digest = repo.resolve(reference)?;
    let tags: Vec<String> = repo
        .all_tags()?
        .into_iter()
        .filter(|(_, d)| *d == digest)
        .map(|(n, _)| n)
        .collect();
    let mut text = String::new();
    let mut line = |k: &str, v: String| text.push_str(&format!("{k:<12} {v}\n"));
    line("digest:", digest.to_string());
    if !repo.has_object(&digest) {
        let size = std::fs::metadata(repo.payload_path(&digest))
            .map(|m| m.len())
            .unwrap_or(0);
        line("kind:", "blob".into());
        line("size:", format!("{size} bytes"));
    } else {
        let obj = repo.read_object(&digest)?;
        line("kind:", obj.kind().to_string());
        match &obj {
            Object::Manifest(m) => describe_manifest(m, &mut line),
            Object::Layer(l) => {
                line("manifest:", l.manifest.to_string());
                for (k, v) in &l.annotations {
                    line("annotation:", format!("{k}={v}"));
                }
                describe_manifest(&repo.read_manifest(&l.manifest)?, &mut line);
            }
            Object::Platform(p) => {
                line("layers:", format!("{} (bottom first)", p.layers.len()));
                for l in &p.layers {
                    line("  layer:", l.to_string());
                }
                let merged = repo.merge_manifests(&repo.manifests_of(&p.layers)?)?;
                describe_manifest(&merged, &mut line);
            }
        }
    }
    line(
        "tags:",
        if tags.is_empty() {
            "(none)".into()
        } else {
            tags.join(", ")
        },
    );
    emit(text.as_bytes())?;
    Ok(0)
}

fn describe_manifest(m: &Manifest, line: &mut impl FnMut(&str, String)) {
    let (files, dirs, links, masks) = m.counts();
    line(
        "size:",
        format!("{} ({} bytes)", human_bytes(m.total_size()), m.total_size()),
    );
    line(
        "entries:",
        format!("{files} files, {dirs} dirs, {links} symlinks, {masks} masks"),
    );
}

pub fn diff(repo: &LocalRepository, from: &str, to: &str) -> Result<i32> {
    let a = repo.merged_manifest(from)?;
    let b = repo.merged_manifest(to)?;
    let changes = spfs::diff::diff(&a, &b);
    emit(format_changes(&changes).as_bytes())?;
    Ok(0)
}

pub fn runtime_diff(repo: &LocalRepository) -> Result<i32> {
    let rec = spfs::runtime::record::current(repo)?;
    let changes = spfs::runtime::edits::changes(repo, &rec)?;
    if changes.is_empty() {
        eprintln!("no changes in runtime {}", rec.name);
    }
    emit(format_changes(&changes).as_bytes())?;
    Ok(0)
}

/// One line per change: `+`, `-` or `~`, mode and path.
pub fn format_changes(changes: &[Change]) -> String {
    let mut text = String::new();
    for c in changes {
        let path = display_path(c.path());
        match c {
            Change::Added(_, e) => text.push_str(&format!("+ {} {path}\n", mode_string(e))),
            Change::Removed(_, e) => text.push_str(&format!("- {} {path}\n", mode_string(e))),
            Change::Changed(_, a, b) => {
                let what = if a.kind_char() != b.kind_char() {
                    "kind"
                } else if a.mode != b.mode && strip(a) == strip(b) {
                    "mode"
                } else if a.mode != b.mode {
                    "mode, content"
                } else {
                    "content"
                };
                text.push_str(&format!(
                    "~ {} -> {} {path} ({what})\n",
                    mode_string(a),
                    mode_string(b)
                ));
            }
        }
    }
    text
}

fn strip(e: &Entry) -> Entry {
    Entry {
        mode: 0,
        kind: e.kind.clone(),
    }
}
