//! Loading recorded translation fixtures from `test_data/<direction>/`.

use serde_json::Value;

use crate::sse::SseDecoder;

/// Every fixture of a direction, as (file name, JSON), in file-name order.
pub(crate) fn load(direction: &str) -> Vec<(String, Value)> {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("test_data").join(direction);
    let mut files: Vec<_> = std::fs::read_dir(&dir).expect("test_data").map(|e| e.expect("entry").path()).collect();
    files.sort();
    files
        .into_iter()
        .map(|path| {
            let text = std::fs::read_to_string(&path).expect("read fixture");
            (path.display().to_string(), serde_json::from_str(&text).expect("fixture is JSON"))
        })
        .collect()
}

/// Decodes translated bytes back into (event name, data) pairs; `event` is empty for OpenAI
/// frames, which have none. `[DONE]` becomes the string "[DONE]".
pub(crate) fn frames(bytes: &[u8]) -> Vec<(String, Value)> {
    let mut decoder = SseDecoder::new();
    decoder.push(bytes);
    std::iter::from_fn(|| decoder.next_frame())
        .map(|f| {
            let data = f.data.expect("data line");
            let value = serde_json::from_str(&data).unwrap_or(Value::String(data));
            (f.event.unwrap_or_default(), value)
        })
        .collect()
}

/// Splits `bytes` at `cuts` (indexes into it), as a network would.
pub(crate) fn split<'a>(bytes: &'a [u8], cuts: &[proptest::sample::Index]) -> Vec<&'a [u8]> {
    let mut points: Vec<usize> = cuts.iter().map(|c| c.index(bytes.len() + 1)).collect();
    points.sort_unstable();
    let mut pieces = Vec::new();
    let mut last = 0;
    for p in points {
        pieces.push(&bytes[last..p]);
        last = p;
    }
    pieces.push(&bytes[last..]);
    pieces
}

/// Feeds upstream bytes, split into `pieces`, through an SSE decoder and `push` (a stream
/// translator's), and returns everything `push` produced.
pub(crate) fn feed(pieces: &[&[u8]], mut push: impl FnMut(&str) -> Vec<u8>) -> Vec<u8> {
    let mut decoder = SseDecoder::new();
    let mut out = Vec::new();
    for piece in pieces {
        decoder.push(piece);
        while let Some(frame) = decoder.next_frame() {
            out.extend(push(frame.data.as_deref().unwrap_or_default()));
        }
    }
    out
}
