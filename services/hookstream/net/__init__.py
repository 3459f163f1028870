"""HTTP towards receivers, shared by the sender and the admin's ping.

``delivery`` (one POST and its verdict), ``egress`` (the shared client and per-webhook TLS),
``tls``, ``ssrf`` (the address guard), ``proxy`` (the egress proxy), ``oauth`` (client tokens).
"""
