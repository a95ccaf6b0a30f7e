//! Bulk writes by `COPY … FROM STDIN` (text format) for rebuilds: rows that
//! cannot conflict with stored ones go in without an upsert's per-row work.

use chrono::{DateTime, SecondsFormat, Utc};
use sqlx::PgConnection;
use std::fmt::{Display, Write as _};

/// How much of a `COPY` is sent at a time.
const CHUNK_BYTES: usize = 1 << 20;

/// The rows of one `COPY`, written field by field in the columns' order.
pub(crate) struct CopyRows {
    buffer: String,
    row_started: bool,
}

impl CopyRows {
    fn separate(&mut self) {
        if self.row_started {
            self.buffer.push('\t');
        }
        self.row_started = true;
    }

    /// A value whose text form needs no escaping: a number, an id, a flag.
    pub(crate) fn value(&mut self, value: Option<impl Display>) -> &mut Self {
        self.separate();
        match value {
            Some(value) => {
                let _ = write!(self.buffer, "{value}");
            }
            None => self.buffer.push_str("\\N"),
        }
        self
    }

    /// A text value, escaped as the format requires.
    pub(crate) fn text(&mut self, value: Option<&str>) -> &mut Self {
        self.separate();
        let Some(value) = value else {
            self.buffer.push_str("\\N");
            return self;
        };
        // Copies the runs between special characters whole: transcripts are long and rarely escaped.
        let mut rest = value;
        while let Some(at) = rest.find(['\\', '\t', '\n', '\r']) {
            self.buffer.push_str(&rest[..at]);
            self.buffer.push_str(match rest.as_bytes()[at] {
                b'\\' => "\\\\",
                b'\t' => "\\t",
                b'\n' => "\\n",
                _ => "\\r",
            });
            rest = &rest[at + 1..];
        }
        self.buffer.push_str(rest);
        self
    }

    /// A time, as precise as it is: PostgreSQL rounds it to the microsecond,
    /// as it does a time in JSON (a bound parameter is cut instead).
    pub(crate) fn time(&mut self, value: Option<DateTime<Utc>>) -> &mut Self {
        self.value(value.map(|at| at.to_rfc3339_opts(SecondsFormat::AutoSi, true)))
    }

    fn end_row(&mut self) {
        self.buffer.push('\n');
        self.row_started = false;
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
    let mut copy = conn.copy_in_raw(&format!("COPY {target} FROM STDIN")).await?;
    let mut rows = CopyRows {
        buffer: String::with_capacity(CHUNK_BYTES + 64 * 1024),
        row_started: false,
    };
    for item in items {
        if let Err(failed) = write(&mut rows, item) {
            copy.abort("a row could not be written").await?;
            return Err(failed);
        }
        rows.end_row();
        if rows.buffer.len() >= CHUNK_BYTES {
            let chunk = std::mem::replace(&mut rows.buffer, String::with_capacity(CHUNK_BYTES + 64 * 1024));
            copy.send(chunk.into_bytes()).await?;
        }
    }
    copy.send(rows.buffer.into_bytes()).await?;
    copy.finish().await.map(|_| ())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fields_are_tab_separated_escaped_and_null_marked() {
        let mut rows = CopyRows {
            buffer: String::new(),
            row_started: false,
        };
        rows.value(Some(3))
            .text(Some("a\tb\\c\nd\re"))
            .value(None::<i32>)
            .text(None)
            .time(Some(DateTime::from_timestamp(0, 999).unwrap()));
        rows.end_row();
        rows.value(Some(true));
        rows.end_row();
        assert_eq!(
            rows.buffer,
            "3\ta\\tb\\\\c\\nd\\re\t\\N\t\\N\t1970-01-01T00:00:00.000000999Z\ntrue\n"
        );
    }
}
