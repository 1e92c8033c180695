//! End to end: HTTP/2 abuse, with frames built by hand and written to a TLS
//! stream that negotiated `h2` (no HTTP/2 library sends malformed or abusive
//! frames). Each case checks exactly what ward answers (a GOAWAY and its error
//! code, a refused stream, a status) and what reached the app, then that ward
//! is still up and serves another client straight away.
//!
//! Frames are written by the small writer below; header blocks use HPACK
//! literals without Huffman coding, so every byte is the test's own.

use crate::common::*;
use bytes::Bytes;
use http_body_util::Full;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

type Tls = tokio_rustls::client::TlsStream<tokio::net::TcpStream>;

const PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

// Frame types (RFC 9113, section 6).
const DATA: u8 = 0x0;
const HEADERS: u8 = 0x1;
const RST_STREAM: u8 = 0x3;
const SETTINGS: u8 = 0x4;
const PING: u8 = 0x6;
const GOAWAY: u8 = 0x7;
const WINDOW_UPDATE: u8 = 0x8;
const CONTINUATION: u8 = 0x9;

// Flags.
const END_STREAM: u8 = 0x1;
const ACK: u8 = 0x1;
const END_HEADERS: u8 = 0x4;
const PADDED: u8 = 0x8;
const PRIORITY: u8 = 0x20;

// Error codes.
const PROTOCOL_ERROR: u32 = 0x1;
const REFUSED_STREAM: u32 = 0x7;
const CANCEL: u32 = 0x8;
const ENHANCE_YOUR_CALM: u32 = 0xb;

// SETTINGS identifiers.
const MAX_CONCURRENT_STREAMS: u16 = 0x3;
const INITIAL_WINDOW_SIZE: u16 = 0x4;

/// One frame on the wire.
fn frame(kind: u8, flags: u8, stream: u32, payload: &[u8]) -> Vec<u8> {
    let mut f = Vec::with_capacity(9 + payload.len());
    f.extend_from_slice(&(payload.len() as u32).to_be_bytes()[1..]);
    f.push(kind);
    f.push(flags);
    f.extend_from_slice(&stream.to_be_bytes());
    f.extend_from_slice(payload);
    f
}

/// An HPACK integer with an `n`-bit prefix; `flags` are the prefix byte's other bits.
fn hpack_int(out: &mut Vec<u8>, flags: u8, n: u32, mut value: usize) {
    let max = (1usize << n) - 1;
    if value < max {
        out.push(flags | value as u8);
        return;
    }
    out.push(flags | max as u8);
    value -= max;
    while value >= 128 {
        out.push((value % 128) as u8 | 0x80);
        value /= 128;
    }
    out.push(value as u8);
}

/// A header field as an HPACK literal with a new name; `first` is 0x00
/// (not indexed) or 0x40 (added to the decoder's table).
fn literal(out: &mut Vec<u8>, first: u8, name: &str, value: &str) {
    out.push(first);
    hpack_int(out, 0, 7, name.len());
    out.extend_from_slice(name.as_bytes());
    hpack_int(out, 0, 7, value.len());
    out.extend_from_slice(value.as_bytes());
}

/// A request's header block: pseudo-headers (`:authority` only when given), then `extra`.
fn request_block(path: &str, authority: Option<&str>, extra: &[(&str, &str)]) -> Vec<u8> {
    let mut b = Vec::new();
    literal(&mut b, 0, ":method", "GET");
    literal(&mut b, 0, ":scheme", "https");
    literal(&mut b, 0, ":path", path);
    if let Some(a) = authority {
        literal(&mut b, 0, ":authority", a);
    }
    for (k, v) in extra {
        literal(&mut b, 0, k, v);
    }
    b
}

/// A complete GET on `stream`, in one HEADERS frame.
fn get(stream: u32, path: &str, authority: &str) -> Vec<u8> {
    frame(
        HEADERS,
        END_HEADERS | END_STREAM,
        stream,
        &request_block(path, Some(authority), &[]),
    )
}

/// A header block split into a HEADERS frame and CONTINUATION frames of at
/// most 16 KiB (the default SETTINGS_MAX_FRAME_SIZE).
fn headers_split(stream: u32, block: &[u8]) -> Vec<u8> {
    let chunks: Vec<&[u8]> = block.chunks(16 * 1024).collect();
    let mut out = Vec::new();
    for (i, c) in chunks.iter().enumerate() {
        let last = i + 1 == chunks.len();
        let (kind, mut flags) = if i == 0 {
            (HEADERS, END_STREAM)
        } else {
            (CONTINUATION, 0)
        };
        if last {
            flags |= END_HEADERS;
        }
        out.extend(frame(kind, flags, stream, c));
    }
    out
}

