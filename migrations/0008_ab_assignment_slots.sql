-- Each A/B test's next split slot (domain::ab_testing::variant_at). Calls are
-- assigned on streams of their own; this counter is all they share.
CREATE TABLE ab_assignment_slots (
    test_id UUID PRIMARY KEY,
    next_slot BIGINT NOT NULL
);
