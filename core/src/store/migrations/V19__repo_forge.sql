-- The forge a repo lives on, set by `ocelot repos set R --forge F --api-url URL`. NULL: told
-- by the URL's host (github.com, gitlab.com, bitbucket.org; otherwise none, and no commit
-- status is sent). forge_api_url NULL: the forge's public API.
ALTER TABLE repos
    ADD COLUMN forge TEXT CHECK (forge IN ('github', 'gitlab', 'bitbucket', 'gitea')),
    ADD COLUMN forge_api_url TEXT;
