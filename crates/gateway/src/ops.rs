//! Operator actions, shared by the `jianlian` admin commands and the admin
//! API: channels (create, rotate key), merchants onboarded by the bank
//! itself, stores, `source` corrections, dead letters, the ledger check.
//! Actions that only touch the database take a [`Store`]; onboarding calls
//! Alipay and takes a [`Service`].

use jianlian_alipay::api::merchant::MerchantProfile;
use jianlian_alipay::{PublicKey, Rate};
use jianlian_core::channel::{Channel, ChannelStatus};
use jianlian_core::fees::FeePolicy;
use jianlian_core::ids::{AppId, MerchantId, Pid, Smid, StoreCode, TerminalId};
use jianlian_core::merchant::{Merchant, NewMerchant, SourceChange};
use jianlian_core::notify::{OutboxMessage, OutboxStatus};
use jianlian_store::{Store, StoreError};
use jiff::Timestamp;
use serde_json::Value;

use crate::channel_api::merchants::{self, StoreCreate};
use crate::error::Error;
use crate::service::Service;

/// A channel to register.
#[derive(Debug, Clone)]
pub struct NewChannel {
    pub name: String,
    pub pid: Pid,
    /// PEM or bare base64 (SPKI or PKCS#1), as the channel gave it.
    pub public_key: String,
    pub parent: Option<AppId>,
    pub notify_hosts: Vec<String>,
}

/// Tries before giving up on finding a free app_id (each is 10^12 to one).
const APP_ID_TRIES: usize = 8;

/// Registers a channel under a new gateway-issued `app_id` (`2021` + 12
/// random digits, Alipay's shape).
pub async fn create_channel(
    store: &Store,
    new: NewChannel,
    now: Timestamp,
) -> Result<Channel, Error> {
    let name = new.name.trim();
    if name.is_empty() || name.chars().count() > 128 {
        return Err(Error::Invalid("--name must be 1 to 128 characters".into()));
    }
    PublicKey::from_text(&new.public_key)
        .map_err(|e| Error::Invalid(format!("the channel's public key: {e}")))?;
    check_hosts(&new.notify_hosts)?;
    if let Some(parent) = &new.parent {
        let tree = store.channel_tree().await?;
        if !tree.contains(parent) {
            return Err(Error::NotFound(format!(
                "parent channel {parent} does not exist"
            )));
        }
    }
    for _ in 0..APP_ID_TRIES {
        let app_id = AppId::parse(&random_app_id()).map_err(|e| Error::Internal(e.to_string()))?;
        if store.channel(&app_id).await?.is_some() {
            continue;
        }
        let channel = Channel {
            app_id,
            name: name.to_owned(),
            pid: new.pid.clone(),
            parent: new.parent.clone(),
            public_key: new.public_key.trim().to_owned(),
            notify_hosts: new.notify_hosts.clone(),
            status: ChannelStatus::Active,
            created_at: now,
        };
        match store.insert_channel(&channel).await {
            Ok(()) => return Ok(channel),
            Err(StoreError::Duplicate(_)) => continue,
            Err(e) => return Err(e.into()),
        }
    }
    Err(Error::Internal("no free app_id found".into()))
}

fn check_hosts(hosts: &[String]) -> Result<(), Error> {
    if hosts.len() > 64 {
        return Err(Error::Invalid("at most 64 notify hosts".into()));
    }
    for h in hosts {
        let bare = h.strip_prefix("*.").unwrap_or(h);
        let ok = !bare.is_empty()
            && bare.len() <= 253
            && bare
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'.' || b == b':');
        if !ok {
            return Err(Error::Invalid(format!(
                "notify host {h:?} is not a host name, an IP address or *.domain"
            )));
        }
    }
    Ok(())
}

fn random_app_id() -> String {
    let mut bytes = [0_u8; 8];
    let _ = aws_lc_rs::rand::fill(&mut bytes);
    let n = u64::from_le_bytes(bytes) % 1_000_000_000_000;
    format!("2021{n:012}")
}

/// Replaces a channel's public key (takes effect on its next request).
pub async fn rotate_channel_key(
    store: &Store,
    app_id: &AppId,
    public_key: &str,
) -> Result<Channel, Error> {
    PublicKey::from_text(public_key)
        .map_err(|e| Error::Invalid(format!("the channel's public key: {e}")))?;
    store
        .set_channel_public_key(app_id, public_key.trim())
        .await?;
    store
        .channel(app_id)
        .await?
        .ok_or_else(|| Error::NotFound(format!("channel {app_id} does not exist")))
}

/// A merchant the bank (or an operator for a channel) onboards.
#[derive(Debug, Clone)]
pub struct AdminMerchant {
    pub channel: AppId,
    pub profile: MerchantProfile,
    pub fees: Option<FeePolicy>,
}

/// Registers and onboards a merchant (R2.1) outside the channel API.
pub async fn onboard_merchant(svc: &Service, req: AdminMerchant) -> Result<Merchant, Error> {
    let channel = svc
        .store
        .channel(&req.channel)
        .await?
        .ok_or_else(|| Error::NotFound(format!("channel {} does not exist", req.channel)))?;
    let new = NewMerchant::parse(
        channel.app_id.clone(),
        &channel.pid,
        req.profile,
        req.fees.unwrap_or(svc.settings.default_fees),
    )
    .map_err(|e| Error::Invalid(e.to_string()))?;
    let merchant = svc.store.insert_merchant(&new, svc.now()).await?;
    let id = merchant.id;
    if let Err(reply) = merchants::onboard(svc, merchant).await {
        return Err(Error::Upstream(format!(
            "merchant {id} is registered but Alipay refused or did not answer: {} {} {}",
            reply.code, reply.sub_code, reply.sub_msg
        )));
    }
    svc.store
        .merchant(id)
        .await?
        .ok_or_else(|| Error::Internal(format!("merchant {id} vanished")))
}