/// A frame ward sent.
#[derive(Debug, Clone)]
struct Frame {
    kind: u8,
    flags: u8,
    stream: u32,
    payload: Vec<u8>,
}

impl Frame {
    /// The error code of a GOAWAY or RST_STREAM.
    fn error_code(&self) -> Option<u32> {
        let at = match self.kind {
            GOAWAY => 4,
            RST_STREAM => 0,
            _ => return None,
        };
        let b = self.payload.get(at..at + 4)?;
        Some(u32::from_be_bytes([b[0], b[1], b[2], b[3]]))
    }

    /// The `:status` of a response HEADERS frame (ward's first field).
    fn status(&self) -> Option<u16> {
        if self.kind != HEADERS {
            return None;
        }
        let mut p = &self.payload[..];
        if self.flags & PADDED != 0 {
            let pad = *p.first()? as usize;
            p = p.get(1..p.len().checked_sub(pad)?)?;
        }
        if self.flags & PRIORITY != 0 {
            p = p.get(5..)?;
        }
        status_of(p)
    }
}

/// The `:status` at the start of a response header block: an indexed field
/// from the static table, or a literal with the static `:status` name whose
/// value is plain or Huffman-coded digits. Enough for a fresh connection's
/// first responses; anything else is `None`.
fn status_of(mut block: &[u8]) -> Option<u16> {
    // Dynamic table size updates (001xxxxx) may come first.
    while block.first().is_some_and(|b| b & 0xe0 == 0x20) {
        block = &block[1..];
    }
    let first = *block.first()?;
    if first & 0x80 != 0 {
        return match first & 0x7f {
            8 => Some(200),
            9 => Some(204),
            10 => Some(206),
            11 => Some(304),
            12 => Some(400),
            13 => Some(404),
            14 => Some(500),
            _ => None,
        };
    }
    // Literal with incremental indexing (01), without indexing (0000) or never
    // indexed (0001), naming static entry 8 (`:status`).
    let index = if first & 0xc0 == 0x40 {
        first & 0x3f
    } else {
        first & 0x0f
    };
    if index != 8 {
        return None;
    }
    let len_byte = *block.get(1)?;
    let len = (len_byte & 0x7f) as usize;
    let value = block.get(2..2 + len)?;
    let digits = if len_byte & 0x80 != 0 {
        huffman_digits(value)?
    } else {
        String::from_utf8(value.to_vec()).ok()?
    };
    digits.parse().ok()
}

/// Decodes Huffman-coded text made only of digits (RFC 7541, Appendix B:
/// `0`-`2` have 5-bit codes 00000-00010, `3`-`9` 6-bit codes 011001-011111).
fn huffman_digits(bytes: &[u8]) -> Option<String> {
    let bits: Vec<u8> = bytes
        .iter()
        .flat_map(|b| (0..8).rev().map(move |i| (b >> i) & 1))
        .collect();
    let mut out = String::new();
    let mut i = 0;
    let take = |i: usize, n: usize| -> Option<u8> {
        bits.get(i..i + n)
            .map(|s| s.iter().fold(0u8, |acc, b| (acc << 1) | b))
    };
    while i < bits.len() {
        let rest = &bits[i..];
        // Padding: fewer than 8 one-bits at the end.
        if rest.len() < 8 && rest.iter().all(|&b| b == 1) {
            break;
        }
        let five = take(i, 5)?;
        if five <= 2 {
            out.push((b'0' + five) as char);
            i += 5;
            continue;
        }
        let six = take(i, 6)?;
        if (0b011001..=0b011111).contains(&six) {
            out.push((b'3' + six - 0b011001) as char);
            i += 6;
            continue;
        }
        return None;
    }
    Some(out)
}

/// Takes one whole frame off the front of `buf`, if there is one.
fn take_frame(buf: &mut Vec<u8>) -> Option<Frame> {
    let head = buf.get(..9)?;
    let len = u32::from_be_bytes([0, head[0], head[1], head[2]]) as usize;
    let payload = buf.get(9..9 + len)?.to_vec();
    let f = Frame {
        kind: buf[3],
        flags: buf[4],
        stream: u32::from_be_bytes([buf[5], buf[6], buf[7], buf[8]]) & 0x7fff_ffff,
        payload,
    };
    buf.drain(..9 + len);
    Some(f)
}

