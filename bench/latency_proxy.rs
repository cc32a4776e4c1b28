//! A TCP proxy that adds a round-trip time without limiting throughput (bench/s3.sh,
//! bench/s3-read-ab.sh). Standard library only: the benches compile it with `rustc -O`.
//!
//!     latency_proxy LISTEN_PORT TARGET_PORT RTT_MS
//!
//! Listens on 127.0.0.1:LISTEN_PORT and forwards every connection to 127.0.0.1:TARGET_PORT.
//! Each piece of data read (up to 256 KiB at a time) is stamped with its arrival time and
//! written to the other side at arrival + RTT_MS / 2, in both directions: a request and its
//! response take RTT_MS more, however many bytes follow. A connection's setup is not
//! delayed (the client's TCP handshake is with the proxy), so a new connection's first
//! request pays one round trip, not two. What is in flight is bounded by 64 MiB per
//! direction (a TCP window; at 100 ms that still passes more than 1 GiB/s on one
//! connection). Prints "ready" once listening.
//!
//! It does what bench/latency_proxy.py's `serve` does, with a thread per direction instead
//! of Python's event loop: on the bench's 2 cores the proxy's own CPU is taken from the
//! client it measures, and a link's latency costs a real client no CPU at all.

use std::collections::VecDeque;
use std::io::{Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::sync::{Arc, Condvar, Mutex};
use std::thread;
use std::time::{Duration, Instant};

const READ_SIZE: usize = 256 * 1024;
const MAX_IN_FLIGHT: usize = 64 * 1024 * 1024;

/// One direction's data in flight: pieces stamped with the time they are due, and their size.
#[derive(Default)]
struct Queue {
    pieces: VecDeque<(Instant, Vec<u8>)>,
    bytes: usize,
}

#[derive(Default)]
struct Pipe {
    queue: Mutex<Queue>,
    changed: Condvar,
}

impl Pipe {
    /// Adds a piece (an empty one marks the end of the stream); waits while too much is in
    /// flight.
    fn push(&self, due: Instant, data: Vec<u8>) {
        let mut q = self.queue.lock().unwrap_or_else(|e| e.into_inner());
        while q.bytes > MAX_IN_FLIGHT {
            q = self.changed.wait(q).unwrap_or_else(|e| e.into_inner());
        }
        q.bytes += data.len();
        q.pieces.push_back((due, data));
        self.changed.notify_all();
    }

    /// The next piece, waiting for one to arrive.
    fn pop(&self) -> (Instant, Vec<u8>) {
        let mut q = self.queue.lock().unwrap_or_else(|e| e.into_inner());
        loop {
            if let Some(piece) = q.pieces.pop_front() {
                q.bytes -= piece.1.len();
                self.changed.notify_all();
                return piece;
            }
            q = self.changed.wait(q).unwrap_or_else(|e| e.into_inner());
        }
    }
}

/// Reads `from` into the pipe until its end (or an error), stamping each piece.
fn read_side(mut from: TcpStream, pipe: Arc<Pipe>, delay: Duration) {
    // One buffer read into, each piece copied out at its size.
    let mut buf = vec![0u8; READ_SIZE];
    loop {
        let n = from.read(&mut buf).unwrap_or(0);
        pipe.push(Instant::now() + delay, buf[..n].to_vec());
        if n == 0 {
            return;
        }
    }
}

/// Writes the pipe's pieces to `to`, each no earlier than it is due; at the end of the
/// stream, or when `to` fails, shuts down both sockets of the connection.
fn write_side(mut to: TcpStream, from: TcpStream, pipe: Arc<Pipe>) {
    loop {
        let (due, data) = pipe.pop();
        let now = Instant::now();
        if due > now {
            thread::sleep(due - now);
        }
        if data.is_empty() {
            let _ = to.shutdown(Shutdown::Write);
            return;
        }
        if to.write_all(&data).is_err() {
            let _ = to.shutdown(Shutdown::Both);
            let _ = from.shutdown(Shutdown::Both);
            return;
        }
    }
}

fn forward(client: TcpStream, target_port: u16, delay: Duration) -> std::io::Result<()> {
    let upstream = TcpStream::connect(("127.0.0.1", target_port))?;
    client.set_nodelay(true)?;
    upstream.set_nodelay(true)?;
    for (from, to) in [(client.try_clone()?, upstream.try_clone()?), (upstream, client)] {
        let pipe = Arc::new(Pipe::default());
        let (reader, writer_from) = (from.try_clone()?, from);
        let reading = Arc::clone(&pipe);
        thread::spawn(move || read_side(reader, reading, delay));
        thread::spawn(move || write_side(to, writer_from, pipe));
    }
    Ok(())
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let parsed = match args.as_slice() {
        [_, listen, target, rtt] => {
            match (listen.parse::<u16>(), target.parse::<u16>(), rtt.parse::<f64>()) {
                (Ok(l), Ok(t), Ok(r)) if r >= 0.0 => Some((l, t, r)),
                _ => None,
            }
        }
        _ => None,
    };
    let Some((listen, target, rtt_ms)) = parsed else {
        eprintln!("usage: latency_proxy LISTEN_PORT TARGET_PORT RTT_MS");
        std::process::exit(2);
    };
    let delay = Duration::from_secs_f64(rtt_ms / 2000.0);
    let listener = match TcpListener::bind(("127.0.0.1", listen)) {
        Ok(l) => l,
        Err(e) => {
            eprintln!("latency_proxy: cannot listen on 127.0.0.1:{listen}: {e}");
            std::process::exit(1);
        }
    };
    println!("ready");
    for client in listener.incoming().flatten() {
        if let Err(e) = forward(client, target, delay) {
            eprintln!("latency_proxy: a connection to 127.0.0.1:{target} failed: {e}");
        }
    }
}
