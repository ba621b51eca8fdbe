"""A local model in a child process: a segfault, an abort or a hang in llama.cpp costs the request
in flight, never the process that asked (``rag serve``, its UI and API stay up).

:class:`ModelWorker` starts the child on first use (``python -m rag.llm.worker``, which imports
only llama-cpp-python, :mod:`rag.llm.llama_engine` and the CPU variant loader; not
multiprocessing's spawn, which re-runs the caller's main script and so breaks any script without
an ``if __name__ == "__main__"`` guard), sends it one call at a time over a pipe and reads the
answer (a result, or streamed items, or an error).
When the child dies or stays silent past ``silence`` seconds, the call raises
:class:`ModelProcessDied` with the reason (the signal's name), the child is reaped, and the next
call starts a new one. An abandoned stream is cancelled: the child stops between two tokens.

Why a child of our own and not ``llama_cpp.server``: the judge and the claim check read the
next-token log-probabilities at the prompt's last position. Through llama_cpp.server that needs
``logits_all`` (a score row for every position of the context: 1.2 GB for Qwen's 151k
vocabulary at 2,048 tokens, and the output layer run on every prompt token); the engine here
reads the last row only. The model's KV prefix persists in the child between calls exactly as
it did in-process.
"""

from __future__ import annotations

import itertools
import json
import os
import subprocess
import sys
import threading
from multiprocessing.connection import Connection
from typing import Any, Iterator

from rag.llm.cpu_variant import signal_name

LOAD_TIMEOUT = 300.0


class ModelProcessDied(RuntimeError):
    """The model's child process died or hung during a call; ``reason`` says how."""

    def __init__(self, reason: str):
        super().__init__(reason)
        self.reason = reason


class ModelError(RuntimeError):
    """The model raised an ordinary error in its child (e.g. a prompt longer than the context)."""


def _serve(inbox: Connection, conn: Connection, engine_args: dict) -> None:  # runs in the child
    try:
        from rag.llm.llama_engine import LlamaEngine

        engine = LlamaEngine(**engine_args)
    except BaseException as exc:  # noqa: BLE001  (reported to the parent, then exit)
        conn.send(("error", 0, type(exc).__name__, str(exc)))
        return
    conn.send(("ready", 0, None, None))
    while True:
        try:
            rid, method, args = inbox.recv()
        except (EOFError, OSError):
            return
        if method == "cancel":
            continue
        try:
            result = getattr(engine, method)(*args)
            if method.startswith("stream"):
                for item in result:
                    conn.send(("item", rid, item, None))
                    if inbox.poll():  # only a cancel can arrive while the parent reads this stream
                        inbox.recv()
                        break
                conn.send(("end", rid, None, None))
            else:
                conn.send(("result", rid, result, None))
        except Exception as exc:  # noqa: BLE001
            conn.send(("error", rid, type(exc).__name__, str(exc)))


def death_reason(exitcode: int | None) -> str:
    if exitcode is None:
        return "stopped answering"
    if exitcode < 0:
        return f"was killed by {signal_name(exitcode)}"
    return f"exited with code {exitcode}"


