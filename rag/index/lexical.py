"""BM25 over the committed chunks, built in memory from the store.

Built from what Chroma holds (not from local files), so it is the same on
an embedded index and on a Chroma server. Okapi BM25, k1=1.2, b=0.75,
English stopwords removed, light plural/possessive folding.
"""

from __future__ import annotations

import math
import re
from collections import Counter, defaultdict

import numpy as np

STOPWORDS = frozenset("""
a about above after again against all am an and any are aren't as at be because been before being below
between both but by can can't cannot could couldn't did didn't do does doesn't doing don't down during each
few for from further had hadn't has hasn't have haven't having he he'd he'll he's her here here's hers herself
him himself his how how's i i'd i'll i'm i've if in into is isn't it it's its itself let's me more most mustn't
my myself no nor not of off on once only or other ought our ours ourselves out over own same shan't she she'd
she'll she's should shouldn't so some such than that that's the their theirs them themselves then there
there's these they they'd they'll they're they've this those through to too under until up very was wasn't we
we'd we'll we're we've were weren't what what's when when's where where's which while who who's whom why why's
with won't would wouldn't you you'd you'll you're you've your yours yourself yourselves s t also
""".split())

_TOKEN = re.compile(r"[a-z0-9]+(?:'[a-z]+)?")


def _fold(word: str) -> str:
    if word.endswith("'s"):
        word = word[:-2]
    elif "'" in word:
        word = word.replace("'", "")
    if len(word) > 4 and word.endswith("ies"):
        return word[:-3] + "y"
    if len(word) > 3 and word.endswith("s") and not word.endswith(("ss", "us", "is")):
        return word[:-1]
    return word


def tokenize(text: str) -> list[str]:
    """Lowercased content words, stopwords removed."""
    text = text.lower().replace("’", "'").replace("‘", "'")
    return [_fold(w) for w in _TOKEN.findall(text) if w not in STOPWORDS]


class BM25:
    """An inverted index with precomputed BM25 weights per posting."""

    def __init__(self, texts: list[str], k1: float = 1.2, b: float = 0.75):
        self.n = len(texts)
        lengths = np.zeros(self.n, dtype=np.float32)
        postings: dict[str, list[tuple[int, int]]] = defaultdict(list)
        for i, text in enumerate(texts):
            counts = Counter(tokenize(text))
            lengths[i] = sum(counts.values())
            for term, tf in counts.items():
                postings[term].append((i, tf))
        avgdl = float(lengths.mean()) if self.n else 1.0
        self.index: dict[str, tuple[np.ndarray, np.ndarray]] = {}
        self.idf: dict[str, float] = {}
        for term, plist in postings.items():
            idx = np.fromiter((p[0] for p in plist), dtype=np.int32, count=len(plist))
            tf = np.fromiter((p[1] for p in plist), dtype=np.float32, count=len(plist))
            df = len(plist)
            idf = math.log(1 + (self.n - df + 0.5) / (df + 0.5))
            self.idf[term] = idf
            norm = k1 * (1 - b + b * lengths[idx] / max(avgdl, 1e-9))
            self.index[term] = (idx, (idf * tf * (k1 + 1) / (tf + norm)).astype(np.float32))

    def scores(self, query: str) -> np.ndarray:
        out = np.zeros(self.n, dtype=np.float32)
        for term in set(tokenize(query)):
            hit = self.index.get(term)
            if hit is not None:
                out[hit[0]] += hit[1]
        return out

    def top(self, query: str, n: int) -> list[tuple[int, float]]:
        """(position, score) of the best ``n`` texts with a positive score."""
        scores = self.scores(query)
        if not self.n:
            return []
        n = min(n, self.n)
        best = np.argpartition(-scores, n - 1)[:n]
        best = best[np.argsort(-scores[best], kind="stable")]
        return [(int(i), float(scores[i])) for i in best if scores[i] > 0]
