//! Typed configuration, read once from the environment at start-up.
//!
//! Every secret is a [`SecretString`] (never printed by `Debug`) and may also be read from a
//! file named by `NAME_FILE`, the way container secrets are mounted. Tests build a [`Config`]
//! in code with [`Config::for_tests`] and never read the process environment.

use std::{collections::HashMap, net::SocketAddr, path::PathBuf, time::Duration};

use secrecy::{ExposeSecret, SecretString};
use url::Url;

/// Whether we run for real users or on a developer machine.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Environment {
    Development,
    Production,
}

#[derive(Clone, Debug)]
pub(crate) struct Config {
    pub(crate) env: Environment,
    /// The URL users reach us at; its scheme decides `Secure` cookies and HSTS.
    pub(crate) public_url: Url,
    pub(crate) bind: SocketAddr,
    /// Owner connection (migrations). The server itself connects as [`Config::app_db_user`].
    pub(crate) database_url: SecretString,
    pub(crate) app_db_user: String,
    pub(crate) app_db_password: SecretString,
    pub(crate) redis_url: Option<SecretString>,
    /// Prefix for every Redis key and pub/sub channel (tests use one per test).
    pub(crate) redis_prefix: String,
    pub(crate) data_dir: PathBuf,
    /// Signs session JWTs and CSRF tokens.
    pub(crate) session_secret: SecretString,
    /// Number of proxy hops in front of us whose `X-Forwarded-For` we believe.
    pub(crate) trusted_proxies: usize,
    pub(crate) log_dir: Option<PathBuf>,
    pub(crate) db_max_connections: u32,
    /// The current master key (base64 or hex, 32 bytes). `None` only in development, where
    /// a key file is generated in the data dir (see [`crate::crypto::master`]).
    pub(crate) master_key: Option<SecretString>,
    /// Earlier master keys that still unwrap tenant keys until `keys rotate --master` has
    /// re-wrapped everything under the current one.
    pub(crate) master_key_previous: Vec<SecretString>,
    /// The key store as its owner (migrations); `None`: `DATABASE_URL` with database `<db>_keys`.
    pub(crate) keystore_url: Option<SecretString>,
    /// The append-only, hash-chained record of destroyed keys (outside both databases).
    pub(crate) deletion_ledger: PathBuf,
    /// How long an unwrapped key may stay cached without being re-read from the key store
    /// (the safety net when Redis invalidation is down).
    pub(crate) key_cache_ttl: Duration,
    /// Stripe: API key, webhook signing secret, API base (tests point it at a local server),
    /// and each plan's price id (plan id → price id). Billing is off without a key.
    pub(crate) stripe_secret_key: Option<SecretString>,
    pub(crate) stripe_webhook_secret: Option<SecretString>,
    pub(crate) stripe_api_url: String,
    pub(crate) stripe_prices: HashMap<String, String>,
    /// How long after a customer's last message the AI drafts (a burst becomes one turn).
    pub(crate) ai_debounce: time::Duration,
    /// Meta's Graph API base (tests point it at a local server).
    pub(crate) meta_graph_url: String,
    /// Platform AI provider keys, used for tenants that bring no key of their own.
    pub(crate) openai_api_key: Option<SecretString>,
    pub(crate) anthropic_api_key: Option<SecretString>,
    pub(crate) gemini_api_key: Option<SecretString>,
    pub(crate) groq_api_key: Option<SecretString>,
    /// Host names (as tenants type them) of gateways or AI servers the operator runs on its
    /// own private network, e.g. `evolution` in a docker network: for these, private LAN
    /// addresses and plain http pass the SSRF guard (metadata and link-local never do).
    pub(crate) private_gateway_hosts: Vec<String>,
    /// Timeouts and the connection cap of the listener (see [`crate::http::server`]).
    pub(crate) limits: ServerLimits,
    /// `smtp://user:pass@host:port` or `smtps://…`; `None`: e-mail off (see [`crate::mail`]).
    pub(crate) smtp_url: Option<SecretString>,
    /// The sender of every e-mail, e.g. `SigmaAI <no-reply@example.com>`.
    pub(crate) mail_from: String,
    /// Where `/metrics` listens (its own port, never the public one); `None`: no listener.
    pub(crate) metrics_bind: Option<SocketAddr>,
    /// `file:///path` or `s3://bucket/prefix`; `None`: `<data dir>/media` (see
    /// [`crate::storage`]).
    pub(crate) object_store_url: Option<String>,
    pub(crate) s3_endpoint: Option<String>,
    pub(crate) s3_region: Option<String>,
    pub(crate) aws_access_key_id: Option<SecretString>,
    pub(crate) aws_secret_access_key: Option<SecretString>,
    /// When webhook deliveries are refused with 503 + `Retry-After` rather than queued.
    pub(crate) ingest: IngestLimits,
    /// How often an idle worker looks for due jobs when nothing woke it (LISTEN/NOTIFY and
    /// the next job's due time wake it otherwise; while its listener is down it polls
    /// every 500 ms).
    pub(crate) worker_poll: Duration,
}

