//! Onboarding through the channel API (R2): `ant.merchant.expand.indirect.
//! create/query/modify` with every one of Alipay's fields, and the gateway's
//! own `jianlian.merchant.store.create` for stores and terminals (R3.2).
//!
//! The registry is the gateway's: a merchant is registered (identity checked,
//! R2.2) before Alipay sees it, reported upstream under the gateway's own
//! `external_id` (two channels may reuse one), and `source` defaults to the
//! channel's PID (R2.3). A channel sees only merchants of itself and its
//! sub-channels; another channel's merchant is answered like an unknown one.

use std::sync::Arc;

use jianlian_alipay::Outcome;
use jianlian_alipay::api::merchant::{
    IndirectCreate, IndirectModify, IndirectQuery, MerchantProfile,
};
use jianlian_alipay::api::parse_biz;
use jianlian_alipay::server::ErrorReply;
use jianlian_core::ids::{ExternalId, Smid, StoreCode, TerminalId};
use jianlian_core::merchant::{Merchant, NewMerchant, OnboardingEvent, OnboardingState};
use jianlian_store::StoreError;
use serde::Deserialize;
use serde_json::{Map, Value};

use super::{Answer, Caller, MethodResult, acq, internal};
use crate::service::Service;
use crate::upstream::failure_reason;

fn invalid(detail: impl Into<String>) -> ErrorReply {
    ErrorReply::invalid_parameter(detail)
}

/// The gateway's sub_code for a merchant this channel cannot see.
pub const MERCHANT_NOT_FOUND: &str = "JL.MERCHANT_NOT_FOUND";
/// The gateway's sub_code for a second onboarding of the same merchant (R2.2).
pub const MERCHANT_DUPLICATE: &str = "JL.MERCHANT_DUPLICATE";

fn not_found(what: &str) -> ErrorReply {
    acq(
        MERCHANT_NOT_FOUND,
        format!("no merchant {what} among this channel's merchants"),
    )
}

/// `ant.merchant.expand.indirect.create`.
pub async fn create(svc: &Arc<Service>, caller: &Caller, biz: &str) -> MethodResult {
    let req: IndirectCreate = parse_biz(biz).map_err(invalid)?;
    let profile = req.profile;
    let channel = &caller.channel;
    let existing = match profile.external_id.as_deref().map(ExternalId::parse) {
        Some(Ok(ext)) => svc
            .store
            .merchant_by_external_id(&channel.app_id, &ext)
            .await
            .map_err(|e| internal("merchant lookup", e))?,
        _ => None,
    };
    let merchant = match existing {
        // The same external_id with another identity is another merchant
        // claiming this one's place (R2.2).
        Some(m) if !same_identity(&m, &profile) => {
            return Err(acq(
                MERCHANT_DUPLICATE,
                format!(
                    "this channel already has a merchant with external_id {} and another name or business licence; use ant.merchant.expand.indirect.modify to change it",
                    m.external_id
                ),
            ));
        }
        // A retry of the same onboarding (external_id is the idempotency key).
        Some(m) if m.state == OnboardingState::Onboarded => return Ok(created_answer(&m, None)),
        Some(m) => m,
        None => {
            let new = NewMerchant::parse(
                channel.app_id.clone(),
                &channel.pid,
                profile,
                svc.settings.default_fees,
            )
            .map_err(|e| invalid(e.to_string()))?;
            match svc.store.insert_merchant(&new, svc.now()).await {
                Ok(m) => m,
                Err(StoreError::Duplicate(why)) => return Err(acq(MERCHANT_DUPLICATE, why)),
                Err(e) => return Err(internal("merchant insert", e)),
            }
        }
    };
    onboard(svc, merchant).await
}

/// Whether a repeated create names the registered merchant: same name and
/// same business licence (blank counts as none).
fn same_identity(m: &Merchant, profile: &MerchantProfile) -> bool {
    let norm = |v: Option<&str>| {
        v.map(str::trim)
            .filter(|v| !v.is_empty())
            .map(str::to_owned)
    };
    norm(m.profile.name.as_deref()) == norm(profile.name.as_deref())
        && norm(m.business_license.as_deref()) == norm(profile.business_license.as_deref())
}

