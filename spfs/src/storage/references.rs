//! Turning references (tags, `tag~N`, digests, digest prefixes, `a+b` stacks) into digests.

use super::LocalRepository;
use crate::digest::{is_hex, Digest, DIGEST_LEN, MIN_PREFIX_LEN};
use crate::error::{Error, Result};
use crate::object::{Layer, Manifest, Object, ObjectKind};

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
        if reference.contains('~') {
            let (name, n) = super::tags::parse_tag_version(reference)?;
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

    /// The manifests of a reference stack, bottom first (see [`Self::manifests_of`]).
    pub fn stack_manifests(&self, spec: &str) -> Result<Vec<Digest>> {
        self.manifests_of(&self.resolve_refs(spec)?)
    }

    /// The single tree seen when a stack's layers are merged (masks applied).
    pub fn merged_manifest(&self, spec: &str) -> Result<Manifest> {
        self.merge_manifests(&self.stack_manifests(spec)?)
    }

    /// The manifests of layers, platforms and manifests, bottom first: platforms
    /// expand (recursively) to their layers, layers give their manifests.
    pub fn manifests_of(&self, stack: &[Digest]) -> Result<Vec<Digest>> {
        let mut out = Vec::new();
        self.walk_stack(stack, 0, &mut |d, obj| {
            out.push(match obj {
                Object::Layer(l) => l.manifest,
                _ => *d,
            });
            Ok(())
        })?;
        Ok(out)
    }

    /// The layers of layers, platforms and manifests, bottom first: platforms expand
    /// (recursively), and a bare manifest is wrapped in a stored layer of its own, so
    /// the result can form a platform.
    pub fn layers_of(&self, stack: &[Digest]) -> Result<Vec<Digest>> {
        let mut out = Vec::new();
        self.walk_stack(stack, 0, &mut |d, obj| {
            out.push(match obj {
                Object::Manifest(_) => self.write_object(&Object::Layer(Layer::new(*d)))?,
                _ => *d,
            });
            Ok(())
        })?;
        Ok(out)
    }

    /// The tree seen when `manifests` (bottom first) are laid over each other.
    pub fn merge_manifests(&self, manifests: &[Digest]) -> Result<Manifest> {
        super::traits::merge_via(&|d| self.read_manifest(d), manifests)
    }

    /// Calls `visit` with every layer or manifest of a stack, bottom first, expanding
    /// platforms.
    fn walk_stack(
        &self,
        stack: &[Digest],
        depth: usize,
        visit: &mut dyn FnMut(&Digest, &Object) -> Result<()>,
    ) -> Result<()> {
        walk_stack_with(
            &|d| self.read_object(d),
            &|d| !self.has_object(d) && self.has_payload(d),
            stack,
            depth,
            visit,
        )
    }
}

/// Calls `visit` with every layer or manifest of a stack, bottom first, expanding
/// platforms, reading objects with `read`; `is_blob` says that a digest names a
/// payload rather than an object (refused with a clear error).
pub(super) fn walk_stack_with(
    read: &dyn Fn(&Digest) -> Result<Object>,
    is_blob: &dyn Fn(&Digest) -> bool,
    stack: &[Digest],
    depth: usize,
    visit: &mut dyn FnMut(&Digest, &Object) -> Result<()>,
) -> Result<()> {
    if depth > 64 {
        return Err(Error::PlatformTooDeep(64));
    }
    for d in stack {
        if is_blob(d) {
            return Err(Error::WrongKind {
                reference: d.to_string(),
                actual: "blob",
                expected: "a layer, platform or manifest",
            });
        }
        match read(d)? {
            Object::Platform(p) => walk_stack_with(read, is_blob, &p.layers, depth + 1, visit)?,
            obj => visit(d, &obj)?,
        }
    }
    Ok(())
}
