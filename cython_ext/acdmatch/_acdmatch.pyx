# cython: language_level=3, boundscheck=False, wraparound=False, cdivision=True, embedsignature=True
"""ACD matcher, compiled: the hot-path twin of ``acdmatch_py``.

Same rules, same answers as the pure-Python reference (read that module's docstring for
the rules); the tests hold the two to identical output on random operation sequences.
Hand-written because the rules are ours and a decision must stay in the tens of
microseconds with 10 000 waiting calls and 2 000 agents.  State lives in C arrays of
structs addressed by slot number (Python dicts only map ids to slots):

* calls are grouped by (queue, required-skill bitset), each group an indexed binary
  heap of call slots by (key, arrival), so removal is O(log n);
* each group counts the available agents of its queue that cover its skills, updated
  when an agent's availability changes, so ``next_match`` compares the heads of the
  covered groups (a few hundred) and then scans the queue's available agents once;
* each queue keeps its available agents in an array (swap-remove, positions kept per
  agent membership), and its groups in another.
"""

from libc.math cimport isnan
from libc.stdint cimport int64_t, uint8_t, uint64_t
from libc.stdlib cimport free, realloc
from libc.string cimport memset

from cython_ext.acdmatch.acdmatch_py import MAX_PROFICIENCY, MAX_SKILLS, STRATEGIES

__all__ = ["IMPLEMENTATION", "MAX_PROFICIENCY", "MAX_SKILLS", "STRATEGIES", "Matcher"]

IMPLEMENTATION = "cython"

cdef extern from *:
    """
    static inline int acd_ctz64(unsigned long long x) { return __builtin_ctzll(x); }
    /* splitmix64's finaliser, as _mix64 in the twin */
    static inline unsigned long long acd_mix64(unsigned long long z) {
        z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
        z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
        return z ^ (z >> 31);
    }
    """
    int acd_ctz64(unsigned long long x) nogil
    unsigned long long acd_mix64(unsigned long long z) nogil

# Indexes into STRATEGIES.
cdef enum:
    LONGEST_IDLE = 0
    FEWEST_CALLS = 1
    ROUND_ROBIN = 2
    LINEAR = 3
    RANDOM = 4
    SKILLS = 5

cdef uint64_t GOLDEN = 0x9E3779B97F4A7C15ULL


ctypedef struct Call:
    double key  # enqueued_at - priority * ageing_s: smaller is served first
    int64_t seq  # arrival number: breaks key ties
    int64_t ident
    uint64_t skills
    int group  # group slot
    int pos  # index in the group's heap


ctypedef struct Group:
    int queue  # queue slot
    uint64_t skills
    int covering  # available agents of the queue that have all of ``skills``
    int *heap  # call slots
    int size
    int cap
    int qidx  # index in the queue's group list
    int aidx  # index in the matcher's active-group list


ctypedef struct Queue:
    int64_t ident
    int strategy
    int *avail  # agent slots
    int navail
    int cap_avail
    int *groups  # group slots
    int ngroups
    int cap_groups
    int64_t waiting
    bint rr_set  # round-robin memory: (order, id) of the last agent that answered
    int64_t rr_order
    int64_t rr_ident


ctypedef struct Agent:
    int64_t ident
    uint64_t skills
    uint8_t prof[64]
    int64_t order
    double since
    int64_t answered
    bint available
    int nq
    int *queues  # queue slots
    int *qpos  # index in each queue's avail array while available


ctypedef struct Slots:
    int *free
    int nfree
    int cap
    int used  # high-water mark


cdef int _grow(void **array, int *cap, int need, size_t size) except -1:
    """Make ``*array`` hold at least ``need`` items of ``size`` bytes."""
    cdef int n = cap[0] if cap[0] > 0 else 8
    cdef void *p
    if need <= cap[0]:
        return 0
    while n < need:
        n *= 2
    p = realloc(array[0], <size_t>n * size)
    if p == NULL:
        raise MemoryError()
    array[0] = p
    cap[0] = n
    return 0


cdef int _take_slot(Slots *s) noexcept nogil:
    if s.nfree:
        s.nfree -= 1
        return s.free[s.nfree]
    s.used += 1
    return s.used - 1


cdef int _give_slot(Slots *s, int slot) except -1:
    _grow(<void **>&s.free, &s.cap, s.nfree + 1, sizeof(int))
    s.free[s.nfree] = slot
    s.nfree += 1
    return 0


cdef inline bint _call_before(Call *a, Call *b) noexcept nogil:
    return a.key < b.key or (a.key == b.key and a.seq < b.seq)


