//! Contact lists from CSV files (SPEC §2.3 "CSV Upload Flow"): an upload is
//! kept as it came and read once to propose a column mapping and a preview;
//! the import reads it again with the confirmed mapping, normalizes phone
//! numbers, drops duplicates, scrubs against the DNC list and records the
//! contacts on the campaign's stream.

use super::{campaign_error, DncDirectory};
use crate::aggregates::{execute, load_in, session_metadata, stream_of};
use crate::auth::Session;
use crate::clock::Clock;
use crate::error::{AppError, ErrorKind};
use crate::event_store::EventStore;
use crate::permissions::{authorize, Action};
use async_trait::async_trait;
use chrono::{DateTime, Utc};
use domain::campaigns::{Campaign, CampaignCommand, ContactStatus, ImportedContact};
use domain::phone::PhoneNumber;
use domain::time_zone::TimeZone;
use domain::Aggregate;
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, HashSet};
use std::sync::Arc;
use uuid::Uuid;

/// Largest file accepted unless configured otherwise (`VOXREACH_UPLOAD_LIMIT_BYTES`).
pub const DEFAULT_UPLOAD_LIMIT_BYTES: usize = 50 * 1024 * 1024;
/// Rows shown mapped in an upload's preview.
pub const PREVIEW_ROWS: usize = 5;
/// Longest text a contact field keeps.
pub const CONTACT_FIELD_CHARS: usize = 2_000;

/// Which column feeds each contact field (`null`: none); every column not
/// named here and listed in `customData` is kept under its header.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ColumnMapping {
    #[serde(default)]
    pub first_name: Option<String>,
    #[serde(default)]
    pub last_name: Option<String>,
    #[serde(default)]
    pub phone: Option<String>,
    #[serde(default)]
    pub email: Option<String>,
    #[serde(default)]
    pub company: Option<String>,
    #[serde(default)]
    pub notes: Option<String>,
    #[serde(default)]
    pub timezone: Option<String>,
    #[serde(default)]
    pub custom_data: Vec<String>,
}

/// A row that was not imported: the physical line it starts on (the header is line 1) and why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct RowError {
    pub line: u64,
    pub reason: String,
}

/// A row as the mapping reads it, for the preview.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct PreviewRow {
    pub line: u64,
    /// E.164 when the number is valid.
    pub phone: Option<String>,
    pub first_name: Option<String>,
    pub last_name: Option<String>,
    pub email: Option<String>,
    pub company: Option<String>,
    pub notes: Option<String>,
    pub timezone: Option<String>,
    pub custom_data: BTreeMap<String, String>,
    /// Why the row would be refused, if it would.
    pub error: Option<String>,
}

/// What an upload holds, as first read.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct UploadSummary {
    pub upload_id: Uuid,
    pub columns: Vec<String>,
    /// The mapping the import takes unless the user edits it.
    pub mapping: ColumnMapping,
    pub preview: Vec<PreviewRow>,
    /// Records in the file (blank lines not counted).
    pub rows: u64,
    /// Rows the proposed mapping would refuse.
    pub invalid: u64,
    /// Set once imported.
    pub result: Option<ImportResult>,
}

/// What an import did.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ImportResult {
    /// Contacts added to be called.
    pub imported: u64,
    /// Rows whose number was already in the campaign, or earlier in the file.
    pub duplicates: u64,
    /// Contacts added with status `dnc`: on the DNC list, never dialled.
    pub dnc: u64,
    /// Rows refused (see `errors`).
    pub invalid: u64,
    pub errors: Vec<RowError>,
}

/// An upload kept until it is imported.
#[derive(Debug, Clone)]
pub struct StoredUpload {
    pub id: Uuid,
    pub organization_id: Uuid,
    pub campaign_id: Uuid,
    pub content: Vec<u8>,
    pub created_at: DateTime<Utc>,
    pub result: Option<ImportResult>,
}

/// Where uploads wait for their import (input staging, not domain state: the
/// import's events are the record).
#[async_trait]
pub trait UploadStore: Send + Sync {
    async fn save(&self, upload: &StoredUpload) -> Result<(), AppError>;
    async fn load(&self, organization_id: Uuid, campaign_id: Uuid, id: Uuid) -> Result<Option<StoredUpload>, AppError>;
    async fn record_result(&self, organization_id: Uuid, id: Uuid, result: &ImportResult) -> Result<(), AppError>;
}

