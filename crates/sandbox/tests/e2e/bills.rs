//! Daily bills (R11, apis.md §5): written at 09:00 on T+1 and fetched through
//! `alipay.data.dataservice.bill.downloadurl.query`; the exact comment lines,
//! 25 (trade bill) and 27 (clearing file) columns with the TAB pattern, GBK
//! names without the zip UTF-8 flag, GBK contents; every payment by payment
//! time and every refund (cancels included) by refund time, 23:59:59 on the
//! day and 00:00:00 on the next; amounts, fees and the summary adding up to
//! `GET /sandbox/ledger` to the fen; the download URL's rules and errors.

use encoding_rs::GBK;
use jianlian_alipay::Outcome;
use jianlian_alipay::api::trade::{TradeCancel, TradeRef, TradeRefund};
use jianlian_sandbox::bills::format::{CLEARING_TAIL, SUMMARY_COLUMNS, TRADE_COLUMNS, mask_logon};
use jianlian_sandbox::bills::read::Table;
use jianlian_sandbox::{AppSpec, BuyerSpec, FaultAction, FaultRule, VoucherSpec};

use crate::bill_support::*;
use crate::common::*;

fn date(text: &str) -> jiff::civil::Date {
    text.parse().unwrap()
}

fn refund(otn: &str, amount: &str, request: &str) -> TradeRefund {
    TradeRefund {
        trade: TradeRef::out_trade_no(otn),
        refund_amount: yuan(amount),
        out_request_no: Some(request.into()),
        ..Default::default()
    }
}

async fn pay(t: &TestApp, buyer: &str, otn: &str, amount: &str) -> String {
    t.call(&t.pay_req(otn, amount, &t.code(buyer).await))
        .await
        .success()
        .unwrap_or_else(|| panic!("{otn} should pay"))
        .trade_no
        .unwrap()
}

fn rule(width_before: usize, title: &str, width_after: usize) -> String {
    format!(
        "#{}{title}{}",
        "-".repeat(width_before),
        "-".repeat(width_after)
    )
}