class ModelWorker:
    """The child process that holds one model; ``call`` and ``stream`` are serialised."""

    def __init__(self, engine_args: dict, silence: float = 120.0, name: str = "model"):
        self.engine_args, self.silence, self.name = engine_args, silence, name
        self._proc = None
        self._conn = self._send_conn = None
        self._ids = itertools.count(1)
        self._lock = threading.RLock()

    # ------------------------------------------------------------ process

    def _start(self) -> None:
        to_child_r, to_child_w = os.pipe()
        from_child_r, from_child_w = os.pipe()
        try:
            proc = subprocess.Popen([sys.executable, "-m", "rag.llm.worker", str(to_child_r), str(from_child_w),
                                     json.dumps(self.engine_args)], pass_fds=(to_child_r, from_child_w),
                                    stdin=subprocess.DEVNULL)
        finally:
            os.close(to_child_r)
            os.close(from_child_w)
        self._proc = proc
        self._send_conn = Connection(to_child_w, readable=False)
        self._conn = Connection(from_child_r, writable=False)
        kind, _, a, b = self._recv(0, LOAD_TIMEOUT)
        if kind == "error":
            self._reap()
            raise ModelError(f"the model could not be loaded: {a}: {b}")

    def _reap(self) -> str:
        proc = self._proc
        for conn in (self._conn, self._send_conn):
            if conn is not None:
                conn.close()
        self._proc = self._conn = self._send_conn = None
        if proc is None:
            return "was not running"
        if proc.poll() is None:
            proc.kill()
        try:
            proc.wait(5)
        except subprocess.TimeoutExpired:
            pass
        return death_reason(proc.returncode)

    def close(self) -> None:
        with self._lock:
            self._reap()

    def _died(self) -> ModelProcessDied:
        reason = self._reap()
        return ModelProcessDied(f"the {self.name} process {reason} during this request; "
                                "it is restarted for the next one")

    def _recv(self, rid: int, timeout: float) -> tuple:
        conn, proc = self._conn, self._proc
        while True:
            waited = 0.0
            while not conn.poll(0.25):
                waited += 0.25
                if proc.poll() is not None:
                    raise self._died()
                if waited >= timeout:
                    self._reap()
                    raise ModelProcessDied(f"the {self.name} process sent nothing for {timeout:.0f} s and was "
                                           "stopped; it is restarted for the next request")
            try:
                msg = conn.recv()
            except (EOFError, OSError):
                raise self._died() from None
            if msg[1] in (rid, 0):
                return msg
            # a message of an earlier, abandoned call: skip it

    def _send(self, method: str, args: tuple) -> int:
        if self._proc is None or self._proc.poll() is not None:
            if self._proc is not None:
                self._reap()
            self._start()
        rid = next(self._ids)
        try:
            self._send_conn.send((rid, method, args))
        except (BrokenPipeError, OSError):
            raise self._died() from None
        return rid

    @staticmethod
    def _raise(kind: str, a: Any, b: Any):
        if kind == "error":
            if a == "ValueError":
                raise ValueError(b)
            raise ModelError(f"{a}: {b}")

    # ------------------------------------------------------------ calls

    def call(self, method: str, *args) -> Any:
        with self._lock:
            rid = self._send(method, args)
            kind, _, a, b = self._recv(rid, self.silence)
            self._raise(kind, a, b)
            return a

    def stream(self, method: str, *args) -> Iterator[Any]:
        with self._lock:
            rid = self._send(method, args)
            done = False
            try:
                while True:
                    kind, _, a, b = self._recv(rid, self.silence)
                    if kind == "item":
                        yield a
                        continue
                    done = True
                    self._raise(kind, a, b)
                    return
            except ModelProcessDied:
                done = True
                raise
            finally:
                if not done and self._conn is not None:  # abandoned: stop the child between two tokens
                    try:
                        self._send_conn.send((rid, "cancel", ()))
                        while self._recv(rid, self.silence)[0] == "item":
                            pass
                    except (ModelProcessDied, OSError):
                        pass


def main(argv: list[str]) -> None:
    """The child: ``python -m rag.llm.worker IN_FD OUT_FD ENGINE_ARGS_JSON``."""
    inbox = Connection(int(argv[0]), writable=False)
    outbox = Connection(int(argv[1]), readable=False)
    _serve(inbox, outbox, json.loads(argv[2]))


def isolated() -> bool:
    """Whether local models run in a child process (the default; ``RAG_LLM_PROCESS=inprocess`` runs them here)."""
    return os.environ.get("RAG_LLM_PROCESS", "child").strip().lower() != "inprocess"


if __name__ == "__main__":
    main(sys.argv[1:])
