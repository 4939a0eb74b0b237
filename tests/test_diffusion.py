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
COMMON = ["--preset", "tiny", "--limit", "40", "--batch-size", "20", "--checkpoint-every", "1", "--warmup", "2"]


@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory):
    """Both stages as their commands run them, through their tf.functions (2 steps each)."""
    from trainer.diffusion.train import main as train
    from trainer.diffusion.train_autoencoder import main as train_autoencoder

    root = tmp_path_factory.mktemp("t2i")
    train_autoencoder(COMMON + ["--epochs", "1", "--out", str(root / "ae"), "--checkpoint-dir", str(root / "ae_ckpt")])
    out = train(COMMON + ["--autoencoder", str(root / "ae"), "--out", str(root / "model"),
                          "--checkpoint-dir", str(root / "ckpt"), "--snapshots", "0.5"])
    return root, out


def test_training_writes_a_complete_small_model(tiny_model):
    root, out = tiny_model
    names = {p.name for p in out.iterdir()}
    assert {"config.json", "vocab.json", "training.json", "encoder.weights.h5", "decoder.weights.h5",
            "text_encoder.weights.h5", "unet.weights.h5"} <= names
    training = json.loads((out / "training.json").read_text())
    assert training["images"] == 40 and training["diffusion_steps"] == 2
    assert training["autoencoder"]["steps"] == 2 and training["stages_s"]["autoencoder"] > 0
    assert np.isfinite(training["loss_log"][0]["loss"])
    state = json.loads((root / "ckpt" / "current" / "state.json").read_text())
    assert state["ldm"]["step"] == 2
    # The snapshot halfway is a loadable model whose weights differ from the end of the run.
    half = json.loads((root / "ckpt" / "snapshots" / "at0.5" / "training.json").read_text())
    assert half["diffusion_steps"] == 1 and half["fraction_of_run"] == 0.5
    # The frozen first stage is copied unchanged into the model.
    import h5py
    with h5py.File(root / "ae" / "encoder.weights.h5") as a, h5py.File(out / "encoder.weights.h5") as b:
        keys = []
        a.visit(lambda k: keys.append(k) if isinstance(a[k], h5py.Dataset) else None)
        assert keys and all(np.array_equal(a[k][()], b[k][()]) for k in keys)


def test_resume_continues_from_the_checkpoint(tiny_model, capsys):
    from trainer.diffusion.train import main

    root, _ = tiny_model
    out = main(COMMON + ["--autoencoder", str(root / "ae"), "--out", str(root / "model2"),
                         "--checkpoint-dir", str(root / "ckpt")])
    assert "resuming from" in capsys.readouterr().out
    assert (out / "unet.weights.h5").is_file()
    with pytest.raises(SystemExit, match="another run"):
        main(COMMON + ["--autoencoder", str(root / "ae"), "--epochs", "2", "--out", str(root / "model3"),
                       "--checkpoint-dir", str(root / "ckpt")])


def test_a_missing_or_corrupt_checkpoint_says_what_to_delete(tiny_model, tmp_path):
    from trainer.diffusion.train import main

    root, _ = tiny_model
    ckpt = tmp_path / "ckpt"
    shutil.copytree(root / "ckpt", ckpt)
    (ckpt / "current" / "unet.weights.h5").write_bytes(b"half a file")
    with pytest.raises(ValueError, match=f"delete {ckpt}"):
        main(COMMON + ["--autoencoder", str(root / "ae"), "--out", str(tmp_path / "m"), "--checkpoint-dir", str(ckpt)])
    with pytest.raises(FileNotFoundError, match="nowhere"):
        main(COMMON + ["--autoencoder", str(tmp_path / "nowhere"), "--out", str(tmp_path / "m")])


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
    assert batch.shape == (2, 32, 32, 3)


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


def run_generate_cli(*args):
    import subprocess
    import sys

    return subprocess.run([sys.executable, "-m", "trainer.diffusion.generate", *args],
                          capture_output=True, text=True, timeout=300)


def test_generate_cli_refuses_bad_arguments_before_any_work(tmp_path):
    folder = tmp_path / "looks_like.png"
    folder.mkdir()
    for args, message in ((["a cat", "--steps", "0"], "--steps"), (["a cat", "--out", str(tmp_path / "noext")], "--out"),
                          (["a cat", "--guidance", "-1"], "--guidance"), (["  "], "empty"),
                          (["a cat", "--out", str(folder)], "folder")):
        done = run_generate_cli(*args)
        assert done.returncode == 2 and message in done.stderr, (args, done.stderr)
        assert "Traceback" not in done.stderr
    assert list(tmp_path.iterdir()) == [folder] and list(folder.iterdir()) == []
    done = run_generate_cli("a photo of a cat", "--model", str(tmp_path / "absent"), "--out", str(tmp_path / "x.png"))
    assert done.returncode != 0 and "no text-to-image model" in done.stderr and "Traceback" not in done.stderr


