//! The bill files byte for byte (apis.md §5.2): a zip holding
//! `<account>_<yyyyMMdd>_业务明细.csv` (the detail) and
//! `<account>_<yyyyMMdd>_业务明细(汇总).csv` (the summary per store), where
//! `<account>` is the PID followed by `0156` (CNY). Entry names are GBK bytes
//! without the zip UTF-8 flag, contents GBK, lines end in CRLF, values are
//! never quoted.
//!
//! Two flavours share the layout: the trade bill (`bill_type=trade`, 25
//! detail columns) and the bank clearing file served over SFTP, whose layout
//! Alipay does not publish; the sandbox uses the 27-column institution
//! variant seen in a bank's reconciliation code (columns 0–21 of the trade
//! bill, then 服务费, 实收净额, 商户识别号 = smid, 交易方式, 备注).
//!
//! GBK cannot write every character (an emoji in a subject): such a character
//! is written as `?`, deliberately, and counted. encoding_rs would otherwise
//! silently write an HTML `&#NNNN;` reference (dependencies.md gotcha 4).

use std::collections::BTreeMap;
use std::io::{Seek, Write};

use encoding_rs::{EncoderResult, GBK};
use jiff::Timestamp;
use jiff::civil::Date;
use serde::{Deserialize, Serialize};
use zip::write::SimpleFileOptions;
use zip::{CompressionMethod, ZipWriter};

use jianlian_alipay::Fen;
use jianlian_alipay::time::beijing;

use super::rows::{Amounts, Row};
use crate::model::{Buyer, Origin};

/// Which file of a day.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Flavor {
    /// The trade bill of `alipay.data.dataservice.bill.downloadurl.query`
    /// (`<pid>0156_<yyyyMMdd>.csv.zip`, 25 columns).
    Trade,
    /// The bank clearing file of SFTP `download/YYYYMMDD/`
    /// (`<pid>0156_<yyyyMMdd>.zip`, 27 columns).
    Clearing,
}

/// The detail header of the trade bill (apis.md §5.2, full-width parentheses).
pub const TRADE_COLUMNS: [&str; 25] = [
    "支付宝交易号",
    "商户订单号",
    "业务类型",
    "商品名称",
    "创建时间",
    "完成时间",
    "门店编号",
    "门店名称",
    "操作员",
    "终端号",
    "对方账户",
    "订单金额（元）",
    "商家实收（元）",
    "支付宝红包（元）",
    "集分宝（元）",
    "支付宝优惠（元）",
    "商家优惠（元）",
    "券核销金额（元）",
    "券名称",
    "商家红包消费金额（元）",
    "卡消费金额（元）",
    "退款批次号/请求号",
    "服务费（元）",
    "分润（元）",
    "备注",
];

/// The detail header of the clearing file: trade columns 0–21, then these.
pub const CLEARING_TAIL: [&str; 5] = [
    "服务费（元）",
    "实收净额（元）",
    "商户识别号",
    "交易方式",
    "备注",
];

/// The summary header (one row per store, then 合计).
pub const SUMMARY_COLUMNS: [&str; 12] = [
    "门店编号",
    "门店名称",
    "交易订单总笔数",
    "退款订单总笔数",
    "订单金额（元）",
    "商家实收（元）",
    "支付宝优惠（元）",
    "商家优惠（元）",
    "卡消费金额（元）",
    "服务费（元）",
    "分润（元）",
    "实收净额（元）",
];

const EOL: &str = "\r\n";

/// `<pid>0156`: the account a bill is of.
pub fn account(pid: &str) -> String {
    format!("{pid}0156")
}

fn ymd(date: Date) -> String {
    format!("{:04}{:02}{:02}", date.year(), date.month(), date.day())
}

/// The zip's file name.
pub fn zip_name(pid: &str, date: Date, flavor: Flavor) -> String {
    match flavor {
        Flavor::Trade => format!("{}_{}.csv.zip", account(pid), ymd(date)),
        Flavor::Clearing => format!("{}_{}.zip", account(pid), ymd(date)),
    }
}

/// The two entry names (detail, summary), as text.
pub fn entry_names(pid: &str, date: Date) -> (String, String) {
    let base = format!("{}_{}", account(pid), ymd(date));
    (
        format!("{base}_业务明细.csv"),
        format!("{base}_业务明细(汇总).csv"),
    )
}

