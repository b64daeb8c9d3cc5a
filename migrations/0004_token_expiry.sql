-- Management API tokens may expire, and remember when they were last used
-- (docs/operations.md, Tokens). last_used_at is written at most about once
-- a minute per token: the lookup tells whether it is older than that, and
-- only then is it updated.
ALTER TABLE api_tokens
    ADD COLUMN expires_at   timestamptz,
    ADD COLUMN last_used_at timestamptz;
