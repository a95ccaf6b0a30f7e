//! Events per organization, day and event type: the usage series behind
//! activity charts and plan metering. Applied set-wise, one statement per batch.

use crate::runtime::ReadModel;
use async_trait::async_trait;
use chrono::NaiveDate;
use domain::RecordedEvent;
use sqlx::PgConnection;
use std::collections::BTreeMap;
use uuid::Uuid;

pub struct ActivityProjection;

#[async_trait]
impl ReadModel for ActivityProjection {
    fn name(&self) -> &'static str {
        "activity"
    }

    fn schema_version(&self) -> i32 {
        1
    }

    fn stream_types(&self) -> Option<&[&'static str]> {
        // Counts every event.
        None
    }

    fn reads_payloads(&self) -> bool {
        false
    }

    fn tables(&self) -> &'static [&'static str] {
        &["organization_activity"]
    }

    fn create_sql(&self) -> &'static str {
        include_str!("activity.sql")
    }

    async fn apply(&self, conn: &mut PgConnection, events: &[RecordedEvent]) -> Result<(), sqlx::Error> {
        let mut counts: BTreeMap<(Uuid, NaiveDate, &str), i64> = BTreeMap::new();
        for event in events {
            *counts
                .entry((
                    event.organization_id,
                    event.recorded_at.date_naive(),
                    event.event_type.as_str(),
                ))
                .or_default() += 1;
        }
        if counts.is_empty() {
            return Ok(());
        }
        let (mut organizations, mut days, mut types, mut numbers) = (vec![], vec![], vec![], vec![]);
        for ((organization, day, event_type), n) in counts {
            organizations.push(organization);
            days.push(day);
            types.push(event_type.to_owned());
            numbers.push(n);
        }
        sqlx::query(
            "INSERT INTO organization_activity AS a (organization_id, day, event_type, events)
             SELECT * FROM UNNEST($1::uuid[], $2::date[], $3::text[], $4::bigint[])
             ON CONFLICT (organization_id, day, event_type) DO UPDATE SET events = a.events + EXCLUDED.events",
        )
        .bind(organizations)
        .bind(days)
        .bind(types)
        .bind(numbers)
        .execute(conn)
        .await?;
        Ok(())
    }
}
