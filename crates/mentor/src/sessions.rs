//! The sessions service: create, read, update, complete, link, and the abandoned sweep.
//!
//! Returning visitors: the PRD handed an existing session's id to anyone who typed a matching email, which
//! gives a stranger that person's answers and chat. Here an existing session is returned only to a caller
//! holding a verified Clerk identity that owns it (same org); otherwise the caller keeps a fresh session and
//! learns `account_exists` so the frontend can ask them to sign in.

use std::sync::Arc;
use std::time::Duration;

use mentorfy_core::{OrgRegistry, Session, SessionId, SessionStatus};
use mentorfy_jobs::Jobs;
use mentorfy_store::{NewJob, Store};
use serde_json::{Map, Value, json};

use crate::contact::{parse_email, parse_name, parse_phone};
use crate::context::{MAX_CONTEXT_BYTES, merge_context};
use crate::error::MentorError;

/// A field of a partial update: absent (leave alone), `null` (clear) or a value.
#[derive(Clone, Debug, Default, PartialEq)]
pub enum FieldUpdate<T> {
    #[default]
    Keep,
    Clear,
    Set(T),
}

#[derive(Clone, Debug, Default)]
pub struct CreateSession {
    pub org_id: String,
    pub email: Option<String>,
    pub phone: Option<String>,
    pub name: Option<String>,
}

#[derive(Clone, Debug, Default)]
pub struct SessionPatch {
    pub email: FieldUpdate<String>,
    pub phone: FieldUpdate<String>,
    pub name: FieldUpdate<String>,
    pub context: Option<Map<String, Value>>,
}

#[derive(Debug)]
pub struct CreateOutcome {
    pub session: Session,
    /// The caller's verified user already owned this session: it was returned instead of a new one.
    pub returning: bool,
    /// Another session with this email belongs to a signed-in user: sign in to recover it.
    pub account_exists: bool,
}

#[derive(Debug)]
pub struct UpdateOutcome {
    pub session: Session,
    pub account_exists: bool,
}

#[derive(Clone)]
pub struct Sessions {
    store: Store,
    orgs: Arc<OrgRegistry>,
    default_country_code: Option<String>,
    /// Wakes this process's workers after a change enqueued memory jobs (other processes' workers poll).
    jobs: Option<Jobs>,
}

/// Contact fields parsed before any write, so a bad value stores nothing.
struct Contact {
    email: FieldUpdate<String>,
    phone: FieldUpdate<String>,
    name: FieldUpdate<String>,
}

impl Sessions {
    pub fn new(store: Store, orgs: Arc<OrgRegistry>, default_country_code: Option<String>) -> Self {
        Self { store, orgs, default_country_code, jobs: None }
    }

    /// Wakes `jobs`' workers when a change enqueues work.
    pub fn with_jobs(mut self, jobs: Jobs) -> Self {
        self.jobs = Some(jobs);
        self
    }

    /// Runs `change` on the session and, in the same transaction, enqueues the memory jobs for the answers it
    /// changed: a committed answer always has its memory job stored, and a rolled-back one never does.
    async fn modify<F>(&self, id: SessionId, change: F) -> Result<Option<Session>, MentorError>
    where
        F: FnOnce(&mut Session) -> Result<(), MentorError> + Send,
    {
        let outcome = self.store.modify_session_and_enqueue(id, change, answer_memory_jobs).await?;
        Ok(outcome.map(|(session, enqueued)| {
            if !enqueued.is_empty()
                && let Some(jobs) = &self.jobs
            {
                jobs.notify();
            }
            session
        }))
    }

    pub fn orgs(&self) -> &OrgRegistry {
        &self.orgs
    }

    /// Creates a session, or returns the one the verified user (`verified_user`, a Clerk `sub`) already has.
    pub async fn create(
        &self,
        input: CreateSession,
        verified_user: Option<&str>,
    ) -> Result<CreateOutcome, MentorError> {
        let org = self
            .orgs
            .get(&input.org_id)
            .ok_or_else(|| MentorError::UnknownOrg(format!("unknown orgId '{}'", input.org_id)))?
            .id
            .clone();
        let contact = self.parse_contact(
            input.email.map_or(FieldUpdate::Keep, FieldUpdate::Set),
            input.phone.map_or(FieldUpdate::Keep, FieldUpdate::Set),
            input.name.map_or(FieldUpdate::Keep, FieldUpdate::Set),
        )?;
        if let Some(user) = verified_user
            && let Some(existing) = self.store.latest_session_for_user(&org, user).await?
        {
            return Ok(CreateOutcome { session: existing, returning: true, account_exists: false });
        }
        let id = SessionId::new_random();
        let mut session = Session {
            supermemory_container: Session::container_tag(&org, id),
            id,
            org_id: org,
            email: None,
            phone: None,
            name: None,
            clerk_user_id: verified_user.map(str::to_owned),
            context: Value::Object(Map::new()),
            status: SessionStatus::InProgress,
            created_at: time::OffsetDateTime::UNIX_EPOCH,
            updated_at: time::OffsetDateTime::UNIX_EPOCH,
        };
        apply_contact(&mut session, contact);
        let account_exists = self.account_exists(&session).await?;
        let session = self.store.insert_session(&session).await?;
        Ok(CreateOutcome { session, returning: false, account_exists })
    }

    pub async fn get(&self, id: SessionId) -> Result<Session, MentorError> {
        self.store.get_session(id).await?.ok_or_else(|| not_found(id))
    }

