/* The process-wide cache of parsed certificates (crypto.h, "parsed
 * certificates, cached"): a fixed array of slots, a hash index over it, and
 * clock (second-chance) eviction, all under one mutex held only for the
 * lookup or the insert, never while parsing. */
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/x509v3.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "crypto/crypto.h"

#define DEFAULT_CAPACITY 4096
#define MAX_CERT_DER (64 * 1024) /* larger is no certificate masad takes */

struct slot {
    unsigned char key[32]; /* SHA-256 of the DER */
    X509 *x;               /* the cache's reference; NULL: a free slot */
    int next;              /* the next slot of the same bucket, or -1 */
    bool referenced;       /* used since the clock hand last passed */
};

static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static struct slot *slots;
static int *buckets; /* first slot of each bucket, or -1 */
static size_t capacity, bucket_mask, used, hand;
static unsigned long long hits, misses, evictions;

static size_t bucket_of(const unsigned char key[32])
{
    size_t h;
    memcpy(&h, key, sizeof(h)); /* a SHA-256 is uniform already */
    return h & bucket_mask;
}

/* Under the lock. */
static void release_all(void)
{
    for (size_t i = 0; slots && i < capacity; i++)
        X509_free(slots[i].x);
    free(slots);
    free(buckets);
    slots = NULL;
    buckets = NULL;
    used = hand = 0;
}

/* Under the lock: the table for n entries, empty. */
static bool allocate(size_t n)
{
    size_t nb = 1;
    while (nb < 2 * n)
        nb <<= 1;
    slots = calloc(n, sizeof(*slots));
    buckets = malloc(nb * sizeof(*buckets));
    if (!slots || !buckets) {
        free(slots);
        free(buckets);
        slots = NULL;
        buckets = NULL;
        return false;
    }
    for (size_t i = 0; i < nb; i++)
        buckets[i] = -1;
    capacity = n;
    bucket_mask = nb - 1;
    return true;
}

void crypto_cert_cache_configure(size_t n)
{
    pthread_mutex_lock(&lock);
    release_all();
    allocate(n ? n : 1);
    hits = misses = evictions = 0;
    pthread_mutex_unlock(&lock);
}

void crypto_cert_cache_clear(void)
{
    pthread_mutex_lock(&lock);
    release_all();
    capacity = 0;
    pthread_mutex_unlock(&lock);
}

void crypto_cert_cache_stats(struct crypto_cert_cache_stats *out)
{
    pthread_mutex_lock(&lock);
    *out = (struct crypto_cert_cache_stats){hits, misses, evictions, used, capacity};
    pthread_mutex_unlock(&lock);
}

/* Under the lock. */
static int find(const unsigned char key[32])
{
    for (int i = buckets[bucket_of(key)]; i >= 0; i = slots[i].next)
        if (!memcmp(slots[i].key, key, 32))
            return i;
    return -1;
}

/* Under the lock: unlinks slot i from its bucket and drops the cache's
 * reference (holders of their own keep the certificate). */
static void evict(size_t i)
{
    int *link = &buckets[bucket_of(slots[i].key)];
    while (*link != (int)i)
        link = &slots[*link].next;
    *link = slots[i].next;
    X509_free(slots[i].x);
    slots[i].x = NULL;
    used--;
    evictions++;
}

/* Under the lock: a free slot, evicting the first unreferenced one the
 * clock hand reaches (each referenced slot it passes gets a second chance). */
static size_t free_slot(void)
{
    for (;;) {
        size_t i = hand;
        hand = (hand + 1) % capacity;
        if (!slots[i].x)
            return i;
        if (slots[i].referenced)
            slots[i].referenced = false;
        else {
            evict(i);
            return i;
        }
    }
}

/* Under the lock: x is kept for key (the cache takes one reference of its own). */
static void insert(const unsigned char key[32], X509 *x)
{
    size_t i = free_slot();
    size_t b = bucket_of(key);
    memcpy(slots[i].key, key, 32);
    X509_up_ref(x);
    slots[i].x = x;
    slots[i].referenced = false;
    slots[i].next = buckets[b];
    buckets[b] = (int)i;
    used++;
}

