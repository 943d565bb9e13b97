-- Log retention (`ocelot-admin --keep-logs`): the events of a build that finished long ago
-- are deleted, its row and result stay. `logs_pruned_at`: when an admin claimed the build's
-- log for deletion (from then on a replay says the log was pruned); `logs_pruned`: every
-- event is gone. A claim that is not done after a while (the admin died) is taken again.
ALTER TABLE builds
    ADD COLUMN logs_pruned_at TIMESTAMPTZ,
    ADD COLUMN logs_pruned BOOLEAN NOT NULL DEFAULT false;

-- the builds a retention pass looks at: finished, log not pruned yet
CREATE INDEX builds_logs_to_prune ON builds (finished_at) WHERE NOT logs_pruned;
