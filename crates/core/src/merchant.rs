//! Merchants (R2): the local registry Alipay lacks, onboarding states,
//! `source` with its audit trail, identity uniqueness, stores and terminals.
//!
//! **Identity.** A real merchant is onboarded once (R2.2, no "big merchant"):
//! a business licence number identifies it across all channels, and a
//! channel's `external_id` identifies it within that channel. The store
//! enforces both with UNIQUE constraints, and one smid serves one merchant.
//! Because two channels may reuse an `external_id`, the gateway reports
//! [`Merchant::upstream_external_id`] (its own number) to Alipay.
//!
//! **Source** (R2.3) defaults to the PID of the channel that brought the
//! merchant, may be set explicitly, and every later change is recorded as a
//! [`SourceChange`].

use jianlian_alipay::api::merchant::MerchantProfile;
use jiff::Timestamp;
use serde::{Deserialize, Serialize};

use crate::fees::FeePolicy;
use crate::ids::{AppId, ExternalId, IdError, MerchantId, Pid, Smid, StoreCode, TerminalId};

/// Where a merchant is in onboarding.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OnboardingState {
    /// Registered here, not yet sent to Alipay.
    Draft,
    /// `ant.merchant.expand.indirect.create` sent; no answer recorded yet.
    Submitted,
    /// Alipay returned the smid: trades may flow.
    Onboarded,
    /// Alipay refused; may be corrected and submitted again.
    Rejected,
}

impl OnboardingState {
    pub fn as_str(self) -> &'static str {
        match self {
            OnboardingState::Draft => "draft",
            OnboardingState::Submitted => "submitted",
            OnboardingState::Onboarded => "onboarded",
            OnboardingState::Rejected => "rejected",
        }
    }

    pub fn parse(text: &str) -> Option<OnboardingState> {
        [
            OnboardingState::Draft,
            OnboardingState::Submitted,
            OnboardingState::Onboarded,
            OnboardingState::Rejected,
        ]
        .into_iter()
        .find(|s| s.as_str() == text)
    }
}

/// An onboarding event.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum OnboardingEvent {
    /// The create call is about to be sent.
    Submit,
    /// Alipay answered with the smid.
    Onboarded(Smid),
    /// Alipay refused, with its reason.
    Rejected(String),
}

/// Why an onboarding event or a merchant was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MerchantError {
    #[error("merchant {merchant} is {from}; cannot {event}")]
    Illegal {
        merchant: MerchantId,
        from: &'static str,
        event: &'static str,
    },
    #[error("merchant {merchant} already has smid {known}; Alipay answered {reported}")]
    SmidMismatch {
        merchant: MerchantId,
        known: Smid,
        reported: Smid,
    },
    #[error("{0} is required")]
    Missing(&'static str),
    #[error(transparent)]
    Id(#[from] IdError),
    #[error("{field} is too long: at most {max} characters")]
    TooLong { field: &'static str, max: usize },
}

/// A merchant in the gateway's registry.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Merchant {
    pub id: MerchantId,
    /// The channel that brought it.
    pub channel: AppId,
    /// The channel's number for it.
    pub external_id: ExternalId,
    pub business_license: Option<String>,
    /// Every field of Alipay's onboarding API, as last sent or received.
    pub profile: MerchantProfile,
    /// R2.3: who brought it (rebates and risk control depend on it).
    pub source: Pid,
    pub smid: Option<Smid>,
    pub state: OnboardingState,
    /// Alipay's last refusal, when rejected.
    pub rejection: Option<String>,
    pub fees: FeePolicy,
    pub created_at: Timestamp,
    pub updated_at: Timestamp,
    pub version: i64,
}

impl Merchant {
    /// The `external_id` the gateway reports to Alipay: its own number, unique
    /// within the acquirer even when two channels reuse an `external_id`.
    pub fn upstream_external_id(&self) -> String {
        format!("JLM{:010}", self.id.get())
    }

    /// Applies an onboarding event (pure); `Ok(false)` when it changes nothing.
    pub fn apply_onboarding(&mut self, event: &OnboardingEvent) -> Result<bool, MerchantError> {
        use OnboardingState::*;
        let illegal = |event| MerchantError::Illegal {
            merchant: self.id,
            from: self.state.as_str(),
            event,
        };
        match (self.state, event) {
            (Draft | Rejected, OnboardingEvent::Submit) => {
                self.state = Submitted;
                Ok(true)
            }
            (Submitted, OnboardingEvent::Submit) => Ok(false),
            (Submitted | Draft, OnboardingEvent::Onboarded(smid)) => {
                self.smid = Some(smid.clone());
                self.state = Onboarded;
                self.rejection = None;
                Ok(true)
            }
            (Onboarded, OnboardingEvent::Onboarded(smid)) => match &self.smid {
                Some(known) if known == smid => Ok(false),
                Some(known) => Err(MerchantError::SmidMismatch {
                    merchant: self.id,
                    known: known.clone(),
                    reported: smid.clone(),
                }),
                None => Err(illegal("record an smid")),
            },
            (Submitted, OnboardingEvent::Rejected(reason)) => {
                self.state = Rejected;
                self.rejection = Some(reason.clone());
                Ok(true)
            }
            (Rejected, OnboardingEvent::Rejected(_)) => Ok(false),
            (Onboarded, OnboardingEvent::Submit) => Err(illegal("submit again")),
            (Draft | Onboarded, OnboardingEvent::Rejected(_)) => Err(illegal("be rejected")),
            (Rejected, OnboardingEvent::Onboarded(_)) => Err(illegal("be onboarded")),
        }
    }
}

/// A new merchant, parsed from an onboarding request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewMerchant {
    pub channel: AppId,
    pub external_id: ExternalId,
    pub business_license: Option<String>,
    pub profile: MerchantProfile,
    pub source: Pid,
    pub fees: FeePolicy,
}

