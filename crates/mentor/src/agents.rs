//! Agents are data: one TOML or YAML file per agent under `agents/<org>/`, shipped in the binary
//! (`agents/rafael-tatts/*.toml` at build time) plus any found in `MENTORFY_AGENTS_DIR/<org>/` at start-up.
//! Everything is checked once, when loading; nothing here calls a model or reads files at request time.
//!
//! # File shape
//! ```toml
//! id = "rafael-chat"            # lowercase kebab, starting with the org's first word and "-"
//! org = "rafael-tatts"          # must exist, and must equal the name of the folder holding the file
//! name = "Rafael"               # display name
//! description = "…"             # optional
//! kind = "chat"                 # "chat", or a generation type in lowercase kebab ("diagnosis", "summary", …)
//! provider = "anthropic"        # "anthropic" | "openai"
//! model = "claude-sonnet-4-6"
//! temperature = 0.7             # optional; 0 to 2, or 0 to 1 for anthropic
//! max_tokens = 1024             # 1 to 200000
//! max_steps = 4                 # optional, default 5; 1 to 20 model calls per turn (the tool loop)
//! tools = ["session_answers"]   # optional; each must be a registered tool
//! system = '''…{{context}}…'''  # the system prompt template (see `template`)
//! ```
//! The same fields in a `.yaml`/`.yml` file work the same way. Unknown fields are rejected. In TOML, write
//! `system` as a literal string (`'''…'''`): a basic string (`"""…"""`) treats the template's `\{{` escape
//! as an invalid TOML escape.
//!
//! # Rules decided here
//! - **Id prefix.** An id starts with the first word of its org's id and a dash (`rafael-` for
//!   `rafael-tatts`), so the shipped ids read `rafael-chat`, not `rafael-tatts-chat`. Two orgs sharing a first
//!   word cannot take each other's agents: a file that reuses an id must keep that agent's org.
//! - **Folder = org.** The file states its org and the folder must agree; a file directly in the agents
//!   directory is an error rather than silently ignored.
//! - **Overrides.** A file in the agents directory replaces a shipped agent with the same id. Within one
//!   source (the shipped files, or the directory) an id may appear only once.
//! - **Generation lookup.** An org has at most one agent of each generation kind, so
//!   [`Agents::generation`] finds it by kind; ids are not parsed.

use std::collections::BTreeMap;
use std::path::Path;

use mentorfy_core::{OrgId, OrgRegistry};
use mentorfy_llm::{ProviderKind, ToolSpec};
use serde::Deserialize;

use crate::template::Template;
use crate::tools::ToolRegistry;

/// Agents shipped with the binary, as (path in the repository, contents).
const BUILTIN: &[(&str, &str)] = &[
    ("agents/rafael-tatts/rafael-chat.toml", include_str!("../../../agents/rafael-tatts/rafael-chat.toml")),
    ("agents/rafael-tatts/rafael-diagnosis.toml", include_str!("../../../agents/rafael-tatts/rafael-diagnosis.toml")),
    ("agents/rafael-tatts/rafael-summary.toml", include_str!("../../../agents/rafael-tatts/rafael-summary.toml")),
];

const MAX_TOKENS: std::ops::RangeInclusive<i64> = 1..=200_000;
const MAX_STEPS: std::ops::RangeInclusive<i64> = 1..=20;
const DEFAULT_MAX_STEPS: u32 = 5;

/// What an agent is for.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum AgentKind {
    /// Streams a conversation.
    Chat,
    /// Writes one document from the session (`diagnosis`, `summary`, …).
    Generation(String),
}

impl AgentKind {
    pub fn as_str(&self) -> &str {
        match self {
            Self::Chat => "chat",
            Self::Generation(kind) => kind,
        }
    }
}

/// A validated agent.
#[derive(Clone, Debug)]
pub struct Agent {
    pub id: String,
    pub org: OrgId,
    /// Display name.
    pub name: String,
    pub description: String,
    pub kind: AgentKind,
    pub provider: ProviderKind,
    pub model: String,
    pub temperature: Option<f32>,
    pub max_tokens: u32,
    pub system: Template,
    /// Tool names, each registered in the [`ToolRegistry`] the agents were loaded with.
    pub tools: Vec<String>,
    /// Model calls allowed per turn (1 means no tool round trip).
    pub max_steps: u32,
    /// The file it came from.
    pub source: String,
}

impl Agent {
    /// The specs of this agent's tools, in the file's order.
    pub fn tool_specs(&self, tools: &ToolRegistry) -> Vec<ToolSpec> {
        tools.specs(self.tools.iter().map(String::as_str))
    }
}

/// An agent file as written; checked into an [`Agent`] by [`check`].
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct AgentFile {
    id: String,
    org: String,
    name: String,
    #[serde(default)]
    description: String,
    kind: String,
    provider: String,
    model: String,
    temperature: Option<f64>,
    max_tokens: i64,
    max_steps: Option<i64>,
    #[serde(default)]
    tools: Vec<String>,
    system: String,
}

