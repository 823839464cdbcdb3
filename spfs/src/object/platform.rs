//! Platforms: ordered stacks of layers.

use crate::digest::Digest;
use crate::encoding::{DecodeError, Reader, Writer};

/// An ordered stack of layers, bottom first.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Platform {
    /// Layer digests from bottom to top.
    pub layers: Vec<Digest>,
}

impl Platform {
    pub(super) fn encode_body(&self, w: &mut Writer) {
        w.u32(self.layers.len() as u32);
        for l in &self.layers {
            w.digest(l);
        }
    }

    pub(super) fn decode_body(r: &mut Reader) -> Result<Self, DecodeError> {
        let count = r.u32()? as usize;
        if count > r.remaining() / 32 {
            return Err(DecodeError(format!(
                "layer count {count} exceeds the object size"
            )));
        }
        let layers = (0..count).map(|_| r.digest()).collect::<Result<_, _>>()?;
        Ok(Platform { layers })
    }
}
