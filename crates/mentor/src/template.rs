//! System prompt templates: text with `{{variable}}` placeholders, parsed once when agents load, rendered
//! per request. It must not reach anything outside the values it is handed (no store, no clock, no model).
//!
//! # Syntax
//! - `{{name}}` inserts a variable; whitespace inside the braces is allowed (`{{ name }}`).
//! - The only variables are [`Template::VARIABLES`]; any other name is a parse error naming it.
//! - A `{{` that is never closed by `}}` is a parse error.
//! - `\{{` writes a literal `{{` (the backslash is dropped). A backslash anywhere else is ordinary text,
//!   and so is a `}}` that closes nothing.
//!
//! # Rendering
//! - `name`: the person's name, or `(not shared yet)` when it is unknown or blank.
//! - `context`: the session's answers, one `- key.path: value` line per leaf, in the JSON's own key order
//!   (nested objects become dotted paths: `- pricing.hourly_rate: 150`). Strings are written as they are (no
//!   quotes, no escaping); numbers and booleans as JSON writes them; arrays of plain values are joined with
//!   `, `; an object inside an array is written inline as `{key: value, key: value}`; an empty array or
//!   object, and `null`, are written as `(none)`. A value spanning several lines has its later lines indented
//!   by two spaces so it stays under its key. With nothing in it (empty object or `null`) the whole block is
//!   `(nothing shared yet)`.
//! - `memories`: one `- memory` line each (later lines of a memory indented by two spaces, blank memories
//!   skipped), or `(no memories yet)`.
//! - `org`: the organisation's display name, as given.
//! - `today`: the date, as given (`YYYY-MM-DD`).

use std::fmt::Write as _;

use serde_json::Value;

/// What `name` renders as when the person has not shared a name.
pub const NAME_FALLBACK: &str = "(not shared yet)";
/// What `context` renders as when nothing has been shared.
pub const CONTEXT_FALLBACK: &str = "(nothing shared yet)";
/// What `memories` renders as when there are none.
pub const MEMORIES_FALLBACK: &str = "(no memories yet)";

/// Why a template did not parse. Lines are 1-based.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum TemplateError {
    #[error("unknown variable `{name}` on line {line} of the template (known variables: {known})", known = Template::VARIABLES.join(", "))]
    UnknownVariable { name: String, line: usize },
    #[error(r"`{{{{` on line {line} of the template is never closed by `}}}}` (write `\{{{{` for a literal `{{{{`)")]
    Unclosed { line: usize },
}

/// The values a template can insert.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct PromptVars {
    /// The person's name, if shared.
    pub name: Option<String>,
    /// The session's context (onboarding answers), a JSON object.
    pub context: Value,
    /// Memories relevant to this turn, most relevant first.
    pub memories: Vec<String>,
    /// The organisation's display name.
    pub org: String,
    /// Today's date, `YYYY-MM-DD`.
    pub today: String,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Var {
    Name,
    Context,
    Memories,
    Org,
    Today,
}

impl Var {
    fn parse(name: &str) -> Option<Self> {
        Some(match name {
            "name" => Self::Name,
            "context" => Self::Context,
            "memories" => Self::Memories,
            "org" => Self::Org,
            "today" => Self::Today,
            _ => return None,
        })
    }

    fn as_str(self) -> &'static str {
        match self {
            Self::Name => "name",
            Self::Context => "context",
            Self::Memories => "memories",
            Self::Org => "org",
            Self::Today => "today",
        }
    }
}

#[derive(Clone, Debug, PartialEq)]
enum Part {
    Text(String),
    Var(Var),
}

/// A parsed system prompt template.
#[derive(Clone, Debug, PartialEq)]
pub struct Template {
    source: String,
    parts: Vec<Part>,
    /// Each variable used, once, in order of first use.
    used: Vec<Var>,
}

