-- 0007: per-owner BRSKI registrar policy, and serial numbers as UTF-8 text.

-- API.md, Owners: brski.registrar_auth and brski.pinning (docs/brski.md,
-- Registrar policy per owner). They live in the owner's brski settings as
-- received; these columns read them, with the defaults, for the request
-- path, and refuse any other value.
UPDATE owners
   SET brski = ('{"registrar_auth": "any", "pinning": "domain-ca"}'::jsonb || brski::jsonb)::json
 WHERE brski IS NOT NULL;
ALTER TABLE owners
    ADD COLUMN brski_registrar_auth text
        GENERATED ALWAYS AS (coalesce(brski->>'registrar_auth', 'any')) STORED
        CHECK (brski_registrar_auth IN ('any', 'tls-equals-signer', 'tls-chains-to-domain')),
    ADD COLUMN brski_pinning text
        GENERATED ALWAYS AS (coalesce(brski->>'pinning', 'domain-ca')) STORED
        CHECK (brski_pinning IN ('domain-ca', 'registrar-ee'));

-- Serial numbers come from IDevIDs, whose serialNumber attribute or
-- hardwareModuleName (RFC 4108 §5) may hold any UTF-8 text: 1 to 64
-- characters, no control characters (C0, DEL, C1), no outer spaces.
ALTER DOMAIN serial_number DROP CONSTRAINT serial_number_check;
ALTER DOMAIN serial_number ADD CONSTRAINT serial_number_check
    CHECK (char_length(VALUE) BETWEEN 1 AND 64 AND VALUE !~ '[\x01-\x1f\x7f-\x9f]'
           AND left(VALUE, 1) <> ' ' AND right(VALUE, 1) <> ' ');
