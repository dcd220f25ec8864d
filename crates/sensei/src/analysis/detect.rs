//! Failure detectors (issue 6): rule-based, English, precise rather than eager. Each detector has a name and a
//! version; every [`Finding`] carries a stable fingerprint `detector:kind:turn[:subtype]` so re-runs are idempotent.
//!
//! Text is tokenised once per turn (lower-case words, common apostrophe-less contractions normalised) and phrases
//! are matched as whole token sequences, so "no" never matches inside "know" and "human" never inside "humane".
//!
//! [`turn_risk`] is a softer, graded signal per turn used for ranking (agent turns: breakdown risk; user turns:
//! dissatisfaction). It reuses the findings and adds weaker cues that are too imprecise to report as failures.

use std::collections::{HashMap, HashSet};
use std::hash::BuildHasherDefault;
use std::sync::LazyLock;

use serde_json::{Map, Value};

use super::{Finding, Prepared, Severity, Transcript, Turn};
use crate::ingest::Role;

// ---------------------------------------------------------------------------------------------------------------
// Detector names and versions.

pub const FRICTION: &str = "user_friction";
pub const FRICTION_V: u32 = 1;
pub const REPEATED: &str = "repeated_question";
pub const REPEATED_V: u32 = 1;
pub const REFUSAL: &str = "agent_refusal";
pub const REFUSAL_V: u32 = 1;
pub const LOOP: &str = "repetition_loop";
pub const LOOP_V: u32 = 1;
pub const ESCALATION: &str = "escalation_request";
pub const ESCALATION_V: u32 = 1;
pub const TOOL_ERROR: &str = "tool_error";
pub const TOOL_ERROR_V: u32 = 1;
pub const SLOW: &str = "slow_turn";
pub const SLOW_V: u32 = 1;
pub const EMPTY: &str = "empty_reply";
pub const EMPTY_V: u32 = 1;
pub const ABANDON: &str = "abandonment";
pub const ABANDON_V: u32 = 1;

/// Every failure type the detectors report (the friction detector reports `user_frustration`), for filters.
pub const FAILURE_TYPES: [&str; 9] =
    ["user_frustration", REPEATED, REFUSAL, LOOP, ESCALATION, TOOL_ERROR, SLOW, EMPTY, ABANDON];

/// Latency thresholds for [`SLOW`].
const SLOW_MEDIUM_MS: i64 = 10_000;
const SLOW_HIGH_MS: i64 = 30_000;
/// How many earlier turns the similarity detectors look back over (keeps them O(n·W)).
const WINDOW: usize = 12;

// ---------------------------------------------------------------------------------------------------------------
// Tokenisation and phrase matching.

/// Lower-case word tokens of `s`: letters, digits and inner apostrophes; curly apostrophes are straightened and
/// common contractions written without an apostrophe are normalised ("dont" → "don't", "cannot" → "can't").
pub(crate) fn tokens(s: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut cur = String::new();
    let flush = |cur: &mut String, out: &mut Vec<String>| {
        while cur.ends_with('\'') {
            cur.pop();
        }
        if !cur.is_empty() {
            let w = std::mem::take(cur);
            out.push(normalise(w));
        }
    };
    for ch in s.chars() {
        let c = if ch == '\u{2019}' || ch == '\u{2018}' { '\'' } else { ch };
        if c.is_alphanumeric() {
            cur.extend(c.to_lowercase());
        } else if c == '\'' && !cur.is_empty() {
            cur.push('\'');
        } else {
            flush(&mut cur, &mut out);
        }
    }
    flush(&mut cur, &mut out);
    out
}

fn normalise(w: String) -> String {
    let m = match w.as_str() {
        "dont" => "don't",
        "cant" | "cannot" => "can't",
        "im" => "i'm",
        "didnt" => "didn't",
        "doesnt" => "doesn't",
        "isnt" => "isn't",
        "wont" => "won't",
        "thats" => "that's",
        "whats" => "what's",
        "youre" => "you're",
        "couldnt" => "couldn't",
        "wasnt" => "wasn't",
        "arent" => "aren't",
        "ur" => "your",
        "u" => "you",
        "pls" | "plz" => "please",
        "thx" | "ty" => "thanks",
        _ => return w,
    };
    m.to_string()
}

/// FNV-1a, for the word and phrase tables: they are probed once per token and list, and SipHash (the default) was
/// among the top entries of the analysis profile. The tables are only probed, never iterated, so the hasher
/// changes no result.
#[derive(Clone, Copy)]
struct Fnv(u64);

impl Default for Fnv {
    fn default() -> Self {
        Fnv(0xcbf2_9ce4_8422_2325)
    }
}

impl std::hash::Hasher for Fnv {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        for b in bytes {
            self.0 = (self.0 ^ u64::from(*b)).wrapping_mul(0x0000_0100_0000_01b3);
        }
    }
}

type FastMap<K, V> = HashMap<K, V, BuildHasherDefault<Fnv>>;
type FastSet<K> = HashSet<K, BuildHasherDefault<Fnv>>;

/// A phrase list, pre-tokenised once and indexed by first word.
struct Phrases(FastMap<String, Vec<Vec<String>>>);

impl Phrases {
    fn new(list: &[&str]) -> Self {
        let mut m: FastMap<String, Vec<Vec<String>>> = FastMap::default();
        for p in list.iter().map(|p| tokens(p)) {
            if let Some(first) = p.first() {
                m.entry(first.clone()).or_default().push(p);
            }
        }
        Phrases(m)
    }

    /// The first phrase occurring in `toks` as a contiguous token sequence, with its start position.
    fn find(&self, toks: &[String]) -> Option<(usize, &[String])> {
        for (i, t) in toks.iter().enumerate() {
            if let Some(ps) = self.0.get(t) {
                for p in ps {
                    if toks.len() - i >= p.len() && toks[i..i + p.len()] == p[..] {
                        return Some((i, p));
                    }
                }
            }
        }
        None
    }

    fn any(&self, toks: &[String]) -> bool {
        self.find(toks).is_some()
    }

    /// A phrase that starts the turn (within the first `slack` tokens).
    fn leads(&self, toks: &[String], slack: usize) -> bool {
        self.find(toks).is_some_and(|(i, _)| i <= slack)
    }
}

