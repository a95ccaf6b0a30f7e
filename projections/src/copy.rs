//! Bulk writes by `COPY … FROM STDIN (FORMAT binary)` for rebuilds: rows that
//! cannot conflict with stored ones go in without an upsert's per-row work.
//! Binary, not text: PostgreSQL then copies each field as it comes instead of
//! scanning every byte of it for escapes and parsing ids, numbers and times
//! from text (most of what a text `COPY` of transcripts cost it).

use chrono::{DateTime, Utc};
use sqlx::PgConnection;
use uuid::Uuid;

/// How much of a `COPY` is sent at a time.
const CHUNK_BYTES: usize = 1 << 20;

/// The binary format's signature, flags and header extension length.
const HEADER: &[u8] = b"PGCOPY\n\xff\r\n\0\0\0\0\0\0\0\0\0";

/// The type id of `text`, for the elements of a `text[]`.
const TEXT_OID: u32 = 25;

/// Seconds from the Unix epoch to PostgreSQL's (2000-01-01 UTC).
const POSTGRES_EPOCH_SECONDS: i64 = 946_684_800;

/// A Rust value in the binary form of the column type it maps to, as sqlx binds it:
/// `Uuid` uuid, `bool` boolean, `i16` smallint, `i32` integer, `i64` bigint,
/// `f64` double precision, `str` text, `DateTime<Utc>` timestamptz.
pub(crate) trait CopyValue {
    fn write_to(&self, out: &mut Vec<u8>);
}

impl CopyValue for Uuid {
    fn write_to(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(self.as_bytes());
    }
}

impl CopyValue for bool {
    fn write_to(&self, out: &mut Vec<u8>) {
        out.push(u8::from(*self));
    }
}

macro_rules! big_endian {
    ($($number:ty),*) => {$(
        impl CopyValue for $number {
            fn write_to(&self, out: &mut Vec<u8>) {
                out.extend_from_slice(&self.to_be_bytes());
            }
        }
    )*};
}
big_endian!(i16, i32, i64, f64);

impl CopyValue for str {
    fn write_to(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(self.as_bytes());
    }
}

impl CopyValue for String {
    fn write_to(&self, out: &mut Vec<u8>) {
        self.as_str().write_to(out);
    }
}

impl<T: CopyValue + ?Sized> CopyValue for &T {
    fn write_to(&self, out: &mut Vec<u8>) {
        (**self).write_to(out);
    }
}

/// Microseconds since PostgreSQL's epoch, rounded as PostgreSQL rounds a time
/// it reads as text (the fraction as a double, times a million, to the nearest
/// even): rebuilt rows hold the times the live path's JSON gave it.
impl CopyValue for DateTime<Utc> {
    fn write_to(&self, out: &mut Vec<u8>) {
        let fraction = f64::from(self.timestamp_subsec_nanos()) / 1e9;
        let micros = (fraction * 1e6).round_ties_even() as i64;
        ((self.timestamp() - POSTGRES_EPOCH_SECONDS) * 1_000_000 + micros).write_to(out);
    }
}

/// The rows of one `COPY`, written field by field in the columns' order.
pub(crate) struct CopyRows {
    buffer: Vec<u8>,
    /// Where the current row's field count goes, and the count so far.
    row: Option<(usize, i16)>,
}

impl CopyRows {
    fn new() -> Self {
        Self {
            buffer: Vec::with_capacity(CHUNK_BYTES + 64 * 1024),
            row: None,
        }
    }

    /// Starts a field of `length` bytes (`None`: null).
    fn field(&mut self, length: Option<usize>) {
        let (_, fields) = self.row.get_or_insert_with(|| {
            let at = self.buffer.len();
            self.buffer.extend_from_slice(&[0, 0]);
            (at, 0)
        });
        *fields += 1;
        let length = length.map_or(-1, |n| i32::try_from(n).expect("a field under 2 GB"));
        self.buffer.extend_from_slice(&length.to_be_bytes());
    }

    /// A value, or null.
    pub(crate) fn value(&mut self, value: Option<impl CopyValue>) -> &mut Self {
        let Some(value) = value else {
            self.field(None);
            return self;
        };
        // The length is known once the value is written: reserve it, then fill it in.
        self.field(Some(0));
        let start = self.buffer.len();
        value.write_to(&mut self.buffer);
        let length = i32::try_from(self.buffer.len() - start).expect("a field under 2 GB");
        self.buffer[start - 4..start].copy_from_slice(&length.to_be_bytes());
        self
    }

