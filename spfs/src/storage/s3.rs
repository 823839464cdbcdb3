//! A repository in an S3 bucket (`s3://BUCKET[/PREFIX]`, docs/remotes.md).
//!
//! Keys under the prefix:
//!
//! - `VERSION`: the format version, written when the repository is created;
//! - `objects/<hex>`: encoded objects;
//! - `payloads/<hex>`: file contents, with their permission bits in the user
//!   metadata `x-amz-meta-mode`;
//! - `tags/<name>/.<sequence>`: one key per version of a tag, each created once
//!   (`If-None-Match: *`), holding `<digest hex> <unix seconds> <user>`. The highest
//!   sequence is the current version. A writer that loses the race for a sequence
//!   number gets 412 and takes the next one, so concurrent writers on different hosts
//!   never lose a version and never overwrite one.
//!
//! Requests run on a small tokio runtime the repository owns; the API is synchronous
//! like the storage traits. Every write checks the digest of what it stores before
//! the key appears (payloads above [`MULTIPART_THRESHOLD`] go up as a multipart
//! upload, completed only when the content hashed right), and every read is
//! re-hashed by the receiving store.

use std::collections::HashMap;
use std::io::Read;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures_util::stream::StreamExt;
use object_store::aws::{AmazonS3, AmazonS3Builder};
use object_store::list::{PaginatedListOptions, PaginatedListStore};
use object_store::path::Path as Key;
use object_store::{
    Attribute, Attributes, GetResult, ObjectStore as _, ObjectStoreExt as _, PutMode,
    PutMultipartOptions, PutOptions, PutPayload, RetryConfig, WriteMultipart,
};

use super::{validate_tag_name, ObjectStore, PayloadStore, Repository, TagEntry, TagStore};
use crate::digest::{Digest, Hasher};
use crate::error::{Error, Result};

/// Payloads larger than this go up as multipart uploads.
pub const MULTIPART_THRESHOLD: usize = 16 << 20;
/// The size of each part of a multipart upload.
pub const PART_SIZE: usize = 8 << 20;
/// Payloads larger than this are looked up before they are sent; smaller ones go
/// up with a create-only PUT that the server refuses (412) if it has them.
const ASK_FIRST_ABOVE: usize = 256 << 10;
/// Parts of one upload in flight at once.
const PARTS_IN_FLIGHT: usize = 4;
/// Requests a transfer keeps in flight against S3 (see [`Repository::parallelism`]).
const PARALLELISM: usize = 32;
/// Versions a tag writer tries before giving up (each failed try means another
/// writer's version landed).
const TAG_ATTEMPTS: usize = 1000;
const MODE_METADATA: &str = "mode";

/// A repository in an S3 bucket.
pub struct S3Repository {
    store: Arc<AmazonS3>,
    runtime: tokio::runtime::Runtime,
    address: String,
    /// `""` or `"prefix/"`.
    prefix: String,
    /// Tag versions already read: they are created once and never change.
    tag_cache: Mutex<HashMap<String, TagEntry>>,
}

impl std::fmt::Debug for S3Repository {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("S3Repository")
            .field("address", &self.address)
            .finish()
    }
}

/// How to reach an S3 repository: the bucket, a key prefix, and optional endpoint
/// and region overriding `$AWS_ENDPOINT_URL` and `$AWS_REGION`.
#[derive(Debug, Clone, Default)]
pub struct S3Location {
    /// The bucket.
    pub bucket: String,
    /// Key prefix inside it, without leading or trailing `/`.
    pub prefix: String,
    /// The endpoint URL (`http://` allows plain HTTP).
    pub endpoint: Option<String>,
    /// The region.
    pub region: Option<String>,
}

