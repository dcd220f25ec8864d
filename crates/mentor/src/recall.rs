//! What a session remembers: onboarding answers turned into natural-language memories, and finished chat turns.
//!
//! Answers are flattened to dotted paths (`{"business":{"rate":200}}` → `business.rate`), each rendered as one
//! sentence through the organisation's `[memory.templates]` (exact path first, then the last segment), or a
//! generic sentence. Each answer's memory has the key `context:<path>`, so a changed answer replaces its old
//! memory and a removed answer forgets it.

use std::collections::BTreeMap;

use mentorfy_core::org::Org;
use serde_json::Value;

/// Longest rendered answer kept in a memory, in characters; longer answers are cut at a word boundary.
const MAX_VALUE_CHARS: usize = 1_000;

/// The key of the memory holding one answer.
pub fn context_key(path: &str) -> String {
    format!("context:{path}")
}

/// Answer paths whose rendered value differs between `before` and `after` (added, changed or removed).
pub fn changed_paths(before: &Value, after: &Value) -> Vec<String> {
    let (b, a) = (flatten(before), flatten(after));
    let mut paths: Vec<String> = a.iter().filter(|(k, v)| b.get(*k) != Some(*v)).map(|(k, _)| k.clone()).collect();
    paths.extend(b.keys().filter(|k| !a.contains_key(*k)).cloned());
    paths.sort();
    paths
}

/// The memory sentence for the answer at `path` in `context`, or `None` when there is no answer there (any more).
pub fn answer_memory(org: Option<&Org>, context: &Value, path: &str) -> Option<String> {
    let value = flatten(context).remove(path)?;
    Some(sentence(org, path, &value))
}

/// The memory of one finished chat turn.
pub fn turn_memory(user: &str, assistant: &str, assistant_name: &str) -> String {
    let user = cut(user.trim(), MAX_VALUE_CHARS);
    let assistant = cut(assistant.trim(), MAX_VALUE_CHARS);
    if assistant.is_empty() {
        format!("User said: {user}")
    } else {
        format!("User said: {user}\n{assistant_name} answered: {assistant}")
    }
}

fn sentence(org: Option<&Org>, path: &str, value: &str) -> String {
    let templates = org.map(|o| &o.memory.templates);
    let last = path.rsplit('.').next().unwrap_or(path);
    let template = templates.and_then(|t| t.get(path).or_else(|| t.get(last)));
    match template {
        Some(t) => t.replace("{value}", value),
        None => format!("User's {} is {}.", humanize(path), value.trim_end_matches('.')),
    }
}

/// `business.day_rate` → `business day rate`; `howDidYouHear` → `how did you hear`.
fn humanize(path: &str) -> String {
    let mut out = String::with_capacity(path.len() + 4);
    let mut prev_lower = false;
    for c in path.chars() {
        if c == '.' || c == '_' || c == '-' {
            if !out.ends_with(' ') {
                out.push(' ');
            }
            prev_lower = false;
        } else if c.is_uppercase() && prev_lower {
            out.push(' ');
            out.extend(c.to_lowercase());
            prev_lower = false;
        } else {
            out.extend(c.to_lowercase());
            prev_lower = c.is_lowercase() || c.is_ascii_digit();
        }
    }
    out.trim().to_owned()
}

/// Answers as dotted paths → rendered values. Empty strings, nulls and empty lists are no answer.
pub fn flatten(context: &Value) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    if let Value::Object(map) = context {
        for (k, v) in map {
            walk(k.clone(), v, &mut out);
        }
    }
    out
}

fn walk(path: String, value: &Value, out: &mut BTreeMap<String, String>) {
    match value {
        Value::Object(map) if !map.is_empty() => {
            for (k, v) in map {
                walk(format!("{path}.{k}"), v, out);
            }
        }
        other => {
            if let Some(text) = render(other) {
                out.insert(path, text);
            }
        }
    }
}

fn render(value: &Value) -> Option<String> {
    let text = match value {
        Value::Null => return None,
        Value::Bool(true) => "yes".to_owned(),
        Value::Bool(false) => "no".to_owned(),
        Value::Number(n) => n.to_string(),
        Value::String(s) => s.trim().to_owned(),
        Value::Array(items) => {
            let parts: Vec<String> = items
                .iter()
                .filter_map(|v| match v {
                    Value::Object(_) | Value::Array(_) => Some(v.to_string()),
                    scalar => render(scalar),
                })
                .collect();
            join_list(&parts)
        }
        Value::Object(_) => return None,
    };
    if text.is_empty() { None } else { Some(cut(&text, MAX_VALUE_CHARS)) }
}

fn join_list(parts: &[String]) -> String {
    match parts {
        [] => String::new(),
        [one] => one.clone(),
        [init @ .., last] => format!("{} and {last}", init.join(", ")),
    }
}

fn cut(text: &str, max: usize) -> String {
    if text.chars().count() <= max {
        return text.to_owned();
    }
    let head: String = text.chars().take(max).collect();
    let at = head.rfind(char::is_whitespace).unwrap_or(head.len());
    format!("{}…", head[..at].trim_end())
}

#[cfg(test)]
mod tests {
    use super::*;
    use mentorfy_core::org::OrgRegistry;
    use serde_json::json;

    fn rafael() -> Org {
        OrgRegistry::load(None).ok().and_then(|r| r.get("rafael-tatts").cloned()).expect("rafael-tatts ships")
    }

    #[test]
    fn known_keys_use_the_org_template_and_others_a_generic_sentence() {
        let org = rafael();
        let ctx = json!({"day_rate": "$200-400", "favouriteColour": "blue", "business": {"styles": ["fine line", "blackwork", "script"]}});
        assert_eq!(
            answer_memory(Some(&org), &ctx, "day_rate").as_deref(),
            Some("User is a tattoo artist charging $200-400 per day.")
        );
        assert_eq!(
            answer_memory(Some(&org), &ctx, "favouriteColour").as_deref(),
            Some("User's favourite colour is blue.")
        );
        assert_eq!(
            answer_memory(Some(&org), &ctx, "business.styles").as_deref(),
            Some("User tattoos in these styles: fine line, blackwork and script.")
        );
        assert_eq!(answer_memory(None, &ctx, "day_rate").as_deref(), Some("User's day rate is $200-400."));
        assert_eq!(answer_memory(Some(&org), &ctx, "missing"), None);
    }

    #[test]
    fn changed_paths_sees_additions_changes_and_removals_only() {
        let before = json!({"a": 1, "b": {"c": "x", "d": true}, "e": [1, 2], "gone": "y"});
        let after = json!({"a": 1, "b": {"c": "z", "d": true}, "e": [1, 2], "new": false, "gone": null});
        assert_eq!(changed_paths(&before, &after), vec!["b.c", "gone", "new"]);
        assert!(changed_paths(&after, &after).is_empty());
        assert_eq!(flatten(&json!({"s": "  ", "l": [], "n": null})).len(), 0);
    }

    #[test]
    fn long_values_are_cut_and_turns_read_naturally() {
        let long = "word ".repeat(400);
        let m = answer_memory(None, &json!({ "story": long }), "story").unwrap_or_default();
        assert!(m.chars().count() < 1_100 && m.contains('…'), "{m}");
        assert_eq!(
            turn_memory(" How much? ", "About $300.", "Rafael"),
            "User said: How much?\nRafael answered: About $300."
        );
        assert_eq!(humanize("howDidYouHear"), "how did you hear");
        assert_eq!(humanize("business.day_rate"), "business day rate");
    }
}
