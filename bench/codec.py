"""Micro-benchmark of the G.711 kernel: compiled vs pure-Python twin vs ``audioop``.

Converts one second of 8 kHz speech-like PCM (8000 samples, a 20 ms packet is 160)
and a 64 Ki-sample block with each implementation and reports million samples per
second, best of several timed rounds.  The last line is one JSON object:

    {"ulaw_encode_msps": {"cython": x, "python": y, "audioop": z}, ...,
     "speedup_vs_python": {...}, "packet_160_ns": {...}}

``audioop`` is deprecated (gone in Python 3.13); its column is null where missing.
``--quick`` takes about 10 s; the default about a minute.
Run: ``.venv/bin/python bench/codec.py [--quick]``.
"""

from __future__ import annotations

import argparse
import importlib
import json
import math
import platform
import struct
import sys
import time
import warnings
from collections.abc import Callable
from pathlib import Path
from types import ModuleType

REPO_ROOT = Path(__file__).resolve().parent.parent
if str(REPO_ROOT) not in sys.path:  # run from a checkout without `pip install -e .`
    sys.path.insert(0, str(REPO_ROOT))

OPERATIONS = ("ulaw_encode", "ulaw_decode", "alaw_encode", "alaw_decode")


def _speechlike(n: int) -> bytes:
    """Deterministic PCM: two tones with a slow envelope, full int16 range reached."""
    samples = (
        int(20000 * math.sin(i / 37.0) * math.sin(i / 4000.0) + 9000 * math.sin(i / 5.3))
        for i in range(n)
    )
    return struct.pack(f"<{n}h", *(max(-32768, min(32767, s)) for s in samples))


def _audioop() -> ModuleType | None:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        try:
            return importlib.import_module("audioop")
        except ImportError:
            return None


def _functions(name: str, module: ModuleType | None) -> dict[str, Callable[[bytes], bytes]] | None:
    if module is None:
        return None
    if name != "audioop":
        return {op: getattr(module, op) for op in OPERATIONS}
    return {
        "ulaw_encode": lambda data: module.lin2ulaw(data, 2),
        "ulaw_decode": lambda data: module.ulaw2lin(data, 2),
        "alaw_encode": lambda data: module.lin2alaw(data, 2),
        "alaw_decode": lambda data: module.alaw2lin(data, 2),
    }


def best_seconds(fn: Callable[[bytes], bytes], data: bytes, budget_s: float) -> float:
    """Shortest time of one call, over rounds filling ``budget_s``."""
    fn(data)
    calls = 1
    while True:  # calls per round so that a round lasts >= 20 ms
        began = time.perf_counter()
        for _ in range(calls):
            fn(data)
        elapsed = time.perf_counter() - began
        if elapsed >= 0.02:
            break
        calls *= 4
    best = elapsed / calls
    deadline = time.perf_counter() + budget_s
    while time.perf_counter() < deadline:
        began = time.perf_counter()
        for _ in range(calls):
            fn(data)
        best = min(best, (time.perf_counter() - began) / calls)
    return best


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="about 10 s instead of a minute")
    args = parser.parse_args()
    budget = 0.25 if args.quick else 1.5

    from cython_ext.g711 import g711_py

    try:
        compiled = importlib.import_module("cython_ext.g711._g711")
    except ImportError:
        compiled = None
        print("compiled _g711 not built: run `make venv`", flush=True)
    audioop = _audioop()
    implementations = {
        "cython": _functions("cython", compiled),
        "python": _functions("python", g711_py),
        "audioop": _functions("audioop", audioop),
    }

    pcm = _speechlike(65536)
    inputs = {
        "ulaw_encode": pcm,
        "alaw_encode": pcm,
        "ulaw_decode": g711_py.ulaw_encode(pcm),
        "alaw_decode": g711_py.alaw_encode(pcm),
    }
    result: dict[str, object] = {}
    for op in OPERATIONS:
        data = inputs[op]
        n_samples = len(pcm) // 2
        row: dict[str, float | None] = {}
        for name, functions in implementations.items():
            if functions is None:
                row[name] = None
                continue
            seconds = best_seconds(functions[op], data, budget)
            row[name] = round(n_samples / seconds / 1e6, 2)
        print(
            f"{op:12s} "
            + "  ".join(f"{k} {v if v is not None else '-':>9} Msps" for k, v in row.items()),
            flush=True,
        )
        result[f"{op}_msps"] = row

    packet_ns: dict[str, dict[str, float | None]] = {}
    packet = pcm[:320]  # one 20 ms packet: 160 samples
    for op in ("ulaw_encode", "ulaw_decode"):
        data = packet if op.endswith("encode") else inputs[op][:160]
        packet_ns[op] = {
            name: (round(best_seconds(f[op], data, budget / 2) * 1e9) if f else None)
            for name, f in implementations.items()
        }
    result["packet_160_ns"] = packet_ns
    result["speedup_vs_python"] = {
        op: (round(row["cython"] / row["python"], 1) if row["cython"] else None)
        for op in OPERATIONS
        for row in [result[f"{op}_msps"]]
    }
    result["block_samples"] = len(pcm) // 2
    result["mode"] = "quick" if args.quick else "full"
    result["python"] = platform.python_version()
    print(json.dumps(result))
    return 0 if compiled else 1


if __name__ == "__main__":
    sys.exit(main())
