//! Indirect merchant onboarding (R2, apis.md §4):
//! `ant.merchant.expand.indirect.create/query/modify`. Every field is
//! validated with an error naming it; the smid is assigned here; `external_id`
//! is unique per acquirer (a repeat with the same data returns the same smid);
//! there is no list and no delete, as at Alipay.

use jianlian_alipay::api::merchant::{
    IndirectCreate, IndirectCreateResponse, IndirectModify, IndirectQuery, IndirectQueryResponse,
    MerchantProfile,
};
use jianlian_alipay::{Code, ErrorReply};

use crate::api::{Answer, Call, parse_biz, reply};
use crate::model::Merchant;
use crate::state::Core;

/// Services an indirect (offline face-to-face) merchant can have (R1.4).
const GRANTED_SERVICES: &[&str] = &["F2F", "PRE_F2F"];
const KNOWN_SERVICES: &[&str] = &["F2F", "PC", "APP", "PRE_F2F", "PRE_APP"];

fn bad(detail: impl Into<String>) -> ErrorReply {
    ErrorReply::invalid_parameter(detail)
}

fn required<'a>(name: &str, value: &'a Option<String>) -> Result<&'a str, ErrorReply> {
    value
        .as_deref()
        .filter(|v| !v.trim().is_empty())
        .ok_or_else(|| bad(format!("{name} is required")))
}

fn max_len(name: &str, value: Option<&str>, max: usize) -> Result<(), ErrorReply> {
    match value {
        Some(v) if v.chars().count() > max => {
            Err(bad(format!("{name} is longer than {max} characters")))
        }
        _ => Ok(()),
    }
}

fn is_pid(text: &str) -> bool {
    text.len() == 16 && text.starts_with("2088") && text.bytes().all(|b| b.is_ascii_digit())
}

fn digits(text: &str, min: usize, max: usize) -> bool {
    (min..=max).contains(&text.len()) && text.bytes().all(|b| b.is_ascii_digit())
}

fn coordinate(name: &str, text: &str, limit_whole: u32) -> Result<(), ErrorReply> {
    let (int, frac) = text.split_once('.').unwrap_or((text, ""));
    let int = int.strip_prefix('-').unwrap_or(int);
    let shape = !int.is_empty()
        && int.len() <= 3
        && int.bytes().all(|b| b.is_ascii_digit())
        && frac.len() <= 6
        && frac.bytes().all(|b| b.is_ascii_digit());
    // The range check compares the integer part only: no float arithmetic.
    let whole: u32 = int.parse().unwrap_or(u32::MAX);
    if !shape || whole > limit_whole || (whole == limit_whole && frac.bytes().any(|b| b != b'0')) {
        return Err(bad(format!(
            "{name} {text:?} is not a coordinate within ±{limit_whole} with at most 6 decimals"
        )));
    }
    Ok(())
}

