//! Operator actions, shared by the `jianlian` admin commands and the admin
//! API: channels (create, rotate key), merchants onboarded by the bank
//! itself, stores, `source` corrections, dead letters, the ledger check.
//! Actions that only touch the database take a [`Store`]; onboarding calls
//! Alipay and takes a [`Service`].

use futures_util::StreamExt as _;
use jianlian_alipay::api::merchant::{IndirectModify, MerchantProfile};
use jianlian_alipay::{Outcome, PublicKey, Rate};
use jianlian_core::channel::{Channel, ChannelStatus};
use jianlian_core::fees::FeePolicy;
use jianlian_core::ids::{AppId, MerchantId, Pid, Smid, StoreCode, TerminalId};
use jianlian_core::merchant::{Merchant, NewMerchant, OnboardingState, SourceChange};
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

/// A store just registered (or completed with the terminals it lacked).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoreCreated {
    pub merchant: Merchant,
    pub store: StoreCode,
    pub name: String,
    /// Every terminal of the store now, the new ones and those it had.
    pub terminals: Vec<TerminalId>,
}

/// Registers a store with its terminals (tolerating what exists).
pub async fn create_store(
    store: &Store,
    merchant_key: &str,
    store_id: &str,
    name: &str,
    terminal_ids: &[String],
    now: Timestamp,
) -> Result<StoreCreated, Error> {
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
    let terminals = store
        .terminals(merchant.id)
        .await?
        .into_iter()
        .filter(|t| t.store == code)
        .map(|t| t.id)
        .collect();
    Ok(StoreCreated {
        merchant,
        store: code,
        name: name.trim().to_owned(),
        terminals,
    })
}

/// A registered store as JSON.
pub fn store_json(s: &StoreCreated) -> Value {
    serde_json::json!({
        "merchant": s.merchant.id.get(),
        "smid": s.merchant.smid.as_ref().map(Smid::as_str),
        "store_id": s.store.as_str(),
        "name": s.name,
        "terminal_ids": s.terminals.iter().map(TerminalId::as_str).collect::<Vec<_>>(),
    })
}

/// Most merchants one `source` correction may name: each is one call to
/// Alipay, and an operator's request should finish in minutes, not hours.
pub const SOURCE_CORRECTION_MAX: usize = 1_000;
/// Modify calls to Alipay in flight at once during a correction.
const SOURCE_CORRECTION_CONCURRENCY: usize = 8;

/// What became of one merchant in a `source` correction.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SourceOutcome {
    /// Alipay accepted the new `source` (or has no record of the merchant
    /// yet), and the change is recorded with its audit entry.
    Changed(SourceChange),
    /// Already on the new `source`: nothing sent, nothing recorded.
    Unchanged,
    /// Not changed: Alipay refused it, or the merchant's onboarding is in
    /// flight. The message says which.
    Refused(String),
    /// Alipay's answer is not known (timeout, 20000): nothing is recorded;
    /// running the same correction again is safe.
    Unknown(String),
}

impl SourceOutcome {
    pub fn as_str(&self) -> &'static str {
        match self {
            SourceOutcome::Changed(_) => "changed",
            SourceOutcome::Unchanged => "unchanged",
            SourceOutcome::Refused(_) => "refused",
            SourceOutcome::Unknown(_) => "unknown",
        }
    }
}

/// One merchant's line of a `source` correction report.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SourceResult {
    /// The merchant as named in the request (smid or number).
    pub key: String,
    pub merchant: MerchantId,
    pub smid: Option<Smid>,
    pub outcome: SourceOutcome,
}

