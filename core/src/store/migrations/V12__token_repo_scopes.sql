-- API tokens limited to some repos: glob patterns over repo names (`team/*`); an empty list
-- (every token made before this migration) means every repo, as before
ALTER TABLE api_tokens ADD COLUMN repos TEXT[] NOT NULL DEFAULT '{}';