/// Validates a complete merchant profile (create, and modify after merging).
pub fn validate_profile(p: &MerchantProfile) -> Result<(), ErrorReply> {
    let external_id = required("external_id", &p.external_id)?;
    max_len("external_id", Some(external_id), 64)?;
    max_len("name", Some(required("name", &p.name)?), 128)?;
    max_len(
        "alias_name",
        Some(required("alias_name", &p.alias_name)?),
        64,
    )?;
    let phone = required("service_phone", &p.service_phone)?;
    if !(5..=20).contains(&phone.len()) || !phone.bytes().all(|b| b.is_ascii_digit() || b == b'-') {
        return Err(bad(format!(
            "service_phone {phone:?} must be 5 to 20 digits or dashes"
        )));
    }
    let source = required("source", &p.source)?;
    if !is_pid(source) {
        return Err(bad(format!(
            "source {source:?} must be the PID (2088 + 12 digits) of whoever brought the merchant (R2.3)"
        )));
    }
    match p.org_pid.as_deref() {
        Some(org) => {
            if !is_pid(org) {
                return Err(bad(format!(
                    "org_pid {org:?} must be a PID (2088 + 12 digits)"
                )));
            }
            let mcc = required(
                "mcc (for UnionPay/NetsUnion onboarding with org_pid)",
                &p.mcc,
            )?;
            if !digits(mcc, 4, 4) {
                return Err(bad(format!("mcc {mcc:?} must be 4 digits")));
            }
        }
        None => {
            let cat = required("category_id", &p.category_id)?;
            if cat.len() > 32
                || !cat
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'.')
            {
                return Err(bad(format!("category_id {cat:?} is not a category id")));
            }
            if let Some(mcc) = p.mcc.as_deref()
                && !digits(mcc, 4, 4)
            {
                return Err(bad(format!("mcc {mcc:?} must be 4 digits")));
            }
        }
    }
    let contacts = p
        .contact_info
        .as_ref()
        .filter(|c| !c.is_empty())
        .ok_or_else(|| bad("contact_info needs at least one contact"))?;
    for (i, c) in contacts.iter().enumerate() {
        if c.name.trim().is_empty() {
            return Err(bad(format!("contact_info[{i}].name is required")));
        }
        max_len(&format!("contact_info[{i}].name"), Some(&c.name), 64)?;
        if let Some(t) = c.contact_type.as_deref()
            && !["LEGAL_PERSON", "CONTROLLER", "AGENT", "OTHER"].contains(&t)
        {
            return Err(bad(format!(
                "contact_info[{i}].type {t:?} is not LEGAL_PERSON, CONTROLLER, AGENT or OTHER"
            )));
        }
        if let Some(m) = c.mobile.as_deref()
            && !(digits(m, 11, 11) && m.starts_with('1'))
        {
            return Err(bad(format!(
                "contact_info[{i}].mobile {m:?} is not an 11-digit mobile number"
            )));
        }
        if let Some(id) = c.id_card_no.as_deref() {
            let body = id.strip_suffix(['X', 'x']).unwrap_or(id);
            let ok = (id.len() == 18 && digits(body, 17, 18)) || digits(id, 15, 15);
            if !ok {
                return Err(bad(format!(
                    "contact_info[{i}].id_card_no is not a 15- or 18-character ID number"
                )));
            }
        }
        if let Some(e) = c.email.as_deref()
            && (!e.contains('@') || e.len() > 128)
        {
            return Err(bad(format!(
                "contact_info[{i}].email {e:?} is not an email address"
            )));
        }
    }
    for (i, a) in p.address_info.iter().flatten().enumerate() {
        for (name, v) in [
            ("province_code", &a.province_code),
            ("city_code", &a.city_code),
            ("district_code", &a.district_code),
        ] {
            if let Some(code) = v.as_deref()
                && !digits(code, 6, 6)
            {
                return Err(bad(format!(
                    "address_info[{i}].{name} {code:?} must be a 6-digit area code"
                )));
            }
        }
        max_len(
            &format!("address_info[{i}].address"),
            a.address.as_deref(),
            256,
        )?;
        if let Some(lon) = a.longitude.as_deref() {
            coordinate(&format!("address_info[{i}].longitude"), lon, 180)?;
        }
        if let Some(lat) = a.latitude.as_deref() {
            coordinate(&format!("address_info[{i}].latitude"), lat, 90)?;
        }
        if let Some(t) = a.address_type.as_deref()
            && t != "BUSINESS_ADDRESS"
        {
            return Err(bad(format!(
                "address_info[{i}].type {t:?} is not BUSINESS_ADDRESS"
            )));
        }
    }
    for (i, b) in p.bankcard_info.iter().flatten().enumerate() {
        let no = required(&format!("bankcard_info[{i}].card_no"), &b.card_no)?;
        if !digits(no, 12, 30) {
            return Err(bad(format!(
                "bankcard_info[{i}].card_no must be 12 to 30 digits"
            )));
        }
        required(&format!("bankcard_info[{i}].card_name"), &b.card_name)?;
    }
    if let Some(t) = p.business_license_type.as_deref() {
        if !["NATIONAL_LEGAL", "NATIONAL_LEGAL_MERGE", "INST_RGST_CTF"].contains(&t) {
            return Err(bad(format!(
                "business_license_type {t:?} is not NATIONAL_LEGAL, NATIONAL_LEGAL_MERGE or INST_RGST_CTF"
            )));
        }
        required(
            "business_license (with business_license_type)",
            &p.business_license,
        )?;
    }
    max_len("business_license", p.business_license.as_deref(), 64)?;
    max_len("memo", p.memo.as_deref(), 512)?;
    for (i, s) in p.service_codes.iter().flatten().enumerate() {
        if !KNOWN_SERVICES.contains(&s.as_str()) {
            return Err(bad(format!(
                "service_codes[{i}] {s:?} is not F2F, PC, APP, PRE_F2F or PRE_APP"
            )));
        }
    }
    for (i, l) in p.logon_id.iter().flatten().enumerate() {
        max_len(&format!("logon_id[{i}]"), Some(l), 100)?;
    }
    for (i, c) in p.pay_code_info.iter().flatten().enumerate() {
        max_len(&format!("pay_code_info[{i}]"), Some(c), 512)?;
    }
    for (i, s) in p.site_info.iter().flatten().enumerate() {
        if s.site_url.as_deref().is_none_or(str::is_empty)
            && s.site_name.as_deref().is_none_or(str::is_empty)
        {
            return Err(bad(format!("site_info[{i}] needs site_url or site_name")));
        }
    }
    Ok(())
}

