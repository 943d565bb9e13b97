CREATE TABLE repos (
    id              BIGSERIAL PRIMARY KEY,
    name            TEXT NOT NULL UNIQUE,
    url             TEXT NOT NULL,
    default_branch  TEXT NOT NULL DEFAULT 'main',
    build_counter   BIGINT NOT NULL DEFAULT 0,
    created_at      TIMESTAMPTZ NOT NULL DEFAULT now()
);

CREATE TABLE builds (
    id              BIGSERIAL PRIMARY KEY,
    repo_id         BIGINT NOT NULL REFERENCES repos(id) ON DELETE CASCADE,
    number          BIGINT NOT NULL,
    commit_sha      TEXT NOT NULL,
    branch          TEXT NOT NULL,
    trigger         TEXT NOT NULL,
    state           TEXT NOT NULL,
    attempt         INT NOT NULL DEFAULT 0,
    worker_id       TEXT,
    tag             TEXT NOT NULL,
    failure_reason  TEXT,
    job_published   BOOLEAN NOT NULL DEFAULT false,
    queued_at       TIMESTAMPTZ NOT NULL DEFAULT now(),
    started_at      TIMESTAMPTZ,
    finished_at     TIMESTAMPTZ,
    line_count      BIGINT,
    log_sha256      TEXT,
    UNIQUE (repo_id, number)
);
CREATE INDEX builds_repo_branch_idx ON builds (repo_id, branch, id DESC);
CREATE INDEX builds_unpublished_idx ON builds (id) WHERE state = 'queued' AND NOT job_published;

CREATE TABLE stages (
    build_id     BIGINT NOT NULL REFERENCES builds(id) ON DELETE CASCADE,
    attempt      INT NOT NULL,
    idx          INT NOT NULL,
    name         TEXT NOT NULL,
    state        TEXT NOT NULL,
    exit_code    INT,
    started_at   TIMESTAMPTZ,
    finished_at  TIMESTAMPTZ,
    start_seq    BIGINT,
    end_seq      BIGINT,
    PRIMARY KEY (build_id, attempt, idx)
);

CREATE TABLE log_lines (
    build_id  BIGINT NOT NULL REFERENCES builds(id) ON DELETE CASCADE,
    attempt   INT NOT NULL,
    seq       BIGINT NOT NULL,
    stage     TEXT NOT NULL,
    stream    SMALLINT NOT NULL,
    text      TEXT NOT NULL,
    at        TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (build_id, attempt, seq)
);
