"""maelstrom-core: the library every maelstrom program is built on."""


def __getattr__(name: str) -> str:
    # Lazily: importlib.metadata is slow to import, and programs need the version rarely.
    if name == "__version__":
        from importlib.metadata import version

        return version("maelstrom-core")
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
