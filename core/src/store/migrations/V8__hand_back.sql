-- attempts a worker handed back at shutdown (SIGTERM): they do not count against the
-- build's attempt limit, which is for lost workers
ALTER TABLE builds ADD COLUMN handed_back INT NOT NULL DEFAULT 0;
