"""AppTest tests of every dashboard page, on tiny fixture artifacts (tests/dashboard_fixtures.py).

Each page: renders without an exception, shows its key widgets, and handles one interaction.
Faults (missing folders, broken model, bad uploads, empty prompt) must give a message, not a crash.
"""

from __future__ import annotations

import io
import json
import shutil
import sys
import threading
import time
import types
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from dashboard_fixtures import shared_artifacts
from streamlit.testing.v1 import AppTest

# Keras' own model building warns about numpy 2's copy keyword; not ours to fix.
pytestmark = pytest.mark.filterwarnings(
    "ignore:__array__ implementation doesn't accept a copy keyword:DeprecationWarning")

APP = str(Path(__file__).resolve().parent.parent / "dashboard" / "app.py")
TIMEOUT = 90


@pytest.fixture(scope="session")
def artifacts(tmp_path_factory):
    return shared_artifacts(tmp_path_factory)


@pytest.fixture(autouse=True)
def env(artifacts, monkeypatch):
    models, tuning = artifacts
    monkeypatch.setenv("SAVED_MODELS_DIR", str(models))
    monkeypatch.setenv("TUNING_DIR", str(tuning))
    return models, tuning


def open_page(page: str | None = None) -> AppTest:
    at = AppTest.from_file(APP, default_timeout=TIMEOUT).run()
    if page:
        at.switch_page(f"views/{page}.py").run()
    assert not at.exception, [e.value for e in at.exception]
    return at


def texts(elements) -> str:
    return "\n".join(str(e.value) for e in elements)


def has_cifar() -> bool:
    from trainer.data import resolve_archive

    return resolve_archive() is not None


def png_bytes(w: int, h: int, color=(200, 30, 30)) -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", (w, h), color).save(buf, format="PNG")
    return buf.getvalue()


# ------------------------------------------------------------------ 1. Overview


def test_overview_cards_and_scatter():
    at = open_page()
    assert at.title[0].value == "Model overview"
    md = texts(at.markdown)
    assert "tiny" in md and "broken" in md
    assert "The fixture's shipped classifier." in md, "a deliverable's card says what it is for"
    assert "text2image" not in md, "the diffusion folder must not appear as a classifier"
    assert "Text-to-image model" in md and "Prompt accuracy" in md  # its own small card
    # the broken model gets a friendly message on its card
    warnings = texts(at.warning)
    assert "model.keras is damaged" in warnings and "metrics.json could not be read" in warnings
    metrics = {m.label: m.value for m in at.metric}
    assert metrics["Shipped classifier"].endswith("%") and metrics["Experiments"] == "3"
    assert "Best accuracy" not in metrics, "no model is called the best by accuracy"
    assert "2 deliverable classifiers, 3 experiments" in texts(at.sidebar.caption)
    assert len(at.get("plotly_chart")) == 2
    # interaction: show TFLite latency instead of Keras
    assert "Latency (Keras)" in md
    at.segmented_control(key="overview_latency_kind").set_value("tflite").run()
    assert not at.exception
    assert "Latency (TFLite)" in texts(at.markdown)
    # the card's report opens in a dialog
    at.button(key="report_deliverable_tiny").click().run()
    assert not at.exception
    assert "A fixture model." in texts(at.markdown)


def test_overview_experiments_are_filterable_and_smoke_runs_flagged():
    at = open_page()
    table = at.dataframe[0].value
    assert sorted(table["experiment"]) == ["seed_a", "seed_b", "smoke"]
    smoke = table.set_index("experiment").loc["smoke"]
    assert "only 20 test images" in smoke["note"]
    # seed_b has no "test_images" field: its confusion matrix (10,000 images) stands in
    assert table.set_index("experiment").loc["seed_b", "test images"] == 10_000
    assert "smoke run" not in table.set_index("experiment").loc["seed_b", "note"]
    at.text_input(key="overview_filter").input("seed").run()
    assert sorted(at.dataframe[0].value["experiment"]) == ["seed_a", "seed_b"]


