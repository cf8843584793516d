# cython: language_level=3, boundscheck=False, wraparound=False, cdivision=True, initializedcheck=False
"""RTP media engine, compiled: the native twin of ``mediaengine_py``.

Same rules, same events, same statistics as the pure-Python reference (read that
module's docstring for them); the tests run both.  Here the engine thread runs
``_run`` without the GIL: ``epoll_wait`` over every leg socket, a wake eventfd and a
20 ms timerfd; ``recvmmsg`` a batch per ready socket; per packet, in place in the
receive buffer: latch, header parse and RFC 3550 statistics (``cython_ext.rtp``'s nogil
C API), RFC 4733 / recording / in-band DTMF where asked, header rewrite; then one
``sendmmsg`` per batch on the peer's socket.  No Python object and no allocation per
packet.  In-band DTMF is ``cython_ext.dtmf``'s ``DtmfDetector``, one per leg that asked,
fed without the GIL; the engine thread takes the GIL only when the detector reports a
finished press, to ``take()`` it.

Python calls change the C state under one mutex (the engine thread holds it while it
handles one ``epoll_wait`` result, never while it waits), so calls are synchronous and
raise at the call site; sockets are created and bound by the calling thread and added
to the epoll set directly (epoll_ctl is thread-safe).  Events go back through a C
array and an eventfd.  G.711 comes from ``cython_ext.g711`` (cimported, inline).

A leg's ``DtmfDetector`` is owned by ``MediaEngine.detectors`` (a dict, changed only
with the GIL); the C leg holds a borrowed pointer, set and cleared under the engine
lock, so the engine thread never sees a freed detector.
"""

from cpython.bytes cimport PyBytes_AS_STRING, PyBytes_FromStringAndSize
from cpython.ref cimport PyObject
from libc.errno cimport EACCES, EADDRINUSE, EAGAIN, EINTR, errno
from libc.stdint cimport int16_t, int32_t, int64_t, uint8_t, uint16_t, uint32_t, uint64_t
from libc.stdlib cimport calloc, free, malloc
from libc.string cimport memcpy, memset
from posix.time cimport CLOCK_MONOTONIC, clock_gettime, timespec
from posix.unistd cimport close, read, write

from cython_ext.dtmf._dtmf cimport DtmfDetector
from cython_ext.g711._g711 cimport alaw_to_linear, linear_to_alaw, linear_to_ulaw, ulaw_to_linear
from cython_ext.rtp._rtp cimport (
    RTP_OK,
    RtpHeaderC,
    RxStatsC,
    rtp_parse_header,
    rxstats_init,
    rxstats_jitter_ms,
    rxstats_lost,
    rxstats_update,
)

import ipaddress
import os
import random
import threading

__all__ = ["IMPLEMENTATION", "MediaEngine", "MediaError"]

IMPLEMENTATION = "cython"


class MediaError(Exception):
    """The engine cannot do what was asked (port range exhausted, unknown leg...)."""


# --- system declarations --------------------------------------------------------------

cdef extern from "<pthread.h>" nogil:
    ctypedef struct pthread_mutex_t:
        pass
    int pthread_mutex_init(pthread_mutex_t*, void*)
    int pthread_mutex_lock(pthread_mutex_t*)
    int pthread_mutex_unlock(pthread_mutex_t*)
    int pthread_mutex_destroy(pthread_mutex_t*)

cdef extern from "<sched.h>" nogil:
    int sched_yield()

cdef extern from "<sys/epoll.h>" nogil:
    ctypedef union epoll_data_t:
        uint64_t u64
    struct epoll_event:
        uint32_t events
        epoll_data_t data
    int epoll_create1(int)
    int epoll_ctl(int, int, int, epoll_event*)
    int epoll_wait(int, epoll_event*, int, int)
    enum:
        EPOLLIN
        EPOLL_CTL_ADD
        EPOLL_CTL_DEL
        EPOLL_CLOEXEC

cdef extern from "<sys/eventfd.h>" nogil:
    int eventfd(unsigned int, int)
    enum:
        EFD_NONBLOCK
        EFD_CLOEXEC

cdef extern from "<sys/timerfd.h>" nogil:
    struct itimerspec:
        timespec it_interval
        timespec it_value
    int timerfd_create(int, int)
    int timerfd_settime(int, int, itimerspec*, itimerspec*)
    enum:
        TFD_NONBLOCK
        TFD_CLOEXEC

cdef extern from "<sys/uio.h>" nogil:
    struct iovec:
        void* iov_base
        size_t iov_len

cdef extern from "<netinet/in.h>" nogil:
    struct in_addr:
        uint32_t s_addr
    struct sockaddr_in:
        int sin_family
        uint16_t sin_port
        in_addr sin_addr
    uint16_t htons(uint16_t)
    uint16_t ntohs(uint16_t)
    uint32_t htonl(uint32_t)
    uint32_t ntohl(uint32_t)

cdef extern from "<sys/socket.h>" nogil:
    ctypedef unsigned int socklen_t
    struct sockaddr:
        pass
    struct msghdr:
        void* msg_name
        socklen_t msg_namelen
        iovec* msg_iov
        size_t msg_iovlen
        void* msg_control
        size_t msg_controllen
        int msg_flags
    struct mmsghdr:
        msghdr msg_hdr
        unsigned int msg_len
    int socket(int, int, int)
    int bind(int, sockaddr*, socklen_t)
    ssize_t sendto(int, const void*, size_t, int, sockaddr*, socklen_t)
    int recvmmsg(int, mmsghdr*, unsigned int, int, timespec*)
    int sendmmsg(int, mmsghdr*, unsigned int, int)
    enum:
        AF_INET
        SOCK_DGRAM
        SOCK_NONBLOCK
        SOCK_CLOEXEC
        MSG_DONTWAIT

