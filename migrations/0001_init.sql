-- 0001: the data model of masad (DESIGN.md, Data).
--
-- Run by `masad migrate` as the schema owner, in one transaction. The
-- service itself connects as a member of the group role masad_runtime,
-- which must exist beforehand (docs/operations.md, Database roles): it gets
-- only what it needs, and nothing on audit_events but INSERT and SELECT.
-- Every device-scoped table is keyed by serial_number.

DO $$
BEGIN
    IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'masad_runtime') THEN
        RAISE EXCEPTION 'role masad_runtime does not exist: create it first (CREATE ROLE masad_runtime NOLOGIN), then grant it to the role masad serves as';
    END IF;
END
$$;

-- X.520 PrintableString characters (RFC 5280), 1..64, no outer spaces
-- (length first: a bounded regular expression costs ten times more)
CREATE DOMAIN serial_number AS text
    CHECK (length(VALUE) BETWEEN 1 AND 64 AND VALUE ~ '^[A-Za-z0-9''()+,./:=? -]+$'
           AND left(VALUE, 1) <> ' ' AND right(VALUE, 1) <> ' ');
CREATE DOMAIN owner_id AS text
    CHECK (length(VALUE) BETWEEN 1 AND 64 AND VALUE ~ '^[a-z0-9._-]+$');

CREATE TABLE devices (
    serial_number       serial_number PRIMARY KEY,
    product             text NOT NULL CHECK (length(product) BETWEEN 1 AND 256),
    -- salted SHA-256 of the SZTP basic-auth password; both or neither
    sztp_password_salt  bytea,
    sztp_password_hash  bytea,
    created_at          timestamptz NOT NULL DEFAULT now(),
    updated_at          timestamptz NOT NULL DEFAULT now(),
    CHECK ((sztp_password_salt IS NULL) = (sztp_password_hash IS NULL))
);

CREATE TABLE owners (
    owner_id                    owner_id PRIMARY KEY,
    display_name                text CHECK (length(display_name) <= 256),
    -- the owner's settings as received (API.md, Owners), for answering GET
    brski                       json,
    sztp_owner_certificate      bytea[],   -- DER, end-entity first
    sztp_conveyed_information   json,      -- RFC 7951 ietf-sztp-conveyed-info, as sent
    sztp_signed_conveyed_info   bytea,     -- owner-signed CMS as uploaded
    sztp_signed_onboarding      boolean,   -- it holds onboarding (not redirect) information
    created_at                  timestamptz NOT NULL DEFAULT now(),
    updated_at                  timestamptz NOT NULL DEFAULT now(),
    -- a deleted owner keeps its row: ownership history refers to it
    deleted_at                  timestamptz
);

-- BRSKI domain CA certificates: a registrar acts for the owner whose domain
-- certificate its signing chain reaches (compared by public key).
CREATE TABLE owner_domain_certs (
    id              bigserial PRIMARY KEY,
    owner_id        owner_id NOT NULL REFERENCES owners ON DELETE CASCADE,
    cert_der        bytea NOT NULL,
    cert_sha256     bytea NOT NULL CHECK (length(cert_sha256) = 32),
    spki_sha256     bytea NOT NULL CHECK (length(spki_sha256) = 32),
    subject         text NOT NULL,
    not_after       timestamptz NOT NULL,
    UNIQUE (spki_sha256)  -- one owner per domain key
);
CREATE INDEX owner_domain_certs_owner ON owner_domain_certs (owner_id);

-- Ownership periods: valid_until NULL is the current one; at most one.
CREATE TABLE ownership (
    id              bigserial PRIMARY KEY,
    serial_number   serial_number NOT NULL REFERENCES devices ON DELETE CASCADE,
    owner_id        owner_id NOT NULL REFERENCES owners,
    order_ref       text CHECK (length(order_ref) <= 128),
    valid_from      timestamptz NOT NULL DEFAULT now(),
    valid_until     timestamptz,
    CHECK (valid_until IS NULL OR valid_until >= valid_from)
);
CREATE UNIQUE INDEX ownership_current ON ownership (serial_number) WHERE valid_until IS NULL;
CREATE INDEX ownership_history ON ownership (serial_number, valid_from);
CREATE INDEX ownership_current_owner ON ownership (owner_id, serial_number) WHERE valid_until IS NULL;

