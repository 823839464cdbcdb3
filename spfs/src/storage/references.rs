//! Turning references (tags, `tag~N`, digests, digest prefixes, `a+b` stacks) into digests.

use super::LocalRepository;
use crate::digest::{is_hex, Digest, DIGEST_LEN, MIN_PREFIX_LEN};
use crate::error::{Error, Result};
use crate::object::{Manifest, Object, ObjectKind};

impl LocalRepository {
    /// Resolves one reference (no `+`) to a digest.
    pub fn resolve(&self, reference: &str) -> Result<Digest> {
        let reference = reference.trim();
        if reference.is_empty() {
            return Err(Error::InvalidReference {
                reference: reference.into(),
                reason: "it is empty".into(),
            });
        }
        if let Some((name, n)) = reference.rsplit_once('~') {
            let n: usize = n.parse().map_err(|_| Error::InvalidReference {
                reference: reference.into(),
                reason: "expected a number after '~', as in 'name~1'".into(),
            })?;
            let history = self.tag_history(name)?;
            if history.is_empty() {
                return Err(Error::UnknownReference(reference.into()));
            }
            return history
                .get(n)
                .map(|e| e.target)
                .ok_or(Error::TagHistoryTooShort {
                    name: name.into(),
                    requested: n,
                    available: history.len(),
                });
        }
        if reference.len() == DIGEST_LEN * 2 && is_hex(reference) {
            let d = Digest::parse(reference)?;
            if self.has_object(&d) || self.has_payload(&d) {
                return Ok(d);
            }
            return Err(Error::UnknownReference(reference.into()));
        }
        if super::validate_tag_name(reference).is_ok() {
            if let Some(d) = self.resolve_tag(reference)? {
                return Ok(d);
            }
        }
        if is_hex(reference) {
            if reference.len() < MIN_PREFIX_LEN {
                return Err(Error::InvalidReference {
                    reference: reference.into(),
                    reason: format!("a digest prefix needs at least {MIN_PREFIX_LEN} characters"),
                });
            }
            let found = self.find_prefix(reference)?;
            return match found.len() {
                0 => Err(Error::UnknownReference(reference.into())),
                1 => Ok(found[0]),
                _ => Err(Error::AmbiguousReference {
                    prefix: reference.into(),
                    candidates: found,
                }),
            };
        }
        Err(Error::UnknownReference(reference.into()))
    }

    /// Resolves a reference that may stack several with `+` (bottom first).
    /// `-` and the empty string name the empty stack.
    pub fn resolve_refs(&self, spec: &str) -> Result<Vec<Digest>> {
        let spec = spec.trim();
        if spec.is_empty() || spec == "-" {
            return Ok(Vec::new());
        }
        // A tag may itself contain '+': the whole string wins over a split.
        if spec.contains('+') {
            if let Ok(d) = self.resolve(spec) {
                return Ok(vec![d]);
            }
            return spec
                .split('+')
                .filter(|s| !s.is_empty())
                .map(|s| self.resolve(s))
                .collect();
        }
        Ok(vec![self.resolve(spec)?])
    }

    /// What kind of thing a digest names.
    pub fn kind_of(&self, digest: &Digest) -> Result<ObjectKind> {
        if self.has_object(digest) {
            return Ok(self.read_object(digest)?.kind());
        }
        if self.has_payload(digest) {
            return Ok(ObjectKind::Blob);
        }
        Err(Error::MissingObject(*digest))
    }

    /// The manifests of a reference stack, bottom first: platforms expand to their
    /// layers, layers give their manifests.
    pub fn stack_manifests(&self, spec: &str) -> Result<Vec<Digest>> {
        let mut out = Vec::new();
        for d in self.resolve_refs(spec)? {
            self.push_manifests(&d, spec, &mut out, 0)?;
        }
        Ok(out)
    }

    fn push_manifests(
        &self,
        d: &Digest,
        spec: &str,
        out: &mut Vec<Digest>,
        depth: usize,
    ) -> Result<()> {
        if depth > 64 {
            return Err(Error::InvalidInput(format!(
                "platforms nest more than 64 deep under {spec}"
            )));
        }
        if !self.has_object(d) && self.has_payload(d) {
            return Err(Error::WrongKind {
                reference: d.to_string(),
                actual: "blob",
                expected: "a layer, platform or manifest",
            });
        }
        match self.read_object(d)? {
            Object::Manifest(_) => out.push(*d),
            Object::Layer(l) => out.push(l.manifest),
            Object::Platform(p) => {
                for l in &p.layers {
                    self.push_manifests(l, spec, out, depth + 1)?;
                }
            }
        }
        Ok(())
    }

    /// The layer (or manifest) digests of a reference stack, bottom first.
    pub fn stack_layers(&self, spec: &str) -> Result<Vec<Digest>> {
        let mut out = Vec::new();
        for d in self.resolve_refs(spec)? {
            match self.read_object(&d)? {
                Object::Platform(p) => out.extend(p.layers),
                _ => out.push(d),
            }
        }
        Ok(out)
    }

    /// The single tree seen when a stack's layers are merged (masks applied).
    pub fn merged_manifest(&self, spec: &str) -> Result<Manifest> {
        let mut merged = Manifest::default();
        for m in self.stack_manifests(spec)? {
            merged.overlay(&self.read_manifest(&m)?);
        }
        Ok(merged)
    }
}
