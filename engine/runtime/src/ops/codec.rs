//! How an op's typed parameters are stored in its record: the one codec that
//! the quantizer's graph builder (encode) and the loader (decode) share.
//!
//! An op's parameters are a struct declared with `op_params!`; each field
//! has a [`Field`] type that says where it goes — a constant tensor slot
//! ([`Tensor`], `Option<Tensor>`), the fused activation byte ([`Act`]), or
//! parameter words (`u32`, `i8`, `f32`, arrays of them, …) — and the fields
//! of each kind take consecutive places in declaration order. Encoding and
//! decoding are generated from that one field list, so they cannot disagree;
//! decoding also rejects what encoding never writes (values out of range,
//! unused words not zero, unused slots not empty).

use edgedetr_format::{NONE, OpDesc};
use edgedetr_kernels::Act;

/// The parameter-carrying fields of an op record (everything but the
/// kind, stage, name and buffer ids).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Fields {
    /// The fused activation byte.
    pub act: u8,
    /// Constant tensor ids, unused [`NONE`].
    pub tensors: [u32; 6],
    /// Parameter words.
    pub params: [u32; 8],
}

impl Default for Fields {
    fn default() -> Self {
        Fields {
            act: Act::None as u8,
            tensors: [NONE; 6],
            params: [0; 8],
        }
    }
}

impl Fields {
    /// The fields of a record.
    pub fn of(op: &OpDesc) -> Fields {
        Fields {
            act: op.act,
            tensors: op.tensors,
            params: op.params,
        }
    }
}

/// Sequential reader of [`Fields`] (decoding).
pub struct Reader<'a> {
    f: &'a Fields,
    word: usize,
    tensor: usize,
    act: bool,
}

/// Sequential writer of [`Fields`] (encoding).
pub struct Writer {
    f: Fields,
    word: usize,
    tensor: usize,
}

impl<'a> Reader<'a> {
    /// A reader at the first word and slot.
    pub fn new(f: &'a Fields) -> Self {
        Reader {
            f,
            word: 0,
            tensor: 0,
            act: false,
        }
    }

    /// The next parameter word.
    pub fn word(&mut self) -> Result<u32, &'static str> {
        let w = *self
            .f
            .params
            .get(self.word)
            .ok_or("more parameters than an op record holds")?;
        self.word += 1;
        Ok(w)
    }

    /// The next tensor slot (`NONE` when empty).
    pub fn slot(&mut self) -> Result<u32, &'static str> {
        let t = *self
            .f
            .tensors
            .get(self.tensor)
            .ok_or("more tensors than an op record holds")?;
        self.tensor += 1;
        Ok(t)
    }

    /// The activation byte.
    pub fn act(&mut self) -> Result<Act, &'static str> {
        self.act = true;
        Act::from_u8(self.f.act).ok_or("unknown activation")
    }

    /// Succeeds when nothing was left unread: the remaining words are zero,
    /// the remaining slots empty, and an unread activation is none.
    pub fn finish(self) -> Result<(), &'static str> {
        if self.f.params[self.word.min(8)..].iter().any(|&w| w != 0) {
            return Err("unused parameter words must be zero");
        }
        if self.f.tensors[self.tensor.min(6)..]
            .iter()
            .any(|&t| t != NONE)
        {
            return Err("unused tensor slots must be empty");
        }
        if !self.act && self.f.act != Act::None as u8 {
            return Err("activation not supported here");
        }
        Ok(())
    }
}

impl Writer {
    /// An empty record: no activation, no tensors, zero words.
    pub fn new() -> Self {
        Writer {
            f: Fields::default(),
            word: 0,
            tensor: 0,
        }
    }

    /// Appends a parameter word. Panics past the record's 8 words (a
    /// parameter struct that cannot be stored is a programming error).
    pub fn word(&mut self, w: u32) {
        self.f.params[self.word] = w;
        self.word += 1;
    }

    /// Appends a tensor slot. Panics past the record's 6 slots.
    pub fn slot(&mut self, t: u32) {
        self.f.tensors[self.tensor] = t;
        self.tensor += 1;
    }

    /// Sets the activation byte.
    pub fn act(&mut self, a: Act) {
        self.f.act = a as u8;
    }

    /// The encoded fields.
    pub fn finish(self) -> Fields {
        self.f
    }
}

impl Default for Writer {
    fn default() -> Self {
        Writer::new()
    }
}

