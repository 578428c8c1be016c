//! The SSE decoder over any bytes, cut into reads at any points: it never panics, and the
//! frames it returns are the input's bytes, in order, none invented.
#![no_main]

use libfuzzer_sys::fuzz_target;
use moat_wire::sse::SseDecoder;

fuzz_target!(|data: &[u8]| {
    let Some((&cut, input)) = data.split_first() else { return };
    let step = usize::from(cut).max(1);
    let mut decoder = SseDecoder::new();
    let mut framed = Vec::new();
    for chunk in input.chunks(step) {
        decoder.push(chunk);
        while let Some(frame) = decoder.next_frame() {
            framed.extend_from_slice(&frame.raw);
        }
    }
    if let Some(frame) = decoder.finish() {
        framed.extend_from_slice(&frame.raw);
    }
    assert!(input.starts_with(&framed), "frames are a prefix of the input");
});
