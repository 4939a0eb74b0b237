"""Tests of the text-to-image latent diffusion model (tiny configs; about a minute on 2 CPU cores).

The full-size official wiring test builds 1B parameters and is skipped unless RUN_SLOW=1.
"""

import json
import os
import shutil

import numpy as np
import pytest

from trainer.diffusion import PromptError, load_text_to_image, official_weights_dir
from trainer.diffusion.captions import COLOURS, caption, dominant_colours, drop_colour, make_captions
from trainer.diffusion.tokenizer import WordTokenizer


# -- captions and tokenizer (no TensorFlow graph work) ----------------------------------------------
def solid(rgb, n=1):
    return np.tile(np.array(rgb, np.uint8), (n, 32, 32, 1))


@pytest.mark.parametrize("rgb,name", [((220, 20, 20), "red"), ((20, 40, 200), "blue"), ((30, 180, 40), "green"),
                                      ((250, 250, 250), "white"), ((5, 5, 5), "black"), ((128, 128, 128), "gray"),
                                      ((230, 220, 30), "yellow")])
def test_dominant_colour_of_solid_images(rgb, name):
    assert COLOURS[dominant_colours(solid(rgb))[0]] == name


def test_captions_name_the_centre_not_the_border():
    img = solid((30, 180, 40))          # green border
    img[:, 8:24, 8:24] = (220, 20, 20)  # red object in the centre
    assert make_captions(img, np.array([9])) == ["a photo of a red truck"]
    assert caption(0, "orange") == "a photo of an orange airplane"
    assert drop_colour("a photo of an orange airplane") == "a photo of an airplane"
    assert drop_colour("a photo of a red truck") == "a photo of a truck"


def test_tokenizer_pads_maps_unknown_and_rejects_bad_prompts(tmp_path):
    tok = WordTokenizer.fit(["a photo of a red truck", "a photo of an airplane"], max_length=6)
    ids = tok.encode(["A photo of a RED truck!", "a blue truck"])
    assert ids.shape == (2, 6) and ids.dtype == np.int32
    assert ids[0, -1] != 0 and ids[1, 1] == 1 and ids[1, 3] == 0  # 'blue' -> [UNK], then padding
    assert tok.encode([""], check=False).sum() == 0
    for bad in ["", "   \n", "a " * 7, None, 3]:
        with pytest.raises(PromptError):
            tok.encode([bad])
    assert issubclass(PromptError, ValueError)
    tok.save(tmp_path / "vocab.json")
    again = WordTokenizer.load(tmp_path / "vocab.json")
    assert again.vocabulary == tok.vocabulary and (again.encode(["a red truck"]) == tok.encode(["a red truck"])).all()
    (tmp_path / "bad.json").write_text("{not json")
    with pytest.raises(ValueError, match="bad.json"):
        WordTokenizer.load(tmp_path / "bad.json")


# -- schedule and sampler ---------------------------------------------------------------------------
def test_schedule_matches_kerascv_and_ddim_recovers_x0():
    from keras_cv.src.models.stable_diffusion.constants import _ALPHAS_CUMPROD

    from trainer.diffusion.schedule import alphas_cumprod, ddim_sample, ddim_timesteps, timestep_embedding

    alphas = alphas_cumprod()
    np.testing.assert_allclose(alphas, _ALPHAS_CUMPROD, atol=1e-5)
    assert ddim_timesteps(5).tolist() == [0, 250, 500, 749, 999]
    assert timestep_embedding([0, 10], 8).shape == (2, 8)
    # An oracle that knows x0 predicts the exact noise, so DDIM must land on x0 for any step count.
    rng = np.random.default_rng(0)
    x0 = rng.uniform(-1, 1, (2, 4, 4, 4)).astype(np.float32)
    noise = rng.standard_normal(x0.shape).astype(np.float32)
    order, calls, progress = ddim_timesteps(4)[::-1], [], []

    def predict(latent, t_emb, context):
        a = alphas[order[len(calls)]]
        calls.append(t_emb.shape)
        return (latent - np.sqrt(a) * np.concatenate([x0, x0])) / np.sqrt(1 - a)

    ctx = np.zeros((2, 3, 8), np.float32)
    out = ddim_sample(predict, ctx, ctx, noise, 4, 3.0, alphas, 8, on_step=lambda i, n: progress.append((i, n)))
    assert calls == [(4, 8)] * 4 and progress == [(1, 4), (2, 4), (3, 4), (4, 4)]
    np.testing.assert_allclose(out, x0, atol=1e-3)


