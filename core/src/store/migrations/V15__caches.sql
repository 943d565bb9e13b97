-- Build caches (`cache:` in ocelot.yml): one row per saved key of a repo, in a scope. The
-- scope is the branch that saved it; `from_fork` rows were saved by pull requests from
-- forks (scope `pr-N`) and are never read by other builds. The bytes (one tar) are in the
-- object `object_key`. A key is saved once per scope: a second save of the same key loses
-- (ON CONFLICT DO NOTHING) and deletes its own object. Rows go with their repo, after
-- `expires_at` (moved forward at every restore) and by `ocelot cache clear`; the object of
-- every row that goes is queued in `artifact_objects_to_delete` (the storage's deletion
-- queue, shared with artifacts) by a trigger.
CREATE TABLE caches (
    id          BIGSERIAL PRIMARY KEY,
    repo_id     BIGINT NOT NULL REFERENCES repos(id) ON DELETE CASCADE,
    scope       TEXT NOT NULL,
    from_fork   BOOLEAN NOT NULL,
    key         TEXT NOT NULL,
    size        BIGINT NOT NULL,
    sha256      TEXT NOT NULL,
    object_key  TEXT NOT NULL UNIQUE,
    build_id    BIGINT,
    created_at  TIMESTAMPTZ NOT NULL DEFAULT now(),
    used_at     TIMESTAMPTZ NOT NULL DEFAULT now(),
    expires_at  TIMESTAMPTZ NOT NULL,
    UNIQUE (repo_id, from_fork, scope, key)
);

CREATE INDEX caches_expiry ON caches (expires_at);

CREATE FUNCTION caches_queue_object() RETURNS trigger AS $$
BEGIN
    INSERT INTO artifact_objects_to_delete (object_key) VALUES (OLD.object_key)
        ON CONFLICT DO NOTHING;
    RETURN NULL;
END
$$ LANGUAGE plpgsql;

CREATE TRIGGER caches_object_gone AFTER DELETE ON caches
    FOR EACH ROW EXECUTE FUNCTION caches_queue_object();
