-- webhook secrets sealed under the master key, as credentials are (XChaCha20-Poly1305, the
-- key's id stored with the value, bound to the repo's name). `webhook_secret` keeps only the
-- plain-text secrets of earlier releases until a service holding the master key (admin or
-- hookhandler) seals them at start-up and clears it.
ALTER TABLE repos
    ADD COLUMN webhook_key_id TEXT,
    ADD COLUMN webhook_nonce BYTEA,
    ADD COLUMN webhook_ciphertext BYTEA,
    ADD CONSTRAINT repos_webhook_sealed_whole CHECK (
        (webhook_key_id IS NULL) = (webhook_nonce IS NULL)
        AND (webhook_nonce IS NULL) = (webhook_ciphertext IS NULL)
    );
