"""`rag eval` end to end, offline: the seed suite, a --pairs file, a --questions file."""

import json

from click.testing import CliRunner

from rag.cli import cli


def _run(args, data_dir):
    result = CliRunner().invoke(cli, ["--data-dir", str(data_dir), "eval", *args], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    return result


def test_eval_seed_writes_a_full_report(tmp_path):
    from rag.index.ownership import own

    out = tmp_path / "run"
    # even while a server owns the data dir: the suite builds its own index in DATA_DIR/eval
    with own(tmp_path / "data", "serve", "http://127.0.0.1:7860/"):
        _run(["seed", "--out", str(out)], tmp_path / "data")
    assert (tmp_path / "data" / "eval" / "chroma").is_dir() and not (tmp_path / "data" / "chroma").exists()
    summary = json.loads((out / "summary.json").read_text())
    (row,) = summary["tables"]["answers"]
    assert row["n"] >= 25
    assert row["citation_validity"] == 1.0
    assert row["faithfulness"] >= 0.9  # extractive claims are document sentences
    assert row["recall@5"] >= 0.9
    assert summary["config"]["backend"] == "extractive" and summary["config"]["top_k"] == 6
    records = [json.loads(l) for l in (out / "results.jsonl").read_text().splitlines()]
    assert len(records) == row["n"]
    answered = [r for r in records if r["claims"]]
    assert answered and all("supported" in c and "evidence" in c for r in answered for c in r["claims"])
    html = (out / "report.html").read_text()
    assert "<svg" in html and "faithfulness" in html and "http" not in html.split("<body>")[1].replace("http-equiv", "")
    assert (out / "report.md").read_text().startswith("# Eval report")


def test_eval_pairs_reports_accuracy_and_auc(tmp_path):
    pairs = tmp_path / "pairs.jsonl"
    ctx = "The summit was held in July. The path to membership is irreversible."
    rows = [{"context": ctx, "output": "The summit took place in July.", "label": "supported"},
            {"context": ctx, "output": "The path to membership is irreversible.", "label": "supported"},
            {"context": ctx, "output": "The summit was held in June.", "label": "unsupported"},
            {"context": ctx, "output": "The path to membership is reversible.", "label": "unsupported"}]
    pairs.write_text("\n".join(json.dumps(r) for r in rows))
    out = tmp_path / "run"
    _run(["--pairs", str(pairs), "--out", str(out)], tmp_path / "data")
    summary = json.loads((out / "summary.json").read_text())
    assert summary["n"] == 4
    assert 0.0 <= summary["balanced_accuracy"] <= 1.0 and 0.0 <= summary["roc_auc"] <= 1.0
    assert summary["roc_auc"] >= 0.75
    records = [json.loads(l) for l in (out / "results.jsonl").read_text().splitlines()]
    assert [r["label"] for r in records] == [r["label"] for r in rows]


def test_eval_questions_on_users_index(tmp_path):
    from conftest import SEEDS

    data = tmp_path / "data"
    assert CliRunner().invoke(cli, ["--data-dir", str(data), "ingest", str(SEEDS)]).exit_code == 0
    questions = tmp_path / "q.jsonl"
    questions.write_text("\n".join(json.dumps(r) for r in [
        {"question": "When was NATO's summit?", "expected": ["July"]},
        {"question": "What is the boiling point of mercury?", "unanswerable": True}]))
    out = tmp_path / "run"
    _run(["--questions", str(questions), "--out", str(out)], data)
    (row,) = json.loads((out / "summary.json").read_text())["tables"]["answers"]
    assert row["n"] == 2 and row["correctness"] == 1.0 and row["abstention_recall"] == 1.0


def test_bad_pairs_file_is_a_clear_error(tmp_path):
    bad = tmp_path / "bad.jsonl"
    bad.write_text("{not json\n")
    result = CliRunner().invoke(cli, ["--data-dir", str(tmp_path / "d"), "eval", "--pairs", str(bad)])
    assert result.exit_code != 0 and "not JSON" in result.output


def test_llm_judge_needs_a_model(tmp_path):
    result = CliRunner().invoke(cli, ["--data-dir", str(tmp_path / "d"), "eval", "seed", "--judge", "llm"])
    assert result.exit_code != 0 and "--judge llm needs a model" in result.output


def test_llm_judge_model_is_chosen_apart_from_the_answer_backend(tmp_path, monkeypatch):
    from rag.judge.judges import LLMJudge
    from rag.judge.logprob_judge import LogprobJudge
    from eval.runner import make_judge
    from rag.config import Config

    monkeypatch.setenv("RAG_LLM_BASE_URL", "http://127.0.0.1:9/v1")  # never called here
    judge = make_judge("llm", Config(data_dir=tmp_path, llm="extractive"), "openai:judge-model")
    assert isinstance(judge, LogprobJudge) and isinstance(judge.fallback, LLMJudge)  # JSON verdicts without logprobs
    assert judge.spec == "openai:judge-model"
    assert make_judge("llm", Config(data_dir=tmp_path, llm="openai:answer-model")).spec == "openai:answer-model"


def test_html_report_shows_each_claim_with_its_verdict_and_evidence(tmp_path):
    from eval import report

    results = [{"suite": "pairs", "id": "p1", "label": "unsupported", "score": 0.12, "supported": False,
                "claims": [{"claim": "NATO gave <b>a</b> timeline.", "supported": False, "score": 0.12,
                            "evidence": "though no concrete timeline was provided"},
                           {"claim": "The summit was in July.", "supported": True, "score": 0.91,
                            "evidence": "The NATO summit in July"}]}]
    report.write(tmp_path, results, {"config": {}, "tables": {}}, {})
    page = (tmp_path / "report.html").read_text()
    assert "Per-claim verdicts" in page and "though no concrete timeline was provided" in page
    assert "NATO gave &lt;b&gt;a&lt;/b&gt; timeline." in page and "<b>a</b>" not in page
    assert page.index("NATO gave") < page.index("The summit was in July.")


def test_the_llm_judge_splits_outputs_into_sentences_without_asking_the_model():
    from rag.judge.logprob_judge import LogprobJudge

    class CountingLLM:
        calls = 0

        def next_token_logprobs(self, messages):
            CountingLLM.calls += 1
            return {"yes": -0.1, "no": -2.5}

    judge = LogprobJudge(CountingLLM())
    claims = judge.split("The summit was in July. Zelenskyy spoke to Sky News. He wants NATO protection.")
    assert claims == ["The summit was in July.", "Zelenskyy spoke to Sky News.", "He wants NATO protection."]
    assert CountingLLM.calls == 0
    from rag.judge.judges import judge_output

    score, verdicts = judge_output("The summit was in July. Zelenskyy spoke to Sky News.", "The summit was in July.",
                                   judge)
    assert CountingLLM.calls == 1 and len(verdicts) == 1 and 0.9 < score < 1.0