fn word_set(words: &[&'static str]) -> FastSet<&'static str> {
    words.iter().copied().collect()
}

static CORRECTION: LazyLock<Phrases> = LazyLock::new(|| {
    Phrases::new(&[
        "that's not what i",
        "that is not what i",
        "not what i asked",
        "not what i said",
        "not what i wanted",
        "not what i meant",
        "i didn't ask",
        "i didn't say",
        "i did not ask",
        "i did not say",
        "you misunderstood",
        "you misunderstand",
        "you got it wrong",
        "you're not listening",
        "you are not listening",
        "i already said",
        "i already told you",
        "as i said",
        "like i said",
    ])
});

/// Correction phrases that count only near the start of the turn ("No, I said two", not "what I said about").
static CORRECTION_LEAD: LazyLock<Phrases> =
    LazyLock::new(|| Phrases::new(&["i said", "i meant", "i mean", "i told you", "i asked for", "i asked you"]));

/// Restatement markers that make a leading "no" a correction rather than a plain answer.
static RESTATE: LazyLock<Phrases> = LazyLock::new(|| {
    Phrases::new(&[
        "instead",
        "actually",
        "rather",
        "i want",
        "i wanted",
        "i need",
        "i needed",
        "i asked",
        "make it",
        "change it",
        "should be",
        "it should",
        "it's",
        "it is",
        "i'm looking for",
        "i am looking for",
        "not that",
        "the other",
        "wrong",
    ])
});

static ALTERNATIVE: LazyLock<Phrases> = LazyLock::new(|| {
    Phrases::new(&[
        "another",
        "any other",
        "other options",
        "other one",
        "something else",
        "anything else",
        "something different",
        "different one",
        "a different",
        "what else",
        "else available",
        "other than",
        "any others",
        "anybody else",
        "anyone else",
        "who else",
        "where else",
        "alternative",
        "alternatives",
        "more options",
        "more possibilities",
        "other choices",
        "anything later",
        "anything earlier",
        "something later",
        "something earlier",
        "something cheaper",
        "anything cheaper",
        "too early",
        "too late",
        "too expensive",
        "too far",
        "won't work",
        "doesn't work",
        "does not work",
        "not work for me",
        "doesn't suit",
        "changed my mind",
        "change my mind",
        "never mind",
        "go back",
    ])
});

static NEGATION_START: LazyLock<Phrases> =
    LazyLock::new(|| Phrases::new(&["no", "nope", "nah", "wrong", "incorrect", "not quite", "not really"]));

/// A leading "no" that closes politely ("no thanks", "no, that's all") rather than correcting.
static CLOSING: LazyLock<Phrases> = LazyLock::new(|| {
    Phrases::new(&[
        "thanks",
        "thank you",
        "thank u",
        "that's all",
        "that is all",
        "that's it",
        "that is it",
        "that will be all",
        "that'll be all",
        "that should be all",
        "nothing else",
        "nothing more",
        "all set",
        "i'm set",
        "i'm good",
        "i am good",
        "not right now",
        "not now",
        "not at the moment",
        "no need",
        "bye",
        "goodbye",
        "good bye",
        "have a good",
        "have a nice",
        "that's great",
        "that's perfect",
        "perfect",
        "great",
        "appreciate",
    ])
});

static CHALLENGE: LazyLock<Phrases> = LazyLock::new(|| {
    Phrases::new(&[
        "are you sure",
        "that's wrong",
        "that is wrong",
        "that's not right",
        "that is not right",
        "that's not correct",
        "that is not correct",
        "that's incorrect",
        "that is incorrect",
        "that's not true",
        "that is not true",
        "not true",
        "you're wrong",
        "you are wrong",
        "that's a lie",
        "you didn't answer",
        "you did not answer",
        "you haven't answered",
        "answer my question",
        "answer the question",
        "that's not an answer",
        "that doesn't answer",
    ])
});

static CONFUSION: LazyLock<Phrases> = LazyLock::new(|| {
    Phrases::new(&[
        "what do you mean",
        "what are you talking about",
        "i don't understand",
        "i do not understand",
        "i don't get it",
        "i'm confused",
        "i am confused",
        "so confused",
        "doesn't make sense",
        "does not make sense",
        "makes no sense",
        "make no sense",
        "no sense",
        "why are you",
        "change the subject",
        "changing the subject",
        "random",
        "nonsense",
        "gibberish",
        "who are you talking about",
        "what does that mean",
        "what does that have to do",
        "off topic",
        "not related",
    ])
});

/// Turns that are only an interjection of confusion: "what?", "huh", "uh ?".
static CONFUSED_ALONE: LazyLock<FastSet<&'static str>> =
    LazyLock::new(|| word_set(&["what", "huh", "uh", "eh", "hm", "hmm", "pardon", "sorry", "wut", "um"]));

static FRUSTRATION: LazyLock<Phrases> = LazyLock::new(|| {
    Phrases::new(&[
        "useless",
        "ridiculous",
        "waste of time",
        "wasting my time",
        "stupid",
        "idiot",
        "dumb",
        "terrible",
        "horrible",
        "awful",
        "pathetic",
        "frustrating",
        "frustrated",
        "annoying",
        "annoyed",
        "fed up",
        "sick of",
        "are you kidding",
        "you're kidding",
        "wtf",
        "what the hell",
        "for god's sake",
        "seriously",
        "come on",
        "ugh",
        "worst",
        "garbage",
        "rubbish",
        "hopeless",
        "doesn't work",
        "does not work",
        "not working",
        "still not",
        "still doesn't",
        "again",
        "disappointed",
        "disappointing",
        "too bad",
        "oh no",
    ])
});

/// Strong frustration words: reported even without negative sentiment.
static FRUSTRATION_STRONG: LazyLock<Phrases> = LazyLock::new(|| {
    Phrases::new(&[
        "useless",
        "ridiculous",
        "waste of time",
        "wasting my time",
        "stupid",
        "idiot",
        "pathetic",
        "fed up",
        "sick of",
        "are you kidding",
        "wtf",
        "what the hell",
        "for god's sake",
        "garbage",
        "worst",
        "hopeless",
        "frustrating",
        "frustrated",
    ])
});

static REFUSE: LazyLock<Phrases> = LazyLock::new(|| {
    Phrases::new(&[
        "i can't help",
        "i'm not able to help",
        "i am not able to help",
        "i won't be able to help",
        "i can't assist",
        "i'm unable to help",
        "i am unable to help",
        "i'm unable to assist",
        "i am unable to assist",
        "i can't do that",
        "i'm not allowed",
        "i am not allowed",
        "i'm not permitted",
        "as an ai",
        "as a language model",
        "as an ai language model",
        "i can't provide",
        "i can't answer",
        "i won't",
        "i must decline",
        "i can't comply",
        "i can't discuss",
        "against my guidelines",
        "not able to provide",
    ])
});

static INABLE: LazyLock<Phrases> = LazyLock::new(|| {
    Phrases::new(&[
        "i'm unable",
        "i am unable",
        "i was unable",
        "i wasn't able",
        "i was not able",
        "i'm not able",
        "i am not able",
        "i don't have access",
        "i do not have access",
        "i don't have that information",
        "i do not have that information",
        "i don't have information",
        "i don't have any information",
        "i don't know",
        "i do not know",
        "i'm not sure",
        "i couldn't",
        "i could not",
        "i can't",
        "failed to",
        "was unsuccessful",
        "unsuccessful",
        "an error occurred",
        "something went wrong",
        "try again later",
        "i can't find",
        "i couldn't find",
    ])
});

static NO_RESULT: LazyLock<Phrases> = LazyLock::new(|| {
    Phrases::new(&[
        "no results",
        "no matches",
        "no match",
        "nothing matches",
        "nothing matching",
        "none match",
        "there are no",
        "there is no",
        "there isn't",
        "there aren't",
        "not available",
        "unavailable",
        "no availability",
        "fully booked",
        "sold out",
        "does not have",
        "doesn't have",
        "do not have",
        "does not offer",
        "doesn't offer",
        "not offer",
        "does not provide",
        "doesn't provide",
        "isn't allowed",
        "not allowed",
        "does not",
        "doesn't",
        "isn't",
        "not in the",
        "unfortunately",
        "i'm afraid",
        "i am afraid",
        "i'm sorry",
        "i am sorry",
        "sorry",
        "regret",
        "regretfully",
        "no such",
        "can't",
        "won't be able",
        "not possible",
        "apologize",
        "apologise",
        "apologies",
    ])
});

/// Routine "anything else?" offers, which task agents legitimately repeat.
static GENERIC_OFFER: LazyLock<Phrases> = LazyLock::new(|| {
    Phrases::new(&[
        "anything else",
        "any thing else",
        "something else",
        "anything more",
        "any other help",
        "any further",
        "else can i",
        "else i can",
        "is there more",
        "what else",
        "how else",
        "help you with",
        "how can i help",
        "how may i help",
        "goodbye",
        "good bye",
        "have a good",
        "have a great",
        "have a nice",
        "you're welcome",
        "welcome",
    ])
});

static APPRECIATION: LazyLock<Phrases> = LazyLock::new(|| {
    Phrases::new(&[
        "thanks",
        "thank you",
        "thank u",
        "much appreciated",
        "appreciate",
        "great",
        "perfect",
        "awesome",
        "excellent",
        "wonderful",
        "fantastic",
        "amazing",
        "sounds good",
        "that's good",
        "that works",
        "helpful",
        "brilliant",
        "lovely",
        "love it",
        "cool",
        "nice",
    ])
});

static SUCCESS: LazyLock<Phrases> = LazyLock::new(|| {
    Phrases::new(&[
        "successful",
        "successfully",
        "is booked",
        "has been booked",
        "have booked",
        "i've booked",
        "is confirmed",
        "has been confirmed",
        "been made",
        "is reserved",
        "has been reserved",
        "reference number",
        "confirmation number",
        "you're all set",
        "you are all set",
        "has been purchased",
        "have been purchased",
        "has been scheduled",
        "is scheduled",
        "has been sent",
        "has been updated",
        "has been fixed",
        "is resolved",
        "has been resolved",
        "has been processed",
    ])
});

static HANDOFF: LazyLock<Phrases> = LazyLock::new(|| {
    Phrases::new(&[
        "transfer you",
        "transferring you",
        "connect you",
        "connecting you",
        "i've escalated",
        "i have escalated",
        "escalated",
        "escalating",
        "a human agent will",
        "an agent will",
        "someone will",
        "a colleague",
        "our team will",
        "support team will",
        "put you through",
        "handing you over",
        "hand you over",
        "you can reach",
        "you can contact",
        "call us",
    ])
});

static ESC_VERB: LazyLock<FastSet<&'static str>> = LazyLock::new(|| {
    word_set(&["talk", "speak", "chat", "connect", "transfer", "escalate", "get", "want", "need", "put", "reach"])
});
static ESC_TARGET: LazyLock<FastSet<&'static str>> = LazyLock::new(|| {
    word_set(&[
        "human",
        "humans",
        "person",
        "agent",
        "manager",
        "representative",
        "rep",
        "supervisor",
        "operator",
        "someone",
        "somebody",
        "staff",
        "service",
    ])
});
static ESC_FILLER: LazyLock<FastSet<&'static str>> = LazyLock::new(|| {
    word_set(&[
        "to", "with", "me", "a", "an", "the", "real", "live", "actual", "human", "your", "some", "through", "over",
        "customer", "support", "service", "of",
    ])
});