/// What a written bill holds.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Written {
    pub trade_rows: usize,
    pub refund_rows: usize,
    /// Characters GBK cannot write, written as `?`.
    pub replaced_chars: usize,
    pub totals: Amounts,
}

/// Why a bill could not be written.
#[derive(Debug, thiserror::Error)]
pub enum FormatError {
    #[error("writing the bill zip: {0}")]
    Zip(#[from] zip::result::ZipError),
    #[error("writing the bill: {0}")]
    Io(#[from] std::io::Error),
}

/// GBK text with unmappable characters written as `?` (and counted).
pub fn gbk(text: &str, out: &mut Vec<u8>) -> usize {
    if text.is_ascii() {
        out.extend_from_slice(text.as_bytes());
        return 0;
    }
    let mut encoder = GBK.new_encoder();
    let mut rest = text;
    let mut replaced = 0;
    // Each round ends the input, fills the spare room (then grows it) or
    // stops at a character GBK lacks: bounded by the text's length.
    for _ in 0..=text.len().saturating_mul(2) {
        // A GBK character takes at most 2 bytes per UTF-8 character read.
        out.reserve(rest.len().saturating_mul(2).max(4));
        let (result, read) = encoder.encode_from_utf8_to_vec_without_replacement(rest, out, true);
        rest = rest.get(read..).unwrap_or_default();
        match result {
            EncoderResult::InputEmpty => break,
            EncoderResult::OutputFull => {}
            EncoderResult::Unmappable(_) => {
                out.push(b'?');
                replaced += 1;
            }
        }
    }
    replaced
}

/// Free text made safe for an unquoted CSV cell: a comma becomes a full-width
/// comma, line breaks and TABs become spaces.
pub fn cell_text(text: &str) -> std::borrow::Cow<'_, str> {
    if !text.contains([',', '\r', '\n', '\t']) {
        return std::borrow::Cow::Borrowed(text);
    }
    std::borrow::Cow::Owned(
        text.chars()
            .map(|c| match c {
                ',' => '，',
                '\r' | '\n' | '\t' => ' ',
                c => c,
            })
            .collect(),
    )
}

/// The buyer as merchants see it: `**明(138******21)`; without a name, the
/// masked logon id alone.
pub fn masked_buyer(buyer: Option<&Buyer>) -> String {
    let Some(b) = buyer else {
        return String::new();
    };
    let logon = mask_logon(&b.logon_id);
    match b.name.as_deref().filter(|n| !n.is_empty()) {
        Some(name) => {
            let count = name.chars().count();
            let last = name.chars().last().map(String::from).unwrap_or_default();
            format!(
                "{}{last}({logon})",
                "*".repeat(count.saturating_sub(1).max(1))
            )
        }
        None => logon,
    }
}

/// `13812345621` → `138******21`; `alice@example.com` → `ali***@example.com`.
pub fn mask_logon(logon: &str) -> String {
    if let Some((local, domain)) = logon.split_once('@') {
        let keep: String = local.chars().take(3).collect();
        return format!("{keep}***@{domain}");
    }
    let chars: Vec<char> = logon.chars().collect();
    if chars.len() < 6 {
        let head: String = chars.iter().take(1).collect();
        return format!("{head}{}", "*".repeat(chars.len().saturating_sub(1)));
    }
    let head: String = chars.iter().take(3).collect();
    let tail: String = chars.iter().skip(chars.len() - 2).collect();
    format!("{head}{}{tail}", "*".repeat(chars.len() - 5))
}

fn trade_way(origin: Origin) -> &'static str {
    match origin {
        Origin::Pay => "条码支付",
        Origin::Precreate => "扫码支付",
        Origin::Create => "无线支付",
    }
}

fn cn_date(date: Date) -> String {
    format!(
        "{:04}年{:02}月{:02}日",
        date.year(),
        date.month(),
        date.day()
    )
}

fn cn_time(at: Timestamp) -> String {
    let dt = at.to_zoned(beijing()).datetime();
    format!(
        "{:04}年{:02}月{:02}日 {:02}:{:02}:{:02}",
        dt.year(),
        dt.month(),
        dt.day(),
        dt.hour(),
        dt.minute(),
        dt.second()
    )
}

/// Builds one CSV line directly in GBK (cells joined by commas, some with a
/// trailing TAB) in a buffer reused from row to row: ASCII cells are copied,
/// only other text goes through the encoder (a million-row bill spends its
/// time in deflate, not in allocations).
struct Line {
    bytes: Vec<u8>,
    first: bool,
    /// Characters written as `?`, over every line built.
    replaced: usize,
}

