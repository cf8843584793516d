"""Call-progress tone specifications (dial, ringback, busy, congestion) for US, UK and CN.

Shared by the compiled ``_tones`` and the twin ``tones_py``.  Values follow ITU-T E.180
and its Supplement 2 ("Various tones used in national networks"); what was checked:

* US (North American Precise Tone Plan): dial 350+440 Hz continuous, ringback 440+480 Hz
  2 s on / 4 s off, busy 480+620 Hz 0.5/0.5 s, reorder (congestion) 480+620 Hz
  0.25/0.25 s -- https://www.oocities.org/siliconvalley/2072/bit73.txt and the AT&T
  system manual at https://manualsdump.com/en/manuals/at-and-t-at-and-t/258789/406 (which
  agree; levels -13 dBm0 dial, -19 ringback, -24 busy/reorder per tone are the
  Precise Tone Plan's).
* UK (BT SIN 350): dial 350+440 Hz continuous, ringing 400+450 Hz 0.4/0.2/0.4/2.0 s,
  busy 400 Hz 0.375/0.375 s, congestion ("path engaged") 400 Hz 0.4/0.35/0.225/0.525 s
  -- http://blog.trumpton.org.uk/2010/10/uk-dial-and-progress-tones.html; the ringing
  cadence also in the E.180 summary at
  https://www.free-ebooks.net/educational/Radio-Frequency/html/114.  Levels there are
  -20 to -23 dBm; one level of -20 dBm0 per tone is used (the congestion tone's second
  burst is -14 dBm there, kept at -20 here: one level per spec).
* CN: 450 Hz for all four; dial continuous, ringback 1 s on / 4 s off, busy 0.35/0.35 s,
  congestion 0.7/0.7 s, -10 dBm0 -- the China entries of E.180 Supplement 2 (the
  country list reproduced at https://www.palmmicro.com/pa1688/software/168/
  PA1688_API_168000.zip:PalmH323/DOC/dialtone.txt has the same layout); not
  cross-checked against a second source.

A cadence is on/off durations in ms, alternating and starting with "on"; empty means
continuous.  ``level_dbm0`` is the level of each frequency component.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["TONES", "ToneSpec"]


@dataclass(frozen=True, slots=True)
class ToneSpec:
    """One call-progress tone."""

    frequencies: tuple[float, ...]
    """Component frequencies in Hz (1-4), summed."""
    cadence_ms: tuple[int, ...]
    """On, off, on, off ... in ms, repeated; () for a continuous tone."""
    level_dbm0: float
    """Level of each component, dBm0."""


TONES: dict[tuple[str, str], ToneSpec] = {
    ("US", "dial"): ToneSpec((350.0, 440.0), (), -13.0),
    ("US", "ringback"): ToneSpec((440.0, 480.0), (2000, 4000), -19.0),
    ("US", "busy"): ToneSpec((480.0, 620.0), (500, 500), -24.0),
    ("US", "congestion"): ToneSpec((480.0, 620.0), (250, 250), -24.0),
    ("UK", "dial"): ToneSpec((350.0, 440.0), (), -20.0),
    ("UK", "ringback"): ToneSpec((400.0, 450.0), (400, 200, 400, 2000), -20.0),
    ("UK", "busy"): ToneSpec((400.0,), (375, 375), -20.0),
    ("UK", "congestion"): ToneSpec((400.0,), (400, 350, 225, 525), -20.0),
    ("CN", "dial"): ToneSpec((450.0,), (), -10.0),
    ("CN", "ringback"): ToneSpec((450.0,), (1000, 4000), -10.0),
    ("CN", "busy"): ToneSpec((450.0,), (350, 350), -10.0),
    ("CN", "congestion"): ToneSpec((450.0,), (700, 700), -10.0),
}
