//! The SMTP client (`lettre`, rustls) and our sender address: the transport the `mail`
//! module's `send_mail` job speaks through. A leaf like `redis` and `storage`, so the shared
//! state can hold it without knowing the outbox.

use std::time::Duration;

use anyhow::Context;
use lettre::{AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor, message::Mailbox};
use secrecy::ExposeSecret;

use crate::config::Config;

/// How long one SMTP conversation may take before the attempt fails (and is retried).
const SMTP_TIMEOUT: Duration = Duration::from_secs(30);

/// The SMTP client and our sender address.
pub(crate) struct Mailer {
    transport: AsyncSmtpTransport<Tokio1Executor>,
    from: Mailbox,
}

impl Mailer {
    /// `None` when e-mail is off (no `SIGMAAI_SMTP_URL`).
    pub(crate) fn from_config(config: &Config) -> anyhow::Result<Option<Mailer>> {
        let Some(url) = &config.smtp_url else {
            return Ok(None);
        };
        let transport = AsyncSmtpTransport::<Tokio1Executor>::from_url(url.expose_secret())
            .map_err(|_| {
                anyhow::anyhow!("SIGMAAI_SMTP_URL is not a valid smtp:// or smtps:// URL")
            })?
            .timeout(Some(SMTP_TIMEOUT))
            .build();
        let from: Mailbox = config
            .mail_from
            .parse()
            .context("SIGMAAI_MAIL_FROM is not a valid address")?;
        Ok(Some(Mailer { transport, from }))
    }

    /// Our sender address (`SIGMAAI_MAIL_FROM`).
    pub(crate) fn from(&self) -> &Mailbox {
        &self.from
    }

    /// Hands one message to the SMTP server.
    pub(crate) async fn send(&self, msg: Message) -> anyhow::Result<()> {
        self.transport
            .send(msg)
            .await
            // The SMTP error text names the server's answer, never the message content.
            .map_err(|e| anyhow::anyhow!("SMTP send failed: {e}"))?;
        Ok(())
    }
}
