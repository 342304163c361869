//! The control API of bills, SFTP credentials, settlement payouts and the
//! working-day calendar (`/sandbox/bills`, `/sandbox/sftp`,
//! `/sandbox/settlements`, `/sandbox/calendar`), and the typed operations
//! behind it that the in-process handle offers too.

use std::sync::Arc;

use axum::Json;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use jiff::civil::Date;
use serde::Deserialize;
use serde_json::json;

use crate::SandboxError;
use crate::bills::{BillRecord, parse_ymd};
use crate::calendar::parse_date;
use crate::control::{Res, body, to_json};
use crate::sandbox::Shared;
use crate::settlement::{self, Payout, PayoutFilter};
use crate::sftp::SftpUserSpec;

impl Shared {
    /// Bills, optionally of one acquirer and/or one date, by PID then date.
    pub fn bills(&self, pid: Option<&str>, date: Option<Date>) -> Vec<BillRecord> {
        self.read(|c| {
            c.st.bills
                .values()
                .filter(|b| pid.is_none_or(|p| b.pid == p))
                .filter(|b| date.is_none_or(|d| b.date == d))
                .cloned()
                .collect()
        })
    }

    /// The bytes of one bill file.
    pub fn bill_file(&self, pid: &str, date: Date, name: &str) -> Result<Bytes, SandboxError> {
        let key = self
            .read(|c| {
                c.st.bills
                    .get(&BillRecord::key(pid, date))
                    .filter(|r| r.files.iter().any(|f| f.name == name))
                    .map(|r| r.file_key(name))
            })
            .ok_or_else(|| {
                SandboxError::NotFound(format!("no bill file {name} of {pid} for {date}"))
            })?;
        self.bill_store
            .get(&key)
            .map_err(|e| {
                tracing::error!("bill store: {e}");
                SandboxError::NotFound(format!("the bill file {name} cannot be read: {e}"))
            })?
            .ok_or_else(|| SandboxError::NotFound(format!("the bill file {name} is missing")))
    }

    /// Payouts matching a filter, by business date then app.
    pub fn settlements(&self, filter: &PayoutFilter) -> Result<Vec<Payout>, SandboxError> {
        self.read(|c| settlement::list(&c.st.payouts, filter))
            .map_err(SandboxError::BadRequest)
    }
}

fn date_param(name: &str, text: Option<&str>) -> Result<Option<Date>, SandboxError> {
    text.map(|t| {
        parse_date(t)
            .ok_or_else(|| SandboxError::BadRequest(format!("{name} {t:?} is not yyyy-MM-dd")))
    })
    .transpose()
}

#[derive(Debug, Deserialize)]
pub struct BillFilter {
    pid: Option<String>,
    /// `yyyy-MM-dd`.
    date: Option<String>,
}

/// `GET /sandbox/bills?pid=&date=`.
pub async fn list_bills(State(s): State<Arc<Shared>>, Query(f): Query<BillFilter>) -> Res {
    let date = date_param("date", f.date.as_deref())?;
    Ok(Json(json!({"bills": s.bills(f.pid.as_deref(), date)})))
}

/// `GET /sandbox/bills/{pid}/{yyyyMMdd}/{file}`: the file's bytes.
pub async fn bill_file(
    State(s): State<Arc<Shared>>,
    Path((pid, day, name)): Path<(String, String, String)>,
) -> Result<Response, SandboxError> {
    let date = parse_ymd(&day)
        .ok_or_else(|| SandboxError::BadRequest(format!("date {day:?} is not yyyyMMdd")))?;
    let bytes = s.bill_file(&pid, date, &name)?;
    let mut r = (StatusCode::OK, bytes).into_response();
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/zip"),
    );
    Ok(r)
}

/// `GET /sandbox/sftp`: where the SFTP server listens and its host key.
pub async fn sftp_info(State(s): State<Arc<Shared>>) -> Res {
    match &s.sftp {
        Some(info) => to_json(info),
        None => Err(SandboxError::NotFound(
            "no SFTP server: start the sandbox with --sftp-listen ADDR".to_owned(),
        )),
    }
}

/// `PUT /sandbox/sftp/users/{pid}`.
pub async fn put_sftp_user(
    State(s): State<Arc<Shared>>,
    Path(pid): Path<String>,
    text: String,
) -> Res {
    let spec: SftpUserSpec = body(&text)?;
    let view = tokio::task::spawn_blocking(move || s.set_sftp_user(&pid, spec))
        .await
        .map_err(|e| SandboxError::Startup(format!("hashing the password: {e}")))??;
    to_json(&view)
}

/// `GET /sandbox/sftp/users/{pid}`.
pub async fn get_sftp_user(State(s): State<Arc<Shared>>, Path(pid): Path<String>) -> Res {
    let view = s
        .sftp_user(&pid)
        .ok_or_else(|| SandboxError::NotFound(format!("no SFTP credentials for {pid}")))?;
    to_json(&view)
}

/// `DELETE /sandbox/sftp/users/{pid}`.
pub async fn delete_sftp_user(State(s): State<Arc<Shared>>, Path(pid): Path<String>) -> Res {
    Ok(Json(json!({"deleted": s.delete_sftp_user(&pid)?})))
}

/// `GET /sandbox/settlements?date=&business_date=&app_id=&pid=`.
pub async fn settlements(State(s): State<Arc<Shared>>, Query(f): Query<PayoutFilter>) -> Res {
    Ok(Json(json!({"settlements": s.settlements(&f)?})))
}

#[derive(Debug, Deserialize)]
pub struct CalendarQuery {
    date: Option<String>,
}

/// `GET /sandbox/calendar?date=`: the years known, or one day and the next
/// working day after it.
pub async fn calendar(State(s): State<Arc<Shared>>, Query(q): Query<CalendarQuery>) -> Res {
    let Some(date) = date_param("date", q.date.as_deref())? else {
        return Ok(Json(json!({"years": s.calendar.years()})));
    };
    let day = s
        .calendar
        .day(date)
        .map_err(|e| SandboxError::BadRequest(e.to_string()))?;
    let next = s
        .calendar
        .next_working_day_after(date)
        .map_err(|e| e.to_string());
    let mut v = serde_json::to_value(&day).map_err(|e| SandboxError::BadRequest(e.to_string()))?;
    if let Some(o) = v.as_object_mut() {
        match next {
            Ok(d) => o.insert("next_working_day".into(), d.to_string().into()),
            Err(e) => o.insert("next_working_day_error".into(), e.into()),
        };
    }
    Ok(Json(v))
}