@pytest.mark.parametrize("state", ["missing", "empty"])
def test_overview_without_models(tmp_path, monkeypatch, state):
    root = tmp_path / "nothing"
    if state == "empty":
        root.mkdir()
    monkeypatch.setenv("SAVED_MODELS_DIR", str(root))
    monkeypatch.setenv("TUNING_DIR", str(tmp_path / "no_tuning"))
    at = open_page()
    assert ("No models folder" if state == "missing" else "holds no classifiers") in texts(at.info)


# ------------------------------------------------------------------ 2. Confusion explorer


@pytest.mark.skipif(not has_cifar(), reason="needs the offline CIFAR-10 archive")
def test_confusion_explorer_cell_and_gallery():
    at = open_page("confusion")
    assert at.title[0].value == "Confusion matrix explorer"
    assert at.selectbox(key="cm_model").value == "tiny"  # the manifest's shipped classifier
    assert len(at.get("plotly_chart")) >= 3  # heatmap, P/R/F1 bars, accuracy bars
    assert at.segmented_control(key="cm_mode").value == "Counts"
    at.segmented_control(key="cm_mode").set_value("Normalised").run()
    # interaction: choose a cell
    at.selectbox(key="cm_true").set_value("cat").run()
    at.selectbox(key="cm_pred").set_value("dog").run()
    assert not at.exception
    assert at.subheader[-1].value.startswith("cat → dog:")
    assert len(at.image) > 0, "the gallery shows no images"
    assert "dog" in at.image[0].proto.imgs[0].caption


def test_confusion_metrics_come_from_trainer_metrics(artifacts):
    from trainer.metrics import classification_report

    with np.load(artifacts[0] / "tiny" / "test_predictions.npz") as z:
        report = classification_report(z["labels"], z["probs"].astype(np.float32).argmax(1))
    at = open_page("confusion")
    metrics = {m.label: m.value for m in at.metric}
    assert metrics["Accuracy"] == f"{100 * report['accuracy']:.1f}%"
    assert metrics["Macro F1"] == f"{100 * report['macro_avg']['f1']:.1f}%"


def test_confusion_flags_a_smoke_run(artifacts, tmp_path, monkeypatch):
    small = tmp_path / "small"
    small.mkdir()
    (small / "config.json").write_text('{"name": "small", "arch": "tiny_cnn"}')
    labels = np.arange(20) % 10
    np.savez(small / "test_predictions.npz", probs=np.eye(10)[labels], labels=labels)
    monkeypatch.setenv("SAVED_MODELS_DIR", str(tmp_path))
    at = open_page("confusion")
    assert "only 20 test images" in texts(at.warning)


def test_confusion_opens_an_experiment():
    at = open_page("confusion")
    at.selectbox(key="cm_model").set_value("seed_a").run()
    assert not at.exception
    assert {m.label: m.value for m in at.metric}["Accuracy"] == "80.0%"


def test_confusion_pair_shortcut():
    at = open_page("confusion")
    pills = at.pills(key="cm_pair")
    first = pills.options[0]
    pills.set_value(first).run()
    assert not at.exception
    t, p = first.split(" → ")
    assert (at.selectbox(key="cm_true").value, at.selectbox(key="cm_pred").value) == (t, p)


def test_confusion_without_archive(monkeypatch, tmp_path):
    monkeypatch.setenv("CIFAR10_ARCHIVE", str(tmp_path / "missing.tar.gz"))
    at = open_page("confusion")
    assert "images cannot be shown" in texts(at.info)
    assert "not found" in texts(at.info)


