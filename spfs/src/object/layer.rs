//! Layers: a manifest plus annotations.

use std::collections::BTreeMap;

use crate::digest::Digest;
use crate::encoding::{DecodeError, Reader, Writer};

/// A manifest with key/value annotations (for example the package that made it).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Layer {
    /// The layer's directory tree.
    pub manifest: Digest,
    /// Annotations, sorted by key.
    pub annotations: BTreeMap<String, String>,
}

impl Layer {
    /// A layer with no annotations.
    pub fn new(manifest: Digest) -> Self {
        Layer {
            manifest,
            annotations: BTreeMap::new(),
        }
    }

    pub(super) fn encode_body(&self, w: &mut Writer) {
        w.digest(&self.manifest);
        w.u32(self.annotations.len() as u32);
        for (k, v) in &self.annotations {
            w.u16(k.len() as u16);
            w.raw(k.as_bytes());
            w.u32(v.len() as u32);
            w.raw(v.as_bytes());
        }
    }

    pub(super) fn decode_body(r: &mut Reader) -> Result<Self, DecodeError> {
        let manifest = r.digest()?;
        let count = r.u32()? as usize;
        let mut annotations = BTreeMap::new();
        let mut previous: Option<String> = None;
        for _ in 0..count {
            let klen = r.u16()? as usize;
            let key = utf8(r.take(klen)?)?;
            let vlen = r.u32()? as usize;
            let value = utf8(r.take(vlen)?)?;
            if previous.as_ref().is_some_and(|p| *p >= key) {
                return Err(DecodeError("annotations not in canonical order".into()));
            }
            previous = Some(key.clone());
            annotations.insert(key, value);
        }
        Ok(Layer {
            manifest,
            annotations,
        })
    }
}

fn utf8(b: &[u8]) -> Result<String, DecodeError> {
    String::from_utf8(b.to_vec()).map_err(|_| DecodeError("annotation is not UTF-8".into()))
}
