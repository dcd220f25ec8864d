//! Text analysis for BM25: lower-cased Unicode words (numbers kept), English stop words dropped, Snowball
//! (Porter 2) stems. Pure functions; no I/O, no model.

use rust_stemmers::{Algorithm, Stemmer};
use unicode_segmentation::UnicodeSegmentation;

/// English stop words: function words that carry no topic (a union of the common Lucene and NLTK lists, without
/// negations and without words that are often the point of a memory such as "first" or "last").
const STOP_WORDS: &[&str] = &[
    "a",
    "about",
    "above",
    "after",
    "again",
    "against",
    "all",
    "am",
    "an",
    "and",
    "any",
    "are",
    "as",
    "at",
    "be",
    "because",
    "been",
    "before",
    "being",
    "below",
    "between",
    "both",
    "but",
    "by",
    "can",
    "could",
    "did",
    "do",
    "does",
    "doing",
    "down",
    "during",
    "each",
    "few",
    "for",
    "from",
    "further",
    "had",
    "has",
    "have",
    "having",
    "he",
    "her",
    "here",
    "hers",
    "herself",
    "him",
    "himself",
    "his",
    "how",
    "i",
    "if",
    "in",
    "into",
    "is",
    "it",
    "its",
    "itself",
    "just",
    "me",
    "more",
    "most",
    "my",
    "myself",
    "of",
    "off",
    "on",
    "once",
    "only",
    "or",
    "other",
    "our",
    "ours",
    "ourselves",
    "out",
    "over",
    "own",
    "same",
    "she",
    "should",
    "so",
    "some",
    "such",
    "than",
    "that",
    "the",
    "their",
    "theirs",
    "them",
    "themselves",
    "then",
    "there",
    "these",
    "they",
    "this",
    "those",
    "through",
    "to",
    "too",
    "under",
    "until",
    "up",
    "very",
    "was",
    "we",
    "were",
    "what",
    "when",
    "where",
    "which",
    "while",
    "who",
    "whom",
    "why",
    "will",
    "with",
    "would",
    "you",
    "your",
    "yours",
    "yourself",
    "yourselves",
    "s",
    "t",
    "ll",
    "re",
    "ve",
    "d",
    "m",
    "also",
    "yeah",
    "oh",
    "hey",
    "wow",
    "really",
    "got",
    "get",
    "it's",
    "i'm",
    "that's",
    "you're",
];

/// Splits, filters and stems text into index terms. Cheap to create; holds the stemmer only.
pub struct Analyzer {
    stemmer: Stemmer,
}

impl Default for Analyzer {
    fn default() -> Self {
        Self::new()
    }
}

impl std::fmt::Debug for Analyzer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Analyzer(english)")
    }
}

/// Lower-cased Unicode words of `text` (UAX #29 word boundaries; numbers are words; apostrophes inside a word
/// stay, so "Caroline's" is one word).
pub fn words(text: &str) -> impl Iterator<Item = String> + '_ {
    text.unicode_words().map(|w| w.to_lowercase().replace('\u{2019}', "'"))
}

/// True for an English stop word (already lower-cased).
pub fn is_stop_word(word: &str) -> bool {
    STOP_WORDS.contains(&word)
}

impl Analyzer {
    pub fn new() -> Self {
        Self { stemmer: Stemmer::create(Algorithm::English) }
    }

    /// The English stem of one lower-cased word ("resetting" → "reset").
    pub fn stem<'a>(&self, word: &'a str) -> std::borrow::Cow<'a, str> {
        self.stemmer.stem(word)
    }

    /// The index terms of `text`, in order, repeats kept (BM25 counts them).
    pub fn terms(&self, text: &str) -> Vec<String> {
        words(text)
            .filter_map(|w| {
                // "caroline's" → "caroline": the possessive adds nothing to match on.
                let w = w.strip_suffix("'s").map(str::to_owned).unwrap_or(w);
                if w.is_empty() || is_stop_word(&w) {
                    return None;
                }
                Some(self.stemmer.stem(&w).into_owned())
            })
            .collect()
    }
}

/// Text reduced for duplicate detection: lower-cased words joined by single spaces.
pub fn normalise(text: &str) -> String {
    words(text).collect::<Vec<_>>().join(" ")
}

/// The token estimate used for budgets: one token per four characters, rounded up (the usual rule of thumb for
/// English with BPE tokenizers; it errs high for short words and low for code).
pub fn estimate_tokens(text: &str) -> usize {
    text.chars().count().div_ceil(4)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn terms_are_lowercased_stemmed_without_stop_words_and_keep_numbers() {
        let a = Analyzer::new();
        assert_eq!(
            a.terms("When did Caroline's running club meet in 2023?"),
            ["carolin", "run", "club", "meet", "2023"]
        );
        assert_eq!(a.terms("Über Cafés"), ["über", "café"]);
        assert!(a.terms("the and of").is_empty());
    }

    #[test]
    fn normalise_and_estimate() {
        assert_eq!(normalise("  Hello,   WORLD! "), "hello world");
        assert_eq!(estimate_tokens("abcdefgh"), 2);
        assert_eq!(estimate_tokens("abcdefghi"), 3);
        assert_eq!(estimate_tokens(""), 0);
    }
}
