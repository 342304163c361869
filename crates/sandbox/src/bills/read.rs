//! Reads a bill zip back: entry names decoded from GBK (with the zip UTF-8
//! flag as stored), contents decoded from GBK, and each CSV file split into
//! its comment lines, header, rows and trailer. The sandbox's tests and the
//! benchmark check bills with it; a reconciliation tool can use it the same
//! way (it strips the TAB padding Alipay puts in cells).

use std::io::{Cursor, Read};

use encoding_rs::GBK;

/// One file of a bill zip.
#[derive(Debug, Clone)]
pub struct Entry {
    /// The name's bytes as stored.
    pub raw_name: Vec<u8>,
    /// The name decoded from GBK.
    pub name: String,
    /// Bit 11 of the general-purpose flags, local and central headers.
    pub utf8_flag_local: bool,
    pub utf8_flag_central: bool,
    /// The content's bytes as stored (GBK).
    pub bytes: Vec<u8>,
    /// The content decoded from GBK.
    pub text: String,
}

/// Why a zip is not a readable bill.
#[derive(Debug, thiserror::Error)]
pub enum ReadError {
    #[error("not a zip: {0}")]
    Zip(#[from] zip::result::ZipError),
    #[error("reading an entry: {0}")]
    Io(#[from] std::io::Error),
    #[error("{0} is not valid GBK")]
    NotGbk(String),
    #[error("the zip headers are truncated")]
    Truncated,
}

fn decode(bytes: &[u8], what: &str) -> Result<String, ReadError> {
    GBK.decode_without_bom_handling_and_without_replacement(bytes)
        .map(|c| c.into_owned())
        .ok_or_else(|| ReadError::NotGbk(what.to_owned()))
}

fn flag(bytes: &[u8], at: u64, offset: usize) -> Result<bool, ReadError> {
    let at = usize::try_from(at).map_err(|_| ReadError::Truncated)? + offset;
    let lo = bytes.get(at).ok_or(ReadError::Truncated)?;
    let hi = bytes.get(at + 1).ok_or(ReadError::Truncated)?;
    Ok(u16::from_le_bytes([*lo, *hi]) & (1 << 11) != 0)
}

/// Every entry of a bill zip, in order.
pub fn entries(zip_bytes: &[u8]) -> Result<Vec<Entry>, ReadError> {
    let mut archive = zip::ZipArchive::new(Cursor::new(zip_bytes))?;
    let mut out = Vec::with_capacity(archive.len());
    for i in 0..archive.len() {
        let mut file = archive.by_index(i)?;
        let raw_name = file.name_raw().to_vec();
        let name = decode(&raw_name, "an entry name")?;
        let utf8_flag_local = flag(zip_bytes, file.header_start(), 6)?;
        let utf8_flag_central = flag(zip_bytes, file.central_header_start(), 8)?;
        let mut bytes = Vec::new();
        file.read_to_end(&mut bytes)?;
        let text = decode(&bytes, &name)?;
        out.push(Entry {
            raw_name,
            name,
            utf8_flag_local,
            utf8_flag_central,
            bytes,
            text,
        });
    }
    Ok(out)
}

/// A bill CSV split into its parts; cells keep their TAB padding.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Table {
    /// The `#` lines before the header.
    pub comments: Vec<String>,
    pub columns: Vec<String>,
    pub rows: Vec<Vec<String>>,
    /// The `#` lines after the rows.
    pub trailer: Vec<String>,
}

impl Table {
    /// Splits CSV text (CRLF or LF).
    pub fn parse(text: &str) -> Table {
        let mut t = Table::default();
        for line in text.split('\n').map(|l| l.strip_suffix('\r').unwrap_or(l)) {
            if line.is_empty() {
                continue;
            }
            if line.starts_with('#') {
                if t.columns.is_empty() {
                    t.comments.push(line.to_owned());
                } else {
                    t.trailer.push(line.to_owned());
                }
            } else if t.columns.is_empty() {
                t.columns = line.split(',').map(str::to_owned).collect();
            } else {
                t.rows.push(line.split(',').map(str::to_owned).collect());
            }
        }
        t
    }

    /// The cell of `row` under `column`, TAB padding stripped.
    pub fn get<'a>(&'a self, row: &'a [String], column: &str) -> Option<&'a str> {
        let i = self.columns.iter().position(|c| c == column)?;
        row.get(i).map(|c| c.trim_matches('\t'))
    }
}
