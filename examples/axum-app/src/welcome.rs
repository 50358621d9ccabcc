//! The app's one job type: the welcome mail, typed end to end. Its arguments name the
//! job type once (`Welcome::KIND`); the worker reaches the app's mailer through the
//! registry's state.

use bildad_core::{JobArgs, JobDefaults, JobError, JobRegistry, RunInfo, State};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use std::sync::{Arc, Mutex};

/// The arguments of the welcome mail; its template's schema is derived from this type.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Welcome {
    /// Where to send the mail.
    #[schemars(length(min = 3, max = 254), regex(pattern = r"^[^@\s]+@[^@\s]+$"))]
    pub email: String,
}

impl JobArgs for Welcome {
    const KIND: &'static str = "mail.welcome";

    fn defaults() -> JobDefaults {
        JobDefaults {
            name: Some("Welcome mail"),
            max_retries: Some(5),
            ..JobDefaults::default()
        }
    }
}

/// A mail as the mailer sent it (also the run's output).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Mail {
    /// The recipient.
    pub to: String,
    /// The subject line.
    pub subject: String,
}

/// The app's mailer, shared by its handlers and its jobs. This one logs each mail and
/// keeps it, so the tests can read what was sent.
#[derive(Debug, Clone, Default)]
pub struct Mailer {
    sent: Arc<Mutex<Vec<Mail>>>,
}

impl Mailer {
    /// "Sends" `mail`.
    pub fn send(&self, mail: Mail) {
        tracing::info!(to = %mail.to, subject = %mail.subject, "mail sent");
        self.sent
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .push(mail);
    }

    /// Every mail sent so far, in order.
    pub fn sent(&self) -> Vec<Mail> {
        self.sent
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .clone()
    }
}

/// The welcome worker: decoded arguments, the run's metadata, the app's mailer.
pub async fn send_welcome(
    args: Welcome,
    run: RunInfo,
    State(mailer): State<Mailer>,
) -> Result<Mail, JobError> {
    let mail = Mail {
        to: args.email,
        subject: if run.retry == 0 {
            "Welcome!".into()
        } else {
            "Welcome (sorry for the delay)!".into()
        },
    };
    mailer.send(mail.clone());
    Ok(mail)
}

/// The app's job types, with the state they reach. Starting a node with it creates (or
/// updates) the `mail.welcome` template.
pub fn registry(mailer: Mailer) -> JobRegistry {
    JobRegistry::new()
        .with_state(mailer)
        .with_worker(send_welcome)
}
