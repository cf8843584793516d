# cython: language_level=3, boundscheck=False, wraparound=False, cdivision=True, embedsignature=True
"""RTP load generator for bench/media.py: paced sends and latency capture, all nogil.

Benchmark tooling, not product code; built at benchmark start with ``cythonize -i``.
Each call leg is one UDP socket (created and bound by the caller, passed in as an fd)
that sends a 172-byte RTP packet every 20 ms to the relay port of that leg. The sends
of all legs are spread evenly over the period (global send ``k`` is due at
``start + k * period / legs``). Every packet carries its send time (CLOCK_MONOTONIC ns)
and its leg number in the payload; whatever comes back on any socket is matched by
that stamp, so latency = send -> receive through the relay, measured on one clock.

Only packets *sent* in ``[start + warmup, start + duration)`` are counted (sent and,
when they come back before ``drain`` ends, received); their latencies go to a
histogram with 1 us bins, the last bin collecting everything slower.
"""

from array import array

from libc.errno cimport errno, EAGAIN, EINTR, ENOSYS
from libc.stdint cimport int64_t, uint8_t, uint16_t, uint32_t, uint64_t
from libc.stdlib cimport calloc, free
from libc.string cimport memcpy, memset
from posix.time cimport clock_gettime, CLOCK_MONOTONIC, timespec


cdef extern from "<sys/epoll.h>" nogil:
    ctypedef union epoll_data_t:
        void *ptr
        int fd
        uint32_t u32
        uint64_t u64
    struct epoll_event:
        uint32_t events
        epoll_data_t data
    int EPOLLIN
    int EPOLL_CTL_ADD
    int epoll_create1(int flags)
    int epoll_ctl(int epfd, int op, int fd, epoll_event *event)
    int epoll_wait(int epfd, epoll_event *events, int maxevents, int timeout)
    int epoll_pwait2(int epfd, epoll_event *events, int maxevents,
                     const timespec *timeout, const void *sigmask)

cdef extern from "<netinet/in.h>" nogil:
    struct in_addr:
        uint32_t s_addr
    struct sockaddr_in:
        uint16_t sin_family
        uint16_t sin_port
        in_addr sin_addr
    uint16_t htons(uint16_t)
    uint32_t htonl(uint32_t)

cdef extern from "<arpa/inet.h>" nogil:
    uint32_t inet_addr(const char *cp)

cdef extern from "<sys/socket.h>" nogil:
    struct sockaddr:
        uint16_t sa_family
    ctypedef uint32_t socklen_t
    int AF_INET
    int MSG_DONTWAIT
    ssize_t sendto(int fd, const void *buf, size_t n, int flags,
                   const sockaddr *addr, socklen_t addr_len)
    ssize_t recv(int fd, void *buf, size_t n, int flags)

cdef extern from "<sys/resource.h>" nogil:
    struct timeval:
        long tv_sec
        long tv_usec
    struct rusage:
        timeval ru_utime
        timeval ru_stime
    int RUSAGE_THREAD
    int getrusage(int who, rusage *usage)

cdef extern from "<unistd.h>" nogil:
    int close(int fd)

cdef enum:
    MAX_EVENTS = 512
    RECV_BUFFER = 2048
    STAMP_OFFSET = 12  # right after the 12-byte RTP header
    MAX_BURST = 64  # sends per round before looking at receptions again


cdef inline int64_t now_ns() noexcept nogil:
    cdef timespec ts
    clock_gettime(CLOCK_MONOTONIC, &ts)
    return <int64_t>ts.tv_sec * 1000000000 + ts.tv_nsec


cdef inline double thread_cpu_s() noexcept nogil:
    cdef rusage ru
    getrusage(RUSAGE_THREAD, &ru)
    return (ru.ru_utime.tv_sec + ru.ru_stime.tv_sec
            + (ru.ru_utime.tv_usec + ru.ru_stime.tv_usec) / 1e6)


