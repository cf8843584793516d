"""Digest authentication (RFC 7616): known answers, round trips, every refusal reason."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from edge_core.sip.auth import (
    AuthResult,
    DigestChallenger,
    build_authorization,
    compute_response,
    parse_challenge,
)

# RFC 7616 §3.9.1: the "Mufasa" / "Circle of Life" example (GET /dir/index.html).
RFC_REALM = "http-auth@example.org"
RFC_NONCE = "7ypf/xlj9XXwfDPEoM4URrv/xwf94BcCAzFZH4GiTo0v"
RFC_OPAQUE = "FQhe/qaU925kfnzjCev0ciny7QMkPqMAFRtzCUYo5tdS"
RFC_CNONCE = "f2/wE4q74E6zIJEtWaHKaf5wv/H5QzzpXusqGemxURZJ"
RFC_RESPONSES = {
    "MD5": "8ca523f5e9506fed4657c9700eebdbec",
    "SHA-256": "753927fa0e85d155564e2e272a28d1802ca10daf4496794697cf8db5856cb6c1",
}

USERS = {"1001": "s3cret", "alice": "wonderland"}
REALM = "branch-17.example.net"
SECRET = b"k" * 32
URI = "sip:2000@branch-17.example.net"


def rfc_challenge(algorithm: str) -> str:
    return (
        f'Digest realm="{RFC_REALM}", qop="auth, auth-int", algorithm={algorithm}, '
        f'nonce="{RFC_NONCE}", opaque="{RFC_OPAQUE}"'
    )


@pytest.mark.parametrize("algorithm", ["MD5", "SHA-256"])
def test_rfc7616_3_9_1_known_answer(algorithm: str) -> None:
    got = compute_response(
        algorithm, username="Mufasa", realm=RFC_REALM, password="Circle of Life",
        method="GET", uri="/dir/index.html", nonce=RFC_NONCE, nc="00000001",
        cnonce=RFC_CNONCE, qop="auth",
    )  # fmt: skip
    assert got == RFC_RESPONSES[algorithm]


@pytest.mark.parametrize("algorithm", ["MD5", "SHA-256"])
def test_rfc7616_3_9_1_authorization_header(algorithm: str) -> None:
    """The whole Authorization value of the RFC's example, in the RFC's order."""
    value = build_authorization(
        rfc_challenge(algorithm), method="GET", uri="/dir/index.html", username="Mufasa",
        password="Circle of Life", cnonce=RFC_CNONCE,
    )  # fmt: skip
    assert value == (
        f'Digest username="Mufasa", realm="{RFC_REALM}", uri="/dir/index.html", '
        f'algorithm={algorithm}, nonce="{RFC_NONCE}", nc=00000001, cnonce="{RFC_CNONCE}", '
        f'qop=auth, response="{RFC_RESPONSES[algorithm]}", opaque="{RFC_OPAQUE}"'
    )


def test_rfc2069_form_without_qop() -> None:
    """RFC 2617 §3.5's example challenge answered in the RFC 2069 form (no qop)."""
    challenge = 'Digest realm="testrealm@host.com", nonce="dcd98b7102dd2f0e8b11d0f600bfb0c093"'
    value = build_authorization(
        challenge, method="GET", uri="/dir/index.html", username="Mufasa",
        password="CircleOfLife", cnonce="unused",
    )  # fmt: skip
    assert 'response="1949323746fe6a43ef61f9606e7febea"' in value
    assert "qop=" not in value and "nc=" not in value


def test_parse_challenge_quotes_commas_escapes_and_case() -> None:
    scheme, params = parse_challenge(
        'Digest Realm="a, b=c", QOP="auth,auth-int" ,algorithm=SHA-256,nonce="x\\"y"'
    )
    assert scheme == "Digest"
    assert params == {"realm": "a, b=c", "qop": "auth,auth-int", "algorithm": "SHA-256", "nonce": 'x"y'}


@pytest.mark.parametrize(
    "bad",
    ["", "   ", 'Digest realm="unterminated', "Digest realm", "Digest =x", 'Digest a="1" b="2"',
     "Digest a=1, a=2", "Digest a=", "Di gest"],
)  # fmt: skip
def test_parse_challenge_refuses_malformed(bad: str) -> None:
    with pytest.raises(ValueError):
        parse_challenge(bad)


# -- the server side -----------------------------------------------------------------


def answer(challenge: str, *, username: str = "1001", password: str = "s3cret",
           method: str = "INVITE", uri: str = URI, nc: int = 1, cnonce: str = "0a4f113b") -> str:  # fmt: skip
    return build_authorization(
        challenge, method=method, uri=uri, username=username, password=password,
        cnonce=cnonce, nc=nc,
    )  # fmt: skip