    /// A `text[]` of these items (one dimension, no nulls).
    pub(crate) fn text_array(&mut self, items: &[String]) -> &mut Self {
        let elements: usize = items.iter().map(|item| 4 + item.len()).sum();
        let dimensions = if items.is_empty() { 0 } else { 8 };
        self.field(Some(12 + dimensions + elements));
        let out = &mut self.buffer;
        out.extend_from_slice(&i32::from(!items.is_empty()).to_be_bytes());
        out.extend_from_slice(&0i32.to_be_bytes());
        out.extend_from_slice(&TEXT_OID.to_be_bytes());
        if !items.is_empty() {
            let count = i32::try_from(items.len()).expect("an array under 2 G items");
            out.extend_from_slice(&count.to_be_bytes());
            out.extend_from_slice(&1i32.to_be_bytes());
        }
        for item in items {
            let length = i32::try_from(item.len()).expect("an element under 2 GB");
            out.extend_from_slice(&length.to_be_bytes());
            out.extend_from_slice(item.as_bytes());
        }
        self
    }

    fn end_row(&mut self) {
        if let Some((at, fields)) = self.row.take() {
            self.buffer[at..at + 2].copy_from_slice(&fields.to_be_bytes());
        }
    }
}

/// Copies `items` into `target` (`table (columns…)`), each written as one row by `write`.
pub(crate) async fn copy_in<T>(
    conn: &mut PgConnection,
    target: &str,
    items: impl IntoIterator<Item = T>,
    mut write: impl FnMut(&mut CopyRows, T) -> Result<(), sqlx::Error>,
) -> Result<(), sqlx::Error> {
    let mut items = items.into_iter().peekable();
    if items.peek().is_none() {
        return Ok(());
    }
    let mut copy = conn
        .copy_in_raw(&format!("COPY {target} FROM STDIN (FORMAT binary)"))
        .await?;
    let mut rows = CopyRows::new();
    rows.buffer.extend_from_slice(HEADER);
    for item in items {
        if let Err(failed) = write(&mut rows, item) {
            copy.abort("a row could not be written").await?;
            return Err(failed);
        }
        rows.end_row();
        if rows.buffer.len() >= CHUNK_BYTES {
            let chunk = std::mem::replace(&mut rows.buffer, Vec::with_capacity(CHUNK_BYTES + 64 * 1024));
            copy.send(chunk).await?;
        }
    }
    // The trailer: a row of -1 fields.
    rows.buffer.extend_from_slice(&(-1i16).to_be_bytes());
    copy.send(rows.buffer).await?;
    copy.finish().await.map(|_| ())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rows_are_counted_fields_with_lengths_and_null_marks() {
        let mut rows = CopyRows::new();
        rows.value(Some(3i32)).value(Some("ab")).value(None::<i64>);
        rows.end_row();
        rows.value(Some(true));
        rows.end_row();
        assert_eq!(
            rows.buffer,
            [
                &[0, 3][..],
                &[0, 0, 0, 4, 0, 0, 0, 3],
                &[0, 0, 0, 2, b'a', b'b'],
                &[0xff, 0xff, 0xff, 0xff],
                &[0, 1, 0, 0, 0, 1, 1],
            ]
            .concat()
        );
    }

    #[test]
    fn times_round_to_the_microsecond_as_postgres_reads_text() {
        let micros = |seconds: i64, nanos: u32| {
            let mut out = vec![];
            DateTime::from_timestamp(POSTGRES_EPOCH_SECONDS + seconds, nanos)
                .unwrap()
                .write_to(&mut out);
            i64::from_be_bytes(out.try_into().unwrap())
        };
        // What PostgreSQL 15 makes of '2000-01-01T00:00:00.<nanos>Z'.
        assert_eq!(micros(0, 500), 0);
        assert_eq!(micros(0, 1_500), 2);
        assert_eq!(micros(0, 2_500), 2);
        assert_eq!(micros(0, 123_456_500), 123_456);
        assert_eq!(micros(0, 999_999_500), 1_000_000);
        assert_eq!(micros(-1, 0), -1_000_000);
    }

    #[test]
    fn text_arrays_carry_dimensions_only_when_not_empty() {
        let mut rows = CopyRows::new();
        rows.text_array(&[]).text_array(&["a\"b".to_owned()]);
        rows.end_row();
        let empty = [&[0, 0, 0, 12][..], &[0, 0, 0, 0], &[0, 0, 0, 0], &[0, 0, 0, 25]].concat();
        let one = [
            &[0, 0, 0, 27][..],
            &[0, 0, 0, 1],
            &[0, 0, 0, 0],
            &[0, 0, 0, 25],
            &[0, 0, 0, 1],
            &[0, 0, 0, 1],
            &[0, 0, 0, 3, b'a', b'"', b'b'],
        ]
        .concat();
        assert_eq!(rows.buffer, [&[0, 2][..], &empty, &one].concat());
    }
}
