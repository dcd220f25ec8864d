//! Model prices and the cost of a call: a [`PriceTable`] built from the embedded `prices.toml` (dated, to be
//! verified), optionally overlaid by an operator's file of the same shape. An unknown model has no cost (`None`),
//! never a guessed or zero one.

use std::collections::{BTreeMap, HashMap};
use std::path::Path;

use serde::Deserialize;

use crate::types::{ProviderKind, Usage};

/// The default table, embedded at build time.
const BUILTIN: &str = include_str!("../prices.toml");

/// Prices of one model in USD per million tokens.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct ModelPrice {
    /// Uncached input.
    pub input: f64,
    /// Cache write with the 5-minute TTL (Anthropic: 1.25 × input).
    pub cache_write_5m: f64,
    /// Cache write with the 1-hour TTL (Anthropic: 2 × input).
    pub cache_write_1h: f64,
    /// Cache read (Anthropic: 0.1 × input; OpenAI: the cached-input price).
    pub cache_read: f64,
    pub output: f64,
}

/// The file shape: `[models."<id>"]` entries.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct PriceFile {
    #[serde(default)]
    models: BTreeMap<String, PriceEntry>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct PriceEntry {
    #[serde(default)]
    provider: Option<ProviderKind>,
    #[serde(default)]
    aliases: Vec<String>,
    input: f64,
    output: f64,
    cache_read: Option<f64>,
    cache_write_5m: Option<f64>,
    cache_write_1h: Option<f64>,
}

/// Model id → price, with aliases.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct PriceTable {
    models: HashMap<String, ModelPrice>,
    aliases: HashMap<String, String>,
}

impl PriceTable {
    /// The embedded default table (see `crates/llm/prices.toml` for its date and sources).
    pub fn builtin() -> PriceTable {
        match PriceTable::default().with_overlay(BUILTIN, "the built-in prices.toml") {
            Ok(table) => table,
            Err(e) => {
                // Unreachable while the unit tests pass; an empty table means "cost unknown", never a wrong cost.
                tracing::error!(error = %e, "the built-in price table does not parse");
                PriceTable::default()
            }
        }
    }

    /// The built-in table overlaid by the TOML file at `path`, if any: an entry in the file replaces the built-in
    /// entry of the same id. The error names the file and the offending model or field.
    pub fn load(path: Option<&Path>) -> Result<PriceTable, String> {
        let table = PriceTable::builtin();
        let Some(path) = path else {
            return Ok(table);
        };
        let text =
            std::fs::read_to_string(path).map_err(|e| format!("cannot read the price file {}: {e}", path.display()))?;
        table.with_overlay(&text, &path.display().to_string())
    }

    /// This table overlaid by a TOML text of the `prices.toml` shape; `origin` names it in errors.
    pub fn with_overlay(mut self, toml_text: &str, origin: &str) -> Result<PriceTable, String> {
        let file: PriceFile = toml::from_str(toml_text).map_err(|e| format!("{origin}: {e}"))?;
        for (id, entry) in file.models {
            let check = |field: &str, value: f64| {
                if value.is_finite() && value >= 0.0 {
                    Ok(value)
                } else {
                    Err(format!(
                        "{origin}: model {id:?}: {field} must be a non-negative number of USD per million tokens"
                    ))
                }
            };
            let input = check("input", entry.input)?;
            let price = ModelPrice {
                input,
                output: check("output", entry.output)?,
                cache_read: check("cache_read", entry.cache_read.unwrap_or(input * 0.1))?,
                cache_write_5m: check("cache_write_5m", entry.cache_write_5m.unwrap_or(input * 1.25))?,
                cache_write_1h: check("cache_write_1h", entry.cache_write_1h.unwrap_or(input * 2.0))?,
            };
            let _ = entry.provider; // informational only
            for alias in entry.aliases {
                if alias.trim().is_empty() {
                    return Err(format!("{origin}: model {id:?}: aliases must not be empty strings"));
                }
                self.aliases.insert(alias, id.clone());
            }
            self.models.insert(id, price);
        }
        Ok(self)
    }

    /// The price of a model by exact id, or by an alias listed in the table.
    pub fn get(&self, model: &str) -> Option<&ModelPrice> {
        self.models.get(model).or_else(|| self.models.get(self.aliases.get(model)?))
    }

    /// How many models (not counting aliases) the table prices.
    pub fn len(&self) -> usize {
        self.models.len()
    }

    pub fn is_empty(&self) -> bool {
        self.models.is_empty()
    }

    /// Every priced model id (aliases excluded), sorted.
    pub fn models(&self) -> Vec<&str> {
        let mut ids: Vec<&str> = self.models.keys().map(String::as_str).collect();
        ids.sort_unstable();
        ids
    }