/// Sends a registered merchant to Alipay and records the answer. Shared by
/// the channel API and the admin commands.
pub async fn onboard(svc: &Service, merchant: Merchant) -> MethodResult {
    let merchant = svc
        .store
        .apply_onboarding(merchant.id, &OnboardingEvent::Submit, svc.now())
        .await
        .map_err(|e| internal("onboarding", e))?;
    let mut profile = merchant.profile.clone();
    profile.external_id = Some(merchant.upstream_external_id());
    profile.source = Some(merchant.source.to_string());
    let outcome = svc.upstream.call(&IndirectCreate { profile }, false).await;
    match outcome {
        Outcome::Success(r) | Outcome::InProgress(r) => {
            let smid = r
                .body
                .sub_merchant_id
                .as_deref()
                .map(Smid::parse)
                .transpose()
                .map_err(|e| internal("onboarding answer", e))?
                .ok_or_else(|| internal("onboarding answer", "no sub_merchant_id"))?;
            let onboarded = match svc
                .store
                .apply_onboarding(merchant.id, &OnboardingEvent::Onboarded(smid), svc.now())
                .await
            {
                Ok(m) => m,
                Err(StoreError::Duplicate(why)) => return Err(acq(MERCHANT_DUPLICATE, why)),
                Err(e) => return Err(internal("onboarding", e)),
            };
            tracing::info!(merchant = %onboarded.id, channel = %onboarded.channel, "merchant onboarded");
            Ok(created_answer(&onboarded, Some(&r.body)))
        }
        Outcome::Failed(f) => {
            let reason = format!(
                "{} {}",
                f.sub_code.as_deref().unwrap_or(f.code.as_str()),
                f.sub_msg.as_deref().unwrap_or_default()
            );
            if let Err(e) = svc
                .store
                .apply_onboarding(merchant.id, &OnboardingEvent::Rejected(reason), svc.now())
                .await
            {
                tracing::error!(merchant = %merchant.id, error = %e, "recording a rejection failed");
            }
            let r = failure_reason(&f);
            Err(ErrorReply::new(
                f.code,
                r.sub_code.unwrap_or_default(),
                r.sub_msg.unwrap_or_default(),
            ))
        }
        // Still `submitted`: a retry sends the same upstream external_id, which
        // Alipay answers with the same smid.
        Outcome::Unknown(_) => Err(ErrorReply::unknown()),
    }
}

fn created_answer(
    m: &Merchant,
    upstream: Option<&jianlian_alipay::api::merchant::IndirectCreateResponse>,
) -> Answer {
    let mut fields = Map::new();
    if let Some(smid) = &m.smid {
        fields.insert("sub_merchant_id".into(), smid.as_str().into());
    }
    if let Some(u) = upstream {
        if let Some(codes) = &u.service_codes {
            fields.insert("service_codes".into(), codes.clone().into());
        }
        if let Some(reason) = &u.service_fail_reason {
            fields.insert("service_fail_reason".into(), reason.clone().into());
        }
    }
    Answer::success(fields)
}

/// Finds a merchant the caller may see, by smid or by its `external_id`.
async fn visible_merchant(
    svc: &Service,
    caller: &Caller,
    smid: Option<&str>,
    external_id: Option<&str>,
) -> Result<Merchant, ErrorReply> {
    let found = match (
        smid.filter(|s| !s.is_empty()),
        external_id.filter(|s| !s.is_empty()),
    ) {
        (Some(text), _) => match Smid::parse(text) {
            Ok(smid) => svc
                .store
                .merchant_by_smid(&smid)
                .await
                .map_err(|e| internal("merchant lookup", e))?,
            Err(_) => None,
        },
        (None, Some(text)) => match ExternalId::parse(text) {
            Ok(ext) => svc
                .store
                .merchant_by_external_id(&caller.channel.app_id, &ext)
                .await
                .map_err(|e| internal("merchant lookup", e))?,
            Err(_) => None,
        },
        (None, None) => return Err(invalid("sub_merchant_id or external_id is required")),
    };
    let name = smid.or(external_id).unwrap_or_default();
    let merchant = found.ok_or_else(|| not_found(name))?;
    let visible = svc
        .sees_merchant(&caller.channel.app_id, &merchant)
        .await
        .map_err(|e| internal("channel tree", e))?;
    if !visible {
        return Err(not_found(name));
    }
    Ok(merchant)
}