# -- a tiny trained model (shared by the tests below) -----------------------------------------------
TINY = ["--preset", "tiny", "--limit", "40", "--batch-size", "20", "--ae-batch-size", "20",
        "--checkpoint-every", "1", "--warmup", "2"]


@pytest.fixture(scope="module", autouse=True)
def eager_functions():
    """Two training steps of a tiny model: tracing tf.functions costs far more than running eagerly.
    The real training run (docs/TEXT_TO_IMAGE.md) exercises the graph path."""
    import tensorflow as tf

    before = tf.config.functions_run_eagerly()
    tf.config.run_functions_eagerly(True)
    yield
    tf.config.run_functions_eagerly(before)


@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory):
    from trainer.diffusion.train import main

    root = tmp_path_factory.mktemp("t2i")
    out = main(TINY + ["--out", str(root / "model"), "--checkpoint-dir", str(root / "ckpt")])
    return root, out


def test_training_writes_a_complete_small_model(tiny_model):
    root, out = tiny_model
    names = {p.name for p in out.iterdir()}
    assert {"config.json", "vocab.json", "training.json", "encoder.weights.h5", "decoder.weights.h5",
            "text_encoder.weights.h5", "unet.weights.h5"} <= names
    training = json.loads((out / "training.json").read_text())
    assert training["images"] == 40 and len(training["loss_log"]["ldm"]) == 1
    assert np.isfinite(training["loss_log"]["ldm"][0]["loss"])
    state = json.loads((root / "ckpt" / "current" / "state.json").read_text())
    assert state["ae"]["step"] == 2 and state["ldm"]["step"] == 2


def test_resume_continues_from_the_checkpoint(tiny_model, capsys):
    from trainer.diffusion.train import main

    root, _ = tiny_model
    out = main(TINY + ["--out", str(root / "model2"), "--checkpoint-dir", str(root / "ckpt")])
    assert "resuming from" in capsys.readouterr().out
    assert (out / "unet.weights.h5").is_file()
    with pytest.raises(SystemExit, match="another run"):
        main(TINY + ["--epochs", "2", "--out", str(root / "model3"), "--checkpoint-dir", str(root / "ckpt")])


@pytest.fixture(scope="module")
def loaded(tiny_model):
    return load_text_to_image(tiny_model[1])


def test_generate_shapes_determinism_progress_and_round_trip(tiny_model, loaded):
    _, out = tiny_model
    model = loaded
    steps = []
    a = model.generate("a photo of a red truck", seed=3, steps=3, on_step=lambda i, n: steps.append((i, n)))
    assert a.shape == (model.image_size, model.image_size, 3) and a.dtype == np.uint8
    assert steps == [(1, 3), (2, 3), (3, 3)]
    again = load_text_to_image(out)  # a second load from disk gives the same pixels
    np.testing.assert_array_equal(a, again.generate("a photo of a red truck", seed=3, steps=3))
    b = model.generate("a photo of a red truck", seed=4, steps=3)
    assert not np.array_equal(a, b)
    batch = model.generate_batch(["a photo of a cat", "a photo of a dog"], [0, 1], steps=2, guidance_scale=0.0)
    assert batch.shape == (2, 32, 32, 3) and batch.min() >= 0 and batch.max() <= 255


def test_generate_error_paths(tiny_model, loaded, tmp_path):
    _, out = tiny_model
    model = loaded
    for bad in ["", "   ", "a " * 50]:
        with pytest.raises(PromptError):
            model.generate(bad)
    with pytest.raises(ValueError, match="steps"):
        model.generate("a photo of a cat", steps=0)
    with pytest.raises(ValueError, match="seed"):
        model.generate("a photo of a cat", seed=-1)
    with pytest.raises(ValueError, match="guidance"):
        model.generate("a photo of a cat", guidance_scale=float("nan"))
    with pytest.raises(FileNotFoundError, match="nowhere"):
        load_text_to_image(tmp_path / "nowhere")
    broken = tmp_path / "broken"
    shutil.copytree(out, broken)
    (broken / "config.json").write_text("{")
    with pytest.raises(ValueError, match="broken"):
        load_text_to_image(broken)
    shutil.copy(out / "config.json", broken / "config.json")
    (broken / "unet.weights.h5").write_bytes(b"not an h5 file")
    with pytest.raises(ValueError, match="unet.weights.h5"):
        load_text_to_image(broken)
    (broken / "unet.weights.h5").unlink()
    with pytest.raises(FileNotFoundError, match="unet.weights.h5"):
        load_text_to_image(broken)