static ESC_PHRASE: LazyLock<Phrases> = LazyLock::new(|| {
    Phrases::new(&[
        "real person",
        "real human",
        "live agent",
        "live person",
        "live chat",
        "human agent",
        "human being",
        "not a bot",
        "not a robot",
    ])
});

static QUESTION_START: LazyLock<FastSet<&'static str>> = LazyLock::new(|| {
    word_set(&[
        "what", "when", "where", "which", "who", "whom", "whose", "why", "how", "is", "are", "can", "could", "would",
        "will", "do", "does", "did", "should", "may", "have", "has",
    ])
});

static STOP: LazyLock<FastSet<&'static str>> = LazyLock::new(|| {
    word_set(&[
        "i", "me", "my", "you", "your", "a", "an", "the", "is", "are", "was", "were", "be", "to", "of", "and", "or",
        "in", "on", "at", "for", "it", "this", "that", "do", "does", "did", "have", "has", "what", "how", "can",
        "could", "would", "will", "i'm", "it's", "yes", "no", "ok", "okay", "so", "just", "with", "about", "not", "we",
        "our", "they", "them", "he", "she", "his", "her", "its", "there", "here", "then", "than", "but", "if", "as",
        "by", "from", "all", "any", "some", "too", "very", "also", "well", "oh", "please", "thanks", "thank", "like",
        "get", "got", "know", "think", "want", "need", "one", "really", "yeah", "sure", "that's", "what's", "you're",
        "don't", "can't", "am", "been", "being", "would", "should", "let", "let's", "more", "much",
    ])
});

// ---------------------------------------------------------------------------------------------------------------
// Per-turn text features, computed once.

pub(crate) struct TurnText {
    pub toks: Vec<String>,
    /// Sorted, deduplicated content words (stop words and 1–2 letter words removed).
    pub content: Vec<String>,
    pub is_question: bool,
    /// Contains a polite close / thanks ("no thanks", "that's all").
    pub closing: bool,
    /// Thanks or praise ("thank you", "great", "perfect").
    pub appreciation: bool,
    /// Starts with a negation ("no", "nope", "wrong").
    pub negation_start: bool,
    /// Phrase-list hits, computed once (user lists on user turns, agent lists on agent turns).
    pub hits: Hits,
}

#[derive(Default, Clone, Copy)]
pub(crate) struct Hits {
    pub frustration_strong: bool,
    pub frustration: bool,
    pub correction: bool,
    pub challenge: bool,
    pub confusion: bool,
    pub restate_after_first: bool,
    pub restate: bool,
    /// Asks for something else than what was offered ("any other", "something different").
    pub alternative: bool,
    pub escalation: bool,
    pub refuse: bool,
    pub inable: bool,
    pub no_result: bool,
    pub handoff: bool,
    /// The agent reports a completed task ("booking was successful", "your reference number is").
    pub success: bool,
}

