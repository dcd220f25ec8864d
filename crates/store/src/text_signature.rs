//! A conversation's text signature: a 1,024-bit Bloom-style set of the trigrams of its messages' lower-cased text,
//! kept in sixteen `BIGINT` columns of `conversations` (`text_sig_0` … `text_sig_15`, migration
//! 20261129000015). The conversation list's text search (`q`, `conversation_list.rs`) tests a few of these bits per
//! conversation before it reads any message: a conversation that lacks a bit of the search's trigrams cannot
//! contain the text, so only the rest are re-tested with the `LIKE`. A common word fills a page after reading about
//! one conversation row per twentieth match instead of every message of every conversation it walks.
//!
//! The signature may claim too much (a hash collision, a message since deleted), never too little: every trigram
//! an ASCII search text can find in `lower(content)` on either backend sets its bit.
//! - ASCII letters are folded to lower case as both backends' `lower()` does.
//! - A non-ASCII character never matches an ASCII search character under SQLite's `lower()` (ASCII only) or
//!   PostgreSQL's, except the two whose lower case is ASCII (U+212A KELVIN SIGN → `k`, U+0130 → `i`): a message
//!   with either saturates the signature (every bit set). Other non-ASCII characters end a run of trigrams.
//! - A search text with a non-ASCII character, or shorter than a trigram, gets no mask ([`query_mask`]) and
//!   does not use the signature.
//!
//! Bits are only ever added (`|`), by the transaction that inserts the messages (`ingest.rs`,
//! `conversations.rs`), so a reader never sees a message whose bits are missing.

use sea_query::Alias;

/// The signature's width in 64-bit words (columns).
pub(crate) const WORDS: usize = 16;
const BITS: u64 = (WORDS as u64) * 64;

/// The column holding word `i`.
pub(crate) fn column(i: usize) -> sea_query::Alias {
    sea_query::Alias::new(format!("text_sig_{i}"))
}

/// A set of trigram bits, one `i64` per column (bit 63 is the sign bit: the columns are signed on both backends).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(crate) struct Signature(pub [i64; WORDS]);

impl Signature {
    /// Every bit: what a conversation whose text is not known yet must claim.
    pub(crate) const FULL: Signature = Signature([-1; WORDS]);

    /// The signature of one message's content.
    pub(crate) fn of(content: &str) -> Signature {
        let mut sig = Signature::default();
        sig.add(content);
        sig
    }

    /// Adds the trigrams of `content`.
    pub(crate) fn add(&mut self, content: &str) {
        let mut run = [0u8; 3];
        let mut len = 0usize;
        for ch in content.chars() {
            if ch.is_ascii() {
                run = [run[1], run[2], ch.to_ascii_lowercase() as u8];
                len += 1;
                if len >= 3 {
                    self.set(bit(run));
                }
            } else if ch.to_lowercase().any(|c| c.is_ascii()) {
                *self = Signature::FULL;
                return;
            } else {
                len = 0;
            }
        }
    }

    fn set(&mut self, bit: u64) {
        self.0[(bit / 64) as usize] |= 1i64 << (bit % 64);
    }

    /// Whether every bit of `mask` is set here (what the SQL test checks, for tests).
    #[cfg(test)]
    fn covers(&self, mask: &[(usize, i64)]) -> bool {
        mask.iter().all(|&(w, m)| self.0[w] & m == m)
    }
}

