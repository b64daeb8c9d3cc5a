-- 0010: the BRSKI voucher path in two statements (docs/brski.md, How a
-- request is processed). masad reads every fact of a decision in one
-- statement, decides and signs, then records voucher and audit event with
-- brski_voucher_record(), which first holds the device (FOR SHARE) and
-- checks that its ownership is still the one the decision was made on.

-- A value that changes with every change of a device's ownership: a sale
-- opens a row (a higher id), a release or a resale closes one.
CREATE FUNCTION brski_ownership_stamp(serial text) RETURNS text
LANGUAGE sql STABLE AS $$
    SELECT coalesce(max(id), 0) || '/' || count(valid_until) FROM ownership
     WHERE serial_number = serial
$$;

-- Records an issued BRSKI voucher and appends its voucher.issue event, in
-- the caller's transaction (or as one of its own). Returns the voucher's
-- id, or NULL (nothing recorded) when the device is gone or its ownership
-- stamp is no longer p_stamp: the caller decides again. p_chained false is
-- for benchmark builds only (meson -Dbench_unchained_audit=true): the event
-- is inserted as audit_insert_unchained does, without the chain.
CREATE FUNCTION brski_voucher_record(p_stamp text, p_serial text, p_owner text,
                                     p_assertion text, p_nonce bytea,
                                     p_created_on double precision, p_expires_on bigint,
                                     p_domain_cert_sha256 bytea, p_domain_id text,
                                     p_registrar text, p_voucher bytea, p_request bytea,
                                     p_actor text, p_detail text, p_chained boolean)
RETURNS bigint LANGUAGE plpgsql AS $$
DECLARE
    voucher_id bigint;
BEGIN
    -- held until the transaction ends: an ownership change (which locks
    -- the device FOR UPDATE) waits, or has committed and shows below
    PERFORM 1 FROM devices WHERE serial_number = p_serial FOR SHARE;
    IF NOT FOUND OR brski_ownership_stamp(p_serial) IS DISTINCT FROM p_stamp THEN
        RETURN NULL;
    END IF;
    INSERT INTO vouchers (serial_number, owner_id, protocol, assertion, nonce, created_on,
                          expires_on, domain_cert_sha256, domain_id, registrar, voucher, request)
    VALUES (p_serial, p_owner, 'brski', p_assertion, p_nonce, to_timestamp(p_created_on),
            to_timestamp(p_expires_on), p_domain_cert_sha256, p_domain_id, p_registrar,
            p_voucher, p_request)
    RETURNING id INTO voucher_id;
    IF p_chained THEN
        PERFORM audit_append(NULL, p_actor, 'voucher.issue', ARRAY[p_serial], ARRAY[p_owner],
                             'ok', p_detail);
    ELSE
        INSERT INTO audit_events (chain, chain_seq, at, actor, action, serial_number, owner_id,
                                  outcome, detail, prev_hash, hash)
        VALUES (1000000, nextval('audit_events_seq_seq'), now(), p_actor, 'voucher.issue',
                p_serial, p_owner, 'ok', p_detail, decode(repeat('00', 32), 'hex'),
                decode(repeat('00', 32), 'hex'));
    END IF;
    RETURN voucher_id;
END
$$;