pub(crate) fn turn_texts(t: &Transcript) -> Vec<TurnText> {
    t.turns
        .iter()
        .map(|turn| {
            let toks = tokens(&turn.content);
            let mut content: Vec<String> =
                toks.iter().filter(|w| w.chars().count() > 2 && !STOP.contains(w.as_str())).cloned().collect();
            content.sort_unstable();
            content.dedup();
            let is_question =
                turn.content.contains('?') || toks.first().is_some_and(|w| QUESTION_START.contains(w.as_str()));
            let closing = CLOSING.any(&toks);
            let appreciation = APPRECIATION.any(&toks);
            let negation_start = NEGATION_START.leads(&toks, 0);
            let mut hits = Hits::default();
            match turn.role {
                Role::User => {
                    hits.frustration_strong = FRUSTRATION_STRONG.any(&toks);
                    hits.frustration = hits.frustration_strong || FRUSTRATION.any(&toks);
                    hits.correction = CORRECTION.any(&toks) || CORRECTION_LEAD.leads(&toks, 2);
                    hits.challenge = CHALLENGE.any(&toks);
                    hits.confusion = CONFUSION.any(&toks);
                    hits.restate = RESTATE.any(&toks);
                    hits.alternative = ALTERNATIVE.any(&toks);
                    hits.restate_after_first = hits.restate && toks.len() > 1 && RESTATE.any(&toks[1..]);
                    hits.escalation = escalation_at(&toks);
                }
                Role::Assistant => {
                    hits.refuse = REFUSE.any(&toks);
                    hits.inable = INABLE.any(&toks);
                    hits.no_result = NO_RESULT.any(&toks);
                    hits.handoff = HANDOFF.any(&toks);
                    hits.success = SUCCESS.any(&toks) && !hits.inable && !hits.refuse;
                }
                Role::Tool | Role::System => {}
            }
            TurnText { toks, content, is_question, closing, appreciation, negation_start, hits }
        })
        .collect()
}

/// Jaccard similarity of two sorted, deduplicated word lists.
fn jaccard(a: &[String], b: &[String]) -> f64 {
    if a.is_empty() || b.is_empty() {
        return 0.0;
    }
    let (mut i, mut j, mut inter) = (0, 0, 0usize);
    while i < a.len() && j < b.len() {
        match a[i].cmp(&b[j]) {
            std::cmp::Ordering::Less => i += 1,
            std::cmp::Ordering::Greater => j += 1,
            std::cmp::Ordering::Equal => {
                inter += 1;
                i += 1;
                j += 1;
            }
        }
    }
    inter as f64 / (a.len() + b.len() - inter) as f64
}

/// Jaccard over the full token multiset reduced to a set (for near-identical replies, stop words count).
fn token_jaccard(a: &[String], b: &[String]) -> f64 {
    let mut x: Vec<&str> = a.iter().map(String::as_str).collect();
    let mut y: Vec<&str> = b.iter().map(String::as_str).collect();
    x.sort_unstable();
    x.dedup();
    y.sort_unstable();
    y.dedup();
    if x.is_empty() || y.is_empty() {
        return 0.0;
    }
    let (mut i, mut j, mut inter) = (0, 0, 0usize);
    while i < x.len() && j < y.len() {
        match x[i].cmp(y[j]) {
            std::cmp::Ordering::Less => i += 1,
            std::cmp::Ordering::Greater => j += 1,
            std::cmp::Ordering::Equal => {
                inter += 1;
                i += 1;
                j += 1;
            }
        }
    }
    inter as f64 / (x.len() + y.len() - inter) as f64
}

/// Near-identical replies: almost the same words, and the same numbers (a re-confirmation with a corrected date
/// or count is not a loop).
fn near_identical(a: &[String], b: &[String]) -> bool {
    token_jaccard(a, b) >= 0.85 && numbers(a) == numbers(b)
}

fn numbers(v: &[String]) -> Vec<&str> {
    let mut n: Vec<&str> = v.iter().filter(|w| w.chars().any(|c| c.is_ascii_digit())).map(String::as_str).collect();
    n.sort_unstable();
    n.dedup();
    n
}

/// At most 200 characters of `s`, on a char boundary, whitespace collapsed.
pub(crate) fn excerpt(s: &str) -> String {
    let collapsed: String = s.split_whitespace().collect::<Vec<_>>().join(" ");
    if collapsed.chars().count() <= 200 {
        return collapsed;
    }
    let mut out: String = collapsed.chars().take(199).collect();
    out.push('…');
    out
}

fn is_user(turn: &Turn) -> bool {
    turn.role == Role::User
}

fn is_agent(turn: &Turn) -> bool {
    turn.role == Role::Assistant
}

/// Several words in capitals: "THIS IS NOT WORKING".
fn shouting(s: &str) -> bool {
    let mut caps = 0;
    let mut words = 0;
    for w in s.split_whitespace() {
        let letters: Vec<char> = w.chars().filter(|c| c.is_alphabetic()).collect();
        if letters.is_empty() {
            continue;
        }
        words += 1;
        if letters.len() >= 3 && letters.iter().all(|c| c.is_uppercase()) {
            caps += 1;
        }
    }
    caps >= 2 && caps * 2 >= words
}

