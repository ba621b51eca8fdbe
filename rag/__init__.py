"""Grounded document chat: answers whose every claim is a verified verbatim quote."""

from rag import offline as _offline  # noqa: F401  (must run before llama-index/chroma/gradio import)

__all__ = ["Assistant", "Config"]


def __getattr__(name):  # lazy: `import rag` stays cheap for the CLI
    if name == "Assistant":
        from rag.assistant import Assistant

        return Assistant
    if name == "Config":
        from rag.config import Config

        return Config
    raise AttributeError(name)
