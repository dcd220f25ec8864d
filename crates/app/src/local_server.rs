//! The app served in-process on a random local port with a temporary API key, for commands that load data over
//! the real HTTP API (`seed-demo`, `bench ingest`). The key is revoked when the server stops.

use std::sync::Arc;

use anyhow::Context;
use mentorfy_core::Config;
use mentorfy_web::AppState;
use tokio::sync::oneshot;
use uuid::Uuid;

pub struct LocalServer {
    pub state: AppState,
    /// `http://127.0.0.1:<port>`.
    pub base: String,
    /// The temporary API key, in clear (only in memory).
    pub key: String,
    pub key_id: Uuid,
    stop: oneshot::Sender<()>,
    server: tokio::task::JoinHandle<std::io::Result<()>>,
}

impl LocalServer {
    /// Prepares the app on `config` (migrations included), serves it on 127.0.0.1:0 and creates an API key named
    /// `key_name`.
    pub async fn start(config: Config, key_name: &str) -> anyhow::Result<Self> {
        let state = mentorfy_web::prepare(Arc::new(config)).await?;
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.context("bind 127.0.0.1:0")?;
        let base = format!("http://{}", listener.local_addr()?);
        let (stop, stop_rx) = oneshot::channel::<()>();
        let server = tokio::spawn(mentorfy_web::serve(listener, state.clone(), async move {
            let _ = stop_rx.await;
        }));
        let created = match state.admin().api_keys.create(key_name, None, Some("cli")).await {
            Ok(c) => c,
            Err(e) => {
                let _ = stop.send(());
                let _ = server.await;
                return Err(anyhow::Error::new(e).context("cannot create a temporary API key"));
            }
        };
        Ok(Self { state, base, key: created.key, key_id: created.row.id, stop, server })
    }

    /// Revokes the temporary key (a failure is logged, not fatal) and stops the server gracefully.
    pub async fn stop(self) -> anyhow::Result<()> {
        if let Err(e) = self.state.admin().api_keys.revoke(self.key_id).await {
            tracing::warn!(error = %e, id = %self.key_id, "could not revoke the temporary API key");
        }
        let _ = self.stop.send(());
        self.server.await.context("server task")?.context("server")?;
        Ok(())
    }
}
