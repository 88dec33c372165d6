"""The drivers behind ``trunkline.db``: ``sqlite`` (the embedded default) and ``postgres``
(asyncpg). Each module is imported only when a URL asks for it, so SQLite users need not have
asyncpg installed."""