def test_evaluate_writes_metrics(tiny_model, tmp_path):
    import keras

    from trainer.diffusion.evaluate import best_classifier, frechet_distance, main

    _, out = tiny_model
    x = keras.Input((32, 32, 3))
    h = keras.layers.Rescaling(1 / 255.0)(x)
    h = keras.layers.Conv2D(8, 3, strides=4, activation="relu")(h)
    feats = keras.layers.GlobalAveragePooling2D(name="features")(h)
    clf_dir = tmp_path / "clf"
    clf_dir.mkdir()
    keras.Model(x, keras.layers.Dense(10, activation="softmax")(feats)).save(clf_dir / "model.keras")
    metrics_file = tmp_path / "metrics.json"
    m = main(["--model", str(out), "--classifier", str(clf_dir), "--per-class", "2", "--steps", "2",
              "--mse-images", "64", "--test-images", "200", "--colour-per-prompt", "1",
              "--timing-images", "1", "--timing-steps", "2", "--out", str(metrics_file)])
    saved = json.loads(metrics_file.read_text())
    assert saved["prompt_accuracy"]["accuracy"] == m["prompt_accuracy"]["accuracy"]
    assert 0 <= saved["prompt_accuracy"]["accuracy"] <= 1 and saved["heldout_denoising_mse"]["mse"] > 0
    assert saved["params"]["total"] == sum(v for k, v in saved["params"].items() if k != "total")
    assert saved["seconds_per_image"]["median_s"] > 0
    a = np.random.default_rng(0).standard_normal((500, 4))
    assert abs(frechet_distance(a, a)) < 1e-6 and abs(frechet_distance(a, a + 2) - 16) < 1e-6
    for name, acc in (("low", 0.3), ("high", 0.8), ("text2image", 0.99)):
        (tmp_path / "models" / name).mkdir(parents=True)
        (tmp_path / "models" / name / "model.keras").write_bytes(b"")
        (tmp_path / "models" / name / "metrics.json").write_text(json.dumps({"accuracy": acc}))
    assert best_classifier(tmp_path / "models").name == "high"


# -- the full-size path --------------------------------------------------------------------------
def test_official_dir_and_missing_files(tmp_path, monkeypatch):
    from trainer.diffusion import load_official

    monkeypatch.delenv("SD_WEIGHTS_DIR", raising=False)
    assert official_weights_dir() is None
    monkeypatch.setenv("SD_WEIGHTS_DIR", str(tmp_path))
    assert official_weights_dir() == tmp_path
    with pytest.raises(FileNotFoundError, match="kcv_diffusion_model.h5"):
        load_official(tmp_path)
    with pytest.raises(FileNotFoundError, match="does not exist"):
        load_official(tmp_path / "absent")


@pytest.mark.skipif(os.environ.get("RUN_SLOW") != "1", reason="builds the 1B-parameter model; RUN_SLOW=1")
def test_official_wiring_with_untrained_full_size_components(tmp_path):
    """Writes KerasCV's own components (download_weights=False) as legacy .h5 files with the official
    names plus a small BPE merges file, then loads them through load_official: no network needed."""
    import gzip

    import h5py
    from keras.src.legacy.saving.legacy_h5_format import save_weights_to_hdf5_group
    from keras_cv.models.stable_diffusion import Decoder, DiffusionModel, TextEncoder

    from trainer.diffusion import load_official

    for name, model in (("kcv_encoder.h5", TextEncoder(77, download_weights=False)),
                        ("kcv_diffusion_model.h5", DiffusionModel(128, 128, 77, download_weights=False)),
                        ("kcv_decoder.h5", Decoder(128, 128, download_weights=False))):
        with h5py.File(tmp_path / name, "w") as f:
            save_weights_to_hdf5_group(f, model)
        del model
    merges = ["#version: 0.2", "p h", "o t", "ph ot", "o</w> f</w>", "c a", "ca t</w>"]
    with gzip.open(tmp_path / "bpe_simple_vocab_16e6.txt.gz", "wt") as f:
        f.write("\n".join(merges))
    model = load_official(tmp_path, image_size=128)
    seen = []
    img = model.generate("a photo of a cat", seed=0, steps=2, on_step=lambda i, n: seen.append(i))
    assert img.shape == (128, 128, 3) and img.dtype == np.uint8 and seen == [1, 2]
    with pytest.raises(PromptError):
        model.generate("  ")
    with pytest.raises(PromptError, match="77"):
        model.generate("cat " * 100)
