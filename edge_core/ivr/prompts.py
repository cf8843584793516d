"""The prompt set: named 8 kHz mono 16-bit PCM clips, and the generator of the default set.

A prompt set is a directory of WAV files; a prompt's name is its file's stem. The media
engine plays 8 kHz 16-bit mono (G.711 underneath), so that is what :meth:`PromptSet.load`
accepts; any other format is refused with the file named, unless ``resample=True``.

The default set is spoken by ``espeak-ng`` when it is installed (22050 Hz out, brought to
8 kHz by :func:`resample`, a windowed-sinc polyphase filter in the standard library --
``sox`` is not used, so one code path is tested), else it is a distinct beep pattern per
prompt, so a box without a speech synthesizer still has every prompt a flow names.

``python -m edge_core.ivr.prompts --out DIR [--tones]`` builds the default set.
"""

from __future__ import annotations

import argparse
import math
import operator
import shutil
import subprocess
import sys
import tempfile
import wave
from array import array
from collections.abc import Iterator, Mapping
from functools import cache
from pathlib import Path

RATE = 8000
"""Sample rate of every prompt, Hz."""

DEFAULT_TEXTS: dict[str, str] = {
    "welcome": "Welcome. Calls may be recorded for quality and training.",
    "menu_main": (
        "For sales, press 1. For support, press 2. For your account, press 3. "
        "To rate our service, press 9."
    ),
    "invalid": "Sorry, that is not a valid choice.",
    "timeout": "Sorry, we did not receive your choice.",
    "goodbye": "Thank you for calling. Goodbye.",
    "queue_position": "You are in the queue. An agent will be with you shortly.",
    "queue_wait": "All our agents are busy. Please stay on the line.",
    "please_hold": "Please hold.",
    "thank_you": "Thank you.",
    "survey_ask": "Please rate our service from 1 to 5, where 5 is excellent.",
    "survey_thanks": "Thank you for your feedback.",
    "voicemail_greeting": "Please leave a message after the tone.",
    "callback_confirm": "Thank you. We will call you back as soon as an agent is free.",
    "closed": "We are closed right now. Please call again during opening hours.",
    # queue announcements are put together from these: "you are caller number" 3,
    # "your estimated wait is about" 2 "minutes"
    "position_is": "You are caller number",
    "wait_about": "Your estimated wait is about",
    "minutes": "minutes",
    **{f"digit_{d}": word for d, word in enumerate(
        ("zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine"))},
}
"""The default prompts and what they say; flows refer to these names."""


class PromptError(ValueError):
    """A prompt file that cannot be used; the message names the file."""


class PromptSet(Mapping[str, bytes]):
    """Prompt name -> 8 kHz mono PCM16 little-endian samples."""

    def __init__(self, clips: Mapping[str, bytes]) -> None:
        self._clips = dict(clips)

    @classmethod
    def load(cls, directory: str | Path, *, resample: bool = False) -> PromptSet:
        """Every ``*.wav`` in ``directory``. Other formats raise :class:`PromptError`
        naming the file, or with ``resample=True`` are converted (mono, 16-bit, 8 kHz)."""
        directory = Path(directory)
        if not directory.is_dir():
            raise PromptError(f"{directory}: not a directory of prompts")
        return cls(
            {p.stem: read_wav(p, resample=resample) for p in sorted(directory.glob("*.wav"))}
        )

    def get(self, name: str, default: bytes | None = None) -> bytes:  # type: ignore[override]
        """The prompt's PCM; a missing name raises KeyError naming it (or gives ``default``)."""
        if name in self._clips:
            return self._clips[name]
        if default is not None:
            return default
        raise KeyError(f"no prompt named {name!r}")

    def duration_s(self, name: str) -> float:
        return len(self.get(name)) / 2 / RATE

    def __getitem__(self, name: str) -> bytes:
        return self.get(name)

    def __iter__(self) -> Iterator[str]:
        return iter(self._clips)

    def __len__(self) -> int:
        return len(self._clips)


def read_wav(path: Path, *, resample: bool = False) -> bytes:
    """One WAV as 8 kHz mono PCM16 LE; see :meth:`PromptSet.load`."""
    try:
        with wave.open(str(path), "rb") as w:
            channels, width, rate = w.getnchannels(), w.getsampwidth(), w.getframerate()
            frames = w.readframes(w.getnframes())
    except (wave.Error, EOFError) as exc:
        raise PromptError(f"{path}: not a PCM WAV file ({exc})") from None
    if (channels, width, rate) == (1, 2, RATE):
        return frames
    found = f"{rate} Hz, {channels} channel(s), {8 * width}-bit"
    if not resample:
        raise PromptError(
            f"{path}: {found}; prompts must be {RATE} Hz mono 16-bit "
            f"(convert it, e.g. sox IN -r {RATE} -c 1 -b 16 OUT, or load with resample=True)"
        )
    samples = _to_mono16(frames, channels, width)
    return resample_pcm16(samples, rate, RATE).tobytes()


