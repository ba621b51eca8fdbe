"""``python -m rag.llm.llama_server --model PATH [llama_cpp.server options]``: llama-cpp-python's
OpenAI-compatible server with this machine's llama.cpp CPU variant loaded first.

The portable build (``make local``) keeps its CPU code in per-variant libraries that plain
``python -m llama_cpp.server`` never loads ("no backends are loaded"); this launcher loads the one
:mod:`rag.llm.cpu_variant` chose, then hands over to llama_cpp.server with the same arguments.
"""

from __future__ import annotations

import sys

from rag.llm.cpu_variant import ensure_cpu_backend


def main() -> None:
    args = sys.argv[1:]
    if "--model" not in args or args.index("--model") + 1 >= len(args):
        sys.exit("usage: python -m rag.llm.llama_server --model PATH [llama_cpp.server options]")
    ensure_cpu_backend(args[args.index("--model") + 1])
    from llama_cpp.server.__main__ import main as serve

    sys.argv = ["llama_cpp.server", *args]
    serve()


if __name__ == "__main__":
    main()
