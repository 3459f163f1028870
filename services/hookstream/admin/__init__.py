"""The admin REST API (``hookstream admin``): webhooks, global settings, notification status.

Modules: ``app`` (the factory and its one lifespan), ``state`` (every I/O lifetime), ``auth``,
``schemas`` (the API's own models), ``problems`` (error bodies), ``store`` (notification status),
``webhooks``/``deliveries``/``policy_routes``/``health`` (routes), ``ping``, and ``client`` (the
small HTTP client the CLI uses; it imports nothing of the server).
"""