/// `ant.merchant.expand.indirect.query`: the registry's record, with
/// Alipay's `indirect_level` when Alipay answers.
pub async fn query(svc: &Arc<Service>, caller: &Caller, biz: &str) -> MethodResult {
    let req: IndirectQuery = parse_biz(biz).map_err(invalid)?;
    let merchant = visible_merchant(
        svc,
        caller,
        req.sub_merchant_id.as_deref(),
        req.external_id.as_deref(),
    )
    .await?;
    let mut fields = profile_fields(&merchant.profile);
    fields.insert("external_id".into(), merchant.external_id.as_str().into());
    fields.insert("source".into(), merchant.source.as_str().into());
    if let Some(smid) = &merchant.smid {
        fields.insert("sub_merchant_id".into(), smid.as_str().into());
        let q = IndirectQuery {
            sub_merchant_id: Some(smid.to_string()),
            ..IndirectQuery::default()
        };
        if let Outcome::Success(r) = svc.upstream.call(&q, false).await {
            if let Some(level) = r.body.indirect_level {
                fields.insert("indirect_level".into(), level.into());
            }
            if let Some(codes) = r.body.profile.service_codes {
                fields.insert("service_codes".into(), codes.into());
            }
        }
    }
    Ok(Answer::success(fields))
}

fn profile_fields(profile: &MerchantProfile) -> Map<String, Value> {
    match serde_json::to_value(profile) {
        Ok(Value::Object(m)) => m,
        _ => Map::new(),
    }
}

/// `ant.merchant.expand.indirect.modify`: everything the registry checks
/// (`external_id` unchanged, `source` a PID, a new business licence not
/// another merchant's) is checked first; then Alipay, then the registry
/// (with the `source` change audited under the channel's name).
pub async fn modify(svc: &Arc<Service>, caller: &Caller, biz: &str) -> MethodResult {
    let req: IndirectModify = parse_biz(biz).map_err(invalid)?;
    let merchant = visible_merchant(svc, caller, Some(&req.sub_merchant_id), None).await?;
    let mut changes = req.profile.clone();
    if let Some(ext) = changes.external_id.take()
        && ext != merchant.external_id.as_str()
    {
        return Err(invalid(format!(
            "external_id is {} and cannot change",
            merchant.external_id
        )));
    }
    if let Some(source) = changes.source.as_deref()
        && jianlian_core::ids::Pid::parse(source).is_err()
    {
        return Err(invalid(format!(
            "source {source:?} is not a PID (2088 + 12 digits)"
        )));
    }
    // Identity before Alipay (R2.2): a licence that belongs to another
    // merchant is refused here, so Alipay never records a change the
    // registry would then refuse.
    if let Some(licence) = changes
        .business_license
        .as_deref()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        && merchant.business_license.as_deref() != Some(licence)
    {
        let owner = svc
            .store
            .merchant_by_business_license(licence)
            .await
            .map_err(|e| internal("merchant lookup", e))?;
        if owner.is_some_and(|o| o.id != merchant.id) {
            return Err(acq(
                MERCHANT_DUPLICATE,
                format!("a merchant with business licence {licence} is already registered"),
            ));
        }
    }
    let mut upstream_profile = changes.clone();
    upstream_profile.external_id = Some(merchant.upstream_external_id());
    let m = IndirectModify {
        sub_merchant_id: req.sub_merchant_id.clone(),
        profile: upstream_profile,
    };
    match svc.upstream.call(&m, false).await {
        Outcome::Success(r) | Outcome::InProgress(r) => {
            match svc
                .store
                .modify_merchant(
                    merchant.id,
                    &changes,
                    caller.channel.app_id.as_str(),
                    svc.now(),
                )
                .await
            {
                Ok(_) => {}
                Err(StoreError::Duplicate(why)) => return Err(acq(MERCHANT_DUPLICATE, why)),
                Err(StoreError::Invalid(why)) => return Err(invalid(why)),
                Err(e) => return Err(internal("merchant modify", e)),
            }
            let mut fields = Map::new();
            fields.insert("sub_merchant_id".into(), req.sub_merchant_id.clone().into());
            if let Some(codes) = r.body.service_codes {
                fields.insert("service_codes".into(), codes.into());
            }
            Ok(Answer::success(fields))
        }
        Outcome::Failed(f) => Err(ErrorReply::new(
            f.code,
            f.sub_code.unwrap_or_default(),
            f.sub_msg.unwrap_or_default(),
        )),
        Outcome::Unknown(_) => Err(ErrorReply::unknown()),
    }
}

