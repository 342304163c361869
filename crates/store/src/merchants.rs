//! The merchant registry (R2): identity uniqueness by UNIQUE constraints, the
//! onboarding state with compare-and-set, `source` with its audit trail, and
//! stores and terminals.

use jianlian_alipay::api::merchant::MerchantProfile;
use jianlian_core::fees::FeePolicy;
use jianlian_core::ids::{AppId, ExternalId, MerchantId, Pid, Smid, StoreCode, TerminalId};
use jianlian_core::merchant::{
    Merchant, MerchantStore, NewMerchant, OnboardingEvent, OnboardingState, SourceChange, Terminal,
};
use jiff::Timestamp;

use crate::rows::{MerchantRow, SourceChangeRow, merchant_columns, ms, rate_ppm, to_json, ts};
use crate::script::Value;
use crate::{CAS_ATTEMPTS_MAX, Store, StoreError};

/// Most merchants one search returns.
pub const SEARCH_LIMIT_MAX: u32 = 1_000;
/// Most merchants one bulk `source` correction may touch.
pub const SOURCE_BULK_MAX: usize = 10_000;

/// Which merchants to list.
#[derive(Debug, Clone, Default)]
pub struct MerchantFilter {
    /// Only merchants of these channels (the visibility rule's result); all when `None`.
    pub channels: Option<Vec<AppId>>,
    /// A piece of the name or of the `external_id`.
    pub text: Option<String>,
    pub state: Option<OnboardingState>,
    pub source: Option<Pid>,
    /// At most this many (capped at 1000).
    pub limit: u32,
}

fn identity_error(message: &str, new: &NewMerchant) -> StoreError {
    let what = if message.contains("business_license") {
        format!(
            "a merchant with business licence {} is already registered",
            new.business_license.as_deref().unwrap_or_default()
        )
    } else if message.contains("external_id") {
        format!(
            "channel {} already has a merchant with external_id {}",
            new.channel, new.external_id
        )
    } else {
        format!("merchant identity already registered: {message}")
    };
    StoreError::Duplicate(what)
}

impl Store {
    /// Registers a merchant as `Draft`. A second merchant with the same
    /// business licence, or the same `external_id` in the same channel, is
    /// refused with [`StoreError::Duplicate`] naming which.
    pub async fn insert_merchant(
        &self,
        new: &NewMerchant,
        now: Timestamp,
    ) -> Result<Merchant, StoreError> {
        let name = new.profile.name.clone().unwrap_or_default();
        let result = sqlx::query_scalar::<_, i64>(
            "INSERT INTO merchants (channel_app_id, external_id, business_license, name, profile, \
             source, smid, state, rejection, fee_rate_ppm, credit_fee_rate_ppm, created_at, \
             updated_at, version) \
             VALUES ($1, $2, $3, $4, $5, $6, NULL, $7, NULL, $8, $9, $10, $10, 1) RETURNING id",
        )
        .bind(new.channel.as_str().to_owned())
        .bind(new.external_id.as_str().to_owned())
        .bind(new.business_license.clone())
        .bind(name)
        .bind(to_json(&new.profile)?)
        .bind(new.source.as_str().to_owned())
        .bind(OnboardingState::Draft.as_str())
        .bind(rate_ppm(new.fees.rate))
        .bind(new.fees.credit_rate.map(rate_ppm))
        .bind(ms(now))
        .fetch_one(&self.pool)
        .await;
        let id = match result {
            Ok(id) => id,
            Err(e) => {
                return Err(match StoreError::unique_violation(&e) {
                    Some(message) => identity_error(&message, new),
                    None => e.into(),
                });
            }
        };
        let id = crate::rows::merchant_id(id)?;
        self.merchant(id).await?.ok_or(StoreError::NotFound {
            what: "merchant",
            key: id.to_string(),
        })
    }

    pub async fn merchant(&self, id: MerchantId) -> Result<Option<Merchant>, StoreError> {
        let row: Option<MerchantRow> = sqlx::query_as(concat!(
            "SELECT ",
            merchant_columns!(),
            " FROM merchants WHERE id = $1"
        ))
        .bind(id.get())
        .fetch_optional(&self.pool)
        .await?;
        row.map(Merchant::try_from).transpose()
    }

    /// The merchant an smid belongs to (one at most: the smid is UNIQUE).
    pub async fn merchant_by_smid(&self, smid: &Smid) -> Result<Option<Merchant>, StoreError> {
        let row: Option<MerchantRow> = sqlx::query_as(concat!(
            "SELECT ",
            merchant_columns!(),
            " FROM merchants WHERE smid = $1"
        ))
        .bind(smid.as_str().to_owned())
        .fetch_optional(&self.pool)
        .await?;
        row.map(Merchant::try_from).transpose()
    }

