//! Configuration: the local repository root, the default runtime backend and named
//! remotes (docs/config.md).
//!
//! Sources, later ones winning: built-in defaults, `/etc/spfs.toml`,
//! `$XDG_CONFIG_HOME/spfs/spfs.toml` (default `~/.config/spfs/spfs.toml`), the file
//! named by `SPFS_CONFIG`, then environment variables (`SPFS_ROOT`, `SPFS_BACKEND`,
//! `SPFS_REMOTE_<NAME>`). Command-line flags override all of them.

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use crate::error::{Error, Result};

/// Where a value came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Source {
    /// Built in.
    Default,
    /// A configuration file.
    File(PathBuf),
    /// An environment variable.
    Env(String),
}

impl fmt::Display for Source {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Source::Default => write!(f, "default"),
            Source::File(p) => write!(f, "{}", p.display()),
            Source::Env(v) => write!(f, "${v}"),
        }
    }
}

/// A value and where it came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Setting<T> {
    /// The effective value.
    pub value: T,
    /// Its source.
    pub source: Source,
}

/// Where a remote repository lives.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Address {
    /// A directory (local disk, NFS, CephFS): `file:///path`.
    File(PathBuf),
    /// A tar archive: `tar:///path/archive.tar.zst`.
    Tar(PathBuf),
    /// An S3 bucket: `s3://BUCKET[/PREFIX]`.
    S3 {
        /// The bucket.
        bucket: String,
        /// Key prefix inside it, without leading or trailing `/`.
        prefix: String,
        /// The S3 endpoint URL (`remote.NAME.endpoint`); `None`: `$AWS_ENDPOINT_URL`,
        /// else AWS.
        endpoint: Option<String>,
        /// The region (`remote.NAME.region`); `None`: `$AWS_REGION`, else `us-east-1`.
        region: Option<String>,
    },
}

impl Address {
    /// This address as text that [`Address::parse`] reads back whole: as displayed, plus
    /// an S3 remote's configured endpoint and region as `?endpoint=URL&region=NAME`
    /// (what a runtime records to reopen the remote later, whatever the configuration
    /// then says).
    pub fn to_full_string(&self) -> String {
        let mut text = self.to_string();
        if let Address::S3 {
            endpoint, region, ..
        } = self
        {
            let query: Vec<String> = [("endpoint", endpoint), ("region", region)]
                .into_iter()
                .filter_map(|(k, v)| {
                    v.as_ref().map(|v| {
                        let v = v
                            .replace('%', "%25")
                            .replace('&', "%26")
                            .replace('?', "%3F");
                        format!("{k}={v}")
                    })
                })
                .collect();
            if !query.is_empty() {
                text.push('?');
                text.push_str(&query.join("&"));
            }
        }
        text
    }

    /// Parses `file:///path`, `tar:///path` or `s3://bucket[/prefix]` (which may end
    /// with `?endpoint=URL&region=NAME`, as [`Address::to_full_string`] writes).
    pub fn parse(text: &str) -> Result<Address> {
        let bad = |problem: &str| Error::InvalidAddress {
            input: text.to_string(),
            problem: problem.to_string(),
        };
        let Some((scheme, rest)) = text.split_once("://") else {
            return Err(bad("no scheme"));
        };
        let absolute = |rest: &str| -> Result<PathBuf> {
            if !rest.starts_with('/') || rest.len() < 2 {
                return Err(bad("the path must be absolute (three slashes: file:///x)"));
            }
            Ok(PathBuf::from(rest))
        };
        match scheme {
            "file" => Ok(Address::File(absolute(rest)?)),
            "tar" => Ok(Address::Tar(absolute(rest)?)),
            "s3" => {
                // A trailing `?endpoint=…&region=…` (see `s3_query`); anything else
                // after a `?` belongs to the key prefix.
                let (rest, endpoint, region) = match rest.rsplit_once('?') {
                    Some((before, query)) => match s3_query(query) {
                        Some((e, r)) => (before, e, r),
                        None => (rest, None, None),
                    },
                    None => (rest, None, None),
                };
                let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
                if bucket.is_empty() {
                    return Err(bad("no bucket"));
                }
                Ok(Address::S3 {
                    bucket: bucket.to_string(),
                    prefix: prefix.trim_matches('/').to_string(),
                    endpoint,
                    region,
                })
            }
            other => Err(bad(&format!("unknown scheme '{other}'"))),
        }
    }
}

