"""Call routing: the dial plan now; trunk groups, trunk health and the WAN monitor with
the survivable-mode switch later. Must not import sip transports or the media engine."""
