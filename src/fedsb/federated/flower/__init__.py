"""The Flower engine (flwr 1.41, Message API): thin shells over the pure client and server code.

``engine.GridEngine`` gives ``server.federate`` an ``engines.Engine`` over a Flower ``Grid``;
``client_app.app`` answers its messages (the partition-id query and calibration steps with
Flower and numpy only, training via ``node`` with ``client.client_step``/
``client_init_step``); ``server_app.app`` is the ServerApp of ``flwr run`` (deployment, app
directory ``flower/`` of the repository); ``simulation`` runs both in the Flower Simulation
Engine (Ray). Nothing here is imported by ``import fedsb``.
"""