def test_challenge_lists_preferred_algorithm_first_with_one_nonce() -> None:
    values = DigestChallenger(REALM, SECRET).challenge(100.0)
    assert len(values) == 2
    parsed = [parse_challenge(v)[1] for v in values]
    assert [p["algorithm"] for p in parsed] == ["SHA-256", "MD5"]
    assert all(p["qop"] == "auth" and p["realm"] == REALM for p in parsed)
    assert parsed[0]["nonce"] == parsed[1]["nonce"]
    assert "stale" not in parsed[0]
    stale = DigestChallenger(REALM, SECRET).challenge(100.0, stale=True)
    assert parse_challenge(stale[0])[1]["stale"] == "true"


@pytest.mark.parametrize("index, algorithm", [(0, "SHA-256"), (1, "MD5")])
def test_round_trip_both_algorithms(index: int, algorithm: str) -> None:
    challenger = DigestChallenger(REALM, SECRET)
    challenge = challenger.challenge(100.0)[index]
    result = challenger.verify(answer(challenge), "INVITE", USERS.get, 101.0, uri=URI)
    assert result == AuthResult(True, "1001", False, "ok")
    assert f"algorithm={algorithm}" in answer(challenge)


def test_sipp_style_md5_answer_is_accepted() -> None:
    """SIPp's [authentication]: MD5, qop=auth, unquoted nc, no space after commas."""
    challenger = DigestChallenger(REALM, SECRET, algorithms=("MD5",))
    (challenge,) = challenger.challenge(0.0)
    nonce = parse_challenge(challenge)[1]["nonce"]
    response = compute_response(
        "MD5", username="1001", realm=REALM, password="s3cret", method="REGISTER",
        uri="sip:branch-17.example.net", nonce=nonce, nc="00000001", cnonce="6b8b4567327b23c6",
        qop="auth",
    )  # fmt: skip
    value = (
        f'Digest username="1001",realm="{REALM}",cnonce="6b8b4567327b23c6",nc=00000001,'
        f'qop=auth,uri="sip:branch-17.example.net",nonce="{nonce}",response="{response}",'
        f"algorithm=MD5"
    )
    assert challenger.verify(value, "REGISTER", USERS.get, 1.0).ok


def test_md5_without_qop_is_accepted_sha256_without_qop_is_not() -> None:
    challenger = DigestChallenger(REALM, SECRET)
    nonce = parse_challenge(challenger.challenge(0.0)[0])[1]["nonce"]
    for algorithm, ok in (("MD5", True), ("SHA-256", False)):
        response = compute_response(
            algorithm, username="alice", realm=REALM, password="wonderland", method="BYE",
            uri=URI, nonce=nonce,
        )  # fmt: skip
        value = (
            f'Digest username="alice", realm="{REALM}", nonce="{nonce}", uri="{URI}", '
            f'response="{response}", algorithm={algorithm}'
        )
        result = challenger.verify(value, "BYE", USERS.get, 1.0)
        assert result.ok is ok, result.reason


def test_stale_nonce_after_ttl() -> None:
    challenger = DigestChallenger(REALM, SECRET, nonce_ttl_s=300.0)
    value = answer(challenger.challenge(1000.0)[0])
    assert challenger.verify(value, "INVITE", USERS.get, 1300.0).ok
    late = challenger.verify(answer(challenger.challenge(1000.0)[0], nc=1), "INVITE", USERS.get, 1300.5)
    assert late == AuthResult(False, "1001", True, "nonce expired")


def test_expired_nonce_with_wrong_password_is_not_stale() -> None:
    """RFC 7616 §3.3: stale only when the digest itself is right."""
    challenger = DigestChallenger(REALM, SECRET)
    value = answer(challenger.challenge(0.0)[0], password="guess")
    assert challenger.verify(value, "INVITE", USERS.get, 10_000.0) == AuthResult(
        False, "1001", False, "wrong password"
    )


def test_forged_nonce_and_other_secret() -> None:
    ours = DigestChallenger(REALM, SECRET)
    theirs = DigestChallenger(REALM, b"another secret")
    assert ours.verify(answer(theirs.challenge(0.0)[0]), "INVITE", USERS.get, 1.0).reason == (
        "nonce not issued by us"
    )
    forged = f'Digest realm="{REALM}", qop="auth", algorithm=MD5, nonce="AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"'
    assert ours.verify(answer(forged), "INVITE", USERS.get, 1.0).reason == "nonce not issued by us"
    not_base64 = forged.replace("AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA", "!!é")
    assert ours.verify(answer(not_base64), "INVITE", USERS.get, 1.0).reason == "nonce not issued by us"


def test_realm_is_bound_into_the_nonce() -> None:
    other_realm = DigestChallenger("elsewhere.example.net", SECRET)
    challenge = other_realm.challenge(0.0)[0].replace("elsewhere.example.net", REALM)
    result = DigestChallenger(REALM, SECRET).verify(answer(challenge), "INVITE", USERS.get, 1.0)
    assert result.reason == "nonce not issued by us"