/// Longest business licence number kept (China's unified code has 18).
const BUSINESS_LICENSE_CHARS_MAX: usize = 64;

impl NewMerchant {
    /// Parses an onboarding request from a channel whose PID is `channel_pid`
    /// (R12.1: the required fields are present and well formed). `source`
    /// defaults to the channel's PID (R2.3); the profile's `source` is set to
    /// the result so what Alipay receives matches the registry.
    pub fn parse(
        channel: AppId,
        channel_pid: &Pid,
        mut profile: MerchantProfile,
        fees: FeePolicy,
    ) -> Result<NewMerchant, MerchantError> {
        let required = |value: &Option<String>, field: &'static str| -> Result<(), MerchantError> {
            match value.as_deref().map(str::trim) {
                Some(v) if !v.is_empty() => Ok(()),
                _ => Err(MerchantError::Missing(field)),
            }
        };
        let external_id = ExternalId::parse(
            profile
                .external_id
                .as_deref()
                .ok_or(MerchantError::Missing("external_id"))?,
        )?;
        required(&profile.name, "name")?;
        required(&profile.alias_name, "alias_name")?;
        required(&profile.service_phone, "service_phone")?;
        if profile.category_id.as_deref().is_none_or(str::is_empty)
            && profile.mcc.as_deref().is_none_or(str::is_empty)
        {
            return Err(MerchantError::Missing("category_id (or mcc)"));
        }
        if profile.contact_info.as_ref().is_none_or(Vec::is_empty) {
            return Err(MerchantError::Missing("contact_info"));
        }
        let source = match profile.source.as_deref() {
            Some(text) if !text.is_empty() => Pid::parse(text)?,
            _ => channel_pid.clone(),
        };
        profile.source = Some(source.to_string());
        let business_license = profile
            .business_license
            .as_deref()
            .map(str::trim)
            .filter(|l| !l.is_empty())
            .map(str::to_owned);
        if business_license
            .as_deref()
            .is_some_and(|l| l.chars().count() > BUSINESS_LICENSE_CHARS_MAX)
        {
            return Err(MerchantError::TooLong {
                field: "business_license",
                max: BUSINESS_LICENSE_CHARS_MAX,
            });
        }
        Ok(NewMerchant {
            channel,
            external_id,
            business_license,
            profile,
            source,
            fees,
        })
    }
}