/// How a read of ward's frames ended.
#[derive(Debug, PartialEq, Eq)]
enum End {
    /// ward closed the connection (or reset it).
    Closed,
    /// Still open at the deadline.
    Open,
}

/// A client connection speaking HTTP/2 by hand.
struct Conn {
    tls: Tls,
    buf: Vec<u8>,
}

impl Conn {
    /// Connects with ALPN `h2` and sends the preface and an empty SETTINGS.
    async fn open(ward: &Ward) -> Conn {
        let mut tls = raw_tls(ward, &[b"h2"]).await;
        assert_eq!(tls.get_ref().1.alpn_protocol(), Some(&b"h2"[..]));
        let mut hello = PREFACE.to_vec();
        hello.extend(frame(SETTINGS, 0, 0, &[]));
        tls.write_all(&hello).await.unwrap();
        Conn {
            tls,
            buf: Vec::new(),
        }
    }

    /// Writes bytes; false when ward has closed the connection meanwhile.
    async fn send(&mut self, bytes: &[u8]) -> bool {
        self.tls.write_all(bytes).await.is_ok() && self.tls.flush().await.is_ok()
    }

    /// The next frame, acknowledging ward's SETTINGS as a client must.
    async fn next(&mut self, deadline: Instant) -> Result<Frame, End> {
        loop {
            if let Some(f) = take_frame(&mut self.buf) {
                if f.kind == SETTINGS && f.flags & ACK == 0 {
                    let _ = self.send(&frame(SETTINGS, ACK, 0, &[])).await;
                }
                return Ok(f);
            }
            let mut chunk = [0u8; 16 * 1024];
            let now = Instant::now();
            if now >= deadline {
                return Err(End::Open);
            }
            match tokio::time::timeout(deadline - now, self.tls.read(&mut chunk)).await {
                Err(_) => return Err(End::Open),
                Ok(Ok(0)) | Ok(Err(_)) => return Err(End::Closed),
                Ok(Ok(n)) => self.buf.extend_from_slice(&chunk[..n]),
            }
        }
    }

    /// Every frame until ward closes the connection or `wait` passes.
    async fn read_all(&mut self, wait: Duration) -> (Vec<Frame>, End) {
        let deadline = Instant::now() + wait;
        let mut frames = Vec::new();
        loop {
            match self.next(deadline).await {
                Ok(f) => frames.push(f),
                Err(end) => return (frames, end),
            }
        }
    }

    /// Frames until one matches `stop` (returned last), or panics at the deadline.
    async fn read_until(&mut self, wait: Duration, stop: impl Fn(&Frame) -> bool) -> Vec<Frame> {
        let deadline = Instant::now() + wait;
        let mut frames = Vec::new();
        loop {
            match self.next(deadline).await {
                Ok(f) => {
                    let done = stop(&f);
                    frames.push(f);
                    if done {
                        return frames;
                    }
                }
                Err(end) => panic!("connection {end:?} before the expected frame; got {frames:?}"),
            }
        }
    }

    /// The status ward answers on `stream` (after its HEADERS frame), or panics.
    async fn status_on(&mut self, stream: u32) -> u16 {
        let frames = self
            .read_until(Duration::from_secs(10), |f| {
                f.stream == stream && (f.kind == HEADERS || f.kind == RST_STREAM)
            })
            .await;
        let last = frames.last().unwrap();
        last.status()
            .unwrap_or_else(|| panic!("no readable status on stream {stream}: {last:?}"))
    }
}

/// The GOAWAY error code among `frames`, if ward sent one.
fn goaway(frames: &[Frame]) -> Option<u32> {
    frames
        .iter()
        .find(|f| f.kind == GOAWAY)
        .and_then(Frame::error_code)
}

/// An app that counts the requests it gets and answers with its name;
/// `/slow` answers after two seconds.
struct App {
    url: String,
    seen: Arc<AtomicUsize>,
}

