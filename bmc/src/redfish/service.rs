//! What every driver of one Redfish service shares (same origin, credentials, TLS options and
//! driver settings): the transport with its authentication, the service root as read once,
//! and the documents that describe the service rather than a machine's state (manager,
//! ActionInfo). A chassis or enclosure manager serving many systems is then one root read
//! and one session (BMCs allow few: iDRAC answers 503 RAC0218 once they run out), not one per
//! system. The service lives as long as a driver uses it; the last one closes the session.

use std::collections::HashMap;
use std::sync::{Arc, LazyLock, Mutex, Weak};

use serde_json::Value;
use tokio::sync::OnceCell;

use super::model;
use super::transport::{Transport, status_error};
use crate::{BmcError, Credentials, DriverConfig, TlsOptions};

/// What makes two drivers' services the same.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct Key {
    base: String,
    credentials: Credentials,
    tls: TlsOptions,
    config: DriverConfig,
}

type Registry = Mutex<HashMap<Key, Weak<Service>>>;

static SERVICES: LazyLock<Registry> = LazyLock::new(Default::default);

/// What the service root says.
#[derive(Debug)]
pub(crate) struct Root {
    /// The Systems collection.
    pub systems: String,
    /// The query reading a collection with its members in one request, when the service
    /// advertises `ProtocolFeaturesSupported.ExpandQuery.NoLinks` (DSP0266 `$expand=.`).
    pub expand: Option<&'static str>,
}

/// One Redfish service, shared by its drivers.
#[derive(Debug)]
pub(crate) struct Service {
    /// HTTP and authentication.
    pub transport: Transport,
    root: OnceCell<Root>,
    /// Descriptive documents by `@odata.id` (`None`: the BMC has none there), each read by
    /// one request however many drivers ask at once.
    described: Mutex<HashMap<String, Arc<OnceCell<Option<Value>>>>>,
}

impl Service {
    /// The service at `base` for these credentials and options: the one already in use by
    /// another driver, or a new one. No network I/O.
    pub fn shared(
        base: &str,
        credentials: Credentials,
        tls: &TlsOptions,
        config: DriverConfig,
    ) -> Result<Arc<Self>, BmcError> {
        let key = Key {
            base: base.to_string(),
            credentials,
            tls: tls.clone(),
            config,
        };
        // A poisoned registry only means another thread panicked while holding it.
        let mut services = SERVICES.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(service) = services.get(&key).and_then(Weak::upgrade) {
            return Ok(service);
        }
        services.retain(|_, s| s.strong_count() > 0);
        let transport = Transport::new(base, key.credentials.clone(), tls, key.config.clone())?;
        let service = Arc::new(Self {
            transport,
            root: OnceCell::new(),
            described: Mutex::default(),
        });
        services.insert(key, Arc::downgrade(&service));
        Ok(service)
    }

    /// The service root, read once: it also chooses the authentication (a session when the
    /// root advertises sessions, else basic).
    pub async fn root(&self) -> Result<&Root, BmcError> {
        self.root.get_or_try_init(|| self.read_root()).await
    }

    async fn read_root(&self) -> Result<Root, BmcError> {
        let t = &self.transport;
        let root_url = t.url("/redfish/v1/")?;
        let mut reply = t.get_anonymous(&root_url).await?;
        if matches!(reply.status.as_u16(), 401 | 403) {
            // Not DSP0266-conformant, but seen in the field: a root behind auth.
            reply = t.get(&root_url).await?;
        }
        if !reply.status.is_success() {
            return Err(status_error("read service root", &reply));
        }
        let root = reply.json()?;
        let sessions = match model::sessions_at(&root) {
            model::SessionsAt::Collection(link) => Some(link),
            // DSP0266's fixed login URI below the SessionService.
            model::SessionsAt::Service(service) => {
                Some(format!("{}/Sessions", service.trim_end_matches('/')))
            }
            model::SessionsAt::Nowhere => None,
        };
        match sessions {
            Some(link) => {
                let sessions = t.url(&link)?;
                tracing::debug!(
                    sessions = sessions.path(),
                    "Redfish sessions advertised, using session auth"
                );
                t.use_sessions(sessions).await;
            }
            None => {
                tracing::debug!("no Redfish SessionService, using basic auth");
                t.use_basic().await;
            }
        }
        Ok(Root {
            systems: model::link(&root, "Systems").unwrap_or_else(|| "/redfish/v1/Systems".into()),
            expand: model::expands_without_links(&root).then_some("$expand=.($levels=1)"),
        })
    }

    /// GET an optional linked resource: `None` on 404 and other 4xx (except
    /// authentication failures), errors for transport problems.
    pub async fn get_optional(&self, odata_id: &str) -> Result<Option<Value>, BmcError> {
        let url = self.transport.url(odata_id)?;
        let reply = self.transport.get(&url).await?;
        if reply.status.is_success() {
            return reply.json().map(Some);
        }
        let err = status_error("read", &reply);
        match err {
            BmcError::AuthenticationFailed(_) => Err(err),
            _ => {
                tracing::debug!(path = url.path(), error = %err, "optional Redfish resource unavailable");
                Ok(None)
            }
        }
    }

    /// [`Self::get_optional`] for a document that describes the service (a manager's firmware,
    /// an action's allowed values): read once per service.
    pub async fn described(&self, odata_id: &str) -> Result<Option<Value>, BmcError> {
        let cell = self
            .described
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .entry(odata_id.to_string())
            .or_default()
            .clone();
        cell.get_or_try_init(|| self.get_optional(odata_id))
            .await
            .cloned()
    }

    /// The MAC addresses of a system's Ethernet interfaces: the collection with its members in
    /// one request where the service expands, else one request per member.
    pub async fn nic_macs(&self, system: &Value) -> Result<Vec<String>, BmcError> {
        let Some(link) = model::link(system, "EthernetInterfaces") else {
            return Ok(Vec::new());
        };
        let expand = self.root().await?.expand;
        let query = expand.map_or_else(|| link.clone(), |q| format!("{link}?{q}"));
        let Some(coll) = self.get_optional(&query).await? else {
            return Ok(Vec::new());
        };
        let mut macs: Vec<String> = Vec::new();
        for member in coll
            .get("Members")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            // An expanded member carries its properties; a plain one only its link.
            let mac = match model::mac(member) {
                Some(mac) => Some(mac),
                None => match member.get("@odata.id").and_then(Value::as_str) {
                    Some(id) => self.get_optional(id).await?.as_ref().and_then(model::mac),
                    None => None,
                },
            };
            if let Some(mac) = mac
                && !macs.contains(&mac)
            {
                macs.push(mac);
            }
        }
        Ok(macs)
    }
}
