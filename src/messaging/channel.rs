//! Channels: creating them (secrets sealed under the tenant key, webhook secrets stored only
//! as hashes), verifying webhook credentials, and the outbound gateway handle for sends.

use std::{
    collections::HashMap,
    sync::Mutex,
    time::{Duration, Instant},
};

use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Serialize};
use serde_json::json;
use url::Url;
use uuid::Uuid;

use crate::{
    config::random_token,
    crypto::Aad,
    db::{
        self,
        audit::Actor,
        channels::{Channel, NewChannel},
    },
    gateway::{self, SendError},
    mcp::guard::{GuardError, Vetted, check_operator_host, pinned},
    messaging::Messaging,
};

/// The secrets of a channel, sealed together.
#[derive(Default, Serialize, Deserialize)]
pub(crate) struct Secrets {
    #[serde(default)]
    pub(crate) api_key: Option<String>,
    #[serde(default)]
    pub(crate) access_token: Option<String>,
    #[serde(default)]
    pub(crate) app_secret: Option<String>,
    /// Evolution: the secret our webhook expects (header or JWT key). Meta: the verify token.
    #[serde(default)]
    pub(crate) webhook_secret: Option<String>,
}

/// Webhook URL → channel, for a moment: every delivery would otherwise spend a lookup and
/// a transaction finding its channel. A deleted channel stops being served at once on this
/// instance (`forget`) and within `ROUTE_TTL` on the others. Only channels that exist are
/// cached, so unknown URLs can't grow it.
#[derive(Default)]
pub(crate) struct RouteCache {
    entries: Mutex<HashMap<Uuid, (Channel, Instant)>>,
}

pub(crate) const ROUTE_TTL: Duration = Duration::from_secs(2);

impl RouteCache {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<Uuid, (Channel, Instant)>> {
        self.entries.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub(crate) fn get(&self, route_id: Uuid) -> Option<Channel> {
        let entries = self.lock();
        let (c, at) = entries.get(&route_id)?;
        (at.elapsed() < ROUTE_TTL).then(|| c.clone())
    }

    pub(crate) fn put(&self, channel: Channel) {
        let mut entries = self.lock();
        entries.retain(|_, (_, at)| at.elapsed() < ROUTE_TTL);
        entries.insert(channel.route_id, (channel, Instant::now()));
    }

    pub(crate) fn forget(&self, channel_id: Uuid) {
        self.lock().retain(|_, (c, _)| c.id != channel_id);
    }
}

fn secrets_aad(channel_id: Uuid) -> Aad<'static> {
    Aad::new("channels", "secrets", channel_id)
}

pub(crate) async fn secrets(state: &Messaging, channel: &Channel) -> anyhow::Result<Secrets> {
    match &channel.secrets_sealed {
        Some(s) => {
            let json = state
                .keys
                .open_tenant(channel.tenant_id, secrets_aad(channel.id), s)
                .await?;
            Ok(serde_json::from_slice(&json)?)
        }
        None => Ok(Secrets::default()),
    }
}

/// The URL a gateway must call for this channel.
pub(crate) fn webhook_url(state: &Messaging, channel: &Channel) -> String {
    let base = state.config.public_url().as_str().trim_end_matches('/');
    format!("{base}/webhooks/{}/{}", channel.kind, channel.route_id)
}

/// The SSRF guard for a tenant-supplied gateway or AI server URL (https in production, http
/// only in development), except that hosts the operator listed in
/// `SIGMAAI_PRIVATE_GATEWAY_HOSTS` may be on its private network (see `check_operator_host`).
pub(crate) async fn vet_gateway(state: &Messaging, raw: &str) -> Result<Vetted, GuardError> {
    match check_operator_host(raw, state.config.private_gateway_hosts()).await {
        Some(checked) => checked,
        None => state.config.guard().check(raw).await,
    }
}

