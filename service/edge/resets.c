/* HTTP/2 rapid reset (CVE-2023-44487): a client that opens streams and
 * resets them at once has the service queue work that nobody waits for.
 * h2o 2.2.5 neither counts resets nor lets a handler close a connection, so
 * the edge counts, per connection, the requests aborted while their job was
 * still pending, and past RESET_LIMIT within RESET_WINDOW_MS shuts the
 * connection down. The jobs themselves are dropped by the job threads. */
#include <limits.h>
#include <netdb.h>
#include <sys/socket.h>

#include "common/log.h"
#include "common/metrics.h"
#include "edge/edge_internal.h"

#define RESET_LIMIT 100
#define RESET_WINDOW_MS 10000

/* The slot counting this connection: its own, else the one that counts
 * least (an empty one, or one whose window has passed), so that many
 * connections resetting at once cannot push a heavy resetter out. */
static struct reset_count *slot_for(struct edge_resets *r, uint64_t conn_id, long long now)
{
    struct reset_count *least = &r->slots[0];
    unsigned least_count = UINT_MAX;
    for (size_t i = 0; i < EDGE_RESET_SLOTS; i++) {
        struct reset_count *s = &r->slots[i];
        if (s->conn_id == conn_id)
            return s;
        unsigned count = s->conn_id && now - s->window_start_ms <= RESET_WINDOW_MS ? s->count : 0;
        if (count < least_count) {
            least = s;
            least_count = count;
        }
    }
    *least = (struct reset_count){.conn_id = conn_id, .window_start_ms = now};
    return least;
}

/*
 * Shutting the socket down is the one way to close a connection from here
 * that h2o 2.2.5 copes with: its next read fails and it tears the
 * connection down itself (its GOAWAY path is private). This may run while
 * h2o is inside the connection, even while it disposes of it: nothing here
 * touches h2o's memory beyond the socket it hands out.
 */
static void shut_down(h2o_conn_t *conn)
{
    h2o_socket_t *sock = conn->callbacks->get_socket ? conn->callbacks->get_socket(conn) : NULL;
    if (sock)
        shutdown(h2o_socket_get_fd(sock), SHUT_RDWR);
}

void edge_resets_note(struct edge_loop *loop, h2o_req_t *req)
{
    if (req->version < 0x200)
        return; /* HTTP/1.1 aborts once per connection */
    long long now = clock_monotonic_ms();
    struct reset_count *s = slot_for(&loop->resets, req->conn->id, now);
    if (now - s->window_start_ms > RESET_WINDOW_MS) {
        s->window_start_ms = now;
        s->count = 0;
    }
    if (++s->count <= RESET_LIMIT || s->closed)
        return;
    s->closed = true;
    char peer[NI_MAXHOST] = "";
    struct sockaddr_storage ss;
    if (req->conn->callbacks->get_peername(req->conn, (struct sockaddr *)&ss))
        h2o_socket_getnumerichost((struct sockaddr *)&ss, sizeof(ss), peer);
    log_warn("HTTP/2 connection from %s closed: more than %d requests reset before their answer "
             "within %d s",
             peer, RESET_LIMIT, RESET_WINDOW_MS / 1000);
    metrics_reset_flood_closed();
    shut_down(req->conn);
}
