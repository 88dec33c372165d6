"""trunkline: Erlang/OTP's way of building fault-tolerant systems, on asyncio."""

__version__ = "0.1.0"
