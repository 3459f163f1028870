"""The matcher process (``hookstream matcher``): domain events in, delivery jobs out.

``app`` (the Faust app: topics and agents, wiring only), ``agents`` (the agents' loops, the
dead-letter helper), ``routing`` (the per-record decisions, pure), ``views`` (the directory and
catalog it routes with, and the ops endpoints), ``faustio`` (how it runs Faust).
"""
