#include "common/net.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int net_prefix_parse(const char *text, struct net_prefix *out)
{
    char addr[64];
    const char *slash = strchr(text, '/');
    size_t n = slash ? (size_t)(slash - text) : strlen(text);
    if (n >= sizeof(addr))
        return -1;
    memcpy(addr, text, n);
    addr[n] = 0;
    memset(out, 0, sizeof(*out));
    if (inet_pton(AF_INET, addr, out->addr) == 1)
        out->family = AF_INET;
    else if (inet_pton(AF_INET6, addr, out->addr) == 1)
        out->family = AF_INET6;
    else
        return -1;
    unsigned max = out->family == AF_INET ? 32 : 128;
    char *end;
    unsigned long bits = slash ? strtoul(slash + 1, &end, 10) : max;
    if ((slash && (*end || !slash[1])) || bits > max)
        return -1;
    out->bits = (unsigned)bits;
    return 0;
}

static bool prefix_has(const struct net_prefix *p, const unsigned char *addr)
{
    unsigned full = p->bits / 8, rest = p->bits % 8;
    if (memcmp(p->addr, addr, full) != 0)
        return false;
    unsigned char mask = (unsigned char)(0xff << (8 - rest));
    return !rest || (p->addr[full] & mask) == (addr[full] & mask);
}

bool net_prefix_match(const struct net_prefix *prefixes, size_t count, const struct sockaddr *sa)
{
    unsigned char v4[4], v6[16];
    bool has4 = false, has6 = false;
    if (sa->sa_family == AF_INET) {
        memcpy(v4, &((const struct sockaddr_in *)sa)->sin_addr, 4);
        has4 = true;
    } else if (sa->sa_family == AF_INET6) {
        const struct in6_addr *a = &((const struct sockaddr_in6 *)sa)->sin6_addr;
        memcpy(v6, a, 16);
        has6 = true;
        if (IN6_IS_ADDR_V4MAPPED(a)) {
            memcpy(v4, v6 + 12, 4);
            has4 = true;
        }
    }
    for (size_t i = 0; i < count; i++)
        if ((prefixes[i].family == AF_INET && has4 && prefix_has(&prefixes[i], v4)) ||
            (prefixes[i].family == AF_INET6 && has6 && prefix_has(&prefixes[i], v6)))
            return true;
    return false;
}