/// Corrects `source` on many merchants (R2.3). Alipay keeps `source` too
/// (it drives rebates), so each onboarded merchant's change is sent with
/// `ant.merchant.expand.indirect.modify` first and recorded, with its audit
/// entry, only when Alipay accepted it: the registry never claims a `source`
/// Alipay does not have. Every name is resolved before anything is sent (a
/// typo changes nothing); after that each merchant succeeds or fails on its
/// own, and the report says which.
pub async fn set_source(
    svc: &Service,
    merchant_keys: &[String],
    to: &Pid,
    actor: &str,
    reason: &str,
) -> Result<Vec<SourceResult>, Error> {
    if actor.trim().is_empty() || reason.trim().is_empty() {
        return Err(Error::Invalid(
            "--actor and --reason are required for the audit trail".into(),
        ));
    }
    if merchant_keys.is_empty() || merchant_keys.len() > SOURCE_CORRECTION_MAX {
        return Err(Error::Invalid(format!(
            "name 1 to {SOURCE_CORRECTION_MAX} merchants per source correction, not {}",
            merchant_keys.len()
        )));
    }
    let mut merchants = Vec::with_capacity(merchant_keys.len());
    for key in merchant_keys {
        merchants.push((key.clone(), find_merchant(&svc.store, key).await?));
    }
    let results = futures_util::stream::iter(merchants)
        .map(|(key, merchant)| async move {
            let outcome = correct_source(svc, &merchant, to, actor, reason).await;
            outcome.map(|outcome| SourceResult {
                key,
                merchant: merchant.id,
                smid: merchant.smid.clone(),
                outcome,
            })
        })
        .buffered(SOURCE_CORRECTION_CONCURRENCY)
        .collect::<Vec<_>>()
        .await;
    results.into_iter().collect()
}

async fn correct_source(
    svc: &Service,
    merchant: &Merchant,
    to: &Pid,
    actor: &str,
    reason: &str,
) -> Result<SourceOutcome, Error> {
    if merchant.source == *to {
        return Ok(SourceOutcome::Unchanged);
    }
    match (merchant.state, &merchant.smid) {
        (OnboardingState::Onboarded, Some(smid)) => {
            let modify = IndirectModify {
                sub_merchant_id: smid.to_string(),
                profile: MerchantProfile {
                    source: Some(to.to_string()),
                    ..MerchantProfile::default()
                },
            };
            match svc.upstream.call(&modify, false).await {
                Outcome::Success(_) | Outcome::InProgress(_) => {}
                Outcome::Failed(f) => {
                    return Ok(SourceOutcome::Refused(format!(
                        "Alipay refused: {} {} {}",
                        f.code.as_str(),
                        f.sub_code.as_deref().unwrap_or_default(),
                        f.sub_msg.as_deref().unwrap_or_default()
                    )));
                }
                Outcome::Unknown(u) => {
                    return Ok(SourceOutcome::Unknown(format!(
                        "Alipay's answer is not known ({u}); nothing was recorded, run the correction again"
                    )));
                }
            }
        }
        // Onboarding was sent and its answer is not known: Alipay may hold
        // the merchant with the old source, and a retried create carrying a
        // new one would be refused as a different merchant.
        (OnboardingState::Submitted, _) => {
            return Ok(SourceOutcome::Refused(
                "its onboarding is in flight; correct the source once it is onboarded".into(),
            ));
        }
        // Alipay has no such merchant (never sent, or refused): the next
        // submission carries the registry's source.
        _ => {}
    }
    let changes = svc
        .store
        .set_source(&[merchant.id], to, actor, reason, svc.now())
        .await?;
    Ok(match changes.into_iter().next() {
        Some(change) => SourceOutcome::Changed(change),
        None => SourceOutcome::Unchanged,
    })
}

