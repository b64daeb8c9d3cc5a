/* `masad health`: the container health check, without curl in the image. */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include "edge/edge.h"

/* The management listener's address as a client reaches it from inside:
 * a wildcard bind is reached on loopback. */
static int connect_management(const struct config_listener *l)
{
    struct sockaddr_storage ss;
    memset(&ss, 0, sizeof(ss));
    struct sockaddr_in *in4 = (struct sockaddr_in *)&ss;
    struct sockaddr_in6 *in6 = (struct sockaddr_in6 *)&ss;
    socklen_t len;
    if (inet_pton(AF_INET, l->address, &in4->sin_addr) == 1) {
        if (in4->sin_addr.s_addr == htonl(INADDR_ANY))
            in4->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        in4->sin_family = AF_INET;
        in4->sin_port = htons(l->port);
        len = sizeof(*in4);
    } else if (inet_pton(AF_INET6, l->address, &in6->sin6_addr) == 1) {
        if (IN6_IS_ADDR_UNSPECIFIED(&in6->sin6_addr))
            in6->sin6_addr = in6addr_loopback;
        in6->sin6_family = AF_INET6;
        in6->sin6_port = htons(l->port);
        len = sizeof(*in6);
    } else
        return -1;
    int fd = socket(ss.ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return -1;
    /* on Linux the send timeout also bounds connect() */
    struct timeval two = {2, 0};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &two, sizeof(two));
    setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &two, sizeof(two));
    if (connect(fd, (struct sockaddr *)&ss, len) != 0) {
        close(fd);
        return -1;
    }
    return fd;
}

int edge_probe_ready(const struct config *cfg, char *why, size_t why_len)
{
    int fd = connect_management(&cfg->management);
    if (fd < 0) {
        snprintf(why, why_len, "cannot connect to the management listener [%s]:%u",
                 cfg->management.address, cfg->management.port);
        return -1;
    }
    /* its own listener on this host: the identity is not what is checked */
    SSL_CTX *ctx = SSL_CTX_new(TLS_client_method());
    SSL *ssl = SSL_new(ctx);
    SSL_set_fd(ssl, fd);
    char answer[256] = "";
    int n = 0;
    static const char request[] = "GET /readyz HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n";
    if (SSL_connect(ssl) == 1 && SSL_write(ssl, request, sizeof(request) - 1) > 0)
        n = SSL_read(ssl, answer, sizeof(answer) - 1);
    answer[n > 0 ? n : 0] = '\0';
    SSL_free(ssl);
    SSL_CTX_free(ctx);
    close(fd);
    ERR_clear_error();
    if (!strncmp(answer, "HTTP/1.1 200", 12))
        return 0;
    char *eol = strstr(answer, "\r\n");
    if (eol)
        *eol = '\0';
    snprintf(why, why_len, "/readyz answered \"%s\"", *answer ? answer : "nothing");
    return -1;
}