fn plain_ascii(text: &str) -> bool {
    text.bytes()
        .all(|b| b.is_ascii() && !matches!(b, b',' | b'\r' | b'\n' | b'\t'))
}

impl Line {
    fn new() -> Line {
        Line {
            bytes: Vec::with_capacity(512),
            first: true,
            replaced: 0,
        }
    }
    fn clear(&mut self) {
        self.bytes.clear();
        self.first = true;
    }
    fn sep(&mut self) {
        if !self.first {
            self.bytes.push(b',');
        }
        self.first = false;
    }
    fn tab(&mut self, tab: bool) -> &mut Line {
        if tab {
            self.bytes.push(b'\t');
        }
        self
    }
    fn cell(&mut self, text: &str, tab: bool) -> &mut Line {
        self.sep();
        if plain_ascii(text) {
            self.bytes.extend_from_slice(text.as_bytes());
        } else {
            self.replaced += gbk(&cell_text(text), &mut self.bytes);
        }
        self.tab(tab)
    }
    fn money(&mut self, f: Fen, tab: bool) -> &mut Line {
        self.sep();
        // Writing into a Vec cannot fail.
        let _ = write!(self.bytes, "{f}");
        self.tab(tab)
    }
    fn count(&mut self, n: usize) -> &mut Line {
        self.sep();
        let _ = write!(self.bytes, "{n}");
        self
    }
    /// `yyyy-MM-dd HH:mm:ss`, Beijing.
    fn time(&mut self, at: Timestamp) -> &mut Line {
        self.sep();
        let dt = BEIJING.to_datetime(at);
        let _ = write!(
            self.bytes,
            "{:04}-{:02}-{:02} {:02}:{:02}:{:02}",
            dt.year(),
            dt.month(),
            dt.day(),
            dt.hour(),
            dt.minute(),
            dt.second()
        );
        self
    }
}

const BEIJING: jiff::tz::Offset = jiff::tz::Offset::constant(8);

/// Writes lines in GBK into the current zip entry.
struct Sink<'w, W: Write + Seek> {
    zip: &'w mut ZipWriter<W>,
    buf: Vec<u8>,
    replaced: usize,
}

impl<W: Write + Seek> Sink<'_, W> {
    fn line(&mut self, text: &str) -> std::io::Result<()> {
        self.buf.clear();
        self.replaced += gbk(text, &mut self.buf);
        self.buf.extend_from_slice(EOL.as_bytes());
        self.zip.write_all(&self.buf)
    }

    fn built(&mut self, line: &mut Line) -> std::io::Result<()> {
        line.bytes.extend_from_slice(EOL.as_bytes());
        self.zip.write_all(&line.bytes)
    }
}

/// Everything a bill file needs besides the rows.
#[derive(Debug, Clone, Copy)]
pub struct Header<'a> {
    pub pid: &'a str,
    pub date: Date,
    pub exported_at: Timestamp,
}

fn rule(dashes_before: usize, title: &str, dashes_after: usize) -> String {
    format!(
        "#{}{title}{}",
        "-".repeat(dashes_before),
        "-".repeat(dashes_after)
    )
}

fn period(h: &Header<'_>) -> String {
    let next = h.date.tomorrow().unwrap_or(h.date);
    format!(
        "#起始日期：[{} 00:00:00]   终止日期：[{} 00:00:00]",
        cn_date(h.date),
        cn_date(next)
    )
}

fn voucher_names(parts: &[crate::model::FundPart]) -> String {
    let names: Vec<&str> = parts
        .iter()
        .filter(|p| p.channel.is_voucher())
        .filter_map(|p| p.voucher_name.as_deref())
        .collect();
    names.join("|")
}

