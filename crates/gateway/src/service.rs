//! The gateway's shared state: the store, the upstream client, the checked
//! settings and the clock, with the lookups every surface needs (a channel and
//! its key, what a channel may see). The HTTP handlers, the job runner and the
//! admin commands all work through one [`Service`].

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use jianlian_alipay::{Clock, PublicKey};
use jianlian_core::channel::{Channel, ChannelStatus, ChannelTree};
use jianlian_core::ids::{AppId, Smid};
use jianlian_core::merchant::{Merchant, OnboardingState};
use jianlian_store::{Store, StoreError};
use jiff::Timestamp;

use crate::config::Settings;
use crate::upstream::{Upstream, UpstreamBuildError};

/// Most entries of each cache (parsed channel keys, routed merchants); a
/// full cache is emptied.
const CACHE_MAX: usize = 10_000;

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
    /// Onboarded merchants by smid, for the trade methods' first check: an
    /// onboarded merchant keeps its state, smid and channel for good, so an
    /// entry does not go stale. The store checks routing again where it
    /// writes the intent, and a refusal there evicts the entry all the same.
    routed: Mutex<HashMap<Smid, Merchant>>,
    /// Active channels by `app_id`, as last read. Only the methods that
    /// start a trade use an entry: their intent is written only while the
    /// channel is still as remembered (the store checks status, key and
    /// notify hosts in the same statement), and a request that fails
    /// authentication with a remembered key is tried again with a fresh read.
    channels: Mutex<HashMap<String, Channel>>,
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
            routed: Mutex::new(HashMap::new()),
            channels: Mutex::new(HashMap::new()),
        }))
    }

    pub fn now(&self) -> Timestamp {
        self.clock.now()
    }

    /// The channel's parsed public key (parsed once per key text, so a rotated
    /// key takes effect on the next request).
    pub fn channel_key(&self, channel: &Channel) -> Option<PublicKey> {
        let mut keys = lock(&self.keys);
        if let Some(key) = keys.get(&channel.public_key) {
            return Some(key.clone());
        }
        let key = PublicKey::from_text(&channel.public_key).ok()?;
        if keys.len() >= CACHE_MAX {
            keys.clear();
        }
        keys.insert(channel.public_key.clone(), key.clone());
        Some(key)
    }

    /// The onboarded merchant an smid names, from memory when it was seen
    /// before (see `routed`).
    pub async fn onboarded_merchant(&self, smid: &Smid) -> Result<Option<Merchant>, StoreError> {
        let cached = lock(&self.routed).get(smid).cloned();
        if let Some(merchant) = cached {
            return Ok(Some(merchant));
        }
        let Some(merchant) = self.store.merchant_by_smid(smid).await? else {
            return Ok(None);
        };
        if merchant.state == OnboardingState::Onboarded {
            let mut routed = lock(&self.routed);
            if routed.len() >= CACHE_MAX {
                routed.clear();
            }
            routed.insert(smid.clone(), merchant.clone());
        }
        Ok(Some(merchant))
    }

    /// Forgets what [`Service::onboarded_merchant`] remembered of `smid`.
    pub fn forget_merchant(&self, smid: &Smid) {
        lock(&self.routed).remove(smid);
    }

    /// An active channel by `app_id`, read from the store (and remembered
    /// for [`Service::remembered_channel`]).
    pub async fn active_channel(&self, app_id: &str) -> Result<Option<Channel>, StoreError> {
        let Ok(parsed) = AppId::parse(app_id) else {
            return Ok(None);
        };
        let channel = self
            .store
            .channel(&parsed)
            .await?
            .filter(|c| c.status == ChannelStatus::Active);
        let mut channels = lock(&self.channels);
        match &channel {
            Some(c) => {
                if channels.len() >= CACHE_MAX {
                    channels.clear();
                }
                channels.insert(app_id.to_owned(), c.clone());
            }
            None => {
                channels.remove(app_id);
            }
        }
        Ok(channel)
    }

    /// The channel as last read by [`Service::active_channel`], if it was
    /// active then; see `channels` for who may rely on it.
    pub fn remembered_channel(&self, app_id: &str) -> Option<Channel> {
        lock(&self.channels).get(app_id).cloned()
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

/// A cache's lock (a panic while holding one leaves a usable map).
fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
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