impl S3Repository {
    /// Opens the repository at `location`; `create` writes its `VERSION` if there is
    /// none (a push target), otherwise a missing `VERSION` is an error.
    pub fn open(location: &S3Location, create: bool) -> Result<Self> {
        let address = if location.prefix.is_empty() {
            format!("s3://{}", location.bucket)
        } else {
            format!("s3://{}/{}", location.bucket, location.prefix)
        };
        let fail = |reason: String, hint: &str| Error::Remote {
            action: "opening".into(),
            address: address.clone(),
            reason,
            hint: Some(hint.into()),
        };
        let mut builder = AmazonS3Builder::from_env()
            .with_bucket_name(&location.bucket)
            .with_retry(RetryConfig {
                max_retries: 3,
                retry_timeout: Duration::from_secs(30),
                ..Default::default()
            });
        let endpoint = location
            .endpoint
            .clone()
            .or_else(|| std::env::var("AWS_ENDPOINT_URL").ok())
            .filter(|e| !e.is_empty());
        if let Some(endpoint) = &endpoint {
            builder = builder
                .with_endpoint(endpoint)
                .with_allow_http(endpoint.starts_with("http://"));
        }
        if let Some(region) = &location.region {
            builder = builder.with_region(region);
        }
        let store = builder.build().map_err(|e| {
            fail(
                e.to_string(),
                "set AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, AWS_REGION and AWS_ENDPOINT_URL (or the remote's endpoint/region in the configuration)",
            )
        })?;
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .thread_name("spfs-s3")
            .enable_all()
            .build()
            .map_err(|e| fail(e.to_string(), "the process may be out of threads"))?;
        let prefix = if location.prefix.is_empty() {
            String::new()
        } else {
            format!("{}/", location.prefix.trim_matches('/'))
        };
        let repo = S3Repository {
            store: Arc::new(store),
            runtime,
            address,
            prefix,
            tag_cache: Mutex::new(HashMap::new()),
        };
        repo.check_version(create)?;
        Ok(repo)
    }

    fn check_version(&self, create: bool) -> Result<()> {
        let key = self.key("VERSION")?;
        let expected = super::FORMAT_VERSION.to_string();
        let found = self.runtime.block_on(async {
            match self.store.get(&key).await {
                Ok(r) => r.bytes().await.map(Some),
                Err(object_store::Error::NotFound { .. }) => Ok(None),
                Err(e) => Err(e),
            }
        });
        let found = found.map_err(|e| self.error("opening", "", e))?;
        match found {
            Some(bytes) if String::from_utf8_lossy(&bytes).trim() == expected => Ok(()),
            Some(bytes) => Err(Error::Remote {
                action: "opening".into(),
                address: self.address.clone(),
                reason: format!(
                    "repository format version {}, this build supports version {expected}",
                    String::from_utf8_lossy(&bytes).trim()
                ),
                hint: Some("use a matching spfs release".into()),
            }),
            None if create => {
                let put = self.runtime.block_on(self.store.put_opts(
                    &key,
                    format!("{expected}\n").into(),
                    PutOptions::from(PutMode::Create),
                ));
                match put {
                    Ok(_) | Err(object_store::Error::AlreadyExists { .. }) => Ok(()),
                    Err(e) => Err(self.error("creating", "VERSION", e)),
                }
            }
            None => Err(Error::Remote {
                action: "opening".into(),
                address: self.address.clone(),
                reason: "no spfs repository there (no VERSION key)".into(),
                hint: Some("check the address, or push to it first (a push creates it)".into()),
            }),
        }
    }

    /// The address, `s3://bucket[/prefix]`.
    pub fn address(&self) -> &str {
        &self.address
    }

    fn key(&self, rel: &str) -> Result<Key> {
        Key::parse(format!("{}{rel}", self.prefix)).map_err(|e| Error::Remote {
            action: "naming a key in".into(),
            address: self.address.clone(),
            reason: e.to_string(),
            hint: None,
        })
    }

    fn object_key(&self, digest: &Digest) -> Result<Key> {
        self.key(&format!("objects/{}", digest.to_hex()))
    }

    fn payload_key(&self, digest: &Digest) -> Result<Key> {
        self.key(&format!("payloads/{}", digest.to_hex()))
    }

    /// The full address of a key, for messages.
    fn at(&self, rel: &str) -> String {
        if rel.is_empty() {
            self.address.clone()
        } else {
            format!("{}/{rel}", self.address)
        }
    }

    fn error(&self, action: &str, rel: &str, e: object_store::Error) -> Error {
        remote_error(action, self.at(rel), e)
    }

    fn exists(&self, key: &Key) -> std::result::Result<bool, object_store::Error> {
        match self.runtime.block_on(self.store.head(key)) {
            Ok(_) => Ok(true),
            Err(object_store::Error::NotFound { .. }) => Ok(false),
            Err(e) => Err(e),
        }
    }

