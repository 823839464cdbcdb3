//! Keeping user input short when it is quoted back in messages.

/// How many characters of user input an error message quotes.
pub const QUOTE_LIMIT: usize = 64;

/// `s` itself when it is short, else its first [`QUOTE_LIMIT`] characters and "…" with
/// the total length, so that a huge input never floods a message.
pub fn quote(s: &str) -> String {
    let mut chars = s.char_indices();
    match chars.nth(QUOTE_LIMIT) {
        None => s.to_string(),
        Some((cut, _)) => format!("{}… ({} characters)", &s[..cut], s.chars().count()),
    }
}

/// Shortens every run (between whitespace or quotes) longer than [`QUOTE_LIMIT`] characters in a
/// message, then the message itself to a few lines' worth, as a last guard against
/// messages that echo a large input.
pub fn cap_message(message: &str) -> String {
    const MESSAGE_LIMIT: usize = 600;
    let separator = |c: char| c.is_whitespace() || matches!(c, '\'' | '"' | '`');
    let needs_word_cap = message
        .split(separator)
        .any(|w| w.len() > QUOTE_LIMIT + 16 && w.chars().nth(QUOTE_LIMIT + 16).is_some());
    let out = if needs_word_cap {
        let mut out = String::with_capacity(message.len().min(4 * MESSAGE_LIMIT));
        let mut word = String::new();
        let flush = |word: &mut String, out: &mut String| {
            if word.chars().nth(QUOTE_LIMIT + 16).is_some() {
                out.push_str(&quote(word));
            } else {
                out.push_str(word);
            }
            word.clear();
        };
        for c in message.chars() {
            if separator(c) {
                flush(&mut word, &mut out);
                out.push(c);
            } else {
                word.push(c);
            }
            if out.len() > 4 * MESSAGE_LIMIT {
                break;
            }
        }
        flush(&mut word, &mut out);
        out
    } else {
        message.to_string()
    };
    match out.char_indices().nth(MESSAGE_LIMIT) {
        None => out,
        Some((cut, _)) => format!("{}…", &out[..cut]),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn short_text_is_unchanged() {
        assert_eq!(quote("python"), "python");
        assert_eq!(
            cap_message("invalid name 'x': bad"),
            "invalid name 'x': bad"
        );
    }

    #[test]
    fn long_text_is_cut() {
        let long = "é".repeat(1000);
        let q = quote(&long);
        assert_eq!(q, format!("{}… (1000 characters)", "é".repeat(64)));
        let msg = format!("invalid name '{}': bad", "a".repeat(1_000_000));
        let capped = cap_message(&msg);
        assert!(capped.len() < 200, "{capped}");
        assert!(capped.starts_with("invalid name 'aaaa"), "{capped}");
        assert!(capped.ends_with(": bad"), "{capped}");
        let many = "word ".repeat(1000);
        assert_eq!(cap_message(&many).chars().count(), 601);
    }
}
