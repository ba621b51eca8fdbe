"""The default answer engine: picks the document sentences that answer the
question and composes an answer from them, verbatim, with [n] markers.

Its modules, each a small set of pure functions:

* **Question kinds** (:func:`answer_type`, :func:`typed_spans`, :func:`short_answer`):
  "who", "which outlet/leader/city", "when", "what month/year", "how many/much"
  ask for a name, a date or a number. A sentence holding one of the asked type
  (not already in the question, close to the question's words) is preferred,
  and that span is the answer's short answer, highlighted inside its quote.
* **Sentence scoring** behind one interface, :class:`Scorer`: question +
  candidate sentences -> probability that each one answers, plus the
  question-level probability that any does (abstention). :class:`FeatureScorer`
  is the model-free one: a logistic model over

  - ``coverage``: idf-weighted share of the question's focus words (light
    stemming: "interviewed" finds "interview") the sentence contains;
  - ``dense``: cosine between question and sentence embeddings (MiniLM);
  - ``rank``: 1 / (1 + rank of the sentence's chunk in retrieval);
  - ``typed``: how well the sentence holds the kind of thing asked for (1 when
    there is no kind, 0 when a kind is asked and nothing fits).

  Its weights and abstention threshold come from ``rag/data/abstention.json``
  (fitted by ``bench/calibrate_abstention.py``). A learned scorer (a
  cross-encoder) plugs in by implementing the same two calls.
* **Overview questions** (:func:`is_overview`, :func:`central_sentences`):
  "summarize", "what is this article about", "main points", "tl;dr" are no
  lookup: they get the lead sentence plus the sentences closest to the
  document's centroid (MiniLM sentence vectors), in document order.

If the best sentence negates what the question takes for granted, the
answer says the premise is contradicted (:func:`premise_verdict`).
"""
