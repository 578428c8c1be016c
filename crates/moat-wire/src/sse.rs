//! An incremental server-sent-events decoder that keeps each frame's original bytes.
//!
//! moat relays stream frames as they arrive and must not re-encode them, yet it needs to look
//! inside some (usage, the end marker). The decoder therefore splits the byte stream into frames
//! at blank lines, exactly as the SSE specification defines lines (`\n`, `\r\n` or `\r`), and
//! hands back both the raw bytes and the parsed `event`/`data` fields. Concatenating every
//! frame's `raw` reproduces the input byte for byte, however the input was chunked.

use bytes::{Bytes, BytesMut};

/// One frame: the bytes up to and including its terminating blank line, and its fields.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SseFrame {
    /// The frame exactly as received.
    pub raw: Bytes,
    /// The value of the last `event:` field, if any.
    pub event: Option<String>,
    /// The `data:` fields joined with `\n`, or `None` when the frame had no data field.
    pub data: Option<String>,
}

impl SseFrame {
    /// Parses the fields of a complete frame's bytes.
    fn parse(raw: Bytes) -> Self {
        let mut event = None;
        let mut data: Option<String> = None;
        for line in Lines::new(&raw) {
            if line.is_empty() || line[0] == b':' {
                continue;
            }
            let (field, value) = match memchr::memchr(b':', line) {
                Some(colon) => {
                    let value = &line[colon + 1..];
                    (&line[..colon], value.strip_prefix(b" ").unwrap_or(value))
                }
                None => (line, &b""[..]),
            };
            let value = String::from_utf8_lossy(value);
            match field {
                b"event" => event = Some(value.into_owned()),
                b"data" => match &mut data {
                    Some(existing) => {
                        existing.push('\n');
                        existing.push_str(&value);
                    }
                    None => data = Some(value.into_owned()),
                },
                _ => {}
            }
        }
        SseFrame { raw, event, data }
    }
}

/// Splits a byte slice into lines on `\n`, `\r\n` or `\r`, without their terminators.
struct Lines<'a> {
    rest: &'a [u8],
}

impl<'a> Lines<'a> {
    fn new(bytes: &'a [u8]) -> Self {
        Lines { rest: bytes }
    }
}

impl<'a> Iterator for Lines<'a> {
    type Item = &'a [u8];

    fn next(&mut self) -> Option<&'a [u8]> {
        if self.rest.is_empty() {
            return None;
        }
        match line_end(self.rest, true) {
            LineEnd::Found { end, next } => {
                let line = &self.rest[..end];
                self.rest = &self.rest[next..];
                Some(line)
            }
            LineEnd::NeedMore => {
                let line = self.rest;
                self.rest = &[];
                Some(line)
            }
        }
    }
}

enum LineEnd {
    /// The line's content ends at `end`; the next line starts at `next`.
    Found { end: usize, next: usize },
    /// No complete terminator yet.
    NeedMore,
}

/// Finds the end of the first line in `bytes`. A trailing `\r` is ambiguous until the next byte
/// is known (it may be the first half of `\r\n`), unless `at_eof`.
fn line_end(bytes: &[u8], at_eof: bool) -> LineEnd {
    let Some(i) = memchr::memchr2(b'\n', b'\r', bytes) else {
        return LineEnd::NeedMore;
    };
    if bytes[i] == b'\n' {
        return LineEnd::Found { end: i, next: i + 1 };
    }
    match bytes.get(i + 1) {
        Some(b'\n') => LineEnd::Found { end: i, next: i + 2 },
        Some(_) => LineEnd::Found { end: i, next: i + 1 },
        None if at_eof => LineEnd::Found { end: i, next: i + 1 },
        None => LineEnd::NeedMore,
    }
}

/// Incremental decoder: push bytes as they arrive, pull complete frames.
#[derive(Debug, Default)]
pub struct SseDecoder {
    buf: BytesMut,
    /// Offset in `buf` of the first line not yet known to be complete, so a frame split over
    /// many reads is scanned once, not once per read.
    scanned: usize,
}

impl SseDecoder {
    /// A decoder with an empty buffer.
    pub fn new() -> Self {
        Self::default()
    }

    /// Appends received bytes.
    pub fn push(&mut self, chunk: &[u8]) {
        self.buf.extend_from_slice(chunk);
    }

    /// The next complete frame, if the buffer holds one.
    pub fn next_frame(&mut self) -> Option<SseFrame> {
        loop {
            let rest = &self.buf[self.scanned..];
            match line_end(rest, false) {
                LineEnd::NeedMore => return None,
                LineEnd::Found { end, next } => {
                    let blank = end == 0;
                    self.scanned += next;
                    if blank {
                        let raw = self.buf.split_to(self.scanned).freeze();
                        self.scanned = 0;
                        return Some(SseFrame::parse(raw));
                    }
                }
            }
        }
    }