/// The bit of a trigram: FNV-1a over its three bytes, modulo the width. Stored data depends on it: changing it
/// needs a migration that marks every signature for a rebuild.
fn bit(trigram: [u8; 3]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in trigram {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    h % BITS
}

/// The bits a conversation must have to contain `lowered` (already lower-cased), as `(word, mask)` pairs with a
/// non-zero mask, or `None` when the signature cannot help: fewer than 3 characters, or a non-ASCII character.
pub(crate) fn query_mask(lowered: &str) -> Option<Vec<(usize, i64)>> {
    if !lowered.is_ascii() || lowered.len() < 3 {
        return None;
    }
    let sig = Signature::of(lowered);
    Some(sig.0.iter().enumerate().filter(|(_, m)| **m != 0).map(|(w, m)| (w, *m)).collect())
}

/// `UPDATE conversations SET text_sig_i = text_sig_i | v.i … FROM (VALUES (id, w0 … w15), …) AS v WHERE id = v.id`:
/// ORs each conversation's new bits in, in one statement. `sigs` must not be empty.
pub(crate) fn or_update(sigs: &[(uuid::Uuid, Signature)]) -> sea_query::UpdateStatement {
    use crate::conversations::Conversations;
    use sea_query::{Expr, ExprTrait, Query, TableRef, Value, ValueTuple};
    let rows = sigs
        .iter()
        .map(|(id, sig)| {
            let mut values: Vec<Value> = vec![(*id).into()];
            values.extend(sig.0.iter().map(|w| Value::from(*w)));
            ValueTuple::Many(values)
        })
        .collect();
    let v = Alias::new("v");
    let mut update = Query::update();
    update.table(Conversations::Table);
    for i in 0..WORDS {
        // VALUES columns are named column1, column2, … on both backends; column1 is the id.
        update.value(
            column(i),
            Expr::col((Conversations::Table, column(i)))
                .bit_or(Expr::col((v.clone(), Alias::new(format!("column{}", i + 2))))),
        );
    }
    update
        .from(TableRef::ValuesList(rows, sea_query::IntoIden::into_iden(v.clone())))
        .and_where(Expr::col((Conversations::Table, Conversations::Id)).equals((v, Alias::new("column1"))))
        .to_owned()
}

impl crate::Store {
    /// Computes the text signature of up to `limit` conversations stored before signatures existed
    /// (`text_sig_ready` false), from their messages, and marks them ready; returns how many. The rows are
    /// locked first (PostgreSQL, skipping rows another server is rebuilding; SQLite's `BEGIN IMMEDIATE` excludes
    /// every writer), so a message inserted meanwhile either is read here or ORs its own bits in after.
    pub async fn rebuild_text_signatures(&self, limit: u64) -> Result<u64, crate::StoreError> {
        use std::collections::HashMap;

        use sea_query::{Expr, ExprTrait, LockBehavior, LockType, Query};
        use uuid::Uuid;

        use crate::conversations::{Conversations, Messages};

        let ready = Alias::new("text_sig_ready");
        let mut tx = self.begin_for_update().await?;
        let pending = Query::select()
            .column(Conversations::Id)
            .from(Conversations::Table)
            .and_where(Expr::col(ready.clone()).eq(false))
            .order_by(Conversations::Id, sea_query::Order::Asc)
            .limit(limit)
            .lock_with_behavior(LockType::Update, LockBehavior::SkipLocked)
            .to_owned();
        let ids: Vec<Uuid> = tx.fetch_all::<(Uuid,)>(&pending).await?.into_iter().map(|(id,)| id).collect();
        if ids.is_empty() {
            tx.commit().await?;
            return Ok(0);
        }
        let mut sigs: HashMap<Uuid, Signature> = ids.iter().map(|id| (*id, Signature::default())).collect();
        let messages = Query::select()
            .columns([Messages::ConversationId, Messages::Content])
            .from(Messages::Table)
            .and_where(Expr::col(Messages::ConversationId).is_in(ids.iter().copied()))
            .to_owned();
        for (conversation_id, content) in tx.fetch_all::<(Uuid, String)>(&messages).await? {
            sigs.entry(conversation_id).or_default().add(&content);
        }
        let mut sigs: Vec<(Uuid, Signature)> = sigs.into_iter().collect();
        sigs.sort_by_key(|s| s.0);
        for chunk in sigs.chunks(crate::ingest::rows_per_statement(self.kind())) {
            tx.execute(&or_update(chunk)).await?;
        }
        let mark = Query::update()
            .table(Conversations::Table)
            .value(ready, true)
            .and_where(Expr::col(Conversations::Id).is_in(ids.iter().copied()))
            .to_owned();
        tx.execute(&mark).await?;
        tx.commit().await?;
        Ok(ids.len() as u64)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn contains(haystack: &str, needle: &str) -> bool {
        let mask = query_mask(&needle.to_lowercase()).expect("an ASCII needle of 3+ characters");
        Signature::of(haystack).covers(&mask)
    }

    #[test]
    fn every_substring_of_a_text_is_covered_by_its_signature() {
        let text = "I asked for a REFUND twice, and the agent said: 50% off_next (time)!";
        let lowered = text.to_lowercase();
        for start in 0..lowered.len() {
            for end in start + 3..=lowered.len() {
                assert!(contains(text, &lowered[start..end]), "{:?}", &lowered[start..end]);
            }
        }
    }

    #[test]
    fn a_text_missing_a_trigram_is_ruled_out_mostly() {
        // Not a guarantee (collisions), but a signature that claimed everything would be useless: of 200 words
        // absent from a short text, almost all must be ruled out.
        let sig = Signature::of("how do I reset my password on the mobile app?");
        let ruled_out =
            (0..200).filter(|i| !sig.covers(&query_mask(&format!("zq{i}x-invoice")).expect("mask"))).count();
        assert!(ruled_out >= 190, "only {ruled_out} of 200 ruled out");
    }

    #[test]
    fn non_ascii_breaks_runs_and_the_two_ascii_lowering_characters_saturate() {
        // "café au lait": "caf" and " au" are there; "fé " is not an ASCII trigram and nothing spans the é.
        assert!(contains("café au lait", "caf"));
        assert!(contains("café au lait", " au lait"));
        assert!(!contains("café au lait", "cafe"));
        // KELVIN SIGN lowers to ASCII 'k' on PostgreSQL: the message claims every trigram.
        assert_eq!(Signature::of("300 \u{212A}"), Signature::FULL);
        assert_eq!(Signature::of("\u{130}stanbul"), Signature::FULL);
        assert!(contains("300 \u{212A}", "0 k"));
    }

    #[test]
    fn masks_exist_only_for_ascii_texts_of_three_or_more_characters() {
        assert!(query_mask("re").is_none());
        assert!(query_mask("café").is_none());
        let mask = query_mask("refund").expect("mask");
        assert!(!mask.is_empty() && mask.len() <= 4, "{mask:?}");
        assert!(mask.iter().all(|&(w, m)| w < WORDS && m != 0));
    }

    #[test]
    fn adding_messages_keeps_what_each_had() {
        let mut sig = Signature::of("refund please");
        sig.add("cancel my order");
        assert!(sig.covers(&query_mask("refund").expect("mask")));
        assert!(sig.covers(&query_mask("cancel").expect("mask")));
        assert!(!sig.covers(&query_mask("refund please cancel").expect("mask")) || sig == Signature::FULL);
    }
}