    /// Every key under `prefix` (a string prefix relative to the repository's).
    fn list(&self, prefix: &str) -> Result<Vec<String>> {
        let full = format!("{}{prefix}", self.prefix);
        let mut out = Vec::new();
        let mut token = None;
        loop {
            let page = self
                .runtime
                .block_on(self.store.list_paginated(
                    Some(&full),
                    PaginatedListOptions {
                        page_token: token,
                        ..Default::default()
                    },
                ))
                .map_err(|e| self.error("listing", prefix, e))?;
            out.extend(page.result.objects.into_iter().filter_map(|o| {
                o.location
                    .as_ref()
                    .strip_prefix(&self.prefix)
                    .map(String::from)
            }));
            match page.page_token {
                Some(t) => token = Some(t),
                None => return Ok(out),
            }
        }
    }

    /// The digests named by the keys directly under `area` (`objects/`, `payloads/`);
    /// other keys there are ignored.
    fn list_digests(&self, area: &str) -> Result<Vec<Digest>> {
        Ok(self
            .list(area)?
            .into_iter()
            .filter_map(|k| Digest::parse(k.strip_prefix(area)?).ok())
            .collect())
    }

    /// The versions of a tag: (sequence, key relative to the repository), newest first.
    fn tag_version_keys(&self, name: &str) -> Result<Vec<(u64, String)>> {
        let mut versions: Vec<(u64, String)> = self
            .list(&format!("tags/{name}/."))?
            .into_iter()
            .filter_map(|k| {
                let seq = k.rsplit_once("/.")?.1.parse().ok()?;
                Some((seq, k))
            })
            .collect();
        versions.sort_by_key(|v| std::cmp::Reverse(v.0));
        Ok(versions)
    }

    fn read_tag_version(&self, rel: &str) -> Result<TagEntry> {
        if let Some(e) = self.tag_cache.lock().ok().and_then(|c| c.get(rel).cloned()) {
            return Ok(e);
        }
        let key = self.key(rel)?;
        let bytes = self
            .runtime
            .block_on(async { self.store.get(&key).await?.bytes().await })
            .map_err(|e| self.error("reading tag", rel, e))?;
        let Some(entry) = parse_tag_entry(&bytes) else {
            return Err(Error::Remote {
                action: "reading tag".into(),
                address: self.at(rel),
                reason: "expected '<digest> <time> <user>'".into(),
                hint: Some("the tag version is corrupt: remove that key".into()),
            });
        };
        if let Ok(mut c) = self.tag_cache.lock() {
            c.insert(rel.to_string(), entry.clone());
        }
        Ok(entry)
    }

    /// Adds a version to a tag: creates `tags/<name>/.<n>` for the first free `n`.
    fn append_tag(&self, name: &str, target: &Digest, time: u64, user: &str) -> Result<()> {
        let mut seq = self
            .tag_version_keys(name)?
            .first()
            .map(|(s, _)| s + 1)
            .unwrap_or(0);
        let body = format!("{} {time} {user}\n", target.to_hex());
        for _ in 0..TAG_ATTEMPTS {
            crate::signals::check()?;
            let rel = tag_version_key(name, seq);
            let key = self.key(&rel)?;
            let put = self.runtime.block_on(self.store.put_opts(
                &key,
                PutPayload::from(body.clone()),
                PutOptions::from(PutMode::Create),
            ));
            match put {
                Ok(_) => {
                    tracing::debug!(tag = name, seq, "tag version created");
                    return Ok(());
                }
                // Another writer took this sequence number: its version stays, ours
                // goes after it.
                Err(object_store::Error::AlreadyExists { .. }) => seq += 1,
                Err(e) => return Err(self.error("writing tag", &rel, e)),
            }
        }
        Err(Error::Remote {
            action: "writing tag".into(),
            address: self.at(&format!("tags/{name}")),
            reason: format!("{TAG_ATTEMPTS} other versions landed while this one was tried"),
            hint: Some("try again".into()),
        })
    }

    fn put_small(&self, key: &Key, rel: &str, bytes: Vec<u8>, mode: Option<u32>) -> Result<()> {
        let mut opts = PutOptions::default();
        if let Some(mode) = mode {
            opts.attributes = mode_attributes(mode);
        }
        self.runtime
            .block_on(self.store.put_opts(key, PutPayload::from(bytes), opts))
            .map_err(|e| self.error("writing", rel, e))?;
        Ok(())
    }
}

fn tag_version_key(name: &str, seq: u64) -> String {
    format!("tags/{name}/.{seq:020}")
}

fn mode_attributes(mode: u32) -> Attributes {
    let mut a = Attributes::new();
    a.insert(
        Attribute::Metadata(MODE_METADATA.into()),
        format!("{mode:o}").into(),
    );
    a
}