/// A CSV file read into records.
#[derive(Debug, Clone, PartialEq)]
pub struct CsvFile {
    pub columns: Vec<String>,
    pub records: Vec<CsvRecord>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct CsvRecord {
    /// The physical line the record starts on (the header is line 1).
    pub line: u64,
    pub fields: Vec<String>,
}

fn unreadable(message: impl Into<String>) -> AppError {
    AppError::new(ErrorKind::Validation, "csv_unreadable", message).with_details(serde_json::json!({"field": "file"}))
}

/// UTF-8 (a BOM is dropped), else Windows-1252, which spreadsheet programs still write.
pub fn decode(bytes: &[u8]) -> String {
    let bytes = bytes.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(bytes);
    match std::str::from_utf8(bytes) {
        Ok(text) => text.to_owned(),
        Err(_) => encoding_rs::WINDOWS_1252
            .decode_without_bom_handling(bytes)
            .0
            .into_owned(),
    }
}

/// The separator the header line uses most: comma, semicolon or tab.
fn delimiter(text: &str) -> u8 {
    let header = text.lines().find(|line| !line.trim().is_empty()).unwrap_or_default();
    [b',', b';', b'\t']
        .into_iter()
        .max_by_key(|d| header.bytes().filter(|b| b == d).count())
        .unwrap_or(b',')
}

/// Reads a CSV file: any of the usual encodings and separators, quoted fields
/// with line breaks, blank lines skipped, repeated headers told apart.
pub fn read_csv(bytes: &[u8]) -> Result<CsvFile, AppError> {
    let text = decode(bytes);
    let mut reader = csv::ReaderBuilder::new()
        .delimiter(delimiter(&text))
        .flexible(true)
        .has_headers(false)
        .from_reader(text.as_bytes());
    let mut records = reader.records();
    let header = loop {
        match records.next() {
            None => return Err(unreadable("the file has no header row")),
            Some(Err(e)) => return Err(unreadable(format!("the file is not CSV: {e}"))),
            Some(Ok(record)) if record.iter().all(|f| f.trim().is_empty()) => continue,
            Some(Ok(record)) => break record,
        }
    };
    let mut columns: Vec<String> = Vec::with_capacity(header.len());
    for (index, raw) in header.iter().enumerate() {
        let base = match raw.trim() {
            "" => format!("Column {}", index + 1),
            name => name.to_owned(),
        };
        let mut name = base.clone();
        let mut copy = 2;
        while columns.contains(&name) {
            name = format!("{base} ({copy})");
            copy += 1;
        }
        columns.push(name);
    }
    // Lines are counted from the bytes: a record's position may point at the
    // blank lines the reader skipped before it.
    let bytes = text.as_bytes();
    let mut counted = (0, 1);
    let mut line_at = |offset: u64| {
        let (from, line) = counted;
        let mut offset = (offset as usize).min(bytes.len());
        while offset < bytes.len() && matches!(bytes[offset], b'\r' | b'\n') {
            offset += 1;
        }
        let line = line + bytes[from..offset].iter().filter(|b| **b == b'\n').count() as u64;
        counted = (offset, line);
        line
    };
    let header_line = line_at(header.position().map_or(0, |p| p.byte()));
    let mut rows = Vec::new();
    for record in records {
        let record = record.map_err(|e| unreadable(format!("the file is not CSV: {e}")))?;
        if record.iter().all(|f| f.trim().is_empty()) {
            continue;
        }
        let line = line_at(record.position().map_or(0, |p| p.byte())) - header_line + 1;
        rows.push(CsvRecord {
            line,
            fields: record.iter().map(|f| f.trim().to_owned()).collect(),
        });
    }
    Ok(CsvFile { columns, records: rows })
}

/// Lower case letters and digits only: `First Name`, `first_name` and `FIRSTNAME` alike.
fn normalized(header: &str) -> String {
    header
        .chars()
        .filter(char::is_ascii_alphanumeric)
        .flat_map(char::to_lowercase)
        .collect()
}

/// Headers people use for each field.
const KNOWN_HEADERS: [(&str, &[&str]); 7] = [
    (
        "phone",
        &[
            "phone",
            "phonenumber",
            "mobile",
            "mobilephone",
            "cell",
            "cellphone",
            "telephone",
            "tel",
            "number",
        ],
    ),
    ("firstName", &["firstname", "first", "givenname", "fname", "forename"]),
    ("lastName", &["lastname", "last", "surname", "familyname", "lname"]),
    ("email", &["email", "emailaddress", "mail", "email1"]),
    (
        "company",
        &[
            "company",
            "companyname",
            "organization",
            "organisation",
            "business",
            "account",
            "employer",
        ],
    ),
    ("notes", &["notes", "note", "comments", "comment", "remarks"]),
    ("timezone", &["timezone", "tz", "zone"]),
];

/// A mapping guessed from the headers; unrecognized columns become custom data.
pub fn propose_mapping(columns: &[String]) -> ColumnMapping {
    let mut mapping = ColumnMapping::default();
    let mut used = HashSet::new();
    for (field, names) in KNOWN_HEADERS {
        let found = columns
            .iter()
            .find(|c| !used.contains(*c) && names.contains(&normalized(c).as_str()))
            .cloned();
        if let Some(column) = &found {
            used.insert(column.clone());
        }
        let slot = match field {
            "phone" => &mut mapping.phone,
            "firstName" => &mut mapping.first_name,
            "lastName" => &mut mapping.last_name,
            "email" => &mut mapping.email,
            "company" => &mut mapping.company,
            "notes" => &mut mapping.notes,
            _ => &mut mapping.timezone,
        };
        *slot = found;
    }
    mapping.custom_data = columns.iter().filter(|c| !used.contains(*c)).cloned().collect();
    mapping
}

/// Column positions of a mapping, checked against the file's columns.
struct Positions {
    phone: usize,
    first_name: Option<usize>,
    last_name: Option<usize>,
    email: Option<usize>,
    company: Option<usize>,
    notes: Option<usize>,
    timezone: Option<usize>,
    custom_data: Vec<(String, usize)>,
}

impl Positions {
    fn of(mapping: &ColumnMapping, columns: &[String]) -> Result<Self, AppError> {
        let find = |field: &str, column: &Option<String>| -> Result<Option<usize>, AppError> {
            column
                .as_ref()
                .map(|name| {
                    columns.iter().position(|c| c == name).ok_or_else(|| {
                        AppError::validation(&format!("mapping.{field}"), format!("the file has no column {name:?}"))
                    })
                })
                .transpose()
        };
        let phone = find("phone", &mapping.phone)?.ok_or_else(|| {
            AppError::new(
                ErrorKind::Unprocessable,
                "mapping_without_phone",
                "the mapping names no phone column: contacts cannot be called without a number",
            )
            .with_details(serde_json::json!({"field": "mapping.phone"}))
        })?;
        let custom_data = mapping
            .custom_data
            .iter()
            .map(|name| {
                Ok((
                    name.clone(),
                    find("customData", &Some(name.clone()))?.unwrap_or_default(),
                ))
            })
            .collect::<Result<Vec<_>, AppError>>()?;
        Ok(Self {
            phone,
            first_name: find("firstName", &mapping.first_name)?,
            last_name: find("lastName", &mapping.last_name)?,
            email: find("email", &mapping.email)?,
            company: find("company", &mapping.company)?,
            notes: find("notes", &mapping.notes)?,
            timezone: find("timezone", &mapping.timezone)?,
            custom_data,
        })
    }
}

/// A row read with a mapping: a contact to import, or why not.
fn contact_of(record: &CsvRecord, at: &Positions) -> Result<ImportedContact, String> {
    let field = |position: Option<usize>| -> Result<Option<String>, String> {
        match position.and_then(|p| record.fields.get(p)).filter(|v| !v.is_empty()) {
            Some(value) if value.chars().count() > CONTACT_FIELD_CHARS => {
                Err(format!("a field is longer than {CONTACT_FIELD_CHARS} characters"))
            }
            Some(value) if value.contains('\0') => Err("a field holds a NUL character".to_owned()),
            value => Ok(value.cloned()),
        }
    };
    let raw_phone = field(Some(at.phone))?.ok_or("no phone number")?;
    let phone = PhoneNumber::parse(&raw_phone).map_err(|e| e.to_string())?;
    let timezone = field(at.timezone)?
        .map(|zone| TimeZone::try_from(zone.clone()).map_err(|_| format!("{zone:?} is not an IANA time zone")))
        .transpose()?;
    let mut custom_data = BTreeMap::new();
    for (name, position) in &at.custom_data {
        if let Some(value) = field(Some(*position))? {
            custom_data.insert(name.clone(), value);
        }
    }
    Ok(ImportedContact {
        contact_id: Uuid::now_v7(),
        phone,
        first_name: field(at.first_name)?,
        last_name: field(at.last_name)?,
        email: field(at.email)?,
        company: field(at.company)?,
        notes: field(at.notes)?,
        timezone,
        custom_data,
        priority: 0,
        status: ContactStatus::Pending,
    })
}

/// The contacts a file's rows became (with their lines), and the refused rows.
pub type MappedRows = (Vec<(u64, ImportedContact)>, Vec<RowError>);

/// Every row read with `mapping`.
pub fn map_rows(file: &CsvFile, mapping: &ColumnMapping) -> Result<MappedRows, AppError> {
    let positions = Positions::of(mapping, &file.columns)?;
    let mut contacts = Vec::with_capacity(file.records.len());
    let mut errors = Vec::new();
    for record in &file.records {
        match contact_of(record, &positions) {
            Ok(contact) => contacts.push((record.line, contact)),
            Err(reason) => errors.push(RowError {
                line: record.line,
                reason,
            }),
        }
    }
    Ok((contacts, errors))
}

fn preview_of(file: &CsvFile, mapping: &ColumnMapping) -> Result<(Vec<PreviewRow>, u64), AppError> {
    let positions = match Positions::of(mapping, &file.columns) {
        Ok(positions) => positions,
        // No phone column found: the preview shows nothing callable, every row is refused.
        Err(_) => return Ok((vec![], file.records.len() as u64)),
    };
    let mut invalid = 0;
    let mut preview = Vec::new();
    for record in &file.records {
        let read = contact_of(record, &positions);
        invalid += u64::from(read.is_err());
        if preview.len() < PREVIEW_ROWS {
            let cell = |p: Option<usize>| p.and_then(|p| record.fields.get(p)).filter(|v| !v.is_empty()).cloned();
            preview.push(match read {
                Ok(c) => PreviewRow {
                    line: record.line,
                    phone: Some(c.phone.to_string()),
                    first_name: c.first_name,
                    last_name: c.last_name,
                    email: c.email,
                    company: c.company,
                    notes: c.notes,
                    timezone: c.timezone.map(String::from),
                    custom_data: c.custom_data,
                    error: None,
                },
                Err(reason) => PreviewRow {
                    line: record.line,
                    phone: None,
                    first_name: cell(positions.first_name),
                    last_name: cell(positions.last_name),
                    email: cell(positions.email),
                    company: cell(positions.company),
                    notes: cell(positions.notes),
                    timezone: cell(positions.timezone),
                    custom_data: BTreeMap::new(),
                    error: Some(reason),
                },
            });
        }
    }
    Ok((preview, invalid))
}

/// Runs CSV work (up to the upload limit's worth) on a blocking thread, off the async workers.
async fn off_the_runtime<T: Send + 'static>(
    work: impl FnOnce() -> Result<T, AppError> + Send + 'static,
) -> Result<T, AppError> {
    tokio::task::spawn_blocking(work)
        .await
        .map_err(|e| AppError::internal("reading a contact file", e))?
}

