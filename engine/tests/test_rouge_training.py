"""ROUGE during training and the best checkpoint: train.rouge_every / rouge_samples / best_metric, eval.references."""
from __future__ import annotations

import filecmp
import json
import threading

import pytest

from conftest import short_records, write_jsonl

from qlora_engine import recipe as recipe_module
from qlora_engine.config import ROUGE_TYPES
from qlora_engine.data import Record
from qlora_engine.errors import BadConfig, BadDataset
from qlora_engine.events import Events
from qlora_engine.generate import Generator
from qlora_engine.protocol import EVAL_LINE_KEYS
from qlora_engine.rouge import RougeScorer, reference_fields, references
from qlora_engine.template import load_template

LORA = {"r": 8, "alpha": 16, "dropout": 0.0, "target_modules": ["q_proj", "v_proj", "dense", "lm_head"]}


class Recorder(Events):
    def __init__(self, cancel_at=None, cancel=None):
        self.evals, self.checkpoints, self.cancel_at, self.cancel = [], [], cancel_at, cancel

    def eval(self, params):
        self.evals.append(params)

    def checkpoint(self, params):
        self.checkpoints.append(params["step"])

    def progress(self, params):
        if self.cancel_at is not None and params["step"] == self.cancel_at:
            self.cancel.set()


def rouge_config(ws, **train):
    write_jsonl(ws.train, short_records(12, dialogue_chars=100))
    return ws.config(lora=LORA, data={"validation_split": 0.25}, max_length=128,
                     train={"max_steps": 6, "rouge_every": 2, "rouge_samples": 3, "learning_rate": 1e-2,
                            "lr_scheduler": "constant", "keep_checkpoints": 1, **train},
                     eval={"max_new_tokens": 8, "batch_size": 2})


def rows(run_dir, kind):
    return [r for r in map(json.loads, (run_dir / "metrics.jsonl").read_text().splitlines()) if r["type"] == kind]


def test_rouge_is_what_the_saved_adapter_generates_scored_by_rouge_score(ws):
    """The ROUGE a run reports at a step == rouge_score on the generate request's output with that step's adapter,
    on the same validation records: training-time generation and scoring are the real thing."""
    config = rouge_config(ws, best_metric="rouge1")
    events = Recorder()
    run_dir = ws.runs / "r"
    recipe = recipe_module.Recipe(config, run_dir, events=events)
    end = recipe.run()
    assert end["status"] == "completed", end
    evals = rows(run_dir, "eval")
    assert [e["step"] for e in evals] == [2, 4, 6]
    assert all(set(e["rouge"]) == set(ROUGE_TYPES) and e["rougeRecords"] == 3 for e in evals)
    assert all(0 <= v <= 1 for e in evals for v in e["rouge"].values())
    assert all(set(e) <= set(EVAL_LINE_KEYS) and set(EVAL_LINE_KEYS[:4]) <= set(e) for e in evals)  # run-folder.ts EvalLine
    assert [{"type": "eval", **{k: v for k, v in e.items() if k != "runId"}} for e in events.evals] == evals

    run = json.loads((run_dir / "run.json").read_text())
    values = [e["rouge"]["rouge1"] for e in evals]
    best_step = evals[values.index(max(values))]["step"]  # the first of equal maxima
    assert run["best"] == {"metric": "rouge1", "value": max(values), "step": best_step,
                           "path": str(run_dir / "checkpoints" / f"step-{best_step}"),
                           "adapterPath": str(run_dir / "best-adapter")}
    assert [e["step"] for e in evals if e.get("best")][-1] == best_step

    # Recompute the best step's ROUGE from scratch: its adapter through the generate request, rouge_score directly.
    validation = [r.fields for r in recipe._data().validation_records[:3]]
    out = Generator().generate({"config": config, "adapter": str(run_dir / "best-adapter"), "records": validation,
                                "maxNewTokens": 8, "temperature": 0, "topP": 1, "seed": 0, "batchSize": 3})
    from rouge_score import rouge_scorer
    scorer = rouge_scorer.RougeScorer(list(ROUGE_TYPES), use_stemmer=True)
    scores = [scorer.score(r["summary"], c["text"]) for r, c in zip(validation, out["completions"])]
    for t in ROUGE_TYPES:
        expected = sum(s[t].fmeasure for s in scores) / len(scores)
        assert [e for e in evals if e["step"] == best_step][0]["rouge"][t] == pytest.approx(expected, abs=1e-12), t


