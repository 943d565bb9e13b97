-- The trace id made where the build was triggered (16 hex digits), carried in its job
-- message and in a span around its handling in every service's log. NULL for builds of
-- earlier releases.
ALTER TABLE builds ADD COLUMN trace_id TEXT;
