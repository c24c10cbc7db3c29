//! Sealed frames against raw AES-256-GCM on the same buffer sizes: what sealing costs beyond the
//! cipher (framing, the counter nonce, the replay window). `scripts/bench` runs it and reads the
//! estimates into its table; `cargo bench -p clawtray-proto --bench sealed` on its own.

use aes_gcm::aead::{Aead, KeyInit};
use aes_gcm::{Aes256Gcm, Nonce};
use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};

use clawtray_proto::sealed::{Opener, Sealer};
use clawtray_proto::secret::SecretKey;

const SIZES: [usize; 3] = [64, 1024, 64 * 1024];

fn seal_open(c: &mut Criterion) {
    let key = SecretKey::from_bytes([7u8; 32]);
    let mut g = c.benchmark_group("crypto");
    for size in SIZES {
        let plain = vec![1u8; size];
        g.throughput(Throughput::Bytes(size as u64));
        g.bench_with_input(
            BenchmarkId::new("sealed_roundtrip", size),
            &plain,
            |b, p| {
                let mut sealer = Sealer::new(&key);
                let mut opener = Opener::new(&key);
                b.iter(|| {
                    let f = sealer.seal(p).expect("seal");
                    opener.open(&f).expect("open")
                });
            },
        );
        g.bench_with_input(
            BenchmarkId::new("raw_aes_gcm_roundtrip", size),
            &plain,
            |b, p| {
                let cipher = Aes256Gcm::new(key.expose().into());
                let mut counter = 0u64;
                b.iter(|| {
                    counter += 1;
                    let mut n = [0u8; 12];
                    n[4..].copy_from_slice(&counter.to_be_bytes());
                    let nonce = Nonce::from_slice(&n);
                    let ct = cipher.encrypt(nonce, p.as_slice()).expect("encrypt");
                    cipher.decrypt(nonce, ct.as_slice()).expect("decrypt")
                });
            },
        );
    }
    g.finish();
}

criterion_group!(benches, seal_open);
criterion_main!(benches);
