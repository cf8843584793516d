"""Call recording: one stereo WAV per call (caller left, callee right), named by call id.

The file is created with the first audio: a call that carried none (a signalling-only
peer) leaves no empty WAV behind and no recording in its CDR.

The media engine taps each recorded leg's decoded audio into a ring buffer, time-aligned
(gaps are silence), so two legs line up sample for sample. :meth:`CallRecorder.poll`
(run every ``poll_interval_s`` by the daemon) drains both legs of every recorded call,
interleaves what both sides have, and hands the frames to one writer thread: the loop
never touches the disk and the engine never waits for anything. When a call ends the
rest is drained, the shorter side padded with silence, the file closed, and the
recordings index row handed to ``on_finished`` on the loop.
"""

from __future__ import annotations

import asyncio
import logging
import time
import wave
from array import array
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from edge_core.store.db import RecordingRow

log = logging.getLogger("edge.recorder")

SAMPLE_RATE = 8000


def interleave(left: bytes, right: bytes) -> bytes:
    """Two mono int16 buffers of equal length -> one stereo buffer (L R L R ...)."""
    a, b = array("h", left), array("h", right)
    out = array("h", bytes(4 * len(a)))
    out[0::2] = a
    out[1::2] = b
    return out.tobytes()


@dataclass
class _Recording:
    call_id: str
    path: Path
    caller: Any
    callee: Any
    started_at: float
    pending_caller: bytearray = field(default_factory=bytearray)
    pending_callee: bytearray = field(default_factory=bytearray)
    frames: int = 0
    audio_bytes: int = 0  # drained so far (on the loop): decides whether a file exists
    wav: wave.Wave_write | None = None
    failed: bool = False


class CallRecorder:
    def __init__(
        self,
        media: Any,
        directory: str | Path,
        on_finished: Callable[[RecordingRow], None],
    ) -> None:
        self.media = media
        self.directory = Path(directory)
        self.on_finished = on_finished
        self._active: dict[str, _Recording] = {}
        self._writer = ThreadPoolExecutor(max_workers=1, thread_name_prefix="recorder")
        self._loop = asyncio.get_running_loop()
        self.errors = 0

    @property
    def active(self) -> int:
        return len(self._active)

    def start(self, call_id: str, caller_leg: Any, callee_leg: Any) -> None:
        """Start recording both legs of an answered call."""
        path = self.directory / f"{call_id}.wav"
        rec = _Recording(call_id, path, caller_leg, callee_leg, time.time())
        self.media.record(caller_leg, True)
        self.media.record(callee_leg, True)
        self._active[call_id] = rec

    def poll(self) -> None:
        """Drain every recording's legs and queue the aligned frames for the writer."""
        for rec in self._active.values():
            self._drain(rec, final=False)

    def stop(self, call_id: str) -> str | None:
        """Finish a call's recording (before its media legs are released); the WAV's
        path, or None when the call carried no audio and so has no recording."""
        rec = self._active.pop(call_id, None)
        if rec is None:
            return None
        self._drain(rec, final=True)
        if rec.audio_bytes == 0:
            return None
        self._writer.submit(self._close, rec)
        return str(rec.path)

    async def close(self) -> None:
        """Finish every recording and wait for the writer to flush and close them."""
        for call_id in list(self._active):
            self.stop(call_id)
        await self._loop.run_in_executor(None, self._writer.shutdown, True)

    # -- on the loop ----------------------------------------------------------------------
    def _drain(self, rec: _Recording, *, final: bool) -> None:
        try:
            caller = self.media.take_recording(rec.caller)
            callee = self.media.take_recording(rec.callee)
        except Exception as exc:  # a released leg: keep what we have
            log.warning("recording %s: could not drain: %s", rec.call_id, exc)
            caller = callee = b""
        rec.audio_bytes += len(caller) + len(callee)
        a, b = rec.pending_caller, rec.pending_callee
        a += caller
        b += callee
        if final:  # the side that spoke last decides the length; pad the other with silence
            n = max(len(a), len(b))
            a.extend(bytes(n - len(a)))
            b.extend(bytes(n - len(b)))
        n = min(len(a), len(b)) & ~1
        if n:
            chunk = interleave(bytes(a[:n]), bytes(b[:n]))
            del a[:n], b[:n]
            self._writer.submit(self._write, rec, chunk)

    # -- on the writer thread ---------------------------------------------------------------
    def _open(self, rec: _Recording) -> None:
        try:
            rec.path.parent.mkdir(parents=True, exist_ok=True)
            wav = wave.open(str(rec.path), "wb")
            wav.setnchannels(2)
            wav.setsampwidth(2)
            wav.setframerate(SAMPLE_RATE)
            rec.wav = wav
        except OSError as exc:
            rec.failed = True
            self.errors += 1
            log.error("recording %s: cannot open %s: %s", rec.call_id, rec.path, exc)

    def _write(self, rec: _Recording, chunk: bytes) -> None:
        if rec.wav is None and not rec.failed:
            self._open(rec)  # the first audio creates the file
        if rec.wav is not None:
            rec.wav.writeframesraw(chunk)
            rec.frames += len(chunk) // 4

    def _close(self, rec: _Recording) -> None:
        if rec.wav is None:
            return
        rec.wav.close()  # patches the header with the final length
        row = RecordingRow(
            call_id=rec.call_id,
            path=str(rec.path),
            started_at=rec.started_at,
            duration_s=rec.frames / SAMPLE_RATE,
            bytes=rec.path.stat().st_size,
        )
        self._loop.call_soon_threadsafe(self.on_finished, row)
