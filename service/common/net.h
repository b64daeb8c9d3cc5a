#ifndef MASAD_COMMON_NET_H
#define MASAD_COMMON_NET_H
/* Address ranges (CIDR prefixes) for trusting load balancers and proxies. */
#include <stdbool.h>
#include <stddef.h>
#include <sys/socket.h>

struct net_prefix {
    int family;                 /* AF_INET or AF_INET6 */
    unsigned char addr[16];
    unsigned bits;
};

/* "192.0.2.0/24", "2001:db8::/32" (a bare address is a full-length prefix). */
int net_prefix_parse(const char *text, struct net_prefix *out);
/* Is the address in one of the prefixes? IPv4-mapped IPv6 addresses count
 * as IPv4. */
bool net_prefix_match(const struct net_prefix *prefixes, size_t count, const struct sockaddr *sa);

#endif
