"""Cross-encoders on onnxruntime: one runtime for the sentence scorer and the faithfulness judge.

A cross-encoder reads two texts together, ``[CLS] a [SEP] b [SEP]`` with
``token_type_ids`` 0 for ``a`` and 1 for ``b``, and returns one probability.
Both shipped models are all-MiniLM-L6-v2 (Apache-2.0) truncated to its first
transformer layers with a linear head on ``[CLS]``, fine-tuned by
``bench/train_cross_encoder.py`` (torch, training only) and exported to ONNX.
At run time only onnxruntime, numpy and tokenizers are used.

Each model is ``rag/data/<name>.onnx`` with a sidecar ``rag/data/<name>.json``
(sha256 of the ONNX file, sequence budget, calibrated threshold, figures);
the sha256 is checked once at load, like ``rag/index/embeddings.py`` does. Pairs are
run in batches sorted by length (less padding); when a pair is longer than
the model's budget the longer side is cut first (``longest_first``), keeping
the closing ``[SEP]``.

Public API:

* :class:`CrossEncoder` -- ``CrossEncoder.load("judge-minilm")``; ``predict(pairs)``.
* :func:`sentence_scorer` -- the question/sentence scorer (``sentence-minilm``);
  :func:`sentence_pair` builds its second text from a sentence and its context.
* :func:`support_score` -- P(claim supported by evidence) from the judge
  (``judge-minilm``), 0.99 for a claim found verbatim in the evidence (:func:`verbatim_in`);
  compare with :func:`support_threshold`.
* :func:`evidence_window` -- the evidence sentences the judge reads for a claim.
"""

from __future__ import annotations

import json
import math
import os
import re
import threading
from collections import Counter
from pathlib import Path

import numpy as np

# One tokenizer, one sha256 check and one error type for every MiniLM model we run.
from rag.index.embeddings import ModelFileError, _sha256  # noqa: F401  (ModelFileError: raised here, caught by callers)
from rag.index.embeddings import load_tokenizer as tokenizer

DATA_DIR = Path(__file__).resolve().parents[1] / "data"
CLS, SEP, PAD = 101, 102, 0

SENTENCE_MODEL = "sentence-minilm"
VERBATIM_SCORE = 0.99  # the support score of a claim found verbatim in its evidence
JUDGE_MODEL = "judge-minilm"


def wordpieces(texts: list[str]) -> list[list[int]]:
    """Wordpiece ids of each text, no special tokens."""
    return [e.ids for e in tokenizer().encode_batch(list(texts), add_special_tokens=False)]


def encode_pairs(pairs: list[tuple[str, str]], max_length: int, max_a: int | None = None) -> list[tuple[list[int], list[int]]]:
    """``(input_ids, token_type_ids)`` of ``[CLS] a [SEP] b [SEP]`` per pair, at most ``max_length`` long.

    ``a`` is first cut to ``max_a`` wordpieces (if given); then, while the pair is too long, the longer
    side loses its last wordpiece (``longest_first``). The same function builds the training inputs."""
    ids_a = wordpieces([a for a, _ in pairs])
    ids_b = wordpieces([b for _, b in pairs])
    room = max_length - 3
    out = []
    for a, b in zip(ids_a, ids_b):
        if max_a is not None:
            a = a[:max_a]
        excess = len(a) + len(b) - room
        if excess > 0:
            # cut the longer side down to the other's length first, then both alternately
            la, lb = len(a), len(b)
            while la + lb > room:
                if la > lb:
                    la -= 1
                else:
                    lb -= 1
            a, b = a[:la], b[:lb]
        ids = [CLS, *a, SEP, *b, SEP]
        types = [0] * (len(a) + 2) + [1] * (len(b) + 1)
        out.append((ids, types))
    return out


def _default_threads() -> int:
    env = os.environ.get("RAG_ONNX_THREADS")
    if env and env.isdigit() and int(env) > 0:
        return int(env)
    return max(1, min(os.cpu_count() or 1, 4))