    /// The cost in USD of a call, with usage in the crate's convention (input includes cached tokens). `None` for a
    /// model the table does not know, or when input or output tokens are unknown.
    ///
    /// Anthropic: uncached input = input − cache reads − cache writes; 1-hour writes at `cache_write_1h`, the other
    /// writes at `cache_write_5m`, reads at `cache_read`. OpenAI: uncached = input − cached, cached at `cache_read`.
    pub fn cost(&self, provider: ProviderKind, model: &str, usage: &Usage) -> Option<f64> {
        let price = self.get(model)?;
        let input = usage.input_tokens?;
        let output = usage.output_tokens?;
        let read = usage.cache_read_tokens.unwrap_or(0).min(input);
        // Token counts are far below 2^53, so the conversions are exact.
        #[allow(clippy::cast_precision_loss)]
        let f = |tokens: u64| tokens as f64;
        let micro_usd = match provider {
            ProviderKind::Anthropic => {
                let write = usage.cache_write_tokens.unwrap_or(0).min(input - read);
                let write_1h = usage.cache_write_1h_tokens.unwrap_or(0).min(write);
                let uncached = input - read - write;
                f(uncached) * price.input
                    + f(write - write_1h) * price.cache_write_5m
                    + f(write_1h) * price.cache_write_1h
                    + f(read) * price.cache_read
                    + f(output) * price.output
            }
            ProviderKind::OpenAi => {
                f(input - read) * price.input + f(read) * price.cache_read + f(output) * price.output
            }
        };
        Some(micro_usd / 1_000_000.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn close(a: f64, b: f64) -> bool {
        (a - b).abs() < 1e-12
    }

    #[test]
    fn builtin_table_parses_and_knows_the_spec_models_and_aliases() {
        let table = PriceTable::builtin();
        assert!(table.len() >= 19, "{}", table.len());
        let sonnet = table.get("claude-sonnet-4-5").unwrap();
        assert_eq!(sonnet, table.get("claude-sonnet-4-5-20250929").unwrap());
        assert_eq!(
            (sonnet.input, sonnet.cache_write_5m, sonnet.cache_write_1h, sonnet.cache_read, sonnet.output),
            (3.0, 3.75, 6.0, 0.30, 15.0)
        );
        // Haiku 4.5 is $1 / $5, not Haiku 3.5's $0.80 / $4.
        let haiku = table.get("claude-haiku-4-5").unwrap();
        assert_eq!((haiku.input, haiku.output), (1.0, 5.0));
        assert_eq!(table.get("gpt-4o-mini-2024-07-18").unwrap().cache_read, 0.075);
        for unconfirmed in ["claude-sonnet-5", "claude-sonnet-5-5", "claude-haiku-5-5"] {
            assert!(table.get(unconfirmed).is_none(), "{unconfirmed}");
        }
    }

    #[test]
    fn anthropic_cost_splits_uncached_writes_and_reads() {
        let table = PriceTable::builtin();
        // Wire: input_tokens 1000 uncached, 2000 written (500 of them 1h), 10_000 read; 500 output.
        let usage = Usage {
            input_tokens: Some(1000 + 2000 + 10_000),
            output_tokens: Some(500),
            cache_read_tokens: Some(10_000),
            cache_write_tokens: Some(2000),
            cache_write_1h_tokens: Some(500),
            reasoning_tokens: None,
        };
        let cost = table.cost(ProviderKind::Anthropic, "claude-sonnet-4-5", &usage).unwrap();
        let expected = (1000.0 * 3.0 + 1500.0 * 3.75 + 500.0 * 6.0 + 10_000.0 * 0.30 + 500.0 * 15.0) / 1e6;
        assert!(close(cost, expected), "{cost} vs {expected}");
    }

    #[test]
    fn openai_cost_bills_cached_tokens_at_the_cached_price() {
        let table = PriceTable::builtin();
        let usage = Usage {
            input_tokens: Some(1000),
            output_tokens: Some(100),
            cache_read_tokens: Some(400),
            ..Usage::default()
        };
        let cost = table.cost(ProviderKind::OpenAi, "gpt-4o", &usage).unwrap();
        assert!(close(cost, (600.0 * 2.5 + 400.0 * 1.25 + 100.0 * 10.0) / 1e6), "{cost}");
    }

    #[test]
    fn unknown_models_or_unknown_tokens_have_no_cost() {
        let table = PriceTable::builtin();
        let usage = Usage { input_tokens: Some(10), output_tokens: Some(10), ..Usage::default() };
        assert_eq!(table.cost(ProviderKind::OpenAi, "my-local-llama", &usage), None);
        let no_output = Usage { input_tokens: Some(10), ..Usage::default() };
        assert_eq!(table.cost(ProviderKind::Anthropic, "claude-haiku-4-5", &no_output), None);
    }

    #[test]
    fn an_overlay_replaces_entries_derives_cache_prices_and_adds_aliases() {
        let overlay = r#"
            [models."claude-haiku-4-5-20251001"]
            input = 2.0
            output = 10.0
            [models."llama3.1:8b"]
            provider = "openai"
            aliases = ["llama"]
            input = 0.0
            output = 0.0
        "#;
        let table = PriceTable::builtin().with_overlay(overlay, "test.toml").unwrap();
        let haiku = table.get("claude-haiku-4-5").unwrap();
        assert_eq!((haiku.input, haiku.cache_write_5m, haiku.cache_write_1h, haiku.cache_read), (2.0, 2.5, 4.0, 0.2));
        assert_eq!(table.get("llama").unwrap().output, 0.0);
    }

    #[test]
    fn overlay_errors_name_the_file_and_the_model_or_field() {
        let negative = "[models.\"m\"]\ninput = -1.0\noutput = 1.0\n";
        let err = PriceTable::builtin().with_overlay(negative, "prices.local.toml").unwrap_err();
        assert!(err.contains("prices.local.toml") && err.contains("\"m\"") && err.contains("input"), "{err}");
        let typo = "[models.\"m\"]\ninptu = 1.0\noutput = 1.0\n";
        let err = PriceTable::builtin().with_overlay(typo, "prices.local.toml").unwrap_err();
        assert!(err.contains("prices.local.toml") && err.contains("inptu"), "{err}");
        let err = PriceTable::load(Some(Path::new("/nonexistent/prices.toml"))).unwrap_err();
        assert!(err.contains("/nonexistent/prices.toml"), "{err}");
    }
}
