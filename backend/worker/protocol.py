"""The worker's wire protocol: what the client (:mod:`.client`) and server (:mod:`.server`) say.

Protocol (one JSON object per line, UTF-8):

- worker: ``{"type": "ready", "protocol": 1, "version": ..., "jobs": [...]}`` once at start.
- client: ``{"type": "request", "id": "7", "job": "predict", "params": {...}}``.
- worker: ``{"type": "progress", "id": "7", "fraction": 0.4, "message": "..."}`` (any number),
  then exactly one of ``{"type": "result", "id": "7", "result": {...}}``,
  ``{"type": "error", "id": "7", "error": "InputMismatchError", "message": "..."}`` or
  ``{"type": "cancelled", "id": "7", "message": "..."}``.
- client: ``{"type": "cancel"}`` stops the running job within one batch; ``{"type": "shutdown"}``
  (or closing stdin) ends the worker once the running job is done. SIGTERM cancels the running job
  and ends the worker cleanly (exit code 0, no partial outputs).
"""

PROTOCOL_VERSION = 1
# Event types that end a job: exactly one of them answers each request.
TERMINAL_EVENTS = ("result", "error", "cancelled")
