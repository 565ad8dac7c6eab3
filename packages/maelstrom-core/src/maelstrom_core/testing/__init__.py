"""Helpers for tests of maelstrom and of programs built on it. No pytest import."""

from maelstrom_core.testing._streams import memory_message_stream_pair as memory_message_stream_pair

__all__ = ["memory_message_stream_pair"]