/// A `source` correction report as JSON: one line per merchant and the
/// count of each outcome.
pub fn source_report_json(results: &[SourceResult]) -> Value {
    let count = |what: &str| {
        results
            .iter()
            .filter(|r| r.outcome.as_str() == what)
            .count()
    };
    let lines: Vec<Value> = results
        .iter()
        .map(|r| {
            let mut line = serde_json::json!({
                "merchant": r.key,
                "id": r.merchant.get(),
                "smid": r.smid.as_ref().map(Smid::as_str),
                "result": r.outcome.as_str(),
            });
            match &r.outcome {
                SourceOutcome::Changed(c) => {
                    line["from"] = c.from.as_str().into();
                    line["to"] = c.to.as_str().into();
                }
                SourceOutcome::Refused(why) | SourceOutcome::Unknown(why) => {
                    line["error"] = why.clone().into();
                }
                SourceOutcome::Unchanged => {}
            }
            line
        })
        .collect();
    serde_json::json!({
        "results": lines,
        "changed": count("changed"),
        "unchanged": count("unchanged"),
        "refused": count("refused"),
        "unknown": count("unknown"),
    })
}

/// Whether every merchant of a correction now has the new `source`.
pub fn source_correction_complete(results: &[SourceResult]) -> bool {
    results.iter().all(|r| {
        matches!(
            r.outcome,
            SourceOutcome::Changed(_) | SourceOutcome::Unchanged
        )
    })
}

/// Fee rates from their text (`0.0038`): `None` when no rate is given (the
/// configured default applies); a credit rate needs a rate beside it.
pub fn parse_fees(
    rate: Option<&str>,
    credit_rate: Option<&str>,
) -> Result<Option<FeePolicy>, Error> {
    let parse = |what: &str, t: &str| {
        Rate::parse(t.trim()).map_err(|e| Error::Invalid(format!("{what} {t:?}: {e}")))
    };
    match (rate, credit_rate) {
        (None, None) => Ok(None),
        (None, Some(_)) => Err(Error::Invalid(
            "a credit fee rate needs the fee rate beside it".into(),
        )),
        (Some(rate), credit) => Ok(Some(FeePolicy {
            rate: parse("fee rate", rate)?,
            credit_rate: credit.map(|c| parse("credit fee rate", c)).transpose()?,
        })),
    }
}

/// Sets a merchant's fee rates (later payments use them).
pub async fn set_fees(
    store: &Store,
    merchant_key: &str,
    rate: &str,
    credit_rate: Option<&str>,
    now: Timestamp,
) -> Result<Merchant, Error> {
    let merchant = find_merchant(store, merchant_key).await?;
    let fees = parse_fees(Some(rate), credit_rate)?
        .ok_or_else(|| Error::Invalid("a fee rate is required".into()))?;
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

/// What `channel create` answers: the channel's `app_id` and the key it
/// verifies the gateway's answers and notifications with.
pub fn channel_created_json(c: &Channel, gateway_public_key: &str) -> Value {
    serde_json::json!({
        "app_id": c.app_id.as_str(),
        "gateway_public_key": gateway_public_key,
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

/// A merchant with its profile, stores and terminals, and its `source`
/// history (`jianlian merchant show`, `GET /admin/merchants/{merchant}`).
pub async fn merchant_detail_json(store: &Store, key: &str) -> Result<Value, Error> {
    let m = find_merchant(store, key).await?;
    let stores = store.stores(m.id).await?;
    let terminals = store.terminals(m.id).await?;
    let history = store.source_changes(m.id).await?;
    let mut view = merchant_json(&m);
    view["profile"] = serde_json::to_value(&m.profile)
        .map_err(|e| Error::Internal(format!("merchant profile: {e}")))?;
    view["stores"] = stores
        .iter()
        .map(|s| {
            serde_json::json!({
                "store_id": s.code.as_str(),
                "name": s.name,
                "terminal_ids": terminals
                    .iter()
                    .filter(|t| t.store == s.code)
                    .map(|t| t.id.as_str())
                    .collect::<Vec<_>>(),
            })
        })
        .collect();
    view["source_history"] = history
        .iter()
        .map(|c| {
            serde_json::json!({
                "from": c.from.as_str(),
                "to": c.to.as_str(),
                "actor": c.actor,
                "reason": c.reason,
                "at": c.at.to_string(),
            })
        })
        .collect();
    Ok(view)
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