def test_generate_cli_warns_on_unknown_words_and_writes_the_image(tiny_model, tmp_path):
    _, out = tiny_model
    done = run_generate_cli("a photo of a spaceship", "--model", str(out), "--steps", "2", "--scale", "1",
                            "--out", str(tmp_path / "x.png"))
    assert done.returncode == 0, done.stderr
    assert "'spaceship'" in done.stderr and "truck" in done.stderr  # the warning lists what it knows
    from PIL import Image
    assert Image.open(tmp_path / "x.png").size == (32, 32)


def test_evaluate_writes_metrics_with_the_pinned_judge(tiny_model, tmp_path, monkeypatch):
    import keras

    import trainer.deliverables as deliverables
    from trainer.diffusion import metrics as m
    from trainer.diffusion.evaluate import main

    _, out = tiny_model
    x = keras.Input((32, 32, 3))
    h = keras.layers.Rescaling(1 / 255.0)(x)
    h = keras.layers.Conv2D(8, 3, strides=4, activation="relu")(h)
    feats = keras.layers.GlobalAveragePooling2D(name="features")(h)
    root = tmp_path / "models"
    (root / "judge").mkdir(parents=True)
    keras.Model(x, keras.layers.Dense(10, activation="softmax")(feats)).save(root / "judge" / "model.keras")
    (root / "judge" / "metrics.json").write_text(json.dumps({"accuracy": 0.5}))
    manifest = root / "DELIVERABLES.json"
    manifest.write_text(json.dumps({r: {"name": "judge" if r != "text_to_image" else str(out)}
                                    for r in deliverables.ROLES}))
    monkeypatch.setattr(deliverables, "MANIFEST", manifest)
    monkeypatch.setattr(deliverables.deliverable_dir, "__defaults__", (manifest,))
    metrics_file = tmp_path / "metrics.json"
    result = main(["--model", str(out), "--per-class", "2", "--steps", "2", "--mse-images", "20",
                   "--test-images", "20", "--colour-per-prompt", "1", "--timing-runs", "0",
                   "--out", str(metrics_file)])
    saved = json.loads(metrics_file.read_text())
    assert saved["judge"] == {"name": "judge", "test_accuracy": 0.5, "chosen_by": result["judge"]["chosen_by"]}
    assert set(saved["prompt_accuracy"]) == set(m.TEMPLATES)
    first = saved["prompt_accuracy"]["a photo of a <class>"]
    assert first["images"] == 20 and sum(map(sum, first["confusion_matrix"])) == 20
    assert 1 <= first["distinct_labels_per_seed"] <= 10
    assert saved["heldout_denoising_mse"]["mse"] > 0 and saved["colour_agreement"]["images"] == 60


def test_metric_functions_on_known_inputs():
    from trainer.diffusion import metrics as m

    a = np.random.default_rng(0).standard_normal((500, 4))
    assert abs(m.frechet_distance(a, a)) < 1e-6 and abs(m.frechet_distance(a, a + 2) - 16) < 1e-6
    labels = np.repeat(np.arange(10), 2)
    seeds = np.tile([0, 1], 10)
    ignored = m.prompt_accuracy(labels, np.full(20, 3), seeds)  # the prompt changes nothing
    assert ignored["accuracy"] == 0.1 and ignored["distinct_labels_per_seed"] == 1
    perfect = m.prompt_accuracy(labels, labels, seeds)
    assert perfect["accuracy"] == 1 and perfect["distinct_labels_per_seed"] == 10
    assert m.prompt_for("a <class>", 0) == "an airplane" and m.prompt_for("an image of a <class>", 3) == "an image of a cat"


def test_loss_weights_cap_the_easy_steps():
    from trainer.diffusion.schedule import alphas_cumprod
    from trainer.diffusion.training import loss_weights

    alphas = alphas_cumprod()
    snr = alphas / (1 - alphas)
    assert (loss_weights(alphas, "epsilon", 0) == 1).all()
    w = loss_weights(alphas, "epsilon", 5.0)
    np.testing.assert_allclose(w[snr < 5], 1.0, rtol=1e-6)
    assert w[0] < 0.01 and (np.diff(w) >= -1e-7).all()  # low-noise steps weigh least
    v = loss_weights(alphas, "v", 5.0)
    np.testing.assert_allclose(v, np.minimum(snr, 5) / (snr + 1), rtol=1e-5)


