//! Where bill files live: in memory, or under `<state dir>/bills/` so they
//! survive restarts with the rest of the state. The journal records which
//! bills exist (small records); the bytes (up to tens of megabytes) stay out
//! of it. HTTP downloads and SFTP read from here.

use std::collections::HashMap;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use bytes::Bytes;

/// The bytes of every bill file, keyed `<pid>/<yyyyMMdd>/<file name>`.
#[derive(Debug)]
pub enum BillStore {
    Memory(Mutex<HashMap<String, Bytes>>),
    Dir(PathBuf),
}

/// Keys are made by the sandbox from digits and file names; refusing anything
/// else keeps a key from ever naming a path outside the store.
fn check_key(key: &str) -> io::Result<()> {
    let ok = !key.is_empty()
        && key.split('/').all(|part| {
            !part.is_empty()
                && part != "."
                && part != ".."
                && part
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-'))
        });
    if ok {
        Ok(())
    } else {
        Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("{key:?} is not a bill file key"),
        ))
    }
}

impl BillStore {
    pub fn memory() -> BillStore {
        BillStore::Memory(Mutex::new(HashMap::new()))
    }

    /// Files under `<state_dir>/bills/`.
    pub fn in_dir(state_dir: &Path) -> BillStore {
        BillStore::Dir(state_dir.join("bills"))
    }

    /// Stores a file (atomically on disk: a reader never sees half of it).
    pub fn put(&self, key: &str, bytes: Vec<u8>) -> io::Result<()> {
        check_key(key)?;
        match self {
            BillStore::Memory(map) => {
                map.lock()
                    .unwrap_or_else(std::sync::PoisonError::into_inner)
                    .insert(key.to_owned(), Bytes::from(bytes));
                Ok(())
            }
            BillStore::Dir(root) => {
                let path = root.join(key);
                if let Some(parent) = path.parent() {
                    std::fs::create_dir_all(parent)?;
                }
                let tmp = path.with_extension("tmp");
                std::fs::write(&tmp, &bytes)?;
                std::fs::rename(&tmp, &path)
            }
        }
    }

    /// A stored file, `None` when it is not there.
    pub fn get(&self, key: &str) -> io::Result<Option<Bytes>> {
        check_key(key)?;
        match self {
            BillStore::Memory(map) => Ok(map
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .get(key)
                .cloned()),
            BillStore::Dir(root) => match std::fs::read(root.join(key)) {
                Ok(b) => Ok(Some(Bytes::from(b))),
                Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
                Err(e) => Err(e),
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_cannot_escape_the_store() {
        let store = BillStore::memory();
        for bad in ["", "../x", "a//b", "a/./b", "a/b c", "/etc/passwd"] {
            assert!(store.put(bad, vec![1]).is_err(), "{bad:?}");
        }
        store.put("2088/20260302/x.zip", vec![1, 2]).unwrap();
        assert_eq!(store.get("2088/20260302/x.zip").unwrap().unwrap().len(), 2);
        assert!(store.get("2088/20260302/y.zip").unwrap().is_none());
    }

    #[test]
    fn the_dir_store_keeps_files() {
        let dir = tempfile::tempdir().unwrap();
        let store = BillStore::in_dir(dir.path());
        store.put("2088/20260302/x.csv.zip", vec![7; 10]).unwrap();
        let again = BillStore::in_dir(dir.path());
        assert_eq!(
            again.get("2088/20260302/x.csv.zip").unwrap().unwrap().len(),
            10
        );
    }
}