fn trade_nos(t: &Table, kind: &str) -> Vec<String> {
    rows_of(t, kind)
        .iter()
        .map(|r| t.get(r, "商户订单号").unwrap().to_owned())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_day_bill_lists_payments_by_payment_time_and_refunds_by_refund_time() {
    let t = TestApp::new().await;
    let pid = t.app.pid.clone();
    let named = t
        .buyer(BuyerSpec {
            name: Some("张小明".into()),
            logon_id: Some("13812345621".into()),
            points: Some(100),
            vouchers: vec![VoucherSpec {
                channel: "MDISCOUNT".into(),
                amount: yuan("2.00"),
                name: Some("满减券".into()),
            }],
            ..Default::default()
        })
        .await;
    let plain = t
        .buyer(BuyerSpec {
            balance: Some(yuan("5000.00")),
            ..Default::default()
        })
        .await;
    let waiting = t
        .buyer(BuyerSpec {
            requires_password: Some(true),
            ..Default::default()
        })
        .await;

    // 2026-03-02 (Monday) 10:00: a payment with a merchant voucher and points,
    // refunded in part the same day.
    let p1 = pay(&t, &named, "P1", "88.88").await;
    assert!(t.call(&refund("P1", "8.88", "R1")).await.is_success());
    // 12:00: paid, then cancelled (a cancel that refunds).
    advance_to(&t, "2026-03-02 12:00:00").await;
    pay(&t, &plain, "P2", "10.00").await;
    let cancel = TradeCancel {
        trade: TradeRef::out_trade_no("P2"),
        ..Default::default()
    };
    assert!(t.call(&cancel).await.is_success());
    // A subject GBK cannot write in full, with a comma; a body on two lines.
    t.advance(1).await;
    let mut p3 = t.pay_req("P3", "20.00", &t.code(&plain).await);
    p3.order.subject = "咖啡🍵,大杯".into();
    p3.order.body = Some("备注\n第二行".into());
    assert!(t.call(&p3).await.is_success());
    // A payment that reaches a cancelled trade is returned: not the merchant's.
    t.sandbox
        .add_fault(FaultRule {
            id: 0,
            method: None,
            out_trade_no: Some("PC".into()),
            amount: None,
            action: FaultAction::PayAfterCancel {
                after: vec![jianlian_sandbox::model::CloseReason::Cancel],
            },
            times: Some(1),
        })
        .await
        .unwrap();
    assert!(matches!(
        t.call(&t.pay_req("PC", "7.00", &t.code(&plain).await))
            .await,
        Outcome::InProgress(_)
    ));
    let cancel_pc = TradeCancel {
        trade: TradeRef::out_trade_no("PC"),
        ..Default::default()
    };
    assert!(t.call(&cancel_pc).await.is_success());
    // Created on the 2nd, paid on the 3rd: it belongs to the 3rd.
    advance_to(&t, "2026-03-02 23:59:00").await;
    let w1 = match t
        .call(&t.pay_req("W1", "50.00", &t.code(&waiting).await))
        .await
    {
        Outcome::InProgress(r) => r.body.trade_no.unwrap(),
        other => panic!("{other:?}"),
    };
    advance_to(&t, "2026-03-02 23:59:59").await;
    pay(&t, &plain, "P4", "1.00").await;
    advance_to(&t, "2026-03-03 00:00:00").await;
    pay(&t, &plain, "P5", "2.00").await;
    advance_to(&t, "2026-03-03 00:00:30").await;
    t.sandbox.confirm(&w1).await.unwrap();
    advance_to(&t, "2026-03-03 08:00:00").await;
    assert!(t.call(&refund("P1", "10.00", "R2")).await.is_success());

    // Not before 09:00.
    let early = url_for(&t, "2026-03-02").await;
    assert_eq!(sub_code(&early), "isp.bill_not_exist");
    assert!(t.sandbox.bills(Some(&pid), None).await.is_empty());
    advance_to(&t, "2026-03-03 09:00:00").await;
    let records = t.sandbox.bills(Some(&pid), None).await;
    assert_eq!(records.len(), 1);
    assert_eq!(records[0].date, date("2026-03-02"));
    assert_eq!(records[0].replaced_chars, 1, "the emoji");

    let bytes = download(&t, "2026-03-02").await;
    let bill = read(&bytes);
    let d = &bill.detail;
    let account = format!("{pid}0156");

    // Names: GBK bytes, no UTF-8 flag anywhere.
    let detail_name = format!("{account}_20260302_业务明细.csv");
    let summary_name = format!("{account}_20260302_业务明细(汇总).csv");
    assert_eq!(bill.entries[0].name, detail_name);
    assert_eq!(bill.entries[1].name, summary_name);
    assert_eq!(
        bill.entries[0].raw_name,
        GBK.encode(&detail_name).0.to_vec()
    );
    assert_eq!(
        bill.entries[1].raw_name,
        GBK.encode(&summary_name).0.to_vec()
    );
    for e in &bill.entries {
        assert!(!e.utf8_flag_local && !e.utf8_flag_central, "{}", e.name);
        // GBK round trip: decoding then encoding gives the stored bytes.
        let (again, _, lossy) = GBK.encode(&e.text);
        assert!(!lossy);
        assert_eq!(again.as_ref(), e.bytes.as_slice());
        assert!(e.bytes.windows(2).any(|w| w == b"\r\n"), "CRLF lines");
    }

    // The comment lines and the header, exactly.
    let period = "#起始日期：[2026年03月02日 00:00:00]   终止日期：[2026年03月03日 00:00:00]";
    assert_eq!(
        d.comments,
        vec![
            "#支付宝业务明细查询".to_owned(),
            format!("#账号：[{account}]"),
            period.to_owned(),
            rule(41, "业务明细列表", 40),
        ]
    );
    assert_eq!(d.columns, TRADE_COLUMNS.map(str::to_owned).to_vec());
    assert_eq!(
        d.trailer,
        vec![
            rule(41, "业务明细列表结束", 36),
            "#交易合计：4笔，商家实收共117.88元，商家优惠共2.00元".to_owned(),
            "#退款合计：2笔，商家实收退款共-18.88元，商家优惠退款共0.00元".to_owned(),
            "#导出时间：[2026年03月03日 09:00:00]".to_owned(),
        ]
    );

    // Payment time decides the day: P4 (23:59:59) is here, P5 (00:00:00)
    // and W1 (created the 2nd, paid the 3rd) are not, nor the returned PC.
    assert_eq!(trade_nos(d, "交易"), ["P1", "P2", "P3", "P4"]);
    assert_eq!(trade_nos(d, "退款"), ["P1", "P2"]);

    // The golden rows of P1 and its refund (the TAB pattern of apis.md §5.2).
    let line = |r: &Vec<String>| r.join(",");
    assert_eq!(mask_logon("13812345621"), "138******21");
    assert_eq!(
        line(&d.rows[0]),
        format!(
            "{p1}\t,P1\t,交易\t,测试商品,2026-03-02 10:00:00,2026-03-02 10:00:00,SHKFC001\t,\t,\t,T0001\t,\
             **明(138******21)\t,88.88,86.88,0.00,1.00,0.00,2.00,2.00,满减券,0.00\t,0.00,\t,-0.33,0.00,"
        )
    );
    assert_eq!(
        line(&d.rows[1]),
        format!(
            "{p1}\t,P1\t,退款\t,测试商品,2026-03-02 10:00:00,2026-03-02 10:00:00,SHKFC001\t,\t,\t,T0001\t,\
             **明(138******21)\t,-8.88,-8.88,0.00,0.00,0.00,0.00,0.00,,0.00\t,0.00,R1\t,0.03,0.00,"
        )
    );
    // The cancel's refund is requested under the out_trade_no.
    let cancel_row = rows_of(d, "退款")[1];
    assert_eq!(d.get(cancel_row, "退款批次号/请求号"), Some("P2"));
    assert_eq!(d.get(cancel_row, "订单金额（元）"), Some("-10.00"));
    // The emoji became `?` and the comma a full-width one; no line break.
    let p3_row = rows_of(d, "交易")[2];
    assert_eq!(d.get(p3_row, "商品名称"), Some("咖啡?，大杯"));
    assert_eq!(d.get(p3_row, "备注"), Some("备注 第二行"));
    for r in &d.rows {
        assert_eq!(r.len(), 25, "{r:?}");
    }

    // Everything adds up to the ledger, over HTTP.
    assert_matches_ledger(d, &ledger_http(&t, "2026-03-02").await, &pid);
    assert_summary_adds_up(&bill);
    assert_eq!(
        bill.summary.comments,
        vec![
            "#支付宝业务汇总查询".to_owned(),
            format!("#账号：[{account}]"),
            period.to_owned(),
            rule(41, "业务汇总列表", 40),
        ]
    );
    assert_eq!(
        bill.summary.columns,
        SUMMARY_COLUMNS.map(str::to_owned).to_vec()
    );
    assert_eq!(
        bill.summary.trailer,
        vec![
            rule(40, "业务汇总列表结束", 37),
            "#导出时间：[2026年03月03日 09:00:00]".to_owned(),
        ]
    );
    assert_eq!(
        bill.summary.rows[0].join(","),
        "SHKFC001\t,\t,4,2,101.00,99.00,0.00,2.00,0.00,-0.38,0.00,98.62"
    );

    // The clearing file: 27 columns, net = receipt + fee, smid, way.
    let clearing_name = format!("{account}_20260302.zip");
    let clearing = read(
        &t.sandbox
            .bill_file(&pid, date("2026-03-02"), &clearing_name)
            .await
            .unwrap(),
    );
    let c = &clearing.detail;
    let columns: Vec<&str> = TRADE_COLUMNS[..22]
        .iter()
        .chain(&CLEARING_TAIL)
        .copied()
        .collect();
    assert_eq!(c.columns, columns);
    assert_eq!(c.rows.len(), d.rows.len());
    for r in &c.rows {
        assert_eq!(r.len(), 27);
        let net = fen(c.get(r, "商家实收（元）").unwrap())
            .checked_add(fen(c.get(r, "服务费（元）").unwrap()))
            .unwrap();
        assert_eq!(fen(c.get(r, "实收净额（元）").unwrap()), net);
        assert_eq!(c.get(r, "商户识别号"), Some(t.smid.as_str()));
        assert_eq!(c.get(r, "交易方式"), Some("条码支付"));
        assert!(r[24].ends_with('\t'), "商户识别号 carries a TAB");
    }
    assert_matches_ledger(c, &ledger_http(&t, "2026-03-02").await, &pid);
    assert_eq!(records[0].net, yuan("98.62"));

    // The next day: W1 and P5, and the second refund of P1.
    advance_to(&t, "2026-03-04 09:00:00").await;
    let next = read(&download(&t, "2026-03-03").await);
    assert_eq!(trade_nos(&next.detail, "交易"), ["P5", "W1"]);
    assert_eq!(trade_nos(&next.detail, "退款"), ["P1"]);
    let w1_row = rows_of(&next.detail, "交易")[1];
    assert_eq!(
        next.detail.get(w1_row, "创建时间"),
        Some("2026-03-02 23:59:00")
    );
    assert_eq!(
        next.detail.get(w1_row, "完成时间"),
        Some("2026-03-03 00:00:30")
    );
    let r2 = rows_of(&next.detail, "退款")[0];
    assert_eq!(next.detail.get(r2, "创建时间"), Some("2026-03-02 10:00:00"));
    assert_eq!(next.detail.get(r2, "完成时间"), Some("2026-03-03 08:00:00"));
    assert_matches_ledger(&next.detail, &ledger_http(&t, "2026-03-03").await, &pid);
    assert_summary_adds_up(&next);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_download_url_follows_alipays_rules() {
    let t = TestApp::new().await;
    let buyer = t.buyer(BuyerSpec::default()).await;
    pay(&t, &buyer, "D1", "3.00").await;
    advance_to(&t, "2026-03-03 09:00:00").await;

    // Today, the future, malformed dates, other bill types: refused.
    for bad in [
        "2026-03-03",
        "2026-03-10",
        "2026/03/02",
        "2026-3-2",
        "2026-03",
        "2015-12-31",
    ] {
        assert_eq!(
            sub_code(&url_for(&t, bad).await),
            "isv.invalid_arguments",
            "{bad}"
        );
    }
    let other_type = t
        .call(&jianlian_alipay::api::bill::BillDownloadUrlQuery {
            bill_type: "signcustomer".into(),
            bill_date: "2026-03-02".into(),
            ..Default::default()
        })
        .await;
    assert_eq!(sub_code(&other_type), "isv.invalid_arguments");
    // Before the acquirer existed: no bill.
    assert_eq!(
        sub_code(&url_for(&t, "2026-03-01").await),
        "isp.bill_not_exist"
    );

    // The URL lives 30 s of virtual time.
    let url = url_for(&t, "2026-03-02")
        .await
        .success()
        .unwrap()
        .bill_download_url
        .unwrap();
    let pid = &t.app.pid;
    assert!(url.starts_with(&format!(
        "{}/downloadBillFile.resource?",
        t.sandbox.base_url()
    )));
    assert!(url.contains(&format!("downloadFileName={pid}0156_20260302.csv.zip")));
    assert!(url.contains("bizType=trade") && url.contains("bizDates=20260302"));
    let first = reqwest::get(&url).await.unwrap();
    assert_eq!(first.status(), 200);
    let bytes = first.bytes().await.unwrap();
    t.advance(29).await;
    assert_eq!(reqwest::get(&url).await.unwrap().status(), 200);
    t.advance(1).await;
    let expired = reqwest::get(&url).await.unwrap();
    assert_eq!(expired.status(), 410);
    assert!(expired.text().await.unwrap().contains("expired"));
    let forged = url.replace("fileId=", "fileId=0");
    assert_eq!(reqwest::get(&forged).await.unwrap().status(), 404);
    // A fresh URL serves the same bytes.
    assert_eq!(download(&t, "2026-03-02").await, bytes.to_vec());

    // A day without trades has no bill; another acquirer has no bill of ours.
    advance_to(&t, "2026-03-04 09:00:00").await;
    assert_eq!(
        sub_code(&url_for(&t, "2026-03-03").await),
        "isp.bill_not_exist"
    );
    let other = t.other_acquirer().await;
    let theirs = other
        .execute(
            &jianlian_alipay::api::bill::BillDownloadUrlQuery {
                bill_type: "trade".into(),
                bill_date: "2026-03-02".into(),
                ..Default::default()
            },
            &Default::default(),
        )
        .await
        .unwrap();
    assert_eq!(sub_code(&theirs), "isp.bill_not_exist");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn empty_bills_are_written_when_the_acquirer_asked_for_them() {
    let t = TestApp::with_spec(AppSpec {
        empty_bills: Some(true),
        ..Default::default()
    })
    .await;
    advance_to(&t, "2026-03-03 09:00:00").await;
    let bill = read(&download(&t, "2026-03-02").await);
    let account = format!("{}0156", t.app.pid);
    let dashes = |n: usize| "-".repeat(n);
    let expected_detail = [
        "#支付宝业务明细查询".to_owned(),
        format!("#账号：[{account}]"),
        "#起始日期：[2026年03月02日 00:00:00]   终止日期：[2026年03月03日 00:00:00]".to_owned(),
        format!("#{}业务明细列表{}", dashes(41), dashes(40)),
        TRADE_COLUMNS.join(","),
        format!("#{}业务明细列表结束{}", dashes(41), dashes(36)),
        "#交易合计：0笔，商家实收共0.00元，商家优惠共0.00元".to_owned(),
        "#退款合计：0笔，商家实收退款共0.00元，商家优惠退款共0.00元".to_owned(),
        "#导出时间：[2026年03月03日 09:00:00]".to_owned(),
    ];
    let mut text = expected_detail.join("\r\n");
    text.push_str("\r\n");
    assert_eq!(bill.entries[0].text, text);
    let expected_summary = [
        "#支付宝业务汇总查询".to_owned(),
        format!("#账号：[{account}]"),
        "#起始日期：[2026年03月02日 00:00:00]   终止日期：[2026年03月03日 00:00:00]".to_owned(),
        format!("#{}业务汇总列表{}", dashes(41), dashes(40)),
        SUMMARY_COLUMNS.join(","),
        "合计,,0,0,0.00,0.00,0.00,0.00,0.00,0.00,0.00,0.00".to_owned(),
        format!("#{}业务汇总列表结束{}", dashes(40), dashes(37)),
        "#导出时间：[2026年03月03日 09:00:00]".to_owned(),
    ];
    let mut text = expected_summary.join("\r\n");
    text.push_str("\r\n");
    assert_eq!(bill.entries[1].text, text);

    // Switched off, the next empty day has no bill.
    t.sandbox
        .update_app(
            &t.app.app_id,
            AppSpec {
                empty_bills: Some(false),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    advance_to(&t, "2026-03-04 09:00:00").await;
    assert_eq!(
        sub_code(&url_for(&t, "2026-03-03").await),
        "isp.bill_not_exist"
    );
}