cdef extern from *:
    """
    static inline void me_atomic_inc(int *p) { __atomic_add_fetch(p, 1, __ATOMIC_SEQ_CST); }
    static inline void me_atomic_dec(int *p) { __atomic_sub_fetch(p, 1, __ATOMIC_SEQ_CST); }
    static inline int me_atomic_load(int *p) { return __atomic_load_n(p, __ATOMIC_SEQ_CST); }
    static inline uint16_t me_get16(const unsigned char *p) { return (uint16_t)((p[0] << 8) | p[1]); }
    static inline uint32_t me_get32(const unsigned char *p) {
        return ((uint32_t)p[0] << 24) | ((uint32_t)p[1] << 16) | ((uint32_t)p[2] << 8) | p[3];
    }
    static inline void me_put16(unsigned char *p, uint16_t v) { p[0] = v >> 8; p[1] = v & 0xFF; }
    static inline void me_put32(unsigned char *p, uint32_t v) {
        p[0] = v >> 24; p[1] = (v >> 16) & 0xFF; p[2] = (v >> 8) & 0xFF; p[3] = v & 0xFF;
    }
    """
    void me_atomic_inc(int*) noexcept nogil
    void me_atomic_dec(int*) noexcept nogil
    int me_atomic_load(int*) noexcept nogil
    uint16_t me_get16(const unsigned char*) noexcept nogil
    uint32_t me_get32(const unsigned char*) noexcept nogil
    void me_put16(unsigned char*, uint16_t) noexcept nogil
    void me_put32(unsigned char*, uint32_t) noexcept nogil


# --- constants ------------------------------------------------------------------------

cdef extern from *:
    """
    #define ME_RECV_BATCH 64
    #define ME_PACKET_BYTES 2048
    #define ME_TAG_WAKE 0xFFFFFFFF00000001ULL
    #define ME_TAG_TIMER 0xFFFFFFFF00000002ULL
    """
    enum:
        RECV_BATCH "ME_RECV_BATCH"
        PACKET_BYTES "ME_PACKET_BYTES"
    const uint64_t TAG_WAKE "ME_TAG_WAKE"
    const uint64_t TAG_TIMER "ME_TAG_TIMER"

cdef enum:
    MAX_EPOLL = 256
    FRAME = 160
    TICK_NS = 20000000
    NS_PER_SAMPLE = 125000
    MAX_EVENTS = 4096
    SAMPLE_RATE = 8000

cdef enum:
    EV_DTMF = 1
    EV_TIMEOUT = 2
    EV_PLAY_DONE = 3
    EV_LATCHED = 4

cdef int16_t ULAW_DEC[256]
cdef int16_t ALAW_DEC[256]
cdef const char* RFC4733_KEYS = b"0123456789*#ABCD"


# --- G.711: cython_ext.g711's nogil inline functions -------------------------------

cdef void _init_tables():
    cdef int c
    for c in range(256):
        ULAW_DEC[c] = ulaw_to_linear(<uint8_t>c)
        ALAW_DEC[c] = alaw_to_linear(<uint8_t>c)


_init_tables()


# --- engine state ---------------------------------------------------------------------

cdef struct Leg:
    int used
    int64_t id
    int fd
    int port
    int has_remote
    sockaddr_in remote
    int latched
    int peer  # slot, -1 when not connected
    int codec
    int te_pt  # -1: none
    # outgoing stream
    uint32_t ssrc
    uint16_t out_seq
    uint32_t out_ts
    int64_t out_last_ns
    int out_started
    int resync
    int has_src
    uint32_t src_ssrc
    uint16_t seq_off
    uint32_t ts_off
    # counters and RFC 3550 receive state (of the current source; earlier sources'
    # loss and late packets are carried in *_before)
    uint64_t packets_in, packets_out, bytes_in, bytes_out, dropped
    int has_rx
    uint32_t rx_ssrc
    RxStatsC rx
    int64_t lost_before
    int64_t late_before
    int64_t last_rx_ns
    int64_t activity_ns
    int timed_out
    # RFC 4733: cython_ext.dtmf.rfc4733.TelephoneEventReceiver's state
    int te_started
    uint32_t te_ts
    int te_event
    int te_duration
    int te_ended
    int te_open  # a press not reported yet
    # in-band DTMF: borrowed from MediaEngine.detectors, NULL when off
    PyObject* dtmf
    # playback (encoded payload, a whole number of frames)
    uint8_t* play_buf
    size_t play_len
    size_t play_pos
    int play_loop
    int64_t play_id
    int playing
    int play_first
    # recording ring (absolute sample positions since rec_start_ns)
    int recording
    int16_t* rec
    int64_t rec_cap
    int64_t rec_read, rec_write
    int64_t rec_start_ns
    int rec_based
    int64_t rec_base_pos
    uint32_t rec_base_ts
    uint32_t rec_ssrc


cdef struct Event:
    int kind
    int64_t leg
    char digit
    int duration_ms
    int inband
    int64_t play_id
    uint32_t ip  # network order
    uint16_t port


cdef struct Engine:
    pthread_mutex_t lock
    int waiters
    int epfd, wake_fd, event_fd, timer_fd
    int stopping
    int latch
    int64_t timeout_ns
    int64_t rec_cap
    Leg* legs
    int nlegs
    int active
    Event* events
    int nevents
    int signalled
    uint64_t events_dropped
    uint64_t packets_relayed, bytes_relayed, packets_dropped
    uint64_t syscalls_recv, syscalls_send, loop_iterations, commands
    # receive batch (reused every time)
    mmsghdr rmsg[RECV_BATCH]
    iovec riov[RECV_BATCH]
    sockaddr_in raddr[RECV_BATCH]
    unsigned char rbuf[RECV_BATCH][PACKET_BYTES]
    mmsghdr smsg[RECV_BATCH]
    iovec siov[RECV_BATCH]