/// How much the group commit may fall behind before webhooks are refused (503 +
/// `Retry-After`, which both gateways retry) instead of queued: past it, waiting clients
/// would only time out, retry and pile up more work (see `messaging::group_commit`).
#[derive(Clone, Debug)]
pub(crate) struct IngestLimits {
    /// Deliveries waiting for a writer at most.
    pub(crate) max_queued: usize,
    /// A new delivery is refused while the oldest waiting one has waited this long (the
    /// writers are stalled: a slow or restarting database).
    pub(crate) max_wait: Duration,
}

impl Default for IngestLimits {
    fn default() -> Self {
        IngestLimits {
            max_queued: 1024,
            max_wait: Duration::from_millis(1000),
        }
    }
}

/// What bounds one client's hold on the server.
#[derive(Clone, Debug)]
pub(crate) struct ServerLimits {
    /// Request headers must arrive within this; also the keep-alive idle timeout.
    pub(crate) header_read_timeout: Duration,
    /// The longest pause while a request body is sent.
    pub(crate) body_read_timeout: Duration,
    /// A whole portal request (live-update streams excepted).
    pub(crate) request_timeout: Duration,
    /// Open connections at once; clamped under the file-descriptor limit at start.
    pub(crate) max_connections: usize,
}

impl Default for ServerLimits {
    fn default() -> Self {
        ServerLimits {
            header_read_timeout: Duration::from_secs(10),
            body_read_timeout: Duration::from_secs(10),
            request_timeout: Duration::from_secs(30),
            max_connections: 4096,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub(crate) enum ConfigError {
    #[error("{name} is not valid: {reason}")]
    Invalid { name: &'static str, reason: String },
    #[error("{name} is required in production")]
    Missing { name: &'static str },
    #[error(
        "SIGMAAI_MASTER_KEY (or SIGMAAI_MASTER_KEY_FILE) is required in production: generate one \
         with `sigmaai keys generate-master-key` and keep it away from the database backups"
    )]
    MissingMasterKey,
    #[error("could not read {name} from file {path}: {source}")]
    File {
        name: String,
        path: String,
        source: std::io::Error,
    },
}

/// Meta's Graph API, the version the gateway client speaks.
pub(crate) const DEFAULT_META_GRAPH_URL: &str = "https://graph.facebook.com/v21.0";

/// Variables we know; anything else starting with `SIGMAAI_` is warned about (typos).
const KNOWN: &[&str] = &[
    "SIGMAAI_ENV",
    "SIGMAAI_PUBLIC_URL",
    "SIGMAAI_BIND",
    "SIGMAAI_APP_DB_USER",
    "SIGMAAI_APP_DB_PASSWORD",
    "SIGMAAI_REDIS_PREFIX",
    "SIGMAAI_DATA_DIR",
    "SIGMAAI_SESSION_SECRET",
    "SIGMAAI_TRUSTED_PROXIES",
    "SIGMAAI_LOG_DIR",
    "SIGMAAI_DB_MAX_CONNECTIONS",
    "SIGMAAI_MASTER_KEY",
    "SIGMAAI_MASTER_KEY_PREVIOUS",
    "SIGMAAI_KEYSTORE_URL",
    "SIGMAAI_DELETION_LEDGER",
    "SIGMAAI_KEY_CACHE_TTL_SECS",
    "SIGMAAI_PG_PORT",
    "SIGMAAI_META_GRAPH_URL",
    "SIGMAAI_AI_DEBOUNCE_MS",
    "SIGMAAI_STRIPE_SECRET_KEY",
    "SIGMAAI_STRIPE_WEBHOOK_SECRET",
    "SIGMAAI_STRIPE_API_URL",
    "SIGMAAI_STRIPE_PRICE_STARTER",
    "SIGMAAI_STRIPE_PRICE_CLINIC",
    "SIGMAAI_STRIPE_PRICE_ENTERPRISE",
    "SIGMAAI_REDIS_PORT",
    "SIGMAAI_OPENAI_API_KEY",
    "SIGMAAI_ANTHROPIC_API_KEY",
    "SIGMAAI_GEMINI_API_KEY",
    "SIGMAAI_GROQ_API_KEY",
    "SIGMAAI_PRIVATE_GATEWAY_HOSTS",
    "SIGMAAI_HEADER_TIMEOUT_SECS",
    "SIGMAAI_BODY_TIMEOUT_SECS",
    "SIGMAAI_REQUEST_TIMEOUT_SECS",
    "SIGMAAI_MAX_CONNECTIONS",
    "SIGMAAI_ALLOW_INSECURE_HTTP",
    "SIGMAAI_SMTP_URL",
    "SIGMAAI_MAIL_FROM",
    "SIGMAAI_METRICS_BIND",
    "SIGMAAI_OBJECT_STORE_URL",
    "SIGMAAI_S3_ENDPOINT",
    "SIGMAAI_S3_REGION",
    "SIGMAAI_INGEST_QUEUE_MAX",
    "SIGMAAI_INGEST_MAX_WAIT_MS",
    "SIGMAAI_WORKER_POLL_MS",
];

impl Config {
    pub(crate) fn from_env() -> Result<Config, ConfigError> {
        let vars: HashMap<String, String> = std::env::vars().collect();
        Self::from_vars(&vars)
    }

    /// Builds the config from a map of variables (the environment, or a test's map).
    pub(crate) fn from_vars(vars: &HashMap<String, String>) -> Result<Config, ConfigError> {
        let get = |name: &str| vars.get(name).filter(|v| !v.is_empty()).cloned();
        let secret = |name: &'static str| -> Result<Option<SecretString>, ConfigError> {
            if let Some(v) = get(name) {
                return Ok(Some(SecretString::from(v)));
            }
            let file_var = format!("{name}_FILE");
            match get(&file_var) {
                Some(path) => std::fs::read_to_string(&path)
                    .map(|s| Some(SecretString::from(s.trim_end().to_owned())))
                    .map_err(|source| ConfigError::File {
                        name: file_var,
                        path,
                        source,
                    }),
                None => Ok(None),
            }
        };

        let env = match get("SIGMAAI_ENV").as_deref() {
            None | Some("development") => Environment::Development,
            Some("production") => Environment::Production,
            Some(other) => {
                return Err(ConfigError::Invalid {
                    name: "SIGMAAI_ENV",
                    reason: format!("expected production or development, got {other:?}"),
                });
            }
        };
        let bind: SocketAddr = get("SIGMAAI_BIND")
            .unwrap_or_else(|| "127.0.0.1:8080".into())
            .parse()
            .map_err(|e| ConfigError::Invalid {
                name: "SIGMAAI_BIND",
                reason: format!("{e}"),
            })?;
        let public_url = match get("SIGMAAI_PUBLIC_URL") {
            Some(u) => Url::parse(&u).map_err(|e| ConfigError::Invalid {
                name: "SIGMAAI_PUBLIC_URL",
                reason: e.to_string(),
            })?,
            None if env == Environment::Production => {
                return Err(ConfigError::Missing {
                    name: "SIGMAAI_PUBLIC_URL",
                });
            }
            None => Url::parse(&format!("http://localhost:{}", bind.port())).map_err(|e| {
                ConfigError::Invalid {
                    name: "SIGMAAI_BIND",
                    reason: e.to_string(),
                }
            })?,
        };
        if env == Environment::Production && public_url.scheme() != "https" {
            // Over http our cookies can't be `Secure`: a session would cross the network in
            // clear. Only an explicit override (TLS ends somewhere we don't see) allows it.
            if get("SIGMAAI_ALLOW_INSECURE_HTTP").as_deref() == Some("yes") {
                tracing::warn!(
                    "SIGMAAI_PUBLIC_URL is not https: cookies are not Secure \
                     (allowed by SIGMAAI_ALLOW_INSECURE_HTTP=yes)"
                );
            } else {
                return Err(ConfigError::Invalid {
                    name: "SIGMAAI_PUBLIC_URL",
                    reason: "must be https:// in production (cookies are Secure only over TLS); \
                             set SIGMAAI_ALLOW_INSECURE_HTTP=yes to run without it"
                        .into(),
                });
            }
        }
        let database_url = secret("DATABASE_URL")?.ok_or(ConfigError::Missing {
            name: "DATABASE_URL",
        })?;
        let app_db_password = match (secret("SIGMAAI_APP_DB_PASSWORD")?, env) {
            (Some(p), _) => p,
            (None, Environment::Development) => SecretString::from("sigmaai_app_dev"),
            (None, Environment::Production) => {
                return Err(ConfigError::Missing {
                    name: "SIGMAAI_APP_DB_PASSWORD",
                });
            }
        };
        let data_dir = PathBuf::from(get("SIGMAAI_DATA_DIR").unwrap_or_else(|| ".data".into()));
        let session_secret = match (secret("SIGMAAI_SESSION_SECRET")?, env) {
            (Some(s), _) if s.expose_secret().len() >= 32 => s,
            (Some(_), _) => {
                return Err(ConfigError::Invalid {
                    name: "SIGMAAI_SESSION_SECRET",
                    reason: "must be at least 32 characters".into(),
                });
            }
            (None, Environment::Production) => {
                return Err(ConfigError::Missing {
                    name: "SIGMAAI_SESSION_SECRET",
                });
            }
            // Development: a random secret per start; sessions simply end on restart.
            (None, Environment::Development) => SecretString::from(random_token(32)),
        };
        let parse_num = |name: &'static str, default: u64| -> Result<u64, ConfigError> {
            match get(name) {
                None => Ok(default),
                Some(v) => v.parse().map_err(|e| ConfigError::Invalid {
                    name,
                    reason: format!("{e}"),
                }),
            }
        };

        let master_key = secret("SIGMAAI_MASTER_KEY")?;
        let master_key_previous: Vec<SecretString> = secret("SIGMAAI_MASTER_KEY_PREVIOUS")?
            .map(|list| {
                list.expose_secret()
                    .split([',', '\n'])
                    .map(str::trim)
                    .filter(|k| !k.is_empty())
                    .map(|k| SecretString::from(k.to_owned()))
                    .collect()
            })
            .unwrap_or_default();
        check_master_keys(env, master_key.as_ref(), &master_key_previous)?;
        let key_cache_ttl = Duration::from_secs(parse_num("SIGMAAI_KEY_CACHE_TTL_SECS", 60)?);
        if key_cache_ttl > Duration::from_secs(600) {
            return Err(ConfigError::Invalid {
                name: "SIGMAAI_KEY_CACHE_TTL_SECS",
                reason: "at most 600: it bounds how long a destroyed key may stay usable".into(),
            });
        }

        let secs = |name: &'static str, default: u64| -> Result<Duration, ConfigError> {
            match parse_num(name, default)? {
                0 => Err(ConfigError::Invalid {
                    name,
                    reason: "must be at least 1 second".into(),
                }),
                n => Ok(Duration::from_secs(n)),
            }
        };
        let defaults = ServerLimits::default();
        let limits = ServerLimits {
            header_read_timeout: secs(
                "SIGMAAI_HEADER_TIMEOUT_SECS",
                defaults.header_read_timeout.as_secs(),
            )?,
            body_read_timeout: secs(
                "SIGMAAI_BODY_TIMEOUT_SECS",
                defaults.body_read_timeout.as_secs(),
            )?,
            request_timeout: secs(
                "SIGMAAI_REQUEST_TIMEOUT_SECS",
                defaults.request_timeout.as_secs(),
            )?,
            max_connections: parse_num("SIGMAAI_MAX_CONNECTIONS", defaults.max_connections as u64)?
                .max(1) as usize,
        };

        let smtp_url = secret("SIGMAAI_SMTP_URL")?;
        if let Some(u) = &smtp_url {
            let ok = Url::parse(u.expose_secret())
                .is_ok_and(|u| matches!(u.scheme(), "smtp" | "smtps") && u.host_str().is_some());
            if !ok {
                // Not echoed: the URL may carry the SMTP password.
                return Err(ConfigError::Invalid {
                    name: "SIGMAAI_SMTP_URL",
                    reason: "expected smtp://[user:pass@]host[:port] or smtps://…".into(),
                });
            }
        }
        let mail_from = match get("SIGMAAI_MAIL_FROM") {
            Some(f) => f,
            None if smtp_url.is_some() && env == Environment::Production => {
                return Err(ConfigError::Missing {
                    name: "SIGMAAI_MAIL_FROM",
                });
            }
            None => format!(
                "SigmaAI <no-reply@{}>",
                public_url.host_str().unwrap_or("localhost")
            ),
        };
        if mail_from.parse::<lettre::message::Mailbox>().is_err() {
            return Err(ConfigError::Invalid {
                name: "SIGMAAI_MAIL_FROM",
                reason: "expected an address such as `SigmaAI <no-reply@example.com>`".into(),
            });
        }

        let metrics_bind = match get("SIGMAAI_METRICS_BIND") {
            None => None,
            Some(v) => Some(v.parse::<SocketAddr>().map_err(|e| ConfigError::Invalid {
                name: "SIGMAAI_METRICS_BIND",
                reason: format!("{e} (expected e.g. 127.0.0.1:9090)"),
            })?),
        };
        let ingest_defaults = IngestLimits::default();
        let ingest = IngestLimits {
            max_queued: parse_num(
                "SIGMAAI_INGEST_QUEUE_MAX",
                ingest_defaults.max_queued as u64,
            )?
            .max(1) as usize,
            max_wait: Duration::from_millis(
                parse_num(
                    "SIGMAAI_INGEST_MAX_WAIT_MS",
                    ingest_defaults.max_wait.as_millis() as u64,
                )?
                .max(1),
            ),
        };

        let object_store_url = get("SIGMAAI_OBJECT_STORE_URL");
        if let Some(u) = &object_store_url {
            let ok = Url::parse(u).is_ok_and(|u| match u.scheme() {
                "file" => u.to_file_path().is_ok(),
                "s3" => u.host_str().is_some_and(|h| !h.is_empty()),
                _ => false,
            });
            if !ok {
                return Err(ConfigError::Invalid {
                    name: "SIGMAAI_OBJECT_STORE_URL",
                    reason: "expected file:///absolute/path or s3://bucket/prefix".into(),
                });
            }
        }

        for key in vars.keys() {
            let base = key.strip_suffix("_FILE").unwrap_or(key);
            if key.starts_with("SIGMAAI_") && !KNOWN.contains(&base) {
                tracing::warn!(variable = %key, "unknown SIGMAAI_ variable ignored");
            }
        }

        Ok(Config {
            env,
            public_url,
            bind,
            database_url,
            app_db_user: get("SIGMAAI_APP_DB_USER").unwrap_or_else(|| "sigmaai_app".into()),
            app_db_password,
            redis_url: secret_opt_url(get("REDIS_URL")),
            redis_prefix: get("SIGMAAI_REDIS_PREFIX").unwrap_or_else(|| "sigmaai:".into()),
            log_dir: get("SIGMAAI_LOG_DIR")
                .map(PathBuf::from)
                .or_else(|| Some(data_dir.join("logs"))),
            deletion_ledger: get("SIGMAAI_DELETION_LEDGER")
                .map(PathBuf::from)
                .unwrap_or_else(|| data_dir.join("deletion-ledger.jsonl")),
            data_dir,
            session_secret,
            trusted_proxies: parse_num("SIGMAAI_TRUSTED_PROXIES", 0)? as usize,
            db_max_connections: parse_num("SIGMAAI_DB_MAX_CONNECTIONS", 20)? as u32,
            master_key,
            master_key_previous,
            keystore_url: secret("SIGMAAI_KEYSTORE_URL")?,
            key_cache_ttl,
            stripe_secret_key: secret("SIGMAAI_STRIPE_SECRET_KEY")?,
            stripe_webhook_secret: secret("SIGMAAI_STRIPE_WEBHOOK_SECRET")?,
            stripe_api_url: get("SIGMAAI_STRIPE_API_URL")
                .unwrap_or_else(|| "https://api.stripe.com".into()),
            stripe_prices: crate::domain::plans::PLANS
                .iter()
                .filter_map(|p| get(p.stripe_price_env).map(|price| (p.id.to_owned(), price)))
                .collect(),
            ai_debounce: time::Duration::milliseconds(
                parse_num("SIGMAAI_AI_DEBOUNCE_MS", 3000)? as i64
            ),
            meta_graph_url: get("SIGMAAI_META_GRAPH_URL")
                .unwrap_or_else(|| DEFAULT_META_GRAPH_URL.into()),
            openai_api_key: secret("SIGMAAI_OPENAI_API_KEY")?,
            anthropic_api_key: secret("SIGMAAI_ANTHROPIC_API_KEY")?,
            gemini_api_key: secret("SIGMAAI_GEMINI_API_KEY")?,
            groq_api_key: secret("SIGMAAI_GROQ_API_KEY")?,
            private_gateway_hosts: get("SIGMAAI_PRIVATE_GATEWAY_HOSTS")
                .map(|v| {
                    v.split(',')
                        .map(|h| h.trim().trim_end_matches('.').to_ascii_lowercase())
                        .filter(|h| !h.is_empty())
                        .collect()
                })
                .unwrap_or_default(),
            limits,
            smtp_url,
            mail_from,
            metrics_bind,
            object_store_url,
            s3_endpoint: get("SIGMAAI_S3_ENDPOINT"),
            s3_region: get("SIGMAAI_S3_REGION"),
            aws_access_key_id: secret("AWS_ACCESS_KEY_ID")?,
            aws_secret_access_key: secret("AWS_SECRET_ACCESS_KEY")?,
            ingest,
            worker_poll: Duration::from_millis(parse_num("SIGMAAI_WORKER_POLL_MS", 5000)?.max(10)),
        })
    }