fn finding(
    (detector, version): (&'static str, u32),
    kind: &'static str,
    subtype: &'static str,
    severity: Severity,
    turn: Option<usize>,
    evidence: &str,
    confidence: f64,
) -> Finding {
    let at = turn.map_or_else(|| "-".to_string(), |i| i.to_string());
    let fingerprint = if subtype.is_empty() {
        format!("{detector}:{kind}:{at}")
    } else {
        format!("{detector}:{kind}:{at}:{subtype}")
    };
    Finding {
        kind,
        subtype,
        severity,
        turn,
        evidence: excerpt(evidence),
        detector,
        detector_version: version,
        confidence,
        fingerprint,
    }
}

fn sent(sentiment: &[f64], i: usize) -> f64 {
    sentiment.get(i).copied().unwrap_or(0.0)
}

/// The index of the closest earlier turn satisfying `pred`.
fn prev_where(t: &Transcript, i: usize, pred: fn(&Turn) -> bool) -> Option<usize> {
    (0..i).rev().find(|&j| pred(&t.turns[j]))
}

fn next_where(t: &Transcript, i: usize, pred: fn(&Turn) -> bool) -> Option<usize> {
    (i + 1..t.turns.len()).find(|&j| pred(&t.turns[j]))
}

// ---------------------------------------------------------------------------------------------------------------
// The detectors.

/// Friction in one user turn: the strongest subtype, with severity and confidence.
fn friction(t: &Transcript, tx: &[TurnText], sentiment: &[f64], i: usize) -> Option<(&'static str, Severity, f64)> {
    let turn = &t.turns[i];
    let x = &tx[i];
    let s = sent(sentiment, i);
    // Frustration: strong markers alone, or weaker markers / shouting / "!!" with clearly negative sentiment.
    let strong = x.hits.frustration_strong;
    let weak = x.hits.frustration || shouting(&turn.content) || turn.content.contains("!!");
    if strong && s < -0.4 {
        return Some(("frustration", Severity::High, 0.9));
    }
    if strong || (weak && s < -0.4) {
        return Some(("frustration", Severity::Medium, 0.75));
    }
    if x.hits.correction {
        return Some(("correction", Severity::Medium, 0.8));
    }
    if x.hits.challenge {
        return Some(("challenge", Severity::Medium, 0.75));
    }
    let after_agent = i > 0 && is_agent(&t.turns[i - 1]);
    if after_agent && (x.hits.confusion || is_confused_alone(x)) {
        return Some(("confusion", Severity::Low, 0.7));
    }
    // A leading "no" that restates what the user wants ("No, the 10th of March instead") after an agent turn.
    if after_agent && x.negation_start && !x.closing && x.toks.len() >= 3 && x.hits.restate_after_first {
        return Some(("correction", Severity::Low, 0.6));
    }
    // Retry: the user sends (nearly) the same message again after the agent's reply.
    if let Some(p) = prev_where(t, i, is_user)
        && p + 1 < i
        && x.content.len() >= 3
        && !x.closing
        && jaccard(&x.content, &tx[p].content) >= 0.7
    {
        return Some(("retry", Severity::Medium, 0.75));
    }
    None
}

fn is_confused_alone(x: &TurnText) -> bool {
    !x.toks.is_empty() && x.toks.len() <= 2 && x.toks.iter().all(|w| CONFUSED_ALONE.contains(w.as_str()))
        || x.toks.len() <= 3
            && x.toks.first().is_some_and(|w| w == "what")
            && x.is_question
            && !x.toks.iter().any(|w| w == "about")
}

/// The kind of agent failure in one assistant turn (refusal, inability), if any.
fn refusal(x: &TurnText) -> Option<(&'static str, Severity, f64)> {
    if x.hits.refuse {
        return Some(("refusal", Severity::Medium, 0.8));
    }
    if x.hits.inable {
        return Some(("inability", Severity::Medium, 0.7));
    }
    None
}

fn escalation_at(toks: &[String]) -> bool {
    if ESC_PHRASE.any(toks) {
        return true;
    }
    // A verb such as talk/speak/connect, then only filler words (to, with, me, a, real, …), then a person:
    // "can I speak to a manager", "get me a real person" — but not "eat in person" or "someone else".
    for (i, w) in toks.iter().enumerate() {
        if !ESC_VERB.contains(w.as_str()) {
            continue;
        }
        for j in i + 1..(i + 6).min(toks.len()) {
            let v = toks[j].as_str();
            if ESC_TARGET.contains(v) {
                let else_follows = toks.get(j + 1).is_some_and(|x| x == "else");
                let has_filler = j > i + 1;
                if !else_follows && (has_filler || v != "someone" && v != "somebody") {
                    return true;
                }
                break;
            }
            if !ESC_FILLER.contains(v) {
                break;
            }
        }
    }
    false
}

fn meta_str<'a>(m: &'a Map<String, Value>, key: &str) -> Option<&'a str> {
    m.get(key).and_then(Value::as_str)
}

fn meta_truthy(v: &Value) -> bool {
    match v {
        Value::Null => false,
        Value::Bool(b) => *b,
        Value::String(s) => !s.trim().is_empty() && s != "false" && s != "0",
        Value::Number(n) => n.as_f64().is_some_and(|f| f != 0.0),
        Value::Array(a) => !a.is_empty(),
        Value::Object(o) => !o.is_empty(),
    }
}

/// A tool error signalled in a turn's metadata or content; returns the evidence.
fn tool_error(turn: &Turn) -> Option<String> {
    let m = &turn.metadata;
    for key in ["tool_error", "toolError", "error", "is_error", "isError"] {
        if let Some(v) = m.get(key)
            && meta_truthy(v)
        {
            let ev = match v {
                Value::String(s) => format!("{key}: {s}"),
                Value::Bool(_) => format!("{key}: true"),
                other => format!("{key}: {other}"),
            };
            return Some(ev);
        }
    }
    if meta_str(m, "status").is_some_and(|s| s.eq_ignore_ascii_case("error"))
        || meta_str(m, "tool_status").is_some_and(|s| s.eq_ignore_ascii_case("error"))
    {
        return Some(format!("status: error; {}", turn.content));
    }
    if turn.role == Role::Tool {
        if turn.status == "error" {
            return Some(turn.content.clone());
        }
        let head: String = turn.content.trim_start().chars().take(40).collect::<String>().to_lowercase();
        if head.starts_with("error")
            || head.starts_with("exception")
            || head.starts_with("traceback")
            || head.starts_with("failed")
            || head.starts_with("{\"error\"")
        {
            return Some(turn.content.clone());
        }
    }
    None
}

fn latency(turn: &Turn) -> Option<i64> {
    turn.latency_ms.or_else(|| {
        ["latency_ms", "latencyMs", "duration_ms", "durationMs"]
            .iter()
            .find_map(|k| turn.metadata.get(*k).and_then(|v| v.as_i64().or_else(|| v.as_f64().map(|f| f as i64))))
    })
}

/// Every failure in the transcript.
pub fn detect(t: &Transcript, sentiment: &[f64]) -> Vec<Finding> {
    detect_with(&Prepared::with_sentiment(t, sentiment.to_vec()))
}