fn summary_of(upload: &StoredUpload) -> Result<UploadSummary, AppError> {
    let file = read_csv(&upload.content)?;
    let mapping = propose_mapping(&file.columns);
    let (preview, invalid) = preview_of(&file, &mapping)?;
    Ok(UploadSummary {
        upload_id: upload.id,
        columns: file.columns.clone(),
        mapping,
        preview,
        rows: file.records.len() as u64,
        invalid,
        result: upload.result.clone(),
    })
}

pub struct UploadService {
    pub store: Arc<dyn EventStore>,
    pub clock: Arc<dyn Clock>,
    pub uploads: Arc<dyn UploadStore>,
    pub dnc: Arc<dyn DncDirectory>,
}

impl UploadService {
    /// A campaign of the caller's organization that still takes contacts.
    async fn campaign(&self, caller: &Session, campaign_id: Uuid) -> Result<Campaign, AppError> {
        let loaded = load_in::<Campaign>(
            self.store.as_ref(),
            caller.organization_id,
            stream_of::<Campaign>(campaign_id),
        )
        .await?;
        if !loaded.state.exists() || loaded.state.archived {
            return Err(AppError::not_found("campaign"));
        }
        Ok(loaded.state)
    }

    /// Keeps the file and reads it once: columns, proposed mapping, preview, counts.
    #[tracing::instrument(skip_all, fields(organization_id = %caller.organization_id, bytes = content.len()))]
    pub async fn upload(
        &self,
        caller: &Session,
        campaign_id: Uuid,
        content: Vec<u8>,
    ) -> Result<UploadSummary, AppError> {
        authorize(caller, Action::RunCampaigns)?;
        let campaign = self.campaign(caller, campaign_id).await?;
        if campaign.status.is_final() {
            return Err(campaign_error(domain::campaigns::CampaignError::NotEditable {
                status: campaign.status,
                fields: vec!["contacts"],
            }));
        }
        let upload = StoredUpload {
            id: Uuid::now_v7(),
            organization_id: caller.organization_id,
            campaign_id,
            content,
            created_at: self.clock.now(),
            result: None,
        };
        // Read before keeping it: a file that is not CSV is refused at once.
        let (upload, summary) = off_the_runtime(move || {
            let summary = summary_of(&upload)?;
            Ok((upload, summary))
        })
        .await?;
        self.uploads.save(&upload).await?;
        Ok(summary)
    }

