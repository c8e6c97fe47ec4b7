//! Seal/open cost per message: the code is `sigmaai::bench::crypto`, inside the library so it reaches the
//! `pub(crate)` code it measures.

fn main() {
    sigmaai::bench::crypto::main()
}