/// The platform connects to them from inside our network, so they pass the same SSRF guard
/// as MCP servers (public addresses only, https on the usual ports; loopback in development),
/// here when saved and again before every connection (`outbound`).
pub(crate) async fn check_gateway_url(state: &Messaging, raw: &str) -> Result<Url, &'static str> {
    match vet_gateway(state, raw).await {
        Ok(v) => Ok(v.url),
        Err(e) => {
            tracing::info!(reason = %e, "gateway URL refused");
            Err(e.message_key())
        }
    }
}

pub(crate) enum NewChannelInput {
    Evolution {
        base_url: Url,
        instance: String,
        api_key: String,
    },
    Meta {
        phone_number_id: String,
        waba_id: String,
        access_token: String,
        app_secret: String,
    },
    Simulator,
}

/// Creates a channel. Returns its id and the webhook secret to show once (Evolution header
/// secret, or Meta verify token; none for the simulator).
pub(crate) async fn create(
    state: &Messaging,
    tenant_id: Uuid,
    actor: &Actor,
    name: &str,
    input: NewChannelInput,
) -> anyhow::Result<(Uuid, Option<String>)> {
    let id = Uuid::now_v7();
    let route_id = Uuid::new_v4();
    let now = state.now();
    let (kind, config, secrets, webhook_secret) = match input {
        NewChannelInput::Evolution {
            base_url,
            instance,
            api_key,
        } => (
            "evolution",
            json!({ "base_url": base_url.as_str().trim_end_matches('/'), "instance": instance }),
            Some(Secrets {
                api_key: Some(api_key),
                ..Default::default()
            }),
            Some(random_token(24)),
        ),
        NewChannelInput::Meta {
            phone_number_id,
            waba_id,
            access_token,
            app_secret,
        } => (
            "meta",
            json!({ "phone_number_id": phone_number_id, "waba_id": waba_id }),
            Some(Secrets {
                access_token: Some(access_token),
                app_secret: Some(app_secret),
                ..Default::default()
            }),
            Some(random_token(24)),
        ),
        NewChannelInput::Simulator => ("simulator", json!({}), None, None),
    };
    let secrets_sealed = match secrets {
        Some(mut s) => Some({
            s.webhook_secret = webhook_secret.clone();
            s
        })
        .map(|s| serde_json::to_vec(&s)),
        None => None,
    };
    let secrets_sealed = match secrets_sealed {
        Some(s) => Some(
            state
                .keys
                .seal_tenant(tenant_id, secrets_aad(id), &s?)
                .await?,
        ),
        None => None,
    };
    let mut tx = db::TenantTx::begin(&state.db, tenant_id, actor.clone(), now).await?;
    db::channels::create(
        &mut tx,
        NewChannel {
            id,
            tenant_id,
            route_id,
            kind,
            name,
            config,
            secrets_sealed,
        },
        now,
    )
    .await?;
    tx.audit("channel.created", &id.to_string(), json!({ "kind": kind }))
        .await?;
    tx.commit().await?;
    Ok((id, webhook_secret))
}

/// The simulator channel of a tenant, created on first use.
pub(crate) async fn simulator(
    state: &Messaging,
    tenant_id: Uuid,
    actor: &Actor,
) -> anyhow::Result<Channel> {
    let mut tx = db::begin_tenant(&state.db, tenant_id).await?;
    if let Some(c) = db::channels::simulator(&mut tx).await? {
        return Ok(c);
    }
    tx.commit().await?;
    let (id, _) = create(
        state,
        tenant_id,
        actor,
        "Simulator",
        NewChannelInput::Simulator,
    )
    .await?;
    let mut tx = db::begin_tenant(&state.db, tenant_id).await?;
    let c = db::channels::get(&mut tx, id)
        .await?
        .ok_or_else(|| anyhow::anyhow!("simulator channel vanished"))?;
    Ok(c)
}

/// Where a channel's outbound messages go.
pub(crate) enum Outbound {
    Evolution(gateway::evolution::EvolutionClient),
    Meta(gateway::meta::MetaClient),
    /// The built-in simulator: the "end user" reads replies in the portal.
    Simulator,
}

