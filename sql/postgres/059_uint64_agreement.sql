-- uint64 label outputs count in the shadow's agreement (issue 14, docs/TENSORS.md): a uint64 output is a label like
-- an integer one (053 stores it as numeric(20,0), compared exactly), so share_equal compares it; before, a model whose
-- only labels were uint64 reported no share_equal at all. The canary's agreement (CanaryAgreementSums) compares them
-- in the sidecar the same way. Otherwise 025_1's function unchanged; the change is marked 059.

CREATE OR REPLACE FUNCTION mad.shadow_agreement(model text, alias text)
RETURNS TABLE (prediction_table text, shadow_version int, rows_compared bigint, share_equal double precision, mean_absolute_difference double precision)
LANGUAGE plpgsql STABLE SECURITY DEFINER SET search_path = mad, pg_temp AS $$
#variable_conflict use_column
DECLARE
  binding mad.prediction_tables;
  labels text;
  values_ text;
  value_count int;
BEGIN
  FOR binding IN SELECT * FROM mad.prediction_tables p
                 WHERE split_part(p.model, '@', 1) = shadow_agreement.model AND mad.reference_alias(p.model) = shadow_agreement.alias
                   AND pg_catalog.to_regclass(format('mad_out.%I', p.name)) IS NOT NULL
                   AND pg_catalog.to_regclass(format('mad_shadow.%I', p.name)) IS NOT NULL
                 ORDER BY p.name LOOP
    SELECT string_agg(format('s.%1$I IS NOT DISTINCT FROM o.%1$I', c.value ->> 'name'), ' AND ')
    INTO labels FROM jsonb_array_elements(binding.columns) c WHERE c.value ->> 'type' IN ('text', 'integer', 'uint64');  -- 059
    SELECT string_agg(format('abs(s.%1$I - o.%1$I)', c.value ->> 'name'), ' + '), count(*)
    INTO values_, value_count FROM jsonb_array_elements(binding.columns) c WHERE c.value ->> 'type' = 'real';
    RETURN QUERY EXECUTE format(
      'SELECT %L::text, s.shadow_version, count(*), %s, %s FROM mad_shadow.%I s JOIN mad_out.%I o ON %s '
      'WHERE (s.job = $1 OR s.job IS NULL) AND s.error IS NULL AND o.error IS NULL GROUP BY s.shadow_version',  -- 025: + streamed
      binding.name,
      CASE WHEN labels IS NULL THEN 'NULL::double precision' ELSE format('avg(CASE WHEN %s THEN 1.0 ELSE 0.0 END)::double precision', labels) END,
      CASE WHEN values_ IS NULL THEN 'NULL::double precision' ELSE format('avg((%s) / %s)::double precision', values_, value_count) END,
      binding.name, binding.name, mad.key_list(binding, 's.%1$I = o.%1$I', ' AND '))
    USING binding.last_job;
  END LOOP;
END
$$;