/// Finds a merchant by smid, or by the gateway's number.
pub async fn find_merchant(store: &Store, key: &str) -> Result<Merchant, Error> {
    if let Ok(id) = MerchantId::parse(key)
        && key.len() < 12
        && let Some(m) = store.merchant(id).await?
    {
        return Ok(m);
    }
    let smid = Smid::parse(key).map_err(|e| Error::Invalid(e.to_string()))?;
    store
        .merchant_by_smid(&smid)
        .await?
        .ok_or_else(|| Error::NotFound(format!("no merchant with smid or number {key}")))
}

/// Registers a store with its terminals (tolerating what exists).
pub async fn create_store(
    store: &Store,
    merchant_key: &str,
    store_id: &str,
    name: &str,
    terminal_ids: &[String],
    now: Timestamp,
) -> Result<(StoreCode, Vec<TerminalId>), Error> {
    let merchant = find_merchant(store, merchant_key).await?;
    let req = StoreCreate {
        sub_merchant_id: merchant
            .smid
            .as_ref()
            .map(ToString::to_string)
            .unwrap_or_default(),
        store_id: store_id.to_owned(),
        name: name.to_owned(),
        terminal_ids: terminal_ids.to_vec(),
    };
    let (code, terminals) = merchants::parse_store(&req).map_err(|e| Error::Invalid(e.sub_msg))?;
    merchants::register_store(store, &merchant, &code, name.trim(), &terminals, now)
        .await
        .map_err(|e| Error::Invalid(e.sub_msg))?;
    Ok((code, terminals))
}

/// Corrects `source` on many merchants (R2.3), audited.
pub async fn set_source(
    store: &Store,
    merchant_keys: &[String],
    to: &Pid,
    actor: &str,
    reason: &str,
    now: Timestamp,
) -> Result<Vec<SourceChange>, Error> {
    if actor.trim().is_empty() || reason.trim().is_empty() {
        return Err(Error::Invalid(
            "--actor and --reason are required for the audit trail".into(),
        ));
    }
    let mut ids = Vec::with_capacity(merchant_keys.len());
    for key in merchant_keys {
        ids.push(find_merchant(store, key).await?.id);
    }
    Ok(store.set_source(&ids, to, actor, reason, now).await?)
}

/// Sets a merchant's fee rates.
pub async fn set_fees(
    store: &Store,
    merchant_key: &str,
    rate: &str,
    credit_rate: Option<&str>,
    now: Timestamp,
) -> Result<Merchant, Error> {
    let merchant = find_merchant(store, merchant_key).await?;
    let parse = |t: &str| Rate::parse(t).map_err(|e| Error::Invalid(e.to_string()));
    let fees = FeePolicy {
        rate: parse(rate)?,
        credit_rate: credit_rate.map(parse).transpose()?,
    };
    store.set_merchant_fees(merchant.id, fees, now).await?;
    store
        .merchant(merchant.id)
        .await?
        .ok_or_else(|| Error::Internal("merchant vanished".into()))
}

/// Dead letters, oldest first.
pub async fn dead_letters(store: &Store, limit: u32) -> Result<Vec<OutboxMessage>, Error> {
    Ok(store.outbox_in_status(OutboxStatus::Dead, limit).await?)
}

/// Puts a dead letter back in the queue with a fresh schedule.
pub async fn replay_dead_letter(store: &Store, id: i64, now: Timestamp) -> Result<(), Error> {
    Ok(store.replay_dead_letter(id, now).await?)
}

/// A channel as JSON (no secrets: the key is the channel's public one).
pub fn channel_json(c: &Channel) -> Value {
    serde_json::json!({
        "app_id": c.app_id.as_str(),
        "name": c.name,
        "pid": c.pid.as_str(),
        "parent": c.parent.as_ref().map(AppId::as_str),
        "notify_hosts": c.notify_hosts,
        "status": c.status.as_str(),
        "created_at": c.created_at.to_string(),
        "public_key": c.public_key,
    })
}

/// A merchant as JSON.
pub fn merchant_json(m: &Merchant) -> Value {
    serde_json::json!({
        "id": m.id.get(),
        "channel": m.channel.as_str(),
        "external_id": m.external_id.as_str(),
        "name": m.profile.name,
        "business_license": m.business_license,
        "source": m.source.as_str(),
        "smid": m.smid.as_ref().map(Smid::as_str),
        "state": m.state.as_str(),
        "rejection": m.rejection,
        "fee_rate": m.fees.rate.to_string(),
        "credit_fee_rate": m.fees.credit_rate.map(|r| r.to_string()),
        "created_at": m.created_at.to_string(),
    })
}

/// An outbox row as JSON.
pub fn outbox_json(m: &OutboxMessage) -> Value {
    serde_json::json!({
        "id": m.id,
        "trade": m.trade.get(),
        "channel": m.channel.as_str(),
        "notify_url": m.notify_url,
        "status": m.status.as_str(),
        "attempts": m.attempts,
        "last_error": m.last_error,
        "created_at": m.created_at.to_string(),
        "fields": m.fields,
    })
}
