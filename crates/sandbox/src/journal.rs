//! Persistence of the sandbox's state in `--state DIR`: a snapshot
//! (`snapshot.json`) plus a journal (`journal.jsonl`) with one line per record
//! changed, appended under the state lock after every operation. At start the
//! snapshot is loaded, the journal replayed, and both compacted into a fresh
//! snapshot. Records are upserts (replaying one twice is harmless) and ledger
//! lines carry their sequence number (a replayed one is skipped), so a crash
//! at any point leaves a state that loads.

use std::fs::{self, File, OpenOptions};
use std::io::{self, BufRead, BufReader, BufWriter, Write};
use std::path::{Path, PathBuf};

use crate::model::State;
use crate::state::apply_record;

const SNAPSHOT: &str = "snapshot.json";
const JOURNAL: &str = "journal.jsonl";
/// Compact when the journal holds more records than this.
pub const JOURNAL_RECORDS_MAX: u64 = 200_000;

/// Why the state directory could not be used.
#[derive(Debug, thiserror::Error)]
pub enum JournalError {
    #[error("state directory {path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("state file {path} line {line}: {reason}")]
    Corrupt {
        path: PathBuf,
        line: usize,
        reason: String,
    },
}

fn io_err(path: &Path) -> impl FnOnce(io::Error) -> JournalError + '_ {
    move |source| JournalError::Io {
        path: path.to_owned(),
        source,
    }
}

/// An open journal.
#[derive(Debug)]
pub struct Journal {
    dir: PathBuf,
    file: BufWriter<File>,
    records: u64,
}

/// Loads the state saved in `dir`, if any: the snapshot, then the journal.
/// A torn last journal line (a crash mid-write) is dropped; any other bad line
/// is an error naming the file and line.
pub fn load(dir: &Path) -> Result<Option<State>, JournalError> {
    let snapshot_path = dir.join(SNAPSHOT);
    let mut state: State = match File::open(&snapshot_path) {
        Ok(f) => serde_json::from_reader(BufReader::new(f)).map_err(|e| JournalError::Corrupt {
            path: snapshot_path.clone(),
            line: e.line(),
            reason: e.to_string(),
        })?,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(io_err(&snapshot_path)(e)),
    };
    let journal_path = dir.join(JOURNAL);
    let file = match File::open(&journal_path) {
        Ok(f) => f,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Some(state)),
        Err(e) => return Err(io_err(&journal_path)(e)),
    };
    let lines: Vec<String> = BufReader::new(file)
        .lines()
        .collect::<Result<_, _>>()
        .map_err(io_err(&journal_path))?;
    let count = lines.len();
    for (i, line) in lines.iter().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        if let Err(reason) = apply_record(&mut state, line) {
            if i + 1 == count {
                tracing::warn!(line = i + 1, "dropping a torn last journal line: {reason}");
                break;
            }
            return Err(JournalError::Corrupt {
                path: journal_path,
                line: i + 1,
                reason,
            });
        }
    }
    Ok(Some(state))
}

impl Journal {
    /// Writes `state` as the new snapshot and starts an empty journal.
    pub fn create(dir: &Path, state: &State) -> Result<Journal, JournalError> {
        fs::create_dir_all(dir).map_err(io_err(dir))?;
        write_snapshot(dir, state)?;
        let path = dir.join(JOURNAL);
        let file = OpenOptions::new()
            .create(true)
            .write(true)
            .truncate(true)
            .open(&path)
            .map_err(io_err(&path))?;
        Ok(Journal {
            dir: dir.to_owned(),
            file: BufWriter::new(file),
            records: 0,
        })
    }

    /// Appends records and hands them to the operating system.
    pub fn append(&mut self, lines: &[String]) -> Result<(), JournalError> {
        if lines.is_empty() {
            return Ok(());
        }
        let path = self.dir.join(JOURNAL);
        for line in lines {
            self.file
                .write_all(line.as_bytes())
                .and_then(|()| self.file.write_all(b"\n"))
                .map_err(io_err(&path))?;
        }
        self.file.flush().map_err(io_err(&path))?;
        self.records += u64::try_from(lines.len()).unwrap_or(u64::MAX);
        Ok(())
    }

    pub fn needs_compaction(&self) -> bool {
        self.records > JOURNAL_RECORDS_MAX
    }

    /// Folds the journal into a new snapshot.
    pub fn compact(&mut self, state: &State) -> Result<(), JournalError> {
        *self = Journal::create(&self.dir.clone(), state)?;
        Ok(())
    }
}

fn write_snapshot(dir: &Path, state: &State) -> Result<(), JournalError> {
    let tmp = dir.join("snapshot.json.tmp");
    let file = File::create(&tmp).map_err(io_err(&tmp))?;
    let mut w = BufWriter::new(file);
    serde_json::to_writer(&mut w, state).map_err(|e| JournalError::Io {
        path: tmp.clone(),
        source: io::Error::other(e),
    })?;
    let file = w.into_inner().map_err(|e| io_err(&tmp)(e.into_error()))?;
    file.sync_all().map_err(io_err(&tmp))?;
    let path = dir.join(SNAPSHOT);
    fs::rename(&tmp, &path).map_err(io_err(&path))?;
    if let Ok(d) = File::open(dir) {
        // Makes the rename durable; a failure here only weakens power-loss safety.
        let _ = d.sync_all();
    }
    Ok(())
}
