//! The pieces of the stored binary records (`run_codec`, `job_codec`):
//! integers are LEB128 varints (signed ones zigzag), strings and byte
//! strings a varint length and the bytes, an `Option` a 0/1 byte and the
//! value, a flag one 0/1 byte, enums one byte each (codes that are never
//! reused), instants seconds and nanoseconds since the epoch, durations
//! seconds and nanoseconds. Newer records also use a compact text (an id
//! or a digest in binary, any other text as it is) and instants as
//! nanoseconds from another instant of the same record.

use std::time::Duration;

use chrono::{DateTime, Utc};

use crate::model::job::Priority;

// Codes of the enums: never reuse or renumber one. Each pair of functions
// matches every variant, so a new one does not compile without a code.

pub(super) fn priority_code(priority: Priority) -> u8 {
    match priority {
        Priority::Low => 0,
        Priority::Normal => 1,
        Priority::High => 2,
        Priority::Critical => 3,
    }
}

pub(super) fn priority_of(code: u8) -> Option<Priority> {
    Some(match code {
        0 => Priority::Low,
        1 => Priority::Normal,
        2 => Priority::High,
        3 => Priority::Critical,
        _ => return None,
    })
}

/// The variant of `code`, or an error naming the field.
pub(super) fn code<T>(code: u8, of: fn(u8) -> Option<T>, what: &str) -> Result<T, String> {
    of(code).ok_or_else(|| format!("unknown {what} code {code}"))
}

/// The forms of a compact text ([`Writer::compact_text`]).
mod text_form {
    /// Any text, as it is.
    pub const PLAIN: u8 = 0;
    /// A lowercase ULID (the daemon's ids), as its 16 bytes.
    pub const ULID: u8 = 1;
    /// Lowercase hex of even length (digests), as the bytes it spells.
    pub const HEX: u8 = 2;
}

/// The forms of an instant stored against another ([`Writer::instant_from`]).
mod instant_form {
    /// Seconds and nanoseconds since the epoch, as [`super::Writer::instant`].
    pub const WHOLE: u8 = 0;
    /// Signed nanoseconds from the other instant.
    pub const FROM_BASE: u8 = 1;
}

/// `text` as a ULID when it is one written the way the daemon writes ids
/// (lowercase), so that it reads back as the same text.
fn lowercase_ulid(text: &str) -> Option<ulid::Ulid> {
    if text.len() != 26 || text.bytes().any(|byte| byte.is_ascii_uppercase()) {
        return None;
    }
    let ulid = ulid::Ulid::from_string(text).ok()?;
    (ulid.to_string().to_ascii_lowercase() == text).then_some(ulid)
}

fn is_lowercase_hex(text: &str) -> bool {
    !text.is_empty()
        && text.len().is_multiple_of(2)
        && text.bytes().all(|byte| matches!(byte, b'0'..=b'9' | b'a'..=b'f'))
}

pub(super) struct Writer(pub(super) Vec<u8>);

impl Writer {
    pub(super) fn uint(&mut self, mut value: u64) {
        while value >= 0x80 {
            self.0.push((value as u8) | 0x80);
            value >>= 7;
        }
        self.0.push(value as u8);
    }

    pub(super) fn int(&mut self, value: i64) {
        self.uint(((value << 1) ^ (value >> 63)) as u64);
    }

    pub(super) fn bytes(&mut self, bytes: &[u8]) {
        self.uint(bytes.len() as u64);
        self.0.extend_from_slice(bytes);
    }

    pub(super) fn flag(&mut self, value: bool) {
        self.0.push(u8::from(value));
    }

    pub(super) fn texts(&mut self, texts: &[String]) {
        self.uint(texts.len() as u64);
        for text in texts {
            self.bytes(text.as_bytes());
        }
    }

    pub(super) fn instant(&mut self, at: &DateTime<Utc>) {
        self.int(at.timestamp());
        self.uint(u64::from(at.timestamp_subsec_nanos()));
    }

    /// A text that is often an id (a lowercase ULID: 17 bytes instead of
    /// 27) or a digest (lowercase hex: half its length and 2 bytes), any
    /// other text as [`Writer::bytes`] after a byte.
    pub(super) fn compact_text(&mut self, text: &str) {
        if let Some(ulid) = lowercase_ulid(text) {
            self.0.push(text_form::ULID);
            self.0.extend_from_slice(&ulid.to_bytes());
        } else if is_lowercase_hex(text) {
            self.0.push(text_form::HEX);
            let bytes = hex::decode(text).expect("checked to be lowercase hex of even length");
            self.bytes(&bytes);
        } else {
            self.0.push(text_form::PLAIN);
            self.bytes(text.as_bytes());
        }
    }

    /// `at` as nanoseconds from `base` (a run's instants are milliseconds
    /// to seconds apart: 2-5 bytes instead of 6-10), or whole when that
    /// does not fit in an i64.
    pub(super) fn instant_from(&mut self, base: &DateTime<Utc>, at: &DateTime<Utc>) {
        match (*at - *base).num_nanoseconds() {
            Some(nanos) => {
                self.0.push(instant_form::FROM_BASE);
                self.int(nanos);
            }
            None => {
                self.0.push(instant_form::WHOLE);
                self.instant(at);
            }
        }
    }

