-- get's date-range facet is the earliest first_active_day and the latest last_active_day of the profiles
-- the caller may see. Walking these indexes in order stops at the first visible profile (the first row for an
-- admin, a few dozen for a department) instead of joining every profile's totals (10 ms at 20,000 profiles).
CREATE INDEX IF NOT EXISTS activity_profile_totals_first_day_idx
    ON activity_profile_totals (first_active_day);
CREATE INDEX IF NOT EXISTS activity_profile_totals_last_day_idx
    ON activity_profile_totals (last_active_day DESC NULLS LAST);
