#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
//! Agents as data: the shipped agents, the loader's checks (every error names its file and field), overrides,
//! YAML files, prompt rendering and the `session_answers` tool.

use std::path::{Path, PathBuf};

use mentorfy_core::{OrgId, OrgRegistry, SessionId};
use mentorfy_llm::ProviderKind;
use mentorfy_mentor::{AgentKind, Agents, PromptVars, Template, ToolContext, ToolRegistry};
use serde_json::{Value, json};

/// A scratch agents directory, removed on drop.
struct Dir(PathBuf);

impl Dir {
    fn new() -> Self {
        let dir = std::env::temp_dir().join(format!("mentorfy-agents-{}", uuid::Uuid::new_v4()));
        std::fs::create_dir_all(&dir).unwrap();
        Dir(dir)
    }

    /// Writes `rel` (e.g. "rafael-tatts/x.toml") and returns its full path as the loader prints it.
    fn write(&self, rel: &str, text: &str) -> String {
        let path = self.0.join(rel);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(&path, text).unwrap();
        path.display().to_string()
    }

    fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for Dir {
    fn drop(&mut self) {
        std::fs::remove_dir_all(&self.0).ok();
    }
}

fn orgs() -> OrgRegistry {
    OrgRegistry::load(None).unwrap()
}

/// The built-in tools plus `memory_search` and `knowledge_search` under their real names. Their real bodies need
/// a memory backend (they are tested in crates/web/tests/api/memory.rs); here only the names and specs matter.
fn registry() -> ToolRegistry {
    let mut tools = ToolRegistry::builtin();
    for name in ["memory_search", "knowledge_search"] {
        tools.register(mentorfy_mentor::Tool::new(name, "search", json!({"type": "object"}), |_, _| async {
            Err("not available in this test".to_owned())
        }));
    }
    tools
}

fn load(dir: &Dir) -> Result<Agents, String> {
    Agents::load(Some(dir.path()), &orgs(), &registry())
}

/// A valid agent file for org rafael-tatts, with `extra` lines inserted before `system`.
fn agent_toml(id: &str, extra: &str) -> String {
    format!(
        "id = \"{id}\"\norg = \"rafael-tatts\"\nname = \"Test\"\nkind = \"chat\"\nprovider = \"anthropic\"\n\
         model = \"claude-sonnet-4-6\"\nmax_tokens = 500\n{extra}\nsystem = \"Hello {{{{ name }}}}\"\n"
    )
}

/// Loads one file written at `rel` and returns the error, checking it names the file and `needles`.
fn rejected(rel: &str, text: &str, needles: &[&str]) -> String {
    let dir = Dir::new();
    let file = dir.write(rel, text);
    let err = load(&dir).expect_err("the file is rejected");
    assert!(err.starts_with(&file), "error should start with the file {file}: {err}");
    for needle in needles {
        assert!(err.contains(needle), "error should mention {needle:?}: {err}");
    }
    err
}

fn vars(context: Value) -> PromptVars {
    PromptVars {
        name: Some("Ana".into()),
        context,
        memories: vec!["Wants to open a private studio next year".into()],
        org: "Rafael Tatts".into(),
        today: "2026-03-01".into(),
    }
}

fn tool_ctx(context: Value) -> ToolContext {
    ToolContext { session_id: SessionId::new_random(), org_id: OrgId::parse("rafael-tatts").unwrap(), context }
}

#[test]
fn shipped_agents_load_and_validate() {
    let agents = Agents::load(None, &orgs(), &registry()).unwrap();
    let ids: Vec<_> = agents.list().map(|a| a.id.as_str()).collect();
    assert_eq!(ids, ["rafael-chat", "rafael-diagnosis", "rafael-summary"]);

    let chat = agents.get("rafael-chat").unwrap();
    assert_eq!(chat.org.as_str(), "rafael-tatts");
    assert_eq!(chat.kind, AgentKind::Chat);
    assert_eq!(chat.provider, ProviderKind::Anthropic);
    assert_eq!(chat.model, "claude-sonnet-4-6");
    assert_eq!(chat.temperature, Some(0.7));
    assert_eq!(chat.tools, ["session_answers", "memory_search", "knowledge_search"]);
    assert_eq!(chat.max_steps, 4);
    assert_eq!(chat.source, "agents/rafael-tatts/rafael-chat.toml");
    let used: Vec<_> = chat.system.variables().collect();
    for var in ["name", "context", "memories", "org", "today"] {
        assert!(used.contains(&var), "rafael-chat should use {{{{{var}}}}}: {used:?}");
    }
    let specs = chat.tool_specs(&registry());
    let names: Vec<_> = specs.iter().map(|s| s.name.as_str()).collect();
    assert_eq!(names, ["session_answers", "memory_search", "knowledge_search"]);

    let org = OrgId::parse("rafael-tatts").unwrap();
    let diagnosis = agents.generation(&org, "diagnosis").unwrap();
    assert_eq!(diagnosis.id, "rafael-diagnosis");
    assert_eq!(diagnosis.kind, AgentKind::Generation("diagnosis".into()));
    assert!(diagnosis.tools.is_empty());
    assert_eq!(diagnosis.max_steps, 1);
    assert!(diagnosis.system.variables().any(|v| v == "context"));

    let summary = agents.generation(&org, "summary").unwrap();
    assert_eq!(summary.id, "rafael-summary");
    assert_eq!(summary.model, "claude-haiku-4-5");
    assert!(summary.system.variables().any(|v| v == "context"));
    assert!(summary.system.variables().any(|v| v == "memories"));

    assert!(agents.generation(&org, "chat").is_none());
    assert!(agents.generation(&org, "poem").is_none());
    assert!(agents.generation(&OrgId::parse("nobody").unwrap(), "diagnosis").is_none());
}

#[test]
fn shipped_prompts_render_every_placeholder() {
    let agents = Agents::load(None, &orgs(), &registry()).unwrap();
    let context = json!({"style": "fine line", "pricing": {"hourly_rate": 150}});
    for agent in agents.list() {
        let prompt = agent.system.render(&vars(context.clone()));
        assert!(!prompt.contains("{{") && !prompt.contains("}}"), "{}: {prompt}", agent.id);
        assert!(prompt.contains("- pricing.hourly_rate: 150"), "{}", agent.id);
        assert!(prompt.contains("Rafael Tatts") && prompt.contains("2026-03-01"), "{}", agent.id);
    }
}

#[test]
fn missing_extra_dir_is_an_error() {
    let missing = std::env::temp_dir().join(format!("mentorfy-none-{}", uuid::Uuid::new_v4()));
    let err = Agents::load(Some(&missing), &orgs(), &registry()).unwrap_err();
    assert!(err.contains("MENTORFY_AGENTS_DIR") && err.contains(&missing.display().to_string()), "{err}");
}

#[test]
fn unknown_field_is_rejected_by_name() {
    rejected("rafael-tatts/x.toml", &agent_toml("rafael-x", "temprature = 0.5"), &["temprature"]);
}

#[test]
fn missing_field_is_named() {
    let text = agent_toml("rafael-x", "").replace("model = \"claude-sonnet-4-6\"\n", "");
    rejected("rafael-tatts/x.toml", &text, &["model"]);
}

#[test]
fn unknown_template_variable_names_system_and_the_variable() {
    let text = agent_toml("rafael-x", "").replace("{{ name }}", "{{ nmae }}");
    rejected("rafael-tatts/x.toml", &text, &["system:", "`nmae`", "name, context, memories, org, today"]);
    let text = agent_toml("rafael-x", "").replace("{{ name }}", "{{ name");
    rejected("rafael-tatts/x.toml", &text, &["system:", "never closed"]);
}

#[test]
fn unknown_tool_is_named() {
    rejected(
        "rafael-tatts/x.toml",
        &agent_toml("rafael-x", "tools = [\"web_search\"]"),
        &["tools:", "unknown tool 'web_search'", "session_answers", "knowledge_search"],
    );
}

#[test]
fn tools_registered_later_can_be_named() {
    let dir = Dir::new();
    dir.write("rafael-tatts/x.toml", &agent_toml("rafael-x", "tools = [\"lookup_prices\", \"session_answers\"]"));
    let mut tools = registry();
    tools.register(mentorfy_mentor::Tool::new("lookup_prices", "prices", json!({"type": "object"}), |_, _| async {
        Ok(json!([]))
    }));
    let agents = Agents::load(Some(dir.path()), &orgs(), &tools).unwrap();
    assert_eq!(agents.get("rafael-x").unwrap().tools, ["lookup_prices", "session_answers"]);
    let err = Agents::load(Some(dir.path()), &orgs(), &registry()).unwrap_err();
    assert!(err.contains("unknown tool 'lookup_prices'"), "{err}");
}

#[test]
fn unknown_org_is_named() {
    let text = agent_toml("nobody-x", "").replace("rafael-tatts", "nobody");
    rejected("nobody/x.toml", &text, &["org:", "unknown org 'nobody'", "rafael-tatts"]);
}

#[test]
fn folder_must_match_the_org() {
    rejected("someone-else/x.toml", &agent_toml("rafael-x", ""), &["org:", "someone-else"]);
}

#[test]
fn files_outside_an_org_folder_are_rejected() {
    rejected("x.toml", &agent_toml("rafael-x", ""), &["folder named after their org"]);
}

#[test]
fn temperature_range_depends_on_the_provider() {
    rejected("rafael-tatts/x.toml", &agent_toml("rafael-x", "temperature = 1.5"), &["temperature:", "anthropic"]);
    rejected("rafael-tatts/x.toml", &agent_toml("rafael-x", "temperature = -0.1"), &["temperature:"]);
    let openai = agent_toml("rafael-x", "temperature = 2.5").replace("anthropic", "openai");
    rejected("rafael-tatts/x.toml", &openai, &["temperature:", "openai"]);

    let dir = Dir::new();
    dir.write("rafael-tatts/x.toml", &agent_toml("rafael-x", "temperature = 1.5").replace("anthropic", "openai"));
    let agents = load(&dir).unwrap();
    let agent = agents.get("rafael-x").unwrap();
    assert_eq!((agent.provider, agent.temperature), (ProviderKind::OpenAi, Some(1.5)));
    assert_eq!(agent.max_steps, 5, "max_steps defaults to 5");
    assert_eq!(agent.description, "");
}

#[test]
fn other_numeric_fields_and_provider_are_checked() {
    let base = agent_toml("rafael-x", "");
    rejected("rafael-tatts/x.toml", &base.replace("max_tokens = 500", "max_tokens = 0"), &["max_tokens:"]);
    rejected("rafael-tatts/x.toml", &base.replace("max_tokens = 500", "max_tokens = 200001"), &["max_tokens:"]);
    rejected("rafael-tatts/x.toml", &agent_toml("rafael-x", "max_steps = 21"), &["max_steps:"]);
    rejected("rafael-tatts/x.toml", &agent_toml("rafael-x", "max_steps = 0"), &["max_steps:"]);
    rejected("rafael-tatts/x.toml", &base.replace("anthropic", "gemini"), &["provider:", "gemini"]);
    rejected("rafael-tatts/x.toml", &base.replace("claude-sonnet-4-6", " "), &["model:"]);
    rejected("rafael-tatts/x.toml", &base.replace("\"chat\"", "\"Deep Dive\""), &["kind:"]);
    rejected("rafael-tatts/x.toml", &base.replace("Hello {{ name }}", "  "), &["system:"]);
}

#[test]
fn id_must_be_kebab_and_prefixed_by_the_org() {
    rejected("rafael-tatts/x.toml", &agent_toml("coach", ""), &["id:", "'rafael-'"]);
    rejected("rafael-tatts/x.toml", &agent_toml("tatts-coach", ""), &["id:", "'rafael-'"]);
    rejected("rafael-tatts/x.toml", &agent_toml("rafael-Coach", ""), &["id:", "kebab"]);
    rejected("rafael-tatts/x.toml", &agent_toml("rafael-", ""), &["id:"]);

    let dir = Dir::new();
    dir.write("rafael-tatts/x.toml", &agent_toml("rafael-tatts-coach", ""));
    assert!(load(&dir).unwrap().get("rafael-tatts-coach").is_some(), "the full org id is a valid prefix too");
}

#[test]
fn duplicate_ids_in_one_source_name_both_files() {
    let dir = Dir::new();
    let first = dir.write("rafael-tatts/a.toml", &agent_toml("rafael-x", ""));
    let second = dir.write("rafael-tatts/b.toml", &agent_toml("rafael-x", ""));
    let err = load(&dir).unwrap_err();
    assert!(err.starts_with(&second) && err.contains("id:") && err.contains(&first), "{err}");
}

#[test]
fn extra_dir_overrides_a_shipped_agent() {
    let dir = Dir::new();
    let text = agent_toml("rafael-chat", "").replace("claude-sonnet-4-6", "local-llama");
    let file = dir.write("rafael-tatts/rafael-chat.toml", &text);
    let agents = load(&dir).unwrap();
    let chat = agents.get("rafael-chat").unwrap();
    assert_eq!(chat.model, "local-llama");
    assert_eq!(chat.source, file);
    assert_eq!(agents.list().count(), 3, "the other shipped agents stay");
    assert_eq!(agents.get("rafael-summary").unwrap().source, "agents/rafael-tatts/rafael-summary.toml");
}

#[test]
fn another_org_cannot_take_a_shipped_id() {
    let orgs_dir = Dir::new();
    orgs_dir.write("rafael-piercing.toml", "id = \"rafael-piercing\"\nname = \"Rafael Piercing\"\n");
    let orgs = OrgRegistry::load(Some(orgs_dir.path())).unwrap();
    let dir = Dir::new();
    let text = agent_toml("rafael-chat", "").replace("rafael-tatts", "rafael-piercing");
    let file = dir.write("rafael-piercing/chat.toml", &text);
    let err = Agents::load(Some(dir.path()), &orgs, &registry()).unwrap_err();
    assert!(err.starts_with(&file) && err.contains("id:") && err.contains("belongs to org 'rafael-tatts'"), "{err}");
}

#[test]
fn an_org_has_one_agent_per_generation_kind() {
    let dir = Dir::new();
    let file = dir.write("rafael-tatts/x.toml", &agent_toml("rafael-x", "").replace("\"chat\"", "\"diagnosis\""));
    let err = load(&dir).unwrap_err();
    assert!(err.starts_with(&file) && err.contains("kind:") && err.contains("rafael-diagnosis"), "{err}");

    let dir = Dir::new();
    dir.write("rafael-tatts/x.toml", &agent_toml("rafael-x", "").replace("\"chat\"", "\"weekly-plan\""));
    let agents = load(&dir).unwrap();
    let org = OrgId::parse("rafael-tatts").unwrap();
    assert_eq!(agents.generation(&org, "weekly-plan").map(|a| a.id.as_str()), Some("rafael-x"));
}

#[test]
fn yaml_files_load_like_toml() {
    let dir = Dir::new();
    let yaml = "id: rafael-coach\norg: rafael-tatts\nname: Coach\nkind: chat\nprovider: openai\nmodel: gpt-5-mini\n\
                temperature: 1.2\nmax_tokens: 800\nmax_steps: 3\ntools: [session_answers]\nsystem: |\n  \
                You coach {{ name }}.\n  Answers:\n  {{context}}\n";
    let file = dir.write("rafael-tatts/coach.yaml", yaml);
    dir.write(
        "rafael-tatts/recap.yml",
        &yaml.replace("rafael-coach", "rafael-recap").replace("kind: chat", "kind: recap"),
    );
    dir.write("rafael-tatts/README.md", "not an agent");
    let agents = load(&dir).unwrap();
    let coach = agents.get("rafael-coach").unwrap();
    assert_eq!(coach.provider, ProviderKind::OpenAi);
    assert_eq!(coach.temperature, Some(1.2));
    assert_eq!((coach.max_tokens, coach.max_steps), (800, 3));
    assert_eq!(coach.tools, ["session_answers"]);
    assert_eq!(coach.source, file);
    assert_eq!(coach.system.source(), "You coach {{ name }}.\nAnswers:\n{{context}}\n");
    assert_eq!(coach.system.variables().collect::<Vec<_>>(), ["name", "context"]);
    assert_eq!(agents.get("rafael-recap").unwrap().kind, AgentKind::Generation("recap".into()));
}

#[test]
fn yaml_errors_name_file_and_field() {
    let yaml = "id: rafael-coach\norg: rafael-tatts\nname: Coach\nkind: chat\nprovider: anthropic\nmodel: m\n\
                max_tokens: 800\nsystem: hi\n";
    rejected("rafael-tatts/a.yaml", &format!("{yaml}nmae: typo\n"), &["nmae"]);
    rejected("rafael-tatts/a.yaml", &yaml.replace("system: hi", "system: hi {{ who }}"), &["system:", "`who`"]);
    rejected("rafael-tatts/a.yml", &format!("{yaml}temperature: 3\n"), &["temperature:"]);
}

#[test]
fn templates_render_name_context_and_memories() {
    let t = Template::parse("Name: {{ name }}\nAnswers:\n{{context}}\nMemories:\n{{ memories }}").unwrap();
    let context = json!({
        "goals": "grow bookings",
        "pricing": {"hourly_rate": 150, "deposit": true},
        "styles": ["fine line", "blackwork"],
    });
    assert_eq!(
        t.render(&vars(context)),
        "Name: Ana\nAnswers:\n- goals: grow bookings\n- pricing.hourly_rate: 150\n- pricing.deposit: true\n\
         - styles: fine line, blackwork\nMemories:\n- Wants to open a private studio next year"
    );
    let empty = PromptVars { name: None, memories: vec![], ..vars(json!({})) };
    assert_eq!(
        t.render(&empty),
        "Name: (not shared yet)\nAnswers:\n(nothing shared yet)\nMemories:\n(no memories yet)"
    );
}

#[tokio::test]
async fn session_answers_returns_values_by_key_path() {
    let tools = ToolRegistry::builtin();
    let tool = tools.get("session_answers").unwrap();
    let spec = tool.spec();
    assert_eq!(spec.name, "session_answers");
    assert_eq!(spec.input_schema["properties"]["key"]["type"], "string");
    assert_eq!(spec.input_schema["additionalProperties"], false);

    let context =
        json!({"goals": "grow bookings", "pricing": {"hourly_rate": 150}, "styles": ["fine line", "dotwork"]});
    let ctx = tool_ctx(context.clone());
    assert_eq!(
        tool.call(json!({"key": "goals"}), ctx.clone()).await,
        Ok(json!({"key": "goals", "value": "grow bookings"}))
    );
    assert_eq!(
        tool.call(json!({"key": "pricing.hourly_rate"}), ctx.clone()).await,
        Ok(json!({"key": "pricing.hourly_rate", "value": 150}))
    );
    assert_eq!(
        tool.call(json!({"key": "pricing"}), ctx.clone()).await,
        Ok(json!({"key": "pricing", "value": {"hourly_rate": 150}}))
    );
    assert_eq!(
        tool.call(json!({"key": "styles.1"}), ctx.clone()).await,
        Ok(json!({"key": "styles.1", "value": "dotwork"}))
    );
    assert_eq!(tool.call(json!({}), ctx.clone()).await, Ok(context.clone()));
    assert_eq!(tool.call(json!({"key": null}), ctx.clone()).await, Ok(context.clone()));
    assert_eq!(tool.call(Value::Null, ctx).await, Ok(context));
}

#[tokio::test]
async fn session_answers_errors_name_the_known_keys() {
    let tools = ToolRegistry::builtin();
    let tool = tools.get("session_answers").unwrap();
    let ctx = tool_ctx(json!({"goals": "grow bookings", "pricing": {"hourly_rate": 150, "deposit": 50}}));

    let err = tool.call(json!({"key": "budget"}), ctx.clone()).await.unwrap_err();
    assert_eq!(err, "nothing has been shared under 'budget'; known keys: goals, pricing.hourly_rate, pricing.deposit");
    let err = tool.call(json!({"key": "pricing.day_rate"}), ctx.clone()).await.unwrap_err();
    assert_eq!(
        err,
        "nothing has been shared under 'pricing.day_rate'; known keys: pricing.hourly_rate, pricing.deposit"
    );
    let err = tool.call(json!({"key": "goals.first"}), ctx.clone()).await.unwrap_err();
    assert!(err.contains("known keys: goals"), "{err}");

    let err = tool.call(json!({"key": 42}), ctx.clone()).await.unwrap_err();
    assert!(err.contains("must be a string"), "{err}");
    let err = tool.call(json!({"key": "goals", "limit": 3}), ctx.clone()).await.unwrap_err();
    assert!(err.contains("'limit'"), "{err}");
    let err = tool.call(json!("goals"), ctx).await.unwrap_err();
    assert!(err.contains("must be an object"), "{err}");

    let err = tool.call(json!({"key": "goals"}), tool_ctx(json!({}))).await.unwrap_err();
    assert!(err.contains("nothing has been shared yet"), "{err}");
}
