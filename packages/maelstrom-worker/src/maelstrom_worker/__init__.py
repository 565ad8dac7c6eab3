"""maelstrom-worker."""


def __getattr__(name: str) -> str:
    # Lazily: importlib.metadata is slow to import, and programs need the version rarely.
    if name == "__version__":
        from importlib.metadata import version

        return version("maelstrom-worker")
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
