//! Identifier newtypes. Parsing happens once at the edge; the domain never re-checks raw strings.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// A Mentor session id: a random UUID v4. Knowing it is the capability to read and write the session,
/// so it must stay unguessable (never v7, never sequential).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct SessionId(Uuid);

impl SessionId {
    pub fn new_random() -> Self {
        Self(Uuid::new_v4())
    }

    pub fn from_uuid(id: Uuid) -> Self {
        Self(id)
    }

    pub fn as_uuid(&self) -> Uuid {
        self.0
    }
}

impl fmt::Display for SessionId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.hyphenated().fmt(f)
    }
}

impl FromStr for SessionId {
    type Err = uuid::Error;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Uuid::parse_str(s).map(Self)
    }
}

/// A job of the durable queue: a UUID v7, so ids sort by creation time.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct JobId(Uuid);

impl JobId {
    pub fn new_v7() -> Self {
        Self(Uuid::now_v7())
    }

    pub fn from_uuid(id: Uuid) -> Self {
        Self(id)
    }

    pub fn as_uuid(&self) -> Uuid {
        self.0
    }
}

impl fmt::Display for JobId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.hyphenated().fmt(f)
    }
}

impl FromStr for JobId {
    type Err = uuid::Error;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Uuid::parse_str(s).map(Self)
    }
}

/// An organisation slug such as `rafael-tatts`: 1 to 64 characters of `a-z`, `0-9` and `-`,
/// not starting or ending with `-`.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(transparent)]
pub struct OrgId(String);

impl OrgId {
    pub fn parse(raw: &str) -> Result<Self, String> {
        let ok_len = (1..=64).contains(&raw.len());
        let ok_chars = raw.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-');
        if !ok_len || !ok_chars || raw.starts_with('-') || raw.ends_with('-') {
            return Err(format!("'{raw}' is not an organisation id (1-64 characters of a-z, 0-9 and '-')"));
        }
        Ok(Self(raw.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for OrgId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl<'de> Deserialize<'de> for OrgId {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let raw = String::deserialize(d)?;
        OrgId::parse(&raw).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn org_id_accepts_slugs_and_rejects_the_rest() {
        assert!(OrgId::parse("rafael-tatts").is_ok());
        assert!(OrgId::parse("a1").is_ok());
        for bad in ["", "-a", "a-", "Rafael", "a b", "a_b", &"x".repeat(65)] {
            assert!(OrgId::parse(bad).is_err(), "{bad:?} should be rejected");
        }
    }

    #[test]
    fn session_ids_are_random_v4() {
        let a = SessionId::new_random();
        let b = SessionId::new_random();
        assert_ne!(a, b);
        assert_eq!(a.as_uuid().get_version_num(), 4);
        assert_eq!(a.to_string().parse::<SessionId>().ok(), Some(a));
    }

    #[test]
    fn job_ids_are_v7_and_round_trip() {
        let a = JobId::new_v7();
        assert_eq!(a.as_uuid().get_version_num(), 7);
        assert_eq!(a.to_string().parse::<JobId>().ok(), Some(a));
    }
}