fn detail_line(
    l: &mut Line,
    row: &Row<'_>,
    a: &Amounts,
    flavor: Flavor,
    buyers: &BTreeMap<String, Buyer>,
) {
    let t = row.trade;
    let (kind, parts, store, operator, terminal, request) = match row.refund {
        None => (
            "交易",
            &t.funding,
            t.store_id.as_deref(),
            t.operator_id.as_deref(),
            t.terminal_id.as_deref(),
            "",
        ),
        Some(r) => (
            "退款",
            &r.parts,
            r.store_id.as_deref().or(t.store_id.as_deref()),
            r.operator_id.as_deref().or(t.operator_id.as_deref()),
            r.terminal_id.as_deref().or(t.terminal_id.as_deref()),
            r.out_request_no.as_str(),
        ),
    };
    let buyer = buyers.get(&t.buyer_id);
    l.clear();
    l.cell(&t.trade_no, true)
        .cell(&t.out_trade_no, true)
        .cell(kind, true)
        .cell(&t.subject, false)
        .time(t.created_at)
        .time(row.at)
        .cell(store.unwrap_or_default(), true)
        .cell("", true)
        .cell(operator.unwrap_or_default(), true)
        .cell(terminal.unwrap_or_default(), true)
        .cell(&masked_buyer(buyer), true)
        .money(a.total, false)
        .money(a.receipt, false)
        .money(a.red_packet, false)
        .money(a.points, false)
        .money(a.platform_discount, false)
        .money(a.merchant_discount, false)
        .money(a.vouchers, false)
        .cell(&voucher_names(parts), false)
        .money(a.merchant_red_packet, true)
        .money(a.card, false)
        .cell(request, true);
    match flavor {
        Flavor::Trade => {
            l.money(a.fee, false)
                .money(a.share, false)
                .cell(t.body.as_deref().unwrap_or_default(), false);
        }
        Flavor::Clearing => {
            l.money(a.fee, false)
                .money(a.net, false)
                .cell(&t.smid, true)
                .cell(trade_way(t.origin), false)
                .cell(t.body.as_deref().unwrap_or_default(), false);
        }
    }
}

#[derive(Default)]
struct StoreTotal {
    trades: usize,
    refunds: usize,
    sum: Amounts,
}

/// A summary row: a store's (`padded`: store id and name carry a TAB, like
/// the detail's) or the `合计` row (not padded).
fn summary_line(l: &mut Line, store: &str, padded: bool, s: &StoreTotal) {
    l.clear();
    l.cell(store, padded)
        .cell("", padded)
        .count(s.trades)
        .count(s.refunds)
        .money(s.sum.total, false)
        .money(s.sum.receipt, false)
        .money(s.sum.platform_discount, false)
        .money(s.sum.merchant_discount, false)
        .money(s.sum.card, false)
        .money(s.sum.fee, false)
        .money(s.sum.share, false)
        .money(s.sum.net, false);
}

