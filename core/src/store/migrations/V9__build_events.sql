-- One log: every event of an attempt as the bus carries it (its kind and its JSON payload,
-- the `type`-tagged event), in sequence order. JSON, not JSONB: the log is written far more
-- than it is queried inside, and JSON stores the text as it comes (no re-encoding per line). It replaces log_lines, which kept only the
-- lines; the attempt's start, its stages' starts and ends and its result are now stored
-- too, so a finished build replays from one ordered query.
CREATE TABLE build_events (
    build_id  BIGINT NOT NULL REFERENCES builds(id) ON DELETE CASCADE,
    attempt   INT NOT NULL,
    seq       BIGINT NOT NULL,
    kind      TEXT NOT NULL,
    payload   JSON NOT NULL,
    at        TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (build_id, attempt, seq)
);

-- existing logs: each attempt's start (seq 1, as workers always announced it first) ...
INSERT INTO build_events (build_id, attempt, seq, kind, payload, at)
SELECT a.build_id, a.attempt, 1, 'attempt_started',
       json_build_object(
           'type', 'attempt_started',
           'worker', CASE WHEN a.attempt = b.attempt THEN COALESCE(b.worker_id, '') ELSE '' END,
           'commit', b.commit_sha,
           'branch', b.branch,
           'stages', COALESCE((SELECT json_agg(s.name ORDER BY s.idx) FROM stages s
                               WHERE s.build_id = a.build_id AND s.attempt = a.attempt), '[]'::json)),
       COALESCE(CASE WHEN a.attempt = b.attempt THEN b.started_at END, a.first_at, b.queued_at)
FROM (
    SELECT build_id, attempt, min(at) AS first_at FROM (
        SELECT build_id, attempt, at FROM log_lines
        UNION ALL
        SELECT build_id, attempt, started_at FROM stages
    ) known GROUP BY build_id, attempt
) a JOIN builds b ON b.id = a.build_id
ON CONFLICT DO NOTHING;

-- ... its lines ...
INSERT INTO build_events (build_id, attempt, seq, kind, payload, at)
SELECT build_id, attempt, seq, 'line',
       json_build_object(
           'type', 'line',
           'stage', stage,
           'stream', CASE stream WHEN 1 THEN 'stdout' WHEN 2 THEN 'stderr' ELSE 'system' END,
           'text', text),
       at
FROM log_lines
ON CONFLICT DO NOTHING;

-- ... its stages' starts and ends ...
INSERT INTO build_events (build_id, attempt, seq, kind, payload, at)
SELECT build_id, attempt, start_seq, 'stage_started',
       json_build_object('type', 'stage_started', 'index', idx, 'name', name),
       COALESCE(started_at, now())
FROM stages WHERE start_seq IS NOT NULL
ON CONFLICT DO NOTHING;

INSERT INTO build_events (build_id, attempt, seq, kind, payload, at)
SELECT build_id, attempt, end_seq, 'stage_finished',
       json_build_object(
           'type', 'stage_finished', 'index', idx, 'name', name, 'state', state,
           'exit_code', exit_code,
           'duration_ms', COALESCE(
               (EXTRACT(EPOCH FROM (finished_at - started_at)) * 1000)::BIGINT, 0)),
       COALESCE(finished_at, now())
FROM stages WHERE end_seq IS NOT NULL
ON CONFLICT DO NOTHING;

-- ... and the result of each finished build's last attempt, after its last event
INSERT INTO build_events (build_id, attempt, seq, kind, payload, at)
SELECT b.id, b.attempt, last.seq + 1, 'result',
       json_build_object(
           'type', 'result',
           'state', b.state,
           'reason', COALESCE(b.failure_reason, ''),
           'duration_ms', COALESCE(
               (EXTRACT(EPOCH FROM (b.finished_at - b.started_at)) * 1000)::BIGINT, 0),
           'line_count', COALESCE(b.line_count, 0),
           'log_sha256', COALESCE(b.log_sha256, '')),
       COALESCE(b.finished_at, now())
FROM builds b
JOIN (SELECT build_id, attempt, max(seq) AS seq FROM build_events GROUP BY build_id, attempt) last
  ON last.build_id = b.id AND last.attempt = b.attempt
WHERE b.state NOT IN ('queued', 'running') AND b.log_sha256 IS NOT NULL
ON CONFLICT DO NOTHING;

DROP TABLE log_lines;