def test_the_best_checkpoint_survives_rotation_and_best_adapter_is_its_copy(ws, monkeypatch):
    """Scripted ROUGE (best at step 4 of 2/4/6): step-4 is kept with keep_checkpoints 1, best-adapter/ is its adapter,
    adapter/ is the last step's, and a resumed run keeps the best it had."""
    script = iter([0.2, 0.7, 0.4, 0.5])

    def scripted(model, tokenizer, sample, config):
        value = next(script)
        return {t: value for t in ROUGE_TYPES}

    monkeypatch.setattr(recipe_module, "rouge_scores", scripted)
    config = rouge_config(ws, best_metric="rouge2", save_every=0, max_steps=8)
    cancel = threading.Event()
    events = Recorder(cancel_at=5, cancel=cancel)
    run_dir = ws.runs / "best"
    end = recipe_module.Recipe(config, run_dir, events=events, cancel=cancel).run()
    assert end["status"] == "cancelled" and end["step"] == 5
    assert events.checkpoints == [2, 4, 5]  # a new best is saved at once, although save_every is 0
    assert sorted(p.name for p in (run_dir / "checkpoints").iterdir()) == ["step-4", "step-5"]
    run = json.loads((run_dir / "run.json").read_text())
    assert run["best"]["step"] == 4 and run["best"]["value"] == 0.7 and run["best"]["metric"] == "rouge2"

    resumed = recipe_module.Recipe(config, run_dir, resume=True, events=Recorder())
    end = resumed.run()
    assert end["status"] == "completed" and end["step"] == 8
    evals = rows(run_dir, "eval")
    assert [(e["step"], e["rouge"]["rouge2"], e.get("best", False)) for e in evals] == [
        (2, 0.2, True), (4, 0.7, True), (6, 0.4, False), (8, 0.5, False)]
    assert sorted(p.name for p in (run_dir / "checkpoints").iterdir()) == ["step-4", "step-8"]
    run = json.loads((run_dir / "run.json").read_text())
    assert run["best"] == {"metric": "rouge2", "value": 0.7, "step": 4, "path": str(run_dir / "checkpoints" / "step-4"),
                           "adapterPath": str(run_dir / "best-adapter")}
    same = filecmp.dircmp(run_dir / "best-adapter", run_dir / "checkpoints" / "step-4" / "adapter")
    assert not same.diff_files and not same.left_only and not same.right_only and same.same_files
    last = filecmp.dircmp(run_dir / "adapter", run_dir / "checkpoints" / "step-8" / "adapter")
    assert "adapter_model.safetensors" in last.same_files
    assert not (run_dir / "best-adapter" / "adapter_model.safetensors").read_bytes() == \
        (run_dir / "adapter" / "adapter_model.safetensors").read_bytes()
    assert not [p for p in run_dir.iterdir() if p.name.startswith(".tmp-")]


def test_eval_loss_best_without_rouge(ws):
    config = rouge_config(ws, rouge_every=0, eval_every=2, best_metric="eval_loss", max_steps=4)
    run_dir = ws.runs / "loss"
    assert recipe_module.Recipe(config, run_dir).run()["status"] == "completed"
    evals = rows(run_dir, "eval")
    assert [e["step"] for e in evals] == [2, 4] and not any("rouge" in e for e in evals)
    best = min(evals, key=lambda e: e["evalLoss"])
    run = json.loads((run_dir / "run.json").read_text())
    assert run["best"]["metric"] == "eval_loss" and run["best"]["step"] == best["step"]
    assert run["best"]["value"] == best["evalLoss"]
    assert (run_dir / "best-adapter" / "adapter_model.safetensors").is_file()


def test_rouge_evaluation_does_not_change_training(ws):
    """Same losses and the same adapter with and without ROUGE evaluations (they restore the RNG, leave no grads)."""
    results = {}
    for name, extra in (("plain", {"rouge_every": 0}), ("rouge", {"rouge_every": 1})):
        config = rouge_config(ws, max_steps=3, **extra)
        config["lora"]["dropout"] = 0.1  # dropout draws from the RNG: a perturbed RNG would show in the losses
        run_dir = ws.runs / name
        assert recipe_module.Recipe(config, run_dir).run()["status"] == "completed"
        results[name] = ([r["loss"] for r in rows(run_dir, "train")],
                         (run_dir / "adapter" / "adapter_model.safetensors").read_bytes())
    assert results["plain"][0] == results["rouge"][0]
    assert results["plain"][1] == results["rouge"][1]


@pytest.mark.parametrize("train,field", [
    ({"best_metric": "rouge1", "rouge_every": 0}, "train.best_metric"),
    ({"best_metric": "eval_loss", "rouge_every": 0, "eval_every": 0}, "train.best_metric"),
])
def test_inconsistent_settings_are_bad_config(ws, train, field):
    with pytest.raises(BadConfig) as info:
        recipe_module.Recipe(rouge_config(ws, **train), ws.runs / "x").validate()
    assert info.value.field == field and field in info.value.message
    assert not (ws.runs / "x").exists()


