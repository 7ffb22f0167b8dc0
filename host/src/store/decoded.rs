//! Records decoded once per stored version: a read whose stored bytes are those decoded last time (compared
//! whole, so a write from anywhere is seen) takes the decoded record instead of parsing it again. Used for
//! what every request reads: connectors, accounts, sessions.

use std::collections::HashMap;
use std::sync::Mutex;

/// The last decoding of each key, with the bytes it was decoded from. Holds no more than the database
/// does (accounts' secrets stay sealed, sessions are keyed by their token's hash), and at most
/// [`Decoded::MAX`] records.
pub(crate) struct Decoded<T> {
    records: Mutex<HashMap<sled::IVec, (sled::IVec, T)>>,
}

impl<T> Default for Decoded<T> {
    fn default() -> Self {
        Decoded {
            records: Mutex::default(),
        }
    }
}

impl<T: Clone> Decoded<T> {
    /// Records kept at most; a full table starts afresh.
    pub const MAX: usize = 4096;

    /// The record stored as `value` under `key`: the remembered one if `value` is what it was decoded
    /// from, else `decode(value)` (remembered when it succeeds).
    pub fn get<E>(
        &self,
        key: &[u8],
        value: &sled::IVec,
        decode: impl FnOnce(&[u8]) -> Result<T, E>,
    ) -> Result<T, E> {
        let lock = || self.records.lock().unwrap_or_else(|e| e.into_inner());
        if let Some((stored, record)) = lock().get(key)
            && stored == value
        {
            return Ok(record.clone());
        }
        let record = decode(value)?;
        let mut records = lock();
        if records.len() >= Self::MAX {
            records.clear();
        }
        records.insert(sled::IVec::from(key), (value.clone(), record.clone()));
        Ok(record)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decodes_once_per_stored_version() {
        let decoded = Decoded::<String>::default();
        let calls = std::cell::Cell::new(0);
        let decode = |bytes: &[u8]| -> Result<String, ()> {
            calls.set(calls.get() + 1);
            std::str::from_utf8(bytes)
                .map(str::to_owned)
                .map_err(|_| ())
        };
        let first = sled::IVec::from("one");
        assert_eq!(decoded.get(b"k", &first, decode).unwrap(), "one");
        assert_eq!(decoded.get(b"k", &first, decode).unwrap(), "one");
        assert_eq!(calls.get(), 1);
        // Other bytes under the same key: decoded again.
        let second = sled::IVec::from("two");
        assert_eq!(decoded.get(b"k", &second, decode).unwrap(), "two");
        assert_eq!(calls.get(), 2);
        // A failed decoding is an error, never the old record, and is not remembered.
        let bad = sled::IVec::from(&[0xff, 0xfe][..]);
        assert!(decoded.get(b"k", &bad, decode).is_err());
        assert!(decoded.get(b"k", &bad, decode).is_err());
        assert_eq!(decoded.get(b"k", &second, decode).unwrap(), "two");
        assert_eq!(calls.get(), 4);
    }

    #[test]
    fn the_table_is_bounded() {
        let decoded = Decoded::<u32>::default();
        for i in 0..(Decoded::<u32>::MAX as u32 + 10) {
            let value = sled::IVec::from(&i.to_be_bytes()[..]);
            decoded
                .get(&i.to_be_bytes(), &value, |_| Ok::<_, ()>(i))
                .unwrap();
        }
        assert!(decoded.records.lock().unwrap().len() <= Decoded::<u32>::MAX);
    }
}