    pub async fn merchant_by_external_id(
        &self,
        channel: &AppId,
        external_id: &ExternalId,
    ) -> Result<Option<Merchant>, StoreError> {
        let row: Option<MerchantRow> = sqlx::query_as(concat!(
            "SELECT ",
            merchant_columns!(),
            " FROM merchants WHERE channel_app_id = $1 AND external_id = $2"
        ))
        .bind(channel.as_str().to_owned())
        .bind(external_id.as_str().to_owned())
        .fetch_optional(&self.pool)
        .await?;
        row.map(Merchant::try_from).transpose()
    }

    /// The merchant registered under a business licence (one at most: the
    /// licence is UNIQUE). The licence is compared as stored (trimmed).
    pub async fn merchant_by_business_license(
        &self,
        licence: &str,
    ) -> Result<Option<Merchant>, StoreError> {
        let row: Option<MerchantRow> = sqlx::query_as(concat!(
            "SELECT ",
            merchant_columns!(),
            " FROM merchants WHERE business_license = $1"
        ))
        .bind(licence.trim().to_owned())
        .fetch_optional(&self.pool)
        .await?;
        row.map(Merchant::try_from).transpose()
    }

    /// Lists merchants (the registry Alipay lacks, R2.1), newest first.
    pub async fn search_merchants(
        &self,
        filter: &MerchantFilter,
    ) -> Result<Vec<Merchant>, StoreError> {
        let limit = i64::from(filter.limit.clamp(1, SEARCH_LIMIT_MAX));
        let pattern = filter
            .text
            .as_deref()
            .map(|t| format!("%{}%", t.replace(['%', '_'], "")));
        // One query per visible channel (a short list), or one for all.
        let channels: Vec<Option<String>> = match &filter.channels {
            Some(channels) => channels
                .iter()
                .map(|c| Some(c.as_str().to_owned()))
                .collect(),
            None => vec![None],
        };
        let mut merchants = Vec::new();
        for channel in channels {
            let rows: Vec<MerchantRow> = sqlx::query_as(concat!(
                "SELECT ",
                merchant_columns!(),
                " FROM merchants \
                 WHERE ($1 IS NULL OR name LIKE $1 OR external_id LIKE $1) \
                   AND ($2 IS NULL OR state = $2) \
                   AND ($3 IS NULL OR source = $3) \
                   AND ($4 IS NULL OR channel_app_id = $4) \
                 ORDER BY id DESC LIMIT $5"
            ))
            .bind(pattern.clone())
            .bind(filter.state.map(OnboardingState::as_str))
            .bind(filter.source.as_ref().map(|s| s.as_str().to_owned()))
            .bind(channel)
            .bind(limit)
            .fetch_all(&self.pool)
            .await?;
            for row in rows {
                merchants.push(Merchant::try_from(row)?);
            }
        }
        merchants.sort_by_key(|m| std::cmp::Reverse(m.id));
        merchants.truncate(usize::try_from(limit).unwrap_or(1_000));
        Ok(merchants)
    }

    /// Applies an onboarding event with compare-and-set. `Onboarded` records
    /// the smid; an smid already serving another merchant is refused.
    pub async fn apply_onboarding(
        &self,
        id: MerchantId,
        event: &OnboardingEvent,
        now: Timestamp,
    ) -> Result<Merchant, StoreError> {
        for _ in 0..CAS_ATTEMPTS_MAX {
            let mut merchant = self.merchant(id).await?.ok_or(StoreError::NotFound {
                what: "merchant",
                key: id.to_string(),
            })?;
            if !merchant.apply_onboarding(event)? {
                return Ok(merchant);
            }
            let mut tx = self.begin_write().await?;
            let done = sqlx::query(
                "UPDATE merchants SET state = $1, smid = $2, rejection = $3, updated_at = $4, \
                 version = version + 1 WHERE id = $5 AND version = $6",
            )
            .bind(merchant.state.as_str())
            .bind(merchant.smid.as_ref().map(|s| s.as_str().to_owned()))
            .bind(merchant.rejection.clone())
            .bind(ms(now))
            .bind(id.get())
            .bind(merchant.version)
            .execute(&mut *tx)
            .await;
            match done {
                Ok(done) if done.rows_affected() == 1 => {
                    tx.commit().await?;
                    merchant.version += 1;
                    merchant.updated_at = now;
                    return Ok(merchant);
                }
                Ok(_) => continue,
                Err(e) => {
                    return Err(match StoreError::unique_violation(&e) {
                        Some(_) => StoreError::Duplicate(format!(
                            "smid {} already serves another merchant",
                            merchant.smid.as_ref().map(Smid::as_str).unwrap_or_default()
                        )),
                        None => e.into(),
                    });
                }
            }
        }
        Err(StoreError::Contended {
            what: "merchant",
            key: id.to_string(),
            attempts: CAS_ATTEMPTS_MAX,
        })
    }