-- Every voucher issued, with the request it answered.
CREATE TABLE vouchers (
    id                  bigserial PRIMARY KEY,
    serial_number       serial_number NOT NULL,
    owner_id            owner_id,
    protocol            text NOT NULL CHECK (protocol IN ('brski', 'sztp')),
    format              text NOT NULL DEFAULT 'cms-json' CHECK (format IN ('cms-json')),
    assertion           text NOT NULL CHECK (assertion IN ('verified', 'logged', 'proximity')),
    nonce               bytea,
    created_on          timestamptz NOT NULL,
    expires_on          timestamptz,
    domain_cert_sha256  bytea NOT NULL CHECK (length(domain_cert_sha256) = 32),
    voucher             bytea NOT NULL,   -- the signed CMS as sent
    request             bytea             -- the voucher-request it answered (BRSKI)
);
CREATE INDEX vouchers_serial ON vouchers (serial_number, id DESC);

CREATE TABLE sztp_progress (
    id                  bigserial PRIMARY KEY,
    serial_number       serial_number NOT NULL,
    at                  timestamptz NOT NULL DEFAULT now(),
    progress_type       text NOT NULL,
    message             text,
    ssh_host_keys       jsonb,
    trust_anchor_certs  jsonb
);
CREATE INDEX sztp_progress_serial ON sztp_progress (serial_number, id DESC);

-- Management API tokens: only a hash of the secret is kept.
CREATE TABLE api_tokens (
    name            text PRIMARY KEY CHECK (name ~ '^[A-Za-z0-9._-]{1,64}$'),
    token_sha256    bytea NOT NULL UNIQUE CHECK (length(token_sha256) = 32),
    scopes          text[] NOT NULL,
    created_at      timestamptz NOT NULL DEFAULT now(),
    revoked_at      timestamptz
);

-- The audit log: append-only. Chaining columns are filled by the audit
-- module (docs/audit.md); seq orders all events across chains.
CREATE TABLE audit_events (
    seq             bigserial PRIMARY KEY,
    chain           integer,
    chain_seq       bigint,
    at              timestamptz NOT NULL DEFAULT now(),
    actor           text NOT NULL,
    action          text NOT NULL,
    serial_number   text,
    owner_id        text,
    outcome         text NOT NULL,
    detail          text,      -- a JSON object (docs/audit.md)
    prev_hash       bytea,
    hash            bytea,
    UNIQUE (chain, chain_seq)
);
CREATE INDEX audit_events_serial ON audit_events (serial_number, seq) WHERE serial_number IS NOT NULL;
CREATE INDEX audit_events_owner ON audit_events (owner_id, seq) WHERE owner_id IS NOT NULL;
CREATE INDEX audit_events_action ON audit_events (action, seq);
CREATE INDEX audit_events_at ON audit_events (at);

CREATE FUNCTION audit_events_append_only() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'audit_events is append-only: % refused', TG_OP
        USING ERRCODE = 'insufficient_privilege';
END
$$;
CREATE TRIGGER audit_events_no_update_delete
    BEFORE UPDATE OR DELETE ON audit_events
    FOR EACH ROW EXECUTE FUNCTION audit_events_append_only();
CREATE TRIGGER audit_events_no_truncate
    BEFORE TRUNCATE ON audit_events
    FOR EACH STATEMENT EXECUTE FUNCTION audit_events_append_only();

-- The runtime role: data access only, no DDL (it owns nothing), and the
-- audit log insert-and-read only.
REVOKE ALL ON ALL TABLES IN SCHEMA public FROM PUBLIC;
GRANT USAGE ON SCHEMA public TO masad_runtime;
GRANT SELECT, INSERT, UPDATE, DELETE
    ON devices, owners, owner_domain_certs, ownership, vouchers, sztp_progress, api_tokens
    TO masad_runtime;
GRANT SELECT, INSERT ON audit_events TO masad_runtime;
GRANT SELECT ON schema_migrations TO masad_runtime;
GRANT USAGE ON ALL SEQUENCES IN SCHEMA public TO masad_runtime;
