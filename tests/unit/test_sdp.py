"""SDP model and the edge's anchoring rewrite, on real-world bodies and fuzzed input."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from edge_core.media.sdp import (
    Connection,
    MediaDescription,
    Origin,
    RtpMap,
    SdpError,
    SessionDescription,
    anchor,
    media_target,
)

SIPP_UAC = (
    b"v=0\r\no=user1 53655765 2353687637 IN IP4 127.0.0.1\r\ns=-\r\n"
    b"c=IN IP4 127.0.0.1\r\nt=0 0\r\nm=audio 6000 RTP/AVP 0\r\na=rtpmap:0 PCMU/8000\r\n"
)

SOFTPHONE_OFFER = (
    b"v=0\r\n"
    b"o=- 3912345678 3912345678 IN IP4 192.168.1.23\r\n"
    b"s=Softphone\r\n"
    b"c=IN IP4 192.168.1.23\r\n"
    b"t=0 0\r\n"
    b"a=ice-options:trickle\r\n"
    b"m=audio 52000 RTP/AVP 9 111 0 8 101\r\n"
    b"a=rtcp:52001 IN IP4 192.168.1.23\r\n"
    b"a=candidate:1 1 UDP 2130706431 192.168.1.23 52000 typ host\r\n"
    b"a=rtpmap:9 G722/8000\r\n"
    b"a=rtpmap:111 opus/48000/2\r\n"
    b"a=fmtp:111 minptime=10;useinbandfec=1\r\n"
    b"a=rtpmap:0 PCMU/8000\r\n"
    b"a=rtpmap:8 PCMA/8000\r\n"
    b"a=rtpmap:101 telephone-event/8000\r\n"
    b"a=fmtp:101 0-16\r\n"
    b"a=ptime:20\r\n"
    b"a=x-softphone-feature:on\r\n"
    b"a=sendrecv\r\n"
)

HOLD_REINVITE = (
    b"v=0\r\no=- 3912345678 3912345679 IN IP4 192.168.1.23\r\ns=Softphone\r\n"
    b"c=IN IP4 192.168.1.23\r\nt=0 0\r\n"
    b"m=audio 52000 RTP/AVP 0 101\r\na=rtpmap:0 PCMU/8000\r\n"
    b"a=rtpmap:101 telephone-event/8000\r\na=fmtp:101 0-16\r\na=sendonly\r\n"
)

HOLD_ZERO_ADDRESS = (
    b"v=0\r\no=cisco 1000 1001 IN IP4 10.0.0.5\r\ns=SIP Call\r\n"
    b"c=IN IP4 0.0.0.0\r\nt=0 0\r\nm=audio 16384 RTP/AVP 8 0\r\n"
)

VIDEO_AND_AUDIO = (
    b"v=0\r\no=alice 2890844526 2890844526 IN IP4 198.51.100.7\r\ns=-\r\nt=0 0\r\n"
    b"m=video 51372 RTP/AVP 96\r\nc=IN IP4 198.51.100.7\r\na=rtpmap:96 H264/90000\r\n"
    b"m=audio 49170 RTP/AVP 8 0\r\nc=IN IP4 198.51.100.7\r\nb=AS:64\r\na=recvonly\r\n"
)


def edge(sdp: SessionDescription, **kw: object) -> SessionDescription:
    return anchor(sdp, "203.0.113.1", 40000, session_id=77, version=3, **kw)  # type: ignore[arg-type]


# -- parsing and serializing -----------------------------------------------------------


def test_sipp_uac_parses_and_round_trips_byte_exact() -> None:
    sdp = SessionDescription.parse(SIPP_UAC)
    assert sdp.origin == Origin("user1", 53655765, 2353687637, "IN", "IP4", "127.0.0.1")
    assert sdp.session_name == "-"
    assert sdp.connection == Connection("127.0.0.1")
    audio = sdp.media[0]
    assert (audio.media, audio.port, audio.proto, audio.formats) == (
        "audio",
        6000,
        "RTP/AVP",
        ["0"],
    )
    assert audio.rtpmaps == {0: RtpMap(0, "PCMU", 8000)}
    assert sdp.to_bytes() == SIPP_UAC
    assert media_target(sdp) == ("127.0.0.1", 6000)


def test_softphone_offer_model() -> None:
    sdp = SessionDescription.parse(SOFTPHONE_OFFER)
    audio = sdp.media[0]
    assert audio.formats == ["9", "111", "0", "8", "101"]
    assert audio.codec(111) == RtpMap(111, "opus", 48000, 2)
    assert audio.fmtps == {111: "minptime=10;useinbandfec=1", 101: "0-16"}
    assert audio.ptime == 20.0
    assert audio.direction == "sendrecv"
    assert not sdp.is_hold(audio)
    assert sdp.to_bytes() == SOFTPHONE_OFFER


def test_static_payload_types_need_no_rtpmap() -> None:
    sdp = SessionDescription.parse(HOLD_ZERO_ADDRESS)
    audio = sdp.media[0]
    assert audio.rtpmaps == {}
    assert audio.codec(8) == RtpMap(8, "PCMA", 8000)
    assert audio.codec(96) is None


def test_unknown_lines_keep_their_order() -> None:
    body = (
        b"v=0\r\no=x 1 1 IN IP4 10.0.0.1\r\ns=-\r\ni=info\r\nc=IN IP4 10.0.0.1\r\n"
        b"b=CT:128\r\nt=0 0\r\na=tool:foo\r\na=zzz\r\nm=audio 1000 RTP/AVP 0\r\n"
        b"i=audio info\r\nc=IN IP4 10.0.0.2\r\nb=AS:80\r\na=x-one\r\na=x-two:2\r\n"
    )
    sdp = SessionDescription.parse(body)
    assert sdp.lines == [
        ("i", "info"),
        ("b", "CT:128"),
        ("t", "0 0"),
        ("a", "tool:foo"),
        ("a", "zzz"),
    ]
    assert sdp.media[0].lines == [
        ("i", "audio info"),
        ("b", "AS:80"),
        ("a", "x-one"),
        ("a", "x-two:2"),
    ]
    assert sdp.to_bytes() == body


def test_bare_lf_line_endings_are_accepted_and_serialized_as_crlf() -> None:
    sdp = SessionDescription.parse(SIPP_UAC.replace(b"\r\n", b"\n"))
    assert sdp.to_bytes() == SIPP_UAC


def test_direction_helpers() -> None:
    sdp = SessionDescription.parse(VIDEO_AND_AUDIO)
    video, audio = sdp.media
    assert video.direction is None and sdp.effective_direction(video) == "sendrecv"
    assert sdp.effective_direction(audio) == "recvonly"
    audio.set_direction("inactive")
    assert audio.direction == "inactive"
    assert [v for k, v in audio.lines if k == "a"] == ["inactive"]
    assert sdp.is_hold(audio)
    with pytest.raises(ValueError):
        audio.set_direction("sideways")


def test_session_level_direction_applies_to_media() -> None:
    body = SIPP_UAC.replace(b"t=0 0\r\n", b"t=0 0\r\na=inactive\r\n")
    sdp = SessionDescription.parse(body)
    assert sdp.effective_direction(sdp.media[0]) == "inactive"
    assert sdp.is_hold(sdp.media[0])


@pytest.mark.parametrize(
    ("body", "fragment"),
    [
        (b"", "empty body"),
        (b"o=x 1 1 IN IP4 1.2.3.4\r\n", "line 1: an SDP body starts with v=0"),
        (b"v=1\r\n", "line 1: an SDP body starts with v=0"),
        (b"v=0\r\ns=-\r\n", "missing o= line"),
        (b"v=0\r\no=x 1 1 IN IP4 1.2.3.4\r\n", "missing s= line"),
        (b"v=0\r\no=x one 1 IN IP4 1.2.3.4\r\ns=-\r\n", "line 2: o= session id must be decimal"),
        (b"v=0\r\no=x 1 1 IN IP4\r\ns=-\r\n", "line 2: o= needs 6 fields"),
        (SIPP_UAC.replace(b"c=IN IP4 127.0.0.1", b"c=IN IP4"), "line 4: c= needs 3 fields"),
        (SIPP_UAC.replace(b"6000", b"70000"), "line 6: m= port 70000 is above 65535"),
        (SIPP_UAC.replace(b"RTP/AVP 0", b"RTP/AVP zero"), "line 6: RTP payload type must be"),
        (SIPP_UAC.replace(b"m=audio 6000 RTP/AVP 0", b"m=audio"), "line 6: m= needs"),
        (SIPP_UAC.replace(b"PCMU/8000", b"PCMU"), "line 7: a=rtpmap needs"),
        (SIPP_UAC + b"a=ptime:soon\r\n", "line 8: a=ptime needs"),
        (SIPP_UAC + b"s=again\r\n", "line 8: s= is a session-level line inside a media"),
        (SIPP_UAC + b"c=IN IP4 1.1.1.1\r\nc=IN IP4 1.1.1.2\r\n", "line 9: second c="),
        (SIPP_UAC + b"A=upper\r\n", "line 8: expected '<type>=<value>'"),
        (SIPP_UAC + b"a=bad\rcr\r\n", "line 8: CR or NUL"),
        (SIPP_UAC.replace(b"c=IN IP4 127.0.0.1\r\n", b""), "line 5: media section has no c="),
        (b"v=0\r\n\xff\r\n", "not UTF-8"),
    ],
)
def test_malformed_input_gives_a_precise_reason(body: bytes, fragment: str) -> None:
    with pytest.raises(SdpError) as err:
        SessionDescription.parse(body)
    assert fragment in str(err.value)


def test_error_quotes_the_offending_line() -> None:
    with pytest.raises(SdpError) as err:
        SessionDescription.parse(SIPP_UAC + b"garbage here\r\n")
    assert str(err.value) == (
        "line 8: expected '<type>=<value>' with a lowercase type letter: 'garbage here'"
    )


# -- anchoring -------------------------------------------------------------------------


def test_anchor_sipp_offer() -> None:
    original = SessionDescription.parse(SIPP_UAC)
    out = edge(original)
    assert out.to_bytes() == (
        b"v=0\r\no=branchline 77 3 IN IP4 203.0.113.1\r\ns=-\r\n"
        b"c=IN IP4 203.0.113.1\r\nt=0 0\r\nm=audio 40000 RTP/AVP 0\r\na=rtpmap:0 PCMU/8000\r\n"
    )
    assert original.to_bytes() == SIPP_UAC, "anchor must not modify its input"
    assert media_target(out) == ("203.0.113.1", 40000)


def test_anchor_filters_softphone_codecs_and_drops_peer_transport() -> None:
    out = edge(SessionDescription.parse(SOFTPHONE_OFFER))
    audio = out.media[0]
    assert audio.formats == ["0", "8", "101"]
    assert audio.rtpmaps == {
        0: RtpMap(0, "PCMU", 8000),
        8: RtpMap(8, "PCMA", 8000),
        101: RtpMap(101, "telephone-event", 8000),
    }
    assert audio.fmtps == {101: "0-16"}
    assert audio.ptime == 20.0
    assert audio.direction == "sendrecv"
    attrs = [name for name, _ in audio.attributes()]
    assert "rtcp" not in attrs and "candidate" not in attrs
    assert "x-softphone-feature" in attrs
    assert out.lines == [("t", "0 0")]  # session-level ice-options removed
    assert b"192.168.1.23" not in out.to_bytes()


def test_anchor_keeps_sendonly_hold() -> None:
    out = edge(SessionDescription.parse(HOLD_REINVITE))
    assert out.media[0].direction == "sendonly"
    assert out.is_hold(out.media[0])
    assert out.connection == Connection("203.0.113.1")


def test_anchor_keeps_zero_address_hold() -> None:
    out = edge(SessionDescription.parse(HOLD_ZERO_ADDRESS))
    assert out.connection == Connection("0.0.0.0")
    assert out.media[0].port == 40000
    assert out.media[0].formats == ["8", "0"]
    assert out.is_hold(out.media[0])
    assert media_target(out) is None


def test_anchor_rejects_video_and_rewrites_media_level_connections() -> None:
    out = edge(SessionDescription.parse(VIDEO_AND_AUDIO))
    video, audio = out.media
    assert video.port == 0 and video.formats == ["96"]
    assert audio.port == 40000
    assert audio.connection == Connection("203.0.113.1")
    assert video.connection == Connection("203.0.113.1")
    assert audio.direction == "recvonly"
    assert audio.lines[0] == ("b", "AS:64")


def test_anchor_ipv6_host() -> None:
    out = anchor(SessionDescription.parse(SIPP_UAC), "2001:db8::1", 40002, session_id=1, version=1)
    assert out.connection == Connection("2001:db8::1", "IN", "IP6")
    assert out.origin.addrtype == "IP6"


def test_anchor_without_allowed_codec_says_so() -> None:
    body = SOFTPHONE_OFFER.replace(b"RTP/AVP 9 111 0 8 101", b"RTP/AVP 9 111 101")
    with pytest.raises(
        SdpError, match="no acceptable audio codec: offered G722, opus, telephone-event"
    ):
        edge(SessionDescription.parse(body))


def test_anchor_with_only_telephone_event_is_refused() -> None:
    body = HOLD_REINVITE.replace(b"RTP/AVP 0 101", b"RTP/AVP 101")
    with pytest.raises(SdpError, match="no acceptable audio codec"):
        edge(SessionDescription.parse(body))


def test_anchor_respects_allowed_list_case_insensitively() -> None:
    out = edge(SessionDescription.parse(SOFTPHONE_OFFER), allowed=("pcma",))
    assert out.media[0].formats == ["8"]


def test_anchor_without_audio_or_with_srtp_is_refused() -> None:
    video_only = VIDEO_AND_AUDIO.split(b"m=audio")[0]
    with pytest.raises(SdpError, match="no active audio stream"):
        edge(SessionDescription.parse(video_only))
    srtp = SIPP_UAC.replace(b"RTP/AVP", b"RTP/SAVP")
    with pytest.raises(SdpError, match="RTP/SAVP is not supported"):
        edge(SessionDescription.parse(srtp))


def test_media_target_none_for_rejected_audio() -> None:
    assert media_target(SessionDescription.parse(SIPP_UAC.replace(b"6000", b"0"))) is None
    assert media_target(SessionDescription.parse(VIDEO_AND_AUDIO.split(b"m=audio")[0])) is None


def test_media_target_prefers_media_level_connection() -> None:
    body = SIPP_UAC + b"c=IN IP4 10.9.8.7\r\n"
    assert media_target(SessionDescription.parse(body)) == ("10.9.8.7", 6000)


# -- fuzzing ---------------------------------------------------------------------------

FRAGMENTS = [
    "v=0",
    "v=1",
    "o=u 1 2 IN IP4 1.2.3.4",
    "o=u x 2 IN IP4 1.2.3.4",
    "s=-",
    "s=",
    "c=IN IP4 10.0.0.1",
    "c=IN IP4 0.0.0.0",
    "c=IN IP6 ::1",
    "c=IN",
    "t=0 0",
    "m=audio 5000 RTP/AVP 0 8 101",
    "m=audio 0 RTP/AVP 0",
    "m=video 5002 RTP/AVP 96",
    "m=audio 5000/2 RTP/AVP 9",
    "m=audio 99999 RTP/AVP 0",
    "m=application 9 UDP/BFCP *",
    "a=rtpmap:0 PCMU/8000",
    "a=rtpmap:101 telephone-event/8000",
    "a=rtpmap:96 H264/90000",
    "a=rtpmap:200 X/1",
    "a=fmtp:101 0-15",
    "a=ptime:20",
    "a=ptime:x",
    "a=sendonly",
    "a=inactive",
    "a=rtcp:5001",
    "a=candidate:1 1 UDP 1 1.2.3.4 5 typ host",
    "b=AS:64",
    "",
    "garbage",
    "a=",
    "x=unknown",
]
sdp_like_text = st.lists(st.sampled_from(FRAGMENTS), max_size=14).map(
    lambda lines: "\r\n".join(lines)
)
any_text = st.one_of(st.text(), sdp_like_text, st.binary().map(lambda b: b.decode("latin-1")))


@settings(max_examples=400)
@given(st.one_of(any_text.map(lambda t: t.encode("utf-8", "surrogatepass")), st.binary()))
def test_arbitrary_input_raises_only_sdp_error(body: bytes) -> None:
    try:
        sdp = SessionDescription.parse(body)
    except SdpError:
        return
    # Whatever parses re-parses to the same model, and anchoring fails only cleanly.
    assert SessionDescription.parse(sdp.to_bytes()) == sdp
    media_target(sdp)
    try:
        edge(sdp)
    except SdpError:
        pass


token = st.text(st.characters(min_codepoint=0x21, max_codepoint=0x7E), min_size=1, max_size=8)
free_text = st.text(
    st.characters(exclude_characters="\r\n\x00", exclude_categories=["Cs"]), max_size=16
)
payload_type = st.integers(0, 127)
address = st.one_of(st.ip_addresses().map(str), st.just("0.0.0.0"))
connections = st.builds(Connection, address, st.just("IN"), st.sampled_from(["IP4", "IP6"]))
extra_line = st.one_of(
    st.tuples(st.sampled_from("iubkr"), free_text),
    st.tuples(st.just("a"), st.sampled_from(["sendrecv", "sendonly", "recvonly", "inactive"])),
    st.tuples(st.just("a"), st.builds(lambda pt: f"fmtp:{pt} 0-16", payload_type)),
    st.tuples(
        st.just("a"),
        st.builds(lambda pt, r: f"rtpmap:{pt} X-{pt}/{r}", payload_type, st.integers(1, 96000)),
    ),
    st.tuples(st.just("a"), st.builds(lambda n: f"ptime:{n}", st.integers(10, 60))),
    st.tuples(st.just("a"), st.builds(lambda n, v: f"x-{n}:{v}", token, free_text)),
)
media_sections = st.builds(
    MediaDescription,
    media=st.sampled_from(["audio", "video", "text"]),
    port=st.integers(0, 65535),
    proto=st.just("RTP/AVP"),
    formats=st.lists(payload_type.map(str), min_size=1, max_size=5),
    port_count=st.one_of(st.none(), st.integers(1, 4)),
    connection=connections,
    lines=st.lists(extra_line, max_size=6),
)
descriptions = st.builds(
    SessionDescription,
    origin=st.builds(
        Origin,
        token,
        st.integers(0, 2**63),
        st.integers(0, 2**63),
        st.just("IN"),
        st.just("IP4"),
        address,
    ),
    session_name=free_text,
    connection=st.one_of(st.none(), connections),
    lines=st.lists(st.one_of(st.just(("t", "0 0")), extra_line), max_size=6),
    media=st.lists(media_sections, max_size=3),
)


@settings(max_examples=300)
@given(descriptions)
def test_round_trip_of_generated_descriptions(sdp: SessionDescription) -> None:
    assert SessionDescription.parse(sdp.to_bytes()) == sdp
