//! Helpers of the bill, SFTP and settlement tests: moving the clock to a
//! Beijing instant, fetching a bill through the download URL, reading it, and
//! checking it against the ledger.

use std::collections::BTreeSet;

use jianlian_alipay::api::bill::{BillDownloadUrlQuery, BillDownloadUrlQueryResponse};
use jianlian_alipay::time::parse_beijing;
use jianlian_alipay::{Fen, Outcome};
use jianlian_sandbox::bills::read::{Entry, Table, entries};
use jianlian_sandbox::model::{LedgerEntry, LedgerKind};

use crate::common::TestApp;

/// Advances the sandbox (running due work) to a Beijing wall-clock instant.
pub async fn advance_to(t: &TestApp, at: &str) {
    let target = parse_beijing(at).unwrap();
    let secs = target.duration_since(t.sandbox.now()).as_secs();
    assert!(secs >= 0, "{at} is in the past");
    t.advance(secs).await;
}

pub async fn url_for(t: &TestApp, date: &str) -> Outcome<BillDownloadUrlQueryResponse> {
    t.call(&BillDownloadUrlQuery {
        bill_type: "trade".into(),
        bill_date: date.into(),
        ..Default::default()
    })
    .await
}

/// The day's trade bill through `alipay.data.dataservice.bill.downloadurl.query`.
pub async fn download(t: &TestApp, date: &str) -> Vec<u8> {
    let url = url_for(t, date)
        .await
        .success()
        .expect("a download URL")
        .bill_download_url
        .expect("bill_download_url");
    let r = reqwest::get(&url).await.unwrap();
    assert_eq!(r.status(), 200, "{url}");
    r.bytes().await.unwrap().to_vec()
}

/// A bill zip read back.
pub struct Bill {
    pub entries: Vec<Entry>,
    pub detail: Table,
    pub summary: Table,
}

pub fn read(bytes: &[u8]) -> Bill {
    let entries = entries(bytes).unwrap();
    assert_eq!(entries.len(), 2, "a bill holds the detail and the summary");
    let detail = Table::parse(&entries[0].text);
    let summary = Table::parse(&entries[1].text);
    Bill {
        entries,
        detail,
        summary,
    }
}

pub fn fen(cell: &str) -> Fen {
    Fen::parse_signed_yuan(cell).unwrap_or_else(|e| panic!("{cell:?}: {e}"))
}

pub fn rows_of<'a>(t: &'a Table, kind: &str) -> Vec<&'a Vec<String>> {
    t.rows
        .iter()
        .filter(|r| t.get(r, "业务类型") == Some(kind))
        .collect()
}

pub fn col_sum(t: &Table, rows: &[&Vec<String>], column: &str) -> Fen {
    Fen::sum(rows.iter().map(|r| fen(t.get(r, column).unwrap()))).unwrap()
}

/// The ledger of the sandbox over HTTP (`GET /sandbox/ledger?date=`).
pub async fn ledger_http(t: &TestApp, date: &str) -> Vec<LedgerEntry> {
    let url = format!("{}/sandbox/ledger?date={date}", t.sandbox.base_url());
    let text = reqwest::get(&url).await.unwrap().text().await.unwrap();
    let v: serde_json::Value = serde_json::from_str(&text).unwrap();
    serde_json::from_value(v["entries"].clone()).unwrap()
}

fn merchant_funded(e: &LedgerEntry) -> bool {
    matches!(e.channel.as_deref(), Some("MCOUPON" | "MDISCOUNT"))
}

