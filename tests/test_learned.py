"""The learned triage layer: the model file, the max-urgency decision, its reasons, the fallback to the
rules when the file is missing or corrupt, and `relay train` on good and bad input."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from pathlib import Path

import httpx
import numpy as np
import pytest
import redis
from support.ops import ops_env
from support.spine import (
    ROOT,
    caller_token,
    delete_school_keys,
    free_port,
    start_api,
    stop,
    write_school_yaml,
)

from relay.cli import training
from routing import learned
from routing.classifier import Classification, classify, classify_by_rules, decide
from routing.labels import Category, Urgency
from routing.normalize import normalize

RELAY = str(Path(sys.executable).with_name("relay"))
DATA = Path(__file__).parent / "data"
P0, P1, P2, P3 = Urgency.P0, Urgency.P1, Urgency.P2, Urgency.P3
# scores the model reads for these n-grams: column order is P0..P3, then the categories in Category order
_COLUMNS = {label: i for i, label in enumerate((*learned.URGENCIES, *learned.CATEGORIES))}


def toy_model(policy: learned.Policy | None = None) -> learned.Model:
    """A hand-made model: 晕倒 and 喘不上 push hard to P0 safety-or-medical, 作业 to P2 academic."""
    weights_by_gram = {
        "晕倒": {P0: 6.0, Category.medical: 6.0},
        "喘不上": {P0: 6.0, Category.medical: 5.0},
        "作业": {P2: 6.0, Category.academic: 6.0},
        "谢谢": {P3: 6.0, Category.feedback: 6.0},
    }
    grams = sorted(weights_by_gram)
    weights = np.zeros((len(grams), len(_COLUMNS)), dtype=np.float32)
    for row, gram in enumerate(grams):
        for label, weight in weights_by_gram[gram].items():
            weights[row, _COLUMNS[label]] = weight
    bias = np.zeros(len(_COLUMNS))
    bias[_COLUMNS[P2]] = 0.5  # with no known n-gram, a routine office question
    bias[_COLUMNS[Category.admin]] = 0.5
    return learned.Model(
        {gram: row for row, gram in enumerate(grams)}, np.ones(len(grams), dtype=np.float32), weights, bias,
        policy or learned.Policy(p0_threshold=0.6, category_threshold=0.9,
                                 fallback_category_threshold=0.5),
    )


# --- n-grams and prediction


def test_ngrams_are_every_1_to_4_character_slice() -> None:
    assert learned.ngrams("晕倒了") == ["晕", "倒", "了", "晕倒", "倒了", "晕倒了"]
    assert learned.ngrams("") == []


def test_the_prediction_is_the_softmax_of_the_summed_weights() -> None:
    model = toy_model()
    prediction = model.predict(normalize("孩子晕倒了"))
    scores = np.zeros(4)
    scores[0] = 6.0  # 晕倒 alone of the vocabulary; TF-IDF of one n-gram is 1
    scores[2] = 0.5
    expected = np.exp(scores) / np.exp(scores).sum()
    assert np.allclose(prediction.urgency_probabilities, expected)
    assert prediction.urgency is P0 and prediction.category is Category.medical
    assert sum(prediction.category_probabilities) == pytest.approx(1.0)


def test_the_temperature_softens_the_probabilities() -> None:
    sharp = toy_model().predict("晕倒")
    soft = toy_model(learned.Policy(urgency_temperature=4.0)).predict("晕倒")
    assert soft.probability(P0) < sharp.probability(P0)
    assert soft.urgency_probabilities.index(max(soft.urgency_probabilities)) == 0


def test_a_message_with_no_known_ngram_gets_the_intercepts() -> None:
    prediction = toy_model().predict("zzz")
    assert prediction.urgency is P2 and prediction.category is Category.admin


def test_prediction_is_deterministic_and_survives_the_file(tmp_path: Path) -> None:
    model = toy_model()
    path = tmp_path / "m.npz"
    learned.save(model, path)
    again = learned.load(path)
    for text in ("孩子晕倒了", "作业写完了 谢谢老师", "zzz"):
        assert again.predict(text).urgency_probabilities == pytest.approx(model.predict(text).urgency_probabilities)
        assert again.predict(text).category_probabilities == model.predict(text).category_probabilities
    assert again.policy == model.policy
    second = tmp_path / "again.npz"
    learned.save(again, second)
    assert second.read_bytes() == path.read_bytes()  # no timestamps inside


def test_the_shipped_model_loads_and_is_small() -> None:
    assert learned.MODEL_FILE.stat().st_size <= 20_000_000
    model = learned.load(learned.MODEL_FILE)
    assert model.about["examples"] >= 1000
    assert 0 < model.policy.p0_threshold <= 0.9


# --- the decision


def test_the_model_raises_the_rules_to_p0_and_says_why() -> None:
    text = "老师您好，孩子刚刚晕倒了，喘不上气"
    rules = Classification(P2, Category.admin, ("no known signal: a question for the office → P2 admin",), False)
    model = toy_model()
    normalized = normalize(text)
    result = decide(rules, model, model.predict(normalized), normalized)
    assert result.urgency is P0 and result.category is Category.medical
    assert result.reasons[0].startswith("模型判断：紧急 P0")
    assert "'晕倒'" in result.reasons[0] and "'喘不上'" in result.reasons[0]
    assert result.reasons[1].startswith("模型判断类别：身体不适 medical")
    assert "no known signal" in result.reasons[2]  # the rules' view stays on record


def test_a_rules_known_phrase_p0_stands_unless_the_model_is_near_certain() -> None:
    rules = Classification(P0, Category.safety, ("safety: 打 → P0",))
    model = toy_model(learned.Policy(category_threshold=1.01))  # a rule's phrase keeps its category
    assert decide(rules, model, model.predict("作业"), "作业") == rules
    sure = toy_model(learned.Policy(category_threshold=0.9))
    moved = decide(rules, sure, sure.predict("作业"), "作业")  # 98 % academic: the category moves, not the urgency
    assert (moved.urgency, moved.category) == (P0, Category.academic)
    doubtful = toy_model(learned.Policy(rule_p0_floor=0.5, category_threshold=1.01))
    assert doubtful.predict("作业").probability(P0) < 0.5
    assert decide(rules, doubtful, doubtful.predict("作业"), "作业").urgency is P2


def test_a_cautious_rule_p0_yields_to_the_model() -> None:
    cautious = Classification(P0, Category.medical, ("uncertain health/safety signal → P0 by caution",), True, True)
    model = toy_model()
    result = decide(cautious, model, model.predict("作业"), "作业")
    assert result.urgency is P2 and result.reasons[0].startswith("模型判断：常规 P2")
    assert any("by caution" in reason for reason in result.reasons)  # the rules' view stays on record


def test_below_p0_the_model_reads_the_urgency() -> None:
    rules = Classification(P3, Category.feedback, ("no action: 谢谢 → P3",))
    model = toy_model()
    assert decide(rules, model, model.predict("作业"), "作业").urgency is P2


def test_below_the_threshold_the_model_does_not_raise() -> None:
    model = toy_model(learned.Policy(p0_threshold=0.999))
    rules = Classification(P2, Category.admin, ("x",))
    assert decide(rules, model, model.predict("晕倒"), "晕倒").urgency is not P0


def test_the_models_category_where_no_rule_knew_a_word() -> None:
    model = toy_model(learned.Policy(category_threshold=0.99, fallback_category_threshold=0.5))
    known = Classification(P2, Category.admin, ("admin: 表格 → P2",), True)
    unknown = Classification(P2, Category.admin, ("no known signal",), False)
    homework = model.predict("作业")
    assert 0.5 < homework.probability(Category.academic) < 0.99  # between the two bars
    assert decide(known, model, homework, "作业").category is Category.admin
    moved = decide(unknown, model, homework, "作业")
    assert moved.category is Category.academic and moved.urgency is P2
    assert moved.reasons[0].startswith("模型判断类别：学业问题 academic") and "'作业'" in moved.reasons[0]


def test_classify_with_no_model_is_the_rules() -> None:
    text = "孩子刚刚晕倒了"
    assert classify(text, model=None) == classify_by_rules(text)
    assert classify(text, model=toy_model()).urgency is P0


def test_reasons_name_stretches_of_the_text_not_the_whole_message() -> None:
    model = learned.default_model()
    assert model is not None
    text = normalize("老师您好，打扰了，谢谢您一直照顾孩子。对了，孩子刚才在学校晕倒了，现在喘不上气")
    prediction = model.predict(text)
    stretches = model.strongest(prediction, P0, text)
    assert stretches and all(len(s) <= 12 and s in text for s in stretches)


# --- a missing or corrupt model file


@pytest.mark.parametrize(
    "content", [None, b"", b"not a zip at all", b"PK\x03\x04 a broken zip"], ids=["missing", "empty", "text", "zip"]
)
def test_a_missing_or_corrupt_model_file_is_refused_by_load(tmp_path: Path, content: bytes | None) -> None:
    path = tmp_path / "triage.npz"
    if content is not None:
        path.write_bytes(content)
    with pytest.raises((OSError, ValueError)):
        learned.load(path)


def test_a_model_for_other_labels_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "m.npz"
    learned.save(toy_model(), path)
    import zipfile

    with zipfile.ZipFile(path) as archive:
        parts = {name: archive.read(name) for name in archive.namelist()}
    settings = parts["settings.npy"].replace(b'"P3"', b'"P9"')
    with zipfile.ZipFile(path, "w") as archive:
        for name, data in parts.items():
            archive.writestr(name, settings if name == "settings.npy" else data)
    with pytest.raises(ValueError, match="other labels"):
        learned.load(path)


def _classify_cli(lines: list[dict[str, str]], env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [RELAY, "classify"], input="".join(json.dumps(line, ensure_ascii=False) + "\n" for line in lines),
        capture_output=True, text=True, env=env, cwd=ROOT, timeout=60,
    )


@pytest.mark.parametrize("content", [None, b"PK\x03\x04 garbage"], ids=["missing", "corrupt"])
def test_relay_classify_falls_back_to_the_rules_loudly(tmp_path: Path, content: bytes | None) -> None:
    path = tmp_path / "triage.npz"
    if content is not None:
        path.write_bytes(content)
    lines = [{"id": "a", "text": "孩子在学校发烧了"}, {"id": "b", "text": "收到"}]
    done = _classify_cli(lines, dict(os.environ, RELAY_TRIAGE_MODEL=str(path)))
    assert done.returncode == 0, done.stderr
    rows = [json.loads(line) for line in done.stdout.splitlines()]
    assert [(r["id"], r["urgency"], r["category"]) for r in rows] == [("a", "P0", "medical"), ("b", "P3", "other")]
    for row, line in zip(rows, lines, strict=True):
        rules = classify_by_rules(line["text"])
        assert row["reasons"] == list(rules.reasons)
    assert done.stderr.count("rules alone") == 1, done.stderr  # once, on stderr


def test_relay_classify_keeps_its_output_contract_with_the_model() -> None:
    done = _classify_cli([{"id": "x", "text": "老师，孩子刚才晕倒了"}, {"id": 7, "text": "谢谢老师"}], dict(os.environ))
    assert done.returncode == 0 and not done.stderr
    for line in done.stdout.splitlines():
        row = json.loads(line)
        assert list(row) == ["id", "urgency", "category", "reasons"]
        assert row["urgency"] in {u.value for u in Urgency} and row["category"] in {c.value for c in Category}
        assert row["reasons"] and all(isinstance(r, str) for r in row["reasons"])


def test_classifying_never_imports_scikit_learn() -> None:
    probe = (
        "import sys; from routing.classifier import classify; classify('孩子刚才晕倒了');"
        "print(sorted(m for m in sys.modules if m.split('.')[0] in ('sklearn', 'scipy')))"
    )
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, cwd=ROOT, check=True)
    assert done.stdout.strip() == "[]"


def test_intake_with_a_corrupt_model_answers_201_and_the_gauge_says_rules_alone(
    redis_url: str, tmp_path: Path
) -> None:
    school_id = "t-" + uuid.uuid4().hex[:8]
    config = write_school_yaml(tmp_path / "school.yaml", school_id, "http://127.0.0.1:9/hook")
    broken = tmp_path / "triage.npz"
    broken.write_bytes(b"PK\x03\x04 garbage")
    port = free_port()
    env = ops_env(redis_url, config, f"http://127.0.0.1:{port}", RELAY_TRIAGE_MODEL=str(broken))
    api, url = start_api(env, tmp_path, port=port)
    try:
        response = httpx.post(
            f"{url}/v1/requests", json={"student_id": "s1", "text": "孩子在学校发烧了"}, timeout=10,
            headers={"Authorization": f"Bearer {caller_token('parent', 'g1', school_id)}",
                     "Idempotency-Key": uuid.uuid4().hex},
        )
        assert response.status_code == 201, response.text
        assert (response.json()["urgency"], response.json()["category"]) == ("P0", "medical")
        scraped = httpx.get(f"{url}/metrics", timeout=10).text
        assert "relay_triage_model_loaded 0.0" in scraped
    finally:
        stop(api)
        delete_school_keys(redis.Redis.from_url(redis_url), [school_id])
    assert "rules alone" in (tmp_path / f"api-{port}.log").read_text(encoding="utf-8")


def test_the_gauge_says_the_shipped_model_is_loaded() -> None:
    from relay.base import metrics

    assert "relay_triage_model_loaded 1.0" in metrics.render()[0].decode()


# --- relay train


def _write(path: Path, rows: list[object]) -> Path:
    path.write_text(
        "\n".join(r if isinstance(r, str) else json.dumps(r, ensure_ascii=False) for r in rows) + "\n",
        encoding="utf-8",
    )
    return path


GOOD = {"id": "1", "text": "孩子在学校晕倒了", "urgency": "P0", "category": "medical"}


@pytest.mark.parametrize(
    ("bad", "says"),
    [
        ("{not json", "JSONDecodeError"),
        ('["a list"]', "one JSON object"),
        ({"id": "2", "text": "", "urgency": "P1", "category": "medical"}, "non-empty string"),
        ({"id": "2", "text": 42, "urgency": "P1", "category": "medical"}, "non-empty string"),
        ({"id": "2", "text": "请假", "urgency": "P5", "category": "attendance"}, "'P5' is not a valid Urgency"),
        ({"id": "2", "text": "请假", "urgency": "P1", "category": "absence"}, "'absence' is not a valid Category"),
        ({"id": "2", "text": "请假", "category": "attendance"}, "urgency"),
        ({"id": "2", "text": "请假", "urgency": "P1", "category": "attendance", "writer": 3}, "writer"),
    ],
)
def test_relay_train_names_the_bad_line_and_refuses(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], bad: object, says: str
) -> None:
    folder = tmp_path / "corpus"
    folder.mkdir()
    _write(folder / "w01.jsonl", [GOOD] * 3)
    bad_file = _write(folder / "w02.jsonl", [GOOD, "", bad])
    out = tmp_path / "m.npz"
    assert training.main([str(folder), "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert f"{bad_file}:3:" in err and says in err
    assert not out.exists()


def test_relay_train_refuses_the_same_text_with_other_labels(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    first = _write(tmp_path / "w01.jsonl", [GOOD])
    second = _write(tmp_path / "w02.jsonl", [dict(GOOD, text="孩子在學校暈倒了", urgency="P1")])  # Traditional
    assert training.main([str(first), str(second), "--out", str(tmp_path / "m.npz")]) == 2
    err = capsys.readouterr().err
    assert f"{second}:1: the same text as {first}:1" in err


def test_relay_train_refuses_a_missing_input(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert training.main([str(tmp_path / "nowhere"), "--out", str(tmp_path / "m.npz")]) == 2
    assert "no such file" in capsys.readouterr().err
    assert training.main([str(tmp_path), "--out", str(tmp_path / "m.npz")]) == 2  # a folder with no .jsonl


def test_relay_train_is_reproducible_and_its_model_matches_scikit_learn(tmp_path: Path) -> None:
    inputs = [str(DATA / "triage_probe_en.jsonl"), str(DATA / "triage_probe_zh.jsonl"),
              str(DATA / "triage_fresh.jsonl")]
    one, two = tmp_path / "one.npz", tmp_path / "two.npz"
    assert training.main([*inputs, "--out", str(one)]) == 0
    assert training.main([*reversed(inputs), "--out", str(two)]) == 0  # inputs are read in sorted order
    assert one.read_bytes() == two.read_bytes()

    # the exported weights give what scikit-learn itself predicts (before the temperature)
    from sklearn.linear_model import LogisticRegression

    examples = training.read_corpus(training.input_files(inputs))
    texts = [normalize(e.text) for e in examples]
    vectorizer = training._vectorizer()
    x = vectorizer.fit_transform(texts)
    urgencies = [learned.URGENCIES.index(e.urgency) for e in examples]
    regression: LogisticRegression = training._regression().fit(x, urgencies)
    model = learned.load(one)
    for text in texts[:25]:
        ours = np.log(model.predict(text).urgency_probabilities) * model.policy.urgency_temperature
        theirs = regression.predict_log_proba(vectorizer.transform([text]))[0]
        assert np.allclose(ours - ours.max(), theirs - theirs.max(), atol=1e-3)