impl Outbound {
    pub(crate) async fn send_text(&self, to: &str, text: &str) -> Result<String, SendError> {
        match self {
            Outbound::Evolution(c) => c.send_text(to, text, None).await,
            Outbound::Meta(c) => c.send_text(to, text, None).await,
            Outbound::Simulator => Ok(format!("sim-{}", Uuid::now_v7().simple())),
        }
    }
}

fn cfg<'a>(channel: &'a Channel, key: &str) -> anyhow::Result<&'a str> {
    channel
        .config
        .get(key)
        .and_then(|v| v.as_str())
        .ok_or_else(|| anyhow::anyhow!("channel config lacks {key}"))
}

pub(crate) async fn outbound(state: &Messaging, channel: &Channel) -> anyhow::Result<Outbound> {
    match channel.kind.as_str() {
        "evolution" => {
            let s = secrets(state, channel).await?;
            // Vetted again now (DNS may have changed since it was saved), then pinned.
            let vetted = vet_gateway(state, cfg(channel, "base_url")?)
                .await
                .map_err(|e| anyhow::anyhow!("the Evolution URL is not allowed: {e}"))?;
            let http = pinned_client(&vetted)?;
            Ok(Outbound::Evolution(
                gateway::evolution::EvolutionClient::with_http(
                    http,
                    vetted.url.as_str(),
                    cfg(channel, "instance")?,
                    SecretString::from(s.api_key.unwrap_or_default()),
                )?,
            ))
        }
        "meta" => {
            let s = secrets(state, channel).await?;
            let graph = channel
                .config
                .get("graph_base_url")
                .and_then(|v| v.as_str())
                .unwrap_or(state.config.meta_graph_url());
            Ok(Outbound::Meta(gateway::meta::MetaClient::new(
                graph,
                cfg(channel, "phone_number_id")?,
                SecretString::from(s.access_token.unwrap_or_default()),
            )?))
        }
        _ => Ok(Outbound::Simulator),
    }
}

/// Gateway HTTP clients by vetted destination (the host and the addresses the guard vetted for
/// it). A send vets the URL again every time (DNS may have changed) and reuses the client — and
/// its kept-alive connection — only while the answer is the same; a new answer gets a new
/// client pinned to it. Building a client (its TLS set-up) and a new connection per send were
/// most of the worker's time between the `sending` commit and the gateway's receipt. Shared by
/// tenants: a client holds no credentials (the API key is a header of each request).
static CLIENTS: std::sync::LazyLock<Mutex<HashMap<Destination, reqwest::Client>>> =
    std::sync::LazyLock::new(Default::default);

/// A vetted host (lower case) and the addresses vetted for it.
type Destination = (String, Vec<std::net::SocketAddr>);

/// More destinations than this and the map starts again (clients are cheap to rebuild).
const MAX_CLIENTS: usize = 1024;

fn pinned_client(v: &Vetted) -> anyhow::Result<reqwest::Client> {
    let key = (v.host.to_ascii_lowercase(), v.addrs.clone());
    let mut clients = CLIENTS
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    if let Some(c) = clients.get(&key) {
        return Ok(c.clone());
    }
    let c = gateway::http_client_from(pinned(v), gateway::Timeouts::default())?;
    if clients.len() >= MAX_CLIENTS {
        clients.clear();
    }
    clients.insert(key, c.clone());
    Ok(c)
}

/// The Meta app secret, for verifying X-Hub-Signature-256.
pub(crate) async fn meta_app_secret(
    state: &Messaging,
    channel: &Channel,
) -> anyhow::Result<SecretString> {
    let s = secrets(state, channel).await?;
    Ok(SecretString::from(s.app_secret.unwrap_or_default()))
}

pub(crate) fn expose(s: &SecretString) -> &str {
    s.expose_secret()
}