def run(fds, dest_ports, str dest_host="127.0.0.1", *, double duration_s=6.0,
        double warmup_s=1.0, double drain_s=0.3, long period_us=20000,
        int packet_size=172, long histogram_us=200000, long tick_us=100):
    """Send on every leg for ``duration_s``; return counts and the latency histogram.

    ``fds[i]`` is a bound non-blocking UDP socket that sends to ``dest_host:dest_ports[i]``.
    Returns a dict: ``sent``/``received`` (measured window), ``sent_total``,
    ``received_total``, ``late_sends_1ms`` (sends more than 1 ms behind schedule),
    ``max_send_lag_us``, ``generator_cpu_s`` (this thread, measured window),
    ``window_s`` and ``histogram`` (``array('I')``, bin i = latency in [i, i+1) us,
    last bin = slower).
    """
    cdef Py_ssize_t legs = len(fds)
    if legs == 0 or len(dest_ports) != legs:
        raise ValueError("need one destination port per socket")
    if packet_size < STAMP_OFFSET + 12 or packet_size > RECV_BUFFER:
        raise ValueError(f"packet size {packet_size} out of range")
    hist_obj = array("I", bytes(4 * (histogram_us + 1)))
    cdef uint32_t[::1] hist = hist_obj
    cdef int *fd_of = <int *>calloc(legs, sizeof(int))
    cdef sockaddr_in *dest = <sockaddr_in *>calloc(legs, sizeof(sockaddr_in))
    cdef uint32_t *seq = <uint32_t *>calloc(legs, sizeof(uint32_t))
    cdef epoll_event *events = <epoll_event *>calloc(MAX_EVENTS, sizeof(epoll_event))
    if fd_of == NULL or dest == NULL or seq == NULL or events == NULL:
        free(fd_of); free(dest); free(seq); free(events)
        raise MemoryError()
    cdef uint32_t host_addr = inet_addr(dest_host.encode())
    cdef int ep = epoll_create1(0)
    cdef epoll_event ev
    cdef Py_ssize_t i
    for i in range(legs):
        fd_of[i] = fds[i]
        dest[i].sin_family = AF_INET
        dest[i].sin_port = htons(<uint16_t>dest_ports[i])
        dest[i].sin_addr.s_addr = host_addr
        ev.events = EPOLLIN
        ev.data.u64 = <uint64_t>i
        epoll_ctl(ep, EPOLL_CTL_ADD, fd_of[i], &ev)

    cdef uint8_t out[RECV_BUFFER]
    cdef uint8_t inbuf[RECV_BUFFER]
    memset(out, 0xFF, RECV_BUFFER)  # PCMU silence
    out[0] = 0x80  # RTP v2, no padding/extension/CSRC
    out[1] = 0     # PT 0 = PCMU
    cdef int64_t period = period_us * 1000
    cdef int64_t tick = tick_us * 1000
    cdef int64_t start = now_ns() + 5000000
    cdef int64_t measure_from = start + <int64_t>(warmup_s * 1e9)
    cdef int64_t end_send = start + <int64_t>(duration_s * 1e9)
    cdef int64_t end_all = end_send + <int64_t>(drain_s * 1e9)
    cdef int64_t k = 0, due, now, lag, stamp, wait, latency_us
    cdef Py_ssize_t leg, n, e
    cdef long hist_max = histogram_us
    cdef uint64_t sent = 0, received = 0, sent_total = 0, received_total = 0
    cdef uint64_t late_sends = 0, send_errors = 0
    cdef int64_t max_lag = 0
    cdef uint32_t word
    cdef ssize_t size
    cdef timespec tmo
    cdef int nev, burst, use_pwait2 = 1
    cdef double cpu_from = -1.0, cpu_to = 0.0
    cdef int measuring = 0

    with nogil:
        while True:
            now = now_ns()
            if now >= end_all:
                break
            if not measuring and now >= measure_from:
                measuring = 1
                cpu_from = thread_cpu_s()
            # Every send that is due, each stamped with its real send time.
            burst = 0
            while now < end_send and burst < MAX_BURST:
                due = start + (k * period) // legs
                if due > now:
                    break
                burst += 1
                leg = k % legs
                lag = now - due
                if lag > 1000000:
                    late_sends += 1
                if lag > max_lag:
                    max_lag = lag
                seq[leg] += 1
                word = htons(<uint16_t>seq[leg])
                memcpy(&out[2], &word, 2)
                word = htonl(seq[leg] * 160)
                memcpy(&out[4], &word, 4)
                word = htonl(<uint32_t>leg)
                memcpy(&out[8], &word, 4)
                stamp = now_ns()
                memcpy(&out[STAMP_OFFSET], &stamp, 8)
                if sendto(fd_of[leg], out, packet_size, MSG_DONTWAIT,
                          <sockaddr *>&dest[leg], sizeof(sockaddr_in)) == packet_size:
                    sent_total += 1
                    if stamp >= measure_from:
                        sent += 1
                else:
                    send_errors += 1
                k += 1
                now = now_ns()
            if now >= end_send and cpu_to == 0.0:
                cpu_to = thread_cpu_s()
            # Sleep until the next send is due, waking for anything that comes back.
            if now < end_send:
                wait = start + (k * period) // legs - now
            else:
                wait = end_all - now
            if burst == MAX_BURST:
                wait = 0  # behind schedule: only pick up what came back, then send on
            elif wait < tick:
                # Sleeping for less than a tick costs more in wake-ups than it buys in
                # evenness: the sends due meanwhile go out together (still stamped).
                wait = tick
            if use_pwait2:
                tmo.tv_sec = wait // 1000000000
                tmo.tv_nsec = wait % 1000000000
                nev = epoll_pwait2(ep, events, MAX_EVENTS, &tmo, NULL)
                if nev < 0 and errno == ENOSYS:
                    use_pwait2 = 0
                    continue
            else:
                nev = epoll_wait(ep, events, MAX_EVENTS, <int>(wait // 1000000))
            for e in range(nev):
                # Level-triggered: one datagram per ready socket per round keeps the
                # sends on time; whatever is left is reported again at once.
                size = recv(fd_of[events[e].data.u64], inbuf, RECV_BUFFER, MSG_DONTWAIT)
                if size < STAMP_OFFSET + 8:
                    continue
                now = now_ns()
                memcpy(&stamp, &inbuf[STAMP_OFFSET], 8)
                received_total += 1
                if stamp < measure_from or stamp >= end_send:
                    continue
                received += 1
                latency_us = (now - stamp) // 1000
                if latency_us < 0:
                    latency_us = 0
                if latency_us > hist_max:
                    latency_us = hist_max
                hist[latency_us] += 1
    close(ep)
    free(fd_of); free(dest); free(seq); free(events)
    if cpu_to == 0.0:
        cpu_to = thread_cpu_s()
    return {
        "sent": sent,
        "received": received,
        "sent_total": sent_total,
        "received_total": received_total,
        "send_errors": send_errors,
        "late_sends_1ms": late_sends,
        "max_send_lag_us": max_lag // 1000,
        "generator_cpu_s": max(0.0, cpu_to - cpu_from) if cpu_from >= 0 else 0.0,
        "window_s": duration_s - warmup_s,
        "histogram": hist_obj,
    }
