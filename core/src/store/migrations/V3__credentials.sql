-- credentials: values encrypted at rest (XChaCha20-Poly1305 under the master key whose id
-- is stored with each value); never returned by a listing
CREATE TABLE credentials (
    id          BIGSERIAL PRIMARY KEY,
    name        TEXT NOT NULL,
    kind        TEXT NOT NULL,
    scope_kind  TEXT NOT NULL CHECK (scope_kind IN ('repo', 'prefix')),
    scope       TEXT NOT NULL,
    key_id      TEXT NOT NULL,
    nonce       BYTEA NOT NULL,
    ciphertext  BYTEA NOT NULL,
    created_at  TIMESTAMPTZ NOT NULL DEFAULT now(),
    updated_at  TIMESTAMPTZ NOT NULL DEFAULT now(),
    UNIQUE (kind, scope_kind, scope, name)
);
