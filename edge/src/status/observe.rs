//! Observe: what BIRD says about the sessions of the mapped links, and whether it answers.

use std::collections::BTreeMap;
use std::path::Path;

use routing::{BirdClient, BirdError, SessionStatus};

use crate::map::LinkMapping;

/// What BIRD says about one link.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Observation {
    /// The link is not in the running configuration.
    NotConfigured,
    /// BIRD's socket did not answer.
    BirdUnreachable(String),
    /// One status per family.
    Sessions(Vec<SessionStatus>),
}

/// Polls BIRD for every included link. Returns the observations and whether an expected
/// protocol was missing (BIRD restarted: the configuration must be applied again).
pub async fn poll(
    client: &mut Option<BirdClient>,
    socket: &Path,
    links: &BTreeMap<String, LinkMapping>,
    configured: bool,
) -> (BTreeMap<String, Observation>, bool) {
    let mut out = BTreeMap::new();
    let mut missing = false;
    for (name, m) in links {
        if !m.included || !configured {
            out.insert(name.clone(), Observation::NotConfigured);
            continue;
        }
        let mut sessions = Vec::new();
        let mut failure = None;
        for family in &m.families {
            let protocol = routing::names::protocol(name, *family);
            match session(client, socket, &protocol).await {
                Ok(s) => sessions.push(s),
                Err(BirdError::NoSuchProtocol(_)) => {
                    missing = true;
                    failure = Some(Observation::NotConfigured);
                }
                Err(e) => {
                    *client = None;
                    failure = Some(Observation::BirdUnreachable(e.to_string()));
                }
            }
        }
        out.insert(
            name.clone(),
            failure.unwrap_or(Observation::Sessions(sessions)),
        );
    }
    (out, missing)
}

async fn session(
    client: &mut Option<BirdClient>,
    socket: &Path,
    protocol: &str,
) -> Result<SessionStatus, BirdError> {
    if client.is_none() {
        *client = Some(BirdClient::connect(socket).await?);
    }
    match client {
        Some(c) => c.session_status(protocol).await,
        None => Err(BirdError::Protocol("no client".into())),
    }
}

/// Whether BIRD's control socket answers.
pub async fn bird_alive(client: &mut Option<BirdClient>, socket: &Path) -> Result<(), BirdError> {
    if client.is_none() {
        *client = Some(BirdClient::connect(socket).await?);
    }
    let result = match client {
        Some(c) => c.show_status().await.map(|_| ()),
        None => Ok(()),
    };
    if result.is_err() {
        *client = None;
    }
    result
}
