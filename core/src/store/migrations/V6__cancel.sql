-- `ocelot kill` of a running build: who asked; the worker running it stops the build
-- (also a worker that takes the build over after a crash)
ALTER TABLE builds ADD COLUMN cancel_requested_by TEXT;
