//! What a long quantization reports while it runs: which phase it is in, how
//! far along, and the calibration images it had to skip.

use core::fmt;

/// A phase of [`crate::build_int8`] and of the report that follows it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Phase {
    /// First pass over the calibration images: each tensor's value range.
    Ranges,
    /// Second pass: histograms within those ranges, and GPTQ's input second
    /// moments.
    Statistics,
    /// GPTQ rounding of the int8 convolutions' weights, one layer per step.
    Rounding,
    /// The report's local SQNR, one image per step ([`crate::report::layer_report`]).
    Report,
    /// The end-to-end check against fp32 on held-out images, one image per
    /// step ([`crate::check::compare`]).
    Check,
}

impl Phase {
    /// A short label for progress lines.
    pub fn label(self) -> &'static str {
        match self {
            Phase::Ranges => "calibration 1/2: activation ranges",
            Phase::Statistics => "calibration 2/2: histograms and GPTQ statistics",
            Phase::Rounding => "GPTQ weight rounding",
            Phase::Report => "local SQNR per layer",
            Phase::Check => "end-to-end check against fp32",
        }
    }

    /// What one step of the phase is.
    pub fn unit(self) -> &'static str {
        match self {
            Phase::Rounding => "layers",
            _ => "images",
        }
    }
}

impl fmt::Display for Phase {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.label())
    }
}

/// One progress report.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Event<'a> {
    /// `done` of `total` steps of `phase` are finished.
    Step {
        /// The phase.
        phase: Phase,
        /// Steps finished (1 after the first).
        done: usize,
        /// Steps in the phase.
        total: usize,
    },
    /// A calibration image could not be read and is left out.
    Skipped {
        /// The image's label (its path).
        image: &'a str,
        /// Why.
        reason: &'a str,
    },
}

/// A progress callback.
pub type Progress<'p> = dyn FnMut(Event<'_>) + 'p;