    /// Records a modify (`ant.merchant.expand.indirect.modify`): the profile
    /// merges over the stored one (fields left out stay as they were). The
    /// `external_id` never changes; a new business licence must still be
    /// unique; a new `source` is recorded in the audit trail with `actor`.
    pub async fn modify_merchant(
        &self,
        id: MerchantId,
        changes: &MerchantProfile,
        actor: &str,
        now: Timestamp,
    ) -> Result<Merchant, StoreError> {
        let mut tx = self.begin_write().await?;
        let select = self.sql(
            concat!(
                "SELECT ",
                merchant_columns!(),
                " FROM merchants WHERE id = $1 FOR UPDATE"
            ),
            concat!(
                "SELECT ",
                merchant_columns!(),
                " FROM merchants WHERE id = $1"
            ),
        );
        let row: Option<MerchantRow> = sqlx::query_as(select)
            .bind(id.get())
            .fetch_optional(&mut *tx)
            .await?;
        let mut merchant = Merchant::try_from(row.ok_or(StoreError::NotFound {
            what: "merchant",
            key: id.to_string(),
        })?)?;
        if let Some(ext) = changes.external_id.as_deref()
            && ext != merchant.external_id.as_str()
        {
            return Err(StoreError::Invalid(format!(
                "external_id of merchant {id} is {} and cannot change",
                merchant.external_id
            )));
        }
        let mut profile = serde_json::to_value(&merchant.profile)
            .map_err(|e| StoreError::corrupt(format!("merchant profile: {e}")))?;
        let overlay = serde_json::to_value(changes)
            .map_err(|e| StoreError::Invalid(format!("merchant profile: {e}")))?;
        if let (Some(base), serde_json::Value::Object(fields)) = (profile.as_object_mut(), overlay)
        {
            base.extend(fields);
        }
        let profile: MerchantProfile = serde_json::from_value(profile)
            .map_err(|e| StoreError::Invalid(format!("merchant profile: {e}")))?;
        let new_source = match profile.source.as_deref() {
            Some(text) if !text.is_empty() => Pid::parse(text)?,
            _ => merchant.source.clone(),
        };
        let licence = profile
            .business_license
            .as_deref()
            .map(str::trim)
            .filter(|l| !l.is_empty())
            .map(str::to_owned);
        let updated = sqlx::query(
            "UPDATE merchants SET profile = $1, name = $2, business_license = $3, source = $4, \
             updated_at = $5, version = version + 1 WHERE id = $6",
        )
        .bind(to_json(&profile)?)
        .bind(profile.name.clone().unwrap_or_default())
        .bind(licence.clone())
        .bind(new_source.as_str().to_owned())
        .bind(ms(now))
        .bind(id.get())
        .execute(&mut *tx)
        .await;
        if let Err(e) = updated {
            return Err(match StoreError::unique_violation(&e) {
                Some(_) => StoreError::Duplicate(format!(
                    "a merchant with business licence {} is already registered",
                    licence.unwrap_or_default()
                )),
                None => e.into(),
            });
        }
        if new_source != merchant.source {
            sqlx::query(
                "INSERT INTO merchant_source_changes (merchant_id, from_source, to_source, actor, \
                 reason, at) VALUES ($1, $2, $3, $4, $5, $6)",
            )
            .bind(id.get())
            .bind(merchant.source.as_str().to_owned())
            .bind(new_source.as_str().to_owned())
            .bind(actor.to_owned())
            .bind("modify")
            .bind(ms(now))
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        merchant.profile = profile;
        merchant.business_license = licence;
        merchant.source = new_source;
        merchant.updated_at = now;
        merchant.version += 1;
        Ok(merchant)
    }

    /// Sets a merchant's fee rates (later payments use them; booked trades keep theirs).
    pub async fn set_merchant_fees(
        &self,
        id: MerchantId,
        fees: FeePolicy,
        now: Timestamp,
    ) -> Result<(), StoreError> {
        const SET_FEES: &str = "UPDATE merchants SET fee_rate_ppm = $1, \
             credit_fee_rate_ppm = $2, updated_at = $3, version = version + 1 WHERE id = $4";
        let values: Vec<Value> = vec![
            rate_ppm(fees.rate).into(),
            fees.credit_rate.map(rate_ppm).into(),
            ms(now).into(),
            id.get().into(),
        ];
        // Through the store's writer on SQLite, like every other write.
        let ran = self
            .write(
                move |store| async move { Ok(store.write_once(SET_FEES, SET_FEES, values).await?) },
            )
            .await?;
        if ran.first_wrote_nothing() {
            return Err(StoreError::NotFound {
                what: "merchant",
                key: id.to_string(),
            });
        }
        Ok(())
    }

    /// R2.3: records a `source` correction on many merchants at once, all or
    /// nothing, with one audit entry per actual change. Merchants already on
    /// `to` are left alone. Alipay keeps `source` too: the gateway calls this
    /// for a merchant only once Alipay has accepted its new `source`.
    pub async fn set_source(
        &self,
        merchants: &[MerchantId],
        to: &Pid,
        actor: &str,
        reason: &str,
        now: Timestamp,
    ) -> Result<Vec<SourceChange>, StoreError> {
        if merchants.len() > SOURCE_BULK_MAX {
            return Err(StoreError::Invalid(format!(
                "at most {SOURCE_BULK_MAX} merchants per source correction, not {}",
                merchants.len()
            )));
        }
        let mut tx = self.begin_write().await?;
        let mut changes = Vec::new();
        for id in merchants {
            let select = self.sql(
                "SELECT source, profile FROM merchants WHERE id = $1 FOR UPDATE",
                "SELECT source, profile FROM merchants WHERE id = $1",
            );
            let row: Option<(String, String)> = sqlx::query_as(select)
                .bind(id.get())
                .fetch_optional(&mut *tx)
                .await?;
            let (from, profile) = row.ok_or(StoreError::NotFound {
                what: "merchant",
                key: id.to_string(),
            })?;
            let from = Pid::parse(&from).map_err(StoreError::corrupt)?;
            if from == *to {
                continue;
            }
            let mut profile: MerchantProfile =
                crate::rows::from_json("merchants.profile", &profile)?;
            profile.source = Some(to.to_string());
            sqlx::query(
                "UPDATE merchants SET source = $1, profile = $2, updated_at = $3, \
                 version = version + 1 WHERE id = $4",
            )
            .bind(to.as_str().to_owned())
            .bind(to_json(&profile)?)
            .bind(ms(now))
            .bind(id.get())
            .execute(&mut *tx)
            .await?;
            sqlx::query(
                "INSERT INTO merchant_source_changes (merchant_id, from_source, to_source, actor, \
                 reason, at) VALUES ($1, $2, $3, $4, $5, $6)",
            )
            .bind(id.get())
            .bind(from.as_str().to_owned())
            .bind(to.as_str().to_owned())
            .bind(actor.to_owned())
            .bind(reason.to_owned())
            .bind(ms(now))
            .execute(&mut *tx)
            .await?;
            changes.push(SourceChange {
                merchant: *id,
                from,
                to: to.clone(),
                actor: actor.to_owned(),
                reason: reason.to_owned(),
                at: now,
            });
        }
        tx.commit().await?;
        Ok(changes)
    }

    /// The audit trail of a merchant's `source`, oldest first.
    pub async fn source_changes(&self, id: MerchantId) -> Result<Vec<SourceChange>, StoreError> {
        let rows: Vec<SourceChangeRow> = sqlx::query_as(
            "SELECT merchant_id, from_source, to_source, actor, reason, at \
             FROM merchant_source_changes WHERE merchant_id = $1 ORDER BY id",
        )
        .bind(id.get())
        .fetch_all(&self.pool)
        .await?;
        rows.into_iter().map(SourceChange::try_from).collect()
    }

    /// Registers a store of a merchant, with its terminals, in one transaction.
    pub async fn insert_store(
        &self,
        merchant: MerchantId,
        code: &StoreCode,
        name: &str,
        terminals: &[TerminalId],
        now: Timestamp,
    ) -> Result<(), StoreError> {
        let mut tx = self.begin_write().await?;
        let inserted = sqlx::query(
            "INSERT INTO stores (merchant_id, code, name, created_at) VALUES ($1, $2, $3, $4)",
        )
        .bind(merchant.get())
        .bind(code.as_str().to_owned())
        .bind(name.to_owned())
        .bind(ms(now))
        .execute(&mut *tx)
        .await;
        match inserted {
            Ok(_) => {}
            Err(e) if StoreError::unique_violation(&e).is_some() => {
                return Err(StoreError::Duplicate(format!(
                    "merchant {merchant} already has store {code}"
                )));
            }
            Err(sqlx::Error::Database(db)) if db.is_foreign_key_violation() => {
                return Err(StoreError::NotFound {
                    what: "merchant",
                    key: merchant.to_string(),
                });
            }
            Err(e) => return Err(e.into()),
        }
        for terminal in terminals {
            insert_terminal_in(&mut tx, merchant, code, terminal, now).await?;
        }
        tx.commit().await?;
        Ok(())
    }

    /// Adds a terminal to an existing store.
    pub async fn insert_terminal(
        &self,
        merchant: MerchantId,
        store: &StoreCode,
        terminal: &TerminalId,
        now: Timestamp,
    ) -> Result<(), StoreError> {
        let mut tx = self.begin_write().await?;
        insert_terminal_in(&mut tx, merchant, store, terminal, now).await?;
        tx.commit().await?;
        Ok(())
    }

    pub async fn stores(&self, merchant: MerchantId) -> Result<Vec<MerchantStore>, StoreError> {
        let rows: Vec<(String, String, i64)> = sqlx::query_as(
            "SELECT code, name, created_at FROM stores WHERE merchant_id = $1 ORDER BY code",
        )
        .bind(merchant.get())
        .fetch_all(&self.pool)
        .await?;
        rows.into_iter()
            .map(|(code, name, at)| {
                Ok(MerchantStore {
                    merchant,
                    code: crate::rows::store_code(&code)?,
                    name,
                    created_at: ts(at)?,
                })
            })
            .collect()
    }

    pub async fn terminals(&self, merchant: MerchantId) -> Result<Vec<Terminal>, StoreError> {
        let rows: Vec<(String, String, i64)> = sqlx::query_as(
            "SELECT store_code, terminal_id, created_at FROM terminals WHERE merchant_id = $1 \
             ORDER BY store_code, terminal_id",
        )
        .bind(merchant.get())
        .fetch_all(&self.pool)
        .await?;
        rows.into_iter()
            .map(|(store, id, at)| {
                Ok(Terminal {
                    merchant,
                    store: crate::rows::store_code(&store)?,
                    id: crate::rows::terminal_id(&id)?,
                    created_at: ts(at)?,
                })
            })
            .collect()
    }

    /// R3.2: refuses a trade naming a store or terminal the merchant has not
    /// registered, or a terminal of another store.
    pub async fn check_store_terminal(
        &self,
        merchant: MerchantId,
        store: &StoreCode,
        terminal: &TerminalId,
    ) -> Result<(), StoreError> {
        let store_exists: Option<i64> =
            sqlx::query_scalar("SELECT 1 FROM stores WHERE merchant_id = $1 AND code = $2")
                .bind(merchant.get())
                .bind(store.as_str().to_owned())
                .fetch_optional(&self.pool)
                .await?;
        if store_exists.is_none() {
            return Err(StoreError::NotFound {
                what: "store_id",
                key: format!("{store} of merchant {merchant}"),
            });
        }
        let terminal_exists: Option<i64> = sqlx::query_scalar(
            "SELECT 1 FROM terminals WHERE merchant_id = $1 AND store_code = $2 AND terminal_id = $3",
        )
        .bind(merchant.get())
        .bind(store.as_str().to_owned())
        .bind(terminal.as_str().to_owned())
        .fetch_optional(&self.pool)
        .await?;
        if terminal_exists.is_none() {
            return Err(StoreError::NotFound {
                what: "terminal_id",
                key: format!("{terminal} of store {store}"),
            });
        }
        Ok(())
    }
}

async fn insert_terminal_in(
    conn: &mut sqlx::AnyConnection,
    merchant: MerchantId,
    store: &StoreCode,
    terminal: &TerminalId,
    now: Timestamp,
) -> Result<(), StoreError> {
    let inserted = sqlx::query(
        "INSERT INTO terminals (merchant_id, store_code, terminal_id, created_at) \
         VALUES ($1, $2, $3, $4)",
    )
    .bind(merchant.get())
    .bind(store.as_str().to_owned())
    .bind(terminal.as_str().to_owned())
    .bind(ms(now))
    .execute(&mut *conn)
    .await;
    match inserted {
        Ok(_) => Ok(()),
        Err(e) if StoreError::unique_violation(&e).is_some() => Err(StoreError::Duplicate(
            format!("merchant {merchant} already has terminal {terminal}"),
        )),
        Err(sqlx::Error::Database(db)) if db.is_foreign_key_violation() => {
            Err(StoreError::NotFound {
                what: "store",
                key: format!("{store} of merchant {merchant}"),
            })
        }
        Err(e) => Err(e.into()),
    }
}