/// Every loaded agent, by id.
#[derive(Clone, Debug, Default)]
pub struct Agents {
    agents: BTreeMap<String, Agent>,
}

impl Agents {
    /// The shipped agents, then every `<org>/*.toml|*.yaml|*.yml` in `extra_dir` (a file may replace a shipped
    /// agent with the same id). Errors name the file and the field.
    pub fn load(extra_dir: Option<&Path>, orgs: &OrgRegistry, tools: &ToolRegistry) -> Result<Agents, String> {
        let mut agents = Agents::default();
        let mut builtin = Source::default();
        for (file, text) in BUILTIN {
            let folder = Path::new(file).parent().and_then(|p| p.file_name()).and_then(|n| n.to_str());
            let agent = parse(file, text, Format::Toml, folder, orgs, tools)?;
            builtin.add(&mut agents, agent)?;
        }
        if let Some(dir) = extra_dir {
            let mut extra = Source::default();
            for (path, format) in agent_files(dir)? {
                let file = path.display().to_string();
                let text = std::fs::read_to_string(&path).map_err(|e| format!("{file}: {e}"))?;
                let folder = path.parent().and_then(|p| p.file_name()).and_then(|n| n.to_str());
                let agent = parse(&file, &text, format, folder, orgs, tools)?;
                extra.add(&mut agents, agent)?;
            }
        }
        agents.check_generation_kinds()?;
        Ok(agents)
    }

    pub fn get(&self, id: &str) -> Option<&Agent> {
        self.agents.get(id)
    }

    /// Every agent, sorted by id.
    pub fn list(&self) -> impl Iterator<Item = &Agent> {
        self.agents.values()
    }

    /// The org's agent of generation type `kind` (at most one exists; checked when loading).
    pub fn generation(&self, org: &OrgId, kind: &str) -> Option<&Agent> {
        self.agents.values().find(|a| &a.org == org && matches!(&a.kind, AgentKind::Generation(k) if k == kind))
    }

    fn check_generation_kinds(&self) -> Result<(), String> {
        let mut seen: BTreeMap<(&OrgId, &str), &Agent> = BTreeMap::new();
        for agent in self.agents.values() {
            let AgentKind::Generation(kind) = &agent.kind else { continue };
            if let Some(first) = seen.insert((&agent.org, kind), agent) {
                return Err(format!(
                    "{}: kind: org '{}' already has a '{kind}' agent ('{}' in {}); an org has one agent per \
                     generation kind (give this file the id '{}' to replace it)",
                    agent.source, agent.org, first.id, first.source, first.id
                ));
            }
        }
        Ok(())
    }
}

/// The ids one source (the shipped files, or the agents directory) has defined, to reject duplicates.
#[derive(Default)]
struct Source {
    ids: BTreeMap<String, String>,
}

impl Source {
    fn add(&mut self, agents: &mut Agents, agent: Agent) -> Result<(), String> {
        if let Some(other) = self.ids.get(&agent.id) {
            return Err(format!("{}: id: '{}' is already defined by {other}", agent.source, agent.id));
        }
        if let Some(old) = agents.agents.get(&agent.id) {
            if old.org != agent.org {
                return Err(format!(
                    "{}: id: '{}' belongs to org '{}' ({}); choose another id",
                    agent.source, agent.id, old.org, old.source
                ));
            }
            tracing::info!(agent = %agent.id, file = %agent.source, replaces = %old.source, "agent file replaces a shipped agent");
        }
        self.ids.insert(agent.id.clone(), agent.source.clone());
        agents.agents.insert(agent.id.clone(), agent);
        Ok(())
    }
}

#[derive(Clone, Copy)]
enum Format {
    Toml,
    Yaml,
}

/// The agent files under `dir`: `<org>/*.{toml,yaml,yml}`, sorted; hidden entries skipped.
fn agent_files(dir: &Path) -> Result<Vec<(std::path::PathBuf, Format)>, String> {
    let read = |d: &Path| {
        let entries =
            std::fs::read_dir(d).map_err(|e| format!("MENTORFY_AGENTS_DIR: cannot read {}: {e}", d.display()))?;
        let mut paths: Vec<_> = entries
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| !p.file_name().and_then(|n| n.to_str()).is_some_and(|n| n.starts_with('.')))
            .collect();
        paths.sort();
        Ok::<_, String>(paths)
    };
    let format_of = |p: &Path| match p.extension().and_then(|x| x.to_str()) {
        Some("toml") => Some(Format::Toml),
        Some("yaml" | "yml") => Some(Format::Yaml),
        _ => None,
    };
    let mut files = Vec::new();
    for entry in read(dir)? {
        if entry.is_dir() {
            files.extend(
                read(&entry)?.into_iter().filter(|p| p.is_file()).filter_map(|p| format_of(&p).map(|f| (p, f))),
            );
        } else if format_of(&entry).is_some() {
            return Err(format!(
                "{}: agent files belong in a folder named after their org ({}/<org>/)",
                entry.display(),
                dir.display()
            ));
        }
    }
    Ok(files)
}