fn remote_error(action: &str, address: String, e: object_store::Error) -> Error {
    let text = error_chain(&e);
    let hint = if text.contains("Connection refused")
        || text.contains("dns error")
        || text.contains("error sending request")
    {
        Some(
            "check that the S3 endpoint is reachable (AWS_ENDPOINT_URL or the remote's 'endpoint')",
        )
    } else if text.contains("NoSuchBucket") {
        Some("create the bucket, or fix the bucket name in the address")
    } else if text.contains("403")
        || text.contains("AccessDenied")
        || text.contains("SignatureDoesNotMatch")
        || text.contains("InvalidAccessKeyId")
    {
        Some("check AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY")
    } else {
        None
    };
    Error::Remote {
        action: action.into(),
        address,
        reason: text,
        hint: hint.map(String::from),
    }
}

/// An error and its sources on one line.
fn error_chain(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        let s_text = s.to_string();
        if !text.contains(&s_text) {
            text.push_str(": ");
            text.push_str(&s_text);
        }
        source = s.source();
    }
    text
}

impl ObjectStore for S3Repository {
    fn has_object(&self, digest: &Digest) -> Result<bool> {
        let key = self.object_key(digest)?;
        self.exists(&key)
            .map_err(|e| self.error("looking up", &format!("objects/{}", digest.to_hex()), e))
    }

    fn read_object_bytes(&self, digest: &Digest) -> Result<Vec<u8>> {
        let key = self.object_key(digest)?;
        let rel = format!("objects/{}", digest.to_hex());
        let bytes = self.runtime.block_on(async {
            let r = self.store.get(&key).await?;
            if r.meta.size > super::files::MAX_OBJECT_BYTES {
                return Ok(Err(r.meta.size));
            }
            r.bytes().await.map(Ok)
        });
        let bytes = match bytes {
            Ok(Ok(b)) => b,
            Ok(Err(size)) => {
                return Err(Error::Corrupt {
                    what: "object",
                    digest: *digest,
                    path: PathBuf::from(self.at(&rel)),
                    reason: format!(
                        "it holds {size} bytes, more than the {} an object may",
                        super::files::MAX_OBJECT_BYTES
                    ),
                })
            }
            Err(object_store::Error::NotFound { .. }) => return Err(Error::MissingObject(*digest)),
            Err(e) => return Err(self.error("reading", &rel, e)),
        };
        let actual = Digest::of(&bytes);
        if actual != *digest {
            return Err(Error::Corrupt {
                what: "object",
                digest: *digest,
                path: PathBuf::from(self.at(&rel)),
                reason: format!("content hashes to {}", actual.short()),
            });
        }
        Ok(bytes.to_vec())
    }

    fn write_object_bytes(&self, digest: &Digest, bytes: &[u8]) -> Result<()> {
        let rel = format!("objects/{}", digest.to_hex());
        let actual = Digest::of(bytes);
        if actual != *digest || crate::object::Object::decode(bytes).is_err() {
            return Err(Error::Corrupt {
                what: "object",
                digest: *digest,
                path: PathBuf::from(self.at(&rel)),
                reason: if actual != *digest {
                    format!("arrived hashing to {}", actual.short())
                } else {
                    "arrived in a form that does not decode".into()
                },
            });
        }
        let key = self.object_key(digest)?;
        self.put_small(&key, &rel, bytes.to_vec(), None)
    }

    fn list_objects(&self) -> Result<Vec<Digest>> {
        self.list_digests("objects/")
    }
}

/// Reads a payload's body as it arrives.
struct BodyReader {
    handle: tokio::runtime::Handle,
    stream: futures_util::stream::BoxStream<'static, object_store::Result<bytes::Bytes>>,
    chunk: bytes::Bytes,
}

impl Read for BodyReader {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        while self.chunk.is_empty() {
            match self.handle.block_on(self.stream.next()) {
                None => return Ok(0),
                Some(Ok(c)) => self.chunk = c,
                Some(Err(e)) => return Err(std::io::Error::other(error_chain(&e))),
            }
        }
        let n = buf.len().min(self.chunk.len());
        buf[..n].copy_from_slice(&self.chunk[..n]);
        let _ = self.chunk.split_to(n);
        Ok(n)
    }
}

impl PayloadStore for S3Repository {
    fn has_payload(&self, digest: &Digest) -> Result<bool> {
        let key = self.payload_key(digest)?;
        self.exists(&key)
            .map_err(|e| self.error("looking up", &format!("payloads/{}", digest.to_hex()), e))
    }

