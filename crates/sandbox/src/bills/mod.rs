//! Daily bills (R11, apis.md §5): at 09:00 Beijing time on T+1 the scheduler
//! writes, for every acquirer (PID), the day-T trade bill and the bank
//! clearing file; `alipay.data.dataservice.bill.downloadurl.query` hands out a
//! download URL valid 30 s of virtual time, and SFTP serves the same files.
//!
//! A PID with no row that day gets no bill (`isp.bill_not_exist`) unless one
//! of its apps asked for empty bills (`empty_bills`, R11.3).

pub mod format;
pub mod read;
pub mod rows;
pub mod store;

use std::collections::BTreeMap;
use std::io::Cursor;
use std::sync::Arc;

use axum::extract::{Query, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use jiff::civil::Date;
use jiff::{SignedDuration, Timestamp};
use serde::{Deserialize, Serialize};

use jianlian_alipay::api::bill::{BillDownloadUrlQuery, BillDownloadUrlQueryResponse};
use jianlian_alipay::time::{beijing_at, beijing_date, format_beijing};
use jianlian_alipay::{Code, ErrorReply, Fen};

use crate::api::{Answer, Call, parse_biz, reply};
use crate::calendar::parse_date;
use crate::sandbox::Shared;
use crate::scheduler::TimedWork;
use crate::state::Core;

use self::format::{Flavor, Header};
use self::store::BillStore;

/// Bills of day T are written at this Beijing hour of T+1 (R11.2).
pub const BILL_HOUR: i8 = 9;
/// How long a download URL works, in virtual seconds (apis.md §5.1).
pub const DOWNLOAD_URL_TTL_SECS: i64 = 30;
/// Live download URLs kept at most (expired ones are dropped first).
const DOWNLOADS_MAX: usize = 10_000;
/// Days billed by one run; a long backlog (a real-time sandbox restarted after
/// weeks) is worked off over several runs, keeping each lock hold short.
const BILL_DAYS_PER_RUN_MAX: usize = 31;
/// Alipay serves daily bills from this date on.
const FIRST_BILL_DATE: Date = jiff::civil::date(2016, 1, 1);

/// One file of a bill.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BillFile {
    pub name: String,
    pub flavor: Flavor,
    pub size: u64,
}

/// A day's bill of one acquirer: which files exist and what they add up to.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct BillRecord {
    pub pid: String,
    pub date: Date,
    pub generated_at: Timestamp,
    pub files: Vec<BillFile>,
    pub trade_rows: usize,
    pub refund_rows: usize,
    /// Characters GBK cannot write, written as `?`.
    pub replaced_chars: usize,
    /// 订单金额, 商家实收, 服务费 and 实收净额 over all rows.
    pub total: Fen,
    pub receipt: Fen,
    pub fee: Fen,
    pub net: Fen,
    /// Set when the files could not be written (nothing is served then).
    pub error: Option<String>,
}

impl BillRecord {
    /// `<pid>/<yyyyMMdd>`: the record's id and the store folder of its files.
    pub fn key(pid: &str, date: Date) -> String {
        format!("{pid}/{}", ymd(date))
    }

    pub fn file(&self, flavor: Flavor) -> Option<&BillFile> {
        self.files.iter().find(|f| f.flavor == flavor)
    }

    /// The store key of one of its files.
    pub fn file_key(&self, name: &str) -> String {
        format!("{}/{name}", BillRecord::key(&self.pid, self.date))
    }
}

/// How far the daily work has got (one journaled record).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct BillingCursor {
    /// The last day whose bills were written.
    pub bills_through: Option<Date>,
    /// The last day whose payouts were planned.
    pub settled_through: Option<Date>,
}

/// A download URL handed out (kept in memory: it lives 30 s).
#[derive(Debug, Clone)]
pub struct DownloadGrant {
    pub key: String,
    pub name: String,
    pub expires_at: Timestamp,
}

/// `yyyyMMdd`.
pub fn ymd(date: Date) -> String {
    format!("{:04}{:02}{:02}", date.year(), date.month(), date.day())
}

/// Parses `yyyyMMdd`.
pub fn parse_ymd(text: &str) -> Option<Date> {
    if text.len() != 8 || !text.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let (y, rest) = text.split_at(4);
    let (m, d) = rest.split_at(2);
    parse_date(&format!("{y}-{m}-{d}"))
}

/// When the bill of `date` is written.
pub fn bill_due(date: Date) -> Timestamp {
    beijing_at(date.tomorrow().unwrap_or(date), BILL_HOUR, 0)
}

/// The first business day of the sandbox: the day its first app was made.
pub fn first_day(core: &Core) -> Option<Date> {
    core.st
        .apps
        .values()
        .map(|a| beijing_date(a.created_at))
        .min()
}