class CrossEncoder:
    """A packaged cross-encoder: ONNX model + sidecar metadata, run on onnxruntime.

    ``predict(pairs)`` returns one probability per ``(a, b)`` pair (float32 array). Thread-safe:
    onnxruntime sessions may be run from several threads.
    """

    def __init__(self, onnx_path: Path, meta: dict, threads: int | None = None):
        import onnxruntime as ort

        if not onnx_path.is_file():
            raise ModelFileError(f"{onnx_path} is missing")
        want = meta.get("sha256")
        if not want or _sha256(onnx_path) != want:
            raise ModelFileError(f"{onnx_path} does not match sha256 {want}")
        self.path = onnx_path
        self.meta = meta
        self.max_length = int(meta["max_length"])
        self.max_a = meta.get("max_a")
        self.threshold = float(meta.get("threshold", 0.5))
        options = ort.SessionOptions()
        options.log_severity_level = 3
        options.intra_op_num_threads = threads or _default_threads()
        options.inter_op_num_threads = 1
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        # no busy-waiting between ops: on 2 shared cores spinning threads steal the time other work needs
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        self.session = ort.InferenceSession(str(onnx_path), sess_options=options, providers=["CPUExecutionProvider"])
        self.input_names = {i.name for i in self.session.get_inputs()}

    @classmethod
    def load(cls, name: str, data_dir: Path = DATA_DIR, threads: int | None = None) -> "CrossEncoder":
        """``data_dir/<name>.onnx`` checked against the sha256 in ``data_dir/<name>.json``."""
        meta_path = data_dir / f"{name}.json"
        if not meta_path.is_file():
            raise ModelFileError(f"{meta_path} is missing")
        meta = json.loads(meta_path.read_text())
        return cls(data_dir / meta.get("file", f"{name}.onnx"), meta, threads)

    def logits(self, pairs: list[tuple[str, str]], batch_size: int = 32) -> np.ndarray:
        out = np.zeros(len(pairs), dtype=np.float32)
        if not pairs:
            return out
        encoded = encode_pairs(pairs, self.max_length, self.max_a)
        order = np.argsort([len(ids) for ids, _ in encoded], kind="stable")
        for start in range(0, len(order), batch_size):
            idx = order[start : start + batch_size]
            width = max(len(encoded[i][0]) for i in idx)
            ids = np.zeros((len(idx), width), dtype=np.int64)
            types = np.zeros_like(ids)
            mask = np.zeros_like(ids)
            for row, i in enumerate(idx):
                seq, typ = encoded[i]
                ids[row, : len(seq)] = seq
                types[row, : len(seq)] = typ
                mask[row, : len(seq)] = 1
            feeds = {"input_ids": ids, "attention_mask": mask}
            if "token_type_ids" in self.input_names:
                feeds["token_type_ids"] = types
            out[idx] = self.session.run(None, feeds)[0].reshape(-1)
        return out

    def predict(self, pairs: list[tuple[str, str]], batch_size: int = 32) -> np.ndarray:
        """P(positive) for each ``(a, b)`` pair."""
        return 1.0 / (1.0 + np.exp(-self.logits(pairs, batch_size)))


_lock = threading.Lock()
_loaded: dict[str, CrossEncoder] = {}


def load_model(name: str) -> CrossEncoder:
    """The packaged model ``name``, loaded once per process."""
    with _lock:
        if name not in _loaded:
            _loaded[name] = CrossEncoder.load(name)
        return _loaded[name]


# --------------------------------------------------------------------------- sentence scorer

def sentence_pair(sentence: str, context: str = "") -> str:
    """Second text of the sentence scorer: the candidate sentence, then ``" || "`` and its context (the
    previous sentence of the same document, or the title for a first sentence). The sentence comes first so
    that truncation cuts the context, never the sentence."""
    sentence = " ".join(sentence.split())
    context = " ".join(context.split())
    return f"{sentence} || {context}" if context else sentence


def sentence_scorer() -> CrossEncoder:
    """The question/sentence scorer: ``predict([(question, sentence_pair(s, ctx)), ...])`` gives P(the
    sentence holds or leads to the answer). ``.threshold`` is its abstention threshold on the best
    candidate's score (calibrated in ``bench/train_cross_encoder.py --task sentence``)."""
    return load_model(SENTENCE_MODEL)