    /// A development config pointing at the given databases, for tests.
    pub(crate) fn for_tests(
        database_url: &str,
        redis_url: Option<&str>,
        redis_prefix: &str,
    ) -> Config {
        let data_dir = std::env::temp_dir().join("sigmaai-test-data");
        Config {
            env: Environment::Development,
            public_url: Url::parse("http://localhost:8080").expect("static URL"),
            bind: SocketAddr::from(([127, 0, 0, 1], 0)),
            database_url: SecretString::from(database_url.to_owned()),
            app_db_user: "sigmaai_app".into(),
            app_db_password: SecretString::from("sigmaai_app_dev"),
            redis_url: redis_url.map(|u| SecretString::from(u.to_owned())),
            redis_prefix: redis_prefix.to_owned(),
            session_secret: SecretString::from(random_token(32)),
            trusted_proxies: 0,
            log_dir: None,
            db_max_connections: 5,
            master_key: Some(SecretString::from(random_token(32))),
            master_key_previous: Vec::new(),
            keystore_url: None,
            // One ledger per config, so concurrent tests never share a chain.
            deletion_ledger: data_dir.join(format!("ledger-{}.jsonl", uuid::Uuid::new_v4())),
            data_dir,
            key_cache_ttl: Duration::from_secs(60),
            stripe_secret_key: None,
            stripe_webhook_secret: None,
            stripe_api_url: "https://api.stripe.com".into(),
            stripe_prices: HashMap::new(),
            ai_debounce: time::Duration::ZERO,
            meta_graph_url: DEFAULT_META_GRAPH_URL.into(),
            openai_api_key: None,
            anthropic_api_key: None,
            gemini_api_key: None,
            groq_api_key: None,
            private_gateway_hosts: Vec::new(),
            limits: ServerLimits::default(),
            smtp_url: None,
            mail_from: "SigmaAI <no-reply@localhost>".into(),
            metrics_bind: None,
            object_store_url: None,
            s3_endpoint: None,
            s3_region: None,
            aws_access_key_id: None,
            aws_secret_access_key: None,
            ingest: IngestLimits::default(),
            worker_poll: Duration::from_secs(5),
        }
    }