    async fn stored(&self, caller: &Session, campaign_id: Uuid, upload_id: Uuid) -> Result<StoredUpload, AppError> {
        self.uploads
            .load(caller.organization_id, campaign_id, upload_id)
            .await?
            .ok_or_else(|| AppError::not_found("upload"))
    }

    /// The upload as first read, with its import's result once imported.
    #[tracing::instrument(skip_all, fields(organization_id = %caller.organization_id, %campaign_id, %upload_id))]
    pub async fn get(&self, caller: &Session, campaign_id: Uuid, upload_id: Uuid) -> Result<UploadSummary, AppError> {
        let upload = self.stored(caller, campaign_id, upload_id).await?;
        off_the_runtime(move || summary_of(&upload)).await
    }

    /// Imports the upload with the confirmed mapping.
    #[tracing::instrument(skip_all, fields(organization_id = %caller.organization_id, %campaign_id, %upload_id))]
    pub async fn import(
        &self,
        caller: &Session,
        campaign_id: Uuid,
        upload_id: Uuid,
        mapping: &ColumnMapping,
    ) -> Result<ImportResult, AppError> {
        authorize(caller, Action::RunCampaigns)?;
        let upload = self.stored(caller, campaign_id, upload_id).await?;
        // Imported already (a retried request): the first import's answer.
        if let Some(result) = upload.result {
            return Ok(result);
        }
        let content = upload.content;
        let confirmed = mapping.clone();
        let (contacts, errors) = off_the_runtime(move || map_rows(&read_csv(&content)?, &confirmed)).await?;
        let campaign = self.campaign(caller, campaign_id).await?;
        let mut seen: HashSet<PhoneNumber> = HashSet::with_capacity(contacts.len());
        let mut fresh = Vec::with_capacity(contacts.len());
        let mut duplicates = 0;
        for (_, contact) in contacts {
            if campaign.phones.contains(&contact.phone) || !seen.insert(contact.phone.clone()) {
                duplicates += 1;
            } else {
                fresh.push(contact);
            }
        }
        let phones: Vec<PhoneNumber> = fresh.iter().map(|c| c.phone.clone()).collect();
        let listed = self.dnc.listed_among(caller.organization_id, &phones).await?;
        for contact in &mut fresh {
            if listed.contains(&contact.phone) {
                contact.status = ContactStatus::Dnc;
            }
        }
        let dnc = fresh.iter().filter(|c| c.status == ContactStatus::Dnc).count() as u64;
        let now = self.clock.now();
        // The campaign dedupes again against its own state, so a concurrent import adds no number twice.
        let added = std::sync::atomic::AtomicU64::new(0);
        execute::<Campaign>(
            self.store.as_ref(),
            caller.organization_id,
            stream_of::<Campaign>(campaign_id),
            &session_metadata(caller),
            |loaded| {
                let events = Campaign::decide(
                    &CampaignCommand::ImportContacts {
                        contacts: fresh.clone(),
                        now,
                    },
                    &loaded.state,
                )
                .map_err(campaign_error)?;
                let count: usize = events
                    .iter()
                    .map(|e| match e {
                        domain::campaigns::CampaignEvent::CampaignContactsImported { contacts, .. } => contacts.len(),
                        _ => 0,
                    })
                    .sum();
                added.store(count as u64, std::sync::atomic::Ordering::Relaxed);
                Ok(events)
            },
        )
        .await?;
        let added = added.into_inner();
        let raced = (fresh.len() as u64).saturating_sub(added);
        let result = ImportResult {
            imported: added.saturating_sub(dnc),
            duplicates: duplicates + raced,
            dnc,
            invalid: errors.len() as u64,
            errors,
        };
        self.uploads
            .record_result(caller.organization_id, upload_id, &result)
            .await?;
        Ok(result)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file(text: &[u8]) -> CsvFile {
        read_csv(text).expect("readable")
    }

    #[test]
    fn reads_bom_semicolons_quoted_line_breaks_blank_lines_and_repeated_headers() {
        let text =
            "\u{feff}First Name;Phone;Notes;Notes\n\nAda;(415) 555-2671;\"two\nlines\";x\n;;;\nBob;+14155550100;;y\n";
        let parsed = file(text.as_bytes());
        assert_eq!(parsed.columns, ["First Name", "Phone", "Notes", "Notes (2)"]);
        assert_eq!(parsed.records.len(), 2);
        assert_eq!(parsed.records[0].line, 3, "the header is line 1, then a blank line");
        assert_eq!(parsed.records[0].fields[2], "two\nlines");
        assert_eq!(parsed.records[1].line, 6, "a record's line is where it starts");
    }

    #[test]
    fn windows_1252_is_converted_and_tabs_are_separators() {
        let text = b"Name\tPhone\nRen\xe9e\t4155552671\n";
        let parsed = file(text);
        assert_eq!(parsed.records[0].fields[0], "Renée");
    }

    #[test]
    fn the_proposed_mapping_recognizes_usual_headers_and_keeps_the_rest() {
        let columns: Vec<String> = [
            "First Name",
            "SURNAME",
            "Mobile",
            "E-mail",
            "Company",
            "Deal size",
            "Time Zone",
        ]
        .map(String::from)
        .to_vec();
        let mapping = propose_mapping(&columns);
        assert_eq!(mapping.phone.as_deref(), Some("Mobile"));
        assert_eq!(mapping.first_name.as_deref(), Some("First Name"));
        assert_eq!(mapping.last_name.as_deref(), Some("SURNAME"));
        assert_eq!(mapping.email.as_deref(), Some("E-mail"));
        assert_eq!(mapping.timezone.as_deref(), Some("Time Zone"));
        assert_eq!(mapping.custom_data, ["Deal size"]);
    }

    #[test]
    fn rows_are_mapped_or_refused_with_their_line_and_reason() {
        let parsed = file(b"Phone,Zone,Size\n4155552671,America/Chicago,big\nnope,,\n+14155550100,Mars/Base,\n");
        let mapping = ColumnMapping {
            phone: Some("Phone".into()),
            timezone: Some("Zone".into()),
            custom_data: vec!["Size".into()],
            ..ColumnMapping::default()
        };
        let (contacts, errors) = map_rows(&parsed, &mapping).unwrap();
        assert_eq!(contacts.len(), 1);
        assert_eq!(contacts[0].1.phone.as_str(), "+14155552671");
        assert_eq!(contacts[0].1.custom_data["Size"], "big");
        assert_eq!(errors.iter().map(|e| e.line).collect::<Vec<_>>(), [3, 4]);
        assert!(errors[1].reason.contains("IANA"), "{}", errors[1].reason);
        let no_phone = ColumnMapping {
            first_name: Some("Zone".into()),
            ..ColumnMapping::default()
        };
        assert_eq!(map_rows(&parsed, &no_phone).unwrap_err().kind, ErrorKind::Unprocessable);
        let unknown = ColumnMapping {
            phone: Some("Telephone".into()),
            ..ColumnMapping::default()
        };
        assert_eq!(map_rows(&parsed, &unknown).unwrap_err().kind, ErrorKind::Validation);
    }

    #[test]
    fn a_file_without_a_header_is_unreadable() {
        assert!(read_csv(b"").is_err());
        assert!(read_csv(b"\n\n").is_err());
    }
}