impl App {
    async fn start(name: &'static str) -> App {
        let seen = Arc::new(AtomicUsize::new(0));
        let counter = seen.clone();
        let url = small_app(move |req: hyper::Request<hyper::body::Incoming>| {
            let counter = counter.clone();
            async move {
                counter.fetch_add(1, Ordering::SeqCst);
                if req.uri().path() == "/slow" {
                    tokio::time::sleep(Duration::from_secs(2)).await;
                }
                hyper::Response::new(Full::new(Bytes::from_static(name.as_bytes())))
            }
        })
        .await;
        App { url, seen }
    }

    fn seen(&self) -> usize {
        self.seen.load(Ordering::SeqCst)
    }
}

/// ward is still running and a new HTTP/2 client gets an answer within five seconds.
async fn still_serves(ward: &Ward) {
    assert!(
        running(&ward.proc),
        "ward exited:\n{}",
        ward.logs().join("\n")
    );
    let client = ward.client(true);
    let resp = tokio::time::timeout(Duration::from_secs(5), client.get(ward.url("/")).send())
        .await
        .expect("ward did not answer a new client within 5 s")
        .expect("request to ward failed");
    assert_eq!(resp.status(), 200);
}

/// True while the process runs (not exited, not a zombie).
fn running(proc: &Proc) -> bool {
    let stat = std::fs::read_to_string(format!("/proc/{}/stat", proc.pid())).unwrap_or_default();
    let state = stat
        .rsplit(')')
        .next()
        .unwrap_or("")
        .split_whitespace()
        .next();
    matches!(state, Some(s) if s != "Z" && s != "X")
}

async fn ward_with_app() -> (Ward, App, String) {
    let app = App::start("app").await;
    let ward = Ward::start(&open_policy(&app.url));
    let authority = format!("localhost:{}", ward.port());
    (ward, app, authority)
}

/// HEADERS then RST_STREAM, thousands of times in a burst (CVE-2023-44487):
/// ward's HTTP/2 layer ends the connection with ENHANCE_YOUR_CALM once more
/// than a handful of reset streams wait, so almost none reach the app.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rapid_reset_ends_the_connection() {
    let (ward, app, authority) = ward_with_app().await;
    let mut c = Conn::open(&ward).await;
    let mut burst = Vec::new();
    for i in 0..5000u32 {
        let id = 2 * i + 1;
        burst.extend(get(id, "/slow", &authority));
        burst.extend(frame(RST_STREAM, 0, id, &CANCEL.to_be_bytes()));
    }
    c.send(&burst).await;
    let (frames, end) = c.read_all(Duration::from_secs(10)).await;
    assert_eq!(goaway(&frames), Some(ENHANCE_YOUR_CALM), "{frames:?}");
    assert_eq!(end, End::Closed);
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(
        app.seen() <= 100,
        "{} of 5000 reset requests reached the app",
        app.seen()
    );
    still_serves(&ward).await;
}

/// Streams the server itself must reset ("MadeYouReset", CVE-2025-8671).
/// A WINDOW_UPDATE of 0 and DATA after a stream's END_STREAM are connection
/// errors at once (GOAWAY PROTOCOL_ERROR). Malformed requests (a `connection`
/// header) are reset one by one (RST_STREAM PROTOCOL_ERROR) without
/// reaching the app, and after a bounded number ward ends the connection
/// with ENHANCE_YOUR_CALM.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn made_you_reset_ends_the_connection() {
    let (ward, app, authority) = ward_with_app().await;
    let mut wu0 = get(1, "/", &authority);
    wu0.extend(frame(WINDOW_UPDATE, 0, 1, &0u32.to_be_bytes()));
    let mut late_data = get(1, "/", &authority);
    late_data.extend(frame(DATA, 0, 1, b"late"));
    for (name, burst) in [
        ("WINDOW_UPDATE 0", wu0),
        ("DATA after END_STREAM", late_data),
    ] {
        let mut c = Conn::open(&ward).await;
        c.send(&burst).await;
        let (frames, end) = c.read_all(Duration::from_secs(10)).await;
        assert_eq!(goaway(&frames), Some(PROTOCOL_ERROR), "{name}: {frames:?}");
        assert_eq!(end, End::Closed, "{name}");
    }
    let before = app.seen();

    let mut c = Conn::open(&ward).await;
    let mut burst = Vec::new();
    for i in 0..3000u32 {
        let block = request_block("/", Some(&authority), &[("connection", "close")]);
        burst.extend(frame(HEADERS, END_HEADERS | END_STREAM, 2 * i + 1, &block));
    }
    c.send(&burst).await;
    let (frames, end) = c.read_all(Duration::from_secs(15)).await;
    let resets = frames
        .iter()
        .filter(|f| f.kind == RST_STREAM && f.error_code() == Some(PROTOCOL_ERROR))
        .count();
    assert_eq!(goaway(&frames), Some(ENHANCE_YOUR_CALM), "{resets} resets");
    assert_eq!(end, End::Closed);
    assert!(resets <= 1024, "{resets} streams reset before the GOAWAY");
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(app.seen(), before, "a malformed request reached the app");
    still_serves(&ward).await;
}