    pub(crate) fn is_production(&self) -> bool {
        self.env == Environment::Production
    }

    /// Whether users reach us over TLS (decides `Secure`, `__Host-` and HSTS).
    pub(crate) fn is_https(&self) -> bool {
        self.public_url.scheme() == "https"
    }

    /// The connection URL for the non-owner application role, derived from `DATABASE_URL`.
    pub(crate) fn app_database_url(&self) -> Result<SecretString, ConfigError> {
        let mut url =
            Url::parse(self.database_url.expose_secret()).map_err(|e| ConfigError::Invalid {
                name: "DATABASE_URL",
                reason: e.to_string(),
            })?;
        let bad = |_| ConfigError::Invalid {
            name: "DATABASE_URL",
            reason: "cannot carry a user name".into(),
        };
        url.set_username(&self.app_db_user).map_err(bad)?;
        url.set_password(Some(self.app_db_password.expose_secret()))
            .map_err(bad)?;
        Ok(SecretString::from(url.to_string()))
    }

    /// The key store as its owner: `SIGMAAI_KEYSTORE_URL`, else `DATABASE_URL` with the
    /// database `<db>_keys`.
    pub(crate) fn keystore_owner_url(&self) -> Result<SecretString, ConfigError> {
        if let Some(u) = &self.keystore_url {
            return Ok(u.clone());
        }
        let mut url =
            Url::parse(self.database_url.expose_secret()).map_err(|e| ConfigError::Invalid {
                name: "DATABASE_URL",
                reason: e.to_string(),
            })?;
        let db = url.path().trim_start_matches('/').to_owned();
        if db.is_empty() {
            return Err(ConfigError::Invalid {
                name: "DATABASE_URL",
                reason: "names no database".into(),
            });
        }
        url.set_path(&format!("/{db}_keys"));
        Ok(SecretString::from(url.to_string()))
    }

