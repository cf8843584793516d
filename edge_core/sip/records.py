"""Call detail records: what the B2BUA knows about a finished call, as a :class:`CdrRow`.

Quality comes from the media engine's per-leg receive statistics (RFC 3550 loss and
jitter) and a simplified ITU-T G.107 E-model MOS (``cython_ext.rtp.mos_estimate``); a
call's MOS is the worse of its two legs, since either listener may be the one who
complains.
"""

from __future__ import annotations

import uuid
from typing import TYPE_CHECKING, Any

from cython_ext.rtp import mos_estimate
from edge_core.sip.message import NameAddr, Request
from edge_core.store.db import CdrRow

if TYPE_CHECKING:
    from edge_core.sip.call import Call

# why a call ended, when the disposition alone says it
_CAUSE_OF = {"answered": "normal"}


def leg_mos(media: Any) -> float | None:
    """Estimated MOS of what one leg received, None when it received nothing."""
    if media is None or media.packets_in == 0:
        return None
    loss = media.lost / (media.packets_in + media.lost)
    jitter = media.jitter_ms or 0.0
    return round(mos_estimate(codec="PCMU", loss_fraction=loss, jitter_ms=jitter), 2)


def call_record(
    call: Call,
    end_time: float,
    *,
    disposition: str,
    hangup_side: str,
    status: int,
    reason: str,
    cause: str | None = None,
) -> CdrRow:
    """The CDR of a call whose media legs have been released (final counters)."""
    a_media = call.a.media
    b_media = call.b.media if call.b is not None else None
    scores = [m for m in (leg_mos(a_media), leg_mos(b_media)) if m is not None]
    return CdrRow(
        call_id=call.id,
        a_call_id=call.a.call_id,
        b_call_id=call.b.call_id if call.b is not None else None,
        from_uri=call.from_uri,
        from_number=call.from_number,
        to_number=call.to_number,
        destination=call.destination,
        start_time=call.start_time,
        answer_time=call.answer_time,
        end_time=end_time,
        disposition=disposition,
        hangup_side=hangup_side,
        sip_status=status,
        sip_reason=reason,
        a_rtp_port=a_media.local_port if a_media is not None else None,
        b_rtp_port=b_media.local_port if b_media is not None else None,
        packets_a_to_b=a_media.packets_in if a_media is not None else 0,
        packets_b_to_a=b_media.packets_in if b_media is not None else 0,
        cause=cause or _CAUSE_OF.get(disposition, disposition),
        a_lost=a_media.lost if a_media is not None else 0,
        b_lost=b_media.lost if b_media is not None else 0,
        a_jitter_ms=a_media.jitter_ms if a_media is not None else None,
        b_jitter_ms=b_media.jitter_ms if b_media is not None else None,
        mos=min(scores) if scores else None,
        recording=call.recording,
        dtmf="".join(call.digits),
        survey_score=call.survey_score,
        transfers=call.transfers,
        queue=call.queue,
    )


def refused_record(invite: Request, caller: str, dialled: str, status: int, reason: str, now: float) -> CdrRow:
    """The CDR of a call refused before any callee was tried (404, 480 ...)."""
    return CdrRow(
        call_id=str(uuid.uuid4()),
        a_call_id=invite.call_id,
        b_call_id=None,
        from_uri=NameAddr.parse(invite.header("From") or "").uri,
        from_number=caller,
        to_number=dialled,
        destination=None,
        start_time=now,
        answer_time=None,
        end_time=now,
        disposition="rejected",
        hangup_side="edge",
        sip_status=status,
        sip_reason=reason,
        cause="rejected",
    )
