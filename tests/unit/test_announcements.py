"""Queue announcements and the prompt set the daemon keeps."""

from __future__ import annotations

import wave
from pathlib import Path

from edge_core.app import load_prompts
from edge_core.config import parse_config
from edge_core.ivr.prompts import DEFAULT_TEXTS
from edge_core.sip.hosted import HostedCalls


def announcer(prompts: dict[str, bytes]) -> HostedCalls:
    hosted = HostedCalls.__new__(HostedCalls)  # only the prompt set is needed here
    hosted.prompts = prompts
    return hosted


PIECES = {"position_is": b"P", "wait_about": b"W", "minutes": b"M", "queue_position": b"Q",
          **{f"digit_{d}": str(d).encode() for d in range(10)}}  # fmt: skip


def test_position_and_wait_are_spoken_from_pieces() -> None:
    a = announcer(PIECES)
    assert a._announcement(3, None) == b"P3"  # no handle time known yet: position only
    assert a._announcement(12, 61.0) == b"P12W2M"  # 61 s is "about 2 minutes": rounded up
    assert a._announcement(1, 5.0) == b"P1W1M"  # never "about 0 minutes"


def test_a_prompt_set_without_the_pieces_falls_back_to_the_plain_prompt() -> None:
    assert announcer({"queue_position": b"Q"})._announcement(3, 30.0) == b"Q"


def write_wav(path: Path, pcm: bytes) -> None:
    with wave.open(str(path), "wb") as wav:
        wav.setnchannels(1)
        wav.setsampwidth(2)
        wav.setframerate(8000)
        wav.writeframes(pcm)


def test_missing_defaults_are_generated_and_own_recordings_kept(tmp_path: Path) -> None:
    own = b"\x01\x02" * 800
    write_wav(tmp_path / "welcome.wav", own)
    config = parse_config({
        "site": {"id": "b1"},
        "prompts": {"dir": str(tmp_path), "generate": "tones"},
        "queues": [{"name": "q"}],
        "agents": [{"id": "a", "extension": "2001", "queues": ["q"]}],
        "extensions": [{"number": "2001", "password": "pw2001"}],
    })  # fmt: skip
    prompts = load_prompts(config)
    assert set(DEFAULT_TEXTS) <= set(prompts)
    assert prompts["welcome"] == own  # the technician's recording, not the generated one
    assert all((tmp_path / f"{name}.wav").is_file() for name in DEFAULT_TEXTS)
