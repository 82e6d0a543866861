//! The benchmarks' webhook receiver: answers 200 to every POST on 127.0.0.1, counts them, and
//! answers `GET /count` with how many it has had. It checks nothing (the tests verify signatures).
//!
//! Built by `benchlib.py` with `rustc -O` alone (the standard library, no crate; not a cargo target:
//! `autobenches = false` in `api/Cargo.toml`, its epoll calls being `unsafe`), and run as a
//! process of its own: a receiver is the integrator's, on their machine, but here it shares the
//! two cores with the API, PostgreSQL, the worker and wrk, and its CPU is counted apart from the
//! bench's.
//!
//! One thread serves every connection from an epoll loop, as the servers integrators receive
//! webhooks with do (nginx, Go's, Node's, hyper's): a request that arrives while it is busy costs
//! its sender no wake-up. The receiver it replaces (session 35) ran a thread a connection, each
//! asleep in `read` between requests: over loopback the sender's `writev` wakes the receiving
//! thread itself, and `perf` put that wake-up (`sock_def_readable`) at a sixth of the worker's CPU
//! a message, a cost of this bench's receiver and not of certflow's (docs/benchmarks.md, "A
//! receiver that wakes no thread a request"). A message costs it 6–7 µs of CPU (the threaded one:
//! 16).
//!
//! Prints `port <n>` on its first line once it listens; ends when its standard input closes.