cdef inline int64_t now_ns() noexcept nogil:
    cdef timespec t
    clock_gettime(CLOCK_MONOTONIC, &t)
    return <int64_t>t.tv_sec * 1000000000 + t.tv_nsec


cdef inline void lock_from_python(Engine* e) noexcept nogil:
    me_atomic_inc(&e.waiters)
    pthread_mutex_lock(&e.lock)
    me_atomic_dec(&e.waiters)


cdef void emit(Engine* e, int kind, Leg* leg, char digit, int duration_ms, int inband,
               int64_t play_id, uint32_t ip, uint16_t port) noexcept nogil:
    cdef uint64_t one = 1
    cdef Event* ev
    if e.nevents >= MAX_EVENTS:
        e.events_dropped += 1
        return
    ev = &e.events[e.nevents]
    e.nevents += 1
    ev.kind = kind
    ev.leg = leg.id
    ev.digit = digit
    ev.duration_ms = duration_ms
    ev.inband = inband
    ev.play_id = play_id
    ev.ip = ip
    ev.port = port
    if not e.signalled:
        e.signalled = 1
        write(e.event_fd, &one, 8)


cdef inline void drop(Engine* e, Leg* leg) noexcept nogil:
    leg.dropped += 1
    e.packets_dropped += 1


cdef inline int64_t leg_lost(Leg* leg) noexcept nogil:
    cdef int64_t lost = rxstats_lost(&leg.rx)
    return leg.lost_before + (lost if lost > 0 else 0)


cdef inline int64_t leg_late(Leg* leg) noexcept nogil:
    return leg.late_before + leg.rx.out_of_order + leg.rx.rejected


# --- per packet -----------------------------------------------------------------------

cdef void receive_stats(Leg* leg, const RtpHeaderC* h, int64_t now, bint for_jitter) noexcept nogil:
    """RFC 3550 A.1/A.3/A.8 by ``cython_ext.rtp``, per source, summed over the call.

    A new SSRC starts a fresh ``RxStatsC``; a confirmed sequence restart restarts the
    kernel's count: the loss counted up to either is kept in ``lost_before``.
    Telephone-event packets count for the sequence but not for jitter (their timestamp
    is the event's start), so their jitter sample is undone."""
    cdef RxStatsC keep
    cdef int64_t lost, restarts
    if not leg.has_rx or h.ssrc != leg.rx_ssrc:
        leg.lost_before = leg_lost(leg)
        leg.late_before = leg_late(leg)
        leg.has_rx = 1
        leg.rx_ssrc = h.ssrc
        rxstats_init(&leg.rx, SAMPLE_RATE, 1)
    lost = rxstats_lost(&leg.rx)
    restarts = leg.rx.restarts
    if for_jitter:
        if not rxstats_update(&leg.rx, h.seq, h.ts, now * 1e-9):
            return
    else:
        keep = leg.rx
        if not rxstats_update(&leg.rx, h.seq, h.ts, now * 1e-9):
            return
        leg.rx.jitter = keep.jitter
        leg.rx.have_transit = keep.have_transit and leg.rx.restarts == restarts
        leg.rx.last_arrival_s = keep.last_arrival_s
        leg.rx.last_ts = keep.last_ts
    if leg.rx.restarts != restarts and lost > 0:
        leg.lost_before += lost


cdef inline void te_press(Engine* e, Leg* leg) noexcept nogil:
    emit(e, EV_DTMF, leg, RFC4733_KEYS[leg.te_event], leg.te_duration * 1000 // SAMPLE_RATE,
         0, 0, 0, 0)


cdef void rfc4733(Engine* e, Leg* leg, const unsigned char* p, int n, uint32_t ts) noexcept nogil:
    """``TelephoneEventReceiver.feed`` (cython_ext.dtmf.rfc4733) without the GIL: one
    event per press, on its first end packet; a press whose end packets were lost is
    reported when the next one starts; late packets of earlier presses are ignored."""
    cdef int event, duration, ended, unfinished
    if n < 4:
        return
    event = p[0]
    if event >= 16:
        return
    ended = (p[1] & 0x80) != 0
    duration = me_get16(p + 2)
    if leg.te_started:
        if ts == leg.te_ts:
            if duration > leg.te_duration:
                leg.te_duration = duration
            leg.te_ended = leg.te_ended or ended
            if leg.te_ended and leg.te_open:
                leg.te_open = 0
                te_press(e, leg)
            return
        if <uint32_t>(ts - leg.te_ts) >= 0x80000000U:
            return  # late packet of an earlier press
    unfinished = leg.te_open
    if unfinished:
        te_press(e, leg)
    leg.te_started = 1
    leg.te_ts = ts
    leg.te_event = event
    leg.te_duration = duration
    leg.te_ended = ended
    leg.te_open = 1
    if not unfinished and ended:  # after an unfinished one: reported by the next end packet
        leg.te_open = 0
        te_press(e, leg)


