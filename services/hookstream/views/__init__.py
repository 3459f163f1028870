"""Live in-memory views of compacted topics, kept by every process that needs them.

``directory`` (webhook configs with a trigger index), ``catalog`` (event types), ``policy``
(the global delivery policy).
"""
