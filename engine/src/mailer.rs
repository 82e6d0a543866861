//! The one mailer, built once from the settings: SMTP in production, `.eml` files in the outbox by
//! default, in memory for unit tests.

use std::time::Duration;

use anyhow::Context;
use entities::settings::{MailTransport, Settings, SmtpSecurity};
use lettre::transport::smtp::PoolConfig;
use lettre::transport::smtp::authentication::Credentials;
use lettre::transport::stub::AsyncStubTransport;
use lettre::{AsyncFileTransport, AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};
use secrecy::ExposeSecret;

/// Why an email did not leave.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MailError {
    /// Worth trying again (server down, 4xx, timeout, disk busy).
    #[error("the email could not be handed over for now: {0}")]
    Transient(String),
    /// Trying again will not help (5xx: unknown mailbox, refused sender).
    #[error("the mail server refused the email for good: {0}")]
    Permanent(String),
}

/// Where emails go.
#[derive(Clone)]
pub enum Mailer {
    /// An SMTP server, over a pool of reused connections.
    Smtp(AsyncSmtpTransport<Tokio1Executor>),
    /// `.eml` files in a folder.
    Outbox(AsyncFileTransport<Tokio1Executor>),
    /// Kept in memory (unit tests).
    Memory(AsyncStubTransport),
}

impl std::fmt::Debug for Mailer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::Smtp(_) => "Mailer::Smtp",
            Self::Outbox(_) => "Mailer::Outbox",
            Self::Memory(_) => "Mailer::Memory",
        })
    }
}

impl Mailer {
    /// Builds the mailer the settings name.
    pub fn from_settings(settings: &Settings) -> anyhow::Result<Self> {
        match &settings.mail_transport {
            MailTransport::Outbox(folder) => {
                std::fs::create_dir_all(folder)
                    .with_context(|| format!("Failed to create the outbox folder {}", folder.display()))?;
                Ok(Self::Outbox(AsyncFileTransport::<Tokio1Executor>::new(folder)))
            }
            MailTransport::Smtp { host, port, security, credentials } => {
                let mut builder = match security {
                    SmtpSecurity::None => AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(host.as_str()),
                    SmtpSecurity::StartTls => AsyncSmtpTransport::<Tokio1Executor>::starttls_relay(host)
                        .with_context(|| format!("Failed to set up STARTTLS to {host}"))?,
                    SmtpSecurity::Tls => AsyncSmtpTransport::<Tokio1Executor>::relay(host)
                        .with_context(|| format!("Failed to set up TLS to {host}"))?,
                };
                // One pooled connection per delivery that can run at once.
                let pool = PoolConfig::new().max_size(settings.delivery_concurrency.max(1));
                builder = builder.port(*port).timeout(Some(Duration::from_secs(20))).pool_config(pool);
                if let Some((user, password)) = credentials {
                    builder = builder.credentials(Credentials::new(user.clone(), password.expose_secret().to_owned()));
                }
                Ok(Self::Smtp(builder.build()))
            }
        }
    }

    /// Hands `message` over.
    pub async fn send(&self, message: Message) -> Result<(), MailError> {
        match self {
            Self::Smtp(transport) => transport.send(message).await.map(drop).map_err(|e| {
                if e.is_permanent() { MailError::Permanent(e.to_string()) } else { MailError::Transient(e.to_string()) }
            }),
            Self::Outbox(transport) => {
                transport.send(message).await.map(drop).map_err(|e| MailError::Transient(e.to_string()))
            }
            Self::Memory(transport) => transport.send(message).await.map_err(|e| MailError::Transient(e.to_string())),
        }
    }
}

/// `ana@example.com` as `a***@example.com`, for logs.
pub fn mask(address: &str) -> String {
    match address.split_once('@') {
        Some((local, domain)) => format!("{}***@{domain}", local.chars().next().unwrap_or('*')),
        None => "***".to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use lettre::message::Mailbox;

    #[test]
    fn recipients_are_masked_in_logs() {
        assert_eq!(mask("ana@example.com"), "a***@example.com");
        assert_eq!(mask("nonsense"), "***");
    }

    #[tokio::test]
    async fn the_memory_mailer_keeps_what_it_was_given() {
        let stub = AsyncStubTransport::new_ok();
        let mailer = Mailer::Memory(stub.clone());
        let to: Mailbox = "ana@example.com".parse().unwrap();
        let message = Message::builder().from(to.clone()).to(to).subject("hi").body(String::from("body")).unwrap();
        mailer.send(message).await.unwrap();
        assert_eq!(stub.messages().await.len(), 1);
    }
}