/* The whole of der is one certificate; its extensions are decoded now, so
 * that threads sharing it only read it. */
static X509 *parse(const unsigned char *der, size_t len)
{
    const unsigned char *p = der;
    X509 *x = d2i_X509(NULL, &p, (long)len);
    if (x && p != der + len) {
        X509_free(x);
        x = NULL;
    }
    if (x)
        X509_check_purpose(x, -1, 0);
    ERR_clear_error();
    return x;
}

X509 *crypto_cert_cache_get(const unsigned char *der, size_t len)
{
    if (!der || !len || len > MAX_CERT_DER)
        return NULL;
    unsigned char key[32];
    if (EVP_Digest(der, len, key, NULL, EVP_sha256(), NULL) != 1)
        return NULL;
    pthread_mutex_lock(&lock);
    if (!slots && !allocate(capacity ? capacity : DEFAULT_CAPACITY)) {
        pthread_mutex_unlock(&lock);
        return parse(der, len);
    }
    int i = find(key);
    if (i >= 0) {
        X509 *x = slots[i].x;
        X509_up_ref(x);
        slots[i].referenced = true;
        hits++;
        pthread_mutex_unlock(&lock);
        return x;
    }
    misses++;
    pthread_mutex_unlock(&lock);

    X509 *x = parse(der, len);
    if (!x)
        return NULL; /* not kept: hostile input must not fill the cache */
    pthread_mutex_lock(&lock);
    if (slots) {
        int j = find(key); /* another thread parsed it meanwhile: share that one */
        if (j >= 0) {
            X509 *theirs = slots[j].x;
            X509_up_ref(theirs);
            X509_free(x);
            x = theirs;
        } else
            insert(key, x);
    }
    pthread_mutex_unlock(&lock);
    return x;
}

static void free_x509(void *x) { X509_free(x); }

X509 *crypto_cert_cache_get_arena(struct arena *a, const unsigned char *der, size_t len)
{
    X509 *x = crypto_cert_cache_get(der, len);
    if (x)
        arena_defer(a, free_x509, x);
    return x;
}

/* ---- signatures of certification links, verified once ----
 * A direct-mapped table of links whose signature verified, keyed by the
 * SHA-256 of both certificates' DER: a registrar's or owner's chain comes
 * with every request, and its links are the same. Only successes are kept,
 * so a bad link is checked (and refused) every time. */

#define LINKS 1024 /* a power of 2 */

static pthread_mutex_t links_lock = PTHREAD_MUTEX_INITIALIZER;
static unsigned char links[LINKS][64];
static bool link_used[LINKS];

static bool cert_sha256(X509 *x, unsigned char out[32])
{
    unsigned int n;
    return X509_digest(x, EVP_sha256(), out, &n) == 1 && n == 32;
}

bool crypto_cert_issued_by(X509 *child, X509 *issuer)
{
    if (X509_check_issued(issuer, child) != X509_V_OK)
        return false;
    unsigned char key[64];
    bool keyed = cert_sha256(child, key) && cert_sha256(issuer, key + 32);
    size_t at;
    memcpy(&at, key, sizeof(at));
    at &= LINKS - 1;
    if (keyed) {
        pthread_mutex_lock(&links_lock);
        bool known = link_used[at] && !memcmp(links[at], key, sizeof(key));
        pthread_mutex_unlock(&links_lock);
        if (known)
            return true;
    }
    bool ok = X509_verify(child, X509_get0_pubkey(issuer)) == 1;
    ERR_clear_error();
    if (ok && keyed) {
        pthread_mutex_lock(&links_lock);
        memcpy(links[at], key, sizeof(key));
        link_used[at] = true;
        pthread_mutex_unlock(&links_lock);
    }
    return ok;
}
