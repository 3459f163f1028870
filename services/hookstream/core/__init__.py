"""The pure core: rules and state machines that decide, with no I/O (no Kafka, HTTP, files or env).

Triggers and event types, the registry rules, payloads and signing, offsets and the ack window,
retry jitter, circuit breakers, fair lanes, and the one exception tree (``errors``).
"""
