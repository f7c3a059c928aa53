"""The training loop: it learns, resumes exactly, restores the best epoch, and steps schedulers right."""

import numpy as np
import pytest
import torch

from neuroflux_lib.config import AugmentationConfig, ModelConfig
from neuroflux_lib.data.augmentation import build_augmentation
from neuroflux_lib.data.datasets import ImageTensorDataset
from neuroflux_lib.data.normalization import InputNormalization, ModelInput
from neuroflux_lib.models import build_model
from neuroflux_lib.training.loop import (
    cpu_has_native_bf16,
    device_settings,
    fit,
    loader_workers,
    make_scheduler,
    needs_drop_last,
    resolve_device,
)

CLASSES = ["A", "B", "C"]
SIZE = 32
INPUTS = ModelInput(InputNormalization("per_image", 3))


def toy_images(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Class = which third of the image holds a bright bar; learnable in a few epochs."""
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, 3, n)
    images = rng.integers(0, 60, (n, SIZE, SIZE)).astype(np.uint8)
    for image, label in zip(images, labels, strict=True):
        image[:, label * 10 : label * 10 + 8] += 150
    return images, labels


def datasets():
    x_train, y_train = toy_images(96, 0)
    x_val, y_val = toy_images(48, 1)
    return ImageTensorDataset(x_train, y_train), ImageTensorDataset(x_val, y_val)


def config(**overrides) -> ModelConfig:
    values = dict(
        model_name="neuroflux_cnn",
        conv_channels=4,
        dropout=0.2,
        num_epochs=4,
        batch_size=16,
        learning_rate=3e-3,
        device="cpu",
        early_stopping_patience=10,
        seed=0,
    )
    values.update(overrides)
    return ModelConfig(**values)


def train_cnn(train, val, settings: ModelConfig | None = None, **kwargs):
    """`fit` of a fresh tiny CNN with the shared inputs (`settings` default: `config()`)."""
    return fit(cnn(), train, val, settings or config(), CLASSES, inputs=INPUTS, **kwargs)


def cnn(seed: int = 0):
    torch.manual_seed(seed)
    return build_model("neuroflux_cnn", 3, {"conv_channels": 4, "dropout": 0.2}, image_size=SIZE).model


pytestmark = pytest.mark.usefixtures("one_torch_thread")


def test_training_lowers_the_loss_and_records_history():
    train, val = datasets()
    result = train_cnn(train, val, config(num_epochs=3))
    history = result.history
    assert len(history) == 3
    assert history[-1]["train_loss"] < history[0]["train_loss"]
    expected = {
        "train_loss",
        "val_loss",
        "train_accuracy",
        "val_accuracy",
        "val_macro_f1",
        "lr",
        "train_seconds",
        "train_images_per_s",
        *(f"val_f1_{c}" for c in CLASSES),
    }
    assert expected <= set(history[0])


def test_resume_after_interruption_matches_uninterrupted(tmp_path):
    """With batched augmentation (geometry and intensity) drawing from the RNG the checkpoint saves."""
    train, val = datasets()
    augmented = ModelInput(INPUTS.normalization, build_augmentation(AugmentationConfig()))
    full = fit(cnn(), train, val, config(), CLASSES, inputs=augmented, checkpoint_path=tmp_path / "a.pt")

    ckpt = tmp_path / "b.pt"
    fit(
        cnn(), train, val, config(), CLASSES, inputs=augmented, checkpoint_path=ckpt, max_epochs=2
    )  # "killed"
    resumed_model = cnn(seed=123)  # a fresh process would start from other weights
    resumed = fit(
        resumed_model, train, val, config(), CLASSES, inputs=augmented, checkpoint_path=ckpt, resume=True
    )

    drop = ("train_seconds", "train_images_per_s")
    strip = [{k: v for k, v in h.items() if k not in drop} for h in full.history]
    assert [{k: v for k, v in h.items() if k not in drop} for h in resumed.history] == strip
    assert resumed.best_epoch == full.best_epoch


def test_best_checkpoint_not_last_is_restored():
    train, val = datasets()
    seen = {}

    class Snapshot:
        def on_epoch_end(self, epoch, metrics):
            seen[epoch] = {k: v.clone() for k, v in model.state_dict().items()}

    model = cnn()
    # A huge learning rate late in training makes the last epochs worse than the best one.
    result = fit(
        model,
        train,
        val,
        config(num_epochs=5, monitor="val_loss", learning_rate=0.05),
        CLASSES,
        inputs=INPUTS,
        callbacks=[Snapshot()],
    )
    losses = [h["val_loss"] for h in result.history]
    assert result.best_epoch == int(np.argmin(losses)) + 1
    best = seen[result.best_epoch]
    assert all(torch.equal(best[k], v) for k, v in model.state_dict().items())
    if result.best_epoch != len(losses):
        last = seen[len(losses)]
        assert not all(torch.equal(last[k], v) for k, v in model.state_dict().items())


def test_early_stopping_stops():
    train, val = datasets()
    result = train_cnn(
        train,
        val,
        config(num_epochs=30, early_stopping_patience=1, learning_rate=1e-6),
    )
    assert result.stopped_early and len(result.history) < 30


@pytest.mark.parametrize(
    "name,per_batch",
    [("ReduceLROnPlateau", False), ("CosineAnnealing", True), ("OneCycle", True), ("none", False)],
)
def test_scheduler_kinds(name, per_batch):
    optimizer = torch.optim.SGD(cnn().parameters(), lr=0.1)
    scheduler, stepped_per_batch = make_scheduler(optimizer, config(scheduler=name), steps_per_epoch=5)
    assert stepped_per_batch == per_batch
    assert (scheduler is None) == (name == "none")


def test_plateau_is_stepped_with_the_monitored_metric():
    train, val = datasets()
    result = train_cnn(
        train,
        val,
        config(num_epochs=4, scheduler_patience=0, learning_rate=1e-6, monitor="val_macro_f1"),
    )
    lrs = [h["lr"] for h in result.history]
    assert lrs[-1] < lrs[0], "no improvement with patience 0 must reduce the learning rate"


@pytest.mark.parametrize("optimizer", ["Adam", "AdamW", "SGD", "RMSprop"])
def test_every_optimizer_trains(optimizer):
    train, val = datasets()
    result = train_cnn(train, val, config(num_epochs=1, optimizer=optimizer))
    assert np.isfinite(result.history[0]["train_loss"])


def test_class_weights_and_label_smoothing_run():
    train, val = datasets()
    result = train_cnn(
        train,
        val,
        config(num_epochs=1, class_weights=True, label_smoothing=0.1),
    )
    assert np.isfinite(result.history[0]["val_loss"])


def test_batch_of_one_is_dropped_for_batchnorm():
    assert needs_drop_last(33, 16) and not needs_drop_last(32, 16) and not needs_drop_last(1, 16)
    images, labels = toy_images(17, 0)
    data = ImageTensorDataset(images, labels)
    model = build_model("resnet50", 3, {"weights": "random", "hidden_size": 8}).model
    fit(model, data, data, config(model_name="resnet50", num_epochs=1, batch_size=16), CLASSES, inputs=INPUTS)


def test_loader_workers_follow_the_device():
    assert loader_workers(None, torch.device("cpu")) == 0
    assert loader_workers(None, torch.device("cuda")) >= 1
    assert loader_workers(3, torch.device("cpu")) == 3


def test_device_selection():
    assert resolve_device("cpu").type == "cpu"
    assert resolve_device("auto").type in {"cpu", "cuda", "mps"}
    cpu = device_settings(torch.device("cpu"), bf16_supported=False)
    assert cpu.amp_dtype is None and cpu.channels_last and not cpu.pin_memory  # measured faster on CPU
    assert cpu.precision == "float32"
    native = device_settings(torch.device("cpu"), "auto", bf16_supported=True)  # AVX512-BF16 / AMX
    assert native.amp_dtype == torch.bfloat16 and not native.needs_grad_scaler
    assert native.precision == "bfloat16 autocast"
    # "cuda" (the default): float32 on the CPU even with native bf16, mixed precision on CUDA
    assert device_settings(torch.device("cpu"), "cuda", bf16_supported=True).amp_dtype is None
    assert device_settings(torch.device("cuda"), "cuda", bf16_supported=True).amp_dtype == torch.bfloat16
    for device in ("cpu", "cuda"):  # "off": float32 everywhere
        assert device_settings(torch.device(device), "off", bf16_supported=True).amp_dtype is None
    bf16 = device_settings(torch.device("cuda"), bf16_supported=True)
    assert bf16.amp_dtype == torch.bfloat16 and bf16.channels_last and not bf16.needs_grad_scaler
    fp16 = device_settings(torch.device("cuda"), bf16_supported=False)
    assert fp16.amp_dtype == torch.float16 and fp16.needs_grad_scaler
    if not torch.cuda.is_available():
        with pytest.raises(RuntimeError, match="CUDA is not available"):
            resolve_device("cuda")


def test_native_bf16_is_read_from_the_cpu_flags():
    assert cpu_has_native_bf16("processor\t: 0\nflags\t\t: fpu sse avx512f avx512_bf16 avx512_vnni\n")
    assert cpu_has_native_bf16("flags\t\t: fpu avx512f amx_bf16 amx_tile\n")
    assert not cpu_has_native_bf16("flags\t\t: fpu sse avx2 avx512f avx512bw\n")  # bf16 emulated: slower
    assert not cpu_has_native_bf16("Features\t: fp asimd bf16\n")  # not an x86 flags line


@pytest.mark.parametrize(
    ("bf16", "dtype", "scaler"), [(True, torch.bfloat16, False), (False, torch.float16, True)]
)
def test_a_cuda_machine_gets_cuda_and_its_settings(monkeypatch, bf16, dtype, scaler):
    """What a GPU machine (the Docker image with --gpus) gets, checked on CPU: `auto` picks CUDA, and the
    precision comes from asking torch (bf16 where the GPU has it, else fp16 with a grad scaler)."""
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *args, **kwargs: bf16)
    device = resolve_device("auto")
    assert device.type == "cuda" and resolve_device("cuda").type == "cuda"
    settings = device_settings(device)
    assert settings.amp_dtype == dtype and settings.needs_grad_scaler is scaler
    assert settings.channels_last and settings.pin_memory
    assert loader_workers(None, device) >= 1


def test_training_twice_gives_the_same_model(prepared, tmp_path):
    """Same data, config and seed: identical weights (initialisation is seeded too)."""
    from neuroflux_lib.config import ModelConfig, with_overrides
    from neuroflux_lib.config.resolve import load_model_config
    from neuroflux_lib.paths import config_dir
    from neuroflux_lib.training.steps import train_model

    dataset, balanced, splits = prepared
    model: ModelConfig = with_overrides(
        load_model_config(config_dir() / "models" / "neuroflux_cnn.json"),
        {"num_epochs": 1, "conv_channels": 4, "batch_size": 32, "device": "cpu"},
    )
    runs = [
        train_model(
            model, dataset, balanced, splits, artifact_dir=tmp_path / f"a{i}", work_dir=tmp_path / f"w{i}"
        )
        for i in range(2)
    ]
    first, second = ((run.artifact_dir / "model.safetensors").read_bytes() for run in runs)
    assert first == second


def test_resume_refuses_a_checkpoint_of_other_data_or_settings(tmp_path):
    """Resuming with a checkpoint written on another split would re-save weights that saw today's test
    images: refused, with how to start fresh."""
    from neuroflux_lib.errors import DataError

    train, val = datasets()
    ckpt = tmp_path / "c.pt"
    first = {"data_version": "aaa", "config_digest": "c1"}
    train_cnn(
        train,
        val,
        checkpoint_path=ckpt,
        max_epochs=1,
        fingerprint=first,
    )
    for other in (
        {"data_version": "bbb", "config_digest": "c1"},
        {"data_version": "aaa", "config_digest": "c2"},
    ):
        with pytest.raises(DataError, match="without --resume"):
            train_cnn(
                train,
                val,
                checkpoint_path=ckpt,
                resume=True,
                fingerprint=other,
            )
    resumed = train_cnn(
        train,
        val,
        checkpoint_path=ckpt,
        resume=True,
        fingerprint=first,
    )
    assert len(resumed.history) == config().num_epochs


def test_a_finished_training_leaves_no_checkpoint_and_records_its_versions(prepared, tmp_path):
    from neuroflux_lib.config import with_overrides
    from neuroflux_lib.data.splits import data_version
    from neuroflux_lib.training.steps import config_digest, train_model

    dataset, balanced, splits = prepared
    model = tiny_cnn_config()
    trained = train_model(
        model, dataset, balanced, splits, artifact_dir=tmp_path / "a", work_dir=tmp_path / "w"
    )
    assert not (tmp_path / "w" / "checkpoint.pt").exists()
    assert trained.meta.data_version == data_version(splits)
    assert trained.meta.config_digest == config_digest(model)
    assert config_digest(with_overrides(model, {"device": "cuda"})) == config_digest(model)
    assert config_digest(with_overrides(model, {"learning_rate": 0.5})) != config_digest(model)


def test_evaluation_refuses_a_model_of_other_data_unless_asked(prepared, tmp_path):
    """The test split of new splits may hold the old model's training images: refused by default; with
    allow_other_data the report says in its title and JSON that the test set was not held out."""
    import json

    from neuroflux_lib.errors import DataError
    from neuroflux_lib.evaluation.evaluate import evaluate_artifact
    from neuroflux_lib.training.steps import train_model

    dataset, balanced, splits = prepared
    model = tiny_cnn_config()
    trained = train_model(
        model, dataset, balanced, splits, artifact_dir=tmp_path / "a", work_dir=tmp_path / "w"
    )
    moved = splits.copy()
    moved.loc[moved.index[:3], "split"] = "test"  # another assignment: another data version
    with pytest.raises(DataError, match="--allow-other-data"):
        evaluate_artifact(trained.artifact_dir, dataset, moved, tmp_path / "r")
    evaluation = evaluate_artifact(
        trained.artifact_dir, dataset, moved, tmp_path / "r", allow_other_data=True
    )
    assert evaluation.report.held_out is False
    saved = json.loads((tmp_path / "r" / "report.json").read_text())
    assert saved["held_out"] is False and saved["artifact_digest"]


def tiny_cnn_config():
    """The shipped CNN config, one epoch at 4 channels: what the step tests train."""
    from neuroflux_lib.config import with_overrides
    from neuroflux_lib.config.resolve import load_model_config
    from neuroflux_lib.paths import config_dir

    return with_overrides(
        load_model_config(config_dir() / "models" / "neuroflux_cnn.json"),
        {"num_epochs": 1, "conv_channels": 4, "batch_size": 32, "device": "cpu"},
    )
