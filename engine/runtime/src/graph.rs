//! What the static graph's records mean beyond their op kind: the stage an op
//! belongs to and how a buffer's shape reads as a channel-major map. The op
//! kinds themselves are [`crate::ops`].

use edgedetr_format::BufferDesc;

pub use crate::ops::OpKind;

/// The stage an op belongs to (for per-stage timing).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum Stage {
    /// MobileNetV4 backbone.
    Backbone = 0,
    /// AIFI + BiFPN neck.
    Neck = 1,
    /// RT-DETR decoder.
    Decoder = 2,
    /// In-graph postprocessing.
    Post = 3,
}

impl Stage {
    /// Every stage, in order.
    pub const ALL: [Stage; 4] = [Stage::Backbone, Stage::Neck, Stage::Decoder, Stage::Post];

    /// Decodes the stored byte.
    pub const fn from_u8(v: u8) -> Option<Stage> {
        match v {
            0 => Some(Stage::Backbone),
            1 => Some(Stage::Neck),
            2 => Some(Stage::Decoder),
            3 => Some(Stage::Post),
            _ => None,
        }
    }
    /// Lower-case name.
    pub const fn name(self) -> &'static str {
        match self {
            Stage::Backbone => "backbone",
            Stage::Neck => "neck",
            Stage::Decoder => "decoder",
            Stage::Post => "post",
        }
    }
}

/// A buffer's shape read as channel-major `(C, H, W)`: rank 1 is `(n, 1, 1)`,
/// rank 2 `[C, T]` is `(C, 1, T)`.
pub fn chw(b: &BufferDesc) -> Option<(usize, usize, usize)> {
    let s = b.shape;
    match b.rank {
        1 => Some((s[0] as usize, 1, 1)),
        2 => Some((s[0] as usize, 1, s[1] as usize)),
        3 => Some((s[0] as usize, s[1] as usize, s[2] as usize)),
        _ => None,
    }
}
