//! The logging shim: every log line of the firmware goes through these macros.
//!
//! With the `defmt` feature they forward to `defmt` (compact binary logging over
//! RTT, formatted on the host); without it they compile to nothing, while their
//! arguments are still type-checked so neither build warns about unused values.
//! Format strings use plain `{}`, which both understand. The idea follows
//! embassy's `fmt.rs` modules.
//!
//! Values that implement only `core::fmt::Display` (such as `edgedetr::Error`)
//! are logged through [`Disp`].
#![allow(unused_macros)]

macro_rules! debug {
    ($s:literal $(, $x:expr)* $(,)?) => {{
        #[cfg(feature = "defmt")]
        ::defmt::debug!($s $(, $x)*);
        #[cfg(not(feature = "defmt"))]
        let _ = ($( & $x ),*);
    }};
}

macro_rules! info {
    ($s:literal $(, $x:expr)* $(,)?) => {{
        #[cfg(feature = "defmt")]
        ::defmt::info!($s $(, $x)*);
        #[cfg(not(feature = "defmt"))]
        let _ = ($( & $x ),*);
    }};
}

macro_rules! warn {
    ($s:literal $(, $x:expr)* $(,)?) => {{
        #[cfg(feature = "defmt")]
        ::defmt::warn!($s $(, $x)*);
        #[cfg(not(feature = "defmt"))]
        let _ = ($( & $x ),*);
    }};
}

macro_rules! error {
    ($s:literal $(, $x:expr)* $(,)?) => {{
        #[cfg(feature = "defmt")]
        ::defmt::error!($s $(, $x)*);
        #[cfg(not(feature = "defmt"))]
        let _ = ($( & $x ),*);
    }};
}

/// Logs a value through its `core::fmt::Display` implementation (with defmt:
/// formatted on the target, so it costs `core::fmt` code; use it for errors,
/// not in hot paths).
pub struct Disp<'a, T: ?Sized>(pub &'a T);

#[cfg(feature = "defmt")]
impl<T: core::fmt::Display + ?Sized> defmt::Format for Disp<'_, T> {
    fn format(&self, f: defmt::Formatter<'_>) {
        defmt::write!(f, "{}", defmt::Display2Format(self.0));
    }
}