cdef inline int64_t _proficiency(Agent *a, uint64_t need) noexcept nogil:
    cdef int64_t total = 0
    while need:
        total += a.prof[acd_ctz64(need)]
        need &= need - 1
    return total


cdef inline bint _rr_wrapped(Agent *a, Queue *q) noexcept nogil:
    """True if ``a`` is at or before the round-robin memory: it comes after the wrap."""
    return q.rr_set and (a.order < q.rr_order or (a.order == q.rr_order and a.ident <= q.rr_ident))


cdef bint _agent_before(
    int strategy, Queue *q, uint64_t need, uint64_t salt, Agent *x, Agent *y
) noexcept nogil:
    """Whether ``x`` ranks before ``y`` for a call needing ``need`` (the twin's _rank)."""
    cdef bint wx, wy
    cdef uint64_t hx, hy
    cdef int64_t px, py
    if strategy == LINEAR or strategy == ROUND_ROBIN:
        if strategy == ROUND_ROBIN:
            wx = _rr_wrapped(x, q)
            wy = _rr_wrapped(y, q)
            if wx != wy:
                return wy
        if x.order != y.order:
            return x.order < y.order
        return x.ident < y.ident
    if strategy == RANDOM:
        hx = acd_mix64(salt ^ <uint64_t>x.ident)
        hy = acd_mix64(salt ^ <uint64_t>y.ident)
        if hx != hy:
            return hx < hy
        return x.ident < y.ident
    if strategy == FEWEST_CALLS:
        if x.answered != y.answered:
            return x.answered < y.answered
    elif strategy == SKILLS:
        px = _proficiency(x, need)
        py = _proficiency(y, need)
        if px != py:
            return px > py
    if x.since != y.since:  # longest idle
        return x.since < y.since
    return x.ident < y.ident


cdef int _strategy_index(str strategy) except -1:
    if strategy not in STRATEGIES:
        raise ValueError(f"unknown strategy {strategy!r}; one of {', '.join(STRATEGIES)}")
    return STRATEGIES.index(strategy)


cdef uint64_t _bitset(object skills) except? 0:
    if not 0 <= skills <= 0xFFFFFFFFFFFFFFFF:
        raise ValueError(f"skills must be a 64-bit bitset, not {skills}")
    return <uint64_t>skills


