/* Per-owner artifacts of the signed answer, made once per owner chain and
 * shared by the job threads (sztp_internal.h, struct sztp_owner_kit). */
#include <openssl/evp.h>
#include <openssl/x509v3.h>
#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "common/encoding.h"
#include "crypto/crypto.h"
#include "sztp/sztp_internal.h"

struct slot {
    struct sztp_owner_kit *kit;
    unsigned refs;                 /* requests holding it */
    unsigned long long used;       /* the cache's clock at its last use */
    bool evicted;                  /* freed when the last holder lets go */
};

static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static struct slot slots[SZTP_OWNER_CACHE_SIZE];
static unsigned long long clock_;

/* The key: SHA-256 over each certificate's length and DER, in order. */
static void kit_key(const struct store_bytes *certs, size_t n, unsigned char key[32])
{
    EVP_MD_CTX *m = EVP_MD_CTX_new();
    EVP_DigestInit_ex(m, EVP_sha256(), NULL);
    for (size_t i = 0; i < n; i++) {
        uint64_t len = certs[i].len;
        EVP_DigestUpdate(m, &len, sizeof(len));
        EVP_DigestUpdate(m, certs[i].data, certs[i].len);
    }
    EVP_DigestFinal_ex(m, key, NULL);
    EVP_MD_CTX_free(m);
}

static void free_stack(void *s) { sk_X509_pop_free(s, X509_free); }

static void kit_free(struct sztp_owner_kit *k)
{
    if (k)
        arena_free(k->arena);
}

/* Parses the chain (a certificate that does not parse is left out, as
 * before: the owner API validated them when they were stored) and makes the
 * answer's pieces; NULL when nothing usable remains. */
static struct sztp_owner_kit *kit_build(const struct store_bytes *certs, size_t n,
                                        const unsigned char key[32])
{
    struct arena *a = arena_new();
    struct sztp_owner_kit *k = arena_alloc(a, sizeof(*k));
    k->arena = a;
    memcpy(k->key, key, 32);
    STACK_OF(X509) *chain = sk_X509_new_null();
    arena_defer(a, free_stack, chain);
    for (size_t i = 0; i < n; i++) {
        const unsigned char *der = certs[i].data;
        X509 *x = d2i_X509(NULL, &der, (long)certs[i].len);
        if (x)
            sk_X509_push(chain, x);
    }
    unsigned char *cms;
    size_t cms_len;
    if (sk_X509_num(chain) == 0 || crypto_certs_only(chain, a, &cms, &cms_len) != 0) {
        arena_free(a);
        return NULL;
    }
    k->certs_b64 = base64_encode(a, cms, cms_len);
    /* RFC 8572 §3.3: the voucher pins the owner's last certificate */
    X509 *pinned = sk_X509_value(chain, sk_X509_num(chain) - 1);
    unsigned char spki[32];
    crypto_cert_digests(pinned, k->pinned_sha256, spki);
    unsigned char *pinned_der = crypto_cert_der(pinned, a, &k->pinned_der_len);
    k->pinned_der = pinned_der;
    const ASN1_OCTET_STRING *ski = X509_get0_subject_key_id(pinned);
    k->domain_id = ski ? base64_encode(a, ASN1_STRING_get0_data(ski), (size_t)ASN1_STRING_length(ski))
                       : base64_encode(a, spki, 32);
    return k;
}

static void release(void *p)
{
    struct sztp_owner_kit *k = p;
    pthread_mutex_lock(&lock);
    for (size_t i = 0; i < SZTP_OWNER_CACHE_SIZE; i++)
        if (slots[i].kit == k) {
            if (--slots[i].refs == 0 && slots[i].evicted) {
                slots[i] = (struct slot){0};
                pthread_mutex_unlock(&lock);
                kit_free(k);
                return;
            }
            break;
        }
    pthread_mutex_unlock(&lock);
}

/* Under the lock: the slot holding key, or NULL. */
static struct slot *find(const unsigned char key[32])
{
    for (size_t i = 0; i < SZTP_OWNER_CACHE_SIZE; i++)
        if (slots[i].kit && !slots[i].evicted && !memcmp(slots[i].kit->key, key, 32))
            return &slots[i];
    return NULL;
}

/* Under the lock: an empty slot, evicting the least recently used kit; NULL
 * when every slot is held by a request. An evicted kit that is still held
 * keeps its slot until it is let go. */
static struct slot *room(void)
{
    struct slot *oldest = NULL;
    for (size_t i = 0; i < SZTP_OWNER_CACHE_SIZE; i++) {
        struct slot *s = &slots[i];
        if (!s->kit)
            return s;
        if (!s->evicted && (!oldest || s->used < oldest->used))
            oldest = s;
    }
    if (!oldest)
        return NULL;
    if (oldest->refs) {
        oldest->evicted = true;
        return NULL;
    }
    kit_free(oldest->kit);
    *oldest = (struct slot){0};
    return oldest;
}

static void free_kit(void *k) { kit_free(k); }

const struct sztp_owner_kit *sztp_owner_kit(struct arena *a, const struct store_bytes *certs,
                                            size_t n)
{
    unsigned char key[32];
    kit_key(certs, n, key);
    pthread_mutex_lock(&lock);
    struct slot *s = find(key);
    if (s) {
        s->refs++;
        s->used = ++clock_;
        pthread_mutex_unlock(&lock);
        arena_defer(a, release, s->kit);
        return s->kit;
    }
    pthread_mutex_unlock(&lock);
    /* built outside the lock: two threads may both build a new owner's kit;
     * the second keeps its own for this request only */
    struct sztp_owner_kit *k = kit_build(certs, n, key);
    if (!k)
        return NULL;
    pthread_mutex_lock(&lock);
    s = find(key) ? NULL : room();
    if (s) {
        *s = (struct slot){k, 1, ++clock_, false};
        pthread_mutex_unlock(&lock);
        arena_defer(a, release, k);
        return k;
    }
    pthread_mutex_unlock(&lock);
    arena_defer(a, free_kit, k);
    return k;
}

size_t sztp_owner_cache_count(void)
{
    size_t n = 0;
    pthread_mutex_lock(&lock);
    for (size_t i = 0; i < SZTP_OWNER_CACHE_SIZE; i++)
        n += slots[i].kit && !slots[i].evicted;
    pthread_mutex_unlock(&lock);
    return n;
}
