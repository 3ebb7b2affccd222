-- Drift monitoring, part 6 (issue 16): one switch for the counting hook. Since 021 a version without a baseline is
-- counted too (into its first window), so removing a baseline no longer stops counting; drift_counting = 0 does, at
-- every door (refresh, stream, online), read with each unit of work's counter. For benches (monitoring on against
-- off) and for an operator who must shed the cost at once; drift then has gaps in its windows.
INSERT INTO mad.settings (name, value, description) VALUES
  ('drift_counting', '1', 'Drift monitoring counts scored rows into profile counts (1) or not at all (0), at every door.')
ON CONFLICT (name) DO NOTHING;
