//! Webhook ingest, inbox, approve, portal, pages, SSE and fairness benchmarks: the code is `sigmaai::bench::ingest`, inside the library so it reaches the
//! `pub(crate)` code it measures.

fn main() -> anyhow::Result<()> {
    sigmaai::bench::ingest::main()
}