/// biz_content of `jianlian.merchant.store.create`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StoreCreate {
    pub sub_merchant_id: String,
    pub store_id: String,
    pub name: String,
    #[serde(default)]
    pub terminal_ids: Vec<String>,
}

/// Most terminals one request registers.
const TERMINALS_PER_REQUEST_MAX: usize = 1_000;

/// `jianlian.merchant.store.create`: registers a store of the merchant with
/// its terminals; for an existing store, registers the terminals it lacks
/// (so the call is safe to repeat). Answers every terminal of the store.
pub async fn create_store(svc: &Arc<Service>, caller: &Caller, biz: &str) -> MethodResult {
    let req: StoreCreate = parse_biz(biz).map_err(invalid)?;
    let merchant = visible_merchant(svc, caller, Some(&req.sub_merchant_id), None).await?;
    let (code, terminals) = parse_store(&req)?;
    register_store(
        &svc.store,
        &merchant,
        &code,
        req.name.trim(),
        &terminals,
        svc.now(),
    )
    .await?;
    let all = svc
        .store
        .terminals(merchant.id)
        .await
        .map_err(|e| internal("terminal lookup", e))?;
    let mut fields = Map::new();
    fields.insert("sub_merchant_id".into(), req.sub_merchant_id.clone().into());
    fields.insert("store_id".into(), code.as_str().into());
    fields.insert("name".into(), req.name.trim().into());
    fields.insert(
        "terminal_ids".into(),
        all.iter()
            .filter(|t| t.store == code)
            .map(|t| Value::from(t.id.as_str()))
            .collect::<Vec<_>>()
            .into(),
    );
    Ok(Answer::success(fields))
}

/// Checks a store request's codes.
pub fn parse_store(req: &StoreCreate) -> Result<(StoreCode, Vec<TerminalId>), ErrorReply> {
    let code = StoreCode::parse(req.store_id.trim()).map_err(|e| invalid(e.to_string()))?;
    let name = req.name.trim();
    if name.is_empty() || name.chars().count() > 128 {
        return Err(invalid("name must be 1 to 128 characters"));
    }
    if req.terminal_ids.len() > TERMINALS_PER_REQUEST_MAX {
        return Err(invalid("at most 1000 terminal_ids per request"));
    }
    let terminals = req
        .terminal_ids
        .iter()
        .map(|t| TerminalId::parse(t.trim()).map_err(|e| invalid(e.to_string())))
        .collect::<Result<Vec<_>, _>>()?;
    Ok((code, terminals))
}

/// Registers a store and its terminals, tolerating what already exists.
pub async fn register_store(
    store: &jianlian_store::Store,
    merchant: &Merchant,
    code: &StoreCode,
    name: &str,
    terminals: &[TerminalId],
    now: jiff::Timestamp,
) -> Result<(), ErrorReply> {
    match store
        .insert_store(merchant.id, code, name, terminals, now)
        .await
    {
        Ok(()) => return Ok(()),
        Err(StoreError::Duplicate(_)) => {}
        Err(e) => return Err(internal("store insert", e)),
    }
    let known = store
        .terminals(merchant.id)
        .await
        .map_err(|e| internal("terminal lookup", e))?;
    let stores = store
        .stores(merchant.id)
        .await
        .map_err(|e| internal("store lookup", e))?;
    if !stores.iter().any(|s| s.code == *code) {
        // The duplicate was a terminal id already used by another store.
        let taken: Vec<String> = known
            .iter()
            .filter(|t| terminals.contains(&t.id))
            .map(|t| format!("{} (store {})", t.id, t.store))
            .collect();
        return Err(invalid(format!(
            "terminal_id already registered to another store of this merchant: {}",
            taken.join(", ")
        )));
    }
    for terminal in terminals {
        match known.iter().find(|t| t.id == *terminal) {
            Some(t) if t.store == *code => continue,
            Some(t) => {
                return Err(invalid(format!(
                    "terminal_id {terminal} already belongs to store {}",
                    t.store
                )));
            }
            None => {}
        }
        match store
            .insert_terminal(merchant.id, code, terminal, now)
            .await
        {
            Ok(()) | Err(StoreError::Duplicate(_)) => {}
            Err(e) => return Err(internal("terminal insert", e)),
        }
    }
    Ok(())
}