    /// Whatever is left at end of stream: an unterminated frame, returned so that a relay loses
    /// no byte. Its fields are parsed, but per the specification a client would not dispatch it.
    pub fn finish(&mut self) -> Option<SseFrame> {
        if self.buf.is_empty() {
            return None;
        }
        self.scanned = 0;
        Some(SseFrame::parse(self.buf.split().freeze()))
    }
}

/// Encodes one frame with an optional event name; multi-line data becomes several `data:` lines.
pub fn encode_frame(event: Option<&str>, data: &str) -> Bytes {
    let mut out = String::with_capacity(data.len() + 16);
    if let Some(event) = event {
        out.push_str("event: ");
        out.push_str(event);
        out.push('\n');
    }
    for line in data.split('\n') {
        out.push_str("data: ");
        out.push_str(line);
        out.push('\n');
    }
    out.push('\n');
    Bytes::from(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn decode_all(chunks: &[&[u8]]) -> Vec<SseFrame> {
        let mut decoder = SseDecoder::new();
        let mut frames = Vec::new();
        for chunk in chunks {
            decoder.push(chunk);
            while let Some(frame) = decoder.next_frame() {
                frames.push(frame);
            }
        }
        frames.extend(decoder.finish());
        frames
    }

    #[test]
    fn parses_fields_comments_and_multiline_data() {
        let frames = decode_all(&[
            b": keep-alive\n\nevent: message_start\ndata: {\"a\":1}\n\ndata: x\ndata:y\r\n\r\ndata: [DONE]\n\n",
        ]);
        let fields: Vec<_> = frames.iter().map(|f| (f.event.as_deref(), f.data.as_deref())).collect();
        assert_eq!(
            fields,
            [(None, None), (Some("message_start"), Some("{\"a\":1}")), (None, Some("x\ny")), (None, Some("[DONE]")),]
        );
    }

    #[test]
    fn a_trailing_cr_waits_for_the_next_byte() {
        let mut decoder = SseDecoder::new();
        decoder.push(b"data: a\r\n\r");
        assert_eq!(decoder.next_frame(), None, "the final \\r may be half of \\r\\n");
        decoder.push(b"\ndata: b\n\n");
        let first = decoder.next_frame().map(|f| f.raw);
        assert_eq!(first.as_deref(), Some(&b"data: a\r\n\r\n"[..]));
        assert_eq!(decoder.next_frame().and_then(|f| f.data).as_deref(), Some("b"));
    }

    #[test]
    fn unterminated_tail_is_returned_by_finish() {
        let frames = decode_all(&[b"data: a\n\ndata: partial"]);
        assert_eq!(frames.len(), 2);
        assert_eq!(frames[1].raw.as_ref(), b"data: partial");
    }

    #[test]
    fn encode_round_trips() {
        let raw = encode_frame(Some("ping"), "line1\nline2");
        let frames = decode_all(&[&raw]);
        assert_eq!(frames[0].event.as_deref(), Some("ping"));
        assert_eq!(frames[0].data.as_deref(), Some("line1\nline2"));
    }

    fn arb_stream() -> impl Strategy<Value = Vec<u8>> {
        let line = prop_oneof![
            "[a-z]{0,6}".prop_map(|v| format!("data: {v}")),
            "[a-z_]{1,8}".prop_map(|v| format!("event: {v}")),
            "[ -~]{0,10}".prop_map(|v| format!(":{v}")),
            Just("data:{\"usage\":{\"prompt_tokens\":3}}".to_string()),
        ];
        let eol = prop_oneof![Just("\n"), Just("\r\n"), Just("\r")];
        let frame = (prop::collection::vec((line, eol.clone()), 0..4), eol);
        prop::collection::vec(frame, 0..8).prop_map(|frames| {
            let mut out = String::new();
            for (lines, end) in frames {
                for (line, eol) in lines {
                    out.push_str(&line);
                    out.push_str(eol);
                }
                out.push_str(end);
            }
            out.into_bytes()
        })
    }

    proptest! {
        /// However the network splits a stream, the decoder yields the same frames and loses no byte.
        #[test]
        fn chunking_never_changes_the_frames(stream in arb_stream(), cuts in prop::collection::vec(any::<prop::sample::Index>(), 0..12)) {
            let whole = decode_all(&[&stream]);
            let mut points: Vec<usize> = cuts.iter().map(|c| c.index(stream.len() + 1)).collect();
            points.sort_unstable();
            let mut chunks = Vec::new();
            let mut last = 0;
            for p in points {
                chunks.push(&stream[last..p]);
                last = p;
            }
            chunks.push(&stream[last..]);
            let split = decode_all(&chunks);
            prop_assert_eq!(&split, &whole);
            let rejoined: Vec<u8> = split.iter().flat_map(|f| f.raw.iter().copied()).collect();
            prop_assert_eq!(rejoined, stream);
        }
    }
}
