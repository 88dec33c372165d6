"""trunkline.server: a node's settings and its supervision tree (``trunkline serve``).

::

    from trunkline.server import NodeContext, TrunklineNode, load_settings

    settings = load_settings(env=os.environ, config_path="trunkline.toml")
    sys.exit(TrunklineNode(NodeContext(settings)).main())

See ``docs/server.md``.
"""

from .context import NodeContext, WebHook
from .logs import configure_logging
from .node import DatabaseServer, TrunklineNode, start_jobs
from .settings import (
    DEFAULT_DATABASE,
    DEFAULT_HOST,
    DEFAULT_PORT,
    ChatSettings,
    JobsSettings,
    Settings,
    SettingsError,
    env_var,
    load_settings,
)

__all__ = [
    "DEFAULT_DATABASE",
    "DEFAULT_HOST",
    "DEFAULT_PORT",
    "ChatSettings",
    "DatabaseServer",
    "JobsSettings",
    "NodeContext",
    "Settings",
    "SettingsError",
    "TrunklineNode",
    "WebHook",
    "configure_logging",
    "env_var",
    "load_settings",
    "start_jobs",
]