def test_rouge_needs_validation_records(ws):
    config = rouge_config(ws)
    config["data"]["validation_split"] = 0.0
    with pytest.raises(BadConfig) as info:
        recipe_module.Recipe(config, ws.runs / "x").validate()
    assert info.value.field == "train.rouge_every" and "validation" in info.value.message


def test_validation_records_without_references_name_file_line_field(ws):
    config = rouge_config(ws, rouge_samples=2)
    val = ws.root / "val.jsonl"
    recs = short_records(2, offset=20, dialogue_chars=80)
    write_jsonl(val, [recs[0], {"dialogue": recs[1]["dialogue"], "summary": 5}])
    config["data"]["validation"] = str(val)
    with pytest.raises(BadDataset) as info:
        recipe_module.Recipe(config, ws.runs / "x").validate()
    assert (info.value.file, info.value.line, info.value.field) == (str(val), 2, "summary")

    # explicit eval.references: each named field is required
    write_jsonl(val, [{**recs[0], "summary1": "a"}, {**recs[1], "summary2": "b"}])
    config["eval"]["references"] = ["summary1"]
    with pytest.raises(BadDataset) as info:
        recipe_module.Recipe(config, ws.runs / "x").validate()
    assert (info.value.line, info.value.field) == (2, "summary1") and "missing" in info.value.message


def records(*fields):
    return [Record(i + 1, f) for i, f in enumerate(fields)]


def test_reference_fields_default_to_the_response_variable_and_its_numbered_variants(tmp_path):
    template = load_template(_template(tmp_path))
    test_like = records({"dialogue": "d", "summary1": "a", "summary3": "c", "summary2": "b", "summary10": "j"},
                        {"dialogue": "d", "summary1": "x"})
    names, explicit = reference_fields(None, template, test_like)
    assert names == ("summary1", "summary2", "summary3", "summary10") and not explicit
    assert references(test_like, names, explicit, tmp_path / "test.jsonl") == [["a", "b", "c", "j"], ["x"]]
    assert reference_fields(["summary2"], template, test_like) == (("summary2",), True)
    mixed = records({"dialogue": "d", "summary": "s"}, {"dialogue": "d", "summary2": "t"})
    assert reference_fields(None, template, mixed) == (("summary", "summary2"), False)
    assert reference_fields(None, template, records({"dialogue": "d"})) == (("summary",), False)
    with pytest.raises(BadDataset) as info:
        references(records({"dialogue": "d"}), names, False, tmp_path / "test.jsonl")
    assert info.value.line == 1 and info.value.file == str(tmp_path / "test.jsonl")


def test_a_response_with_two_variables_needs_eval_references(tmp_path):
    path = tmp_path / "two.prompt.yaml"
    path.write_text('prompt: "{{ dialogue }}"\nresponse: "{{ topic }}: {{ summary }}"\n')
    with pytest.raises(BadConfig) as info:
        reference_fields(None, load_template(str(path)), records({"dialogue": "d"}))
    assert info.value.field == "eval.references"


def test_mean_is_rouge_score_with_stemmer_and_best_of_several_references():
    from rouge_score import rouge_scorer
    reference = rouge_scorer.RougeScorer(list(ROUGE_TYPES), use_stemmer=True)
    predictions = ["The cats were running home.\nThey ate.", "", "#Person1# asks about the factors"]
    refs = [["the cat runs home"], ["nothing here"], ["#Person1# asks #Person2# about factors.", "They talk."]]
    mean = RougeScorer().mean(predictions, refs)
    for t in ROUGE_TYPES:
        per = [reference.score(refs[0][0], predictions[0])[t].fmeasure, reference.score(refs[1][0], "")[t].fmeasure,
               max(reference.score(r, predictions[2])[t].fmeasure for r in refs[2])]
        assert mean[t] == pytest.approx(sum(per) / 3, abs=1e-15)
    assert mean["rouge1"] > 0.3


def _template(tmp_path):
    from conftest import TEMPLATE_TEXT
    path = tmp_path / "summarize.prompt.yaml"
    path.write_text(TEMPLATE_TEXT)
    return str(path)


def test_rouge_generation_with_gradient_checkpointing_on(ws):
    """Generation inside the loop of a model set up for gradient checkpointing (the QLoRA default): eval mode, KV
    cache on, then training goes on with checkpointing."""
    config = rouge_config(ws, max_steps=3, rouge_every=2, gradient_checkpointing=True)
    run_dir = ws.runs / "gc"
    assert recipe_module.Recipe(config, run_dir).run()["status"] == "completed"
    evals = rows(run_dir, "eval")
    assert [e["step"] for e in evals] == [2, 3] and all(set(e["rouge"]) == set(ROUGE_TYPES) for e in evals)
    assert all(r["loss"] == r["loss"] for r in rows(run_dir, "train"))
