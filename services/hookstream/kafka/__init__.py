"""Kafka plumbing shared by every process: clients, security options, topics, the cluster.

``clients`` (producers and consumers from settings), ``security`` (one security translation per
client library), ``follower`` (following a compacted topic), ``topics`` (provisioning),
``cluster`` (which cluster to talk to), ``membership`` (consumer-group membership checks).
"""