/// Writes a day's bill zip for one PID into `out`. `buyers` give the masked
/// counterpart; rows come from [`super::rows::rows_of_day`].
pub fn write_zip<W: Write + Seek>(
    out: W,
    header: &Header<'_>,
    rows: &[Row<'_>],
    flavor: Flavor,
    buyers: &BTreeMap<String, Buyer>,
) -> Result<(W, Written), FormatError> {
    let mut zip = ZipWriter::new(out);
    let exported = header.exported_at.to_zoned(beijing()).datetime();
    let mtime = zip::DateTime::from_date_and_time(
        u16::try_from(exported.year()).unwrap_or(1980),
        u8::try_from(exported.month()).unwrap_or(1),
        u8::try_from(exported.day()).unwrap_or(1),
        u8::try_from(exported.hour()).unwrap_or(0),
        u8::try_from(exported.minute()).unwrap_or(0),
        u8::try_from(exported.second()).unwrap_or(0),
    )
    .unwrap_or_default();
    let (detail_name, summary_name) = entry_names(header.pid, header.date);
    let mut raw_detail = Vec::new();
    let mut raw_summary = Vec::new();
    gbk(&detail_name, &mut raw_detail);
    gbk(&summary_name, &mut raw_summary);
    // Raw GBK bytes: the zip crate sets the UTF-8 flag only for valid UTF-8
    // names, and these are not (checked by a test).
    fn options(name: &[u8], mtime: zip::DateTime) -> zip::write::FileOptions<'static, '_, ()> {
        SimpleFileOptions::default()
            .compression_method(CompressionMethod::Deflated)
            .last_modified_time(mtime)
            .unix_permissions(0o644)
            .name(name)
    }
    let account = account(header.pid);
    let exported_line = format!("#导出时间：[{}]", cn_time(header.exported_at));

    zip.start_file_with_options(options(&raw_detail, mtime))?;
    let mut sink = Sink {
        zip: &mut zip,
        buf: Vec::with_capacity(512),
        replaced: 0,
    };
    sink.line("#支付宝业务明细查询")?;
    sink.line(&format!("#账号：[{account}]"))?;
    sink.line(&period(header))?;
    sink.line(&rule(41, "业务明细列表", 40))?;
    let columns: Vec<&str> = match flavor {
        Flavor::Trade => TRADE_COLUMNS.to_vec(),
        Flavor::Clearing => TRADE_COLUMNS[..22]
            .iter()
            .chain(CLEARING_TAIL.iter())
            .copied()
            .collect(),
    };
    sink.line(&columns.join(","))?;
    let mut written = Written::default();
    let mut trades = Amounts::default();
    let mut refunds = Amounts::default();
    let mut stores: BTreeMap<&str, StoreTotal> = BTreeMap::new();
    let mut line = Line::new();
    for row in rows {
        let a = row.amounts();
        detail_line(&mut line, row, &a, flavor, buyers);
        sink.built(&mut line)?;
        let store = match row.refund {
            Some(r) => r.store_id.as_deref().or(row.trade.store_id.as_deref()),
            None => row.trade.store_id.as_deref(),
        };
        let s = stores.entry(store.unwrap_or_default()).or_default();
        s.sum.add(&a);
        if row.is_refund() {
            s.refunds += 1;
            written.refund_rows += 1;
            refunds.add(&a);
        } else {
            s.trades += 1;
            written.trade_rows += 1;
            trades.add(&a);
        }
        written.totals.add(&a);
    }
    sink.line(&rule(41, "业务明细列表结束", 36))?;
    sink.line(&format!(
        "#交易合计：{}笔，商家实收共{}元，商家优惠共{}元",
        written.trade_rows, trades.receipt, trades.merchant_discount
    ))?;
    sink.line(&format!(
        "#退款合计：{}笔，商家实收退款共{}元，商家优惠退款共{}元",
        written.refund_rows, refunds.receipt, refunds.merchant_discount
    ))?;
    sink.line(&exported_line)?;
    written.replaced_chars += sink.replaced + line.replaced;

    zip.start_file_with_options(options(&raw_summary, mtime))?;
    let mut sink = Sink {
        zip: &mut zip,
        buf: Vec::with_capacity(256),
        replaced: 0,
    };
    sink.line("#支付宝业务汇总查询")?;
    sink.line(&format!("#账号：[{account}]"))?;
    sink.line(&period(header))?;
    sink.line(&rule(41, "业务汇总列表", 40))?;
    sink.line(&SUMMARY_COLUMNS.join(","))?;
    let mut all = StoreTotal::default();
    let mut line = Line::new();
    for (store, s) in &stores {
        summary_line(&mut line, store, true, s);
        sink.built(&mut line)?;
        all.trades += s.trades;
        all.refunds += s.refunds;
        all.sum.add(&s.sum);
    }
    summary_line(&mut line, "合计", false, &all);
    sink.built(&mut line)?;
    sink.line(&rule(40, "业务汇总列表结束", 37))?;
    sink.line(&exported_line)?;
    written.replaced_chars += sink.replaced + line.replaced;
    let out = zip.finish()?;
    Ok((out, written))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gbk_writes_what_it_can_and_question_marks_the_rest() {
        let mut out = Vec::new();
        assert_eq!(gbk("🍵咖啡🍵,大杯€🍵", &mut out), 3);
        let (expected, _, lossy) = GBK.encode("?咖啡?,大杯€?");
        assert!(!lossy);
        assert_eq!(out, expected.as_ref());
        // Long text crosses the reserve boundary more than once.
        let long = "支付宝业务明细".repeat(500) + "😀";
        let mut out = Vec::new();
        assert_eq!(gbk(&long, &mut out), 1);
        assert_eq!(out.len(), 7 * 2 * 500 + 1);
        let mut out = Vec::new();
        assert_eq!(gbk("plain ascii", &mut out), 0);
        assert_eq!(out, b"plain ascii");
    }

    #[test]
    fn cells_and_masks() {
        assert_eq!(cell_text("a,b\r\nc\td"), "a，b  c d");
        assert_eq!(mask_logon("13812345621"), "138******21");
        assert_eq!(mask_logon("alice@example.com"), "ali***@example.com");
        assert_eq!(mask_logon("abc"), "a**");
        assert_eq!(account("2088000000000001"), "20880000000000010156");
        let d: Date = "2026-03-02".parse().unwrap();
        assert_eq!(
            zip_name("2088000000000001", d, Flavor::Trade),
            "20880000000000010156_20260302.csv.zip"
        );
        assert_eq!(
            zip_name("2088000000000001", d, Flavor::Clearing),
            "20880000000000010156_20260302.zip"
        );
    }
}