/// The level Alipay would grade the data at (rules not public: the sandbox's
/// own, documented in docs/sandbox.md).
pub fn indirect_level(p: &MerchantProfile) -> &'static str {
    let has_address = p
        .address_info
        .iter()
        .flatten()
        .any(|a| a.district_code.is_some() && a.address.is_some());
    let has_license = p.business_license.is_some();
    let has_card = p.bankcard_info.as_ref().is_some_and(|c| !c.is_empty());
    match (has_address, has_license, has_card) {
        (true, true, true) => "INDIRECT_LEVEL_M3",
        (true, true, false) => "INDIRECT_LEVEL_M2",
        (true, false, _) | (false, true, _) => "INDIRECT_LEVEL_M1",
        _ => "INDIRECT_LEVEL_M0",
    }
}

/// Services granted and refused for the requested codes (default F2F).
fn services(p: &MerchantProfile) -> (Vec<String>, Option<String>) {
    let asked: Vec<String> = p
        .service_codes
        .clone()
        .unwrap_or_else(|| vec!["F2F".to_owned()]);
    let granted: Vec<String> = asked
        .iter()
        .filter(|s| GRANTED_SERVICES.contains(&s.as_str()))
        .cloned()
        .collect();
    let refused: Vec<&str> = asked
        .iter()
        .filter(|s| !GRANTED_SERVICES.contains(&s.as_str()))
        .map(String::as_str)
        .collect();
    let reason = (!refused.is_empty()).then(|| {
        format!(
            "{}: indirect merchants get offline face-to-face products only (R1.4)",
            refused.join(",")
        )
    });
    (granted, reason)
}

/// Two profiles describe the same merchant (an idempotent create repeat).
fn same_data(a: &MerchantProfile, b: &MerchantProfile) -> bool {
    serde_json::to_value(a).ok() == serde_json::to_value(b).ok()
}

fn not_found(detail: &str) -> ErrorReply {
    ErrorReply::business("SUB_MERCHANT_NOT_EXIST", format!("商户不存在: {detail}"))
}

impl Core {
    /// `ant.merchant.expand.indirect.create`.
    pub fn merchant_create(&mut self, call: &Call) -> Answer {
        let req: IndirectCreate = parse_biz(call)?;
        let p = req.profile;
        validate_profile(&p)?;
        let external_id = p.external_id.clone().unwrap_or_default();
        let key = (call.app.pid.clone(), external_id.clone());
        if let Some(smid) = self.idx.external_ids.get(&key).cloned() {
            let existing = self
                .st
                .merchants
                .get(&smid)
                .ok_or_else(ErrorReply::unknown)?;
            if !same_data(&existing.profile, &p) {
                return Err(ErrorReply::business(
                    "EXTERNAL_ID_DUPLICATE",
                    format!(
                        "external_id {external_id} is already onboarded as {smid} with other data; use modify"
                    ),
                ));
            }
            let (granted, reason) = services(&existing.profile);
            return reply(
                Code::Success,
                &IndirectCreateResponse {
                    sub_merchant_id: Some(smid),
                    service_codes: Some(granted),
                    service_fail_reason: reason,
                    extra: Default::default(),
                },
            );
        }
        let smid = loop {
            let id = self.ids().user_id();
            if !self.st.merchants.contains_key(&id) {
                break id;
            }
        };
        let (granted, reason) = services(&p);
        self.put_merchant(Merchant {
            smid: smid.clone(),
            pid: call.app.pid.clone(),
            indirect_level: indirect_level(&p).to_owned(),
            profile: p,
            created_at: call.now,
            modified_at: call.now,
            seen_date: String::new(),
            seen_stores: Default::default(),
            seen_terminals: Default::default(),
            risk_blocked: None,
        });
        reply(
            Code::Success,
            &IndirectCreateResponse {
                sub_merchant_id: Some(smid),
                service_codes: Some(granted),
                service_fail_reason: reason,
                extra: Default::default(),
            },
        )
    }

