-- Tables of the `analytics` read model, created in the schema on the search path.

-- The time zone each organization counts its days and hours in.
CREATE TABLE analytics_organizations (
    organization_id UUID PRIMARY KEY,
    timezone TEXT NOT NULL
);

-- The CRM stage that means a deal was won, per organization and CRM.
CREATE TABLE analytics_sale_stages (
    organization_id UUID NOT NULL,
    provider TEXT NOT NULL,
    stage TEXT NOT NULL,
    PRIMARY KEY (organization_id, provider)
);

-- One row per call: what analytics knows of it. local_date and local_hour are
-- the call's start in its organization's time zone, always computed here by
-- PostgreSQL (also when the zone changes), so a replay buckets exactly alike.
CREATE TABLE analytics_calls (
    id UUID PRIMARY KEY,
    organization_id UUID NOT NULL,
    agent_id UUID NULL,
    campaign_id UUID NULL,
    started_at TIMESTAMPTZ NOT NULL,
    start_from_report BOOLEAN NOT NULL,
    local_date DATE NOT NULL,
    local_hour SMALLINT NOT NULL,
    duration_seconds DOUBLE PRECISION NULL,
    outcome TEXT NULL,
    connected BOOLEAN NOT NULL,
    no_contact BOOLEAN NOT NULL,
    appointment_booked BOOLEAN NOT NULL,
    deal_won BOOLEAN NOT NULL,
    -- 0 called, 1 contact, 2 qualified, 3 appointment, 4 sale: the furthest funnel stage reached.
    level SMALLINT NOT NULL,
    talk_agent DOUBLE PRECISION NULL,
    talk_prospect DOUBLE PRECISION NULL,
    talk_monologue DOUBLE PRECISION NULL,
    talk_interruptions INT NULL,
    talk_silence DOUBLE PRECISION NULL,
    talk_call DOUBLE PRECISION NULL,
    sentiment DOUBLE PRECISION NULL,
    sentiment_label TEXT NULL,
    adherence DOUBLE PRECISION NULL,
    missed_points TEXT[] NOT NULL DEFAULT '{}'
);
-- How a new time zone finds an organization's calls (also while rebuilding). Unique (it holds
-- the key) so that a rebuild keeps it while loading: only non-unique indexes
-- are deferred to the end, and without this one a zone change would scan all calls.
CREATE UNIQUE INDEX analytics_calls_by_day ON analytics_calls (organization_id, local_date, id);

-- The figures pre-aggregated per organization × local day, in four groupings
-- (counts are INT: a day's count fits, and summing INT is far cheaper than BIGINT, which sums as numeric;
-- sums of decimals, `_micros`, are whole millionths, exact, so a batch adds and subtracts calls and ends
-- where a rebuild does):
-- dims 0 every call, 1 per agent, 2 per campaign, 3 per agent and campaign.
-- Keys a grouping does not split by are the nil uuid; so are calls without an
-- agent or campaign within the groupings that split.
CREATE TABLE analytics_daily (
    organization_id UUID NOT NULL,
    dims SMALLINT NOT NULL,
    agent_key UUID NOT NULL,
    campaign_key UUID NOT NULL,
    local_date DATE NOT NULL,
    calls INT NOT NULL,
    contacts INT NOT NULL,
    qualified INT NOT NULL,
    appointments INT NOT NULL,
    sales INT NOT NULL,
    duration_micros BIGINT NOT NULL,
    duration_calls INT NOT NULL,
    timed_calls INT NOT NULL,
    talk_agent_micros BIGINT NOT NULL,
    talk_prospect_micros BIGINT NOT NULL,
    talk_monologue_micros BIGINT NOT NULL,
    talk_interruptions_sum INT NOT NULL,
    talk_silence_micros BIGINT NOT NULL,
    talk_call_micros BIGINT NOT NULL,
    sentiment_micros BIGINT NOT NULL,
    sentiment_calls INT NOT NULL,
    positive INT NOT NULL,
    neutral INT NOT NULL,
    negative INT NOT NULL,
    adherence_micros BIGINT NOT NULL,
    adherence_calls INT NOT NULL,
    outcome_qualified INT NOT NULL,
    outcome_appointment INT NOT NULL,
    outcome_sale INT NOT NULL,
    outcome_not_interested INT NOT NULL,
    outcome_callback_requested INT NOT NULL,
    outcome_voicemail INT NOT NULL,
    outcome_no_answer INT NOT NULL,
    outcome_failed INT NOT NULL,
    -- Queries read one grouping's keys over a range of days.
    PRIMARY KEY (organization_id, dims, agent_key, campaign_key, local_date)
);
-- Finds an organization's or a day's rows: a new time zone replaces the organization's, a batch
-- removes a day's rows left counting no call (unique, so rebuilds keep it).
CREATE UNIQUE INDEX analytics_daily_by_day ON analytics_daily (organization_id, local_date, dims, agent_key, campaign_key);

-- The funnel per local day and hour (0–23), in the same four groupings: the heatmap, best times, calls by hour.
CREATE TABLE analytics_hourly (
    organization_id UUID NOT NULL,
    dims SMALLINT NOT NULL,
    agent_key UUID NOT NULL,
    campaign_key UUID NOT NULL,
    local_date DATE NOT NULL,
    local_hour SMALLINT NOT NULL,
    calls INT NOT NULL,
    contacts INT NOT NULL,
    qualified INT NOT NULL,
    appointments INT NOT NULL,
    sales INT NOT NULL,
    -- Covering: a heatmap over a year reads up to a row per call, from the index alone once vacuumed.
    PRIMARY KEY (organization_id, dims, agent_key, campaign_key, local_date, local_hour)
        INCLUDE (calls, contacts, qualified, appointments, sales)
);
CREATE UNIQUE INDEX analytics_hourly_by_day ON analytics_hourly (organization_id, local_date, dims, agent_key, campaign_key, local_hour);

-- Checklist points missed, per organization × local day, in the same four groupings.
CREATE TABLE analytics_missed_points (
    organization_id UUID NOT NULL,
    dims SMALLINT NOT NULL,
    agent_key UUID NOT NULL,
    campaign_key UUID NOT NULL,
    local_date DATE NOT NULL,
    point TEXT NOT NULL,
    calls INT NOT NULL,
    PRIMARY KEY (organization_id, dims, agent_key, campaign_key, local_date, point)
);
CREATE UNIQUE INDEX analytics_missed_points_by_day ON analytics_missed_points (organization_id, local_date, dims, agent_key, campaign_key, point);
