//! The sandbox's records: what Alipay knows about apps, acquirers, merchants,
//! buyers, payment codes, QR orders, trades, refunds, notifications, OAuth
//! grants, faults and money movements. Plain data, serializable, so the journal
//! can persist each record as it changes.

use std::collections::{BTreeMap, BTreeSet};

use jiff::Timestamp;
use serde::{Deserialize, Serialize};

use jianlian_alipay::api::merchant::MerchantProfile;
use jianlian_alipay::api::trade::{TradeOrder, TradeStatus};
use jianlian_alipay::{Fen, Rate};

use crate::faults::FaultRule;
use crate::ids::IdSource;

/// Sandbox-wide facts: the id generator, the clock offset (real-time mode) and
/// Alipay's own key.
#[derive(Clone, Serialize, Deserialize)]
pub struct Meta {
    pub ids: IdSource,
    /// Seconds added to the machine clock in real-time mode.
    pub clock_offset_secs: i64,
    /// Alipay's private key, PKCS#8 base64. Secret: never logged.
    pub alipay_key_pkcs8: String,
    pub fault_seq: u64,
}

impl std::fmt::Debug for Meta {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Meta")
            .field("ids", &self.ids)
            .field("clock_offset_secs", &self.clock_offset_secs)
            .field("alipay_key_pkcs8", &"(..)")
            .finish()
    }
}

/// How the acquirer is paid out (R9.2).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum Settlement {
    /// Same bank: D+1 natural day, about 07:00.
    #[default]
    SameBank,
    /// Other bank: T+1 working day, about 09:30.
    CrossBank,
}

/// Whose income must cover a refund (R10.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum RefundPosition {
    /// The sub-merchant's income of the same Beijing day.
    #[default]
    MerchantDay,
    /// The acquirer's total position.
    Acquirer,
}

/// Which buyer identifier the app receives (apis.md §8).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum IdMode {
    /// `buyer_user_id` / `user_id` (2088…).
    #[default]
    UserId,
    /// `buyer_open_id` / `open_id`, scoped to the app.
    OpenId,
}

/// The big-merchant risk rule (R2.2): an smid seen from more distinct stores or
/// terminals than this in one Beijing day is blocked.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct RiskRule {
    pub stores_per_day_max: Option<u32>,
    pub terminals_per_day_max: Option<u32>,
}

impl Default for RiskRule {
    fn default() -> Self {
        RiskRule {
            stores_per_day_max: Some(20),
            terminals_per_day_max: Some(50),
        }
    }
}

/// An acquirer's app (the caller of the gateway).
#[derive(Clone, Serialize, Deserialize)]
pub struct App {
    pub app_id: String,
    /// The acquirer's PID: merchants and `out_trade_no`s belong to it.
    pub pid: String,
    pub name: String,
    /// The app public key as bare base64 SPKI.
    pub public_key: String,
    /// Certificate mode: the SN of the registered app certificate.
    pub app_cert_sn: Option<String>,
    /// Certificate mode: the app certificate file (PEM), issued or uploaded.
    #[serde(default)]
    pub app_cert: Option<String>,
    pub settlement: Settlement,
    pub fee_rate: Rate,
    pub refund_position: RefundPosition,
    /// R3.8: without "general finance", trades fail.
    pub general_finance: bool,
    /// R3.2: indirect trades must carry `store_id` and `terminal_id`.
    pub require_store_terminal: bool,
    /// R10.4: months after payment during which refunds are allowed; 0: the
    /// contract allows none (trades are `TRADE_FINISHED` once paid).
    pub refund_window_months: u32,
    pub id_mode: IdMode,
    /// AES content-encryption key, base64. Secret.
    pub aes_key: Option<String>,
    pub risk: RiskRule,
    pub created_at: Timestamp,
    /// R11.3: a bill also on days without trades.
    #[serde(default)]
    pub empty_bills: bool,
}

impl std::fmt::Debug for App {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("App")
            .field("app_id", &self.app_id)
            .field("pid", &self.pid)
            .field("aes_key", &self.aes_key.as_ref().map(|_| "(..)"))
            .finish_non_exhaustive()
    }
}

