-- API tokens limited to some repos: glob patterns over repo names (`team/*`); an empty list
-- (every token made before this migration) means every repo, as before
ALTER TABLE api_tokens ADD COLUMN repos TEXT[] NOT NULL DEFAULT '{}';

-- vcs tokens are bound to a git host (details.host) and offered to URLs on it only. A token
-- scoped to one repo was meant for that repo's host: bind it to the host of the repo's URL
-- as it is now. Prefix-scoped ones (and Vault-stored ones) stay unbound and are offered to
-- no host until stored again with `ocelot creds add vcs ... --host HOST`.
UPDATE credentials AS c
SET details = c.details || jsonb_build_object('host', h.host)
FROM (
    SELECT name,
           lower(btrim(substring(url FROM '^[A-Za-z][A-Za-z0-9+.-]*://(?:[^@/?#]*@)?(\[[^]]*\]|[^:/?#]+)'), '[].')) AS host
    FROM repos
) AS h
WHERE c.kind = 'vcs'
  AND c.scope_kind = 'repo'
  AND c.scope = h.name
  AND NOT (c.details ? 'host')
  AND h.host IS NOT NULL
  AND h.host <> '';