impl Template {
    /// Every variable a template may use.
    pub const VARIABLES: &'static [&'static str] = &["name", "context", "memories", "org", "today"];

    pub fn parse(text: &str) -> Result<Template, TemplateError> {
        let mut parts = Vec::new();
        let mut used = Vec::new();
        let mut literal = String::new();
        let mut rest = text;
        while let Some(open) = rest.find("{{") {
            if rest[..open].ends_with('\\') {
                literal.push_str(&rest[..open - 1]);
                literal.push_str("{{");
                rest = &rest[open + 2..];
                continue;
            }
            let line = line_of(text, text.len() - rest.len() + open);
            literal.push_str(&rest[..open]);
            let after = &rest[open + 2..];
            let close = after.find("}}").ok_or(TemplateError::Unclosed { line })?;
            let name = after[..close].trim();
            let var = Var::parse(name).ok_or_else(|| TemplateError::UnknownVariable { name: name.to_owned(), line })?;
            if !literal.is_empty() {
                parts.push(Part::Text(std::mem::take(&mut literal)));
            }
            parts.push(Part::Var(var));
            if !used.contains(&var) {
                used.push(var);
            }
            rest = &after[close + 2..];
        }
        literal.push_str(rest);
        if !literal.is_empty() {
            parts.push(Part::Text(literal));
        }
        Ok(Template { source: text.to_owned(), parts, used })
    }

    /// The variables this template uses, each once, in order of first use.
    pub fn variables(&self) -> impl Iterator<Item = &str> {
        self.used.iter().map(|v| v.as_str())
    }

    pub fn render(&self, vars: &PromptVars) -> String {
        let mut out = String::with_capacity(self.source.len() + 256);
        for part in &self.parts {
            match part {
                Part::Text(text) => out.push_str(text),
                Part::Var(Var::Name) => match vars.name.as_deref().map(str::trim) {
                    Some(name) if !name.is_empty() => out.push_str(name),
                    _ => out.push_str(NAME_FALLBACK),
                },
                Part::Var(Var::Context) => out.push_str(&render_context(&vars.context)),
                Part::Var(Var::Memories) => out.push_str(&render_memories(&vars.memories)),
                Part::Var(Var::Org) => out.push_str(&vars.org),
                Part::Var(Var::Today) => out.push_str(&vars.today),
            }
        }
        out
    }

    /// The text the template was parsed from.
    pub fn source(&self) -> &str {
        &self.source
    }
}

fn line_of(text: &str, byte: usize) -> usize {
    text[..byte].matches('\n').count() + 1
}

/// The context as `- key.path: value` lines (see the module doc), without a trailing newline.
pub(crate) fn render_context(context: &Value) -> String {
    let mut lines = Vec::new();
    match context {
        Value::Object(map) if map.is_empty() => {}
        Value::Null => {}
        Value::Object(map) => {
            for (key, value) in map {
                leaf_lines(key, value, &mut lines);
            }
        }
        other => lines.push(format!("- {}", indent_continuation(&inline(other)))),
    }
    if lines.is_empty() { CONTEXT_FALLBACK.to_owned() } else { lines.join("\n") }
}

fn leaf_lines(path: &str, value: &Value, lines: &mut Vec<String>) {
    match value {
        Value::Object(map) if !map.is_empty() => {
            for (key, inner) in map {
                leaf_lines(&format!("{path}.{key}"), inner, lines);
            }
        }
        other => lines.push(format!("- {path}: {}", indent_continuation(&inline(other)))),
    }
}

/// One value written on one logical line: strings as they are, arrays joined with ", ".
fn inline(value: &Value) -> String {
    match value {
        Value::Null => "(none)".to_owned(),
        Value::String(s) => s.clone(),
        Value::Bool(_) | Value::Number(_) => value.to_string(),
        Value::Array(items) if items.is_empty() => "(none)".to_owned(),
        Value::Array(items) => items.iter().map(inline).collect::<Vec<_>>().join(", "),
        Value::Object(map) if map.is_empty() => "(none)".to_owned(),
        Value::Object(map) => {
            let mut out = String::from("{");
            for (i, (key, inner)) in map.iter().enumerate() {
                if i > 0 {
                    out.push_str(", ");
                }
                let _ = write!(out, "{key}: {}", inline(inner));
            }
            out.push('}');
            out
        }
    }
}

fn indent_continuation(text: &str) -> String {
    text.replace('\n', "\n  ")
}