/// [`detect`] over a prepared transcript.
pub(crate) fn detect_with(p: &Prepared<'_>) -> Vec<Finding> {
    let (t, sentiment, tx) = (p.transcript, &p.sentiment[..], &p.text[..]);
    let mut out = Vec::new();
    let n = t.turns.len();
    // Agent turns that failed, for abandonment.
    let mut failed_agent = vec![false; n];
    for i in 0..n {
        let turn = &t.turns[i];
        let x = &tx[i];
        match turn.role {
            Role::User => {
                if let Some((sub, sev, conf)) = friction(t, tx, sentiment, i) {
                    out.push(finding(
                        (FRICTION, FRICTION_V),
                        "user_frustration",
                        sub,
                        sev,
                        Some(i),
                        &turn.content,
                        conf,
                    ));
                    if matches!(sub, "correction" | "challenge" | "confusion" | "retry")
                        && let Some(a) = prev_where(t, i, is_agent)
                    {
                        failed_agent[a] = true;
                    }
                }
                // Repeated question: a question much like an earlier user question that already had a reply.
                if x.is_question && x.content.len() >= 2 {
                    let mut agent_between = false;
                    let lo = i.saturating_sub(WINDOW);
                    for j in (lo..i).rev() {
                        let tj = &t.turns[j];
                        if is_agent(tj) {
                            agent_between = true;
                            continue;
                        }
                        if is_user(tj)
                            && agent_between
                            && tx[j].is_question
                            && jaccard(&x.content, &tx[j].content) >= 0.6
                        {
                            out.push(finding(
                                (REPEATED, REPEATED_V),
                                "repeated_question",
                                "",
                                Severity::Medium,
                                Some(i),
                                &turn.content,
                                0.7,
                            ));
                            break;
                        }
                    }
                }
                if x.hits.escalation {
                    let resolved = (i + 1..n).any(|j| {
                        let tj = &t.turns[j];
                        (is_agent(tj) && tx[j].hits.handoff)
                            || (is_user(tj) && (tx[j].closing && !tx[j].hits.escalation))
                    });
                    let sev = if resolved {
                        Severity::Low
                    } else if t.is_final {
                        Severity::High
                    } else {
                        Severity::Medium
                    };
                    let sub = if resolved { "resolved" } else { "open" };
                    out.push(finding(
                        (ESCALATION, ESCALATION_V),
                        "escalation_request",
                        sub,
                        sev,
                        Some(i),
                        &turn.content,
                        0.85,
                    ));
                }
            }
            Role::Assistant => {
                if turn.content.trim().is_empty() || turn.status == "error" {
                    let sub = if turn.status == "error" { "error" } else { "empty" };
                    let ev = if turn.content.trim().is_empty() { "(empty reply)" } else { turn.content.as_str() };
                    out.push(finding((EMPTY, EMPTY_V), "empty_reply", sub, Severity::High, Some(i), ev, 0.95));
                    failed_agent[i] = true;
                } else {
                    if let Some((sub, sev, conf)) = refusal(x) {
                        out.push(finding(
                            (REFUSAL, REFUSAL_V),
                            "agent_refusal",
                            sub,
                            sev,
                            Some(i),
                            &turn.content,
                            conf,
                        ));
                        failed_agent[i] = true;
                    }
                    // Repetition loop: near-identical to one of the last few agent replies.
                    if x.toks.len() >= 4 && !GENERIC_OFFER.any(&x.toks) {
                        let lo = i.saturating_sub(WINDOW);
                        let repeats =
                            (lo..i).filter(|&j| is_agent(&t.turns[j]) && near_identical(&x.toks, &tx[j].toks)).count();
                        if repeats > 0 {
                            let sev = if repeats >= 2 { Severity::High } else { Severity::Medium };
                            out.push(finding((LOOP, LOOP_V), "repetition_loop", "", sev, Some(i), &turn.content, 0.85));
                            failed_agent[i] = true;
                        }
                    }
                }
            }
            Role::Tool | Role::System => {}
        }
        if turn.role != Role::User {
            if let Some(ev) = tool_error(turn) {
                out.push(finding((TOOL_ERROR, TOOL_ERROR_V), "tool_error", "", Severity::Medium, Some(i), &ev, 0.9));
                if let Some(a) = if is_agent(turn) { Some(i) } else { next_where(t, i, is_agent) } {
                    failed_agent[a] = true;
                }
            }
            if let Some(ms) = latency(turn)
                && ms > SLOW_MEDIUM_MS
            {
                let sev = if ms > SLOW_HIGH_MS { Severity::High } else { Severity::Medium };
                let ev = format!("latency {:.1} s", ms as f64 / 1000.0);
                out.push(finding((SLOW, SLOW_V), "slow_turn", "", sev, Some(i), &ev, 0.95));
            }
        }
    }
    // Abandonment: final transcript whose last agent turn failed and the user left, or which ends with a user turn
    // (no reply) right after a failed agent turn.
    if t.is_final && n > 0 {
        let last = n - 1;
        let at = if is_user(&t.turns[last]) {
            prev_where(t, last, is_agent).filter(|&a| failed_agent[a])
        } else {
            prev_where(t, n, is_agent).filter(|&a| failed_agent[a] && next_where(t, a, is_user).is_none())
        };
        // Not when the user had already closed ("that's all, thanks") or the agent was saying goodbye.
        let user_closed = at.and_then(|a| prev_where(t, a, is_user)).is_some_and(|u| tx[u].closing);
        let at = at.filter(|&a| !user_closed && !tx[a].closing);
        if let Some(a) = at {
            out.push(finding(
                (ABANDON, ABANDON_V),
                "abandonment",
                "",
                Severity::High,
                Some(a),
                &t.turns[a].content,
                0.7,
            ));
        }
    }
    out
}

// ---------------------------------------------------------------------------------------------------------------
// Per-turn risk.

fn severity_weight(s: Severity) -> f64 {
    match s {
        Severity::Low => 0.35,
        Severity::Medium => 0.6,
        Severity::High => 0.85,
        Severity::Critical => 1.0,
    }
}

/// Noisy-or accumulation of independent risk signals.
fn or(acc: &mut f64, p: f64) {
    *acc = 1.0 - (1.0 - *acc) * (1.0 - p.clamp(0.0, 1.0));
}

/// Agent-side cues of a weak or failed reply (a negative answer, an apology, no result), 0..1; not a finding.
fn agent_failure_cue(x: &TurnText) -> f64 {
    if refusal(x).is_some() {
        0.6
    } else if x.hits.no_result {
        0.35
    } else if x.negation_start {
        0.3
    } else {
        0.0
    }
}

/// Capitalised words after a lower-case word or comma ("… told Lorri …") whose lower-case form has not been seen.
fn new_names(s: &str, seen: &FastSet<&str>) -> usize {
    let mut n = 0;
    let mut prev_lower = false;
    for w in s.split_whitespace() {
        let word: String = w.chars().filter(|c| c.is_alphanumeric()).collect();
        let mut cs = word.chars();
        let first_upper = cs.next().is_some_and(char::is_uppercase);
        if prev_lower && first_upper && word.len() > 1 && cs.all(char::is_lowercase) {
            let lw = word.to_lowercase();
            if !seen.contains(lw.as_str()) {
                n += 1;
            }
        }
        let ends_sentence = w.ends_with(['.', '!', '?']);
        prev_lower = !ends_sentence && w.chars().next().is_some_and(|c| c.is_lowercase() || !c.is_alphabetic())
            || w.ends_with(',');
    }
    n
}

/// Per-turn failure risk, 0..1.
pub fn turn_risk(t: &Transcript, sentiment: &[f64], findings: &[Finding]) -> Vec<f64> {
    turn_risk_with(&Prepared::with_sentiment(t, sentiment.to_vec()), findings)
}