fn parse(
    file: &str,
    text: &str,
    format: Format,
    folder: Option<&str>,
    orgs: &OrgRegistry,
    tools: &ToolRegistry,
) -> Result<Agent, String> {
    let raw: AgentFile = match format {
        Format::Toml => toml::from_str(text).map_err(|e| format!("{file}: {e}"))?,
        Format::Yaml => serde_yaml_ng::from_str(text).map_err(|e| format!("{file}: {e}"))?,
    };
    check(raw, folder)
        .and_then(|agent| finish(agent, file, orgs, tools))
        .map_err(|(field, message)| format!("{file}: {field}: {message}"))
}

type FieldError = (&'static str, String);

/// Checks that need only the file itself.
fn check(raw: AgentFile, folder: Option<&str>) -> Result<Agent, FieldError> {
    let org = OrgId::parse(&raw.org).map_err(|e| ("org", e))?;
    if let Some(folder) = folder
        && folder != org.as_str()
    {
        return Err((
            "org",
            format!("'{org}' does not match the folder '{folder}' (agent files live in <agents dir>/<org>/)"),
        ));
    }
    if !is_kebab(&raw.id) {
        return Err(("id", format!("'{}' is not lowercase kebab case (a-z, 0-9, single dashes)", raw.id)));
    }
    let prefix = format!("{}-", org.as_str().split('-').next().unwrap_or_default());
    if !raw.id.starts_with(&prefix) {
        return Err(("id", format!("'{}' must start with '{prefix}' (the first word of org '{org}')", raw.id)));
    }
    if raw.name.trim().is_empty() {
        return Err(("name", "must not be empty".into()));
    }
    let kind = match raw.kind.as_str() {
        "chat" => AgentKind::Chat,
        other if is_kebab(other) => AgentKind::Generation(other.to_owned()),
        other => {
            return Err(("kind", format!("'{other}' is neither \"chat\" nor a lowercase kebab generation type")));
        }
    };
    let provider = match raw.provider.as_str() {
        "anthropic" => ProviderKind::Anthropic,
        "openai" => ProviderKind::OpenAi,
        other => return Err(("provider", format!("'{other}' is not one of \"anthropic\", \"openai\""))),
    };
    if raw.model.trim().is_empty() {
        return Err(("model", "must not be empty".into()));
    }
    let temperature = match raw.temperature {
        None => None,
        Some(t) => {
            let max = if provider == ProviderKind::Anthropic { 1.0 } else { 2.0 };
            if !(0.0..=max).contains(&t) {
                return Err(("temperature", format!("{t} is out of range for {provider} (0 to {max})")));
            }
            Some(t as f32)
        }
    };
    if !MAX_TOKENS.contains(&raw.max_tokens) {
        return Err(("max_tokens", format!("{} is out of range (1 to 200000)", raw.max_tokens)));
    }
    let max_steps = raw.max_steps.unwrap_or(i64::from(DEFAULT_MAX_STEPS));
    if !MAX_STEPS.contains(&max_steps) {
        return Err(("max_steps", format!("{max_steps} is out of range (1 to 20)")));
    }
    if raw.system.trim().is_empty() {
        return Err(("system", "must not be empty".into()));
    }
    let system = Template::parse(&raw.system).map_err(|e| ("system", e.to_string()))?;
    Ok(Agent {
        id: raw.id,
        org,
        name: raw.name,
        description: raw.description,
        kind,
        provider,
        model: raw.model,
        temperature,
        // Both ranges were checked above.
        max_tokens: u32::try_from(raw.max_tokens).unwrap_or(1),
        system,
        tools: raw.tools,
        max_steps: u32::try_from(max_steps).unwrap_or(DEFAULT_MAX_STEPS),
        source: String::new(),
    })
}

/// Checks against the registries, and records the source.
fn finish(mut agent: Agent, file: &str, orgs: &OrgRegistry, tools: &ToolRegistry) -> Result<Agent, FieldError> {
    if orgs.get(agent.org.as_str()).is_none() {
        let known = orgs.ids().map(OrgId::as_str).collect::<Vec<_>>().join(", ");
        return Err(("org", format!("unknown org '{}' (known orgs: {known})", agent.org)));
    }
    for (i, name) in agent.tools.iter().enumerate() {
        if tools.get(name).is_none() {
            let known = tools.names().collect::<Vec<_>>().join(", ");
            return Err(("tools", format!("unknown tool '{name}' (registered tools: {known})")));
        }
        if agent.tools[..i].contains(name) {
            return Err(("tools", format!("'{name}' is listed twice")));
        }
    }
    agent.source = file.to_owned();
    Ok(agent)
}

/// `a-z`, `0-9` and single inner dashes.
fn is_kebab(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 64
        && s.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !s.starts_with('-')
        && !s.ends_with('-')
        && !s.contains("--")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kebab_case_is_strict() {
        for good in ["rafael-chat", "a", "x2-y3"] {
            assert!(is_kebab(good), "{good}");
        }
        for bad in ["", "-a", "a-", "a--b", "Rafael", "a_b", "a b"] {
            assert!(!is_kebab(bad), "{bad}");
        }
    }
}
