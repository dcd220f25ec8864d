//! Tools an agent may call: Rust functions registered by name with a JSON schema. A tool checks its own
//! input (there is no JSON-schema engine) and answers `Err(text)` for anything the model should correct;
//! that text goes back to the model as an error result, so it must be written for the model to act on.
//! Tools must not panic, block the runtime, or see more than their [`ToolContext`].

use std::collections::BTreeMap;
use std::fmt;
use std::future::Future;
use std::sync::Arc;

use futures::FutureExt;
use mentorfy_core::{OrgId, SessionId};
use mentorfy_llm::ToolSpec;
use serde_json::{Map, Value, json};

/// What a tool call knows about the conversation it serves.
#[derive(Clone, Debug)]
pub struct ToolContext {
    pub session_id: SessionId,
    pub org_id: OrgId,
    /// The session's context (onboarding answers), a JSON object.
    pub context: Value,
}

/// A running tool call. `Err(text)` goes back to the model as an error result.
pub type ToolFuture = futures::future::BoxFuture<'static, Result<Value, String>>;

type RunFn = dyn Fn(Value, ToolContext) -> ToolFuture + Send + Sync;

/// One tool: its name, description and input schema as the model sees them, and the function behind it.
#[derive(Clone)]
pub struct Tool {
    pub name: String,
    pub description: String,
    /// A JSON Schema object describing the input.
    pub input_schema: Value,
    run: Arc<RunFn>,
}

impl Tool {
    pub fn new<F, Fut>(name: impl Into<String>, description: impl Into<String>, input_schema: Value, f: F) -> Tool
    where
        F: Fn(Value, ToolContext) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<Value, String>> + Send + 'static,
    {
        Tool {
            name: name.into(),
            description: description.into(),
            input_schema,
            run: Arc::new(move |input, ctx| f(input, ctx).boxed()),
        }
    }

    /// The tool as offered to a model.
    pub fn spec(&self) -> ToolSpec {
        ToolSpec {
            name: self.name.clone(),
            description: self.description.clone(),
            input_schema: self.input_schema.clone(),
        }
    }

    /// Runs the tool. The returned future owns everything it needs.
    pub fn call(&self, input: Value, ctx: ToolContext) -> ToolFuture {
        (self.run)(input, ctx)
    }
}

impl fmt::Debug for Tool {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Tool").field("name", &self.name).finish_non_exhaustive()
    }
}

/// Tools by name. Agents name their tools; loading checks every name is registered here.
#[derive(Clone, Default)]
pub struct ToolRegistry {
    tools: BTreeMap<String, Tool>,
}

impl ToolRegistry {
    /// The tools that need nothing but the session: `session_answers`.
    pub fn builtin() -> ToolRegistry {
        let mut reg = ToolRegistry::default();
        reg.register(session_answers());
        reg
    }

    /// Adds a tool, replacing any tool of the same name.
    pub fn register(&mut self, tool: Tool) {
        self.tools.insert(tool.name.clone(), tool);
    }

    pub fn get(&self, name: &str) -> Option<&Tool> {
        self.tools.get(name)
    }

    /// The registered names, sorted.
    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.tools.keys().map(String::as_str)
    }

    /// The specs of the named tools, in the order given; names not registered are skipped (agents are
    /// checked against the registry when they load).
    pub fn specs<'a>(&self, names: impl IntoIterator<Item = &'a str>) -> Vec<ToolSpec> {
        names.into_iter().filter_map(|n| self.get(n)).map(Tool::spec).collect()
    }
}

impl fmt::Debug for ToolRegistry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_set().entries(self.names()).finish()
    }
}

/// How many key paths an error lists before saying how many more there are.
const MAX_LISTED_KEYS: usize = 40;

fn session_answers() -> Tool {
    Tool::new(
        "session_answers",
        "Look up what the person has shared in their onboarding answers (the session's context). \
         Call with a key path such as \"goals\" or \"pricing.hourly_rate\", or with no key to get everything.",
        json!({
            "type": "object",
            "properties": {
                "key": {
                    "type": "string",
                    "description": "A key path into the answers, with dots between nested keys \
                                    (\"pricing.hourly_rate\"); a number picks an item of a list (\"styles.0\"). \
                                    Leave it out to get all the answers."
                }
            },
            "additionalProperties": false
        }),
        |input, ctx| async move { session_answers_run(&input, &ctx.context) },
    )
}