def _models_with_rival(tiny: Path, root: Path, fixed: int, broken: int, relabel: bool = False) -> dict:
    """A models root with the fixture model and a predictions-only rival that is right on `fixed`
    of tiny's wrong images and wrong on `broken` of its right ones; returns tiny's counts."""
    shutil.copytree(tiny, root / "tiny")
    with np.load(tiny / "test_predictions.npz") as z:
        probs, labels = z["probs"].astype(np.float32), z["labels"]
    right = probs.argmax(1) == labels
    rival = probs.copy()
    for i in np.flatnonzero(~right)[:fixed]:
        rival[i] = np.eye(10)[labels[i]]
    for i in np.flatnonzero(right)[:broken]:
        rival[i] = np.eye(10)[(labels[i] + 1) % 10]
    (root / "rival").mkdir()
    (root / "rival" / "config.json").write_text('{"name": "rival", "arch": "tiny_cnn"}')
    np.savez(root / "rival" / "test_predictions.npz", probs=rival,
             labels=(labels + 1) % 10 if relabel else labels)
    return {"accuracy": right.mean(), "images": labels.size}


@pytest.mark.parametrize("fixed, broken, needle", [
    (300, 100, "also larger than the 0.60 points between two training runs"),  # 2.00 points, p < 1e-6
    (40, 5, "but not than the luck of training"),  # 0.35 points: p < 1e-6, yet within the seed spread
    (12, 8, "could be the luck")])
def test_confusion_paired_comparison(artifacts, tmp_path, monkeypatch, fixed, broken, needle):
    tiny = _models_with_rival(artifacts[0] / "tiny", tmp_path, fixed, broken)
    monkeypatch.setenv("SAVED_MODELS_DIR", str(tmp_path))
    at = open_page("confusion")
    at.selectbox(key="cm_model").set_value("tiny").run()
    assert at.selectbox(key="cm_rival").value == "rival"
    assert not at.exception, [e.value for e in at.exception]
    metrics = {m.label: m.value for m in at.metric}
    assert metrics["Right only by tiny"] == f"{broken:,}" and metrics["Right only by rival"] == f"{fixed:,}"
    gain = 100 * (fixed - broken) / tiny["images"]
    assert metrics["rival accuracy"] == f"{100 * tiny['accuracy'] + gain:.2f}%"
    assert needle in texts(at.markdown) and f"{gain:.2f} points" in texts(at.markdown)
    assert len(at.get("plotly_chart")) == 4  # heatmap, P/R/F1, per-class accuracy, per-class gain


def test_confusion_comparison_refuses_other_test_sets(artifacts, tmp_path, monkeypatch):
    _models_with_rival(artifacts[0] / "tiny", tmp_path, 0, 0, relabel=True)
    monkeypatch.setenv("SAVED_MODELS_DIR", str(tmp_path))
    at = open_page("confusion")
    at.selectbox(key="cm_model").set_value("tiny").run()
    assert not at.exception
    assert "evaluated on different test images" in texts(at.info)


# ------------------------------------------------------------------ 3. Try it


def test_try_it_upload_resizes_and_predicts():
    at = open_page("try_it")
    assert at.title[0].value == "Try it"
    assert len(at.file_uploader) == 1
    at.file_uploader[0].set_value(("photo.png", png_bytes(400, 300), "image/png")).run()
    assert not at.exception and not at.error
    assert "400×300" in texts(at.caption)
    assert len(at.get("plotly_chart")) == 1  # the top-5 bar chart


@pytest.mark.parametrize("name,data,needle", [
    ("notes.txt", b"hello, not an image", "not an image"),
    ("broken.png", png_bytes(64, 64)[:60], "damaged"),
    ("empty.png", b"", "empty"),
])
def test_try_it_bad_uploads(name, data, needle):
    at = open_page("try_it")
    at.file_uploader[0].set_value((name, data, "image/png")).run()
    assert not at.exception
    assert needle in texts(at.error)


def test_try_it_huge_image():
    img = Image.new("L", (9000, 5000))  # 45 megapixels, a small PNG
    buf = io.BytesIO()
    img.save(buf, format="PNG")
    at = open_page("try_it")
    at.file_uploader[0].set_value(("huge.png", buf.getvalue(), "image/png")).run()
    assert not at.exception
    assert "9,000×5,000 pixels" in texts(at.error) and "megapixels" in texts(at.error)