cdef class Matcher:
    """Waiting calls, agents and the queues that join them; picks the next pair."""

    cdef double ageing_s
    cdef uint64_t salt
    cdef int64_t next_seq
    cdef Call *calls
    cdef int cap_calls
    cdef Slots call_slots
    cdef Group *groups
    cdef int cap_groups
    cdef Slots group_slots
    cdef Queue *queues
    cdef int cap_queues
    cdef int nqueues
    cdef Agent *agents
    cdef int cap_agents
    cdef Slots agent_slots
    cdef int *active  # slots of the groups that have calls
    cdef int nactive
    cdef int cap_active
    cdef dict call_slot  # call id -> slot
    cdef dict agent_slot  # agent id -> slot
    cdef dict queue_slot  # queue id -> slot
    cdef dict group_slot  # (queue slot, skills) -> slot

    def __cinit__(self):
        self.call_slot = {}
        self.agent_slot = {}
        self.queue_slot = {}
        self.group_slot = {}

    def __init__(self, *, double ageing_s=60.0, int64_t seed=0):
        if not ageing_s > 0.0 or ageing_s == float("inf"):
            raise ValueError(f"ageing_s must be positive and finite, not {ageing_s}")
        self.ageing_s = ageing_s
        self.salt = acd_mix64(<uint64_t>seed + GOLDEN)

    def __dealloc__(self):
        cdef int i
        for i in range(self.group_slots.used):
            free(self.groups[i].heap)
        for i in range(self.nqueues):
            free(self.queues[i].avail)
            free(self.queues[i].groups)
        for i in range(self.agent_slots.used):
            free(self.agents[i].queues)
            free(self.agents[i].qpos)
        free(self.calls)
        free(self.groups)
        free(self.queues)
        free(self.agents)
        free(self.active)
        free(self.call_slots.free)
        free(self.group_slots.free)
        free(self.agent_slots.free)

    # -- queues --------------------------------------------------------------------

    def add_queue(self, int64_t queue, str strategy):
        """Declare ``queue`` (or change its strategy, keeping its calls and agents)."""
        cdef int s = _strategy_index(strategy)
        cdef int slot
        cdef Queue *q
        if queue in self.queue_slot:
            self.queues[<int>self.queue_slot[queue]].strategy = s
            return
        slot = self.nqueues
        _grow(<void **>&self.queues, &self.cap_queues, slot + 1, sizeof(Queue))
        q = &self.queues[slot]
        memset(q, 0, sizeof(Queue))
        q.ident = queue
        q.strategy = s
        self.nqueues += 1
        self.queue_slot[queue] = slot

    # -- calls ---------------------------------------------------------------------

    def add_call(self, int64_t call, int64_t queue, *, int64_t priority, skills, double enqueued_at):
        """A caller starts waiting in ``queue``; ``skills`` is the bitset it needs."""
        cdef int qs = self.queue_slot[queue]
        cdef uint64_t need = _bitset(skills)
        cdef double key
        cdef int cs, gs
        cdef Group *g
        cdef Call *c
        if isnan(enqueued_at):
            raise ValueError("enqueued_at is NaN")
        key = enqueued_at - <double>priority * self.ageing_s
        if call in self.call_slot:
            raise ValueError(f"call {call} is already waiting")
        gs = self._group(qs, need)
        g = &self.groups[gs]
        cs = _take_slot(&self.call_slots)
        try:
            _grow(<void **>&g.heap, &g.cap, g.size + 1, sizeof(int))
            _grow(<void **>&self.calls, &self.cap_calls, self.call_slots.used, sizeof(Call))
        except MemoryError:
            _give_slot(&self.call_slots, cs)
            if g.size == 0:
                self._drop_group(gs)
            raise
        c = &self.calls[cs]
        c.key = key
        c.seq = self.next_seq
        c.ident = call
        c.skills = need
        c.group = gs
        self.next_seq += 1
        g.heap[g.size] = cs
        g.size += 1
        self._sift_up(g, g.size - 1)
        self.queues[qs].waiting += 1
        self.call_slot[call] = cs

    def remove_call(self, call):
        """Forget a waiting call (answered, abandoned, overflowed); False if unknown."""
        cdef object found = self.call_slot.pop(call, None)
        cdef int cs, gs, last, i
        cdef Group *g
        if found is None:
            return False
        cs = found
        gs = self.calls[cs].group
        g = &self.groups[gs]
        i = self.calls[cs].pos
        g.size -= 1
        if i < g.size:
            last = g.heap[g.size]
            g.heap[i] = last
            self.calls[last].pos = i
            self._sift_down(g, i)
            self._sift_up(g, self.calls[last].pos)
        self.queues[g.queue].waiting -= 1
        _give_slot(&self.call_slots, cs)
        if g.size == 0:
            self._drop_group(gs)
        return True

    def waiting(self, queue=None):
        """Calls waiting in ``queue``, or in all queues."""
        if queue is None:
            return len(self.call_slot)
        return self.queues[<int>self.queue_slot[queue]].waiting

    def position(self, call):
        """1-based place of ``call`` in its queue's serving order (O(calls))."""
        cdef int cs = self.call_slot[call]
        cdef Call *me = &self.calls[cs]
        cdef Queue *q = &self.queues[self.groups[me.group].queue]
        cdef Group *g
        cdef int i, j
        cdef int64_t ahead = 0
        for i in range(q.ngroups):
            g = &self.groups[q.groups[i]]
            for j in range(g.size):
                ahead += _call_before(&self.calls[g.heap[j]], me)
        return ahead + 1

    # -- agents --------------------------------------------------------------------

    def add_agent(self, int64_t agent, *, queues, skills, int64_t order=0):
        """An agent who serves ``queues`` with ``skills`` (index -> 1..10); unavailable."""
        cdef list served = []
        cdef uint8_t prof[64]
        cdef uint64_t bits = 0
        cdef int as_, i, skill, level
        cdef Agent *a
        cdef int64_t queue
        for queue in queues:
            slot = self.queue_slot[queue]
            if slot not in served:
                served.append(slot)
        memset(prof, 0, sizeof(prof))
        for skill_obj, level_obj in skills.items():
            if not 0 <= skill_obj < MAX_SKILLS:
                raise ValueError(f"skill index {skill_obj} is outside 0..{MAX_SKILLS - 1}")
            if not 1 <= level_obj <= MAX_PROFICIENCY:
                raise ValueError(f"proficiency {level_obj} is outside 1..{MAX_PROFICIENCY}")
            skill = skill_obj
            level = level_obj
            prof[skill] = level
            bits |= (<uint64_t>1) << skill
        if agent in self.agent_slot:
            raise ValueError(f"agent {agent} already exists")
        as_ = _take_slot(&self.agent_slots)
        try:
            _grow(<void **>&self.agents, &self.cap_agents, self.agent_slots.used, sizeof(Agent))
        except MemoryError:
            _give_slot(&self.agent_slots, as_)
            raise
        a = &self.agents[as_]
        memset(a, 0, sizeof(Agent))
        a.ident = agent
        a.skills = bits
        a.order = order
        for i in range(64):
            a.prof[i] = prof[i]
        a.nq = len(served)
        a.queues = NULL
        a.qpos = NULL
        i = 0
        _grow(<void **>&a.queues, &i, a.nq + 1, sizeof(int))
        i = 0
        _grow(<void **>&a.qpos, &i, a.nq + 1, sizeof(int))
        for i in range(a.nq):
            a.queues[i] = served[i]
            a.qpos[i] = -1
        self.agent_slot[agent] = as_

    def remove_agent(self, agent):
        """Forget an agent (logged out); KeyError if unknown."""
        cdef int as_ = self.agent_slot[agent]
        self._set_available(as_, False)
        free(self.agents[as_].queues)
        free(self.agents[as_].qpos)
        self.agents[as_].queues = NULL
        self.agents[as_].qpos = NULL
        self.agents[as_].nq = 0
        del self.agent_slot[agent]
        _give_slot(&self.agent_slots, as_)

    def set_available(self, agent, bint available, *, double since):
        """Mark an agent ready (idle since ``since``) or not ready / busy."""
        cdef int as_ = self.agent_slot[agent]
        if available:
            if isnan(since):
                raise ValueError("since is NaN")
            self.agents[as_].since = since
        self._set_available(as_, available)

    def note_answered(self, agent, *, queue=None):
        """The agent answered a call (from ``queue``, or: from any queue it serves)."""
        cdef int as_ = self.agent_slot[agent]
        cdef Agent *a = &self.agents[as_]
        cdef int i, qs = -1
        cdef Queue *q
        if queue is not None:
            qs = self.queue_slot[queue]
            for i in range(a.nq):
                if a.queues[i] == qs:
                    break
            else:
                raise ValueError(f"agent {agent} does not serve queue {queue}")
        a.answered += 1
        for i in range(a.nq):
            if qs < 0 or a.queues[i] == qs:
                q = &self.queues[a.queues[i]]
                q.rr_set = True
                q.rr_order = a.order
                q.rr_ident = a.ident

    # -- matching ------------------------------------------------------------------

    def next_match(self, double now):
        """The next (call, agent) pair, or None; changes nothing."""
        cdef int cs, as_
        with nogil:
            cs = self._best_call()
            if cs >= 0:
                as_ = self._pick(cs)
        if cs < 0:
            return None
        return self.calls[cs].ident, self.agents[as_].ident

    def candidates(self, call, double now):
        """Available agents able to take ``call``, in its queue's strategy order."""
        cdef int cs = self.call_slot[call]
        cdef Call *c = &self.calls[cs]
        cdef Queue *q = &self.queues[self.groups[c.group].queue]
        cdef uint64_t salt = acd_mix64(self.salt ^ <uint64_t>c.ident)
        cdef Agent *a
        cdef int i
        cdef list ranked = []
        for i in range(q.navail):
            a = &self.agents[q.avail[i]]
            if c.skills & ~a.skills:
                continue
            if q.strategy == LONGEST_IDLE:
                rank = (a.since, a.ident)
            elif q.strategy == FEWEST_CALLS:
                rank = (a.answered, a.since, a.ident)
            elif q.strategy == LINEAR:
                rank = (a.order, a.ident)
            elif q.strategy == ROUND_ROBIN:
                rank = (_rr_wrapped(a, q), a.order, a.ident)
            elif q.strategy == RANDOM:
                rank = (acd_mix64(salt ^ <uint64_t>a.ident), a.ident)
            else:
                rank = (-_proficiency(a, c.skills), a.since, a.ident)
            ranked.append((rank, a.ident))
        ranked.sort()
        return [ident for _, ident in ranked]

    # -- internals -----------------------------------------------------------------

    cdef int _best_call(self) noexcept nogil:
        """The first call, by key, of the groups that some available agent covers."""
        cdef int i, best = -1, head
        cdef Group *g
        for i in range(self.nactive):
            g = &self.groups[self.active[i]]
            if g.covering > 0:
                head = g.heap[0]
                if best < 0 or _call_before(&self.calls[head], &self.calls[best]):
                    best = head
        return best

    cdef int _pick(self, int cs) noexcept nogil:
        """The first eligible agent for call ``cs`` in its queue's strategy order."""
        cdef Call *c = &self.calls[cs]
        cdef Queue *q = &self.queues[self.groups[c.group].queue]
        cdef uint64_t need = c.skills
        cdef uint64_t salt = acd_mix64(self.salt ^ <uint64_t>c.ident)
        cdef int strategy = q.strategy
        cdef int i, best = -1
        cdef Agent *a
        for i in range(q.navail):
            a = &self.agents[q.avail[i]]
            if need & ~a.skills:
                continue
            if best < 0 or _agent_before(strategy, q, need, salt, a, &self.agents[best]):
                best = q.avail[i]
        return best

    cdef int _group(self, int qs, uint64_t need) except -1:
        """The group of queue slot ``qs`` for ``need``, created (empty) if missing."""
        cdef tuple key = (qs, need)
        cdef object found = self.group_slot.get(key)
        cdef int gs, i
        cdef Group *g
        cdef Queue *q = &self.queues[qs]
        if found is not None:
            return found
        _grow(<void **>&q.groups, &q.cap_groups, q.ngroups + 1, sizeof(int))
        _grow(<void **>&self.active, &self.cap_active, self.nactive + 1, sizeof(int))
        gs = _take_slot(&self.group_slots)
        try:
            _grow(<void **>&self.groups, &self.cap_groups, self.group_slots.used, sizeof(Group))
        except MemoryError:
            _give_slot(&self.group_slots, gs)
            raise
        g = &self.groups[gs]
        memset(g, 0, sizeof(Group))
        g.queue = qs
        g.skills = need
        for i in range(q.navail):
            if need & ~self.agents[q.avail[i]].skills == 0:
                g.covering += 1
        g.qidx = q.ngroups
        q.groups[q.ngroups] = gs
        q.ngroups += 1
        g.aidx = self.nactive
        self.active[self.nactive] = gs
        self.nactive += 1
        self.group_slot[key] = gs
        return gs

    cdef int _drop_group(self, int gs) except -1:
        cdef Group *g = &self.groups[gs]
        cdef Queue *q = &self.queues[g.queue]
        cdef int last
        del self.group_slot[(g.queue, g.skills)]
        q.ngroups -= 1
        last = q.groups[q.ngroups]
        q.groups[g.qidx] = last
        self.groups[last].qidx = g.qidx
        self.nactive -= 1
        last = self.active[self.nactive]
        self.active[g.aidx] = last
        self.groups[last].aidx = g.aidx
        free(g.heap)
        g.heap = NULL
        g.cap = 0
        _give_slot(&self.group_slots, gs)
        return 0

    cdef int _set_available(self, int as_, bint available) except -1:
        cdef Agent *a = &self.agents[as_]
        cdef Queue *q
        cdef int i, j, k, idx, last, qs
        cdef int step = 1 if available else -1
        if a.available == available:
            return 0
        for i in range(a.nq):  # room first, so nothing fails half-way
            q = &self.queues[a.queues[i]]
            _grow(<void **>&q.avail, &q.cap_avail, q.navail + 1, sizeof(int))
        a.available = available
        for i in range(a.nq):
            qs = a.queues[i]
            q = &self.queues[qs]
            if available:
                a.qpos[i] = q.navail
                q.avail[q.navail] = as_
                q.navail += 1
            else:
                idx = a.qpos[i]
                q.navail -= 1
                last = q.avail[q.navail]
                q.avail[idx] = last
                for k in range(self.agents[last].nq):
                    if self.agents[last].queues[k] == qs:
                        self.agents[last].qpos[k] = idx
                        break
                a.qpos[i] = -1
            for j in range(q.ngroups):
                if self.groups[q.groups[j]].skills & ~a.skills == 0:
                    self.groups[q.groups[j]].covering += step
        return 0

    cdef void _sift_up(self, Group *g, int i) noexcept nogil:
        cdef int c = g.heap[i], p
        while i > 0:
            p = (i - 1) >> 1
            if not _call_before(&self.calls[c], &self.calls[g.heap[p]]):
                break
            g.heap[i] = g.heap[p]
            self.calls[g.heap[i]].pos = i
            i = p
        g.heap[i] = c
        self.calls[c].pos = i

    cdef void _sift_down(self, Group *g, int i) noexcept nogil:
        cdef int c = g.heap[i], child
        while True:
            child = 2 * i + 1
            if child >= g.size:
                break
            if child + 1 < g.size and _call_before(
                &self.calls[g.heap[child + 1]], &self.calls[g.heap[child]]
            ):
                child += 1
            if not _call_before(&self.calls[g.heap[child]], &self.calls[c]):
                break
            g.heap[i] = g.heap[child]
            self.calls[g.heap[i]].pos = i
            i = child
        g.heap[i] = c
        self.calls[c].pos = i