def _to_mono16(frames: bytes, channels: int, width: int) -> array[int]:
    """Interleaved 8/16/24/32-bit PCM -> mono int16 (channels averaged)."""
    if width == 1:  # 8-bit WAV is unsigned
        raw = [(b - 128) << 8 for b in frames]
    elif width == 2:
        raw = list(array("h", frames[: len(frames) // 2 * 2]))
    elif width in (3, 4):
        raw = [
            int.from_bytes(frames[i + width - 2 : i + width], "little", signed=True)
            for i in range(0, len(frames) - width + 1, width)
        ]
    else:
        raise PromptError(f"{8 * width}-bit samples are not supported")
    if channels > 1:
        raw = [
            sum(raw[i : i + channels]) // channels
            for i in range(0, len(raw) - channels + 1, channels)
        ]
    return array("h", raw)


# -- resampling ------------------------------------------------------------------------------

_ZERO_CROSSINGS = 16  # per side of the sinc (Blackman window): 22050 -> 8000 is -49 dB at 4.2 kHz
_CUTOFF = 0.46  # of the lower rate: flat (-1 dB) to 3.4 kHz at 8 kHz out


def resample_pcm16(samples: array[int] | list[int], rate_in: int, rate_out: int) -> array[int]:
    """Rational-ratio polyphase resampling with a Blackman-windowed sinc low-pass at
    0.46 x the lower rate (anti-aliasing when going down, anti-imaging going up)."""
    if rate_in == rate_out:
        return array("h", samples)
    g = math.gcd(rate_in, rate_out)
    up, down = rate_out // g, rate_in // g
    n_out = len(samples) * up // down
    out = array("h", bytes(2 * n_out))
    pad = _phase_filter(rate_in, rate_out, 0)[0].__len__()
    x = [0] * pad + list(samples) + [0] * pad  # zeros beyond both ends
    for n in range(n_out):
        # output n sits at input position n * down / up = base + phase / up
        base, phase = divmod(n * down, up)
        taps, first = _phase_filter(rate_in, rate_out, phase)
        start = pad + base + first
        acc = sum(map(operator.mul, taps, x[start : start + len(taps)]))
        out[n] = max(-32768, min(32767, round(acc)))
    return out


@cache
def _phase_filter(rate_in: int, rate_out: int, phase: int) -> tuple[tuple[float, ...], int]:
    """Taps for one fractional position, and the offset of the first tap from ``base``."""
    g = math.gcd(rate_in, rate_out)
    up = rate_out // g
    frac = phase / up  # how far past the input sample ``base`` the output lies
    fc = _CUTOFF * min(rate_in, rate_out) / rate_in  # cycles per input sample
    half = math.ceil(_ZERO_CROSSINGS / (2 * fc))
    taps = []
    for k in range(-half + 1, half + 1):
        t = k - frac  # input sample base + k, relative to the output position
        if abs(t) >= half:
            taps.append(0.0)
            continue
        sinc = 2 * fc * (math.sin(2 * math.pi * fc * t) / (2 * math.pi * fc * t) if t else 1.0)
        w = 0.42 + 0.5 * math.cos(math.pi * t / half) + 0.08 * math.cos(2 * math.pi * t / half)
        taps.append(sinc * w)
    return tuple(taps), -half + 1


# -- the default set ---------------------------------------------------------------------------


def espeak_available() -> bool:
    return shutil.which("espeak-ng") is not None


def default_prompts(directory: str | Path, *, engine: str = "auto") -> PromptSet:
    """Write the default prompts (``DEFAULT_TEXTS``) as 8 kHz WAVs into ``directory`` and
    load them. ``engine``: ``"espeak"``, ``"tones"``, or ``"auto"`` (espeak-ng when installed)."""
    if engine == "auto":
        engine = "espeak" if espeak_available() else "tones"
    if engine not in ("espeak", "tones"):
        raise ValueError(f"unknown engine {engine!r}")
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    for index, (name, text) in enumerate(DEFAULT_TEXTS.items()):
        pcm = _speak(text) if engine == "espeak" else beep_pattern(index)
        write_wav(directory / f"{name}.wav", pcm)
    return PromptSet.load(directory)


def _speak(text: str) -> bytes:
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "out.wav"
        subprocess.run(
            ["espeak-ng", "-v", "en", "-s", "150", "-w", str(out), text],
            check=True,
            capture_output=True,
            timeout=60,
        )
        return read_wav(out, resample=True)


def beep_pattern(index: int) -> bytes:
    """Prompt ``index``'s stand-in: 1-3 beeps at one of five pitches (distinct for the
    first 15), then 300 ms of silence."""
    from cython_ext.tones import ToneGenerator, ToneSpec

    freq = (440.0, 554.0, 659.0, 784.0, 880.0)[index % 5]
    count = index // 5 + 1
    gen = ToneGenerator(ToneSpec((freq,), (150, 100), -16.0), RATE)
    return gen.render(count * RATE // 4) + bytes(2 * RATE * 3 // 10)


def write_wav(path: Path, pcm: bytes) -> None:
    with wave.open(str(path), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(RATE)
        w.writeframes(pcm)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m edge_core.ivr.prompts", description=__doc__.split("\n")[0]
    )
    parser.add_argument("--out", required=True, help="directory to write the WAVs to")
    parser.add_argument(
        "--tones", action="store_true", help="beep patterns even if espeak-ng is installed"
    )
    args = parser.parse_args(argv)
    engine = "tones" if args.tones else "auto"
    used = "tones" if args.tones or not espeak_available() else "espeak-ng"
    prompts = default_prompts(args.out, engine=engine)
    for name in prompts:
        print(f"{args.out}/{name}.wav  {prompts.duration_s(name):5.2f} s")
    print(f"{len(prompts)} prompts, {used}, {RATE} Hz mono 16-bit")
    return 0


if __name__ == "__main__":
    sys.exit(main())