# --------------------------------------------------------------------------- judge

def _content(text: str) -> list[str]:
    from rag.index.lexical import tokenize

    return tokenize(text)


def evidence_window(claim: str, evidence: str | list[str], budget: int = 160) -> str:
    """The evidence the judge reads for ``claim``: whole if it fits in ``budget`` wordpieces, else the
    sentences sharing most (idf-weighted) content words with the claim, plus their neighbours while room
    is left, in document order. ``evidence`` may be a list of texts (each split into sentences)."""
    from rag.index.sentences import sentence_spans

    texts = [evidence] if isinstance(evidence, str) else list(evidence)
    sents = [s.text(t) for t in texts for s in sentence_spans(t)]
    if not sents:
        return ""
    lengths = [len(x) for x in wordpieces(sents)]
    if sum(lengths) + len(sents) <= budget:
        return " ".join(sents)
    words = [set(_content(s)) for s in sents]
    df = Counter(w for ws in words for w in ws)
    n = len(sents)
    claim_words = set(_content(claim))
    # summed in word order: the same float for the same words whatever the hash seed, so that ties go
    # to the earlier sentence as the ranking says (in set order, 2 of 800 HaluEval windows changed by seed)
    score = [sum(math.log(1 + n / df[w]) for w in sorted(ws & claim_words)) for ws in words]
    ranked = sorted(range(n), key=lambda i: (-score[i], i))
    chosen: set[int] = set()
    used = 0
    # best sentences first, then the neighbours of the best ones
    for i in ranked + [j for i in ranked[:3] for j in (i - 1, i + 1)]:
        if i < 0 or i >= n or i in chosen:
            continue
        if used + lengths[i] + 1 > budget:
            if not chosen:  # one long sentence: keep its start
                chosen.add(i)
                used = budget
            continue
        chosen.add(i)
        used += lengths[i] + 1
    return " ".join(sents[i] for i in sorted(chosen))


_MARKER = re.compile(r"\s*\[\d+\]")
_QUOTES = str.maketrans({"’": "'", "‘": "'", "“": '"', "”": '"', "–": "-", "—": "-"})


def _normal(text: str) -> str:
    text = _MARKER.sub("", text.translate(_QUOTES)).lower()
    return " ".join(text.split()).strip(" .!?;:,\"'")


def verbatim_in(claim: str, evidence: str | list[str]) -> bool:
    """The claim (case, whitespace, quote marks, [n] markers and end punctuation aside) is a substring of
    the evidence: supported by definition, whatever the model says. The model alone misjudges verbatim
    copies (HaluEval's hallucinated summaries copy their article more closely than its faithful ones),
    so this rule comes first. Claims of fewer than 4 words are left to the model."""
    c = _normal(claim)
    if len(c.split()) < 4:
        return False
    texts = [evidence] if isinstance(evidence, str) else list(evidence)
    return any(c in _normal(t) for t in texts)


def judge_model() -> CrossEncoder:
    """The faithfulness judge: ``predict([(claim, evidence_window(claim, evidence)), ...])``."""
    return load_model(JUDGE_MODEL)


def support_threshold() -> float:
    """Calibrated threshold of :func:`support_score` (supported iff score >= threshold)."""
    return judge_model().threshold


def support_scores(pairs: list[tuple[str, str | list[str]]]) -> np.ndarray:
    """P(supported) for each ``(claim, evidence)`` pair."""
    model = judge_model()
    budget = int(model.meta.get("evidence_budget", 160))
    scores = model.predict([(c, evidence_window(c, e, budget)) for c, e in pairs])
    for i, (c, e) in enumerate(pairs):
        if verbatim_in(c, e):
            scores[i] = max(scores[i], VERBATIM_SCORE)
    return scores


def support_score(claim: str, evidence: str | list[str]) -> float:
    """P(``claim`` is supported by ``evidence``) from the judge; supported iff >= :func:`support_threshold`."""
    return float(support_scores([(claim, evidence)])[0])
