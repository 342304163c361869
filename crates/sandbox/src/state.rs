//! The sandbox's state behind one lock: the records ([`State`]), indexes
//! rebuilt from them, parsed keys, and the set of records changed by the
//! operation under way, which [`Core::commit`] appends to the journal.
//!
//! Engine code reads a record, changes a copy and puts it back with a `put_*`
//! method; putting marks it for the journal, so no change is forgotten.

use std::collections::{BTreeSet, HashMap};

use serde_json::{Value, json};

use jianlian_alipay::{PrivateKey, PublicKey};

use crate::faults::{self, FaultAction, FaultRule, Target};
use crate::ids::IdSource;
use crate::journal::{Journal, JournalError};
use crate::model::{
    App, Buyer, LedgerEntry, Merchant, Meta, Notice, OauthGrant, PaymentCode, QrOrder, State, Trade,
};

/// A record that changed.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
enum Key {
    Meta,
    App(String),
    Merchant(String),
    Buyer(String),
    Code(String),
    Qr(String),
    Trade(String),
    Notice(String),
    Grant(String),
    Faults,
    Bill(String),
    Payout(String),
    SftpUser(String),
    Billing,
    Certs,
}

/// What an `out_trade_no` of an acquirer names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OrderRef {
    Trade(String),
    Qr(String),
}

/// Lookups that are not primary keys, rebuilt at load.
#[derive(Debug, Default)]
pub struct Indexes {
    /// (pid, out_trade_no) → trade or unscanned QR.
    pub orders: HashMap<(String, String), OrderRef>,
    /// (pid, external_id) → smid.
    pub external_ids: HashMap<(String, String), String>,
    /// (app_id, open_id) → buyer_id.
    pub open_ids: HashMap<(String, String), String>,
    /// access or refresh token → grant code.
    pub tokens: HashMap<String, String>,
}

/// The state, its indexes and its journal.
#[derive(Debug)]
pub struct Core {
    pub st: State,
    pub idx: Indexes,
    dirty: BTreeSet<Key>,
    ledger_committed: usize,
    app_keys: HashMap<String, PublicKey>,
    journal: Option<Journal>,
    pub alipay_key: PrivateKey,
    /// `http://ADDR` of the running sandbox (bill download URLs point there).
    pub base_url: String,
    /// Live bill download URLs by token (not persisted: they live 30 s).
    pub downloads: HashMap<String, crate::bills::DownloadGrant>,
}

impl Core {
    pub fn new(st: State, journal: Option<Journal>) -> Result<Core, String> {
        let alipay_key = PrivateKey::from_text(&st.meta.alipay_key_pkcs8)
            .map_err(|e| format!("the saved Alipay key: {e}"))?;
        if let Some(certs) = &st.certs {
            certs
                .verify(alipay_key.public_key())
                .map_err(|e| format!("the saved certificates: {e}"))?;
        }
        let mut idx = Indexes::default();
        for t in st.trades.values() {
            idx.orders.insert(
                (t.pid.clone(), t.out_trade_no.clone()),
                OrderRef::Trade(t.trade_no.clone()),
            );
        }
        for q in st.qrs.values().filter(|q| q.trade_no.is_none()) {
            idx.orders.insert(
                (q.pid.clone(), q.order.out_trade_no.clone()),
                OrderRef::Qr(q.qr_code.clone()),
            );
        }
        for m in st.merchants.values() {
            if let Some(ext) = &m.profile.external_id {
                idx.external_ids
                    .insert((m.pid.clone(), ext.clone()), m.smid.clone());
            }
        }
        for b in st.buyers.values() {
            for (app, open) in &b.open_ids {
                idx.open_ids
                    .insert((app.clone(), open.clone()), b.buyer_id.clone());
            }
        }
        for g in st.grants.values() {
            for t in [&g.access_token, &g.refresh_token].into_iter().flatten() {
                idx.tokens.insert(t.clone(), g.code.clone());
            }
        }
        let ledger_committed = st.ledger.len();
        Ok(Core {
            st,
            idx,
            dirty: BTreeSet::new(),
            ledger_committed,
            app_keys: HashMap::new(),
            journal,
            alipay_key,
            base_url: String::new(),
            downloads: HashMap::new(),
        })
    }