/// The endpoint and region of an S3 address's query, if it is one
/// (`endpoint=URL&region=NAME`, either or both; `%25`, `%26` and `%3F` in values stand
/// for `%`, `&` and `?`).
fn s3_query(query: &str) -> Option<(Option<String>, Option<String>)> {
    let unescape = |v: &str| {
        let mut out = String::with_capacity(v.len());
        let mut rest = v;
        while let Some(i) = rest.find('%') {
            out.push_str(&rest[..i]);
            let (c, skip) = match rest.get(i + 1..i + 3) {
                Some("25") => ('%', 3),
                Some("26") => ('&', 3),
                Some("3F") => ('?', 3),
                _ => ('%', 1),
            };
            out.push(c);
            rest = &rest[i + skip..];
        }
        out.push_str(rest);
        out
    };
    let (mut endpoint, mut region) = (None, None);
    for pair in query.split('&') {
        match pair.split_once('=')? {
            ("endpoint", v) if !v.is_empty() && endpoint.is_none() => endpoint = Some(unescape(v)),
            ("region", v) if !v.is_empty() && region.is_none() => region = Some(unescape(v)),
            _ => return None,
        }
    }
    Some((endpoint, region))
}

impl fmt::Display for Address {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Address::File(p) => write!(f, "file://{}", p.display()),
            Address::Tar(p) => write!(f, "tar://{}", p.display()),
            Address::S3 { bucket, prefix, .. } if prefix.is_empty() => write!(f, "s3://{bucket}"),
            Address::S3 { bucket, prefix, .. } => write!(f, "s3://{bucket}/{prefix}"),
        }
    }
}

/// The effective configuration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Config {
    /// The local repository.
    pub root: Setting<PathBuf>,
    /// The default runtime backend (`render` or `fuse`).
    pub backend: Setting<String>,
    /// Named remotes.
    pub remotes: BTreeMap<String, Setting<Address>>,
    /// The files that were read, in order.
    pub files: Vec<PathBuf>,
}

/// The default remote's name.
pub const DEFAULT_REMOTE: &str = "origin";