def test_v_prediction_sampler_recovers_x0():
    from trainer.diffusion.schedule import alphas_cumprod, ddim_sample, ddim_timesteps

    alphas = alphas_cumprod()
    rng = np.random.default_rng(1)
    x0 = rng.uniform(-1, 1, (1, 4, 4, 4)).astype(np.float32)
    order, calls = ddim_timesteps(3)[::-1], []

    def predict_v(latent, t_emb, context):  # the exact v for the known x0
        a = alphas[order[len(calls)]]
        calls.append(1)
        x = np.concatenate([x0, x0])
        eps = (latent - np.sqrt(a) * x) / np.sqrt(1 - a)
        return np.sqrt(a) * eps - np.sqrt(1 - a) * x

    ctx = np.zeros((1, 3, 8), np.float32)
    out = ddim_sample(predict_v, ctx, ctx, rng.standard_normal(x0.shape).astype(np.float32), 3, 2.0, alphas, 8,
                      prediction="v")
    np.testing.assert_allclose(out, x0, atol=1e-3)


def test_conditioning_follows_the_prompt():
    """Behaviour, not plumbing: a tiny model trained for 120 steps on two classes of solid colour
    must paint "truck" redder than "ship" at the same seeds. A model that ignores its text cannot pass."""
    from trainer.diffusion.config import tiny_config
    from trainer.diffusion.model import TextToImage
    from trainer.diffusion.training import encode_training_set, train_autoencoder, train_diffusion

    import keras

    keras.utils.set_random_seed(0)  # the weight initialisation, so the run is the same every time
    rng = np.random.default_rng(0)
    n = 64
    images = np.empty((n, 32, 32, 3), np.uint8)
    images[: n // 2] = (220, 30, 30)
    images[n // 2:] = (30, 30, 220)
    images = np.clip(images + rng.integers(-20, 20, images.shape), 0, 255).astype(np.uint8)
    captions = ["a photo of a truck"] * (n // 2) + ["a photo of a ship"] * (n // 2)
    tokenizer = WordTokenizer.fit(captions, 10)
    model = TextToImage(tiny_config(), tokenizer)
    noop = lambda *a, **k: None  # noqa: E731
    train_autoencoder(model.encoder, model.decoder, model.config, images,
                      {"epochs": 20, "batch_size": 32, "lr": 5e-3, "warmup": 2, "seed": 0},
                      {}, noop, None, 10 ** 6, [])
    means, stds, scale = encode_training_set(model.encoder, images)
    model.config.latent_scale = scale
    tokens = tokenizer.encode(captions)
    train_diffusion(model, means, stds, tokens, tokens,
                    {"epochs": 60, "batch_size": 32, "lr": 3e-3, "warmup": 2, "ema": 0.0, "seed": 0},
                    {}, noop, None, 10 ** 6, [])
    truck = model.generate_batch(["a photo of a truck"] * 4, [0, 1, 2, 3], steps=10, guidance_scale=5.0)
    ship = model.generate_batch(["a photo of a ship"] * 4, [0, 1, 2, 3], steps=10, guidance_scale=5.0)
    redness = lambda x: float(x[..., 0].astype(float).mean() - x[..., 2].astype(float).mean())  # noqa: E731
    # Same seeds, so a model that ignores its text makes identical pictures (difference exactly 0);
    # the autoencoder alone reproduces the two colours at about +-190.
    assert redness(truck) - redness(ship) > 20, (redness(truck), redness(ship))


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


@pytest.mark.parametrize("command", ["train", "train_autoencoder"])
@pytest.mark.parametrize("bad", [["--out", "."], ["--out", "saved_models"], ["--out", "trainer"],
                                 ["--checkpoint-dir", "/"], ["--batch-size", "0"], ["--limit", "3"]])
def test_training_commands_refuse_bad_arguments_before_any_work(command, bad, capsys):
    import importlib

    parse_args = importlib.import_module(f"trainer.diffusion.{command}").parse_args
    with pytest.raises(SystemExit) as exc:
        parse_args(bad)
    assert exc.value.code == 2 and "error:" in capsys.readouterr().err