/// An onboarded indirect merchant (R2).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Merchant {
    pub smid: String,
    /// The acquirer that onboarded it.
    pub pid: String,
    pub profile: MerchantProfile,
    pub indirect_level: String,
    pub created_at: Timestamp,
    pub modified_at: Timestamp,
    /// Stores and terminals seen today (Beijing date) for the risk rule.
    pub seen_date: String,
    pub seen_stores: BTreeSet<String>,
    pub seen_terminals: BTreeSet<String>,
    /// Set when the risk rule blocked the smid (R2.2, R13.1).
    pub risk_blocked: Option<String>,
}

/// A bank card of a buyer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BankCard {
    /// `DEBIT_CARD` or `CREDIT_CARD`.
    pub card_type: String,
    pub bank_code: String,
    /// Balance (debit) or remaining limit (credit).
    pub available: Fen,
}

/// Who funds a voucher.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum FundChannel {
    #[serde(rename = "PCREDIT")]
    Pcredit,
    #[serde(rename = "BANKCARD")]
    Bankcard,
    #[serde(rename = "ALIPAYACCOUNT")]
    Alipayaccount,
    #[serde(rename = "MCARD")]
    Mcard,
    #[serde(rename = "PCARD")]
    Pcard,
    #[serde(rename = "POINT")]
    Point,
    #[serde(rename = "COUPON")]
    Coupon,
    #[serde(rename = "DISCOUNT")]
    Discount,
    #[serde(rename = "MCOUPON")]
    Mcoupon,
    #[serde(rename = "MDISCOUNT")]
    Mdiscount,
}

impl FundChannel {
    /// R10.5: the order in which refunds go back, first to last.
    pub const REFUND_ORDER: [FundChannel; 10] = [
        FundChannel::Pcredit,
        FundChannel::Bankcard,
        FundChannel::Alipayaccount,
        FundChannel::Mcard,
        FundChannel::Pcard,
        FundChannel::Point,
        FundChannel::Coupon,
        FundChannel::Discount,
        FundChannel::Mcoupon,
        FundChannel::Mdiscount,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            FundChannel::Pcredit => "PCREDIT",
            FundChannel::Bankcard => "BANKCARD",
            FundChannel::Alipayaccount => "ALIPAYACCOUNT",
            FundChannel::Mcard => "MCARD",
            FundChannel::Pcard => "PCARD",
            FundChannel::Point => "POINT",
            FundChannel::Coupon => "COUPON",
            FundChannel::Discount => "DISCOUNT",
            FundChannel::Mcoupon => "MCOUPON",
            FundChannel::Mdiscount => "MDISCOUNT",
        }
    }

    pub fn parse(text: &str) -> Option<FundChannel> {
        FundChannel::REFUND_ORDER
            .into_iter()
            .find(|c| c.as_str() == text)
    }

    /// Position in the refund order.
    pub fn refund_rank(self) -> usize {
        FundChannel::REFUND_ORDER
            .iter()
            .position(|c| *c == self)
            .unwrap_or(usize::MAX)
    }

    /// Merchant-funded vouchers: the merchant never received this money.
    pub fn is_merchant_funded(self) -> bool {
        matches!(self, FundChannel::Mcoupon | FundChannel::Mdiscount)
    }

    /// Vouchers and points: not the buyer's own money.
    pub fn is_discount(self) -> bool {
        matches!(
            self,
            FundChannel::Coupon
                | FundChannel::Discount
                | FundChannel::Mcoupon
                | FundChannel::Mdiscount
                | FundChannel::Point
        )
    }

    pub fn is_voucher(self) -> bool {
        matches!(
            self,
            FundChannel::Coupon
                | FundChannel::Discount
                | FundChannel::Mcoupon
                | FundChannel::Mdiscount
        )
    }
}

/// A voucher in a buyer's wallet.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Voucher {
    pub id: String,
    /// `COUPON`, `DISCOUNT` (platform), `MCOUPON`, `MDISCOUNT` (merchant).
    pub channel: FundChannel,
    pub name: String,
    pub amount: Fen,
    pub used: bool,
}

/// What the buyer pays the rest with, after vouchers and points.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case", tag = "kind", content = "index")]
pub enum Instrument {
    /// Alipay balance (ALIPAYACCOUNT).
    #[default]
    Balance,
    /// One of the buyer's bank cards (BANKCARD), by index.
    BankCard(usize),
    /// Huabei credit (PCREDIT).
    Huabei,
    /// Merchant stored-value card (MCARD).
    Mcard,
    /// Prepaid card (PCARD).
    Pcard,
}

