"""The local subprocess worker: a separate Python process that runs inference and training jobs.

- :mod:`.protocol`: the JSON-lines messages between the two sides;
- :mod:`.server`: the worker itself (``python -m backend.worker``, ``msgfm worker``);
- :mod:`.client`: starts a worker, runs a job to its end (progress, log, cancel), for the plugin;
- :mod:`.interpreter`: finds the Python to run it with (inside QGIS ``sys.executable`` is QGIS).

A job is cancelled by a ``cancel`` message, which the server turns into the job's
:class:`backend.inference.cancel.CancelToken`; the client terminates a worker whose job does not
stop in time (:meth:`.client.WorkerClient.run`).

Importing this package imports none of them (no numpy, no torch): the plugin imports what it uses.
"""
