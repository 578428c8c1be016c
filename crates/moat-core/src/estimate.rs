//! Token estimates for when neither the upstream nor its tokenizer gives a count.
//!
//! The estimate is deliberately simple and stable (about four bytes of UTF-8 text per token,
//! which is what common BPE vocabularies average on English and code) and every record built
//! from it is flagged `estimated`, so reports can say how much of a figure is a guess.

/// Bytes of UTF-8 text per estimated token.
pub const BYTES_PER_TOKEN: u64 = 4;

/// Estimated tokens in `text`: a ceiling, so any non-empty text counts at least one token.
pub fn estimate_tokens(text: &str) -> u64 {
    (text.len() as u64).div_ceil(BYTES_PER_TOKEN)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn estimates_round_up() {
        assert_eq!(estimate_tokens(""), 0);
        assert_eq!(estimate_tokens("a"), 1);
        assert_eq!(estimate_tokens("abcd"), 1);
        assert_eq!(estimate_tokens("abcde"), 2);
        assert_eq!(estimate_tokens("héllo"), 2); // 6 bytes
    }
}