/// [`turn_risk`] over a prepared transcript.
pub(crate) fn turn_risk_with(p: &Prepared<'_>, findings: &[Finding]) -> Vec<f64> {
    let (t, sentiment, tx) = (p.transcript, &p.sentiment[..], &p.text[..]);
    let n = t.turns.len();
    let mut base = vec![0.0f64; n];
    for f in findings {
        if let Some(i) = f.turn
            && i < n
        {
            let w = severity_weight(f.severity) * f.confidence;
            // Slow turns are operational, not conversational: count them only lightly.
            let w = if f.kind == "slow_turn" { w * 0.3 } else { w };
            or(&mut base[i], w);
        }
    }

    // Agent turns: own findings, weak failure cues, novelty (non-sequitur), and the user's reaction next turn.
    let mut seen: FastSet<&str> = FastSet::default();
    let mut agent_own = vec![0.0f64; n];
    for i in 0..n {
        let turn = &t.turns[i];
        if is_agent(turn) {
            let x = &tx[i];
            let mut r = base[i];
            or(&mut r, agent_failure_cue(x) * 0.25);
            // Novelty: share of content words never seen earlier in the conversation, stronger for long replies
            // that share nothing with the user's last message (a likely non-sequitur).
            if !x.content.is_empty() {
                let novel = x.content.iter().filter(|w| !seen.contains(w.as_str())).count() as f64
                    / (x.content.len() as f64 + 1.0);
                let len = (x.toks.len() as f64 / 30.0).min(1.0);
                let prev_user = prev_where(t, i, is_user).map(|p| &tx[p]);
                let disjoint =
                    prev_user.is_some_and(|p| !p.content.is_empty() && jaccard(&p.content, &x.content) == 0.0);
                // Names out of nowhere: capitalised words inside a sentence that nobody has used yet.
                let names = new_names(&t.turns[i].content, &seen);
                let ns = 0.35 * novel
                    + 0.2 * len
                    + if disjoint && x.toks.len() >= 8 { 0.1 } else { 0.0 }
                    + 0.15 * (names as f64).min(2.0) / 2.0;
                or(&mut r, ns);
            }
            // The user's reaction to this reply.
            if let Some(u) = next_where(t, i, |tt| tt.role != Role::Tool && tt.role != Role::System)
                && is_user(&t.turns[u])
            {
                let react = findings
                    .iter()
                    .filter(|f| f.turn == Some(u) && matches!(f.kind, "user_frustration" | "repeated_question"))
                    .map(|f| severity_weight(f.severity) * f.confidence)
                    .fold(0.0f64, f64::max);
                or(&mut r, react * 0.8);
                let s = sent(sentiment, u);
                if s < -0.3 {
                    or(&mut r, (-s - 0.3) * 0.5);
                }
            }
            agent_own[i] = r;
        }
        for w in &tx[i].content {
            seen.insert(w.as_str());
        }
    }
    // An agent that breaks down elsewhere in the conversation is likelier to break down here.
    let agent_idx: Vec<usize> = (0..n).filter(|&i| is_agent(&t.turns[i])).collect();
    let agent_mean = if agent_idx.is_empty() {
        0.0
    } else {
        agent_idx.iter().map(|&i| agent_own[i]).sum::<f64>() / agent_idx.len() as f64
    };

    let mut risk = vec![0.0f64; n];
    for i in 0..n {
        let turn = &t.turns[i];
        let x = &tx[i];
        if is_agent(turn) {
            risk[i] = (0.5 * agent_own[i] + 0.5 * agent_mean).clamp(0.0, 1.0);
        } else if is_user(turn) {
            let mut r = base[i];
            // What happened in the agent turn before.
            if let Some(a) = prev_where(t, i, |tt| tt.role == Role::Assistant || tt.role == Role::User)
                && is_agent(&t.turns[a])
            {
                let agent_findings = findings
                    .iter()
                    .filter(|f| f.turn == Some(a))
                    .map(|f| severity_weight(f.severity) * f.confidence)
                    .fold(0.0f64, f64::max);
                or(&mut r, agent_findings * 0.7);
                or(&mut r, agent_failure_cue(&tx[a]) * 0.6);
            }
            // Weak signs of dissatisfaction in the user's own words.
            if x.negation_start && !x.closing {
                or(&mut r, 0.3);
            }
            if x.hits.restate {
                or(&mut r, 0.12);
            }
            if x.hits.alternative && !x.closing {
                or(&mut r, 0.15);
            }
            if x.hits.frustration {
                or(&mut r, 0.25);
            }
            let s = sent(sentiment, i);
            if s < 0.0 {
                or(&mut r, -s * 0.4);
            }
            // Similarity to an earlier user turn (a softer repeat).
            let lo = i.saturating_sub(WINDOW);
            let sim = (lo..i.saturating_sub(1))
                .filter(|&j| is_user(&t.turns[j]))
                .map(|j| jaccard(&x.content, &tx[j].content))
                .fold(0.0f64, f64::max);
            or(&mut r, sim * 0.2);
            if x.closing && s >= 0.0 {
                r *= 0.6;
            }
            if s > 0.3 {
                r *= 1.0 - 0.4 * (s - 0.3);
            }
            risk[i] = r.clamp(0.0, 1.0);
        } else {
            risk[i] = base[i].clamp(0.0, 1.0);
        }
    }
    risk
}

