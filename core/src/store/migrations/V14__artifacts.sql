-- Build artifacts (`artifacts:` in ocelot.yml): the files of a build kept in the object
-- storage (`--storage`), one row each; the bytes are in the object `object_key`. A build's
-- artifacts go with it (ON DELETE CASCADE) and after `expires_at`; the object of every row
-- that goes (deleted, or replaced by a later attempt's) is queued in
-- `artifact_objects_to_delete` by a trigger, and the admin's retention task deletes it from
-- the storage: no path that removes a row can leave its object behind.
CREATE TABLE artifacts (
    id          BIGSERIAL PRIMARY KEY,
    build_id    BIGINT NOT NULL REFERENCES builds(id) ON DELETE CASCADE,
    attempt     INT NOT NULL,
    stage       TEXT NOT NULL,
    path        TEXT NOT NULL,
    size        BIGINT NOT NULL,
    sha256      TEXT NOT NULL,
    object_key  TEXT NOT NULL UNIQUE,
    created_at  TIMESTAMPTZ NOT NULL DEFAULT now(),
    expires_at  TIMESTAMPTZ,
    UNIQUE (build_id, path)
);

CREATE INDEX artifacts_expiry ON artifacts (expires_at) WHERE expires_at IS NOT NULL;

CREATE TABLE artifact_objects_to_delete (
    object_key  TEXT PRIMARY KEY,
    queued_at   TIMESTAMPTZ NOT NULL DEFAULT now()
);

CREATE FUNCTION artifacts_queue_object() RETURNS trigger AS $$
BEGIN
    IF TG_OP = 'DELETE' OR OLD.object_key <> NEW.object_key THEN
        INSERT INTO artifact_objects_to_delete (object_key) VALUES (OLD.object_key)
            ON CONFLICT DO NOTHING;
    END IF;
    RETURN NULL;
END
$$ LANGUAGE plpgsql;

CREATE TRIGGER artifacts_object_gone AFTER DELETE OR UPDATE OF object_key ON artifacts
    FOR EACH ROW EXECUTE FUNCTION artifacts_queue_object();
