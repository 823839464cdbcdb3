//! The immutable objects of the store: manifests, layers and platforms.
//!
//! Blobs are not objects of their own: a blob is a payload, addressed by the BLAKE3
//! digest of its bytes. Every object is encoded canonically (docs/object-encoding.md)
//! and addressed by the BLAKE3 digest of that encoding.

mod layer;
mod manifest;
mod platform;

pub use layer::Layer;
pub use manifest::{Entry, EntryKind, FileEntry, Manifest, Tree};
pub use platform::Platform;

use crate::digest::Digest;
use crate::encoding::{DecodeError, Reader, Writer};

/// Leading bytes of every encoded object.
pub const MAGIC: &[u8; 4] = b"SPFS";
/// Version of the object encoding written by this build.
pub const ENCODING_VERSION: u8 = 1;

/// What kind of thing a digest names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ObjectKind {
    /// File content stored as a payload.
    Blob,
    /// A directory tree.
    Manifest,
    /// A manifest with annotations.
    Layer,
    /// An ordered stack of layers.
    Platform,
}

impl ObjectKind {
    fn tag(self) -> u8 {
        match self {
            ObjectKind::Blob => 0,
            ObjectKind::Manifest => 1,
            ObjectKind::Layer => 2,
            ObjectKind::Platform => 3,
        }
    }
    /// Lower-case name of the kind.
    pub fn name(self) -> &'static str {
        match self {
            ObjectKind::Blob => "blob",
            ObjectKind::Manifest => "manifest",
            ObjectKind::Layer => "layer",
            ObjectKind::Platform => "platform",
        }
    }
}

impl std::fmt::Display for ObjectKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// Any object stored under `objects/`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Object {
    /// A directory tree.
    Manifest(Manifest),
    /// A manifest with annotations.
    Layer(Layer),
    /// An ordered stack of layers.
    Platform(Platform),
}

impl Object {
    /// The kind of this object.
    pub fn kind(&self) -> ObjectKind {
        match self {
            Object::Manifest(_) => ObjectKind::Manifest,
            Object::Layer(_) => ObjectKind::Layer,
            Object::Platform(_) => ObjectKind::Platform,
        }
    }

    /// The canonical encoding of this object.
    pub fn encode(&self) -> Vec<u8> {
        let mut w = Writer::new();
        w.raw(MAGIC);
        w.u8(ENCODING_VERSION);
        w.u8(self.kind().tag());
        match self {
            Object::Manifest(m) => m.encode_body(&mut w),
            Object::Layer(l) => l.encode_body(&mut w),
            Object::Platform(p) => p.encode_body(&mut w),
        }
        w.finish()
    }

    /// The digest of the canonical encoding.
    pub fn digest(&self) -> Digest {
        Digest::of(&self.encode())
    }

    /// Decodes an object, rejecting anything that is not exactly one canonical encoding.
    pub fn decode(bytes: &[u8]) -> Result<Object, DecodeError> {
        let mut r = Reader::new(bytes);
        if r.take(4)? != MAGIC {
            return Err(DecodeError("not an spfs object (bad magic bytes)".into()));
        }
        let version = r.u8()?;
        if version != ENCODING_VERSION {
            return Err(DecodeError(format!(
                "object encoding version {version} is not supported (this build reads version {ENCODING_VERSION})"
            )));
        }
        let obj = match r.u8()? {
            1 => Object::Manifest(Manifest::decode_body(&mut r)?),
            2 => Object::Layer(Layer::decode_body(&mut r)?),
            3 => Object::Platform(Platform::decode_body(&mut r)?),
            t => return Err(DecodeError(format!("unknown object kind tag {t}"))),
        };
        if r.remaining() != 0 {
            return Err(DecodeError(format!(
                "{} trailing bytes after the object",
                r.remaining()
            )));
        }
        Ok(obj)
    }

    /// Digests this object refers to directly, with their kinds.
    pub fn children(&self) -> Vec<(Digest, ObjectKind)> {
        match self {
            Object::Manifest(m) => m.files().map(|f| (f.digest, ObjectKind::Blob)).collect(),
            Object::Layer(l) => vec![(l.manifest, ObjectKind::Manifest)],
            Object::Platform(p) => p.layers.iter().map(|d| (*d, ObjectKind::Layer)).collect(),
        }
    }
}

#[cfg(test)]
mod tests;