def test_try_it_refuses_a_long_side_before_decoding(monkeypatch):
    from dashboard import uploads

    def no_decoding(*a, **k):
        raise AssertionError("the picture was decoded")

    data = png_bytes(5000, 100)  # 0.5 megapixels, but one side over the limit
    monkeypatch.setattr(Image.Image, "load", no_decoding)
    with pytest.raises(uploads.BadImage, match="5,000×100 pixels"):
        uploads.decode_upload(data)


def test_upload_limit_is_one_number():
    """Streamlit's server.maxUploadSize, the uploader's limit and help, and the refusal agree."""
    import tomllib

    from dashboard import uploads

    config = tomllib.loads((Path(uploads.__file__).parent / ".streamlit" / "config.toml").read_text())
    mb = config["server"]["maxUploadSize"]
    assert uploads.MAX_UPLOAD_MB == mb
    at = open_page("try_it")
    assert f"up to {mb} MB" in at.file_uploader[0].help
    assert f"larger than {mb} MB" in at.file_uploader[0].help
    at.file_uploader[0].set_value(("big.png", b"\x89PNG" + bytes(mb * 1024 * 1024), "image/png")).run()
    assert not at.exception
    assert f"This file is larger than {mb} MB" in texts(at.error)


def test_concurrent_decodes_are_capped(monkeypatch):
    from dashboard import uploads

    active, peak, lock = [0], [0], threading.Lock()
    real = uploads._decode

    def slow(data):
        with lock:
            active[0] += 1
            peak[0] = max(peak[0], active[0])
        time.sleep(0.2)
        with lock:
            active[0] -= 1
        return real(data)

    monkeypatch.setattr(uploads, "_decode", slow)
    threads = [threading.Thread(target=uploads.decode_upload, args=(png_bytes(64, 64),)) for _ in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert peak[0] == uploads.MAX_CONCURRENT_DECODES


def noise_png() -> bytes:
    buf = io.BytesIO()
    Image.fromarray(np.random.default_rng(0).integers(0, 256, (64, 64, 3), dtype=np.uint8)).save(buf, "PNG")
    return buf.getvalue()


def test_try_it_flags_none_of_these_and_still_shows_the_class(monkeypatch):
    from trainer import ood

    monkeypatch.setattr(ood, "load_threshold", lambda *a, **k: 0.99)  # the untrained fixture never reaches it
    at = open_page("try_it")
    at.file_uploader[0].set_value(("noise.png", noise_png(), "image/png")).run()
    assert not at.exception
    assert "Probably none of the ten classes" in texts(at.warning)
    assert any(m.startswith("### ") for m in (e.value for e in at.markdown)), "the top class is hidden"


def test_try_it_no_flag_above_the_threshold(monkeypatch):
    from trainer import ood

    monkeypatch.setattr(ood, "load_threshold", lambda *a, **k: 0.0)
    at = open_page("try_it")
    at.file_uploader[0].set_value(("noise.png", noise_png(), "image/png")).run()
    assert not at.exception
    assert "Probably none" not in texts(at.warning)


def tiny_answers(models_root: Path, count: int = 300) -> tuple[int, int]:
    """(index of a test image the fixture model gets right, index of one it gets wrong)."""
    import keras

    from trainer.data import load_cifar10

    data = load_cifar10(splits=("test",))
    model = keras.saving.load_model(models_root / "tiny" / "model.keras")
    pred = np.asarray(model(data.x_test[:count].astype(np.float32))).argmax(1)
    right = pred == data.y_test[:count]
    return int(np.flatnonzero(right)[0]), int(np.flatnonzero(~right)[0])


@pytest.mark.skipif(not has_cifar(), reason="needs the offline CIFAR-10 archive")
def test_try_it_test_image(env):
    from trainer.data import CLASS_NAMES, load_cifar10

    y = load_cifar10(splits=("test",)).y_test
    right, wrong = tiny_answers(env[0])
    at = open_page("try_it")
    at.segmented_control(key="try_source").set_value("Test image").run()
    at.number_input(key="try_index").set_value(right).run()
    assert not at.exception
    assert f"Correct: this test image is a **{CLASS_NAMES[y[right]]}**" in texts(at.success)
    assert "Not quite" not in texts(at.warning)
    at.number_input(key="try_index").set_value(wrong).run()
    assert f"Not quite: this test image is a **{CLASS_NAMES[y[wrong]]}**" in texts(at.warning)
    assert not at.success


# ------------------------------------------------------------------ 4. Live latency


def fake_result(kinds=("keras", "tflite")):
    rng = np.random.default_rng(0)
    out = {"cpu": "Fake CPU 9000", "threads": 1}
    for i, k in enumerate(kinds):
        s = rng.gamma(5, 0.3 + i, 200)
        out[k] = {"median": float(np.median(s)), "p90": float(np.percentile(s, 90)),
                  "samples_ms": s.tolist()}
    return out


def test_latency_measure(monkeypatch):
    from dashboard import caching, latency

    calls = []

    def fake(model_dir, runs=200, warmup=20, timeout_s=600):
        calls.append((Path(model_dir).name, runs, warmup))
        assert caching.lock_busy("latency"), "measurements must run under the lock"
        return fake_result()

    monkeypatch.setattr(latency, "measure_latency", fake)
    at = open_page("latency")
    assert at.title[0].value == "Live latency"
    assert "CPU" in {m.label for m in at.metric}
    assert "Press **Measure now**" in texts(at.info)
    at.button(key="lat_go").click().run()
    assert not at.exception
    assert calls == [("tiny", 200, 20)]
    assert "measured at" in at.subheader[-1].value
    labels = {m.label for m in at.metric}
    assert {"Keras median", "TFLite p90"} <= labels
    assert len(at.get("plotly_chart")) == 2


def test_latency_shows_int8_when_the_model_has_one(monkeypatch):
    from dashboard import latency

    monkeypatch.setattr(latency, "measure_latency",
                        lambda *a, **k: fake_result(("keras", "tflite", "tflite_int8")))
    at = open_page("latency")
    at.button(key="lat_go").click().run()
    assert not at.exception
    assert {"TFLite int8 median", "TFLite int8 p90"} <= {m.label for m in at.metric}
    assert "TFLite int8" in at.dataframe[0].value["format"].tolist()


def test_latency_failure_is_friendly(monkeypatch):
    from dashboard import latency

    def broken(*a, **k):
        raise RuntimeError("the benchmark process failed: boom")

    monkeypatch.setattr(latency, "measure_latency", broken)
    at = open_page("latency")
    at.button(key="lat_go").click().run()
    assert not at.exception
    assert "measurement failed" in texts(at.error) and "boom" in texts(at.error)


def test_latency_lock_serialises():
    from dashboard import caching

    spans = []

    def job():
        with caching.exclusive("latency", timeout_s=30):
            t0 = time.monotonic()
            time.sleep(0.3)
            spans.append((t0, time.monotonic()))

    threads = [threading.Thread(target=job) for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    spans.sort()
    assert all(a[1] <= b[0] for a, b in zip(spans, spans[1:])), "jobs overlapped"


def test_latency_real_subprocess(env):
    """The real benchmark in a child process, on the tiny model (a few seconds)."""
    from dashboard import latency

    res = latency.measure_latency(env[0] / "tiny", runs=5, warmup=1)
    for k in ("keras", "tflite"):
        assert res[k]["median"] > 0 and len(res[k]["samples_ms"]) == 5
    assert res["threads"] == 1 and res["cpu"]


# ------------------------------------------------------------------ 5. Search results


def test_search_results():
    at = open_page("search")
    assert at.title[0].value == "Architecture search"
    assert {m.label for m in at.metric} >= {"Trials", "Best hold-out accuracy"}
    # the best trial's settings, then every trial
    assert len(at.dataframe) == 2 and len(at.dataframe[-1].value) == 8
    assert len(at.get("plotly_chart")) == 3  # proxy check + parallel coordinates + scatter
    table = at.dataframe[-1].value
    assert table.set_index("trial_id")["hand-designed"].to_dict()["00"] is True  # trial 0 is marked
    assert table["hand-designed"].sum() == 1
    at.toggle(key="search_only_done").set_value(True).run()
    assert not at.exception
    assert len(at.dataframe[-1].value) == 7  # the failed trial is hidden
    at.selectbox(key="search_color").set_value("hp_block").run()
    at.multiselect(key="search_hps").set_value(["hp_width"]).run()
    assert not at.exception


def metrics_of(at) -> dict[str, str]:
    return {m.label: m.value for m in at.metric}


def test_search_proxy_check():
    at = open_page("search")
    shown = metrics_of(at)
    assert shown["Spearman rho, proxy vs full"] == "0.83"
    assert shown["Recipes"] == "4" and shown["Training time"] == "7.0 min"
    captions = texts(at.caption)
    assert "test accuracy of its committed full-budget model" in captions
    assert "used only to check" in captions and "never to choose a model" in captions
    assert "hold-out carved from the training split" in captions
    assert "proxy budget **5k_2ep**" in texts(at.markdown)  # the budget the search used
    radio = at.radio(key="search_proxy")
    assert radio.value == "5k_2ep" and len(radio.options) == 2  # starts on the search's budget
    assert "used by the search" in radio.options[0]
    radio.set_value("10k_3ep").run()
    assert not at.exception
    assert metrics_of(at)["Spearman rho, proxy vs full"] == "—"  # unfinished: no rho yet
    assert "proxy_check --proxy 10k_3ep" in texts(at.caption)


@pytest.mark.parametrize("content", [None, "{ not json", '{"proxies": []}'])
def test_search_without_proxy_check(artifacts, tmp_path, monkeypatch, content):
    tuning = tmp_path / "tuning"
    shutil.copytree(artifacts[1], tuning)
    if content is None:
        (tuning / "proxy_validation.json").unlink()
    else:
        (tuning / "proxy_validation.json").write_text(content, encoding="utf-8")
    monkeypatch.setenv("TUNING_DIR", str(tuning))
    at = open_page("search")
    assert "python -m trainer.proxy_check" in texts(at.info)
    assert "Spearman rho, proxy vs full" not in metrics_of(at)
    # the rest of the page still renders
    assert len(at.get("plotly_chart")) == 2 and len(at.dataframe) == 2


def test_search_winner_not_trained_yet():
    at = open_page("search")
    shown = metrics_of(at)
    assert shown["Hand-designed net (trial 00), hold-out"] == "67.8%"  # trial 00's proxy score
    assert shown["Best trial (07), hold-out"] == "86.5%"
    assert shown["Hand-designed tiny, shipped"] != "—"  # from the manifest's classifier
    assert shown["Hand-designed tiny, second seed"] == "—"
    assert "Searched winner (airnet_searched)" not in shown
    info = texts(at.info)
    assert "not been trained at the full budget yet" in info
    assert "python -m trainer.train --recipe best" in info


def test_search_winner_beside_the_hand_designed_seeds(artifacts, tmp_path, monkeypatch):
    tuning = tmp_path / "tuning"
    shutil.copytree(artifacts[1], tuning)
    for name, acc, extra in (("airnet_searched", 0.9234, {"trial_id": "03"}), ("tiny_seed1", 0.4321, {})):
        folder = tuning / "experiments" / name
        folder.mkdir()
        (folder / "config.json").write_text(json.dumps({"name": name, "arch": "airnet", **extra}))
        (folder / "metrics.json").write_text(json.dumps({"name": name, "accuracy": acc, "test_images": 10000}))
    monkeypatch.setenv("TUNING_DIR", str(tuning))
    at = open_page("search")
    shown = metrics_of(at)
    assert shown["Searched winner (airnet_searched)"] == "92.3%"
    assert shown["Hand-designed tiny, second seed"] == "43.2%"
    assert shown["Hand-designed tiny, shipped"] != "—"
    assert "--recipe best` trains" not in texts(at.info)
    captions = texts(at.caption)
    assert "trained from trial 03" in captions  # the summary's best is now 07: retrain
    assert "two seeds differ by" in captions


def test_search_tolerates_odd_proxy_and_summary_files(tmp_path, monkeypatch):
    tuning = tmp_path / "tuning"
    tuning.mkdir()
    (tuning / "proxy_validation.json").write_text(json.dumps({"proxies": {
        "a": {"rows": 5, "budget": "x", "rho": "nan"}, "b": "not a dict",
        "c": {"rows": [1, {"recipe": "r", "proxy_val_accuracy": "x"},
                       {"proxy_val_accuracy": 0.5, "full_test_accuracy": 0.9}]}}}))
    (tuning / "summary.json").write_text(json.dumps({  # odd keys, a trial without params
        "proxy_budget": "5k", "best_recipe": [1], "best_trial_id": 3,
        "trials": [{"trial_id": 0, "val_accuracy": 0.5, "params": 10, "hp_type": "sep"},
                   {"trial_id": 3, "val_accuracy": 0.6, "hp_type": None}]}))
    monkeypatch.setenv("TUNING_DIR", str(tuning))
    at = open_page("search")
    assert metrics_of(at)["Best trial (3), hold-out"] == "60.0%"
    assert len(at.radio(key="search_proxy").options) == 2  # the unreadable proxy "b" is left out


def test_search_best_is_the_hand_designed_net(tmp_path, monkeypatch):
    tuning = tmp_path / "tuning"
    tuning.mkdir()
    trials = [{"trial_id": "0", "status": "COMPLETED", "val_accuracy": 0.71, "params": 882946, "hp_cutout": 8},
              {"trial_id": "1", "status": "COMPLETED", "val_accuracy": 0.65, "params": 500000, "hp_cutout": 0}]
    (tuning / "summary.json").write_text(json.dumps({
        "objective": "val_accuracy", "proxy_budget": {"name": "5k_2ep", "epochs": 2, "train_images": 5000},
        "trials": trials, "best_trial_id": "0",
        "best_recipe": {"arch": "airnet", "hyperparameters": {}, "cutout": 8}}))
    monkeypatch.setenv("TUNING_DIR", str(tuning))
    at = open_page("search")
    assert "best proxy score is the hand-designed net itself" in texts(at.markdown)
    assert "Best trial: 0** (the hand-designed net)" in texts(at.markdown)
    assert "python -m trainer.proxy_check" in texts(at.info)  # no proxy check in this folder
    # an older summary: a bare list of trials, no proxy budget or best recipe
    (tuning / "summary.json").write_text(json.dumps(trials))
    at = open_page("search")
    assert metrics_of(at)["Best trial (0), hold-out"] == "71.0%"
    assert "best proxy score is the hand-designed net itself" in texts(at.markdown)


def test_search_tolerates_missing_and_partial(tmp_path, monkeypatch):
    monkeypatch.setenv("TUNING_DIR", str(tmp_path / "none"))
    at = open_page("search")
    assert "No search results yet" in texts(at.info)
    partial = tmp_path / "partial"
    partial.mkdir()
    (partial / "summary.csv").write_text("trial_id,val_accuracy\n1,0.5\n2,\n", encoding="utf-8")
    monkeypatch.setenv("TUNING_DIR", str(partial))
    at = open_page("search")
    assert len(at.dataframe) == 1  # no settings columns: only the trials table


# ------------------------------------------------------------------ 6. Prompt to image


class FakeGenerator:
    """Draws noise, but reads prompts with trainer.diffusion's real tokenizer and its rules (empty,
    too long, unknown words), on a vocabulary without "truck"."""

    image_size = 32

    def __init__(self):
        from trainer.diffusion.tokenizer import WordTokenizer

        words = ["a", "photo", "of", "red", "white", "green", "ship", "horse", "frog", "cat", "dog"]
        self.tokenizer = WordTokenizer(["", "[UNK]"] + words, max_length=8)
        self.calls = []

    def generate_batch(self, prompts, seeds, steps=50, guidance_scale=None, on_step=None):
        self.tokenizer.encode(prompts)  # raises PromptError as the real model does
        self.calls.append((prompts[0], list(seeds), steps, guidance_scale))
        for i in range(1, steps + 1):  # 1-based, like trainer.diffusion
            if on_step:
                on_step(i, steps)
        return np.stack([np.random.default_rng(s).integers(0, 256, (32, 32, 3), dtype=np.uint8) for s in seeds])


def _make_fake_api():
    from trainer.diffusion.tokenizer import PromptError

    api = types.ModuleType("trainer.diffusion")
    api.PromptError = PromptError
    api.generator = FakeGenerator()
    api.load_text_to_image = lambda model_dir=None: api.generator
    api.official_weights_dir = lambda: None
    api.load_official = lambda weights_dir: api.generator
    return api


@pytest.fixture
def fake_diffusion(monkeypatch):
    api = _make_fake_api()
    monkeypatch.setitem(sys.modules, "trainer.diffusion", api)
    return api


def test_prompt_model_unavailable(monkeypatch):
    monkeypatch.setitem(sys.modules, "trainer.diffusion", None)  # import fails
    at = open_page("prompt")
    assert "not available" in texts(at.info)


def test_prompt_generates_a_grid_of_seeds(fake_diffusion):
    at = open_page("prompt")
    assert at.title[0].value == "Prompt to image"
    assert len(at.text_area) == 1 and len(at.number_input) == 3
    at.text_area(key="gen_prompt").input("a photo of a red ship")
    at.number_input(key="gen_seed").set_value(7)
    at.number_input(key="gen_steps").set_value(10)
    at.button[0].click().run()  # the form's Generate button
    assert not at.exception and not at.error
    assert fake_diffusion.generator.calls == [("a photo of a red ship", [7, 8, 9, 10], 10, 4.0)]
    assert len(at.image) == 4
    assert [img.proto.imgs[0].caption for img in at.image] == ["seed 7", "seed 8", "seed 9", "seed 10"]
    assert "True size 32×32" in texts(at.caption)
    assert at.get("progress")


@pytest.mark.parametrize("prompt,needle", [
    ("   ", "Please type a prompt"),
    ("a photo of a red ship " * 3, "reads at most 8"),  # the tokenizer's own length rule
    ("a photo of a red truck", "does not know the word 'truck'"),
])
def test_prompt_bad_input(fake_diffusion, prompt, needle):
    at = open_page("prompt")
    at.text_area(key="gen_prompt").input(prompt)
    at.button[0].click().run()
    assert not at.exception
    assert needle in texts(at.error)
    assert not at.image and not fake_diffusion.generator.calls


def test_prompt_unknown_word_lists_the_vocabulary(fake_diffusion):
    at = open_page("prompt")
    at.text_area(key="gen_prompt").input("a blue car")
    at.button[0].click().run()
    error = texts(at.error)
    assert "'blue', 'car'" in error
    assert "cat, dog, frog, green, horse, of, photo, red, ship, white" in error


def test_prompt_examples_use_only_known_words(fake_diffusion):
    tokenizer = fake_diffusion.generator.tokenizer
    at = open_page("prompt")
    labels = at.pills(key="gen_example").options  # shown without "a photo of a"
    assert labels and all(not tokenizer.unknown_words(label) for label in labels)
    assert "truck" not in " ".join(labels)
    assert not tokenizer.unknown_words(at.text_area(key="gen_prompt").placeholder.removeprefix("e.g. "))
    prompt = f"a photo of a {labels[0]}"
    at.pills(key="gen_example").set_value(prompt).run()
    assert not at.exception
    assert at.text_area(key="gen_prompt").value == prompt


def test_prompt_caption_names_the_judge(fake_diffusion):
    at = open_page("prompt")
    caption = texts(at.caption)
    assert "**fixture_judge** (92.9% test accuracy)" in caption
    assert "report.md" not in caption


# A real generation with trainer.diffusion's (untrained, tiny) fixture model runs in
# tests/test_dashboard_browser.py, through the real server; here the generator is a fake.
