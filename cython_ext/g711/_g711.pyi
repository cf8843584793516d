"""Stub of the compiled G.711 codec; ``g711_py`` implements the same API.

Bytes-like input (bytes, bytearray, contiguous memoryview) is accepted everywhere.
The per-sample C functions (``ulaw_to_linear`` etc.) are in ``_g711.pxd`` for
``cimport`` only; the twin has Python versions of them under the same names.
"""

from typing_extensions import Buffer  # collections.abc.Buffer is 3.12+

IMPLEMENTATION: str  # "cython" here, "python" in the twin

def ulaw_encode(pcm16le: Buffer) -> bytes:
    """Little-endian int16 PCM -> µ-law, one byte per sample (ValueError on odd length)."""

def ulaw_decode(codes: Buffer) -> bytes:
    """µ-law bytes -> little-endian int16 PCM."""

def alaw_encode(pcm16le: Buffer) -> bytes:
    """Little-endian int16 PCM -> A-law, one byte per sample (ValueError on odd length)."""

def alaw_decode(codes: Buffer) -> bytes:
    """A-law bytes -> little-endian int16 PCM."""

def ulaw_to_alaw(codes: Buffer) -> bytes:
    """µ-law -> A-law through linear (decode, then encode)."""

def alaw_to_ulaw(codes: Buffer) -> bytes:
    """A-law -> µ-law through linear (decode, then encode)."""
