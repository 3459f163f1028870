"""The delivery history: a store of every delivery's job and attempts, fed from Kafka.

``rows`` merges records into one row per delivery (pure), ``store`` keeps the rows in SQLite or
PostgreSQL with the consumer offsets they were built from (``tables``: its schema and SQL,
``query``: searches and cursors), ``schemas`` are the answers the admin API serves, ``ingest``
is that consumer.
"""
