-- What a build was given from the shell or the API (`ocelot build --env K=V --force
-- --stage NAME`, `ocelot rerun --env`): its parameters by name (a JSON object of strings,
-- shown in clear: never secrets), whether it runs whatever `branches` says, and the stage
-- it was asked for (NULL: every stage). Builds from before have none of them.
ALTER TABLE builds
    ADD COLUMN params_env JSONB NOT NULL DEFAULT '{}'::jsonb,
    ADD COLUMN forced BOOLEAN NOT NULL DEFAULT false,
    ADD COLUMN selected_stage TEXT;
