//! Raw AES-256-GCM vs. the streaming layer, on the same plaintext.
//!
//!     cargo bench -p vault --bench crypto
//!
//! All cases process the same 16 MiB of random plaintext (made once per run)
//! and report throughput in plaintext bytes:
//!
//! - `raw/encrypt`, `raw/decrypt`: `aes-gcm`'s `encrypt_inout_detached` /
//!   `decrypt_inout_detached` over 64 KiB slices of one buffer, in place,
//!   with the same nonce layout and 32-byte AAD as `SegmentCipher`. No copies,
//!   no allocation: the ceiling for the streaming layer.
//! - `stream/encrypt/<chunk>`, `stream/decrypt/<chunk>`:
//!   `vault::crypto::encrypt_stream` / `decrypt_stream` fed the same bytes as
//!   a stream of `Bytes` chunks of 64 KiB or 8 KiB, driven by
//!   `futures::executor::block_on`, output consumed and dropped.
//! - `context/*`: what else runs on the upload path (`put_document` hashes
//!   the plaintext with SHA-256 on the same task as the encryption), to
//!   explain end-to-end figures: SHA-256 alone and encryption + SHA-256.
//!
//! Target (BENCHMARKS.md): streaming >= 85% of raw.

use std::time::Duration;

use aes_gcm::aead::{AeadInOut, Nonce, Tag};
use aes_gcm::{Aes256Gcm, KeyInit};
use bytes::Bytes;
use criterion::{BatchSize, Criterion, Throughput, criterion_group, criterion_main};
use futures::StreamExt;
use sha2::{Digest, Sha256};
use uuid::Uuid;
use vault::crypto::{self, DataKey, HEADER_LEN, SEGMENT_SIZE};

const TOTAL: usize = 16 * 1024 * 1024;
type Infallible = std::convert::Infallible;

fn random_bytes(n: usize) -> Vec<u8> {
    let mut v = vec![0u8; n];
    crypto::fill_random(&mut v);
    v
}

fn chunked(data: &Bytes, chunk: usize) -> Vec<Bytes> {
    (0..data.len()).step_by(chunk).map(|i| data.slice(i..(i + chunk).min(data.len()))).collect()
}

fn stream_of(chunks: &[Bytes]) -> impl futures::Stream<Item = Result<Bytes, Infallible>> + Send + 'static {
    futures::stream::iter(chunks.iter().cloned().map(Ok).collect::<Vec<_>>())
}

/// Drain a stream, returning the number of bytes it produced.
fn drain<S, E>(s: S) -> usize
where
    S: futures::Stream<Item = Result<Bytes, E>>,
    E: std::fmt::Debug,
{
    futures::executor::block_on(s.fold(0usize, |n, b| async move { n + b.expect("stream item").len() }))
}

/// The nonce `SegmentCipher` uses: prefix (7) || counter BE (4) || last (1).
fn nonce(prefix: &[u8; 7], index: u32, last: bool) -> Nonce<Aes256Gcm> {
    let mut n = [0u8; 12];
    n[..7].copy_from_slice(prefix);
    n[7..11].copy_from_slice(&index.to_be_bytes());
    n[11] = u8::from(last);
    n.into()
}

fn bench(c: &mut Criterion) {
    let plain = Bytes::from(random_bytes(TOTAL));
    let key = DataKey::generate();
    let id = Uuid::new_v4();

    // Raw primitive, configured like SegmentCipher.
    let cipher = Aes256Gcm::new(&(*key.as_bytes()).into());
    let prefix: [u8; 7] = random_bytes(7).try_into().unwrap();
    let aad: [u8; HEADER_LEN] = random_bytes(HEADER_LEN).try_into().unwrap();
    let segments = TOTAL.div_ceil(SEGMENT_SIZE);

    let raw_encrypt = |buf: &mut Vec<u8>| -> Vec<Tag<Aes256Gcm>> {
        buf.chunks_mut(SEGMENT_SIZE)
            .enumerate()
            .map(|(i, seg)| {
                let last = i + 1 == segments;
                cipher.encrypt_inout_detached(&nonce(&prefix, i as u32, last), &aad, seg.into()).expect("encrypt")
            })
            .collect()
    };
    // Ciphertext and tags for the raw decryption case.
    let mut raw_ct = plain.to_vec();
    let raw_tags = raw_encrypt(&mut raw_ct);

    // A real object for the streaming decryption case.
    let object = Bytes::from(
        futures::executor::block_on(
            crypto::encrypt_stream(&key, id, stream_of(&chunked(&plain, SEGMENT_SIZE)))
                .map(|r| r.unwrap())
                .collect::<Vec<Bytes>>(),
        )
        .concat(),
    );
    assert_eq!(object.len() as u64, crypto::ciphertext_len(TOTAL as u64));

    let mut g = c.benchmark_group("aes256gcm_16MiB");
    g.throughput(Throughput::Bytes(TOTAL as u64));
    g.sample_size(20);
    g.warm_up_time(Duration::from_secs(1));
    g.measurement_time(Duration::from_secs(4));

    g.bench_function("raw/encrypt", |b| {
        b.iter_batched_ref(|| plain.to_vec(), |buf| raw_encrypt(buf), BatchSize::PerIteration)
    });
    g.bench_function("raw/decrypt", |b| {
        b.iter_batched_ref(
            || raw_ct.clone(),
            |buf| {
                for (i, seg) in buf.chunks_mut(SEGMENT_SIZE).enumerate() {
                    let last = i + 1 == segments;
                    cipher
                        .decrypt_inout_detached(&nonce(&prefix, i as u32, last), &aad, seg.into(), &raw_tags[i])
                        .expect("decrypt");
                }
            },
            BatchSize::PerIteration,
        )
    });

    for chunk in [64 * 1024, 8 * 1024] {
        let kib = chunk / 1024;
        let plain_chunks = chunked(&plain, chunk);
        let object_chunks = chunked(&object, chunk);
        g.bench_function(format!("stream/encrypt/{kib}KiB"), |b| {
            b.iter_batched(
                || stream_of(&plain_chunks),
                |s| drain(crypto::encrypt_stream(&key, id, s)),
                BatchSize::PerIteration,
            )
        });
        g.bench_function(format!("stream/decrypt/{kib}KiB"), |b| {
            b.iter_batched(
                || stream_of(&object_chunks),
                |s| {
                    let n = drain(crypto::decrypt_stream(crypto::Decryptor::new(&key, id, None, 1), s));
                    assert_eq!(n, TOTAL);
                    n
                },
                BatchSize::PerIteration,
            )
        });
    }

    // Context for the end-to-end upload path.
    let plain_chunks = chunked(&plain, 64 * 1024);
    g.bench_function("context/sha256", |b| {
        b.iter(|| {
            let mut h = Sha256::new();
            for c in &plain_chunks {
                h.update(c);
            }
            h.finalize()
        })
    });
    g.bench_function("context/stream_encrypt+sha256/64KiB", |b| {
        b.iter_batched(
            || stream_of(&plain_chunks),
            |s| {
                // As put_document does: hash each chunk on the way into encrypt_stream.
                let digest = std::sync::Arc::new(std::sync::Mutex::new(Sha256::new()));
                let d2 = digest.clone();
                let counted = s.map(move |item| {
                    if let Ok(chunk) = &item {
                        d2.lock().unwrap().update(chunk);
                    }
                    item
                });
                let n = drain(crypto::encrypt_stream(&key, id, counted));
                let _ = digest.lock().unwrap().clone().finalize();
                n
            },
            BatchSize::PerIteration,
        )
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
