-- 023 granted SELECT on mad.edge_predictions and mad.devices to every mad_user, so any reader saw every device's
-- pushed predictions, also of prediction tables it may not read (mad_out.<name>), and the whole fleet's ids, owners
-- and versions. Row security narrows both to who may see them, as 005 and 008 do for requests and jobs. A policy runs
-- as the reader (current_user is the effective role); the definer functions of 023 (the tables' owner) bypass it, so
-- pulls and pushes are unchanged. Owners are matched through pg_roles because pg_has_role(name) raises for a role
-- that no longer exists.

-- A device's registration: its owner (the device's login, or a member of it) and mad_admin.
ALTER TABLE mad.devices ENABLE ROW LEVEL SECURITY;
CREATE POLICY devices_read ON mad.devices FOR SELECT USING (
  pg_catalog.pg_has_role('mad_admin', 'MEMBER')
  OR EXISTS (SELECT FROM pg_catalog.pg_roles r WHERE r.rolname = devices.owner AND pg_catalog.pg_has_role(r.oid, 'MEMBER')));

-- A pushed prediction: whoever may SELECT the prediction table it belongs to (as for the central rows), the device's
-- owner (its own rows), and mad_admin.
ALTER TABLE mad.edge_predictions ENABLE ROW LEVEL SECURITY;
CREATE POLICY edge_predictions_read ON mad.edge_predictions FOR SELECT USING (
  pg_catalog.pg_has_role('mad_admin', 'MEMBER')
  OR EXISTS (SELECT FROM pg_catalog.pg_class c JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
             WHERE n.nspname = 'mad_out' AND c.relname = edge_predictions.prediction_table
               AND pg_catalog.has_table_privilege(c.oid, 'SELECT'))
  OR EXISTS (SELECT FROM mad.devices d JOIN pg_catalog.pg_roles r ON r.rolname = d.owner
             WHERE d.id = edge_predictions.device AND pg_catalog.pg_has_role(r.oid, 'MEMBER')));
