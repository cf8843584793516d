"""IVR flows from the site config, as data, and the sans-I/O interpreter that runs them.

* ``model`` -- the pydantic models of a flow (``SiteConfig.flows``) and their graph checks.
* ``runner`` -- :class:`~edge_core.ivr.runner.FlowRun`, one per call: events in with an
  injected ``now``/``wall``, actions (Play, EnterQueue, Transfer, ...) out.
* ``prompts`` -- the prompt set (8 kHz mono 16-bit WAVs) and the default-set generator.

Must not import asyncio, sip, the media engine or the ACD: the adapter that owns the
call feeds the runner and carries out its actions.
"""