    /// A fresh state with a new Alipay key.
    pub fn fresh_state(seed: u64, alipay_key: &PrivateKey) -> State {
        let mut ids = IdSource::new(seed);
        // Three draws that once made placeholder certificate SNs: kept, so a
        // seed hands out the same ids as before (tests and docs quote them).
        for _ in 0..3 {
            ids.hex(32);
        }
        State {
            meta: Meta {
                ids,
                clock_offset_secs: 0,
                alipay_key_pkcs8: alipay_key.to_pkcs8_base64(),
                fault_seq: 0,
            },
            apps: Default::default(),
            merchants: Default::default(),
            buyers: Default::default(),
            codes: Default::default(),
            qrs: Default::default(),
            trades: Default::default(),
            notices: Default::default(),
            grants: Default::default(),
            ledger: Vec::new(),
            faults: Vec::new(),
            bills: Default::default(),
            payouts: Default::default(),
            sftp_users: Default::default(),
            billing: Default::default(),
            certs: None,
        }
    }

    /// The id generator; using it marks the meta record changed.
    pub fn ids(&mut self) -> &mut IdSource {
        self.dirty.insert(Key::Meta);
        &mut self.st.meta.ids
    }

    pub fn touch_meta(&mut self) {
        self.dirty.insert(Key::Meta);
    }

    /// The parsed public key of an app (cached).
    pub fn app_public_key(&mut self, app_id: &str) -> Option<PublicKey> {
        if let Some(k) = self.app_keys.get(app_id) {
            return Some(k.clone());
        }
        let app = self.st.apps.get(app_id)?;
        let key = PublicKey::from_text(&app.public_key).ok()?;
        self.app_keys.insert(app_id.to_owned(), key.clone());
        Some(key)
    }

    pub fn put_app(&mut self, app: App) {
        self.app_keys.remove(&app.app_id);
        self.dirty.insert(Key::App(app.app_id.clone()));
        self.st.apps.insert(app.app_id.clone(), app);
    }

    pub fn put_merchant(&mut self, m: Merchant) {
        if let Some(ext) = &m.profile.external_id {
            self.idx
                .external_ids
                .insert((m.pid.clone(), ext.clone()), m.smid.clone());
        }
        self.dirty.insert(Key::Merchant(m.smid.clone()));
        self.st.merchants.insert(m.smid.clone(), m);
    }

    pub fn put_buyer(&mut self, b: Buyer) {
        for (app, open) in &b.open_ids {
            self.idx
                .open_ids
                .insert((app.clone(), open.clone()), b.buyer_id.clone());
        }
        self.dirty.insert(Key::Buyer(b.buyer_id.clone()));
        self.st.buyers.insert(b.buyer_id.clone(), b);
    }

    pub fn put_code(&mut self, c: PaymentCode) {
        self.dirty.insert(Key::Code(c.code.clone()));
        self.st.codes.insert(c.code.clone(), c);
    }

    pub fn remove_code(&mut self, code: &str) {
        self.dirty.insert(Key::Code(code.to_owned()));
        self.st.codes.remove(code);
    }

    pub fn put_qr(&mut self, q: QrOrder) {
        let key = (q.pid.clone(), q.order.out_trade_no.clone());
        match &q.trade_no {
            None => {
                self.idx.orders.insert(key, OrderRef::Qr(q.qr_code.clone()));
            }
            Some(no) => {
                self.idx.orders.insert(key, OrderRef::Trade(no.clone()));
            }
        }
        self.dirty.insert(Key::Qr(q.qr_code.clone()));
        self.st.qrs.insert(q.qr_code.clone(), q);
    }

