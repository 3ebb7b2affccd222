-- Drift monitoring, part 2 (issue 16), as sql/postgres/021_drift_online_fallback_gate.sql: a version without a
-- baseline falls back to its first window of traffic. The first refresh that scores such a version fits bins on its
-- rows (ModelAsData.Core.Monitoring.ProfileBuilder, mad set_baseline's rules) and stores them here with those rows'
-- counts as reference 'first_window'; a baseline set later replaces it and the counts made in its bins.

ALTER TABLE mad_baselines ADD COLUMN reference TEXT NOT NULL DEFAULT 'baseline' CHECK (reference IN ('baseline', 'first_window'));