impl Config {
    /// Reads the standard files and the process environment.
    pub fn load() -> Result<Config> {
        let mut files = vec![PathBuf::from("/etc/spfs.toml")];
        let config_home = std::env::var_os("XDG_CONFIG_HOME")
            .filter(|v| !v.is_empty())
            .map(PathBuf::from)
            .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".config")));
        if let Some(home) = config_home {
            files.push(home.join("spfs/spfs.toml"));
        }
        if let Some(extra) = std::env::var_os("SPFS_CONFIG").filter(|v| !v.is_empty()) {
            let extra = PathBuf::from(extra);
            if !extra.is_file() {
                return Err(Error::ConfigNotAFile(extra));
            }
            files.push(extra);
        }
        let env: Vec<(String, String)> = std::env::vars().collect();
        Self::load_from(&files, &env)
    }

    /// Reads `files` (missing ones are skipped) and then `env` overrides.
    pub fn load_from(files: &[PathBuf], env: &[(String, String)]) -> Result<Config> {
        let mut cfg = Config {
            root: Setting {
                value: crate::storage::builtin_root(),
                source: Source::Default,
            },
            backend: Setting {
                value: "render".into(),
                source: Source::Default,
            },
            remotes: BTreeMap::new(),
            files: Vec::new(),
        };
        for path in files {
            let text = match std::fs::read_to_string(path) {
                Ok(t) => t,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
                // A directory on the way we may not enter (another user's home, as
                // when running as another user): no file we can know of.
                Err(e)
                    if e.kind() == std::io::ErrorKind::PermissionDenied
                        && std::fs::metadata(path).is_err() =>
                {
                    continue
                }
                Err(e) => return Err(Error::io("reading configuration", path, e)),
            };
            cfg.apply_file(path, &text)?;
            cfg.files.push(path.clone());
        }
        for (key, value) in env {
            if value.is_empty() {
                continue;
            }
            let source = Source::Env(key.clone());
            match key.as_str() {
                "SPFS_ROOT" => {
                    cfg.root = Setting {
                        value: PathBuf::from(value),
                        source,
                    }
                }
                "SPFS_BACKEND" => {
                    cfg.backend = Setting {
                        value: check_backend(value).map_err(|e| Error::ConfigValue {
                            origin: source.clone(),
                            key: None,
                            source: Box::new(e),
                        })?,
                        source,
                    }
                }
                _ => {
                    if let Some(name) = key.strip_prefix("SPFS_REMOTE_") {
                        let name = name.to_ascii_lowercase();
                        let address = Address::parse(value).map_err(|e| Error::ConfigValue {
                            origin: source.clone(),
                            key: None,
                            source: Box::new(e),
                        })?;
                        cfg.remotes.insert(
                            name,
                            Setting {
                                value: address,
                                source,
                            },
                        );
                    }
                }
            }
        }
        Ok(cfg)
    }

    fn apply_file(&mut self, path: &Path, text: &str) -> Result<()> {
        let bad = |problem: String| Error::ConfigFile {
            path: path.to_path_buf(),
            problem,
        };
        let bad_value = |key: String, e: Error| Error::ConfigValue {
            origin: Source::File(path.to_path_buf()),
            key: Some(key),
            source: Box::new(e),
        };
        let doc: toml_edit::DocumentMut = text
            .parse()
            .map_err(|e: toml_edit::TomlError| bad(format!("not valid TOML: {}", e.message())))?;
        let source = Source::File(path.to_path_buf());
        for (section, item) in doc.iter() {
            let table = item
                .as_table_like()
                .ok_or_else(|| bad(format!("'{section}' must be a table ([{section}])")))?;
            match section {
                "storage" => {
                    for (key, v) in table.iter() {
                        match key {
                            "root" => {
                                let s = v
                                    .as_str()
                                    .ok_or_else(|| bad("storage.root must be a string".into()))?;
                                self.root = Setting {
                                    value: PathBuf::from(s),
                                    source: source.clone(),
                                };
                            }
                            other => return Err(bad(format!("unknown key storage.{other}"))),
                        }
                    }
                }
                "runtime" => {
                    for (key, v) in table.iter() {
                        match key {
                            "backend" => {
                                let s = v.as_str().ok_or_else(|| {
                                    bad("runtime.backend must be a string".into())
                                })?;
                                self.backend = Setting {
                                    value: check_backend(s)
                                        .map_err(|e| bad_value("runtime.backend".into(), e))?,
                                    source: source.clone(),
                                };
                            }
                            other => return Err(bad(format!("unknown key runtime.{other}"))),
                        }
                    }
                }
                "remote" => {
                    for (name, v) in table.iter() {
                        let remote = v.as_table_like().ok_or_else(|| {
                            bad(format!("remote.{name} must be a table ([remote.{name}])"))
                        })?;
                        let mut address = None;
                        let (mut endpoint, mut region) = (None, None);
                        for (key, v) in remote.iter() {
                            match key {
                                "endpoint" | "region" => {
                                    let s = v.as_str().ok_or_else(|| {
                                        bad(format!("remote.{name}.{key} must be a string"))
                                    })?;
                                    if key == "endpoint" {
                                        endpoint = Some(s.to_string());
                                    } else {
                                        region = Some(s.to_string());
                                    }
                                }
                                "address" => {
                                    let s = v.as_str().ok_or_else(|| {
                                        bad(format!("remote.{name}.address must be a string"))
                                    })?;
                                    address = Some(Address::parse(s).map_err(|e| {
                                        bad_value(format!("remote.{name}.address"), e)
                                    })?);
                                }
                                other => {
                                    return Err(bad(format!("unknown key remote.{name}.{other}")))
                                }
                            }
                        }
                        let mut address = address
                            .ok_or_else(|| bad(format!("remote.{name} has no 'address'")))?;
                        if endpoint.is_some() || region.is_some() {
                            let Address::S3 {
                                endpoint: e,
                                region: r,
                                ..
                            } = &mut address
                            else {
                                return Err(bad(format!(
                                    "remote.{name}: 'endpoint' and 'region' apply to s3:// addresses only"
                                )));
                            };
                            if endpoint.is_some() {
                                *e = endpoint;
                            }
                            if region.is_some() {
                                *r = region;
                            }
                        }
                        self.remotes.insert(
                            name.to_string(),
                            Setting {
                                value: address,
                                source: source.clone(),
                            },
                        );
                    }
                }
                other => {
                    return Err(bad(format!(
                        "unknown section [{other}] (known: storage, runtime, remote)"
                    )))
                }
            }
        }
        Ok(())
    }

    /// The configured remotes' names in the order pulls on demand ask them: `origin`
    /// first, then the others by name.
    pub fn remote_names(&self) -> Vec<String> {
        let mut names: Vec<String> = self.remotes.keys().cloned().collect();
        names.sort_by(|a, b| {
            (a != DEFAULT_REMOTE, a.as_str()).cmp(&(b != DEFAULT_REMOTE, b.as_str()))
        });
        names
    }

    /// The remote `name_or_address` names: a configured remote, or an address itself
    /// (`file:///x`). `None` means the default remote, `origin`.
    pub fn remote(&self, name_or_address: Option<&str>) -> Result<Address> {
        let name = name_or_address.unwrap_or(DEFAULT_REMOTE);
        if name.contains("://") {
            return Address::parse(name);
        }
        match self.remotes.get(name) {
            Some(s) => Ok(s.value.clone()),
            None => Err(Error::UnknownRemote {
                name: name.to_string(),
                configured: self.remotes.keys().cloned().collect(),
            }),
        }
    }
}

fn check_backend(value: &str) -> Result<String> {
    crate::runtime::record::Backend::parse(value).map(|b| b.name().to_string())
}

static CURRENT: OnceLock<Config> = OnceLock::new();

/// The configuration of this process, read once it reads without error (a failed read
/// is repeated on the next call, so its error keeps its type and hints).
pub fn current() -> Result<&'static Config> {
    if let Some(cfg) = CURRENT.get() {
        return Ok(cfg);
    }
    let cfg = Config::load()?;
    Ok(CURRENT.get_or_init(|| cfg))
}

#[cfg(test)]
mod tests;
