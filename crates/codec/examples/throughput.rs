//! Measures the per-core throughput of each stage of a backup on text-like data:
//! chunking (in memory and from a stream), SHA-256, zstd at several levels.
//!
//! `cargo run --release -p lifeboat-codec --example throughput [FILE]`
#![allow(clippy::unwrap_used)]

use std::time::Instant;

use lifeboat_codec::{ChunkerParams, compress};
use lifeboat_core::Digest;

fn main() {
    let words = [
        "invoice ",
        "customer ",
        "payment ",
        "shipped ",
        "refund ",
        "order 1234 ",
        "tenant ",
        "quota ",
    ];
    let mut x: u64 = 0x9e3779b97f4a7c15;
    let mut data: Vec<u8> = Vec::with_capacity(256 << 20);
    while data.len() < 256 << 20 {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        data.extend_from_slice(words[(x % 8) as usize].as_bytes());
    }
    if let Some(path) = std::env::args().nth(1) {
        data = std::fs::read(path).unwrap();
        data.truncate(256 << 20);
    }
    let mb = data.len() as f64 / (1 << 20) as f64;
    let avg: u32 = std::env::var("AVG").ok().and_then(|v| v.parse().ok()).unwrap_or(256 << 10);
    let p = ChunkerParams { min_size: avg / 4, avg_size: avg, max_size: avg * 4 };
    let t = Instant::now();
    let chunks = p.split(&data);
    println!("chunking   {:>7.0} MiB/s ({} chunks)", mb / t.elapsed().as_secs_f64(), chunks.len());
    // The same cut from a stream, as a backup reads it (1 MiB reads, as a capture hands
    // over): the chunker's own buffering counts too.
    let t = Instant::now();
    let streamed = tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
        let mut chunker = lifeboat_codec::StreamChunker::new(Pieces(&data), p);
        let mut n = 0;
        while chunker.next_chunk().await.unwrap().is_some() {
            n += 1;
        }
        n
    });
    println!("streaming  {:>7.0} MiB/s ({streamed} chunks)", mb / t.elapsed().as_secs_f64());
    let t = Instant::now();
    let d = Digest::of(&data);
    println!("sha-256    {:>7.0} MiB/s ({})", mb / t.elapsed().as_secs_f64(), d.short());
    for level in [1, 2, 3] {
        let t = Instant::now();
        let mut out = 0;
        for c in chunks.iter().take(100_000) {
            out += compress::compress(c, level).unwrap().len();
        }
        let inb: usize = chunks.iter().take(100_000).map(|c| c.len()).sum();
        println!(
            "zstd -{level}   {:>7.0} MiB/s, ratio {:.3}",
            inb as f64 / (1 << 20) as f64 / t.elapsed().as_secs_f64(),
            out as f64 / inb as f64
        );
    }
}

/// A reader handing out at most 1 MiB per read.
struct Pieces<'a>(&'a [u8]);

impl tokio::io::AsyncRead for Pieces<'_> {
    fn poll_read(
        mut self: std::pin::Pin<&mut Self>,
        _: &mut std::task::Context<'_>,
        buf: &mut tokio::io::ReadBuf<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        let n = self.0.len().min(buf.remaining()).min(1 << 20);
        buf.put_slice(&self.0[..n]);
        self.0 = &self.0[n..];
        std::task::Poll::Ready(Ok(()))
    }
}