def test_refusal_reasons() -> None:
    challenger = DigestChallenger(REALM, SECRET)
    challenge = challenger.challenge(0.0)[0]

    def verify(value: str, method: str = "INVITE") -> AuthResult:
        return challenger.verify(value, method, USERS.get, 1.0, uri=URI)

    assert verify(answer(challenge, password="nope")).reason == "wrong password"
    assert verify(answer(challenge), method="REGISTER").reason == "wrong password"
    unknown = verify(answer(challenge, username="mallory"))
    assert unknown == AuthResult(False, "mallory", False, "unknown user 'mallory'")
    assert verify(answer(challenge.replace(REALM, "evil.example"))).reason == (
        "realm mismatch: 'evil.example'"
    )
    assert verify(answer(challenge, uri="sip:9999@x")).reason == "uri mismatch: 'sip:9999@x'"
    md5_only = DigestChallenger(REALM, SECRET, algorithms=("MD5",))
    assert md5_only.verify(answer(challenge), "INVITE", USERS.get, 1.0).reason == (
        "unsupported algorithm 'SHA-256'"
    )
    sess = answer(challenge).replace("algorithm=SHA-256", "algorithm=SHA-256-sess")
    assert verify(sess).reason == "unsupported algorithm 'SHA-256-sess'"
    assert verify(answer(challenge) + ", userhash=true").reason.startswith("unsupported userhash")
    assert verify(answer(challenge).replace("qop=auth", "qop=auth-int")).reason == (
        "unsupported qop 'auth-int'"
    )
    assert verify(answer(challenge).replace("nc=00000001", "nc=1")).reason.startswith(
        "malformed Authorization: nc '1'"
    )
    assert verify('Basic dXNlcjpwYXNz').reason == "malformed Authorization: scheme 'Basic' is not Digest"
    assert verify('Digest username="1001"').reason == (
        "malformed Authorization: missing realm, nonce, uri, response"
    )
    assert verify('Digest username="1001').reason.startswith("malformed Authorization: unterminated")


def test_replayed_nonce_count_is_refused_and_higher_counts_pass() -> None:
    challenger = DigestChallenger(REALM, SECRET)
    challenge = challenger.challenge(0.0)[0]
    first = answer(challenge, nc=1)
    assert challenger.verify(first, "INVITE", USERS.get, 1.0).ok
    replay = challenger.verify(first, "INVITE", USERS.get, 2.0)
    assert replay == AuthResult(False, "1001", False, "nonce count replayed")
    assert challenger.verify(answer(challenge, nc=2), "INVITE", USERS.get, 3.0).ok
    assert challenger.verify(answer(challenge, nc=7), "INVITE", USERS.get, 4.0).ok
    assert challenger.verify(answer(challenge, nc=5), "INVITE", USERS.get, 5.0).reason == (
        "nonce count replayed"
    )


def test_replay_window_is_bounded_and_eviction_means_stale_not_replayable() -> None:
    challenger = DigestChallenger(REALM, SECRET, replay_window=3)
    challenges = [challenger.challenge(float(t))[0] for t in range(5)]
    for t, challenge in enumerate(challenges):
        assert challenger.verify(answer(challenge), "INVITE", USERS.get, 10.0 + t).ok
    assert len(challenger._highest_nc) == 3
    replay = challenger.verify(answer(challenges[0]), "INVITE", USERS.get, 20.0)
    assert replay.ok is False and replay.stale is True  # re-challenged, never accepted
    assert challenger.verify(answer(challenges[4]), "INVITE", USERS.get, 21.0).reason == (
        "nonce count replayed"
    )


def test_constructor_refuses_unknown_algorithms_and_empty_secret() -> None:
    with pytest.raises(ValueError):
        DigestChallenger(REALM, SECRET, algorithms=("SHA-512-256",))
    with pytest.raises(ValueError):
        DigestChallenger(REALM, b"")


def test_build_authorization_refuses_what_it_cannot_answer() -> None:
    for challenge in ('Basic realm="x"', 'Digest realm="x", nonce="n", algorithm=SHA-512-256',
                      'Digest realm="x", nonce="n", qop="auth-int"', 'Digest realm="x"'):  # fmt: skip
        with pytest.raises(ValueError):
            answer(challenge)


@settings(max_examples=500, deadline=None)
@given(st.text(max_size=300))
def test_arbitrary_authorization_never_raises(value: str) -> None:
    result = DigestChallenger(REALM, SECRET).verify(value, "INVITE", USERS.get, 1.0)
    assert result.ok is False and result.reason


_param = st.tuples(
    st.sampled_from(["username", "realm", "nonce", "uri", "response", "qop", "nc", "cnonce",
                     "algorithm", "userhash", "opaque", "x"]),
    st.one_of(st.text(max_size=40), st.sampled_from(["auth", "MD5", "SHA-256", "00000001", REALM])),
    st.booleans(),
)  # fmt: skip


@settings(max_examples=500, deadline=None)
@given(st.lists(_param, max_size=12))
def test_digest_shaped_garbage_never_raises(params: list[tuple[str, str, bool]]) -> None:
    body = ", ".join(
        f'{k}="{v}"' if quoted else f"{k}={v}" for k, v, quoted in params
    )
    result = DigestChallenger(REALM, SECRET).verify(f"Digest {body}", "INVITE", USERS.get, 1.0)
    assert result.ok is False and result.reason