/// Writes `unit` over and over for up to `wait` without reading; returns the bytes written.
async fn flood_without_reading(c: &mut Conn, unit: &[u8], wait: Duration, cap: usize) -> usize {
    let chunk = unit.repeat((64 * 1024 / unit.len()).max(1));
    let mut written = 0;
    let deadline = Instant::now() + wait;
    while written < cap {
        let now = Instant::now();
        if now >= deadline {
            break;
        }
        match tokio::time::timeout(deadline - now, c.tls.write_all(&chunk)).await {
            Ok(Ok(())) => written += chunk.len(),
            _ => break,
        }
    }
    written
}

/// A control-frame flood from a client that never reads: ward answers each
/// frame before reading the next, so once its answers back up it stops
/// reading; the client cannot push 64 MiB at it and ward's memory stays put.
async fn flood_is_held_back(ward: &Ward, unit: &[u8]) {
    let before = ward.proc.rss_kib();
    let mut c = Conn::open(ward).await;
    let cap = 64 << 20;
    let written = flood_without_reading(&mut c, unit, Duration::from_secs(8), cap).await;
    assert!(
        written < cap,
        "ward read {written} bytes of control frames while answering none"
    );
    let grown = ward.proc.rss_kib().saturating_sub(before);
    assert!(
        grown < 32 * 1024,
        "ward grew by {grown} KiB under the flood"
    );
    still_serves(ward).await;
    drop(c);
}