    pub fn put_trade(&mut self, t: Trade) {
        self.idx.orders.insert(
            (t.pid.clone(), t.out_trade_no.clone()),
            OrderRef::Trade(t.trade_no.clone()),
        );
        self.dirty.insert(Key::Trade(t.trade_no.clone()));
        self.st.trades.insert(t.trade_no.clone(), t);
    }

    pub fn put_notice(&mut self, n: Notice) {
        self.dirty.insert(Key::Notice(n.notify_id.clone()));
        self.st.notices.insert(n.notify_id.clone(), n);
    }

    pub fn put_grant(&mut self, g: OauthGrant) {
        for t in [&g.access_token, &g.refresh_token].into_iter().flatten() {
            self.idx.tokens.insert(t.clone(), g.code.clone());
        }
        self.dirty.insert(Key::Grant(g.code.clone()));
        self.st.grants.insert(g.code.clone(), g);
    }

    pub fn put_bill(&mut self, b: crate::bills::BillRecord) {
        let key = crate::bills::BillRecord::key(&b.pid, b.date);
        self.dirty.insert(Key::Bill(key.clone()));
        self.st.bills.insert(key, b);
    }

    pub fn put_payout(&mut self, p: crate::settlement::Payout) {
        self.dirty.insert(Key::Payout(p.id.clone()));
        self.st.payouts.insert(p.id.clone(), p);
    }

    pub fn put_sftp_user(&mut self, u: crate::sftp::SftpUser) {
        self.dirty.insert(Key::SftpUser(u.pid.clone()));
        self.st.sftp_users.insert(u.pid.clone(), u);
    }

    pub fn remove_sftp_user(&mut self, pid: &str) -> Option<crate::sftp::SftpUser> {
        self.dirty.insert(Key::SftpUser(pid.to_owned()));
        self.st.sftp_users.remove(pid)
    }

    pub fn touch_billing(&mut self) {
        self.dirty.insert(Key::Billing);
    }

    pub fn put_certs(&mut self, certs: crate::certs::CertsRecord) {
        self.dirty.insert(Key::Certs);
        self.st.certs = Some(certs);
    }

