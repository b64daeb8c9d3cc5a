/* Address ranges that decide whom the edge trusts behind load balancers. */
#include <arpa/inet.h>
#include <criterion/criterion.h>
#include <netinet/in.h>
#include <string.h>

#include "common/net.h"

static bool in(const char *prefix, const char *address)
{
    struct net_prefix p;
    cr_assert_eq(net_prefix_parse(prefix, &p), 0, "%s", prefix);
    struct sockaddr_storage ss;
    memset(&ss, 0, sizeof(ss));
    if (strchr(address, ':')) {
        struct sockaddr_in6 *a = (struct sockaddr_in6 *)&ss;
        a->sin6_family = AF_INET6;
        cr_assert_eq(inet_pton(AF_INET6, address, &a->sin6_addr), 1);
    } else {
        struct sockaddr_in *a = (struct sockaddr_in *)&ss;
        a->sin_family = AF_INET;
        cr_assert_eq(inet_pton(AF_INET, address, &a->sin_addr), 1);
    }
    return net_prefix_match(&p, 1, (struct sockaddr *)&ss);
}

Test(net, prefixes_match_what_they_cover)
{
    cr_assert(in("10.0.0.0/8", "10.255.1.2"));
    cr_assert_not(in("10.0.0.0/8", "11.0.0.1"));
    cr_assert(in("192.168.4.0/22", "192.168.7.255"));
    cr_assert_not(in("192.168.4.0/22", "192.168.8.0"));
    cr_assert(in("127.0.0.1", "127.0.0.1"));
    cr_assert_not(in("127.0.0.1", "127.0.0.2"));
    cr_assert(in("0.0.0.0/0", "203.0.113.9"));
    cr_assert(in("2001:db8::/32", "2001:db8:ffff::1"));
    cr_assert_not(in("2001:db8::/32", "2001:db9::1"));
    /* an IPv4 client on a dual-stack socket appears IPv4-mapped */
    cr_assert(in("127.0.0.0/8", "::ffff:127.0.0.1"));
    cr_assert_not(in("::1/128", "127.0.0.1"));
}

Test(net, malformed_prefixes_are_refused)
{
    struct net_prefix p;
    cr_assert_eq(net_prefix_parse("10.0.0.0/33", &p), -1);
    cr_assert_eq(net_prefix_parse("10.0.0.0/", &p), -1);
    cr_assert_eq(net_prefix_parse("10.0.0.0/8x", &p), -1);
    cr_assert_eq(net_prefix_parse("localhost", &p), -1);
    cr_assert_eq(net_prefix_parse("::1/129", &p), -1);
}