    /// The key store as the application role.
    pub(crate) fn keystore_app_url(&self) -> Result<SecretString, ConfigError> {
        let owner = self.keystore_owner_url()?;
        let mut url = Url::parse(owner.expose_secret()).map_err(|e| ConfigError::Invalid {
            name: "SIGMAAI_KEYSTORE_URL",
            reason: e.to_string(),
        })?;
        let bad = |_| ConfigError::Invalid {
            name: "SIGMAAI_KEYSTORE_URL",
            reason: "cannot carry a user name".into(),
        };
        url.set_username(&self.app_db_user).map_err(bad)?;
        url.set_password(Some(self.app_db_password.expose_secret()))
            .map_err(bad)?;
        Ok(SecretString::from(url.to_string()))
    }
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub(crate) enum MasterKeyError {
    #[error("must be 32 random bytes, base64- or hex-encoded (`sigmaai keys generate-master-key`)")]
    Malformed,
    #[error(
        "is too weak (too few distinct bytes): generate it with `sigmaai keys generate-master-key`"
    )]
    Weak,
}

/// The 32 bytes of a master key written as text (base64 or hex). Random 32-byte keys have
/// ~30 distinct byte values; fewer than 16 means a hand-made key ("0000…", a repeated word),
/// which we refuse. Lives here, not in `crypto`, so reading the configuration needs no
/// cryptography (`crypto::master::parse_master_key` turns the bytes into a key).
pub(crate) fn master_key_bytes(text: &str) -> Result<zeroize::Zeroizing<[u8; 32]>, MasterKeyError> {
    let bytes = decode_master_key(text)?;
    let mut seen = [false; 256];
    for b in bytes.iter() {
        seen[*b as usize] = true;
    }
    if seen.iter().filter(|s| **s).count() < 16 {
        return Err(MasterKeyError::Weak);
    }
    Ok(bytes)
}

