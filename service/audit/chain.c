/* The audit hash of docs/audit.md, for verification. audit_hash() in
 * migrations/0002_audit_chain.sql computes the same when appending. */
#include <arpa/inet.h>
#include <openssl/evp.h>
#include <string.h>

#include "audit/audit.h"

static void field(EVP_MD_CTX *m, const char *value)
{
    uint32_t len = value ? htonl((uint32_t)strlen(value)) : 0xffffffffu;
    EVP_DigestUpdate(m, &len, 4);
    if (value)
        EVP_DigestUpdate(m, value, strlen(value));
}

void audit_event_hash(const char *const fields[10], const unsigned char prev[32],
                      unsigned char out[32])
{
    static const char domain[] = "masad-audit-v1\n";
    EVP_MD_CTX *m = EVP_MD_CTX_new();
    unsigned int n;
    EVP_DigestInit_ex(m, EVP_sha256(), NULL);
    EVP_DigestUpdate(m, domain, sizeof(domain) - 1);
    /* seq, chain, chain_seq, at, actor, action, serial_number, owner_id, outcome, detail */
    for (int i = 0; i < 10; i++)
        field(m, fields[i]);
    EVP_DigestUpdate(m, prev, 32);
    EVP_DigestFinal_ex(m, out, &n);
    EVP_MD_CTX_free(m);
}
