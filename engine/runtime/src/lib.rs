//! edgedetr: an RT-DETR inference engine for CPUs, from one flat model file,
//! allocation-free per frame.
//!
//! A [`Model`] is a validated zero-copy view over model-file bytes (see
//! `edgedetr_format` for the layout); a [`Session`] prepares its static graph
//! once (kernels, algorithms, expanded weights) and runs it over an arena the
//! caller provides ([`Model::arena_size`] bytes), so running a frame
//! allocates nothing. What each op kind means is [`ops`]. The crate is
//! `no_std` (one thread); the `std` feature adds run-time CPU detection, file
//! helpers ([`std_io`]) and a persistent thread pool ([`ThreadPool`],
//! [`Session::run_with`]).
#![cfg_attr(not(feature = "std"), no_std)]
#![deny(missing_docs)]

pub mod detect;
pub mod error;
pub mod graph;
pub mod model;
pub mod ops;
#[cfg(feature = "std")]
pub mod pool;
pub mod session;
#[cfg(feature = "std")]
pub mod std_io;
mod view;

pub use detect::{Detection, PostProcess};
pub use edgedetr_format as format;
pub use edgedetr_kernels as kernels;
pub use error::Error;
pub use graph::{OpKind, Stage};
pub use model::{InputDType, Model};
#[cfg(feature = "std")]
pub use pool::ThreadPool;
pub use session::Session;
pub use view::Aligned64;
