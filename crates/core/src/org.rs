//! Organisations are data: TOML files shipped in the binary (`orgs/*.toml` at build time) plus any found in
//! `MENTORFY_ORGS_DIR` at start-up. Nothing here fetches anything at request time.

use std::collections::BTreeMap;
use std::path::Path;

use serde::Deserialize;

use crate::ids::OrgId;

/// One organisation (a Mentor customer such as Rafael Tatts).
#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Org {
    pub id: OrgId,
    pub name: String,
    #[serde(default)]
    pub description: String,
    /// How this organisation's onboarding answers become memories.
    #[serde(default)]
    pub memory: MemorySettings,
}

/// `[memory]` in an organisation file.
#[derive(Clone, Debug, Default, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct MemorySettings {
    /// Answer key (a dotted path for nested answers, e.g. `business.rate`) → a sentence with `{value}` where the
    /// answer goes. Keys without a template get a generic sentence.
    #[serde(default)]
    pub templates: BTreeMap<String, String>,
}

/// Organisations shipped with the binary.
const BUILTIN: &[(&str, &str)] = &[("rafael-tatts.toml", include_str!("../../../orgs/rafael-tatts.toml"))];

#[derive(Clone, Debug, Default)]
pub struct OrgRegistry {
    orgs: BTreeMap<OrgId, Org>,
}

impl OrgRegistry {
    /// The shipped organisations, then every `*.toml` in `extra_dir` (a file may replace a shipped org).
    /// Errors name the file and what is wrong with it.
    pub fn load(extra_dir: Option<&Path>) -> Result<Self, String> {
        let mut reg = Self::default();
        for (name, text) in BUILTIN {
            reg.add_toml(name, text)?;
        }
        if let Some(dir) = extra_dir {
            let entries =
                std::fs::read_dir(dir).map_err(|e| format!("MENTORFY_ORGS_DIR: cannot read {}: {e}", dir.display()))?;
            let mut paths: Vec<_> = entries
                .filter_map(|e| e.ok().map(|e| e.path()))
                .filter(|p| p.extension().is_some_and(|x| x == "toml"))
                .collect();
            paths.sort();
            for path in paths {
                let text = std::fs::read_to_string(&path).map_err(|e| format!("{}: {e}", path.display()))?;
                reg.add_toml(&path.display().to_string(), &text)?;
            }
        }
        Ok(reg)
    }

    fn add_toml(&mut self, file: &str, text: &str) -> Result<(), String> {
        let org: Org = toml::from_str(text).map_err(|e| format!("{file}: {e}"))?;
        for (key, template) in &org.memory.templates {
            if !template.contains("{value}") {
                return Err(format!("{file}: memory.templates.{key}: the template must contain {{value}}"));
            }
        }
        self.orgs.insert(org.id.clone(), org);
        Ok(())
    }

    pub fn get(&self, id: &str) -> Option<&Org> {
        let id = OrgId::parse(id).ok()?;
        self.orgs.get(&id)
    }

    pub fn ids(&self) -> impl Iterator<Item = &OrgId> {
        self.orgs.keys()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shipped_registry_knows_rafael_tatts() {
        let reg = OrgRegistry::load(None).expect("shipped orgs load");
        assert_eq!(reg.get("rafael-tatts").map(|o| o.name.as_str()), Some("Rafael Tatts"));
        assert!(reg.get("nobody").is_none());
    }

    #[test]
    fn extra_dir_adds_orgs_and_bad_files_name_themselves() {
        let dir = std::env::temp_dir().join(format!("mentorfy-orgs-{}", uuid::Uuid::new_v4()));
        std::fs::create_dir_all(&dir).ok();
        std::fs::write(dir.join("acme.toml"), "id = \"acme\"\nname = \"Acme\"\n").ok();
        let reg = OrgRegistry::load(Some(&dir)).expect("extra dir loads");
        assert!(reg.get("acme").is_some());
        std::fs::write(dir.join("broken.toml"), "id = \"x\"\nnmae = \"typo\"\n").ok();
        let err = OrgRegistry::load(Some(&dir)).expect_err("typo is rejected");
        assert!(err.contains("broken.toml") && err.contains("nmae"), "{err}");
        std::fs::remove_dir_all(&dir).ok();
    }

    #[test]
    fn memory_templates_load_and_need_a_value_slot() {
        let reg = OrgRegistry::load(None).expect("shipped orgs load");
        let rafael = reg.get("rafael-tatts").expect("rafael-tatts");
        assert!(rafael.memory.templates.get("day_rate").is_some_and(|t| t.contains("{value}")));
        let dir = std::env::temp_dir().join(format!("mentorfy-orgs-{}", uuid::Uuid::new_v4()));
        std::fs::create_dir_all(&dir).ok();
        std::fs::write(
            dir.join("acme.toml"),
            "id = \"acme\"\nname = \"Acme\"\n[memory.templates]\ncity = \"Lives in\"\n",
        )
        .ok();
        let err = OrgRegistry::load(Some(&dir)).expect_err("a template without {value} is rejected");
        assert!(err.contains("acme.toml") && err.contains("memory.templates.city"), "{err}");
        std::fs::remove_dir_all(&dir).ok();
    }
}