/// `n` frames of `make(i)` while reading: ward acknowledges each exactly once,
/// in order, and still answers a request on the same connection.
async fn flood_is_answered_one_for_one(
    ward: &Ward,
    authority: &str,
    n: u32,
    make: impl Fn(u32) -> Vec<u8>,
    kind: u8,
) {
    let c = Conn::open(ward).await;
    let (mut rd, mut wr) = tokio::io::split(c.tls);
    let mut all = Vec::new();
    for i in 0..n {
        all.extend(make(i));
    }
    all.extend(get(1, "/", authority));
    let writer = tokio::spawn(async move {
        wr.write_all(&all).await.unwrap();
        wr.flush().await.unwrap();
        wr
    });
    // Read ward's frames on this side while the writer floods.
    let mut buf = Vec::new();
    let mut acks = Vec::new();
    let mut status = None;
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut chunk = vec![0u8; 64 * 1024];
    while status.is_none() {
        let now = Instant::now();
        assert!(now < deadline, "no answer: {} acks so far", acks.len());
        let got = tokio::time::timeout(deadline - now, rd.read(&mut chunk)).await;
        let Ok(Ok(got)) = got else {
            panic!("connection ended: {} acks so far", acks.len())
        };
        assert!(
            got > 0,
            "ward closed the connection after {} acks",
            acks.len()
        );
        buf.extend_from_slice(&chunk[..got]);
        while let Some(f) = take_frame(&mut buf) {
            if f.kind == kind && f.flags & ACK != 0 {
                acks.push(f.payload);
            } else if f.kind == HEADERS && f.stream == 1 {
                status = f.status();
            } else if f.kind == GOAWAY {
                panic!("GOAWAY {:?} after {} acks", f.error_code(), acks.len());
            }
        }
    }
    let _wr = writer.await.unwrap();
    assert_eq!(status, Some(200));
    // The client's first SETTINGS (with the preface) is acknowledged too.
    let expected = if kind == SETTINGS { n + 1 } else { n };
    assert_eq!(acks.len() as u32, expected, "one acknowledgement per frame");
    if kind == PING {
        for (i, payload) in acks.iter().enumerate() {
            assert_eq!(payload, &(i as u64).to_be_bytes().to_vec(), "PING {i}");
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn settings_flood_is_held_back_and_answered_one_for_one() {
    let (ward, _app, authority) = ward_with_app().await;
    let mut one = Vec::new();
    one.extend_from_slice(&INITIAL_WINDOW_SIZE.to_be_bytes());
    one.extend_from_slice(&65_535u32.to_be_bytes());
    flood_is_held_back(&ward, &frame(SETTINGS, 0, 0, &one)).await;
    flood_is_answered_one_for_one(
        &ward,
        &authority,
        20_000,
        |_| frame(SETTINGS, 0, 0, &one),
        SETTINGS,
    )
    .await;
    still_serves(&ward).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ping_flood_is_held_back_and_answered_one_for_one() {
    let (ward, _app, authority) = ward_with_app().await;
    flood_is_held_back(&ward, &frame(PING, 0, 0, &[7u8; 8])).await;
    flood_is_answered_one_for_one(
        &ward,
        &authority,
        20_000,
        |i| frame(PING, 0, 0, &(i as u64).to_be_bytes()),
        PING,
    )
    .await;
    still_serves(&ward).await;
}

/// A header block that never ends (HEADERS without END_HEADERS, then
/// CONTINUATION frames, CVE-2024-27316 and kin): GOAWAY with
/// ENHANCE_YOUR_CALM after a few frames, whether they carry bytes or none.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn continuation_flood_ends_the_connection() {
    let (ward, app, authority) = ward_with_app().await;
    for payload in [vec![], vec![b'a'; 1000]] {
        let mut c = Conn::open(&ward).await;
        let mut flood = frame(
            HEADERS,
            END_STREAM,
            1,
            &request_block("/", Some(&authority), &[]),
        );
        for _ in 0..10_000 {
            flood.extend(frame(CONTINUATION, 0, 1, &payload));
        }
        c.send(&flood).await;
        let (frames, end) = c.read_all(Duration::from_secs(10)).await;
        assert_eq!(goaway(&frames), Some(ENHANCE_YOUR_CALM), "{frames:?}");
        assert_eq!(end, End::Closed);
    }
    assert_eq!(app.seen(), 0);
    still_serves(&ward).await;
}

/// A header list over `max_header_bytes` (32 KiB by default), sent plainly in
/// HEADERS + CONTINUATION or as an HPACK "bomb" (one table entry referenced
/// again and again), is answered 431 and never reaches the app; the same
/// connection then serves a list just under the limit. A list far past the
/// limit (four times) ends the connection.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oversized_header_lists_get_431() {
    let (ward, app, authority) = ward_with_app().await;
    let mut c = Conn::open(&ward).await;
    let kib = "v".repeat(1000);

    // 40 fields of about 1 KB: 41 KB decoded.
    let many: Vec<(String, &str)> = (0..40)
        .map(|i| (format!("x-big-{i:02}"), &kib[..]))
        .collect();
    let many: Vec<(&str, &str)> = many.iter().map(|(k, v)| (k.as_str(), *v)).collect();
    c.send(&headers_split(
        1,
        &request_block("/", Some(&authority), &many),
    ))
    .await;
    assert_eq!(c.status_on(1).await, 431);

    // 28 fields of about 1 KB (about 29 KB with HPACK's per-field 32) pass.
    let fewer = &many[..28];
    c.send(&headers_split(
        3,
        &request_block("/", Some(&authority), fewer),
    ))
    .await;
    assert_eq!(c.status_on(3).await, 200);
    assert_eq!(app.seen(), 1);

    // A 4 KB field put into the HPACK table once, then indexed (one byte each)
    // 12 times: a small block that decodes to 48 KB. (A new connection, so
    // ward's 431 comes as a literal, not from its HPACK table.)
    let mut c = Conn::open(&ward).await;
    let mut bomb = request_block("/", Some(&authority), &[]);
    literal(&mut bomb, 0x40, "x-bomb", &"b".repeat(4000));
    bomb.extend(std::iter::repeat_n(0x80 | 62, 12));
    c.send(&frame(HEADERS, END_HEADERS | END_STREAM, 1, &bomb))
        .await;
    assert_eq!(c.status_on(1).await, 431);
    assert_eq!(app.seen(), 1, "an oversized request reached the app");

    // The same bomb indexed 200 times (800 KB) is past any honest list:
    // the connection ends (ENHANCE_YOUR_CALM) without decoding the rest.
    let mut c = Conn::open(&ward).await;
    let mut bomb = request_block("/", Some(&authority), &[]);
    literal(&mut bomb, 0x40, "x-bomb", &"b".repeat(4000));
    bomb.extend(std::iter::repeat_n(0x80 | 62, 200));
    c.send(&frame(HEADERS, END_HEADERS | END_STREAM, 1, &bomb))
        .await;
    let (frames, end) = c.read_all(Duration::from_secs(10)).await;
    assert_eq!(goaway(&frames), Some(ENHANCE_YOUR_CALM), "{frames:?}");
    assert_eq!(end, End::Closed);
    assert_eq!(app.seen(), 1);
    still_serves(&ward).await;
}

/// Streams beyond the advertised SETTINGS_MAX_CONCURRENT_STREAMS are refused
/// (RST_STREAM REFUSED_STREAM) without reaching the app; those within it are served.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn streams_beyond_the_limit_are_refused() {
    let (ward, app, authority) = ward_with_app().await;
    let mut c = Conn::open(&ward).await;
    let settings = c
        .read_until(Duration::from_secs(5), |f| {
            f.kind == SETTINGS && f.flags & ACK == 0
        })
        .await;
    let payload = &settings.last().unwrap().payload;
    let limit = payload
        .chunks(6)
        .find(|s| u16::from_be_bytes([s[0], s[1]]) == MAX_CONCURRENT_STREAMS)
        .map(|s| u32::from_be_bytes([s[2], s[3], s[4], s[5]]))
        .expect("ward advertises SETTINGS_MAX_CONCURRENT_STREAMS");
    assert!(limit <= 250, "{limit} concurrent streams per connection");
    let extra = 10;
    let mut burst = Vec::new();
    for i in 0..limit + extra {
        burst.extend(get(2 * i + 1, "/slow", &authority));
    }
    c.send(&burst).await;
    let (frames, _) = c.read_all(Duration::from_secs(8)).await;
    let refused = frames
        .iter()
        .filter(|f| f.kind == RST_STREAM && f.error_code() == Some(REFUSED_STREAM))
        .count();
    let answered = frames
        .iter()
        .filter(|f| f.kind == HEADERS && f.status() == Some(200))
        .count();
    assert_eq!(refused as u32, extra, "refused streams");
    assert_eq!(answered as u32, limit, "answered streams");
    assert_eq!(app.seen() as u32, limit);
    still_serves(&ward).await;
}

/// A name, the `:authority` (if any), other header fields, the status expected.
type HostCase<'a> = (&'a str, Option<&'a str>, Vec<(&'a str, &'a str)>, u16);

/// `:authority` and `Host` that disagree (or two `Host` fields) are refused
/// with 400 and reach neither app; agreeing ones, or a `Host` alone, are
/// served by the app they name.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn authority_and_host_must_agree() {
    let ehr = App::start("ehr").await;
    let billing = App::start("billing").await;
    let ward = Ward::start(&format!(
        "practice = \"Test Clinic\"\n{{server}}\n\
         [[apps]]\nname = \"ehr\"\nupstream = \"{}\"\nhost = \"ehr.localhost\"\n\
         [[apps]]\nname = \"billing\"\nupstream = \"{}\"\nhost = \"billing.localhost\"\n\
         [[routes]]\napp = \"ehr\"\npath = \"/**\"\nallow = \"public\"\n\
         [[routes]]\napp = \"billing\"\npath = \"/**\"\nallow = \"public\"\n",
        ehr.url, billing.url
    ));
    let port = ward.port();
    let ehr_host = format!("ehr.localhost:{port}");
    let billing_host = format!("billing.localhost:{port}");
    let cases: Vec<HostCase> = vec![
        (
            "authority ehr, host billing",
            Some(&ehr_host),
            vec![("host", &billing_host)],
            400,
        ),
        (
            "authority billing, host evil",
            Some(&billing_host),
            vec![("host", "evil.example")],
            400,
        ),
        (
            "two hosts",
            None,
            vec![("host", &ehr_host), ("host", &billing_host)],
            400,
        ),
        (
            "two equal hosts",
            None,
            vec![("host", &ehr_host), ("host", &ehr_host)],
            400,
        ),
        (
            "authority ehr, host ehr",
            Some(&ehr_host),
            vec![("host", &ehr_host)],
            200,
        ),
        (
            "host billing alone",
            None,
            vec![("host", &billing_host)],
            200,
        ),
    ];
    let mut c = Conn::open(&ward).await;
    for (i, (name, authority, extra, want)) in cases.iter().enumerate() {
        let id = 2 * i as u32 + 1;
        let block = request_block("/", *authority, extra);
        c.send(&frame(HEADERS, END_HEADERS | END_STREAM, id, &block))
            .await;
        assert_eq!(c.status_on(id).await, *want, "{name}");
    }
    assert_eq!(ehr.seen(), 1, "the ehr app got only the agreeing request");
    assert_eq!(
        billing.seen(),
        1,
        "the billing app got only the Host-only request"
    );
    still_serves_host(&ward, "ehr.localhost").await;
}