    fn open_payload_stream(&self, digest: &Digest) -> Result<(Box<dyn Read + Send>, u64, u32)> {
        let key = self.payload_key(digest)?;
        let got: std::result::Result<GetResult, _> = self.runtime.block_on(self.store.get(&key));
        let got = match got {
            Ok(g) => g,
            Err(object_store::Error::NotFound { .. }) => {
                return Err(Error::MissingPayload(*digest))
            }
            Err(e) => {
                return Err(self.error("reading", &format!("payloads/{}", digest.to_hex()), e))
            }
        };
        let mode = got
            .attributes
            .get(&Attribute::Metadata(MODE_METADATA.into()))
            .and_then(|m| u32::from_str_radix(m.as_ref(), 8).ok())
            .unwrap_or(0o444);
        let size = got.meta.size;
        let reader = BodyReader {
            handle: self.runtime.handle().clone(),
            stream: got.into_stream(),
            chunk: bytes::Bytes::new(),
        };
        Ok((Box::new(reader), size, mode))
    }

    fn write_finds_existing(&self) -> bool {
        true
    }

    fn write_payload_stream(
        &self,
        digest: &Digest,
        reader: &mut dyn Read,
        mode: u32,
    ) -> Result<u64> {
        let rel = format!("payloads/{}", digest.to_hex());
        let key = self.payload_key(digest)?;
        let mode = super::payload_mode(mode);
        let corrupt = |actual: Digest| Error::Corrupt {
            what: "payload",
            digest: *digest,
            path: PathBuf::from(self.at(&rel)),
            reason: format!("arrived hashing to {}", actual.short()),
        };
        let read_err = |e: std::io::Error| Error::Remote {
            action: "reading the content of payload".into(),
            address: digest.to_string(),
            reason: e.to_string(),
            hint: None,
        };
        // Up to the threshold: in memory, checked, then one PUT.
        let mut first = Vec::new();
        reader
            .take(MULTIPART_THRESHOLD as u64 + 1)
            .read_to_end(&mut first)
            .map_err(read_err)?;
        // Above a few round trips' worth of bytes, ask before sending: the server may
        // have it. (Radosgw also ignores a create-only condition when completing a
        // multipart upload.)
        if first.len() > ASK_FIRST_ABOVE
            && self
                .exists(&key)
                .map_err(|e| self.error("looking up", &rel, e))?
        {
            return Ok(0);
        }
        if first.len() <= MULTIPART_THRESHOLD {
            let actual = Digest::of(&first);
            if actual != *digest {
                return Err(corrupt(actual));
            }
            let n = first.len() as u64;
            // Create-only: a payload already stored answers 412 and is left as it is.
            let put = self.runtime.block_on(self.store.put_opts(
                &key,
                PutPayload::from(first),
                PutOptions {
                    mode: PutMode::Create,
                    attributes: mode_attributes(mode),
                    ..Default::default()
                },
            ));
            return match put {
                Ok(_) => Ok(n),
                Err(object_store::Error::AlreadyExists { .. }) => Ok(0),
                Err(e) => Err(self.error("writing", &rel, e)),
            };
        }

        // Larger: a multipart upload, completed only if the content hashes right.
        // (The upload spawns its part requests on the runtime.)
        let _context = self.runtime.enter();
        let mut hasher = Hasher::new();
        hasher.update(&first);
        let mut size = first.len() as u64;
        let upload = self
            .runtime
            .block_on(self.store.put_multipart_opts(
                &key,
                PutMultipartOptions {
                    attributes: mode_attributes(mode),
                    ..Default::default()
                },
            ))
            .map_err(|e| self.error("starting upload of", &rel, e))?;
        let mut writer = WriteMultipart::new_with_chunk_size(upload, PART_SIZE);
        writer.write(&first);
        drop(first);
        let mut buf = vec![0u8; 1 << 20];
        let result: Result<()> = (|| loop {
            crate::signals::check()?;
            self.runtime
                .block_on(writer.wait_for_capacity(PARTS_IN_FLIGHT))
                .map_err(|e| self.error("uploading", &rel, e))?;
            let n = match reader.read(&mut buf) {
                Ok(0) => return Ok(()),
                Ok(n) => n,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(read_err(e)),
            };
            hasher.update(&buf[..n]);
            size += n as u64;
            writer.write(&buf[..n]);
        })();
        let actual = hasher.finish();
        if let Err(e) = result {
            let _ = self.runtime.block_on(writer.abort());
            return Err(e);
        }
        if actual != *digest {
            let _ = self.runtime.block_on(writer.abort());
            return Err(corrupt(actual));
        }
        self.runtime
            .block_on(writer.finish())
            .map_err(|e| self.error("completing upload of", &rel, e))?;
        Ok(size)
    }