    fn merchant_of(
        &self,
        call: &Call,
        smid: Option<&str>,
        external_id: Option<&str>,
    ) -> Result<Merchant, ErrorReply> {
        let smid = match (
            smid.filter(|s| !s.is_empty()),
            external_id.filter(|s| !s.is_empty()),
        ) {
            (Some(s), _) => s.to_owned(),
            (None, Some(ext)) => self
                .idx
                .external_ids
                .get(&(call.app.pid.clone(), ext.to_owned()))
                .cloned()
                .ok_or_else(|| not_found(&format!("no merchant with external_id {ext}")))?,
            (None, None) => return Err(bad("sub_merchant_id or external_id is required")),
        };
        self.st
            .merchants
            .get(&smid)
            .filter(|m| m.pid == call.app.pid)
            .cloned()
            .ok_or_else(|| not_found(&format!("no merchant {smid} onboarded by this acquirer")))
    }

    /// `ant.merchant.expand.indirect.query`: by smid or by `external_id`.
    pub fn merchant_query(&mut self, call: &Call) -> Answer {
        let req: IndirectQuery = parse_biz(call)?;
        if let Some(org) = req.org_pid.as_deref()
            && org != call.app.pid
        {
            return Err(bad("org_pid is not this acquirer's PID"));
        }
        let m = self.merchant_of(
            call,
            req.sub_merchant_id.as_deref(),
            req.external_id.as_deref(),
        )?;
        let mut profile = m.profile.clone();
        profile.service_codes = Some(services(&m.profile).0);
        reply(
            Code::Success,
            &IndirectQueryResponse {
                sub_merchant_id: Some(m.smid.clone()),
                indirect_level: Some(m.indirect_level.clone()),
                profile,
            },
        )
    }

    /// `ant.merchant.expand.indirect.modify`: the fields given replace the
    /// stored ones; the result must still be a valid profile.
    pub fn merchant_modify(&mut self, call: &Call) -> Answer {
        let req: IndirectModify = parse_biz(call)?;
        if req.sub_merchant_id.trim().is_empty() {
            return Err(bad("sub_merchant_id is required"));
        }
        let mut m = self.merchant_of(call, Some(&req.sub_merchant_id), None)?;
        let mut merged = serde_json::to_value(&m.profile).map_err(|_| ErrorReply::unknown())?;
        let changes = serde_json::to_value(&req.profile).map_err(|_| ErrorReply::unknown())?;
        if let (Some(base), Some(changes)) = (merged.as_object_mut(), changes.as_object()) {
            for (k, v) in changes {
                base.insert(k.clone(), v.clone());
            }
        }
        let profile: MerchantProfile =
            serde_json::from_value(merged).map_err(|e| bad(e.to_string()))?;
        validate_profile(&profile)?;
        let new_ext = profile.external_id.clone().unwrap_or_default();
        if let Some(owner) = self
            .idx
            .external_ids
            .get(&(call.app.pid.clone(), new_ext.clone()))
            && *owner != m.smid
        {
            return Err(ErrorReply::business(
                "EXTERNAL_ID_DUPLICATE",
                format!("external_id {new_ext} belongs to merchant {owner}"),
            ));
        }
        if let Some(old) = m.profile.external_id.clone()
            && old != new_ext
        {
            self.idx.external_ids.remove(&(call.app.pid.clone(), old));
        }
        let (granted, reason) = services(&profile);
        m.indirect_level = indirect_level(&profile).to_owned();
        m.profile = profile;
        m.modified_at = call.now;
        let smid = m.smid.clone();
        self.put_merchant(m);
        reply(
            Code::Success,
            &IndirectCreateResponse {
                sub_merchant_id: Some(smid),
                service_codes: Some(granted),
                service_fail_reason: reason,
                extra: Default::default(),
            },
        )
    }
}