/// The memories as `- memory` lines, without a trailing newline.
pub(crate) fn render_memories(memories: &[String]) -> String {
    let lines: Vec<String> = memories
        .iter()
        .map(|m| m.trim())
        .filter(|m| !m.is_empty())
        .map(|m| format!("- {}", indent_continuation(m)))
        .collect();
    if lines.is_empty() { MEMORIES_FALLBACK.to_owned() } else { lines.join("\n") }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn vars() -> PromptVars {
        PromptVars {
            name: Some("Ana".into()),
            context: json!({"goals": "grow bookings"}),
            memories: vec!["Charges 120/h".into()],
            org: "Rafael Tatts".into(),
            today: "2026-03-01".into(),
        }
    }

    #[test]
    fn placeholders_allow_inner_whitespace_and_list_variables_once_in_order() {
        let t = Template::parse("Hi {{ name }} from {{org}}. {{name}} again, {{\ttoday }}").unwrap();
        assert_eq!(t.variables().collect::<Vec<_>>(), ["name", "org", "today"]);
        assert_eq!(t.render(&vars()), "Hi Ana from Rafael Tatts. Ana again, 2026-03-01");
    }

    #[test]
    fn unknown_variable_is_named_with_its_line_and_the_known_ones() {
        let err = Template::parse("line one\n{{ nmae }}").unwrap_err();
        assert_eq!(err, TemplateError::UnknownVariable { name: "nmae".into(), line: 2 });
        let text = err.to_string();
        assert!(text.contains("`nmae`") && text.contains("line 2"), "{text}");
        assert!(text.contains("name, context, memories, org, today"), "{text}");
        assert!(matches!(Template::parse("{{}}"), Err(TemplateError::UnknownVariable { .. })));
    }

    #[test]
    fn unclosed_placeholder_is_an_error() {
        assert_eq!(Template::parse("a\nb {{name").unwrap_err(), TemplateError::Unclosed { line: 2 });
        assert!(Template::parse("{{name}} {{").is_err());
        let text = TemplateError::Unclosed { line: 1 }.to_string();
        assert!(text.contains(r"\{{"), "{text}");
    }

    #[test]
    fn escaped_braces_are_literal_and_stray_closers_are_text() {
        let t = Template::parse(r"use \{{name}} to write {{name}}; a \ alone; }} alone").unwrap();
        assert_eq!(t.variables().collect::<Vec<_>>(), ["name"]);
        assert_eq!(t.render(&vars()), "use {{name}} to write Ana; a \\ alone; }} alone");
        assert_eq!(Template::parse(r"\{{ never closed").unwrap().render(&vars()), "{{ never closed");
    }

    #[test]
    fn source_is_kept_verbatim() {
        let text = "Hello {{ name }}\n";
        assert_eq!(Template::parse(text).unwrap().source(), text);
        assert_eq!(Template::parse("").unwrap().render(&vars()), "");
    }

    #[test]
    fn name_falls_back_when_unknown_or_blank() {
        let t = Template::parse("{{name}}").unwrap();
        for name in [None, Some("  ".to_owned())] {
            assert_eq!(t.render(&PromptVars { name, ..vars() }), NAME_FALLBACK);
        }
        assert_eq!(t.render(&PromptVars { name: Some(" Ana ".into()), ..vars() }), "Ana");
    }

    #[test]
    fn context_renders_one_line_per_key_path_in_order() {
        let ctx = json!({
            "goals": "grow bookings",
            "pricing": {"hourly_rate": 150, "deposit": {"required": true, "amount": 50.5}},
            "styles": ["fine line", "blackwork", 3],
            "empty_list": [],
            "empty_obj": {},
            "nothing": null,
            "shops": [{"name": "Ink \"Co\"", "city": "Lisbon"}],
            "about": "two\nlines",
        });
        assert_eq!(
            render_context(&ctx),
            "- goals: grow bookings\n\
             - pricing.hourly_rate: 150\n\
             - pricing.deposit.required: true\n\
             - pricing.deposit.amount: 50.5\n\
             - styles: fine line, blackwork, 3\n\
             - empty_list: (none)\n\
             - empty_obj: (none)\n\
             - nothing: (none)\n\
             - shops: {name: Ink \"Co\", city: Lisbon}\n\
             - about: two\n  lines"
        );
    }

    #[test]
    fn empty_context_and_memories_have_fallbacks() {
        assert_eq!(render_context(&json!({})), CONTEXT_FALLBACK);
        assert_eq!(render_context(&Value::Null), CONTEXT_FALLBACK);
        assert_eq!(render_memories(&[]), MEMORIES_FALLBACK);
        assert_eq!(render_memories(&[" ".into()]), MEMORIES_FALLBACK);
    }

    #[test]
    fn memories_render_as_bullets() {
        let m = vec!["Wants to go private".to_owned(), "".to_owned(), "Books via DMs\nno deposit".to_owned()];
        assert_eq!(render_memories(&m), "- Wants to go private\n- Books via DMs\n  no deposit");
    }
}
