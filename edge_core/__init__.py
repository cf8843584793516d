"""The edge daemon: the branch's call controller. Must not import fleet/ or tui/ (the CLI dispatcher loads them lazily by name)."""
