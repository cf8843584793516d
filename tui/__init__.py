"""The Textual technician console, ``branchline tui``.

A client of the edge's local control API (HTTP/JSON and Server-Sent Events on the
unix socket ``api.socket``): it reads and acts only through that API, so it must not
import the daemon's live parts (``edge_core.sip``, ``media``, ``acd``, ``store``...).

* ``client.py``: :class:`EdgeClient`, httpx on the unix socket, errors as
  :class:`EdgeError`; the event stream as an async iterator.
* ``messages.py``: what the workers post to the app (snapshots coalesce).
* ``app.py``: :class:`ConsoleApp`, its workers (event stream, refresher) and actions.
* ``panes/``: one module per tab (overview, calls and queues, trunks and phones,
  diagnostics, configuration, drill and maintenance, events).
* ``screens.py``: the confirmation and help screens; ``commands.py``: the command
  palette; ``format.py``: plain-text formatting shared by the panes.
"""