/// One change of a merchant's `source`, kept forever.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SourceChange {
    pub merchant: MerchantId,
    pub from: Pid,
    pub to: Pid,
    /// Who made the change (an operator name, or a channel's app_id).
    pub actor: String,
    pub reason: String,
    pub at: Timestamp,
}

/// A store of a merchant (R3.2).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MerchantStore {
    pub merchant: MerchantId,
    pub code: StoreCode,
    pub name: String,
    pub created_at: Timestamp,
}

/// A terminal of a store (R3.2).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Terminal {
    pub merchant: MerchantId,
    pub store: StoreCode,
    pub id: TerminalId,
    pub created_at: Timestamp,
}

#[cfg(test)]
mod tests {
    use super::*;
    use jianlian_alipay::Rate;
    use jianlian_alipay::api::merchant::ContactInfo;

    fn profile() -> MerchantProfile {
        MerchantProfile {
            external_id: Some("M-001".into()),
            name: Some("上海肯德基有限公司".into()),
            alias_name: Some("肯德基".into()),
            service_phone: Some("021-12345678".into()),
            category_id: Some("2015050700000000".into()),
            contact_info: Some(vec![ContactInfo {
                name: "张三".into(),
                ..ContactInfo::default()
            }]),
            business_license: Some("91310000MA1FL00000".into()),
            ..MerchantProfile::default()
        }
    }

    fn pid(s: &str) -> Pid {
        Pid::parse(s).unwrap()
    }

    #[test]
    fn source_defaults_to_the_channel_pid_and_can_be_set() {
        let channel = AppId::parse("2021000000000001").unwrap();
        let fees = FeePolicy::flat(Rate::parse("0.0038").unwrap());
        let m =
            NewMerchant::parse(channel.clone(), &pid("2088000000000001"), profile(), fees).unwrap();
        assert_eq!(m.source, pid("2088000000000001"));
        assert_eq!(m.profile.source.as_deref(), Some("2088000000000001"));
        let mut explicit = profile();
        explicit.source = Some("2088000000000009".into());
        let m =
            NewMerchant::parse(channel.clone(), &pid("2088000000000001"), explicit, fees).unwrap();
        assert_eq!(m.source, pid("2088000000000009"));
        let mut bad = profile();
        bad.source = Some("12345".into());
        assert!(NewMerchant::parse(channel.clone(), &pid("2088000000000001"), bad, fees).is_err());
        let mut nameless = profile();
        nameless.name = Some(" ".into());
        assert_eq!(
            NewMerchant::parse(channel, &pid("2088000000000001"), nameless, fees),
            Err(MerchantError::Missing("name"))
        );
    }

    #[test]
    fn onboarding_moves_forward_only() {
        let channel = AppId::parse("2021000000000001").unwrap();
        let new = NewMerchant::parse(
            channel.clone(),
            &pid("2088000000000001"),
            profile(),
            FeePolicy::flat(Rate::ZERO),
        )
        .unwrap();
        let mut m = Merchant {
            id: MerchantId::new(1).unwrap(),
            channel,
            external_id: new.external_id,
            business_license: new.business_license,
            profile: new.profile,
            source: new.source,
            smid: None,
            state: OnboardingState::Draft,
            rejection: None,
            fees: new.fees,
            created_at: Timestamp::UNIX_EPOCH,
            updated_at: Timestamp::UNIX_EPOCH,
            version: 1,
        };
        assert_eq!(m.apply_onboarding(&OnboardingEvent::Submit), Ok(true));
        assert_eq!(m.apply_onboarding(&OnboardingEvent::Submit), Ok(false));
        let smid = Smid::parse("2088000000000777").unwrap();
        assert_eq!(
            m.apply_onboarding(&OnboardingEvent::Onboarded(smid.clone())),
            Ok(true)
        );
        assert_eq!(
            m.apply_onboarding(&OnboardingEvent::Onboarded(smid)),
            Ok(false)
        );
        let other = Smid::parse("2088000000000888").unwrap();
        assert!(matches!(
            m.apply_onboarding(&OnboardingEvent::Onboarded(other)),
            Err(MerchantError::SmidMismatch { .. })
        ));
        assert!(m.apply_onboarding(&OnboardingEvent::Submit).is_err());
        assert_eq!(m.upstream_external_id(), "JLM0000000001");
    }
}
