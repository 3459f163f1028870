"""The ``hookstream`` command line: every command, the admin API client, tables, the demo.

``main`` (the entry point and service commands), ``admin`` and ``event_types`` (admin API
commands), ``api_client`` (the small HTTP client of the admin API), ``tables``, ``demo``.
"""