/// The 32 bytes of a master key written as text, weak or not.
pub(crate) fn decode_master_key(
    text: &str,
) -> Result<zeroize::Zeroizing<[u8; 32]>, MasterKeyError> {
    let decoded =
        zeroize::Zeroizing::new(decode_key(text.trim()).ok_or(MasterKeyError::Malformed)?);
    let mut bytes = zeroize::Zeroizing::new([0u8; 32]);
    if decoded.len() != bytes.len() {
        return Err(MasterKeyError::Malformed);
    }
    bytes.copy_from_slice(&decoded);
    Ok(bytes)
}

fn decode_key(text: &str) -> Option<Vec<u8>> {
    use base64::{
        Engine,
        engine::general_purpose::{STANDARD, STANDARD_NO_PAD, URL_SAFE, URL_SAFE_NO_PAD},
    };
    if text.len() == 64 && text.bytes().all(|b| b.is_ascii_hexdigit()) {
        return hex::decode(text).ok();
    }
    [STANDARD, STANDARD_NO_PAD, URL_SAFE, URL_SAFE_NO_PAD]
        .iter()
        .find_map(|e| e.decode(text).ok())
}

/// Production refuses to start without a strong master key; development generates one.
fn check_master_keys(
    env: Environment,
    current: Option<&SecretString>,
    previous: &[SecretString],
) -> Result<(), ConfigError> {
    let check = |name: &'static str, key: &SecretString| match master_key_bytes(key.expose_secret())
    {
        Ok(_) => Ok(()),
        Err(MasterKeyError::Weak) if env == Environment::Development => {
            tracing::warn!(
                variable = name,
                "weak master key accepted in development only"
            );
            Ok(())
        }
        Err(e) => Err(ConfigError::Invalid {
            name,
            reason: e.to_string(),
        }),
    };
    match current {
        Some(key) => check("SIGMAAI_MASTER_KEY", key)?,
        None if env == Environment::Production => return Err(ConfigError::MissingMasterKey),
        None => {}
    }
    for key in previous {
        check("SIGMAAI_MASTER_KEY_PREVIOUS", key)?;
    }
    Ok(())
}

fn secret_opt_url(v: Option<String>) -> Option<SecretString> {
    v.map(SecretString::from)
}

