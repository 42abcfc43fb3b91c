"""Federated fine-tuning: partitions, the client update, aggregation, engines and the server loop.

Pure functions carry the logic (``client.client_update``, ``aggregate.aggregate``,
``aggregate.server_step``); ``engine_local`` and ``flower`` only move states between them.
"""
