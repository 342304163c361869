//! The gateway's shared state: the store, the upstream client, the checked
//! settings and the clock, with the lookups every surface needs (a channel and
//! its key, what a channel may see). The HTTP handlers, the job runner and the
//! admin commands all work through one [`Service`].

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use jianlian_alipay::{Clock, PublicKey};
use jianlian_core::channel::{Channel, ChannelStatus, ChannelTree};
use jianlian_core::ids::AppId;
use jianlian_core::merchant::Merchant;
use jianlian_store::{Store, StoreError};
use jiff::Timestamp;

use crate::config::Settings;
use crate::upstream::{Upstream, UpstreamBuildError};

/// Most parsed channel keys kept; the cache is emptied when it is full.
const KEY_CACHE_MAX: usize = 10_000;

/// Why the service could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error("database: {0}")]
    Store(#[from] StoreError),
    #[error(transparent)]
    Upstream(#[from] UpstreamBuildError),
    #[error("notification client: {0}")]
    Http(String),
    #[error("cannot listen on {addr}: {reason}")]
    Listen { addr: String, reason: String },
}

/// Everything a request or a job needs. Cheap to share (`Arc`).
#[derive(Debug)]
pub struct Service {
    pub store: Store,
    pub upstream: Upstream,
    pub settings: Settings,
    pub clock: Arc<dyn Clock>,
    /// Delivers notifications to channels (no redirects: a redirect could
    /// lead past the notify-URL policy).
    pub http: reqwest::Client,
    /// Identifies this process when it leases jobs.
    pub worker_id: String,
    keys: Mutex<HashMap<String, PublicKey>>,
}

impl Service {
    /// Connects the store (migrating it) and builds the clients.
    pub async fn start(
        settings: Settings,
        clock: Arc<dyn Clock>,
    ) -> Result<Arc<Service>, StartError> {
        let options = jianlian_store::StoreOptions {
            sqlite_synchronous: settings.sqlite_synchronous,
        };
        let store = Store::connect_with(&settings.database_url, options)
            .await?
            .with_policy(settings.loop_policy);
        Service::with_store(settings, clock, store)
    }

    /// As [`Service::start`], on an open store.
    pub fn with_store(
        settings: Settings,
        clock: Arc<dyn Clock>,
        store: Store,
    ) -> Result<Arc<Service>, StartError> {
        let upstream = Upstream::new(&settings.upstream, clock.clone())?;
        let http = reqwest::Client::builder()
            .connect_timeout(settings.notify_timeout)
            .timeout(settings.notify_timeout)
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .map_err(|e| StartError::Http(e.to_string()))?;
        Ok(Arc::new(Service {
            store: store.with_policy(settings.loop_policy),
            upstream,
            settings,
            clock,
            http,
            worker_id: worker_id(),
            keys: Mutex::new(HashMap::new()),
        }))
    }

    pub fn now(&self) -> Timestamp {
        self.clock.now()
    }

    /// The channel's parsed public key (parsed once per key text, so a rotated
    /// key takes effect on the next request).
    pub fn channel_key(&self, channel: &Channel) -> Option<PublicKey> {
        let mut keys = self
            .keys
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some(key) = keys.get(&channel.public_key) {
            return Some(key.clone());
        }
        let key = PublicKey::from_text(&channel.public_key).ok()?;
        if keys.len() >= KEY_CACHE_MAX {
            keys.clear();
        }
        keys.insert(channel.public_key.clone(), key.clone());
        Some(key)
    }

    /// An active channel by `app_id`.
    pub async fn active_channel(&self, app_id: &str) -> Result<Option<Channel>, StoreError> {
        let Ok(app_id) = AppId::parse(app_id) else {
            return Ok(None);
        };
        Ok(self
            .store
            .channel(&app_id)
            .await?
            .filter(|c| c.status == ChannelStatus::Active))
    }

    /// The visibility rule (R2.2, R3.1): `viewer` sees what `owner` owns when
    /// it is itself or one of its sub-channels.
    pub async fn sees(&self, viewer: &AppId, owner: &AppId) -> Result<bool, StoreError> {
        if viewer == owner {
            return Ok(true);
        }
        let tree: ChannelTree = self.store.channel_tree().await?;
        Ok(tree.sees(viewer, owner))
    }

    /// Whether `viewer` may act for `merchant`.
    pub async fn sees_merchant(
        &self,
        viewer: &AppId,
        merchant: &Merchant,
    ) -> Result<bool, StoreError> {
        self.sees(viewer, &merchant.channel).await
    }
}

/// `host-pid-random`: unique per process, readable in the jobs table.
fn worker_id() -> String {
    let mut bytes = [0_u8; 4];
    let _ = aws_lc_rs::rand::fill(&mut bytes);
    let host = std::env::var("HOSTNAME").unwrap_or_else(|_| "gateway".into());
    format!(
        "{host}-{}-{:08x}",
        std::process::id(),
        u32::from_le_bytes(bytes)
    )
}
