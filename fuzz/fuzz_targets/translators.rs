//! Every translation, both ways: any JSON as a request or a whole answer, and any lines as a
//! stream's frames, translate or fail cleanly; a stream always finishes.
#![no_main]

use libfuzzer_sys::fuzz_target;
use moat_wire::translate::{AnswerContext, RequestOptions, Translation};

const ALL: [Translation; 4] = [
    Translation::MessagesToChat,
    Translation::ChatToMessages,
    Translation::ResponsesToChat,
    Translation::ResponsesToMessages,
];

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    let context = AnswerContext {
        client_model: "m".into(),
        created: 1,
        input_tokens_hint: 3,
        include_usage: true,
        stop_sequences: vec!["END".into()],
    };
    if let Ok(value) = serde_json::from_str::<serde_json::Value>(text) {
        for translation in ALL {
            let _ = translation.request(&value, "up", RequestOptions::default());
            let _ = translation.response(&value, &context);
            let _ = translation.client_stop_sequences(&value);
        }
    }
    for translation in ALL {
        let mut stream = translation.stream(&context);
        for line in text.lines() {
            let _ = stream.push(line);
        }
        let mut out = Vec::new();
        stream.finish(&mut out);
        assert!(stream.is_finished(), "{translation:?} ends its client stream");
    }
});