fn next_bill_day(core: &Core) -> Option<Date> {
    match core.st.billing.bills_through {
        Some(d) => d.tomorrow().ok(),
        None => first_day(core),
    }
}

/// Writes both files of a PID's day into the store and describes them.
pub fn write_bill(
    store: &BillStore,
    pid: &str,
    date: Date,
    now: Timestamp,
    rows: &[rows::Row<'_>],
    buyers: &BTreeMap<String, crate::model::Buyer>,
) -> BillRecord {
    let header = Header {
        pid,
        date,
        exported_at: now,
    };
    let mut record = BillRecord {
        pid: pid.to_owned(),
        date,
        generated_at: now,
        files: Vec::new(),
        trade_rows: 0,
        refund_rows: 0,
        replaced_chars: 0,
        total: Fen::ZERO,
        receipt: Fen::ZERO,
        fee: Fen::ZERO,
        net: Fen::ZERO,
        error: None,
    };
    for flavor in [Flavor::Trade, Flavor::Clearing] {
        let name = format::zip_name(pid, date, flavor);
        let written = format::write_zip(Cursor::new(Vec::new()), &header, rows, flavor, buyers)
            .map_err(|e| e.to_string())
            .and_then(|(out, w)| {
                let bytes = out.into_inner();
                let size = u64::try_from(bytes.len()).unwrap_or(u64::MAX);
                store
                    .put(&record.file_key(&name), bytes)
                    .map_err(|e| format!("storing {name}: {e}"))?;
                Ok((size, w))
            });
        match written {
            Ok((size, w)) => {
                record.files.push(BillFile { name, flavor, size });
                record.trade_rows = w.trade_rows;
                record.refund_rows = w.refund_rows;
                record.replaced_chars = w.replaced_chars;
                record.total = w.totals.total;
                record.receipt = w.totals.receipt;
                record.fee = w.totals.fee;
                record.net = w.totals.net;
            }
            Err(e) => {
                tracing::error!(pid, %date, "bill: {e}");
                record.files.clear();
                record.error = Some(e);
                break;
            }
        }
    }
    record
}

impl Core {
    /// Writes the bills of `date` for every acquirer that existed then.
    /// Returns how many bills were written.
    pub fn make_bills(&mut self, date: Date, now: Timestamp, store: &BillStore) -> usize {
        let day_end = beijing_at(date.tomorrow().unwrap_or(date), 0, 0);
        // PID → whether it wants a bill on a day without rows.
        let mut pids: BTreeMap<&str, bool> = BTreeMap::new();
        for app in self.st.apps.values().filter(|a| a.created_at < day_end) {
            let empty = pids.entry(app.pid.as_str()).or_default();
            *empty |= app.empty_bills;
        }
        let groups = rows::rows_of_day(self.st.trades.values(), date, |t| t.pid.as_str());
        let mut records = Vec::new();
        for (pid, empty_wanted) in &pids {
            let day_rows = groups.get(pid).map_or(&[][..], Vec::as_slice);
            if day_rows.is_empty() && !empty_wanted {
                continue;
            }
            records.push(write_bill(store, pid, date, now, day_rows, &self.st.buyers));
        }
        let n = records.len();
        for r in records {
            self.put_bill(r);
        }
        n
    }

    /// `alipay.data.dataservice.bill.downloadurl.query` (apis.md §5.1).
    pub fn bill_download_url(&mut self, call: &Call) -> Answer {
        let q: BillDownloadUrlQuery = parse_biz(call)?;
        let invalid =
            |m: String| ErrorReply::business("isv.invalid_arguments", format!("参数无效: {m}"));
        if q.bill_type != "trade" {
            return Err(invalid(format!(
                "bill_type {:?}: the sandbox produces trade bills only",
                q.bill_type
            )));
        }
        if q.smid.is_some() {
            return Err(invalid(
                "smid is only for trade_zft_merchant bills".to_owned(),
            ));
        }
        let today = beijing_date(call.now);
        let date = match parse_date(&q.bill_date) {
            Some(d) => d,
            None if q.bill_date.len() == 7
                && parse_date(&format!("{}-01", q.bill_date)).is_some() =>
            {
                return Err(invalid(format!(
                    "bill_date {}: monthly bills are not produced by the sandbox (daily yyyy-MM-dd only)",
                    q.bill_date
                )));
            }
            None => {
                return Err(invalid(format!(
                    "bill_date {:?} is not yyyy-MM-dd",
                    q.bill_date
                )));
            }
        };
        if date >= today {
            return Err(invalid(format!(
                "bill_date {date} is not before today ({today}): a day's bill is ready at 09:00 the next day"
            )));
        }
        if date < FIRST_BILL_DATE {
            return Err(invalid(format!(
                "bill_date {date} is before {FIRST_BILL_DATE}"
            )));
        }
        let not_exist =
            |m: String| ErrorReply::business("isp.bill_not_exist", format!("账单不存在: {m}"));
        let record = match self.st.bills.get(&BillRecord::key(&call.app.pid, date)) {
            Some(r) => r,
            None if call.now < bill_due(date) => {
                return Err(not_exist(format!(
                    "the bill of {date} is not generated yet (ready at {})",
                    format_beijing(bill_due(date))
                )));
            }
            None => {
                return Err(not_exist(format!(
                    "no bill for {date}: no trade or refund that day"
                )));
            }
        };
        if let Some(e) = &record.error {
            return Err(ErrorReply::new(
                Code::ServiceUnavailable,
                "isp.unknow-error",
                format!("the bill of {date} could not be produced: {e}"),
            ));
        }
        let Some(file) = record.file(Flavor::Trade) else {
            return Err(not_exist(format!("no trade bill for {date}")));
        };
        let key = record.file_key(&file.name);
        let name = file.name.clone();
        let pid = record.pid.clone();
        let token = self.ids().hex(32);
        let expires_at = call
            .now
            .checked_add(SignedDuration::from_secs(DOWNLOAD_URL_TTL_SECS))
            .unwrap_or(call.now);
        self.downloads.retain(|_, g| g.expires_at > call.now);
        if self.downloads.len() >= DOWNLOADS_MAX {
            return Err(ErrorReply::new(
                Code::CallLimited,
                "isv.app-call-limited",
                format!(
                    "more than {DOWNLOADS_MAX} live download URLs; retry in {DOWNLOAD_URL_TTL_SECS} s"
                ),
            ));
        }
        self.downloads.insert(
            token.clone(),
            DownloadGrant {
                key,
                name: name.clone(),
                expires_at,
            },
        );
        let url = format!(
            "{}/downloadBillFile.resource?bizType=trade&userId={pid}&fileType=csv.zip&bizDates={}&downloadFileName={name}&fileId={token}",
            self.base_url,
            ymd(date)
        );
        reply(
            Code::Success,
            &BillDownloadUrlQueryResponse {
                bill_download_url: Some(url),
                ..Default::default()
            },
        )
    }
}

/// The daily bills as scheduled work.
#[derive(Debug)]
pub struct BillWork {
    pub store: Arc<BillStore>,
}

impl TimedWork for BillWork {
    fn name(&self) -> &'static str {
        "daily bills"
    }

    fn next_due(&self, core: &Core) -> Option<Timestamp> {
        next_bill_day(core).map(bill_due)
    }

    fn run(&self, core: &mut Core, now: Timestamp) -> usize {
        let mut written = 0;
        for _ in 0..BILL_DAYS_PER_RUN_MAX {
            let Some(day) = next_bill_day(core) else {
                break;
            };
            if bill_due(day) > now {
                break;
            }
            written += core.make_bills(day, now, &self.store);
            core.st.billing.bills_through = Some(day);
            core.touch_billing();
        }
        written
    }
}

