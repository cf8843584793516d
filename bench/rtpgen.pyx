# cython: language_level=3, boundscheck=False, wraparound=False, cdivision=True, embedsignature=True
"""RTP load generator for bench/media.py: paced sends and latency capture, all nogil.

Benchmark tooling, not product code; built at benchmark start with ``cythonize -i``.
Each call leg is one UDP socket (created and bound by the caller, passed in as an fd)
that sends a 172-byte RTP packet every 20 ms to the relay port of that leg. The sends
of all legs are spread evenly over the period (global send ``k`` is due at
``start + k * period / legs``). Every packet carries its send time (CLOCK_MONOTONIC
and CLOCK_REALTIME ns) and its leg number in the payload; whatever comes back on any
socket is matched by that stamp: latency = send -> the kernel's receive timestamp on
the generator's socket, through the relay (SO_TIMESTAMPNS, the realtime clock).

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

cdef extern from "<sys/uio.h>" nogil:
    struct iovec:
        void *iov_base
        size_t iov_len

cdef extern from "<sys/socket.h>" nogil:
    struct sockaddr:
        uint16_t sa_family
    ctypedef uint32_t socklen_t
    struct msghdr:
        void *msg_name
        socklen_t msg_namelen
        iovec *msg_iov
        size_t msg_iovlen
        void *msg_control
        size_t msg_controllen
        int msg_flags
    struct cmsghdr:
        size_t cmsg_len
        int cmsg_level
        int cmsg_type
    cmsghdr *CMSG_FIRSTHDR(msghdr *msg)
    cmsghdr *CMSG_NXTHDR(msghdr *msg, cmsghdr *cmsg)
    unsigned char *CMSG_DATA(cmsghdr *cmsg)
    int AF_INET
    int MSG_DONTWAIT
    int SOL_SOCKET
    int SO_TIMESTAMPNS
    int SCM_TIMESTAMPNS
    int setsockopt(int fd, int level, int name, const void *value, socklen_t size)
    ssize_t sendto(int fd, const void *buf, size_t n, int flags,
                   const sockaddr *addr, socklen_t addr_len)
    ssize_t recvmsg(int fd, msghdr *msg, int flags)

cdef extern from "<time.h>" nogil:
    int CLOCK_REALTIME
    int TIMER_ABSTIME
    int clock_nanosleep(int clock_id, int flags, const timespec *request, timespec *remain)

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
    MONO_OFFSET = 12  # right after the 12-byte RTP header: CLOCK_MONOTONIC send time
    REAL_OFFSET = 20  # CLOCK_REALTIME send time, the kernel's receive timestamps' clock
    PAYLOAD_END = 28
    MAX_BURST = 64  # sends per round before looking at receptions again


cdef inline int64_t now_ns() noexcept nogil:
    cdef timespec ts
    clock_gettime(CLOCK_MONOTONIC, &ts)
    return <int64_t>ts.tv_sec * 1000000000 + ts.tv_nsec


cdef inline int64_t realtime_ns() noexcept nogil:
    cdef timespec ts
    clock_gettime(CLOCK_REALTIME, &ts)
    return <int64_t>ts.tv_sec * 1000000000 + ts.tv_nsec


cdef inline double thread_cpu_s() noexcept nogil:
    cdef rusage ru
    getrusage(RUSAGE_THREAD, &ru)
    return (ru.ru_utime.tv_sec + ru.ru_stime.tv_sec
            + (ru.ru_utime.tv_usec + ru.ru_stime.tv_usec) / 1e6)


def run(fds, dest_ports, str dest_host="127.0.0.1", *, double duration_s=6.0,
        double warmup_s=1.0, double drain_s=0.3, long period_us=20000,
        int packet_size=172, long histogram_us=200000, long tick_us=100,
        bint wake_on_arrival=False):
    """Send on every leg for ``duration_s``; return counts and the latency histogram.

    ``fds[i]`` is a bound non-blocking UDP socket that sends to ``dest_host:dest_ports[i]``.
    The loop wakes every ``tick_us`` (or when the next send is due, if later), sends
    what is due, then reads every socket that has data. Latency is taken from the
    kernel's receive timestamp (SO_TIMESTAMPNS, CLOCK_REALTIME, against a realtime
    stamp in the packet), so when the generator reads a packet does not change it and
    it need not wake for each arrival; ``wake_on_arrival`` makes it wake anyway.
    Returns a dict: ``sent``/``received`` (measured window), ``sent_total``,
    ``received_total``, ``send_errors``, ``late_sends_1ms`` (sends more than 1 ms
    behind schedule), ``max_send_lag_us``, ``kernel_timestamps`` (received packets
    that carried one), ``generator_cpu_s`` (this thread, measured window),
    ``window_s`` and ``histogram`` (``array('I')``, bin i = latency in [i, i+1) us,
    last bin = slower).
    """
    cdef Py_ssize_t legs = len(fds)
    if legs == 0 or len(dest_ports) != legs:
        raise ValueError("need one destination port per socket")
    if packet_size < PAYLOAD_END or packet_size > RECV_BUFFER:
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
    cdef int one = 1
    cdef Py_ssize_t i
    for i in range(legs):
        fd_of[i] = fds[i]
        dest[i].sin_family = AF_INET
        dest[i].sin_port = htons(<uint16_t>dest_ports[i])
        dest[i].sin_addr.s_addr = host_addr
        setsockopt(fd_of[i], SOL_SOCKET, SO_TIMESTAMPNS, &one, sizeof(one))
        ev.events = EPOLLIN
        ev.data.u64 = <uint64_t>i
        epoll_ctl(ep, EPOLL_CTL_ADD, fd_of[i], &ev)

    cdef uint8_t out[RECV_BUFFER]
    cdef uint8_t inbuf[RECV_BUFFER]
    cdef uint64_t control[16]  # aligned cmsg space
    cdef iovec iov
    cdef msghdr msg
    cdef cmsghdr *cmsg
    cdef timespec *kernel_ts
    iov.iov_base = inbuf
    iov.iov_len = RECV_BUFFER
    memset(&msg, 0, sizeof(msg))
    memset(out, 0xFF, RECV_BUFFER)  # PCMU silence
    out[0] = 0x80  # RTP v2, no padding/extension/CSRC
    out[1] = 0     # PT 0 = PCMU
    cdef int64_t period = period_us * 1000
    cdef int64_t tick = tick_us * 1000
    cdef int64_t start = now_ns() + 5000000
    cdef int64_t measure_from = start + <int64_t>(warmup_s * 1e9)
    cdef int64_t end_send = start + <int64_t>(duration_s * 1e9)
    cdef int64_t end_all = end_send + <int64_t>(drain_s * 1e9)
    cdef int64_t k = 0, due, now, lag, stamp, real_stamp, arrived, wake, latency_us
    cdef Py_ssize_t leg, e
    cdef long hist_max = histogram_us
    cdef uint64_t sent = 0, received = 0, sent_total = 0, received_total = 0
    cdef uint64_t late_sends = 0, send_errors = 0, kernel_stamped = 0
    cdef int64_t max_lag = 0
    cdef uint32_t word
    cdef ssize_t size
    cdef timespec tmo
    cdef int nev = 0, burst
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
                real_stamp = realtime_ns()
                memcpy(&out[MONO_OFFSET], &stamp, 8)
                memcpy(&out[REAL_OFFSET], &real_stamp, 8)
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
            # When to run again: the next due send, but not sooner than a tick (a
            # shorter sleep costs more in wake-ups than it buys in evenness; the sends
            # due meanwhile go out together, each still stamped); at once when behind.
            if burst == MAX_BURST or nev == MAX_EVENTS:
                wake = now
            else:
                wake = start + (k * period) // legs if now < end_send else end_all
                if wake < now + tick:
                    wake = now + tick
                if wake > end_all:
                    wake = end_all
            if wake_on_arrival:
                wake -= now
                tmo.tv_sec = wake // 1000000000
                tmo.tv_nsec = wake % 1000000000
                nev = epoll_pwait2(ep, events, MAX_EVENTS, &tmo, NULL)
                if nev < 0 and errno == ENOSYS:
                    wake_on_arrival = False
                    continue
            else:
                if wake > now:
                    tmo.tv_sec = wake // 1000000000
                    tmo.tv_nsec = wake % 1000000000
                    clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &tmo, NULL)
                nev = epoll_wait(ep, events, MAX_EVENTS, 0)
            for e in range(nev):
                # Level-triggered: one datagram per ready socket per round keeps the
                # sends on time; whatever is left is reported again next round.
                msg.msg_iov = &iov
                msg.msg_iovlen = 1
                msg.msg_control = control
                msg.msg_controllen = sizeof(control)
                size = recvmsg(fd_of[events[e].data.u64], &msg, MSG_DONTWAIT)
                if size < PAYLOAD_END:
                    continue
                arrived = 0
                cmsg = CMSG_FIRSTHDR(&msg)
                while cmsg != NULL:
                    if cmsg.cmsg_level == SOL_SOCKET and cmsg.cmsg_type == SCM_TIMESTAMPNS:
                        kernel_ts = <timespec *>CMSG_DATA(cmsg)
                        arrived = <int64_t>kernel_ts.tv_sec * 1000000000 + kernel_ts.tv_nsec
                        kernel_stamped += 1
                        break
                    cmsg = CMSG_NXTHDR(&msg, cmsg)
                if arrived == 0:
                    arrived = realtime_ns()
                memcpy(&stamp, &inbuf[MONO_OFFSET], 8)
                memcpy(&real_stamp, &inbuf[REAL_OFFSET], 8)
                received_total += 1
                if stamp < measure_from or stamp >= end_send:
                    continue
                received += 1
                latency_us = (arrived - real_stamp) // 1000
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
        "kernel_timestamps": kernel_stamped,
        "generator_cpu_s": max(0.0, cpu_to - cpu_from) if cpu_from >= 0 else 0.0,
        "window_s": duration_s - warmup_s,
        "histogram": hist_obj,
    }
