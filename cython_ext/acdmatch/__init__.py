"""ACD matching: which waiting call goes to which available agent next.

Priority with ageing, skills with proficiency, per-queue agent-selection strategies.
The compiled ``_acdmatch`` and the twin ``acdmatch_py`` have one API and one set of
rules; see ``_acdmatch.pyi`` and the twin's docstring.  It keeps no clock and does no
I/O: ``edge_core/acd`` owns call and agent states and drives it.
Must not import anything outside ``cython_ext`` and the standard library.
"""

from cython_ext import load_kernel

_impl = load_kernel("acdmatch")

IMPLEMENTATION: str = _impl.IMPLEMENTATION
STRATEGIES: tuple[str, ...] = _impl.STRATEGIES
MAX_SKILLS: int = _impl.MAX_SKILLS
MAX_PROFICIENCY: int = _impl.MAX_PROFICIENCY
Matcher = _impl.Matcher

__all__ = ["IMPLEMENTATION", "MAX_PROFICIENCY", "MAX_SKILLS", "STRATEGIES", "Matcher"]