fn session_answers_run(input: &Value, context: &Value) -> Result<Value, String> {
    let key = match input {
        Value::Null => None,
        Value::Object(map) => {
            if let Some(extra) = map.keys().find(|k| *k != "key") {
                return Err(format!("unexpected field '{extra}': the only field is \"key\" (a string)"));
            }
            match map.get("key") {
                None | Some(Value::Null) => None,
                Some(Value::String(s)) => Some(s.trim()).filter(|s| !s.is_empty()),
                Some(other) => {
                    return Err(format!(
                        "\"key\" must be a string key path such as \"goals\" or \"pricing.hourly_rate\", not {other}"
                    ));
                }
            }
        }
        other => return Err(format!("the input must be an object such as {{\"key\": \"goals\"}}, not {other}")),
    };
    let Some(key) = key else {
        return Ok(match context {
            Value::Null => Value::Object(Map::new()),
            other => other.clone(),
        });
    };
    let mut at = context;
    let mut found = 0;
    for segment in key.split('.') {
        let next = match at {
            Value::Object(map) => map.get(segment),
            Value::Array(items) => segment.parse::<usize>().ok().and_then(|i| items.get(i)),
            _ => None,
        };
        match next {
            Some(v) => {
                at = v;
                found += 1;
            }
            None => break,
        }
    }
    if found == key.split('.').count() {
        return Ok(json!({ "key": key, "value": at }));
    }
    // List what exists under the deepest part of the path that does exist, so the model can correct itself.
    let prefix = key.split('.').take(found).collect::<Vec<_>>().join(".");
    let mut known = Vec::new();
    key_paths(&prefix, at, &mut known);
    if known.is_empty() {
        return Err(format!("nothing has been shared under '{key}'; nothing has been shared yet"));
    }
    let more = known.len().saturating_sub(MAX_LISTED_KEYS);
    known.truncate(MAX_LISTED_KEYS);
    let mut listed = known.join(", ");
    if more > 0 {
        listed.push_str(&format!(" and {more} more"));
    }
    Err(format!("nothing has been shared under '{key}'; known keys: {listed}"))
}

/// The leaf key paths under `value` (objects only: a list is one leaf), prefixed with `prefix`.
fn key_paths(prefix: &str, value: &Value, out: &mut Vec<String>) {
    match value {
        Value::Object(map) if !map.is_empty() => {
            for (key, inner) in map {
                let path = if prefix.is_empty() { key.clone() } else { format!("{prefix}.{key}") };
                key_paths(&path, inner, out);
            }
        }
        _ if !prefix.is_empty() => out.push(prefix.to_owned()),
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn registry_replaces_by_name_and_lists_sorted() {
        let mut reg = ToolRegistry::builtin();
        reg.register(Tool::new("b_tool", "first", json!({"type": "object"}), |_, _| async { Ok(json!(1)) }));
        reg.register(Tool::new("a_tool", "x", json!({"type": "object"}), |_, _| async { Ok(json!(2)) }));
        reg.register(Tool::new("b_tool", "second", json!({"type": "object"}), |_, _| async { Ok(json!(3)) }));
        assert_eq!(reg.names().collect::<Vec<_>>(), ["a_tool", "b_tool", "session_answers"]);
        assert_eq!(reg.get("b_tool").map(|t| t.description.as_str()), Some("second"));
        let specs = reg.specs(["session_answers", "missing", "a_tool"]);
        assert_eq!(specs.iter().map(|s| s.name.as_str()).collect::<Vec<_>>(), ["session_answers", "a_tool"]);
        assert_eq!(format!("{reg:?}"), r#"{"a_tool", "b_tool", "session_answers"}"#);
    }

    #[test]
    fn key_paths_are_leaves_with_arrays_as_one_leaf() {
        let mut out = Vec::new();
        key_paths("", &json!({"a": 1, "b": {"c": [1, 2], "d": {}}}), &mut out);
        assert_eq!(out, ["a", "b.c", "b.d"]);
    }

    #[test]
    fn long_key_lists_are_cut() {
        let ctx = Value::Object((0..50).map(|i| (format!("k{i:02}"), json!(i))).collect());
        let err = session_answers_run(&json!({"key": "nope"}), &ctx).unwrap_err();
        assert!(err.ends_with("k39 and 10 more"), "{err}");
    }
}