/// A buyer and their funding.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Buyer {
    pub buyer_id: String,
    pub logon_id: String,
    pub name: Option<String>,
    pub cert_no: Option<String>,
    pub balance: Fen,
    pub bank_cards: Vec<BankCard>,
    pub huabei_available: Fen,
    pub mcard_balance: Fen,
    pub pcard_balance: Fen,
    /// Jifenbao points; one point is one fen.
    pub points: i64,
    pub vouchers: Vec<Voucher>,
    pub requires_password: bool,
    pub daily_limit: Option<Fen>,
    /// (Beijing date, amount paid that day), for the daily limit.
    pub spent_date: String,
    pub spent: Fen,
    pub instrument: Instrument,
    /// Every payment of this buyer is refused by risk control.
    pub risky: bool,
    /// The buyer switched off paying from the Alipay balance.
    #[serde(default)]
    pub balance_payment_disabled: bool,
    /// OpenIDs per app id.
    pub open_ids: BTreeMap<String, String>,
    pub created_at: Timestamp,
}

/// Which `scene` of `alipay.trade.pay` a code belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum CodeKind {
    /// The buyer's payment code (barcode or QR on the phone), scene `bar_code`.
    #[default]
    BarCode,
    /// A face-payment token (`fp…`), scene `security_code`.
    SecurityCode,
}

/// A payment code shown by a buyer (R3.7), or the token a face-payment device
/// gets for a recognised buyer: single use, 60 s of virtual time.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct PaymentCode {
    pub code: String,
    pub buyer_id: String,
    pub expires_at: Timestamp,
    pub used: bool,
    pub instrument: Option<Instrument>,
    #[serde(default)]
    pub kind: CodeKind,
}

/// A precreate QR not yet turned into a trade (the trade exists from the scan, R3.5).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct QrOrder {
    pub qr_code: String,
    pub app_id: String,
    pub pid: String,
    pub smid: String,
    pub order: TradeOrder,
    pub expires_at: Timestamp,
    pub trade_no: Option<String>,
    pub closed: bool,
    pub notify_url: Option<String>,
    pub sign_type: String,
    pub charset: String,
    pub created_at: Timestamp,
}

/// How a trade came to be.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Origin {
    /// `alipay.trade.pay` (barcode): no notifications (R4.4).
    Pay,
    /// `alipay.trade.precreate`, after the buyer scanned.
    Precreate,
    /// `alipay.trade.create` (JSAPI).
    Create,
}

/// Why an unpaid trade closed, or how a paid one ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CloseReason {
    Timeout,
    Close,
    Cancel,
    Abandon,
    Refunded,
}

/// One funding source of a payment or a refund.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FundPart {
    pub channel: FundChannel,
    pub amount: Fen,
    /// `DEBIT_CARD` / `CREDIT_CARD` for BANKCARD (R8.1).
    pub fund_type: Option<String>,
    pub bank_code: Option<String>,
    /// Bank card index, for refunds back to the same card.
    pub card_index: Option<usize>,
    pub voucher_id: Option<String>,
    pub voucher_name: Option<String>,
}

/// A refund of a trade (also the refund a cancel makes).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Refund {
    pub out_request_no: String,
    pub amount: Fen,
    pub reason: Option<String>,
    pub parts: Vec<FundPart>,
    /// What the refund cost the merchant (the amount minus merchant vouchers).
    pub merchant_cost: Fen,
    pub fee_return: Fen,
    pub at: Timestamp,
    pub store_id: Option<String>,
    pub terminal_id: Option<String>,
    pub operator_id: Option<String>,
    pub by_cancel: bool,
    /// `refund_settlement_id`: the clearing id of the refund (institution
    /// indirect mode, apis.md §2.5, §2.7, §2.8).
    #[serde(default)]
    pub settlement_id: Option<String>,
}