    pub(super) fn duration(&mut self, duration: &Duration) {
        self.uint(duration.as_secs());
        self.uint(u64::from(duration.subsec_nanos()));
    }

    pub(super) fn option<T>(&mut self, value: Option<&T>, write: impl FnOnce(&mut Writer, &T)) {
        match value {
            None => self.0.push(0),
            Some(value) => {
                self.0.push(1);
                write(self, value);
            }
        }
    }
}

pub(super) struct Reader<'a>(pub(super) &'a [u8]);

impl<'a> Reader<'a> {
    pub(super) fn byte(&mut self) -> Result<u8, String> {
        let (first, rest) = self.0.split_first().ok_or("the record ends early")?;
        self.0 = rest;
        Ok(*first)
    }

    pub(super) fn flag(&mut self, what: &str) -> Result<bool, String> {
        match self.byte()? {
            0 => Ok(false),
            1 => Ok(true),
            other => Err(format!("{what} is {other}, not 0 or 1")),
        }
    }

    pub(super) fn uint(&mut self) -> Result<u64, String> {
        let mut value = 0u64;
        for shift in (0..64).step_by(7) {
            let byte = self.byte()?;
            value |= u64::from(byte & 0x7f) << shift;
            if byte & 0x80 == 0 {
                return Ok(value);
            }
        }
        Err("a number in the record is too long".to_string())
    }

    pub(super) fn u32(&mut self) -> Result<u32, String> {
        let value = self.uint()?;
        u32::try_from(value).map_err(|_| format!("{value} is out of range"))
    }

    pub(super) fn int(&mut self) -> Result<i64, String> {
        let value = self.uint()?;
        Ok(((value >> 1) as i64) ^ -((value & 1) as i64))
    }

    pub(super) fn bytes(&mut self) -> Result<&'a [u8], String> {
        let length = usize::try_from(self.uint()?).map_err(|_| "a length is out of range")?;
        self.take(length)
    }

    fn take(&mut self, length: usize) -> Result<&'a [u8], String> {
        if length > self.0.len() {
            return Err("the record ends early".to_string());
        }
        let (bytes, rest) = self.0.split_at(length);
        self.0 = rest;
        Ok(bytes)
    }

    /// A text written by [`Writer::compact_text`].
    pub(super) fn compact_text(&mut self) -> Result<String, String> {
        match self.byte()? {
            text_form::PLAIN => self.text(),
            text_form::ULID => {
                let bytes: [u8; 16] = self.take(16)?.try_into().expect("took 16 bytes");
                Ok(ulid::Ulid::from_bytes(bytes).to_string().to_ascii_lowercase())
            }
            text_form::HEX => Ok(hex::encode(self.bytes()?)),
            other => Err(format!("unknown text form {other}")),
        }
    }

    /// An instant written by [`Writer::instant_from`] with the same `base`.
    pub(super) fn instant_from(&mut self, base: &DateTime<Utc>) -> Result<DateTime<Utc>, String> {
        match self.byte()? {
            instant_form::WHOLE => self.instant(),
            instant_form::FROM_BASE => {
                let nanos = self.int()?;
                base.checked_add_signed(chrono::TimeDelta::nanoseconds(nanos))
                    .ok_or_else(|| format!("{nanos} ns from {base} is not an instant"))
            }
            other => Err(format!("unknown instant form {other}")),
        }
    }

    pub(super) fn text(&mut self) -> Result<String, String> {
        let bytes = self.bytes()?;
        String::from_utf8(bytes.to_vec()).map_err(|error| error.to_string())
    }

    pub(super) fn texts(&mut self) -> Result<Vec<String>, String> {
        let count = self.count()?;
        (0..count).map(|_| self.text()).collect()
    }

    /// The length of a list whose items take a byte or more each.
    pub(super) fn count(&mut self) -> Result<usize, String> {
        let count = self.uint()?;
        if count > self.0.len() as u64 {
            return Err("the record ends early".to_string());
        }
        Ok(count as usize)
    }

    /// The bytes not read yet must be none.
    pub(super) fn end(&self, what: &str) -> Result<(), String> {
        match self.0.len() {
            0 => Ok(()),
            left => Err(format!("{left} bytes left after the {what} record")),
        }
    }

    pub(super) fn instant(&mut self) -> Result<DateTime<Utc>, String> {
        let seconds = self.int()?;
        let nanos = self.u32()?;
        DateTime::from_timestamp(seconds, nanos).ok_or_else(|| format!("{seconds}.{nanos} is not an instant"))
    }

    pub(super) fn duration(&mut self) -> Result<Duration, String> {
        let seconds = self.uint()?;
        let nanos = self.u32()?;
        if nanos >= 1_000_000_000 {
            return Err(format!("{nanos} nanoseconds is not a fraction of a second"));
        }
        Ok(Duration::new(seconds, nanos))
    }

    pub(super) fn option<T>(
        &mut self,
        read: impl FnOnce(&mut Reader<'a>) -> Result<T, String>,
    ) -> Result<Option<T>, String> {
        match self.byte()? {
            0 => Ok(None),
            1 => read(self).map(Some),
            other => Err(format!("an optional field is marked {other}, not 0 or 1")),
        }
    }
}