/// A URL-safe random token of `bytes` random bytes.
pub(crate) fn random_token(bytes: usize) -> String {
    use base64::Engine;
    use rand::RngCore;
    let mut buf = vec![0u8; bytes];
    rand::rngs::OsRng.fill_bytes(&mut buf);
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(buf)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vars(pairs: &[(&str, &str)]) -> HashMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn development_defaults_work_with_only_a_database() {
        let c = Config::from_vars(&vars(&[("DATABASE_URL", "postgres://u:p@h/db")])).unwrap();
        assert_eq!(c.env, Environment::Development);
        assert_eq!(c.bind.port(), 8080);
        assert!(!c.is_https());
        assert!(c.redis_url.is_none());
    }

    #[test]
    fn production_requires_secrets_and_public_url() {
        let err = Config::from_vars(&vars(&[
            ("DATABASE_URL", "postgres://u:p@h/db"),
            ("SIGMAAI_ENV", "production"),
        ]))
        .unwrap_err();
        assert!(err.to_string().contains("SIGMAAI_PUBLIC_URL"), "{err}");
        let err = Config::from_vars(&vars(&[
            ("DATABASE_URL", "postgres://u:p@h/db"),
            ("SIGMAAI_ENV", "production"),
            ("SIGMAAI_PUBLIC_URL", "https://app.example.com"),
            ("SIGMAAI_APP_DB_PASSWORD", "x"),
        ]))
        .unwrap_err();
        assert!(err.to_string().contains("SIGMAAI_SESSION_SECRET"), "{err}");
    }

    #[test]
    fn production_refuses_a_plain_http_public_url_unless_overridden() {
        let base = [
            ("DATABASE_URL", "postgres://u:p@h/db"),
            ("SIGMAAI_ENV", "production"),
            ("SIGMAAI_PUBLIC_URL", "http://app.example.com"),
            ("SIGMAAI_APP_DB_PASSWORD", "x"),
            (
                "SIGMAAI_SESSION_SECRET",
                "a-session-secret-of-at-least-32-characters",
            ),
            (
                "SIGMAAI_MASTER_KEY",
                "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=",
            ),
        ];
        let err = Config::from_vars(&vars(&base)).unwrap_err();
        assert!(err.to_string().contains("must be https://"), "{err}");
        let mut overridden = base.to_vec();
        overridden.push(("SIGMAAI_ALLOW_INSECURE_HTTP", "yes"));
        let c = Config::from_vars(&vars(&overridden)).unwrap();
        assert!(!c.is_https());
        // Over https, no override is needed; development never needs one.
        let mut https = base.to_vec();
        https[2] = ("SIGMAAI_PUBLIC_URL", "https://app.example.com");
        assert!(Config::from_vars(&vars(&https)).unwrap().is_https());
    }

    #[test]
    fn secrets_are_read_from_file_and_never_printed() {
        let dir = std::env::temp_dir().join(format!("sigmaai-cfg-{}", uuid::Uuid::new_v4()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("secret");
        std::fs::write(&file, "s3cr3t-session-key-that-is-long-enough-xx\n").unwrap();
        let c = Config::from_vars(&vars(&[
            ("DATABASE_URL", "postgres://owner:hunter2@h/db"),
            ("SIGMAAI_SESSION_SECRET_FILE", file.to_str().unwrap()),
        ]))
        .unwrap();
        assert_eq!(
            c.session_secret.expose_secret(),
            "s3cr3t-session-key-that-is-long-enough-xx"
        );
        let printed = format!("{c:?}");
        assert!(!printed.contains("s3cr3t"), "{printed}");
        assert!(!printed.contains("hunter2"), "{printed}");
    }

    #[test]
    fn private_gateway_hosts_are_a_normalised_list() {
        let c = Config::from_vars(&vars(&[("DATABASE_URL", "postgres://u:p@h/db")])).unwrap();
        assert!(c.private_gateway_hosts.is_empty());
        let c = Config::from_vars(&vars(&[
            ("DATABASE_URL", "postgres://u:p@h/db"),
            (
                "SIGMAAI_PRIVATE_GATEWAY_HOSTS",
                " Evolution , ollama.internal.,,10.0.0.5",
            ),
        ]))
        .unwrap();
        assert_eq!(
            c.private_gateway_hosts,
            ["evolution", "ollama.internal", "10.0.0.5"]
        );
    }

    #[test]
    fn platform_ai_keys_are_optional_secrets_also_read_from_files() {
        let c = Config::from_vars(&vars(&[("DATABASE_URL", "postgres://u:p@h/db")])).unwrap();
        assert!(c.openai_api_key.is_none() && c.anthropic_api_key.is_none());
        assert!(c.gemini_api_key.is_none() && c.groq_api_key.is_none());

        let dir = std::env::temp_dir().join(format!("sigmaai-cfg-{}", uuid::Uuid::new_v4()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("anthropic");
        std::fs::write(&file, "sk-ant-from-file\n").unwrap();
        let c = Config::from_vars(&vars(&[
            ("DATABASE_URL", "postgres://u:p@h/db"),
            ("SIGMAAI_OPENAI_API_KEY", "sk-openai-secret"),
            ("SIGMAAI_ANTHROPIC_API_KEY_FILE", file.to_str().unwrap()),
            ("SIGMAAI_GEMINI_API_KEY", "AIza-gemini-secret"),
            ("SIGMAAI_GROQ_API_KEY", "gsk_groq-secret"),
        ]))
        .unwrap();
        assert_eq!(
            c.openai_api_key.as_ref().unwrap().expose_secret(),
            "sk-openai-secret"
        );
        assert_eq!(
            c.anthropic_api_key.as_ref().unwrap().expose_secret(),
            "sk-ant-from-file"
        );
        assert_eq!(
            c.gemini_api_key.as_ref().unwrap().expose_secret(),
            "AIza-gemini-secret"
        );
        assert_eq!(
            c.groq_api_key.as_ref().unwrap().expose_secret(),
            "gsk_groq-secret"
        );
        let printed = format!("{c:?}");
        for secret in ["sk-openai", "sk-ant", "AIza", "gsk_"] {
            assert!(!printed.contains(secret), "{printed}");
        }
        assert!(KNOWN.contains(&"SIGMAAI_GROQ_API_KEY"));
    }

    #[test]
    fn app_url_swaps_in_the_app_role() {
        let c = Config::from_vars(&vars(&[(
            "DATABASE_URL",
            "postgres://postgres:pw@127.0.0.1:5433/sigmaai",
        )]))
        .unwrap();
        assert_eq!(
            c.app_database_url().unwrap().expose_secret(),
            "postgres://sigmaai_app:sigmaai_app_dev@127.0.0.1:5433/sigmaai"
        );
    }

    #[test]
    fn production_refuses_a_missing_or_weak_master_key() {
        let base = [
            ("DATABASE_URL", "postgres://u:p@h/db"),
            ("SIGMAAI_ENV", "production"),
            ("SIGMAAI_PUBLIC_URL", "https://app.example.com"),
            ("SIGMAAI_APP_DB_PASSWORD", "x"),
            (
                "SIGMAAI_SESSION_SECRET",
                "0123456789abcdef0123456789abcdef-long",
            ),
        ];
        let err = Config::from_vars(&vars(&base)).unwrap_err();
        assert!(matches!(err, ConfigError::MissingMasterKey), "{err}");
        assert!(err.to_string().contains("SIGMAAI_MASTER_KEY"), "{err}");
        let with = |key: &str| {
            let mut v = base.to_vec();
            v.push(("SIGMAAI_MASTER_KEY", key));
            Config::from_vars(&vars(&v))
        };
        let weak = "00".repeat(32);
        let err = with(&weak).unwrap_err();
        assert!(err.to_string().contains("too weak"), "{err}");
        let err = with("correct horse battery staple").unwrap_err();
        assert!(err.to_string().contains("32 random bytes"), "{err}");
        let good = crate::crypto::master::generate_master_key();
        let c = with(&good).unwrap();
        assert_eq!(c.master_key.unwrap().expose_secret(), good);
        // Development: a weak key is only warned about; no key at all is fine (generated).
        let dev = Config::from_vars(&vars(&[
            ("DATABASE_URL", "postgres://u:p@h/db"),
            ("SIGMAAI_MASTER_KEY", weak.as_str()),
        ]));
        assert!(dev.is_ok());
    }

    #[test]
    fn previous_master_keys_keystore_and_ledger_paths() {
        let (a, b) = (
            crate::crypto::master::generate_master_key(),
            crate::crypto::master::generate_master_key(),
        );
        let list = format!("{a}, {b}");
        let c = Config::from_vars(&vars(&[
            (
                "DATABASE_URL",
                "postgres://owner:pw@db.internal:5432/sigmaai",
            ),
            ("SIGMAAI_MASTER_KEY_PREVIOUS", list.as_str()),
            ("SIGMAAI_DATA_DIR", "/var/lib/sigmaai"),
        ]))
        .unwrap();
        assert_eq!(c.master_key_previous.len(), 2);
        assert_eq!(c.master_key_previous[1].expose_secret(), b);
        assert_eq!(
            c.keystore_owner_url().unwrap().expose_secret(),
            "postgres://owner:pw@db.internal:5432/sigmaai_keys"
        );
        assert_eq!(
            c.keystore_app_url().unwrap().expose_secret(),
            "postgres://sigmaai_app:sigmaai_app_dev@db.internal:5432/sigmaai_keys"
        );
        assert_eq!(
            c.deletion_ledger,
            PathBuf::from("/var/lib/sigmaai/deletion-ledger.jsonl")
        );
        let printed = format!("{c:?}");
        assert!(!printed.contains(&a) && !printed.contains(&b), "{printed}");
        let c = Config::from_vars(&vars(&[
            ("DATABASE_URL", "postgres://owner:pw@h/sigmaai"),
            (
                "SIGMAAI_KEYSTORE_URL",
                "postgres://k:kpw@keys.internal/vault",
            ),
            ("SIGMAAI_DELETION_LEDGER", "/mnt/ledger/deletions.jsonl"),
        ]))
        .unwrap();
        assert_eq!(
            c.keystore_app_url().unwrap().expose_secret(),
            "postgres://sigmaai_app:sigmaai_app_dev@keys.internal/vault"
        );
        assert_eq!(
            c.deletion_ledger,
            PathBuf::from("/mnt/ledger/deletions.jsonl")
        );
        let err = Config::from_vars(&vars(&[
            ("DATABASE_URL", "postgres://owner:pw@h/sigmaai"),
            ("SIGMAAI_MASTER_KEY_PREVIOUS", "nope"),
        ]))
        .unwrap_err();
        assert!(
            err.to_string().contains("SIGMAAI_MASTER_KEY_PREVIOUS"),
            "{err}"
        );
    }

    #[test]
    fn bad_values_are_named() {
        let err = Config::from_vars(&vars(&[
            ("DATABASE_URL", "postgres://u:p@h/db"),
            ("SIGMAAI_BIND", "nope"),
        ]))
        .unwrap_err();
        assert!(err.to_string().contains("SIGMAAI_BIND"));
    }
}
