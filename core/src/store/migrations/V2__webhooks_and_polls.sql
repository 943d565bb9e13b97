-- webhooks: a secret per repo, deliveries recorded once (they are also the durable queue of
-- triggers that the hookhandler processes off the request path)
ALTER TABLE repos ADD COLUMN webhook_secret TEXT;

ALTER TABLE builds
    ADD COLUMN previous_commit TEXT,
    ADD COLUMN pr_number BIGINT,
    ADD COLUMN base_branch TEXT,
    ADD COLUMN git_tag TEXT,
    ADD COLUMN dedupe_key TEXT;
-- automatic triggers are idempotent: one build per repo, branch (or PR, or tag) and commit
CREATE UNIQUE INDEX builds_dedupe_idx ON builds (dedupe_key) WHERE dedupe_key IS NOT NULL;

CREATE TABLE webhook_deliveries (
    provider        TEXT NOT NULL,
    delivery_id     TEXT NOT NULL,
    repo_id         BIGINT NOT NULL REFERENCES repos(id) ON DELETE CASCADE,
    event           TEXT NOT NULL,
    request         JSONB NOT NULL,
    state           TEXT NOT NULL DEFAULT 'pending',
    attempts        INT NOT NULL DEFAULT 0,
    not_before      TIMESTAMPTZ NOT NULL DEFAULT now(),
    build_id        BIGINT REFERENCES builds(id) ON DELETE SET NULL,
    error           TEXT,
    received_at     TIMESTAMPTZ NOT NULL DEFAULT now(),
    processed_at    TIMESTAMPTZ,
    PRIMARY KEY (provider, delivery_id)
);
CREATE INDEX webhook_deliveries_pending_idx ON webhook_deliveries (not_before)
    WHERE state IN ('pending', 'processing');

CREATE TABLE polls (
    id              BIGSERIAL PRIMARY KEY,
    repo_id         BIGINT NOT NULL UNIQUE REFERENCES repos(id) ON DELETE CASCADE,
    branches        TEXT[] NOT NULL,
    every_ms        BIGINT,
    cron            TEXT,
    build_now       BOOLEAN NOT NULL DEFAULT false,
    next_due        TIMESTAMPTZ NOT NULL DEFAULT now(),
    last_polled_at  TIMESTAMPTZ,
    last_error      TEXT,
    failures        INT NOT NULL DEFAULT 0,
    heads           JSONB,
    created_at      TIMESTAMPTZ NOT NULL DEFAULT now(),
    CHECK ((every_ms IS NULL) <> (cron IS NULL))
);
CREATE INDEX polls_due_idx ON polls (next_due);