cdef void take_inband(Engine* e, Leg* leg) noexcept with gil:
    """Turn the detector's finished presses into events (the GIL: ``take()`` is Python)."""
    try:
        for tone in (<DtmfDetector>leg.dtmf).take():
            emit(e, EV_DTMF, leg, <char>ord(tone.digit),
                 tone.duration_samples * 1000 // SAMPLE_RATE, 1, 0, 0, 0)
    except BaseException:  # MemoryError: the presses are lost, the relay goes on
        e.events_dropped += 1


cdef void record(Leg* leg, const int16_t* x, Py_ssize_t n, uint32_t ts, uint32_t ssrc,
                 int64_t now) noexcept nogil:
    cdef int64_t wall = (now - leg.rec_start_ns) // NS_PER_SAMPLE
    cdef int64_t pos = 0, new_write, lo, p
    cdef Py_ssize_t i
    if leg.rec_based and ssrc == leg.rec_ssrc:
        pos = leg.rec_base_pos + <int32_t>(ts - leg.rec_base_ts)
        if pos > leg.rec_write + 10 * 8000 or pos < leg.rec_write - 8000:
            leg.rec_based = 0
    if not leg.rec_based or ssrc != leg.rec_ssrc:
        pos = wall if wall > leg.rec_write else leg.rec_write
        leg.rec_based = 1
        leg.rec_ssrc = ssrc
        leg.rec_base_pos = pos
        leg.rec_base_ts = ts
    if pos + n <= leg.rec_read:
        return
    new_write = pos + n if pos + n > leg.rec_write else leg.rec_write
    lo = new_write - leg.rec_cap
    if lo < leg.rec_read:
        lo = leg.rec_read
    p = leg.rec_write if leg.rec_write > lo else lo
    while p < pos:  # a gap: silence
        leg.rec[p % leg.rec_cap] = 0
        p += 1
    for i in range(n):
        p = pos + i
        if p >= lo:
            leg.rec[p % leg.rec_cap] = x[i]
    leg.rec_write = new_write
    leg.rec_read = lo


cdef void next_out(Leg* leg, int64_t now, uint16_t* seq, uint32_t* ts) noexcept nogil:
    """Seq/ts for the first packet of a new source in ``leg``'s outgoing stream."""
    cdef int64_t frames
    if not leg.out_started:
        seq[0] = leg.out_seq
        ts[0] = leg.out_ts
        return
    frames = (now - leg.out_last_ns + TICK_NS // 2) // TICK_NS
    if frames < 1:
        frames = 1
    seq[0] = <uint16_t>(leg.out_seq + 1)
    ts[0] = <uint32_t>(leg.out_ts + frames * FRAME)


cdef int packet(Engine* e, Leg* leg, unsigned char* d, Py_ssize_t size, sockaddr_in* src,
                int64_t now) noexcept nogil:
    """Handle one datagram; 1 when its header was rewritten for the peer (send it)."""
    cdef int is_te, marker = 0
    cdef uint32_t seq, ts, ssrc
    cdef RtpHeaderC h
    cdef const unsigned char* payload
    cdef Py_ssize_t n, i
    cdef int16_t pcm[PACKET_BYTES]
    cdef const int16_t* table
    cdef Leg* peer
    cdef uint16_t seq_to, out_seq
    cdef uint32_t ts_to, out_ts
    leg.packets_in += 1
    leg.bytes_in += size
    if e.latch:
        if not leg.latched:
            leg.latched = 1
            leg.has_remote = 1
            leg.remote.sin_family = AF_INET
            leg.remote.sin_addr.s_addr = src.sin_addr.s_addr
            leg.remote.sin_port = src.sin_port
            emit(e, EV_LATCHED, leg, 0, 0, 0, 0, src.sin_addr.s_addr, ntohs(src.sin_port))
        elif src.sin_addr.s_addr != leg.remote.sin_addr.s_addr or src.sin_port != leg.remote.sin_port:
            drop(e, leg)
            return 0
    leg.last_rx_ns = now
    leg.activity_ns = now
    leg.timed_out = 0
    if rtp_parse_header(d, size, &h) != RTP_OK:  # not RTP, or a malformed header
        drop(e, leg)
        return 0
    if 72 <= h.pt <= 76:  # multiplexed RTCP (RFC 5761): not relayed
        drop(e, leg)
        return 0
    seq = h.seq
    ts = h.ts
    ssrc = h.ssrc
    is_te = h.pt == leg.te_pt
    receive_stats(leg, &h, now, not is_te)
    if h.payload_len > 0 and (is_te or leg.recording or leg.dtmf != NULL):
        payload = d + h.header_len
        n = h.payload_len
        if is_te:
            rfc4733(e, leg, payload, h.payload_len, ts)
        elif h.pt == 0 or h.pt == 8:
            if h.pt == 0:
                table = &ULAW_DEC[0]
            else:
                table = &ALAW_DEC[0]
            for i in range(n):
                pcm[i] = table[payload[i]]
            if leg.recording:
                record(leg, pcm, n, ts, ssrc, now)
            if leg.dtmf != NULL and (<DtmfDetector>leg.dtmf).feed_samples(pcm, <int>n) > 0:
                take_inband(e, leg)
    # relay
    if leg.peer < 0:
        drop(e, leg)
        return 0
    peer = &e.legs[leg.peer]
    if not peer.has_remote or peer.playing:
        drop(e, leg)
        return 0
    if peer.resync or not peer.has_src or ssrc != peer.src_ssrc:
        next_out(peer, now, &seq_to, &ts_to)
        peer.seq_off = <uint16_t>(seq_to - seq)
        peer.ts_off = ts_to - ts
        peer.src_ssrc = ssrc
        peer.has_src = 1
        peer.resync = 0
        marker = 0x80
    out_seq = <uint16_t>(seq + peer.seq_off)
    out_ts = ts + peer.ts_off
    d[1] = d[1] | marker
    me_put16(d + 2, out_seq)
    me_put32(d + 4, out_ts)
    me_put32(d + 8, peer.ssrc)
    if <int16_t>(out_seq - peer.out_seq) > 0 or not peer.out_started:
        peer.out_seq = out_seq
    if <int32_t>(out_ts - peer.out_ts) > 0 or not peer.out_started:
        peer.out_ts = out_ts
    peer.out_last_ns = now
    peer.out_started = 1
    return 1


cdef void handle_leg(Engine* e, int slot) noexcept nogil:
    cdef Leg* leg = &e.legs[slot]
    cdef Leg* peer
    cdef int got, i, nsend = 0, sent, r
    cdef int64_t now
    if not leg.used:
        return  # released after epoll_wait returned
    for i in range(RECV_BATCH):
        e.rmsg[i].msg_hdr.msg_namelen = sizeof(sockaddr_in)
        e.rmsg[i].msg_hdr.msg_flags = 0
    got = recvmmsg(leg.fd, e.rmsg, RECV_BATCH, MSG_DONTWAIT, NULL)
    e.syscalls_recv += 1
    if got <= 0:
        return
    now = now_ns()
    for i in range(got):
        if packet(e, leg, e.rbuf[i], e.rmsg[i].msg_len, &e.raddr[i], now):
            e.siov[nsend].iov_base = e.rbuf[i]
            e.siov[nsend].iov_len = e.rmsg[i].msg_len
            nsend += 1
    if nsend == 0:
        return
    peer = &e.legs[leg.peer]  # packet() returns 1 only with a peer
    for i in range(nsend):
        e.smsg[i].msg_hdr.msg_name = &peer.remote
        e.smsg[i].msg_hdr.msg_namelen = sizeof(sockaddr_in)
        e.smsg[i].msg_hdr.msg_iov = &e.siov[i]
        e.smsg[i].msg_hdr.msg_iovlen = 1
        e.smsg[i].msg_hdr.msg_control = NULL
        e.smsg[i].msg_hdr.msg_controllen = 0
        e.smsg[i].msg_hdr.msg_flags = 0
    sent = 0
    while sent < nsend:
        r = sendmmsg(peer.fd, &e.smsg[sent], nsend - sent, MSG_DONTWAIT)
        e.syscalls_send += 1
        if r < 0:
            if errno == EAGAIN or errno == EINTR:
                break  # full send buffer: late RTP is worthless, drop the rest
            drop(e, leg)  # this datagram failed (e.g. unreachable); go on with the next
            sent += 1
            continue
        for i in range(sent, sent + r):
            peer.packets_out += 1
            peer.bytes_out += e.siov[i].iov_len
            e.packets_relayed += 1
            e.bytes_relayed += e.siov[i].iov_len
        sent += r
    while sent < nsend:
        drop(e, leg)
        sent += 1


# --- per tick -------------------------------------------------------------------------

cdef void end_play(Leg* leg) noexcept nogil:
    if leg.playing:
        leg.playing = 0
        free(leg.play_buf)
        leg.play_buf = NULL
        leg.play_len = 0
        leg.resync = 1  # the peer's stream continues after our prompt


cdef void play_frame(Engine* e, Leg* leg, int64_t now) noexcept nogil:
    cdef unsigned char pkt[12 + FRAME]
    cdef uint16_t seq
    cdef uint32_t ts
    cdef int marker = 0
    cdef int64_t play_id
    if leg.play_first:
        next_out(leg, now, &seq, &ts)
        marker = 0x80
    else:
        seq = <uint16_t>(leg.out_seq + 1)
        ts = leg.out_ts + FRAME
    leg.play_first = 0
    leg.out_seq = seq
    leg.out_ts = ts
    leg.out_last_ns = now
    leg.out_started = 1
    if leg.has_remote:
        pkt[0] = 0x80
        pkt[1] = marker | leg.codec
        me_put16(pkt + 2, seq)
        me_put32(pkt + 4, ts)
        me_put32(pkt + 8, leg.ssrc)
        memcpy(pkt + 12, leg.play_buf + leg.play_pos, FRAME)
        e.syscalls_send += 1
        if sendto(leg.fd, pkt, 12 + FRAME, MSG_DONTWAIT, <sockaddr*>&leg.remote,
                  sizeof(sockaddr_in)) >= 0:
            leg.packets_out += 1
            leg.bytes_out += 12 + FRAME
    leg.play_pos += FRAME
    if leg.play_pos >= leg.play_len:
        if leg.play_loop:
            leg.play_pos = 0
        else:
            play_id = leg.play_id
            end_play(leg)
            emit(e, EV_PLAY_DONE, leg, 0, 0, 0, play_id, 0, 0)


cdef void tick(Engine* e, int64_t now) noexcept nogil:
    cdef int slot
    cdef Leg* leg
    for slot in range(e.nlegs):
        leg = &e.legs[slot]
        if not leg.used:
            continue
        if leg.playing:
            play_frame(e, leg, now)
        if not leg.timed_out and now - leg.activity_ns >= e.timeout_ns:
            leg.timed_out = 1
            emit(e, EV_TIMEOUT, leg, 0, 0, 0, 0, 0, 0)


cdef void run(Engine* e) noexcept nogil:
    cdef epoll_event evs[MAX_EPOLL]
    cdef int n, i, spins
    cdef uint64_t tag, value
    cdef int64_t now
    while True:
        n = epoll_wait(e.epfd, evs, MAX_EPOLL, -1)
        if n < 0:
            if errno == EINTR:
                continue
            return
        pthread_mutex_lock(&e.lock)
        if e.stopping:
            pthread_mutex_unlock(&e.lock)
            return
        e.loop_iterations += 1
        for i in range(n):
            tag = evs[i].data.u64
            if tag == TAG_WAKE:
                read(e.wake_fd, &value, 8)
            elif tag == TAG_TIMER:
                value = 0
                if read(e.timer_fd, &value, 8) == 8 and value > 0:
                    now = now_ns()
                    if value > 3:  # far behind (suspend, debugger): do not burst
                        value = 3
                    while value > 0:
                        tick(e, now)
                        value -= 1
            else:
                handle_leg(e, <int>tag)
        pthread_mutex_unlock(&e.lock)
        # A Python call waiting for the lock goes first (a busy loop would starve it).
        spins = 0
        while me_atomic_load(&e.waiters) > 0 and spins < 1000:
            sched_yield()
            spins += 1


# --- the Python object ----------------------------------------------------------------

cdef object _ip_str(uint32_t ip_n):
    cdef uint8_t* b = <uint8_t*>&ip_n
    return f"{b[0]}.{b[1]}.{b[2]}.{b[3]}"


cdef uint32_t _ipv4(str host, str what) except? 0:
    try:
        address = ipaddress.ip_address(host)
        if address.version != 4:
            raise ValueError
    except ValueError:
        raise MediaError(f"{what} must be an IPv4 literal, got {host!r}") from None
    return htonl(<uint32_t>int(address))


cdef dict _stats_dict(Leg* leg, int64_t now):
    return {
        "packets_in": leg.packets_in,
        "packets_out": leg.packets_out,
        "bytes_in": leg.bytes_in,
        "bytes_out": leg.bytes_out,
        "lost": leg_lost(leg),
        "late": leg_late(leg),
        "jitter_ms": rxstats_jitter_ms(&leg.rx),
        "last_rx_age_s": (now - leg.last_rx_ns) / 1e9 if leg.last_rx_ns else None,
        "dropped": leg.dropped,
        "remote": (_ip_str(leg.remote.sin_addr.s_addr), ntohs(leg.remote.sin_port)) if leg.has_remote else None,
    }


cdef class MediaEngine:
    """All RTP legs of the edge, served by one native thread."""

    cdef Engine* e
    cdef readonly str host
    cdef readonly int port_min, port_max
    cdef uint32_t ip_n
    cdef int first_port, nports, next_port
    cdef int64_t next_id
    cdef dict slots
    cdef dict detectors  # leg id -> DtmfDetector, for the legs with in-band detection on
    cdef object thread
    cdef bint closed

    def __cinit__(self):
        self.e = NULL

    def __init__(self, str host, int port_min, int port_max, *, double rtp_timeout_s=30.0,
                 bint latch=True, double record_buffer_s=60.0):
        cdef int i
        cdef epoll_event ev
        self.ip_n = _ipv4(host, "media host")
        if not 0 < port_min <= port_max <= 65535:
            raise ValueError(f"bad RTP port range {port_min}-{port_max}")
        first_even = port_min + (port_min % 2)
        if first_even + 1 > port_max:
            raise ValueError(f"RTP port range {port_min}-{port_max} has no even/odd port pair")
        self.host = host
        self.port_min = port_min
        self.port_max = port_max
        self.first_port = first_even
        self.nports = len(range(first_even, port_max, 2))
        self.next_port = 0
        self.next_id = 1
        self.slots = {}
        self.detectors = {}
        self.thread = None
        self.closed = False
        self.e = <Engine*>calloc(1, sizeof(Engine))
        if self.e == NULL:
            raise MemoryError()
        self.e.legs = <Leg*>calloc(self.nports, sizeof(Leg))
        self.e.events = <Event*>calloc(MAX_EVENTS, sizeof(Event))
        if self.e.legs == NULL or self.e.events == NULL:
            raise MemoryError()
        self.e.nlegs = self.nports
        self.e.latch = latch
        self.e.timeout_ns = <int64_t>(rtp_timeout_s * 1e9)
        self.e.rec_cap = <int64_t>(record_buffer_s * 8000)
        if self.e.rec_cap < FRAME:
            self.e.rec_cap = FRAME
        pthread_mutex_init(&self.e.lock, NULL)
        self.e.epfd = epoll_create1(EPOLL_CLOEXEC)
        self.e.wake_fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC)
        self.e.event_fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC)
        self.e.timer_fd = timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK | TFD_CLOEXEC)
        if self.e.epfd < 0 or self.e.wake_fd < 0 or self.e.event_fd < 0 or self.e.timer_fd < 0:
            raise OSError(errno, os.strerror(errno))
        ev.events = EPOLLIN
        ev.data.u64 = TAG_WAKE
        epoll_ctl(self.e.epfd, EPOLL_CTL_ADD, self.e.wake_fd, &ev)
        ev.data.u64 = TAG_TIMER
        epoll_ctl(self.e.epfd, EPOLL_CTL_ADD, self.e.timer_fd, &ev)
        for i in range(RECV_BATCH):
            self.e.riov[i].iov_base = self.e.rbuf[i]
            self.e.riov[i].iov_len = PACKET_BYTES
            self.e.rmsg[i].msg_hdr.msg_name = &self.e.raddr[i]
            self.e.rmsg[i].msg_hdr.msg_namelen = sizeof(sockaddr_in)
            self.e.rmsg[i].msg_hdr.msg_iov = &self.e.riov[i]
            self.e.rmsg[i].msg_hdr.msg_iovlen = 1

    def __dealloc__(self):
        if self.e != NULL:
            if not self.closed:
                self._close_all()
            pthread_mutex_destroy(&self.e.lock)
            free(self.e.legs)
            free(self.e.events)
            free(self.e)
            self.e = NULL

    cdef void _close_all(self) noexcept:
        cdef int slot
        for slot in range(self.e.nlegs):
            if self.e.legs[slot].used:
                self._free_leg(&self.e.legs[slot])
        if self.detectors:
            self.detectors.clear()
        for fd in (self.e.epfd, self.e.wake_fd, self.e.event_fd, self.e.timer_fd):
            if fd >= 0:
                close(fd)
        self.e.epfd = self.e.wake_fd = self.e.event_fd = self.e.timer_fd = -1
        self.e.active = 0
        self.closed = True

    cdef void _free_leg(self, Leg* leg) noexcept nogil:
        if leg.peer >= 0:
            self.e.legs[leg.peer].peer = -1
            self.e.legs[leg.peer].resync = 1
            leg.peer = -1
        epoll_ctl(self.e.epfd, EPOLL_CTL_DEL, leg.fd, NULL)
        close(leg.fd)
        free(leg.play_buf)
        free(leg.rec)
        memset(leg, 0, sizeof(Leg))
        leg.peer = -1
        self.e.active -= 1

    # --- lifecycle -----------------------------------------------------------------------

    def start(self) -> None:
        cdef itimerspec spec
        self._check_open()
        if self.thread is not None:
            raise MediaError("media engine already started")
        memset(&spec, 0, sizeof(spec))
        spec.it_interval.tv_nsec = TICK_NS
        spec.it_value.tv_nsec = TICK_NS
        timerfd_settime(self.e.timer_fd, 0, &spec, NULL)
        self.thread = threading.Thread(target=self._run, name="media-engine", daemon=True)
        self.thread.start()

    def _run(self) -> None:
        with nogil:
            run(self.e)

    def stop(self) -> None:
        cdef uint64_t one = 1
        if self.closed:
            return
        with nogil:
            lock_from_python(self.e)
            self.e.stopping = 1
            pthread_mutex_unlock(&self.e.lock)
            write(self.e.wake_fd, &one, 8)
        if self.thread is not None:
            self.thread.join()
        self._close_all()

    def fileno(self) -> int:
        return self.e.event_fd

    def read_events(self) -> list:
        cdef uint64_t value
        cdef Event* copy
        cdef Event* ev
        cdef int n, i
        if self.closed:
            return []
        read(self.e.event_fd, &value, 8)  # first: a later event signals again
        with nogil:
            lock_from_python(self.e)
        n = self.e.nevents
        copy = <Event*>malloc(max(n, 1) * sizeof(Event))
        if copy == NULL:
            pthread_mutex_unlock(&self.e.lock)
            raise MemoryError()
        memcpy(copy, self.e.events, n * sizeof(Event))
        self.e.nevents = 0
        self.e.signalled = 0
        pthread_mutex_unlock(&self.e.lock)
        out = []
        try:
            for i in range(n):
                ev = &copy[i]
                if ev.kind == EV_DTMF:
                    out.append(("dtmf", ev.leg, chr(ev.digit), ev.duration_ms,
                                "inband" if ev.inband else "rfc4733"))
                elif ev.kind == EV_TIMEOUT:
                    out.append(("timeout", ev.leg))
                elif ev.kind == EV_PLAY_DONE:
                    out.append(("play_done", ev.leg, ev.play_id))
                else:
                    out.append(("latched", ev.leg, _ip_str(ev.ip), ev.port))
        finally:
            free(copy)
        return out

    # --- legs ------------------------------------------------------------------------------

    cdef void _check_open(self) except *:
        if self.closed or self.e.stopping:
            raise MediaError("media engine is stopped")

    cdef Leg* _lock_leg(self, leg_id) except NULL:
        """The leg, with the engine lock held (the caller unlocks)."""
        self._check_open()
        slot = self.slots.get(leg_id)
        if slot is None:
            raise MediaError(f"leg {leg_id} is not active on this engine")
        with nogil:
            lock_from_python(self.e)
        self.e.commands += 1
        return &self.e.legs[<int>slot]

    cdef void _unlock(self) noexcept nogil:
        pthread_mutex_unlock(&self.e.lock)

    def allocate_leg(self) -> tuple:
        cdef int fd, port, slot, err
        cdef sockaddr_in sa
        cdef epoll_event ev
        cdef Leg* leg
        self._check_open()
        for _ in range(self.nports):
            port = self.first_port + 2 * self.next_port
            self.next_port = (self.next_port + 1) % self.nports
            fd = socket(AF_INET, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0)
            if fd < 0:
                raise MediaError(f"cannot open an RTP socket: {os.strerror(errno)}")
            memset(&sa, 0, sizeof(sa))
            sa.sin_family = AF_INET
            sa.sin_port = htons(port)
            sa.sin_addr.s_addr = self.ip_n
            if bind(fd, <sockaddr*>&sa, sizeof(sa)) < 0:
                err = errno
                close(fd)
                if err == EADDRINUSE or err == EACCES:
                    continue
                raise MediaError(f"cannot bind RTP socket {self.host}:{port}: {os.strerror(err)}")
            leg_id = self.next_id
            self.next_id += 1
            ssrc, seq, ts = random.getrandbits(32), random.getrandbits(16), random.getrandbits(32)
            with nogil:
                lock_from_python(self.e)
            self.e.commands += 1
            slot = 0
            while self.e.legs[slot].used:
                slot += 1  # there is a slot per port, so one is free
            leg = &self.e.legs[slot]
            memset(leg, 0, sizeof(Leg))
            leg.used = 1
            leg.id = leg_id
            leg.fd = fd
            leg.port = port
            leg.peer = -1
            leg.codec = 0
            leg.te_pt = 101
            leg.ssrc = ssrc
            leg.out_seq = seq
            leg.out_ts = ts
            leg.resync = 1
            rxstats_init(&leg.rx, SAMPLE_RATE, 1)
            leg.activity_ns = now_ns()
            ev.events = EPOLLIN
            ev.data.u64 = slot
            epoll_ctl(self.e.epfd, EPOLL_CTL_ADD, fd, &ev)
            self.e.active += 1
            self._unlock()
            self.slots[leg_id] = slot
            return leg_id, port
        raise MediaError(
            f"no free RTP port in {self.port_min}-{self.port_max} on {self.host}: "
            f"{len(self.slots)} legs active here, the other even ports are in use"
        )

    def set_remote(self, leg: int, host: str, port: int) -> None:
        cdef uint32_t ip_n = _ipv4(host, "media address")
        if not 0 < port <= 65535:
            raise MediaError(f"bad media port {port}")
        cdef Leg* one = self._lock_leg(leg)
        one.has_remote = 1
        one.remote.sin_family = AF_INET
        one.remote.sin_addr.s_addr = ip_n
        one.remote.sin_port = htons(port)
        one.latched = 0
        one.activity_ns = now_ns()
        self._unlock()

    def connect(self, a: int, b: int) -> None:
        if a == b:
            self._lock_leg(a)
            self._unlock()
            raise MediaError(f"cannot connect leg {a} to itself")
        if b not in self.slots:
            raise MediaError(f"leg {b} is not active on this engine")
        cdef Leg* la = self._lock_leg(a)
        cdef int sa = self.slots[a], sb = self.slots[b]
        cdef Leg* lb = &self.e.legs[sb]
        cdef int64_t now = now_ns()
        self._unpair(la)
        self._unpair(lb)
        la.peer = sb
        lb.peer = sa
        la.resync = lb.resync = 1
        la.activity_ns = lb.activity_ns = now
        self._unlock()

    cdef void _unpair(self, Leg* leg) noexcept nogil:
        if leg.peer >= 0:
            self.e.legs[leg.peer].peer = -1
            self.e.legs[leg.peer].resync = 1
            leg.peer = -1
        leg.resync = 1

    def disconnect(self, leg: int) -> None:
        cdef Leg* one = self._lock_leg(leg)
        self._unpair(one)
        self._unlock()

    def release(self, leg: int) -> dict:
        cdef Leg* one = self._lock_leg(leg)
        try:
            final = _stats_dict(one, now_ns())
            self._free_leg(one)
            del self.slots[leg]
        finally:
            self._unlock()
        self.detectors.pop(leg, None)  # the engine thread no longer sees it
        return final

    def stats(self, leg: int) -> dict:
        cdef Leg* one = self._lock_leg(leg)
        try:
            return _stats_dict(one, now_ns())
        finally:
            self._unlock()

    def set_codec(self, leg: int, payload_type: int, telephone_event_pt=101) -> None:
        if payload_type not in (0, 8):
            raise MediaError(f"unsupported payload type {payload_type} (0 PCMU or 8 PCMA)")
        if telephone_event_pt is not None and not 96 <= telephone_event_pt <= 127:
            raise MediaError(f"telephone-event payload type must be dynamic, got {telephone_event_pt}")
        cdef Leg* one = self._lock_leg(leg)
        one.codec = payload_type
        one.te_pt = -1 if telephone_event_pt is None else telephone_event_pt
        self._unlock()

    def play(self, leg: int, pcm16, *, loop: bool = False, play_id: int = 0) -> None:
        cdef const unsigned char[:] src = memoryview(pcm16).cast("B")
        cdef Py_ssize_t samples = src.shape[0] // 2, frames, i
        cdef int codec
        cdef uint8_t* coded
        cdef int16_t s
        cdef Leg* one = self._lock_leg(leg)
        codec = one.codec
        self._unlock()
        if samples == 0:
            raise MediaError("nothing to play")
        frames = (samples + FRAME - 1) // FRAME
        coded = <uint8_t*>malloc(frames * FRAME)
        if coded == NULL:
            raise MemoryError()
        with nogil:
            for i in range(samples):
                s = <int16_t>(src[2 * i] | (src[2 * i + 1] << 8))
                coded[i] = linear_to_ulaw(s) if codec == 0 else linear_to_alaw(s)
            memset(coded + samples, 0xFF if codec == 0 else 0xD5, frames * FRAME - samples)
        try:
            one = self._lock_leg(leg)
        except BaseException:
            free(coded)
            raise
        end_play(one)
        one.play_buf = coded
        one.play_len = frames * FRAME
        one.play_pos = 0
        one.play_loop = loop
        one.play_id = play_id
        one.playing = 1
        one.play_first = 1
        self._unlock()

    def stop_play(self, leg: int) -> None:
        cdef Leg* one = self._lock_leg(leg)
        end_play(one)
        self._unlock()

    def record(self, leg: int, on: bool) -> None:
        cdef Leg* one = self._lock_leg(leg)
        if on and one.rec == NULL:
            one.rec = <int16_t*>calloc(self.e.rec_cap, sizeof(int16_t))
            if one.rec == NULL:
                self._unlock()
                raise MemoryError()
            one.rec_cap = self.e.rec_cap
        if on and not one.recording and one.rec_start_ns == 0:
            one.rec_start_ns = now_ns()
        one.recording = on
        one.rec_based = 0  # after a pause the wall clock places the next packet
        self._unlock()

    def take_recording(self, leg: int) -> bytes:
        cdef Leg* one = self._lock_leg(leg)
        cdef int64_t n, first, p
        cdef int16_t* out
        try:
            n = one.rec_write - one.rec_read
            data = PyBytes_FromStringAndSize(NULL, 2 * n)
            out = <int16_t*>PyBytes_AS_STRING(data)
            if n > 0:
                first = one.rec_read % one.rec_cap
                p = one.rec_cap - first
                if p > n:
                    p = n
                memcpy(out, one.rec + first, p * 2)
                memcpy(out + p, one.rec, (n - p) * 2)
            one.rec_read = one.rec_write
        finally:
            self._unlock()
        return data

    def detect_dtmf(self, leg: int, inband: bool) -> None:
        cdef DtmfDetector detector = DtmfDetector(SAMPLE_RATE) if inband else None
        cdef Leg* one = self._lock_leg(leg)
        one.dtmf = <PyObject*>detector if detector is not None else NULL
        self._unlock()
        # Swapped after the unlock: the old detector, if any, is freed outside the lock.
        old = self.detectors.pop(leg, None)
        if detector is not None:
            self.detectors[leg] = detector
        del old

    def counters(self) -> dict:
        if self.closed:
            return {"legs": 0}
        with nogil:
            lock_from_python(self.e)
        try:
            return {
                "legs": self.e.active,
                "packets_relayed": self.e.packets_relayed,
                "bytes_relayed": self.e.bytes_relayed,
                "packets_dropped": self.e.packets_dropped,
                "syscalls_recv": self.e.syscalls_recv,
                "syscalls_send": self.e.syscalls_send,
                "loop_iterations": self.e.loop_iterations,
                "commands": self.e.commands,
                "events_dropped": self.e.events_dropped,
            }
        finally:
            pthread_mutex_unlock(&self.e.lock)