// ---------------------------------------------------------------------------------------------------------------

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::panic)]

    use super::*;
    use time::OffsetDateTime;

    pub(crate) fn turn(role: Role, content: &str) -> Turn {
        Turn {
            role,
            content: content.to_string(),
            status: "complete".to_string(),
            created_at: OffsetDateTime::UNIX_EPOCH,
            latency_ms: None,
            metadata: Map::new(),
        }
    }

    fn convo(lines: &[(Role, &str)], is_final: bool) -> Transcript {
        Transcript { turns: lines.iter().map(|(r, c)| turn(*r, c)).collect(), is_final }
    }

    fn kinds(t: &Transcript) -> Vec<(&'static str, &'static str)> {
        let s = vec![0.0; t.turns.len()];
        detect(t, &s).iter().map(|f| (f.kind, f.subtype)).collect()
    }

    fn has(t: &Transcript, kind: &str) -> bool {
        kinds(t).iter().any(|(k, _)| *k == kind)
    }

    use Role::{Assistant as A, User as U};

    #[test]
    fn tokenises_and_matches_on_word_boundaries() {
        assert_eq!(tokens("I DONT know, it’s fine!"), vec!["i", "don't", "know", "it's", "fine"]);
        let p = Phrases::new(&["no"]);
        assert!(!p.any(&tokens("I know")));
        assert!(p.any(&tokens("No, thanks")));
    }

    #[test]
    fn correction_positive_and_near_miss() {
        let t = convo(&[(U, "Book a table for two"), (A, "Booked for four."), (U, "No, I said two people!")], true);
        assert!(kinds(&t).contains(&("user_frustration", "correction")));
        let t = convo(&[(U, "Book a table for two"), (A, "Anything else?"), (U, "No, thanks, that's all.")], true);
        assert!(kinds(&t).is_empty(), "{:?}", kinds(&t));
        let t = convo(&[(U, "I know what I said about Noel.")], true);
        assert!(kinds(&t).is_empty());
    }

    #[test]
    fn retry_positive_and_near_miss() {
        let t = convo(
            &[(U, "reset my password for account 42"), (A, "Sure, done."), (U, "reset my password for account 42")],
            true,
        );
        assert!(kinds(&t).contains(&("user_frustration", "retry")));
        let t = convo(
            &[(U, "reset my password for account 42"), (A, "Sure, done."), (U, "now delete account 42 please")],
            true,
        );
        assert!(!kinds(&t).contains(&("user_frustration", "retry")));
    }

    #[test]
    fn frustration_positive_and_near_miss() {
        let t = convo(&[(U, "hi"), (A, "Hello"), (U, "This is useless, what a waste of time")], true);
        let s = vec![0.0, 0.0, -0.7];
        let f = detect(&t, &s);
        assert!(f.iter().any(|f| f.subtype == "frustration" && f.severity == Severity::High));
        // Caps without negative sentiment is just emphasis.
        let t = convo(&[(U, "hi"), (A, "Hello"), (U, "I LOVE THIS SO MUCH")], true);
        assert!(kinds(&t).is_empty());
    }

    #[test]
    fn challenge_positive_and_near_miss() {
        let t = convo(&[(U, "capital of Australia?"), (A, "Sydney."), (U, "Are you sure? That's wrong.")], true);
        assert!(kinds(&t).contains(&("user_frustration", "challenge")));
        let t =
            convo(&[(U, "capital of Australia?"), (A, "Canberra."), (U, "Sure, thanks, I'm writing it down")], true);
        assert!(kinds(&t).is_empty());
    }

    #[test]
    fn repeated_question_positive_and_near_miss() {
        let t = convo(
            &[
                (U, "What are your opening hours on Sunday?"),
                (A, "We have many stores."),
                (U, "ok"),
                (A, "Anything else?"),
                (U, "What are the opening hours on Sunday?"),
            ],
            true,
        );
        assert!(has(&t, "repeated_question"));
        let t = convo(
            &[
                (U, "What are your opening hours on Sunday?"),
                (A, "10 to 4."),
                (U, "What are your opening hours on Monday?"),
            ],
            true,
        );
        assert!(!has(&t, "repeated_question"));
    }

    #[test]
    fn refusal_positive_and_near_miss() {
        let t = convo(&[(U, "delete prod"), (A, "I'm sorry, I can't help with that.")], true);
        assert!(kinds(&t).contains(&("agent_refusal", "refusal")));
        let t = convo(&[(U, "what's the weather"), (A, "I don't have access to live weather data.")], true);
        assert!(kinds(&t).contains(&("agent_refusal", "inability")));
        let t = convo(&[(U, "can you help me"), (A, "Yes, I can help with that.")], true);
        assert!(kinds(&t).is_empty());
    }

    #[test]
    fn loop_positive_and_near_miss() {
        let t = convo(
            &[
                (U, "hi"),
                (A, "Could you tell me your order number please?"),
                (U, "it's on the receipt"),
                (A, "Could you tell me your order number, please?"),
            ],
            true,
        );
        assert!(has(&t, "repetition_loop"));
        let t = convo(
            &[
                (U, "hi"),
                (A, "Could you tell me your order number please?"),
                (U, "1234"),
                (A, "Thanks, order 1234 ships tomorrow by courier."),
            ],
            true,
        );
        assert!(!has(&t, "repetition_loop"));
    }

    #[test]
    fn escalation_resolved_and_open() {
        let open = convo(&[(U, "I want to talk to a human"), (A, "I can answer most questions.")], true);
        let s = vec![0.0; 2];
        let f = detect(&open, &s);
        let e = f.iter().find(|f| f.kind == "escalation_request").unwrap();
        assert_eq!(e.severity, Severity::High);
        let resolved =
            convo(&[(U, "can I speak to a manager?"), (A, "Sure, I'm transferring you now."), (U, "Thanks!")], true);
        let f = detect(&resolved, &[0.0; 3]);
        let e = f.iter().find(|f| f.kind == "escalation_request").unwrap();
        assert_eq!(e.severity, Severity::Low);
        let near = convo(&[(U, "Is the hotel humane to pets? Speak freely."), (A, "Yes.")], true);
        assert!(!has(&near, "escalation_request"));
        for miss in [
            "I used to be in customer service.",
            "Can I eat in person?",
            "Please get me someone else, Dr. Lee is busy",
            "I want one person on the booking",
        ] {
            assert!(!has(&convo(&[(U, miss), (A, "Ok.")], true), "escalation_request"), "{miss}");
        }
        for hit in ["get me a real person", "Can I speak with customer service?", "connect me to a human agent please"]
        {
            assert!(has(&convo(&[(U, hit), (A, "Ok.")], true), "escalation_request"), "{hit}");
        }
    }

    #[test]
    fn tool_error_slow_and_empty() {
        let mut t = convo(&[(U, "look it up"), (Role::Tool, "{\"rows\": 3}"), (A, "")], true);
        t.turns[1].metadata.insert("error".into(), Value::String("timeout".into()));
        t.turns[2].latency_ms = Some(45_000);
        let f = detect(&t, &[0.0; 3]);
        assert!(f.iter().any(|f| f.kind == "tool_error"));
        assert!(f.iter().any(|f| f.kind == "slow_turn" && f.severity == Severity::High));
        assert!(f.iter().any(|f| f.kind == "empty_reply"));
        // Near miss: error false, quick, non-empty.
        let mut t = convo(&[(U, "look it up"), (Role::Tool, "{\"rows\": 3}"), (A, "Found 3 rows.")], true);
        t.turns[1].metadata.insert("error".into(), Value::Bool(false));
        t.turns[2].metadata.insert("latencyMs".into(), Value::from(900));
        assert!(detect(&t, &[0.0; 3]).is_empty());
    }

    #[test]
    fn abandonment_only_when_final() {
        let lines = [(U, "what's my balance"), (A, "I'm unable to access your account.")];
        assert!(has(&convo(&lines, true), "abandonment"));
        assert!(!has(&convo(&lines, false), "abandonment"));
        let ok = [(U, "what's my balance"), (A, "Your balance is 40 euros.")];
        assert!(!has(&convo(&ok, true), "abandonment"));
    }

    #[test]
    fn fingerprints_are_stable_and_evidence_short() {
        let long = "x".repeat(500);
        let t = convo(&[(U, "hi"), (A, &format!("I can't help with that. {long}"))], true);
        let a = detect(&t, &[0.0; 2]);
        let b = detect(&t, &[0.0; 2]);
        assert_eq!(a, b);
        assert!(a.iter().all(|f| f.evidence.chars().count() <= 200));
        assert!(a.iter().any(|f| f.fingerprint == "agent_refusal:agent_refusal:1:refusal"));
    }

    #[test]
    fn risk_is_bounded_and_reacts() {
        let t = convo(&[(U, "book it"), (A, "I'm unable to book that."), (U, "What? That's not what I asked.")], true);
        let s = vec![0.0; 3];
        let f = detect(&t, &s);
        let r = turn_risk(&t, &s, &f);
        assert_eq!(r.len(), 3);
        assert!(r.iter().all(|v| (0.0..=1.0).contains(v)));
        assert!(r[2] > r[0]);
        assert!(turn_risk(&Transcript::default(), &[], &[]).is_empty());
    }
}
