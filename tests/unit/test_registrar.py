"""Registrar bindings (RFC 3261 §10.3) with injected time."""

from __future__ import annotations

from edge_core.sip.message import Request, new_branch
from edge_core.sip.registrar import Registrar


def register(contact: str | None, *, cseq: int = 1, expires: str | None = None, call_id: str = "c1") -> Request:
    headers = [
        ["Via", f"SIP/2.0/UDP 127.0.0.1:5070;branch={new_branch()}"],
        ["From", "<sip:1001@b.local>;tag=f1"],
        ["To", "<sip:1001@b.local>"],
        ["Call-ID", call_id],
        ["CSeq", f"{cseq} REGISTER"],
    ]
    if contact is not None:
        headers.append(["Contact", contact])
    if expires is not None:
        headers.append(["Expires", expires])
    return Request("REGISTER", "sip:b.local", headers)


def make() -> Registrar:
    return Registrar("b.local", min_expires_s=60, max_expires_s=3600)


def test_register_binds_and_answers_contacts() -> None:
    reg = make()
    resp = reg.handle_register(register("<sip:1001@127.0.0.1:5070>;expires=120"), "1001", ("127.0.0.1", 5070), "udp", 1000.0, "t")
    assert resp.status == 200
    assert resp.header_values("Contact") == ["<sip:1001@127.0.0.1:5070>;expires=120"]
    [binding] = reg.lookup("1001", 1000.0)
    assert binding.source == ("127.0.0.1", 5070) and binding.expires_at == 1120.0
    assert reg.changes and not reg.changes[-1].removed


def test_binding_lapses() -> None:
    reg = make()
    reg.handle_register(register("<sip:1001@h:1>", expires="60"), "1001", ("h", 1), "udp", 0.0, "t")
    assert reg.lookup("1001", 59.0)
    assert reg.lookup("1001", 60.0) == []
    reg.expire(61.0)
    assert reg.changes[-1].removed


def test_too_brief_gets_423_with_min_expires() -> None:
    resp = make().handle_register(register("<sip:1001@h:1>;expires=10"), "1001", ("h", 1), "udp", 0.0, "t")
    assert resp.status == 423 and resp.header("Min-Expires") == "60"


def test_expires_clamped_to_maximum() -> None:
    reg = make()
    reg.handle_register(register("<sip:1001@h:1>", expires="999999"), "1001", ("h", 1), "udp", 0.0, "t")
    assert reg.lookup("1001", 0.0)[0].expires_at == 3600.0


def test_unregister_with_expires_zero_and_wildcard() -> None:
    reg = make()
    reg.handle_register(register("<sip:1001@h:1>"), "1001", ("h", 1), "udp", 0.0, "t")
    reg.handle_register(register("<sip:1001@h:2>", cseq=2), "1001", ("h", 2), "udp", 0.0, "t")
    assert len(reg.lookup("1001", 1.0)) == 2
    reg.handle_register(register("<sip:1001@h:1>;expires=0", cseq=3), "1001", ("h", 1), "udp", 1.0, "t")
    assert [b.contact for b in reg.lookup("1001", 1.0)] == ["sip:1001@h:2"]
    bad = reg.handle_register(register("*", cseq=4), "1001", ("h", 1), "udp", 1.0, "t")
    assert bad.status == 400
    ok = reg.handle_register(register("*", cseq=5, expires="0"), "1001", ("h", 1), "udp", 1.0, "t")
    assert ok.status == 200 and reg.lookup("1001", 1.0) == []


def test_out_of_order_register_is_refused() -> None:
    reg = make()
    reg.handle_register(register("<sip:1001@h:1>", cseq=5), "1001", ("h", 1), "udp", 0.0, "t")
    resp = reg.handle_register(register("<sip:1001@h:1>", cseq=4), "1001", ("h", 1), "udp", 0.0, "t")
    assert resp.status == 500


def test_query_without_contact_lists_bindings() -> None:
    reg = make()
    reg.handle_register(register("<sip:1001@h:1>", expires="100"), "1001", ("h", 1), "udp", 0.0, "t")
    resp = reg.handle_register(register(None, cseq=2), "1001", ("h", 1), "udp", 10.0, "t")
    assert resp.header_values("Contact") == ["<sip:1001@h:1>;expires=90"]


def test_restore_skips_lapsed_bindings() -> None:
    reg = make()
    reg.handle_register(register("<sip:1001@h:1>", expires="100"), "1001", ("h", 1), "udp", 0.0, "t")
    saved = reg.lookup("1001", 0.0)
    fresh = make()
    fresh.restore(saved, 50.0)
    assert fresh.lookup("1001", 50.0) == saved
    late = make()
    late.restore(saved, 200.0)
    assert late.lookup("1001", 200.0) == []
