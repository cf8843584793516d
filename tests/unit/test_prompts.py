"""The prompt set: loading 8 kHz WAVs, refusing other formats by name, the default set."""

from __future__ import annotations

import math
import shutil
import wave
from array import array
from pathlib import Path

import pytest

from edge_core.ivr import prompts as prompts_mod
from edge_core.ivr.prompts import (
    DEFAULT_TEXTS,
    RATE,
    PromptError,
    PromptSet,
    default_prompts,
    main,
    resample_pcm16,
)


def write(path: Path, samples: list[int], rate: int = RATE, channels: int = 1) -> None:
    with wave.open(str(path), "wb") as w:
        w.setnchannels(channels)
        w.setsampwidth(2)
        w.setframerate(rate)
        w.writeframes(array("h", samples).tobytes())


def sine(freq: float, rate: int, n: int, amp: int = 10000) -> list[int]:
    return [round(amp * math.sin(2 * math.pi * freq * i / rate)) for i in range(n)]


def rms(samples: array[int] | list[int]) -> float:
    return math.sqrt(sum(v * v for v in samples) / len(samples))


def test_fallback_set_loads_with_every_default_prompt_distinct(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(prompts_mod, "espeak_available", lambda: False)  # force the fallback
    prompts = default_prompts(tmp_path)
    assert set(prompts) == set(DEFAULT_TEXTS)
    assert {p.stem for p in tmp_path.glob("*.wav")} == set(DEFAULT_TEXTS)
    clips = [prompts.get(name) for name in prompts]
    assert len(set(clips)) == len(clips)  # no two prompts sound alike
    assert all(
        len(c) % 2 == 0 and prompts.duration_s(n) > 0.5 for n, c in zip(prompts, clips, strict=True)
    )
    again = PromptSet.load(tmp_path)
    assert again.get("menu_main") == prompts["menu_main"]


def test_missing_prompt_is_named(tmp_path: Path) -> None:
    write(tmp_path / "welcome.wav", [0] * 800)
    prompts = PromptSet.load(tmp_path)
    assert prompts.duration_s("welcome") == 0.1
    with pytest.raises(KeyError, match="no prompt named 'menu_main'"):
        prompts.get("menu_main")


def test_wrong_rate_is_refused_naming_the_file(tmp_path: Path) -> None:
    write(tmp_path / "ok.wav", [0] * 80)
    write(tmp_path / "welcome.wav", sine(440, 22050, 2205), rate=22050)
    with pytest.raises(PromptError) as info:
        PromptSet.load(tmp_path)
    message = str(info.value)
    assert str(tmp_path / "welcome.wav") in message
    assert "22050 Hz, 1 channel(s), 16-bit" in message and "must be 8000 Hz mono 16-bit" in message


def test_stereo_and_not_a_wav_are_refused(tmp_path: Path) -> None:
    write(tmp_path / "stereo.wav", [0] * 160, channels=2)
    with pytest.raises(PromptError, match=r"stereo\.wav: 8000 Hz, 2 channel"):
        PromptSet.load(tmp_path)
    (tmp_path / "stereo.wav").unlink()
    (tmp_path / "junk.wav").write_bytes(b"not a riff file at all")
    with pytest.raises(PromptError, match=r"junk\.wav: not a PCM WAV file"):
        PromptSet.load(tmp_path)


def test_resample_on_request_converts_rate_and_channels(tmp_path: Path) -> None:
    tone = sine(1000, 22050, 22050)
    write(tmp_path / "hi.wav", [v for s in tone for v in (s, s)], rate=22050, channels=2)
    pcm = PromptSet.load(tmp_path, resample=True).get("hi")
    out = array("h", pcm)
    assert len(out) == RATE
    assert rms(out[100:-100]) == pytest.approx(rms(tone), rel=0.01)


@pytest.mark.parametrize(
    ("freq", "low", "high"), [(1000, -0.1, 0.1), (3000, -0.2, 0.1), (3400, -1.5, 0.1)]
)
def test_resampler_passband(freq: float, low: float, high: float) -> None:
    x = sine(freq, 22050, 11025)
    gain_db = 20 * math.log10(rms(resample_pcm16(x, 22050, RATE)[100:-100]) / rms(x))
    assert low <= gain_db <= high


@pytest.mark.parametrize("freq", [4400, 5000, 7000])
def test_resampler_stops_aliases(freq: float) -> None:
    # without the low-pass these would fold back into the voice band at full level
    x = sine(freq, 22050, 11025)
    gain_db = 20 * math.log10(rms(resample_pcm16(x, 22050, RATE)[100:-100]) / rms(x) + 1e-12)
    assert gain_db < -60


@pytest.mark.skipif(shutil.which("espeak-ng") is None, reason="espeak-ng not installed")
def test_espeak_set_is_8khz_speech(tmp_path: Path) -> None:
    prompts = default_prompts(tmp_path, engine="espeak")
    assert set(prompts) == set(DEFAULT_TEXTS)
    assert prompts.duration_s("menu_main") > 4  # a spoken sentence, not a beep
    with wave.open(str(tmp_path / "menu_main.wav")) as w:
        assert (w.getframerate(), w.getnchannels(), w.getsampwidth()) == (RATE, 1, 2)


def test_cli_builds_the_tone_set(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--out", str(tmp_path / "p"), "--tones"]) == 0
    assert f"{len(DEFAULT_TEXTS)} prompts, tones" in capsys.readouterr().out
    assert len(PromptSet.load(tmp_path / "p")) == len(DEFAULT_TEXTS)
