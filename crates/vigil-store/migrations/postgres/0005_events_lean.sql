-- Ingestion writes every event into this table and its indexes, so each index per event
-- counts. Keep in step with the other backend's 0005_events_lean.sql.
--
-- One listing index instead of three: (org_id, timestamp, id) carries host and dataset
-- too, so a host or dataset filter is an ordered walk of this index that checks both in
-- the index entry (an index condition), without reading the row. A value absent from the
-- range walks the organization's whole range (bound it with from/to). The stored host and
-- dataset are capped (256 characters) so an entry stays within a b-tree entry's size limit.
DROP INDEX events_org_host;
DROP INDEX events_org_dataset;
DROP INDEX events_org_time;
CREATE INDEX events_org_time ON events(org_id, timestamp, id, host, dataset);