    /// Updates contact fields and deep-merges `context`, atomically. Activity brings an abandoned session back.
    pub async fn update(&self, id: SessionId, patch: SessionPatch) -> Result<UpdateOutcome, MentorError> {
        let contact = self.parse_contact(patch.email, patch.phone, patch.name)?;
        let context = patch.context;
        let session = self
            .modify(id, move |s| {
                apply_contact(s, contact);
                if let Some(ctx) = context {
                    merge_into(s, ctx)?;
                }
                if s.status == SessionStatus::Abandoned {
                    s.status = SessionStatus::InProgress;
                }
                Ok::<(), MentorError>(())
            })
            .await?
            .ok_or_else(|| not_found(id))?;
        let account_exists = self.account_exists(&session).await?;
        Ok(UpdateOutcome { session, account_exists })
    }

    /// Marks the session completed (idempotent), merging `context` first if given.
    pub async fn complete(&self, id: SessionId, context: Option<Map<String, Value>>) -> Result<Session, MentorError> {
        self.modify(id, move |s| {
            if let Some(ctx) = context {
                merge_into(s, ctx)?;
            }
            s.status = SessionStatus::Completed;
            Ok::<(), MentorError>(())
        })
        .await?
        .ok_or_else(|| not_found(id))
    }

    /// Links the session to the verified user `token_sub`. `claimed_user` (the body's `clerkUserId`) must be
    /// that same user. Linking again to the same user is a no-op; a session linked to someone else is a conflict.
    pub async fn link(&self, id: SessionId, claimed_user: &str, token_sub: &str) -> Result<Session, MentorError> {
        if claimed_user != token_sub {
            return Err(MentorError::Forbidden("clerkUserId does not match the signed-in user".into()));
        }
        let user = token_sub.to_owned();
        self.store
            .modify_session(id, move |s| {
                match s.clerk_user_id.as_deref() {
                    Some(existing) if existing != user => {
                        return Err(MentorError::Conflict("this session is already linked to another account".into()));
                    }
                    _ => s.clerk_user_id = Some(user),
                }
                if s.status == SessionStatus::Abandoned {
                    s.status = SessionStatus::InProgress;
                }
                Ok(())
            })
            .await?
            .ok_or_else(|| not_found(id))
    }

    /// Marks sessions idle for longer than `idle` as abandoned; returns how many.
    pub async fn sweep_abandoned(&self, idle: Duration) -> Result<u64, MentorError> {
        let idle = time::Duration::try_from(idle).unwrap_or(time::Duration::MAX);
        let cutoff = time::OffsetDateTime::now_utc().checked_sub(idle).unwrap_or(time::OffsetDateTime::UNIX_EPOCH);
        Ok(self.store.mark_abandoned_sessions(cutoff).await?)
    }

    fn parse_contact(
        &self,
        email: FieldUpdate<String>,
        phone: FieldUpdate<String>,
        name: FieldUpdate<String>,
    ) -> Result<Contact, MentorError> {
        let cc = self.default_country_code.as_deref();
        Ok(Contact {
            email: parse_field("email", email, parse_email)?,
            phone: parse_field("phone", phone, |p| parse_phone(p, cc))?,
            name: parse_field("name", name, parse_name)?,
        })
    }

    async fn account_exists(&self, session: &Session) -> Result<bool, MentorError> {
        match (&session.email, &session.clerk_user_id) {
            (Some(email), None) => {
                Ok(self.store.linked_session_with_email_exists(&session.org_id, email, session.id).await?)
            }
            _ => Ok(false),
        }
    }
}

fn parse_field(
    field: &'static str,
    update: FieldUpdate<String>,
    parse: impl Fn(&str) -> Result<String, String>,
) -> Result<FieldUpdate<String>, MentorError> {
    Ok(match update {
        FieldUpdate::Keep => FieldUpdate::Keep,
        FieldUpdate::Clear => FieldUpdate::Clear,
        FieldUpdate::Set(raw) => {
            FieldUpdate::Set(parse(&raw).map_err(|m| MentorError::invalid(field, format!("{field} {m}")))?)
        }
    })
}

fn apply_contact(s: &mut Session, c: Contact) {
    for (slot, update) in [(&mut s.email, c.email), (&mut s.phone, c.phone), (&mut s.name, c.name)] {
        match update {
            FieldUpdate::Keep => {}
            FieldUpdate::Clear => *slot = None,
            FieldUpdate::Set(v) => *slot = Some(v),
        }
    }
}

fn merge_into(s: &mut Session, patch: Map<String, Value>) -> Result<(), MentorError> {
    if !s.context.is_object() {
        s.context = Value::Object(Map::new());
    }
    if let Value::Object(map) = &mut s.context {
        merge_context(map, patch);
    }
    let size = serde_json::to_vec(&s.context).map(|v| v.len()).unwrap_or(usize::MAX);
    if size > MAX_CONTEXT_BYTES {
        return Err(MentorError::invalid(
            "context",
            format!("context would be {size} bytes after merging; the limit is {MAX_CONTEXT_BYTES}"),
        ));
    }
    Ok(())
}

/// The job that turns the answers a change touched into memories (none when no answer changed). The job carries
/// paths, not values: it reads the session's current answers when it runs, so jobs may run in any order.
fn answer_memory_jobs(before: &Session, after: &Session) -> Vec<NewJob> {
    let paths = crate::recall::changed_paths(&before.context, &after.context);
    if paths.is_empty() {
        return Vec::new();
    }
    vec![NewJob::new(
        crate::jobs::MEMORY_QUEUE,
        crate::jobs::WRITE_ANSWERS,
        json!({"sessionId": after.id.to_string(), "paths": paths}),
    )]
}

fn not_found(id: SessionId) -> MentorError {
    MentorError::NotFound(format!("no session with id '{id}'"))
}
