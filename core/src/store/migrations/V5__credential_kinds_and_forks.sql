-- credentials of every kind keep their non-secret parts (user name, registry host,
-- known_hosts lines) in clear next to the sealed value
ALTER TABLE credentials ADD COLUMN details JSONB NOT NULL DEFAULT '{}';

-- a pull request from a fork gets no build secrets unless its repo opts in
ALTER TABLE builds ADD COLUMN from_fork BOOLEAN NOT NULL DEFAULT false;
ALTER TABLE repos ADD COLUMN secrets_for_forks BOOLEAN NOT NULL DEFAULT false;
