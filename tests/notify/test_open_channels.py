"""``notify.OpenChannels``: a node's webhooks keep their connections alive while its queues
run, and close them when it stops."""

from __future__ import annotations

import pytest
from channel_servers import delivery, port_recorder, serve
from notify_helpers import RecordingChannel

from trunkline import db, jobs, notify, otp
from trunkline.notify import Rendered
from trunkline.notify.channels import WebhookChannel, WebhookSettings

SECRET = "a webhook secret of some length"
MESSAGE = Rendered(subject="s", text="t", html=None, data={})


@pytest.mark.real_clock
async def test_a_nodes_webhooks_are_open_while_it_runs(tmp_path: object) -> None:
    app, ports = port_recorder()
    webhook = WebhookChannel(WebhookSettings(secret=SECRET, allow=("127.0.0.1",)))
    plugin = notify.OpenChannels([webhook, RecordingChannel("email")])
    assert plugin.channels == [webhook]  # the one that opens
    async with serve(app) as base, db.connect(f"sqlite:///{tmp_path}/jobs.db") as database:
        node = jobs.Jobs(database, registry=jobs.WorkerRegistry(), queues={}, plugins=[plugin])
        supervisor = await node.start()
        try:
            for _ in range(3):
                await webhook.send(delivery(f"{base}/hook"), MESSAGE)
        finally:
            await otp.stop(supervisor, "shutdown")
        assert len(set(ports)) == 1  # open: one kept-alive connection
        for _ in range(2):
            await webhook.send(delivery(f"{base}/hook"), MESSAGE)
        assert len(set(ports[3:])) == 2  # closed with the node: a connection each again
