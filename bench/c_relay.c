/* Minimal UDP relay, the reference ceiling for bench/media.py (not product code).
 *
 * usage: c_relay HOST BASE_PORT CALLS
 * Binds 2*CALLS sockets on HOST:BASE_PORT.. and relays leg 2i <-> leg 2i+1: a packet
 * received on one leg is sent from the other leg's socket to that leg's peer, the
 * address learned from the first packet the other leg received (symmetric latching).
 * epoll, one recvfrom + one sendto per packet. Prints "ready" once bound; SIGTERM ends.
 */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

struct leg { int fd; int latched; struct sockaddr_in peer; };

static volatile sig_atomic_t running = 1;
static void on_term(int sig) { (void)sig; running = 0; }

int main(int argc, char **argv) {
    if (argc != 4) { fprintf(stderr, "usage: %s HOST BASE_PORT CALLS\n", argv[0]); return 2; }
    int base = atoi(argv[2]), n = 2 * atoi(argv[3]);
    struct leg *legs = calloc((size_t)n, sizeof *legs);
    int ep = epoll_create1(0);
    signal(SIGTERM, on_term);
    signal(SIGINT, on_term);
    for (int i = 0; i < n; i++) {
        struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)(base + i))};
        inet_pton(AF_INET, argv[1], &a.sin_addr);
        legs[i].fd = socket(AF_INET, SOCK_DGRAM | SOCK_NONBLOCK, 0);
        if (bind(legs[i].fd, (struct sockaddr *)&a, sizeof a) < 0) { perror("bind"); return 1; }
        struct epoll_event ev = {.events = EPOLLIN, .data.u32 = (uint32_t)i};
        epoll_ctl(ep, EPOLL_CTL_ADD, legs[i].fd, &ev);
    }
    printf("ready\n");
    fflush(stdout);
    struct epoll_event events[256];
    char buf[2048];
    while (running) {
        int k = epoll_wait(ep, events, 256, 200);
        for (int e = 0; e < k; e++) {
            struct leg *in = &legs[events[e].data.u32], *out = &legs[events[e].data.u32 ^ 1u];
            struct sockaddr_in src;
            socklen_t len = sizeof src;
            ssize_t size = recvfrom(in->fd, buf, sizeof buf, 0, (struct sockaddr *)&src, &len);
            if (size < 0) continue;
            if (!in->latched) { in->peer = src; in->latched = 1; }
            if (out->latched)
                sendto(out->fd, buf, (size_t)size, 0, (struct sockaddr *)&out->peer, sizeof out->peer);
        }
    }
    return 0;
}