    fn list_payloads(&self) -> Result<Vec<Digest>> {
        self.list_digests("payloads/")
    }
}

impl TagStore for S3Repository {
    fn list_tag_names(&self, prefix: &str) -> Result<Vec<String>> {
        let prefix = prefix.trim_matches('/');
        let list_prefix = if prefix.is_empty() {
            "tags/".to_string()
        } else if validate_tag_name(prefix).is_err() {
            return Ok(Vec::new());
        } else if prefix.contains('/') {
            // A tag path: the tag itself and everything under it.
            format!("tags/{prefix}/")
        } else {
            format!("tags/{prefix}")
        };
        let mut names: Vec<String> = self
            .list(&list_prefix)?
            .into_iter()
            .filter_map(|k| {
                let (name, _) = k.strip_prefix("tags/")?.rsplit_once("/.")?;
                Some(name.to_string())
            })
            .collect();
        names.sort();
        names.dedup();
        Ok(names)
    }

    fn tag_versions(&self, name: &str) -> Result<Vec<TagEntry>> {
        validate_tag_name(name)?;
        let keys = self.tag_version_keys(name)?;
        let handle = self.runtime.handle().clone();
        // Read the versions not yet cached in parallel (each is one small GET).
        let missing: Vec<&String> = {
            let cache = self.tag_cache.lock().ok();
            keys.iter()
                .map(|(_, k)| k)
                .filter(|k| cache.as_ref().is_none_or(|c| !c.contains_key(*k)))
                .collect()
        };
        if missing.len() > 1 {
            let store = Arc::clone(&self.store);
            let fetched: Vec<(
                String,
                std::result::Result<bytes::Bytes, object_store::Error>,
            )> = handle.block_on(
                futures_util::stream::iter(missing.into_iter().map(|rel| {
                    let store = Arc::clone(&store);
                    let key = self.key(rel);
                    let rel = rel.clone();
                    async move {
                        let r = match key {
                            Ok(key) => match store.get(&key).await {
                                Ok(g) => g.bytes().await,
                                Err(e) => Err(e),
                            },
                            Err(_) => Err(object_store::Error::NotFound {
                                path: rel.clone(),
                                source: "invalid key".into(),
                            }),
                        };
                        (rel, r)
                    }
                }))
                .buffer_unordered(16)
                .collect(),
            );
            // What failed here is read again below, and reported there.
            if let Ok(mut c) = self.tag_cache.lock() {
                for (rel, r) in fetched {
                    if let Some(entry) = r.ok().and_then(|b| parse_tag_entry(&b)) {
                        c.insert(rel, entry);
                    }
                }
            }
        }
        keys.iter()
            .map(|(_, rel)| self.read_tag_version(rel))
            .collect()
    }

    fn set_tags(&self, tags: &[(String, Digest)]) -> Result<()> {
        for (name, _) in tags {
            validate_tag_name(name)?;
        }
        let empty = Digest::of(b"");
        for (_, target) in tags.iter().filter(|(_, t)| *t != empty) {
            if !self.has_object(target)? && !self.has_payload(target)? {
                return Err(Error::MissingObject(*target));
            }
        }
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0);
        let user = super::tags::current_user();
        for (name, target) in tags {
            self.append_tag(name, target, now, &user)?;
        }
        Ok(())
    }
}

fn parse_tag_entry(bytes: &[u8]) -> Option<TagEntry> {
    let text = std::str::from_utf8(bytes).ok()?;
    let mut parts = text.trim_end().splitn(3, ' ');
    let target = Digest::parse(parts.next()?).ok()?;
    let time = parts.next()?.parse().ok()?;
    Some(TagEntry {
        target,
        time,
        user: parts.next().unwrap_or("").to_string(),
    })
}

impl Repository for S3Repository {
    fn describe(&self) -> String {
        self.address.clone()
    }

    fn hold_for_writing(&self) -> Result<Box<dyn std::any::Any>> {
        // `spfs clean` does not run on S3 remotes: nothing to hold off.
        Ok(Box::new(()))
    }

    fn parallelism(&self) -> usize {
        PARALLELISM
    }
}
