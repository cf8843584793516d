"""DSP kernels throughput: in-band DTMF detection, tone rendering, mixing, in channels.

"Channels in real time" is how many 8 kHz streams one core keeps up with: audio seconds
processed per wall-clock second, single thread.  Each kernel is measured for the
compiled module and the pure-Python twin:

* ``dtmf_*_frames``: ``DtmfDetector.feed`` once per 20 ms frame (160 samples) -- the
  Python-level per-packet path, call overhead included; ``dtmf_cython_bulk``: 1 s per
  call, close to what the media engine gets through the C-level ``feed_samples``.
  The audio is DTMF keys in noise between stretches of speech-like sound, so every
  branch of the classifier runs.
* ``tone_*``: ``ToneGenerator.render(160)`` of US ringback (dual tone, cadenced).
* ``mix_*``: ``mix`` of two 160-sample frames with gains.

Prints one JSON object as its last line.  ``--quick`` takes well under a minute.
Run: ``.venv/bin/python bench/dsp.py [--quick]``.
"""

from __future__ import annotations

import argparse
import importlib
import json
import math
import platform
import random
import struct
import sys
import time
from collections.abc import Callable
from pathlib import Path
from types import ModuleType

REPO_ROOT = Path(__file__).resolve().parent.parent
if str(REPO_ROOT) not in sys.path:  # run from a checkout without `pip install -e .`
    sys.path.insert(0, str(REPO_ROOT))

RATE = 8000
FRAME = 160
TARGET_DTMF_CHANNELS = 1000


def test_audio(seconds: int) -> bytes:
    """Keys (-20..0 dBm0, 20 dB SNR) between speech-like stretches, as 16-bit LE PCM."""
    rng = random.Random(4733)
    keys = "123A456B789C*0#D"
    rows, cols = (697, 770, 852, 941), (1209, 1336, 1477, 1633)
    out: list[float] = []
    while len(out) < seconds * RATE:
        key = keys.index(rng.choice(keys))
        amplitude = 22787.0 * math.sqrt(10 ** (rng.uniform(-20, 0) / 10) / 2)
        for i in range(rng.randrange(320, 1200)):
            tone = math.sin(2 * math.pi * rows[key // 4] * i / RATE)
            tone += math.sin(2 * math.pi * cols[key % 4] * i / RATE)
            out.append(amplitude * tone + rng.gauss(0, amplitude * 0.1))
        f0 = rng.uniform(90, 160)
        for i in range(rng.randrange(800, 4000)):
            t = i / RATE
            out.append(sum(2000 / k * math.sin(2 * math.pi * k * f0 * t) for k in range(1, 12)))
    clipped = (max(-32768, min(32767, round(x))) for x in out[: seconds * RATE])
    return struct.pack(f"<{seconds * RATE}h", *clipped)


def channels(work: Callable[[], float], seconds: float) -> float:
    """Best audio-seconds per wall-second over rounds of ``work`` (returns audio seconds)."""
    work()  # warm up
    best = 0.0
    deadline = time.perf_counter() + seconds
    while time.perf_counter() < deadline:
        began = time.perf_counter()
        audio = 0.0
        while time.perf_counter() - began < 0.25:
            audio += work()
        best = max(best, audio / (time.perf_counter() - began))
    return best


def dtmf_frames(dtmf: ModuleType, pcm: bytes, frames: int) -> Callable[[], float]:
    detector = dtmf.DtmfDetector()
    chunks = [pcm[i : i + 2 * FRAME] for i in range(0, 2 * FRAME * frames, 2 * FRAME)]

    def work() -> float:
        feed = detector.feed
        for chunk in chunks:
            feed(chunk)
        return len(chunks) * FRAME / RATE

    return work


def dtmf_bulk(dtmf: ModuleType, pcm: bytes) -> Callable[[], float]:
    detector = dtmf.DtmfDetector()
    seconds = [pcm[i : i + 2 * RATE] for i in range(0, len(pcm), 2 * RATE)]

    def work() -> float:
        for second in seconds:
            detector.feed(second)
        return float(len(seconds))

    return work


def tone_render(tones: ModuleType, frames: int) -> Callable[[], float]:
    generator = tones.ToneGenerator(tones.TONES[("US", "ringback")])

    def work() -> float:
        render = generator.render
        for _ in range(frames):
            render(FRAME)
        return frames * FRAME / RATE

    return work


def frame_mix(tones: ModuleType, pcm: bytes, frames: int) -> Callable[[], float]:
    a, b = pcm[: 2 * FRAME], pcm[2 * FRAME : 4 * FRAME]

    def work() -> float:
        mix = tones.mix
        for _ in range(frames):
            mix(a, b, -6.0, 3.0)
        return frames * FRAME / RATE

    return work


def load(name: str) -> ModuleType | None:
    try:
        return importlib.import_module(f"cython_ext.{name}._{name}")
    except ImportError:
        print(f"compiled _{name} not built: run `make venv`", flush=True)
        return None


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="about 15 s instead of about 1 min")
    args = parser.parse_args()
    fast, slow = (2.0, 1.0) if args.quick else (10.0, 4.0)

    from cython_ext.dtmf import dtmf_py
    from cython_ext.tones import tones_py

    pcm = test_audio(10)
    c_dtmf, c_tones = load("dtmf"), load("tones")
    result: dict[str, object] = {}

    def measure(label: str, work: Callable[[], float], seconds: float) -> None:
        rate = channels(work, seconds)
        result[label] = round(rate, 1) if rate < 100 else round(rate)
        print(f"{label:32s} {rate:12,.1f} channels in real time", flush=True)

    if c_dtmf is not None:
        measure("dtmf_cython_frames", dtmf_frames(c_dtmf, pcm, 500), fast)
        measure("dtmf_cython_bulk", dtmf_bulk(c_dtmf, pcm), fast)
    measure("dtmf_python_frames", dtmf_frames(dtmf_py, pcm, 25), slow)
    if c_tones is not None:
        measure("tone_cython", tone_render(c_tones, 500), fast)
        measure("mix_cython", frame_mix(c_tones, pcm, 500), fast)
    measure("tone_python", tone_render(tones_py, 25), slow)
    measure("mix_python", frame_mix(tones_py, pcm, 25), slow)

    frames_rate = result.get("dtmf_cython_frames")
    assert frames_rate is None or isinstance(frames_rate, int | float)
    result.update(
        {
            "target_dtmf_channels": TARGET_DTMF_CHANNELS,
            "meets_target": bool(frames_rate and frames_rate >= TARGET_DTMF_CHANNELS),
            "unit": "8 kHz channels in real time, one core",
            "mode": "quick" if args.quick else "full",
            "python": platform.python_version(),
        }
    )
    print(json.dumps(result))
    return 0 if c_dtmf is not None and c_tones is not None else 1


if __name__ == "__main__":
    sys.exit(main())