/// The bill lists each charged trade and each refund of the day exactly once,
/// and its amounts and fees add up to the ledger's, to the fen. Payments
/// returned at once because their trade had closed (`auto_refund`) are not
/// trades of the merchant.
pub fn assert_matches_ledger(detail: &Table, ledger: &[LedgerEntry], pid: &str) {
    let ledger: Vec<&LedgerEntry> = ledger.iter().filter(|e| e.pid == pid).collect();
    let auto: BTreeSet<&str> = ledger
        .iter()
        .filter(|e| e.kind == LedgerKind::AutoRefund)
        .filter_map(|e| e.trade_no.as_deref())
        .collect();
    let of = |kind: LedgerKind, pick: &dyn Fn(&LedgerEntry) -> bool| {
        Fen::sum(
            ledger
                .iter()
                .filter(|e| e.kind == kind && pick(e))
                .filter(|e| !e.trade_no.as_deref().is_some_and(|n| auto.contains(n)))
                .map(|e| e.amount),
        )
        .unwrap()
    };
    let trades = rows_of(detail, "交易");
    let refunds = rows_of(detail, "退款");
    assert_eq!(trades.len() + refunds.len(), detail.rows.len());

    let charged: BTreeSet<&str> = ledger
        .iter()
        .filter(|e| e.kind == LedgerKind::Charge)
        .filter_map(|e| e.trade_no.as_deref())
        .filter(|n| !auto.contains(n))
        .collect();
    let billed: Vec<&str> = trades
        .iter()
        .map(|r| detail.get(r, "支付宝交易号").unwrap())
        .collect();
    assert_eq!(
        billed.iter().copied().collect::<BTreeSet<_>>(),
        charged,
        "each trade charged that day is billed"
    );
    assert_eq!(billed.len(), charged.len(), "no trade billed twice");

    let refunded: BTreeSet<(&str, &str)> = ledger
        .iter()
        .filter(|e| e.kind == LedgerKind::Refund)
        .filter_map(|e| Some((e.trade_no.as_deref()?, e.out_request_no.as_deref()?)))
        .collect();
    let billed_refunds: Vec<(&str, &str)> = refunds
        .iter()
        .map(|r| {
            (
                detail.get(r, "支付宝交易号").unwrap(),
                detail.get(r, "退款批次号/请求号").unwrap(),
            )
        })
        .collect();
    assert_eq!(
        billed_refunds.iter().copied().collect::<BTreeSet<_>>(),
        refunded
    );
    assert_eq!(
        billed_refunds.len(),
        refunded.len(),
        "no refund billed twice"
    );

    let all = |_: &LedgerEntry| true;
    let neg = |f: Fen| f.checked_neg().unwrap();
    assert_eq!(
        col_sum(detail, &trades, "订单金额（元）"),
        of(LedgerKind::Charge, &all)
    );
    assert_eq!(
        col_sum(detail, &trades, "商家优惠（元）"),
        of(LedgerKind::Charge, &merchant_funded)
    );
    assert_eq!(
        col_sum(detail, &trades, "商家实收（元）"),
        of(LedgerKind::Charge, &|e| !merchant_funded(e))
    );
    assert_eq!(
        col_sum(detail, &refunds, "订单金额（元）"),
        neg(of(LedgerKind::Refund, &all))
    );
    assert_eq!(
        col_sum(detail, &refunds, "商家实收（元）"),
        neg(of(LedgerKind::Refund, &|e| !merchant_funded(e)))
    );
    assert_eq!(
        col_sum(detail, &trades, "服务费（元）"),
        neg(of(LedgerKind::Fee, &all))
    );
    assert_eq!(
        col_sum(detail, &refunds, "服务费（元）"),
        of(LedgerKind::FeeReturn, &all)
    );
}

/// The summary's 合计 row is the sum of the detail columns of the same name,
/// and each store row the sum of that store's rows.
pub fn assert_summary_adds_up(bill: &Bill) {
    let d = &bill.detail;
    let s = &bill.summary;
    let total = s.rows.iter().find(|r| r[0] == "合计").expect("a 合计 row");
    let all: Vec<&Vec<String>> = d.rows.iter().collect();
    assert_eq!(
        s.get(total, "交易订单总笔数").unwrap(),
        rows_of(d, "交易").len().to_string()
    );
    assert_eq!(
        s.get(total, "退款订单总笔数").unwrap(),
        rows_of(d, "退款").len().to_string()
    );
    for column in [
        "订单金额（元）",
        "商家实收（元）",
        "支付宝优惠（元）",
        "商家优惠（元）",
        "卡消费金额（元）",
        "服务费（元）",
        "分润（元）",
    ] {
        assert_eq!(
            fen(s.get(total, column).unwrap()),
            col_sum(d, &all, column),
            "{column}"
        );
    }
    let net = fen(s.get(total, "实收净额（元）").unwrap());
    assert_eq!(
        net,
        col_sum(d, &all, "商家实收（元）")
            .checked_add(col_sum(d, &all, "服务费（元）"))
            .unwrap()
    );
    for row in s.rows.iter().filter(|r| r[0] != "合计") {
        let store = s.get(row, "门店编号").unwrap();
        let mine: Vec<&Vec<String>> = d
            .rows
            .iter()
            .filter(|r| d.get(r, "门店编号") == Some(store))
            .collect();
        assert_eq!(
            fen(s.get(row, "订单金额（元）").unwrap()),
            col_sum(d, &mine, "订单金额（元）")
        );
    }
}
