-- Builds that name no image run on `--executor host` workers only for repos an admin opted
-- in (`ocelot repos set NAME --allow-host true`); never for pull requests.
ALTER TABLE repos ADD COLUMN allow_host BOOLEAN NOT NULL DEFAULT false;
