"""A chat rendered as plain text for base (non-instruct) models, which have no chat template:
the instructions, the user's message, then a cue (``Answer:``) the model continues."""

from __future__ import annotations

from typing import Sequence

from llama_index.core.base.llms.types import ChatMessage, MessageRole

# Base (non-instruct) models complete a document; these end the answer.
COMPLETION_STOPS = ("\nQuestion:", "\nAnswer:", "\n\n\n", "<end_of_turn>", "===")


def completion_prompt(messages: Sequence[ChatMessage]) -> str:
    """A plain-text rendering of a chat for base models: the instructions, then the
    user's message, then an ``Answer:`` cue the model continues."""
    system = "\n".join(m.content or "" for m in messages if m.role == MessageRole.SYSTEM)
    user = "\n\n".join(m.content or "" for m in messages if m.role == MessageRole.USER)
    cue = "Standalone question:" if user.rstrip().endswith("Standalone question:") else "Answer:"
    if user.rstrip().endswith(cue):
        user = user.rstrip()[: -len(cue)].rstrip()
    return f"{system}\n\n{user}\n\n{cue}"
