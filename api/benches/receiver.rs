//! The benchmarks' webhook receiver: answers 200 to every POST on 127.0.0.1, counts them, and
//! answers `GET /count` with how many it has had. It checks nothing (the tests verify signatures).
//!
//! Built by `benchlib.py` with `rustc -O` alone (the standard library, no crate), and run as a
//! process of its own: a receiver is the integrator's, on their machine, but here it shares the
//! two cores with the API, PostgreSQL, the worker and wrk, and its CPU is counted apart from the
//! bench's. A message costs it 17–23 µs of CPU here (the asyncio receiver it replaces: 20–25),
//! most of it the kernel's loopback TCP.
//!
//! Prints `port <n>` on its first line once it listens; ends when its standard input closes.

use std::io::{BufRead, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

fn main() {
    let listener = TcpListener::bind("127.0.0.1:0").expect("a port on 127.0.0.1");
    println!("port {}", listener.local_addr().expect("the address listened on").port());
    std::io::stdout().flush().expect("stdout");
    // The bench holds our standard input: when it ends, so do we.
    std::thread::spawn(|| {
        let mut sink = Vec::new();
        let _ = std::io::stdin().lock().read_to_end(&mut sink);
        std::process::exit(0);
    });
    let received = Arc::new(AtomicU64::new(0));
    for stream in listener.incoming().flatten() {
        let received = Arc::clone(&received);
        std::thread::spawn(move || serve(stream, &received));
    }
}

/// Serves one kept-alive connection until its peer closes it.
fn serve(stream: TcpStream, received: &AtomicU64) {
    let _ = stream.set_nodelay(true);
    let Ok(mut writer) = stream.try_clone() else { return };
    let mut reader = std::io::BufReader::with_capacity(64 * 1024, stream);
    let mut line = String::new();
    loop {
        // The request line, then the headers up to the empty line.
        line.clear();
        match reader.read_line(&mut line) {
            Ok(0) | Err(_) => return,
            Ok(_) => {}
        }
        let counting = line.starts_with("GET /count");
        let mut length = 0usize;
        loop {
            let mut header = String::new();
            match reader.read_line(&mut header) {
                Ok(0) | Err(_) => return,
                Ok(_) => {}
            }
            let header = header.trim_end();
            if header.is_empty() {
                break;
            }
            if let Some((name, value)) = header.split_once(':')
                && name.trim().eq_ignore_ascii_case("content-length")
            {
                length = value.trim().parse().unwrap_or(0);
            }
        }
        // The body, read and dropped.
        let mut left = length;
        while left > 0 {
            let Ok(buffer) = reader.fill_buf() else { return };
            if buffer.is_empty() {
                return;
            }
            let used = buffer.len().min(left);
            reader.consume(used);
            left -= used;
        }
        let written = if counting {
            let body = received.load(Ordering::Relaxed).to_string();
            writer.write_all(format!("HTTP/1.1 200 OK\r\ncontent-length: {}\r\n\r\n{body}", body.len()).as_bytes())
        } else {
            received.fetch_add(1, Ordering::Relaxed);
            writer.write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n")
        };
        if written.is_err() {
            return;
        }
    }
}
