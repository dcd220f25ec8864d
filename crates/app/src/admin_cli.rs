//! `mentorfy admin create` and `mentorfy keys create|list|revoke`: local admin accounts and project API keys from
//! the command line. Wiring only: hashing and key handling live in `mentorfy-auth` and `mentorfy-web::admin_auth`,
//! the queries in the store. Never prints a password; prints a full API key once, on stdout's last line.

use std::io::BufRead as _;

use anyhow::{Context, bail};
use clap::{Args, Subcommand};
use mentorfy_core::Config;
use mentorfy_store::{Store, StoreError};
use mentorfy_web::admin_auth::ApiKeyService;

#[derive(Args, Debug)]
pub struct AdminArgs {
    #[command(subcommand)]
    pub command: AdminCommand,
}

#[derive(Subcommand, Debug)]
pub enum AdminCommand {
    /// Create a local admin account. The password is read from stdin (one line, at least 12 characters), so it
    /// works with a pipe: `printf '%s\n' "$PASSWORD" | mentorfy admin create --email a@example.com`.
    Create {
        /// The admin's email (stored lower-cased; it is the login).
        #[arg(long)]
        email: String,
    },
}

#[derive(Args, Debug)]
pub struct KeysArgs {
    #[command(subcommand)]
    pub command: KeysCommand,
}

#[derive(Subcommand, Debug)]
pub enum KeysCommand {
    /// Create a project API key. The full key is printed alone on stdout's last line (once: it cannot be shown
    /// again); its metadata goes to stderr.
    Create {
        /// A label for people, 1 to 100 characters.
        #[arg(long)]
        name: String,
        /// Environment label (a-z, 0-9, -, _); default `production`.
        #[arg(long)]
        environment: Option<String>,
    },
    /// List API keys (metadata only; keys are never shown again).
    List {
        /// Print as one JSON object.
        #[arg(long)]
        json: bool,
    },
    /// Revoke an API key by id: it is refused from the next request on.
    Revoke {
        /// The key's id (UUID), as listed by `mentorfy keys list`.
        id: uuid::Uuid,
    },
}

async fn open_store(config: &Config) -> anyhow::Result<Store> {
    let store = Store::connect(config.database_url.expose(), 2).await.context("DATABASE_URL")?;
    store.migrate().await?;
    Ok(store)
}

pub async fn admin(config: Config, args: AdminArgs) -> anyhow::Result<()> {
    let AdminCommand::Create { email } = args.command;
    let email = email.trim().to_lowercase();
    if email.is_empty() || !email.contains('@') {
        bail!("--email must be an email address");
    }
    let mut line = String::new();
    std::io::stdin().lock().read_line(&mut line).context("cannot read the password from stdin")?;
    let password = line.trim_end_matches(['\n', '\r']);
    if password.is_empty() {
        bail!("no password on stdin: pipe one line, e.g. printf '%s\\n' \"$PASSWORD\" | mentorfy admin create ...");
    }
    mentorfy_auth::password::check_password_policy(password).map_err(|e| anyhow::anyhow!("{e}"))?;
    let password = password.to_owned();
    let hash = tokio::task::spawn_blocking(move || mentorfy_auth::password::hash_password(&password))
        .await?
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    let store = open_store(&config).await?;
    let created = store.create_admin(&email, &hash).await;
    store.close().await;
    match created {
        Ok(admin) => {
            println!("created admin {} ({})", admin.email, admin.id);
            Ok(())
        }
        Err(StoreError::Conflict(_)) => bail!("an admin with email {email} already exists"),
        Err(e) => Err(e.into()),
    }
}

pub async fn keys(config: Config, args: KeysArgs) -> anyhow::Result<()> {
    let store = open_store(&config).await?;
    let service = ApiKeyService::from_config(&config, store.clone()).await.map_err(|e| anyhow::anyhow!("{e}"))?;
    let result = run_keys(&service, args.command).await;
    store.close().await;
    result
}

async fn run_keys(service: &ApiKeyService, command: KeysCommand) -> anyhow::Result<()> {
    match command {
        KeysCommand::Create { name, environment } => {
            let created = service.create(&name, environment.as_deref(), Some("cli")).await?;
            eprintln!(
                "created API key {} (id {}, name {:?}, environment {}). Store it now: it is not shown again.",
                created.row.prefix, created.row.id, created.row.name, created.row.environment
            );
            println!("{}", created.key);
        }
        KeysCommand::List { json } => {
            let rows = service.list().await?;
            let fmt = |t: Option<time::OffsetDateTime>| {
                t.and_then(|t| t.format(&time::format_description::well_known::Rfc3339).ok())
            };
            if json {
                let keys: Vec<_> = rows
                    .iter()
                    .map(|r| {
                        serde_json::json!({
                            "id": r.id, "name": r.name, "environment": r.environment, "prefix": r.prefix,
                            "createdAt": fmt(Some(r.created_at)), "lastUsedAt": fmt(r.last_used_at),
                            "revokedAt": fmt(r.revoked_at),
                        })
                    })
                    .collect();
                println!("{}", serde_json::json!({ "keys": keys }));
            } else if rows.is_empty() {
                println!("no API keys");
            } else {
                for r in rows {
                    let state = if r.revoked_at.is_some() { "revoked" } else { "active" };
                    let used = fmt(r.last_used_at).unwrap_or_else(|| "never used".to_owned());
                    println!("{}  {}  {state}  {}  {:?}  {used}", r.id, r.prefix, r.environment, r.name);
                }
            }
        }
        KeysCommand::Revoke { id } => match service.revoke(id).await? {
            Some(row) => println!("revoked {} ({})", row.prefix, row.id),
            None => bail!("no API key with id {id}"),
        },
    }
    Ok(())
}