/// A payment that reached a trade after it had closed (the `pay_after_cancel`
/// fault): the buyer was charged, then refunded at once (R4.6). The trade
/// stays closed and the merchant never had the money.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct LatePayment {
    /// What closed the trade before the payment arrived.
    pub after: CloseReason,
    pub parts: Vec<FundPart>,
    pub charged_at: Timestamp,
    pub refunded_at: Timestamp,
}

/// A trade (apis.md §3).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Trade {
    pub trade_no: String,
    pub out_trade_no: String,
    pub app_id: String,
    pub pid: String,
    pub smid: String,
    pub origin: Origin,
    pub status: TradeStatus,
    pub total: Fen,
    pub subject: String,
    pub body: Option<String>,
    pub store_id: Option<String>,
    pub terminal_id: Option<String>,
    pub operator_id: Option<String>,
    pub passback_params: Option<String>,
    pub merchant_order_no: Option<String>,
    pub disable_pay_channels: Option<String>,
    pub ext_user_info: Option<serde_json::Value>,
    pub buyer_id: String,
    pub instrument: Instrument,
    pub funding: Vec<FundPart>,
    pub fee_rate: Rate,
    pub fee: Fen,
    pub fee_returned: Fen,
    pub refunds: Vec<Refund>,
    pub created_at: Timestamp,
    pub paid_at: Option<Timestamp>,
    pub closed_at: Option<Timestamp>,
    /// An unpaid trade closes then (timeout_express / time_expire).
    pub expires_at: Timestamp,
    /// A paid trade becomes TRADE_FINISHED then (refund window, R10.4).
    pub finish_at: Option<Timestamp>,
    pub close_reason: Option<CloseReason>,
    pub notify_url: Option<String>,
    pub sign_type: String,
    pub charset: String,
    /// Fault: the trade pays itself after this many queries.
    pub pay_after_queries: Option<u32>,
    pub queries: u32,
    /// Fault: the buyer's payment arrives after the trade closes in one of
    /// these ways, and is refunded.
    #[serde(default)]
    pub late_pay_after: Vec<CloseReason>,
    /// The payment that arrived after the trade closed, and its refund.
    #[serde(default)]
    pub late_payment: Option<LatePayment>,
    /// `settlement_id`: the clearing id of the payment (institution indirect
    /// mode, apis.md §2.1, §2.4).
    #[serde(default)]
    pub settlement_id: Option<String>,
    /// The contract allows no refunds (`refund_window_months: 0`): the trade
    /// was `TRADE_FINISHED` from its payment (apis.md §3, transition 6).
    #[serde(default)]
    pub no_refund: bool,
    /// The code the trade was paid with (for idempotent repeats); masked.
    pub auth_code_masked: Option<String>,
}

impl Trade {
    pub fn refunded(&self) -> Fen {
        Fen::sum(self.refunds.iter().map(|r| r.amount)).unwrap_or(Fen::ZERO)
    }

    /// What the merchant receives: the total minus merchant-funded vouchers.
    pub fn receipt_amount(&self) -> Fen {
        let merchant = Fen::sum(
            self.funding
                .iter()
                .filter(|p| p.channel.is_merchant_funded())
                .map(|p| p.amount),
        )
        .unwrap_or(Fen::ZERO);
        self.total.checked_sub(merchant).unwrap_or(Fen::ZERO)
    }

    /// The buyer's own money: the total minus vouchers and points.
    pub fn buyer_pay_amount(&self) -> Fen {
        Fen::sum(
            self.funding
                .iter()
                .filter(|p| !p.channel.is_discount())
                .map(|p| p.amount),
        )
        .unwrap_or(Fen::ZERO)
    }

    pub fn point_amount(&self) -> Fen {
        Fen::sum(
            self.funding
                .iter()
                .filter(|p| p.channel == FundChannel::Point)
                .map(|p| p.amount),
        )
        .unwrap_or(Fen::ZERO)
    }

    pub fn merchant_discount(&self) -> Fen {
        self.total
            .checked_sub(self.receipt_amount())
            .unwrap_or(Fen::ZERO)
    }

    pub fn platform_discount(&self) -> Fen {
        Fen::sum(
            self.funding
                .iter()
                .filter(|p| matches!(p.channel, FundChannel::Coupon | FundChannel::Discount))
                .map(|p| p.amount),
        )
        .unwrap_or(Fen::ZERO)
    }
}

