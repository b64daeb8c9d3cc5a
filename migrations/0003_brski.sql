-- 0003: what the BRSKI audit log (RFC 8995 §5.8) shows of each voucher.

-- RFC 8995 §5.8.2: the domainID of the pinned-domain-cert (its subject key
-- identifier, else the SHA-256 SPKI fingerprint), base64
ALTER TABLE vouchers ADD COLUMN domain_id text;
-- who asked: the registrar certificate's subject
ALTER TABLE vouchers ADD COLUMN registrar text;
