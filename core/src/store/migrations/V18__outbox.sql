-- The outbox: messages about builds that leave Ocelot (notifications now, commit statuses
-- later), inserted in the transaction that records what they report and sent by the
-- admins' notifier, never by a worker.
--
-- builds.notify: the targets of the build's `notify:` (a JSON list, see
-- ocelot_domain::notify::NotifyTarget), stored when the build is queued.
ALTER TABLE builds ADD COLUMN notify JSONB NOT NULL DEFAULT '[]'::jsonb;

-- One row per message. `kind` says how it is sent (slack, webhook, email; later
-- commit_status), `target` to whom (a `notify` credential's name; later a status context),
-- `payload` what the sender needs besides the build (channel, recipients), `reports` the
-- build state the message tells.
-- `coalesce_key`: rows that share one (a commit status per build and commit) are sent one
-- at a time, and only the newest of those waiting: older waiting ones end `superseded`.
-- `status`: pending (never tried) -> retrying -> sent | gave_up | superseded. A sender
-- holds a row while `leased_until` is ahead; `attempts` counts the tries and fences the
-- outcome's write.
CREATE TABLE outbox (
    id BIGSERIAL PRIMARY KEY,
    build_id BIGINT NOT NULL REFERENCES builds (id) ON DELETE CASCADE,
    kind TEXT NOT NULL,
    target TEXT NOT NULL,
    payload JSONB NOT NULL DEFAULT '{}'::jsonb,
    reports TEXT NOT NULL,
    coalesce_key TEXT,
    delivery_id UUID NOT NULL DEFAULT gen_random_uuid() UNIQUE,
    status TEXT NOT NULL DEFAULT 'pending'
        CHECK (status IN ('pending', 'retrying', 'sent', 'gave_up', 'superseded')),
    attempts INT NOT NULL DEFAULT 0,
    next_attempt_at TIMESTAMPTZ NOT NULL DEFAULT now(),
    leased_until TIMESTAMPTZ,
    last_error TEXT,
    created_at TIMESTAMPTZ NOT NULL DEFAULT now(),
    done_at TIMESTAMPTZ
);
CREATE INDEX outbox_due ON outbox (next_attempt_at) WHERE status IN ('pending', 'retrying');
CREATE INDEX outbox_build ON outbox (build_id);
CREATE INDEX outbox_coalesce ON outbox (coalesce_key, id) WHERE coalesce_key IS NOT NULL;
-- the badge and `CHANGE` read a branch's latest final build
CREATE INDEX builds_branch_final ON builds (repo_id, branch, id DESC)
    WHERE state IN ('passed', 'failed', 'timed_out', 'errored');