/// `GET /downloadBillFile.resource?…&fileId=`: the file behind a download
/// URL, while it is valid.
pub async fn download(
    State(s): State<Arc<Shared>>,
    Query(q): Query<BTreeMap<String, String>>,
) -> Response {
    let text = |status: StatusCode, body: String| (status, body).into_response();
    let Some(token) = q.get("fileId") else {
        return text(StatusCode::BAD_REQUEST, "fileId is missing".to_owned());
    };
    let now = s.clock.now();
    let Some(grant) = s.read(|c| c.downloads.get(token).cloned()) else {
        return text(
            StatusCode::NOT_FOUND,
            "unknown download link: ask alipay.data.dataservice.bill.downloadurl.query for one"
                .to_owned(),
        );
    };
    if grant.expires_at <= now {
        return text(
            StatusCode::GONE,
            format!(
                "the download link expired at {} (links live {DOWNLOAD_URL_TTL_SECS} s): ask again",
                format_beijing(grant.expires_at)
            ),
        );
    }
    match s.bill_store.get(&grant.key) {
        Ok(Some(bytes)) => {
            let mut r = (StatusCode::OK, bytes).into_response();
            let h = r.headers_mut();
            h.insert(
                header::CONTENT_TYPE,
                HeaderValue::from_static("application/zip"),
            );
            if let Ok(v) =
                HeaderValue::from_str(&format!("attachment; filename=\"{}\"", grant.name))
            {
                h.insert(header::CONTENT_DISPOSITION, v);
            }
            r
        }
        Ok(None) => text(
            StatusCode::NOT_FOUND,
            format!("the bill file {} is missing from the store", grant.name),
        ),
        Err(e) => {
            tracing::error!("bill store: {e}");
            text(
                StatusCode::INTERNAL_SERVER_ERROR,
                "the bill could not be read".to_owned(),
            )
        }
    }
}