/// A type that one field of an op's parameters can have.
pub trait Field: Sized {
    /// Appends the value.
    fn put(&self, w: &mut Writer);
    /// Reads the value back, rejecting what `put` never writes.
    fn get(r: &mut Reader<'_>) -> Result<Self, &'static str>;
}

/// A required constant tensor (a filled slot).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Tensor(pub u32);

impl Field for Tensor {
    fn put(&self, w: &mut Writer) {
        w.slot(self.0);
    }
    fn get(r: &mut Reader<'_>) -> Result<Self, &'static str> {
        match r.slot()? {
            NONE => Err("missing constant tensor"),
            t => Ok(Tensor(t)),
        }
    }
}

impl Field for Option<Tensor> {
    fn put(&self, w: &mut Writer) {
        w.slot(self.map_or(NONE, |t| t.0));
    }
    fn get(r: &mut Reader<'_>) -> Result<Self, &'static str> {
        Ok(match r.slot()? {
            NONE => None,
            t => Some(Tensor(t)),
        })
    }
}

impl Field for Act {
    fn put(&self, w: &mut Writer) {
        w.act(*self);
    }
    fn get(r: &mut Reader<'_>) -> Result<Self, &'static str> {
        r.act()
    }
}

impl Field for u32 {
    fn put(&self, w: &mut Writer) {
        w.word(*self);
    }
    fn get(r: &mut Reader<'_>) -> Result<Self, &'static str> {
        r.word()
    }
}

/// An int8 value (zero point, clamp), stored as its i32 two's complement word.
impl Field for i8 {
    fn put(&self, w: &mut Writer) {
        w.word(i32::from(*self) as u32);
    }
    fn get(r: &mut Reader<'_>) -> Result<Self, &'static str> {
        i8::try_from(r.word()? as i32).map_err(|_| "zero points and clamps must be int8")
    }
}

/// An f32, stored as its bits.
impl Field for f32 {
    fn put(&self, w: &mut Writer) {
        w.word(self.to_bits());
    }
    fn get(r: &mut Reader<'_>) -> Result<Self, &'static str> {
        Ok(f32::from_bits(r.word()?))
    }
}

impl<T: Field + Copy, const N: usize> Field for [T; N] {
    fn put(&self, w: &mut Writer) {
        for v in self {
            v.put(w);
        }
    }
    fn get(r: &mut Reader<'_>) -> Result<Self, &'static str> {
        let mut out = [T::get(r)?; N];
        for v in out.iter_mut().skip(1) {
            *v = T::get(r)?;
        }
        Ok(out)
    }
}

/// Declares an op's parameter struct; `encode` and `decode` are generated
/// from the one field list (see the module docs).
macro_rules! op_params {
    (
        $(#[$m:meta])*
        pub struct $name:ident {
            $( $(#[$fm:meta])* $field:ident : $ty:ty, )*
        }
    ) => {
        $(#[$m])*
        #[derive(Clone, Copy, Debug, PartialEq)]
        pub struct $name {
            $( $(#[$fm])* pub $field: $ty, )*
        }

        impl $name {
            /// The names of the parameters, in storage order (the op table
            /// in the docs is checked against them).
            pub const FIELDS: &'static [&'static str] = &[$(stringify!($field)),*];

            /// The record fields these parameters are stored in.
            pub fn encode(&self) -> $crate::ops::codec::Fields {
                #[allow(unused_mut)]
                let mut w = $crate::ops::codec::Writer::new();
                $( $crate::ops::codec::Field::put(&self.$field, &mut w); )*
                w.finish()
            }

            /// The parameters stored in `f`; rejects values `encode` never
            /// writes.
            pub fn decode(f: &$crate::ops::codec::Fields) -> Result<Self, &'static str> {
                #[allow(unused_mut)]
                let mut r = $crate::ops::codec::Reader::new(f);
                let p = $name {
                    $( $field: $crate::ops::codec::Field::get(&mut r)?, )*
                };
                r.finish()?;
                Ok(p)
            }
        }
    };
}
pub(crate) use op_params;

#[cfg(test)]
mod tests {
    use super::*;

    op_params! {
        /// A test struct with every kind of field.
        pub struct Sample {
            /// A tensor.
            a: Tensor,
            /// An int8.
            zp: i8,
            /// Maybe a tensor.
            b: Option<Tensor>,
            /// An activation.
            act: Act,
            /// Floats.
            coef: [f32; 2],
        }
    }

    #[test]
    fn roundtrip_and_rejection() {
        let s = Sample {
            a: Tensor(3),
            zp: -5,
            b: None,
            act: Act::Silu,
            coef: [0.5, -2.0],
        };
        assert_eq!(Sample::FIELDS, ["a", "zp", "b", "act", "coef"]);
        let f = s.encode();
        assert_eq!(f.tensors[..2], [3, NONE]);
        assert_eq!(
            f.params[..3],
            [(-5i32) as u32, 0.5f32.to_bits(), (-2.0f32).to_bits()]
        );
        assert_eq!(f.act, Act::Silu as u8);
        assert_eq!(Sample::decode(&f), Ok(s));
        let mut bad = f;
        bad.params[0] = 200;
        assert!(Sample::decode(&bad).is_err());
        let mut bad = f;
        bad.params[5] = 1;
        assert_eq!(
            Sample::decode(&bad),
            Err("unused parameter words must be zero")
        );
        let mut bad = f;
        bad.tensors[0] = NONE;
        assert_eq!(Sample::decode(&bad), Err("missing constant tensor"));
        let mut bad = f;
        bad.tensors[4] = 9;
        assert!(Sample::decode(&bad).is_err());
        let mut bad = f;
        bad.act = 77;
        assert_eq!(Sample::decode(&bad), Err("unknown activation"));
    }
}