/// A notification and its delivery attempts (R7).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Notice {
    pub notify_id: String,
    pub app_id: String,
    pub trade_no: String,
    pub out_trade_no: String,
    pub url: String,
    pub trade_status: String,
    /// Every field but `notify_time`, `sign` and `sign_type`.
    pub fields: Vec<(String, String)>,
    pub sign_type: String,
    pub charset: String,
    pub created_at: Timestamp,
    /// When the next attempt is due; `None` once delivered or given up.
    pub next_due: Option<Timestamp>,
    pub attempts: Vec<Attempt>,
    pub state: NoticeState,
    /// Creation order, to deliver in order (or shuffled, as a fault).
    pub seq: u64,
    /// Fault: deliver every attempt twice.
    pub duplicate: bool,
    /// Fault: deliver with others due at the same time in reverse order.
    pub shuffled: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum NoticeState {
    Pending,
    Delivered,
    GaveUp,
}

/// One delivery attempt and its answer.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Attempt {
    pub number: u32,
    pub at: Timestamp,
    /// `success`, `http 500`, `body "fail"`, `injected failure`, `transport: …`.
    pub outcome: String,
    pub acknowledged: bool,
    pub duplicate: bool,
}

/// An OAuth grant: an authorisation code, then access and refresh tokens.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct OauthGrant {
    pub app_id: String,
    pub buyer_id: String,
    pub scope: String,
    pub code: String,
    pub code_expires_at: Timestamp,
    pub code_used: bool,
    pub access_token: Option<String>,
    pub access_expires_at: Option<Timestamp>,
    pub refresh_token: Option<String>,
    pub refresh_expires_at: Option<Timestamp>,
}

/// What kind of money movement a ledger entry records.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LedgerKind {
    /// The buyer paid (one entry per funding source).
    Charge,
    /// Money went back to the buyer (one entry per funding source).
    Refund,
    /// The acquirer's fee on a payment (R9.3).
    Fee,
    /// Fee returned on a refund (R9.4).
    FeeReturn,
    /// A cancel closed or reversed the trade.
    Cancellation,
    /// A payment that arrived after the trade closed, returned automatically.
    AutoRefund,
    /// Funds paid out to the acquirer's bank account (R9.2).
    Payout,
}

/// One money movement Alipay made. Amounts are yuan strings in JSON.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct LedgerEntry {
    pub seq: u64,
    pub at: Timestamp,
    /// Beijing business date, `yyyy-MM-dd`.
    pub date: String,
    pub kind: LedgerKind,
    pub app_id: String,
    pub pid: String,
    pub smid: Option<String>,
    pub trade_no: Option<String>,
    pub out_trade_no: Option<String>,
    pub out_request_no: Option<String>,
    pub buyer_id: Option<String>,
    pub channel: Option<String>,
    pub amount: Fen,
}

/// Everything the sandbox knows. Tables are keyed by their natural ids.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct State {
    pub meta: Meta,
    pub apps: BTreeMap<String, App>,
    pub merchants: BTreeMap<String, Merchant>,
    pub buyers: BTreeMap<String, Buyer>,
    pub codes: BTreeMap<String, PaymentCode>,
    pub qrs: BTreeMap<String, QrOrder>,
    pub trades: BTreeMap<String, Trade>,
    pub notices: BTreeMap<String, Notice>,
    pub grants: BTreeMap<String, OauthGrant>,
    pub ledger: Vec<LedgerEntry>,
    pub faults: Vec<FaultRule>,
    /// Daily bills, keyed `<pid>/<yyyyMMdd>` (the files are in the bill store).
    #[serde(default)]
    pub bills: BTreeMap<String, crate::bills::BillRecord>,
    /// Settlement payouts, keyed `<app_id>/<yyyy-MM-dd>`.
    #[serde(default)]
    pub payouts: BTreeMap<String, crate::settlement::Payout>,
    /// SFTP credentials per acquirer PID.
    #[serde(default)]
    pub sftp_users: BTreeMap<String, crate::sftp::SftpUser>,
    /// How far bills and payouts have got.
    #[serde(default)]
    pub billing: crate::bills::BillingCursor,
    /// Certificate mode's hierarchy, made when an app first needs it.
    #[serde(default)]
    pub certs: Option<crate::certs::CertsRecord>,
}