use std::collections::HashMap;
use std::io::{ErrorKind, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::os::fd::AsRawFd;

/// The kernel's `struct epoll_event` (packed on x86-64).
#[cfg_attr(target_arch = "x86_64", repr(C, packed))]
#[cfg_attr(not(target_arch = "x86_64"), repr(C))]
#[derive(Clone, Copy)]
struct EpollEvent {
    events: u32,
    data: u64,
}

unsafe extern "C" {
    fn epoll_create1(flags: i32) -> i32;
    fn epoll_ctl(epfd: i32, op: i32, fd: i32, event: *mut EpollEvent) -> i32;
    fn epoll_wait(epfd: i32, events: *mut EpollEvent, maxevents: i32, timeout: i32) -> i32;
}

const EPOLLIN: u32 = 0x1;
const EPOLLRDHUP: u32 = 0x2000;
const EPOLL_CTL_ADD: i32 = 1;
const EPOLL_CTL_DEL: i32 = 2;
const EPOLL_CLOEXEC: i32 = 0o2_000_000;
/// The listener's token; a connection's is its file descriptor.
const LISTENER: u64 = u64::MAX;

/// A connection: its socket and what it sent that is not a whole request yet.
struct Connection {
    stream: TcpStream,
    pending: Vec<u8>,
}

fn main() {
    let listener = TcpListener::bind("127.0.0.1:0").expect("a port on 127.0.0.1");
    listener.set_nonblocking(true).expect("a non-blocking listener");
    println!("port {}", listener.local_addr().expect("the address listened on").port());
    std::io::stdout().flush().expect("stdout");
    // The bench holds our standard input: when it ends, so do we.
    std::thread::spawn(|| {
        let mut sink = Vec::new();
        let _ = std::io::stdin().lock().read_to_end(&mut sink);
        std::process::exit(0);
    });
    let poll = unsafe { epoll_create1(EPOLL_CLOEXEC) };
    assert!(poll >= 0, "epoll_create1: {}", std::io::Error::last_os_error());
    watch(poll, listener.as_raw_fd(), LISTENER);
    let mut connections: HashMap<u64, Connection> = HashMap::new();
    let mut received = 0u64;
    let mut ready = vec![EpollEvent { events: 0, data: 0 }; 256];
    let mut chunk = vec![0u8; 64 * 1024];
    loop {
        let count = unsafe { epoll_wait(poll, ready.as_mut_ptr(), ready.len() as i32, -1) };
        if count < 0 {
            let error = std::io::Error::last_os_error();
            assert_eq!(error.kind(), ErrorKind::Interrupted, "epoll_wait: {error}");
            continue;
        }
        for event in &ready[..count as usize] {
            let token = event.data;
            if token == LISTENER {
                while let Ok((stream, _)) = listener.accept() {
                    let _ = stream.set_nodelay(true);
                    if stream.set_nonblocking(true).is_err() {
                        continue;
                    }
                    let fd = stream.as_raw_fd();
                    watch(poll, fd, fd as u64);
                    connections.insert(fd as u64, Connection { stream, pending: Vec::new() });
                }
                continue;
            }
            let Some(connection) = connections.get_mut(&token) else { continue };
            if !serve(connection, &mut chunk, &mut received) {
                let fd = connection.stream.as_raw_fd();
                unsafe { epoll_ctl(poll, EPOLL_CTL_DEL, fd, std::ptr::null_mut()) };
                connections.remove(&token);
            }
        }
    }
}

/// Has the loop told of `fd` becoming readable (or closed), as `token`.
fn watch(poll: i32, fd: i32, token: u64) {
    let mut event = EpollEvent { events: EPOLLIN | EPOLLRDHUP, data: token };
    let added = unsafe { epoll_ctl(poll, EPOLL_CTL_ADD, fd, &mut event) };
    assert!(added == 0, "epoll_ctl: {}", std::io::Error::last_os_error());
}

/// Reads what `connection` sent and answers each whole request in it (those that came before its
/// peer closed too); `false` once it closed.
fn serve(connection: &mut Connection, chunk: &mut [u8], received: &mut u64) -> bool {
    let open = loop {
        match connection.stream.read(chunk) {
            Ok(0) => break false,
            Ok(n) => connection.pending.extend_from_slice(&chunk[..n]),
            Err(error) if error.kind() == ErrorKind::WouldBlock => break true,
            Err(error) if error.kind() == ErrorKind::Interrupted => {}
            Err(_) => return false,
        }
    };
    let mut answers = Vec::new();
    let mut used = 0;
    while let Some(length) = request_length(&connection.pending[used..]) {
        if connection.pending[used..].starts_with(b"GET /count") {
            let body = received.to_string();
            answers.extend_from_slice(
                format!("HTTP/1.1 200 OK\r\ncontent-length: {}\r\n\r\n{body}", body.len()).as_bytes(),
            );
        } else {
            *received += 1;
            answers.extend_from_slice(b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n");
        }
        used += length;
    }
    connection.pending.drain(..used);
    if answers.is_empty() {
        return open;
    }
    // A few dozen bytes an answer: the socket's buffer takes them at once; if it ever did not, the
    // rest is written blocking.
    let answered = match connection.stream.write(&answers) {
        Ok(n) if n == answers.len() => true,
        Ok(n) => write_blocking(&connection.stream, &answers[n..]),
        Err(error) if error.kind() == ErrorKind::WouldBlock => write_blocking(&connection.stream, &answers),
        Err(_) => false,
    };
    open && answered
}

fn write_blocking(mut stream: &TcpStream, rest: &[u8]) -> bool {
    stream.set_nonblocking(false).is_ok() && stream.write_all(rest).is_ok() && stream.set_nonblocking(true).is_ok()
}

/// The length of the whole request `buffer` begins with (head and body), if it holds one.
fn request_length(buffer: &[u8]) -> Option<usize> {
    let head = buffer.windows(4).position(|w| w == b"\r\n\r\n")? + 4;
    let mut length = 0usize;
    for line in buffer[..head].split(|&b| b == b'\n').skip(1) {
        let line = std::str::from_utf8(line).unwrap_or("").trim_end();
        if let Some((name, value)) = line.split_once(':')
            && name.trim().eq_ignore_ascii_case("content-length")
        {
            length = value.trim().parse().unwrap_or(0);
        }
    }
    (buffer.len() >= head + length).then_some(head + length)
}
