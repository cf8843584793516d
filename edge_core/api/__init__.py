"""The local control API (HTTP/JSON over a unix socket) for the TUI, simulators and provisioning (to come with the console issue)."""
