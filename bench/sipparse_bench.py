"""Micro-benchmark of the SIP scanner: messages per second, compiled vs pure-Python twin.

Parses a typical INVITE with SDP and a 200 OK (alternately) with each implementation
and prints one JSON object as its last line:

    {"cython_msgs_per_s": N, "python_msgs_per_s": N, "speedup": X, ...}

``--quick`` runs in a few seconds (CI); the default takes about half a minute.
Run: ``.venv/bin/python bench/sipparse_bench.py [--quick]``.
"""

from __future__ import annotations

import argparse
import importlib
import json
import platform
import sys
import time
from collections.abc import Callable
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
if str(REPO_ROOT) not in sys.path:  # run from a checkout without `pip install -e .`
    sys.path.insert(0, str(REPO_ROOT))

INVITE = (
    b"INVITE sip:+15551230001@pbx.branch.example.com SIP/2.0\r\n"
    b"Via: SIP/2.0/UDP 192.0.2.10:5060;branch=z9hG4bK776asdhds;rport\r\n"
    b"Max-Forwards: 70\r\n"
    b"To: <sip:+15551230001@pbx.branch.example.com>\r\n"
    b'From: "Agent 12" <sip:agent12@branch.example.com>;tag=1928301774\r\n'
    b"Call-ID: a84b4c76e66710@192.0.2.10\r\n"
    b"CSeq: 314159 INVITE\r\n"
    b"Contact: <sip:agent12@192.0.2.10:5060;transport=udp>\r\n"
    b"Allow: INVITE, ACK, CANCEL, BYE, OPTIONS, REFER, NOTIFY, INFO\r\n"
    b"Supported: replaces, timer, 100rel\r\n"
    b"User-Agent: Branchline-Phone/1.4\r\n"
    b"Content-Type: application/sdp\r\n"
    b"Content-Length: 142\r\n"
    b"\r\n"
    b"v=0\r\n"
    b"o=agent12 2890844526 2890844526 IN IP4 192.0.2.10\r\n"
    b"s=-\r\n"
    b"c=IN IP4 192.0.2.10\r\n"
    b"t=0 0\r\n"
    b"m=audio 49170 RTP/AVP 0 8 101\r\n"
    b"a=rtpmap:101 telephone-event/8000\r\n"
)
OK_200 = (
    b"SIP/2.0 200 OK\r\n"
    b"Via: SIP/2.0/UDP 192.0.2.10:5060;branch=z9hG4bK776asdhds;rport=5060;received=192.0.2.10\r\n"
    b"Record-Route: <sip:192.0.2.1;lr>\r\n"
    b"To: <sip:+15551230001@pbx.branch.example.com>;tag=a6c85cf\r\n"
    b'From: "Agent 12" <sip:agent12@branch.example.com>;tag=1928301774\r\n'
    b"Call-ID: a84b4c76e66710@192.0.2.10\r\n"
    b"CSeq: 314159 INVITE\r\n"
    b"Contact: <sip:+15551230001@192.0.2.1:5060>\r\n"
    b"Content-Length: 0\r\n"
    b"\r\n"
)
MESSAGES = (INVITE, OK_200)


def rate(parse: Callable[[bytes], object], seconds: float) -> float:
    """Messages per second: best of several timed rounds of ``parse`` over MESSAGES."""
    batch = 200
    for message in MESSAGES:  # warm up, and make sure both messages are valid
        parse(message)
    best = 0.0
    deadline = time.perf_counter() + seconds
    while time.perf_counter() < deadline:
        rounds = 0
        began = time.perf_counter()
        while time.perf_counter() - began < 0.2:
            for _ in range(batch):
                parse(INVITE)
                parse(OK_200)
            rounds += 1
        elapsed = time.perf_counter() - began
        best = max(best, rounds * batch * len(MESSAGES) / elapsed)
    return best


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="about 4 s instead of about 30 s")
    args = parser.parse_args()
    seconds = 2.0 if args.quick else 15.0

    from cython_ext.sipparse import sipparse_py

    python_rate = rate(sipparse_py.parse_message, seconds)
    print(f"python  {python_rate:12,.0f} msgs/s", flush=True)
    try:
        compiled = importlib.import_module("cython_ext.sipparse._sipparse")
    except ImportError:
        compiled = None
        print("compiled _sipparse not built: run `make venv`", flush=True)
    cython_rate = rate(compiled.parse_message, seconds) if compiled else None
    if cython_rate is not None:
        print(f"cython  {cython_rate:12,.0f} msgs/s", flush=True)

    result = {
        "cython_msgs_per_s": round(cython_rate) if cython_rate else None,
        "python_msgs_per_s": round(python_rate),
        "speedup": round(cython_rate / python_rate, 1) if cython_rate else None,
        "messages": ["INVITE+SDP", "200 OK"],
        "mode": "quick" if args.quick else "full",
        "python": platform.python_version(),
    }
    print(json.dumps(result))
    return 0 if cython_rate else 1


if __name__ == "__main__":
    sys.exit(main())
