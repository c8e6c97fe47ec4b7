//! The benchmarks' code (`scripts/bench`; `benches/*.rs` only call in here). Inside the library
//! so what they measure can stay `pub(crate)`; never part of the test suite, and nothing in the
//! product calls it.

pub mod crypto;
pub mod ingest;