async fn still_serves_host(ward: &Ward, host: &str) {
    let resp = tokio::time::timeout(
        Duration::from_secs(5),
        ward.client(true).get(ward.url_for(host, "/")).send(),
    )
    .await
    .expect("ward did not answer a new client within 5 s")
    .expect("request to ward failed");
    assert_eq!(resp.status(), 200);
}

#[test]
fn status_decoding_reads_what_hpack_encoders_send() {
    assert_eq!(status_of(&[0x88]), Some(200));
    assert_eq!(status_of(&[0x3f, 0xe1, 0x1f, 0x8c]), None);
    assert_eq!(status_of(&[0x20, 0x8c]), Some(400));
    // "431" literal, not Huffman.
    assert_eq!(status_of(&[0x08, 3, b'4', b'3', b'1']), Some(431));
    // "403" Huffman-coded: 011010 00000 011001, then seven 1s of padding.
    let bits = "011010000000110011111111";
    let bytes: Vec<u8> = bits
        .as_bytes()
        .chunks(8)
        .map(|c| u8::from_str_radix(std::str::from_utf8(c).unwrap(), 2).unwrap())
        .collect();
    let mut block = vec![0x48, 0x80 | bytes.len() as u8];
    block.extend(&bytes);
    assert_eq!(status_of(&block), Some(403));
}

