"""Stub of the compiled ACD matcher; ``acdmatch_py`` implements the same API and rules."""

from collections.abc import Iterable, Mapping

IMPLEMENTATION: str  # "cython" here, "python" in the twin
STRATEGIES: tuple[str, ...]  # longest-idle, fewest-calls, round-robin, linear, random, skills
MAX_SKILLS: int  # 64: skill indexes 0..63, one bit each in a call's bitset
MAX_PROFICIENCY: int  # 10: proficiencies 1..10

class Matcher:
    """Waiting calls, agents and the queues that join them; picks the next pair.

    One priority level is worth ``ageing_s`` seconds of waiting; ``seed`` drives the
    "random" strategy reproducibly.  Ids are 64-bit signed integers.
    """

    def __init__(self, *, ageing_s: float = 60.0, seed: int = 0) -> None: ...
    def add_queue(self, queue: int, strategy: str) -> None:
        """Declare ``queue`` or change its strategy; ValueError for an unknown strategy."""
    def add_call(
        self, call: int, queue: int, *, priority: int, skills: int, enqueued_at: float
    ) -> None:
        """A caller waits in ``queue`` (KeyError if undeclared) needing the ``skills``
        bitset (bit i = skill i); ValueError if ``call`` is already waiting."""
    def remove_call(self, call: int) -> bool:
        """Forget a waiting call; False if it is not waiting."""
    def waiting(self, queue: int | None = None) -> int:
        """Calls waiting in ``queue`` (KeyError if undeclared), or in all queues."""
    def position(self, call: int) -> int:
        """1-based place of ``call`` in its queue's serving order; O(calls)."""
    def add_agent(
        self, agent: int, *, queues: Iterable[int], skills: Mapping[int, int], order: int = 0
    ) -> None:
        """An agent serving ``queues`` with ``skills`` (index 0..63 -> proficiency 1..10)
        and rank ``order`` for "linear"/"round-robin"; starts unavailable."""
    def remove_agent(self, agent: int) -> None:
        """Forget an agent; KeyError if unknown."""
    def set_available(self, agent: int, available: bool, *, since: float) -> None:
        """Ready (idle since ``since``; updates it if already ready) or not ready / busy."""
    def note_answered(self, agent: int, *, queue: int | None = None) -> None:
        """Count one answered call; set the round-robin memory of ``queue`` (ValueError
        if the agent does not serve it) or, without one, of every queue it serves."""
    def next_match(self, now: float) -> tuple[int, int] | None:
        """The next (call, agent) pair over all queues, or None; removes nothing."""
    def candidates(self, call: int, now: float) -> list[int]:
        """Available agents able to take ``call``, in its queue's strategy order."""
