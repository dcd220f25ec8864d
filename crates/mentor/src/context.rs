//! The session `context` merge: objects merge recursively, arrays and scalars replace, `null` deletes a key.

use serde_json::{Map, Value};

/// The largest a session's context may grow to, serialised.
pub const MAX_CONTEXT_BYTES: usize = 128 * 1024;

/// Deep-merges `patch` into `target`. Returns whether anything changed.
pub fn merge_context(target: &mut Map<String, Value>, patch: Map<String, Value>) -> bool {
    let mut changed = false;
    for (key, value) in patch {
        match value {
            Value::Null => changed |= target.remove(&key).is_some(),
            Value::Object(inner) => match target.get_mut(&key) {
                Some(Value::Object(existing)) => changed |= merge_context(existing, inner),
                _ => {
                    let mut fresh = Map::new();
                    merge_context(&mut fresh, inner);
                    changed |= target.get(&key) != Some(&Value::Object(fresh.clone()));
                    target.insert(key, Value::Object(fresh));
                }
            },
            other => {
                changed |= target.get(&key) != Some(&other);
                target.insert(key, other);
            }
        }
    }
    changed
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn merged(base: Value, patch: Value) -> (Value, bool) {
        let mut base = base.as_object().cloned().unwrap_or_default();
        let changed = merge_context(&mut base, patch.as_object().cloned().unwrap_or_default());
        (Value::Object(base), changed)
    }

    #[test]
    fn objects_merge_recursively_arrays_and_scalars_replace_null_deletes() {
        let base = json!({"a": {"x": 1, "y": {"deep": true}}, "list": [1, 2], "keep": "me", "gone": 1});
        let patch = json!({"a": {"y": {"more": 2}, "z": 3}, "list": [3], "gone": null, "new": "v"});
        let (out, changed) = merged(base, patch);
        assert!(changed);
        assert_eq!(
            out,
            json!({"a": {"x": 1, "y": {"deep": true, "more": 2}, "z": 3}, "list": [3], "keep": "me", "new": "v"})
        );
    }

    #[test]
    fn nulls_inside_a_new_object_are_not_stored() {
        let (out, _) = merged(json!({"a": 1}), json!({"a": {"b": null, "c": 1}}));
        assert_eq!(out, json!({"a": {"c": 1}}));
    }

    #[test]
    fn same_values_report_no_change() {
        let (_, changed) = merged(json!({"a": {"b": 1}, "c": [1]}), json!({"a": {"b": 1}, "c": [1], "missing": null}));
        assert!(!changed);
    }
}