    /// Fires the first live fault rule matching `target` whose action `pick`
    /// accepts; the rule set is journaled only when a rule fired.
    pub fn fire_fault<F>(&mut self, target: &Target<'_>, pick: F) -> Option<FaultAction>
    where
        F: Fn(&FaultAction) -> bool,
    {
        if !faults::peek(&self.st.faults, target, &pick) {
            return None;
        }
        self.dirty.insert(Key::Faults);
        faults::fire(&mut self.st.faults, target, pick)
    }

    pub fn faults_mut(&mut self) -> &mut Vec<FaultRule> {
        self.dirty.insert(Key::Faults);
        &mut self.st.faults
    }

    /// Appends a ledger entry, numbering it.
    pub fn push_ledger(&mut self, mut entry: LedgerEntry) {
        entry.seq = self.st.ledger.last().map_or(1, |e| e.seq + 1);
        self.st.ledger.push(entry);
    }

    /// Looks up what an acquirer's `out_trade_no` names.
    pub fn order(&self, pid: &str, out_trade_no: &str) -> Option<&OrderRef> {
        self.idx
            .orders
            .get(&(pid.to_owned(), out_trade_no.to_owned()))
    }

    /// Writes every changed record to the journal. Without a state directory
    /// this only forgets the change set.
    pub fn commit(&mut self) -> Result<(), JournalError> {
        let dirty = std::mem::take(&mut self.dirty);
        let new_ledger = self.st.ledger.get(self.ledger_committed..).unwrap_or(&[]);
        let Some(journal) = self.journal.as_mut() else {
            self.ledger_committed = self.st.ledger.len();
            return Ok(());
        };
        let mut lines = Vec::with_capacity(dirty.len() + new_ledger.len());
        for key in dirty {
            lines.push(record_line(&self.st, &key).to_string());
        }
        for entry in new_ledger {
            lines.push(json!({"k": "ledger", "v": entry}).to_string());
        }
        journal.append(&lines)?;
        self.ledger_committed = self.st.ledger.len();
        if journal.needs_compaction() {
            journal.compact(&self.st)?;
        }
        Ok(())
    }
}

fn record_line(st: &State, key: &Key) -> Value {
    fn line<T: serde::Serialize>(kind: &str, id: &str, v: Option<&T>) -> Value {
        json!({"k": kind, "id": id, "v": v})
    }
    match key {
        Key::Meta => json!({"k": "meta", "v": st.meta}),
        Key::Faults => json!({"k": "faults", "v": st.faults}),
        Key::App(id) => line("app", id, st.apps.get(id)),
        Key::Merchant(id) => line("merchant", id, st.merchants.get(id)),
        Key::Buyer(id) => line("buyer", id, st.buyers.get(id)),
        Key::Code(id) => line("code", id, st.codes.get(id)),
        Key::Qr(id) => line("qr", id, st.qrs.get(id)),
        Key::Trade(id) => line("trade", id, st.trades.get(id)),
        Key::Notice(id) => line("notice", id, st.notices.get(id)),
        Key::Grant(id) => line("grant", id, st.grants.get(id)),
        Key::Bill(id) => line("bill", id, st.bills.get(id)),
        Key::Payout(id) => line("payout", id, st.payouts.get(id)),
        Key::SftpUser(id) => line("sftp_user", id, st.sftp_users.get(id)),
        Key::Billing => json!({"k": "billing", "v": st.billing}),
        Key::Certs => json!({"k": "certs", "v": st.certs}),
    }
}

/// Applies one journal line to the state (an upsert, a removal when `v` is
/// null, or a ledger append skipped when already present).
pub fn apply_record(st: &mut State, line: &str) -> Result<(), String> {
    let record: Value = serde_json::from_str(line).map_err(|e| e.to_string())?;
    let kind = record
        .get("k")
        .and_then(Value::as_str)
        .ok_or("the record has no kind")?;
    let id = record
        .get("id")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_owned();
    let v = record.get("v").cloned().unwrap_or(Value::Null);
    fn upsert<T: serde::de::DeserializeOwned>(
        map: &mut std::collections::BTreeMap<String, T>,
        id: String,
        v: Value,
    ) -> Result<(), String> {
        if v.is_null() {
            map.remove(&id);
        } else {
            map.insert(id, serde_json::from_value(v).map_err(|e| e.to_string())?);
        }
        Ok(())
    }
    match kind {
        "meta" => st.meta = serde_json::from_value(v).map_err(|e| e.to_string())?,
        "faults" => st.faults = serde_json::from_value(v).map_err(|e| e.to_string())?,
        "app" => upsert(&mut st.apps, id, v)?,
        "merchant" => upsert(&mut st.merchants, id, v)?,
        "buyer" => upsert(&mut st.buyers, id, v)?,
        "code" => upsert(&mut st.codes, id, v)?,
        "qr" => upsert(&mut st.qrs, id, v)?,
        "trade" => upsert(&mut st.trades, id, v)?,
        "notice" => upsert(&mut st.notices, id, v)?,
        "grant" => upsert(&mut st.grants, id, v)?,
        "bill" => upsert(&mut st.bills, id, v)?,
        "payout" => upsert(&mut st.payouts, id, v)?,
        "sftp_user" => upsert(&mut st.sftp_users, id, v)?,
        "billing" => st.billing = serde_json::from_value(v).map_err(|e| e.to_string())?,
        "certs" => st.certs = serde_json::from_value(v).map_err(|e| e.to_string())?,
        "ledger" => {
            let entry: LedgerEntry = serde_json::from_value(v).map_err(|e| e.to_string())?;
            if st.ledger.last().is_none_or(|last| last.seq < entry.seq) {
                st.ledger.push(entry);
            }
        }
        other => return Err(format!("unknown record kind {other:?}")),
    }
    Ok(())
}