/// More header fields than `max_headers` (100 by default), each small, so
/// the list stays under `max_header_bytes`: refused with 431 over HTTP/2 as
/// over HTTP/1.1, before the app (which here would take a thousand) sees it.
/// Cookies split into one field each, as browsers send them over HTTP/2,
/// count as the one `Cookie` header HTTP/1.1 would carry.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn more_header_fields_than_max_headers_get_431() {
    let seen = Arc::new(AtomicUsize::new(0));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let counter = seen.clone();
    tokio::spawn(async move {
        while let Ok((tcp, _)) = listener.accept().await {
            let counter = counter.clone();
            tokio::spawn(async move {
                let svc = hyper::service::service_fn(move |_req| {
                    counter.fetch_add(1, Ordering::SeqCst);
                    async {
                        Ok::<_, std::convert::Infallible>(hyper::Response::new(Full::new(
                            Bytes::from_static(b"ok"),
                        )))
                    }
                });
                let _ = hyper::server::conn::http1::Builder::new()
                    .max_headers(1000)
                    .serve_connection(hyper_util::rt::TokioIo::new(tcp), svc)
                    .await;
            });
        }
    });
    let ward = Ward::start(&open_policy(&url));
    let authority = format!("localhost:{}", ward.port());
    let names: Vec<String> = (0..150).map(|i| format!("x-{i}")).collect();

    let mut c = Conn::open(&ward).await;
    let many: Vec<(&str, &str)> = names.iter().map(|n| (n.as_str(), "1")).collect();
    c.send(&headers_split(
        1,
        &request_block("/", Some(&authority), &many),
    ))
    .await;
    assert_eq!(c.status_on(1).await, 431);
    assert_eq!(
        seen.load(Ordering::SeqCst),
        0,
        "the request reached the app"
    );

    // 90 fields and 50 cookie crumbs: 91 headers as HTTP/1.1 counts them.
    let mut c = Conn::open(&ward).await;
    let mut fields: Vec<(&str, &str)> = names[..90].iter().map(|n| (n.as_str(), "1")).collect();
    fields.extend(std::iter::repeat_n(("cookie", "a=1"), 50));
    c.send(&headers_split(
        1,
        &request_block("/", Some(&authority), &fields),
    ))
    .await;
    assert_eq!(c.status_on(1).await, 200);
    assert_eq!(seen.load(Ordering::SeqCst), 1);
    still_serves(&ward).await;
}
