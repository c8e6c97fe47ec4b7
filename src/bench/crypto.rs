//! Seal/open cost per message: `scripts/bench` (release build; never a timed test).
//!
//! Measures what each message pays once its keys are cached (the common case): AES-256-GCM
//! sealing with the versioned header and bound associated data, opening, and blind-index
//! tokens. A cache miss adds one key-store read and one or two key unwraps (see docs/security.md).

#![allow(clippy::unwrap_used)]

use std::time::{Duration, Instant};

use crate::crypto::{
    aead::{ContextBuilder, DataKey, SecretKey},
    blind::normalize_words,
};
use uuid::Uuid;

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    sorted[((sorted.len() as f64 - 1.0) * p).round() as usize]
}

fn report(name: &str, bytes: usize, mut samples: Vec<Duration>) {
    samples.sort();
    let total: Duration = samples.iter().sum();
    let per_op = total / samples.len() as u32;
    let mib_s = if bytes > 0 {
        format!(
            "{:>9.1} MiB/s",
            bytes as f64 / per_op.as_secs_f64() / (1024.0 * 1024.0)
        )
    } else {
        String::new()
    };
    println!(
        "{name:<28} {:>10.0} ops/s  p50 {:>8.2?}  p99 {:>8.2?}  max {:>8.2?} {mib_s}",
        1.0 / per_op.as_secs_f64(),
        percentile(&samples, 0.50),
        percentile(&samples, 0.99),
        samples[samples.len() - 1],
    );
}

fn measure(iters: usize, mut f: impl FnMut()) -> Vec<Duration> {
    for _ in 0..iters / 10 {
        f(); // warm-up
    }
    (0..iters)
        .map(|_| {
            let t = Instant::now();
            f();
            t.elapsed()
        })
        .collect()
}

/// `cargo bench --bench crypto`: see the module documentation.
pub fn main() {
    let key = DataKey::new(Uuid::new_v4(), 1, &SecretKey::random());
    let context = ContextBuilder::new("sigmaai/aad/v1")
        .uuid(Uuid::new_v4())
        .uuid(Uuid::new_v4())
        .bytes(b"messages")
        .bytes(b"body")
        .uuid(Uuid::new_v4())
        .finish();
    println!(
        "per operation, keys cached, one thread ({} cores available)",
        std::thread::available_parallelism().map_or(1, |n| n.get())
    );
    for (label, size) in [
        ("seal 160 B (a chat line)", 160),
        ("seal 1 KiB", 1024),
        ("seal 16 KiB", 16 * 1024),
        ("seal 1 MiB (media)", 1024 * 1024),
    ] {
        let plaintext = vec![0x61u8; size];
        let iters = if size >= 1024 * 1024 { 200 } else { 20_000 };
        report(
            label,
            size,
            measure(iters, || {
                std::hint::black_box(key.seal(&context, &plaintext).unwrap());
            }),
        );
        let sealed = key.seal(&context, &plaintext).unwrap();
        report(
            &label.replacen("seal", "open", 1),
            size,
            measure(iters, || {
                std::hint::black_box(key.open(&context, &sealed).unwrap());
            }),
        );
    }
    let index_key = crate::crypto::blind::BlindIndexKey::new(zeroize::Zeroizing::new([7u8; 32]));
    report(
        "blind phone token",
        0,
        measure(20_000, || {
            std::hint::black_box(index_key.phone("5511987654321"));
        }),
    );
    report(
        "blind words (3-word name)",
        0,
        measure(20_000, || {
            std::hint::black_box(index_key.words("José da Conceição"));
        }),
    );
    report(
        "normalize words only",
        0,
        measure(20_000, || {
            std::hint::black_box(normalize_words("José da Conceição"));
        }),
    );
}
