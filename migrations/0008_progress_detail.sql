-- report-progress detail (RFC 8572 §7.3) as the management API lists it:
-- ssh_host_keys is [{"algorithm", "key_data"}], trust_anchor_certs is
-- ["<base64 CMS>"]. Reports stored before kept libyang's JSON of the input
-- containers ({"[ietf-sztp-bootstrap-server:]ssh-host-keys": {"ssh-host-key":
-- [...]}}): they are rewritten in the listed shape.
UPDATE sztp_progress SET ssh_host_keys = (
    SELECT jsonb_agg(jsonb_build_object('algorithm', k->>'algorithm', 'key_data', k->>'key-data'))
    FROM jsonb_array_elements(COALESCE(
        ssh_host_keys->'ietf-sztp-bootstrap-server:ssh-host-keys',
        ssh_host_keys->'ssh-host-keys')->'ssh-host-key') AS k)
WHERE jsonb_typeof(ssh_host_keys) = 'object';

UPDATE sztp_progress SET trust_anchor_certs = COALESCE(
    trust_anchor_certs->'ietf-sztp-bootstrap-server:trust-anchor-certs',
    trust_anchor_certs->'trust-anchor-certs')->'trust-anchor-cert'
WHERE jsonb_typeof(trust_anchor_certs) = 'object';

ALTER TABLE sztp_progress
    ADD CONSTRAINT sztp_progress_ssh_host_keys_array
        CHECK (ssh_host_keys IS NULL OR jsonb_typeof(ssh_host_keys) = 'array'),
    ADD CONSTRAINT sztp_progress_trust_anchor_certs_array
        CHECK (trust_anchor_certs IS NULL OR jsonb_typeof(trust_anchor_certs) = 'array');
