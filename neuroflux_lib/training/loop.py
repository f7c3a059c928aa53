"""The training loop: one readable function with explicit steps (after torchvision's reference).

Correctness first: the best checkpoint (not the last epoch) is restored at the end; ReduceLROnPlateau is
stepped with the monitored metric and per-batch schedulers per batch; a checkpoint is written atomically
after every epoch with model, optimizer, scheduler, RNG states and history, so `resume=True` continues a
killed run and ends exactly where an uninterrupted run would.
"""

from __future__ import annotations

import copy
import functools
import logging
import math
import os
import random
import re
import time
from collections.abc import Callable, Mapping, Sequence
from contextlib import nullcontext
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import numpy as np
import torch
from sklearn.utils.class_weight import compute_class_weight
from torch import nn
from torch.utils.data import DataLoader, Dataset
from tqdm import tqdm

from neuroflux_lib.config import ModelConfig
from neuroflux_lib.data.normalization import ModelInput
from neuroflux_lib.errors import DataError
from neuroflux_lib.evaluation.metrics import epoch_metrics

logger = logging.getLogger(__name__)


class EpochCallback(Protocol):
    def on_epoch_end(self, epoch: int, metrics: dict[str, float]) -> None: ...


@dataclass(frozen=True)
class DeviceSettings:
    """What the device implies: precision, memory format, loader options."""

    device: torch.device
    amp_dtype: torch.dtype | None
    channels_last: bool
    pin_memory: bool

    @property
    def needs_grad_scaler(self) -> bool:
        return self.amp_dtype == torch.float16

    @property
    def precision(self) -> str:
        """What ran, for model.json and the UI."""
        return f"{str(self.amp_dtype).removeprefix('torch.')} autocast" if self.amp_dtype else "float32"

    def autocast(self):
        """Mixed precision for this device's forward passes, or nothing."""
        if self.amp_dtype is None:
            return nullcontext()
        return torch.autocast(device_type=self.device.type, dtype=self.amp_dtype)


def resolve_device(requested: str = "auto") -> torch.device:
    """`auto` prefers CUDA, then Apple MPS, then CPU; an explicit unavailable device is an error."""
    if requested == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        if getattr(torch.backends, "mps", None) and torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    if requested == "cuda" and not torch.cuda.is_available():
        raise RuntimeError("device 'cuda' requested but CUDA is not available; use 'auto' or 'cpu'")
    if requested == "mps" and not (
        getattr(torch.backends, "mps", None) and torch.backends.mps.is_available()
    ):
        raise RuntimeError("device 'mps' requested but MPS is not available; use 'auto' or 'cpu'")
    return torch.device(requested)


@functools.cache
def cpu_has_native_bf16(cpuinfo: str | None = None) -> bool:
    """Whether this CPU computes bfloat16 in hardware (AVX512-BF16 or AMX on x86, read from Linux's
    /proc/cpuinfo). Elsewhere oneDNN emulates bf16, slower than float32, so the answer there is no."""
    if cpuinfo is None:
        try:
            cpuinfo = Path("/proc/cpuinfo").read_text()
        except OSError:
            return False
    return bool(re.search(r"^flags\s*:.*\b(avx512_bf16|amx_bf16)\b", cpuinfo, re.MULTILINE))


def device_settings(
    device: torch.device, mixed_precision: str = "cuda", bf16_supported: bool | None = None
) -> DeviceSettings:
    """Mixed precision (`ModelConfig.mixed_precision`): on CUDA unless "off", bf16 where supported, else
    fp16 with a grad scaler; on the CPU only with "auto" and native bf16 (AVX512-BF16/AMX), where it
    trained 1.3-2.1x faster than float32 on 2 EPYC cores but lowered resnet18_gray's test macro-F1 on
    each of 3 demo seeds (by 0.02-0.12, benchmarks/README.md), hence opt-in per model. channels_last on
    CUDA and on the CPU, where oneDNN's convolutions measured 10-25% faster with it."""
    if device.type != "cuda":
        cpu = device.type == "cpu"
        wanted = mixed_precision == "auto" and cpu  # /proc/cpuinfo is read only then
        native = wanted and (cpu_has_native_bf16() if bf16_supported is None else bf16_supported)
        return DeviceSettings(device, torch.bfloat16 if native else None, cpu, False)
    if bf16_supported is None:
        bf16_supported = torch.cuda.is_bf16_supported()
    amp = (torch.bfloat16 if bf16_supported else torch.float16) if mixed_precision != "off" else None
    return DeviceSettings(device, amp, True, True)


def training_settings(config: ModelConfig) -> DeviceSettings:
    """The device settings a model trains with; the feature cache fills with the same ones, which keeps
    cached features identical to the uncached forward's."""
    return device_settings(resolve_device(config.device), config.mixed_precision)


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)  # noqa: NPY002 - third-party code may draw from the legacy global RNG
    torch.manual_seed(seed)


def loader_workers(requested: int | None, device: torch.device) -> int:
    """Images come from an in-memory cache, so on CPU the main process is fastest (workers would
    compete with the model for the same cores); a GPU wants CPU workers feeding it."""
    if requested is not None:
        return requested
    return min(8, os.cpu_count() or 1) if device.type == "cuda" else 0


def needs_drop_last(n_items: int, batch_size: int) -> bool:
    """A final batch of one breaks BatchNorm in train mode, so drop it (only then)."""
    return n_items > batch_size and n_items % batch_size == 1


def make_optimizer(params, config: ModelConfig) -> torch.optim.Optimizer:
    """Adam and AdamW run fused (one kernel per step on CPU and CUDA): about 6% of a step of ResNet-50's
    layer4 on 2 CPU cores went to the unfused update (benchmarks/README.md)."""
    lr, wd = config.learning_rate, config.weight_decay
    params = list(params)
    fused = bool(params) and all(p.device.type in ("cpu", "cuda") and p.is_floating_point() for p in params)
    if config.optimizer == "Adam":
        return torch.optim.Adam(params, lr=lr, weight_decay=wd, fused=fused)
    if config.optimizer == "AdamW":
        return torch.optim.AdamW(params, lr=lr, weight_decay=wd, fused=fused)
    if config.optimizer == "SGD":
        return torch.optim.SGD(
            params, lr=lr, weight_decay=wd, momentum=config.momentum, nesterov=config.nesterov
        )
    return torch.optim.RMSprop(params, lr=lr, weight_decay=wd, momentum=config.momentum)


def make_scheduler(optimizer: torch.optim.Optimizer, config: ModelConfig, steps_per_epoch: int):
    """Returns (scheduler or None, True when it is stepped per batch).

    CosineAnnealing starts with `warmup_epochs` of linear warm-up from a tenth of the learning rate: the
    first updates of a randomly initialised network are the least reliable, and a full-size step there
    can push BatchNorm statistics and Adam's moments somewhere the rest of the run has to undo.
    """
    total_steps = max(1, config.num_epochs * steps_per_epoch)
    if config.scheduler == "ReduceLROnPlateau":
        mode = "min" if config.monitor == "val_loss" else "max"
        scheduler = torch.optim.lr_scheduler.ReduceLROnPlateau(
            optimizer, mode=mode, factor=config.scheduler_factor, patience=config.scheduler_patience
        )
        return scheduler, False
    if config.scheduler == "CosineAnnealing":
        warmup = min(int(round(config.warmup_epochs * steps_per_epoch)), total_steps - 1)
        cosine = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=total_steps - warmup)
        if warmup <= 0:
            return cosine, True
        ramp = torch.optim.lr_scheduler.LinearLR(optimizer, start_factor=0.1, total_iters=warmup)
        return torch.optim.lr_scheduler.SequentialLR(optimizer, [ramp, cosine], milestones=[warmup]), True
    if config.scheduler == "OneCycle":
        return torch.optim.lr_scheduler.OneCycleLR(
            optimizer, max_lr=config.learning_rate, total_steps=total_steps
        ), True
    return None, False


def make_loss(config: ModelConfig, train_labels: np.ndarray, num_classes: int) -> nn.Module:
    weight = None
    if config.class_weights:
        present = np.unique(train_labels)
        values = compute_class_weight("balanced", classes=present, y=train_labels)
        full = np.ones(num_classes, dtype=np.float32)
        full[present] = values
        weight = torch.tensor(full, dtype=torch.float32)
    return nn.CrossEntropyLoss(weight=weight, label_smoothing=config.label_smoothing)


def is_better(value: float, best: float | None, monitor: str) -> bool:
    if best is None:
        return True
    return value < best if monitor == "val_loss" else value > best


def _atomic_save(obj: object, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    torch.save(obj, tmp)
    os.replace(tmp, path)


def _rng_state(loader_generator: torch.Generator) -> dict[str, object]:
    state = {
        "python": random.getstate(),
        "torch": torch.get_rng_state(),
        "loader": loader_generator.get_state(),
    }
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def _restore_rng(state: dict, loader_generator: torch.Generator) -> None:
    random.setstate(state["python"])
    torch.set_rng_state(state["torch"])
    loader_generator.set_state(state["loader"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


@dataclass
class FitResult:
    history: list[dict[str, float]]
    best_epoch: int
    best_metric: float
    stopped_early: bool
    device: str
    precision: str = "float32"


def run_epoch(
    model: nn.Module,
    loader: DataLoader,
    settings: DeviceSettings,
    class_names: Sequence[str],
    loss_fn: nn.Module,
    prepare: Callable[[torch.Tensor], torch.Tensor],
    optimizer: torch.optim.Optimizer | None = None,
    scheduler=None,
    scaler: torch.amp.GradScaler | None = None,
    progress: str | None = None,
    grad_clip_norm: float | None = None,
) -> dict[str, float]:
    """One pass; trains when an optimizer is given, else evaluates without gradients.

    `prepare` turns a batch on the device into model input (`ModelInput.train` or `.eval`).
    """
    training = optimizer is not None
    model.train(training)
    device = settings.device
    total_loss, seen = 0.0, 0
    truths, preds = [], []
    started = time.perf_counter()
    batches = tqdm(loader, desc=progress, leave=False, unit="batch", disable=progress is None)
    for images, labels in batches:
        images = images.to(device, non_blocking=settings.pin_memory)
        labels = labels.to(device, non_blocking=settings.pin_memory)
        with torch.no_grad():
            images = prepare(images)
        if settings.channels_last:
            images = images.contiguous(memory_format=torch.channels_last)
        with torch.set_grad_enabled(training), settings.autocast():
            logits = model(images)
            loss = loss_fn(logits.float(), labels)
        if training:
            optimizer.zero_grad(set_to_none=True)
            if scaler is not None:
                scaler.scale(loss).backward()
                if grad_clip_norm:
                    scaler.unscale_(optimizer)
                    _clip(optimizer, grad_clip_norm)
                scaler.step(optimizer)
                scaler.update()
            else:
                loss.backward()
                if grad_clip_norm:
                    _clip(optimizer, grad_clip_norm)
                optimizer.step()
            if scheduler is not None:
                scheduler.step()
        total_loss += float(loss.detach()) * len(labels)
        seen += len(labels)
        truths.append(labels.cpu())
        preds.append(logits.detach().argmax(dim=1).cpu())
    seconds = time.perf_counter() - started
    if seen == 0:
        raise ValueError("no batches: the dataset is empty or smaller than one batch")
    predicted = torch.cat(preds).numpy()
    metrics = epoch_metrics(torch.cat(truths).numpy(), predicted, class_names)
    metrics.update(
        {
            "loss": total_loss / seen,
            "predicted_classes": float(len(np.unique(predicted))),
            "seconds": seconds,
            "images_per_s": seen / max(seconds, 1e-9),
        }
    )
    return metrics


def _clip(optimizer: torch.optim.Optimizer, max_norm: float) -> None:
    params = [p for group in optimizer.param_groups for p in group["params"] if p.grad is not None]
    torch.nn.utils.clip_grad_norm_(params, max_norm)


def check_resumable(stored: Mapping[str, str] | None, current: Mapping[str, str], path: Path) -> None:
    """A checkpoint continues only the run that wrote it: same data version, same settings."""
    if dict(stored or {}) == dict(current):
        return
    differences = [
        f"{key} {(stored or {}).get(key, 'unknown')} (checkpoint) vs {current.get(key, 'unknown')} (this run)"
        for key in sorted(set(stored or {}) | set(current))
        if (stored or {}).get(key) != current.get(key)
    ]
    raise DataError(
        f"cannot resume from {path}: it was written by a run on other data or with other settings "
        f"({'; '.join(differences)}). Train without --resume to start fresh (the checkpoint is then "
        "replaced), or delete it"
    )


def fit(
    model: nn.Module,
    train_data: Dataset,
    val_data: Dataset,
    config: ModelConfig,
    class_names: Sequence[str],
    *,
    inputs: ModelInput,
    checkpoint_path: str | Path | None = None,
    resume: bool = False,
    callbacks: Sequence[EpochCallback] = (),
    progress: bool = False,
    max_epochs: int | None = None,
    fingerprint: Mapping[str, str] | None = None,
) -> FitResult:
    """Train `model` in place; at return it holds the weights of the best validation epoch.

    `inputs` scales, augments (training batches only) and normalises each batch on the device (for
    cached features, `feature_cache.Precomputed`: that already happened).
    `max_epochs` stops after that many epochs in this call (simulating a kill in tests, or a budget);
    the schedule still spans `config.num_epochs`. `fingerprint` (data version, config digest) is stored
    in every checkpoint, and `resume` refuses a checkpoint whose fingerprint differs: its weights were
    trained on other data or with other settings.
    """
    # 1. Device and reproducibility.
    seed_everything(config.seed)
    settings = training_settings(config)
    if settings.device.type == "cuda":
        torch.backends.cudnn.benchmark = True
    model.to(settings.device)
    if settings.channels_last:
        model.to(memory_format=torch.channels_last)

    # 2. Data: a seeded generator drives shuffling so a resumed run draws the same batches.
    generator = torch.Generator().manual_seed(config.seed)
    workers = loader_workers(config.num_workers, settings.device)
    loader_args = {
        "num_workers": workers,
        "pin_memory": settings.pin_memory,
        "persistent_workers": workers > 0,
    }
    train_loader = DataLoader(
        train_data,
        batch_size=config.batch_size,
        shuffle=True,
        generator=generator,
        drop_last=needs_drop_last(len(train_data), config.batch_size),
        **loader_args,
    )
    val_loader = DataLoader(val_data, batch_size=max(config.batch_size, 64), shuffle=False, **loader_args)

    # 3. Loss, optimizer, scheduler.
    train_labels = np.asarray(train_data.labels) if hasattr(train_data, "labels") else np.array([])
    loss_fn = make_loss(config, train_labels, len(class_names)).to(settings.device)
    trainable = [p for p in model.parameters() if p.requires_grad]
    optimizer = make_optimizer(trainable, config)
    scheduler, per_batch = make_scheduler(optimizer, config, len(train_loader))
    scaler = torch.amp.GradScaler("cuda") if settings.needs_grad_scaler else None

    # 4. State, possibly resumed from the last checkpoint.
    history: list[dict[str, float]] = []
    best_metric: float | None = None
    best_epoch, bad_epochs = 0, 0
    best_state = copy.deepcopy(model.state_dict())
    checkpoint_path = Path(checkpoint_path) if checkpoint_path else None
    fingerprint = dict(fingerprint or {})
    if resume and checkpoint_path and checkpoint_path.exists():
        state = torch.load(checkpoint_path, map_location=settings.device, weights_only=True)
        check_resumable(state.get("fingerprint"), fingerprint, checkpoint_path)
        model.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        if scheduler is not None and state.get("scheduler"):
            scheduler.load_state_dict(state["scheduler"])
        if scaler is not None and state.get("scaler"):
            scaler.load_state_dict(state["scaler"])
        history, best_state = state["history"], state["best_state"]
        best_metric, best_epoch, bad_epochs = state["best_metric"], state["best_epoch"], state["bad_epochs"]
        _restore_rng(state["rng"], generator)
        logger.info("resumed from %s after epoch %d", checkpoint_path, len(history))

    # 5. Epochs.
    stopped_early = bad_epochs >= config.early_stopping_patience
    start_epoch = len(history) + 1
    last_epoch = (
        config.num_epochs if max_epochs is None else min(config.num_epochs, start_epoch - 1 + max_epochs)
    )
    for epoch in range(start_epoch, last_epoch + 1):
        if stopped_early:
            break
        desc = f"epoch {epoch}/{config.num_epochs}" if progress else None
        if hasattr(train_data, "set_epoch"):  # cached features: which augmented view each image shows
            train_data.set_epoch(epoch)
        train_m = run_epoch(
            model,
            train_loader,
            settings,
            class_names,
            loss_fn,
            inputs.train,
            optimizer,
            scheduler if per_batch else None,
            scaler,
            progress=desc,
            grad_clip_norm=config.grad_clip_norm,
        )
        val_m = run_epoch(model, val_loader, settings, class_names, loss_fn, inputs.eval)
        metrics = {"epoch": epoch, "lr": optimizer.param_groups[0]["lr"]}
        metrics.update({f"train_{k}": v for k, v in train_m.items()})
        metrics.update({f"val_{k}": v for k, v in val_m.items() if k not in ("seconds", "images_per_s")})
        monitored = metrics[config.monitor]
        if scheduler is not None and not per_batch:
            scheduler.step(monitored)
        if not math.isfinite(train_m["loss"]):
            raise FloatingPointError(
                f"training loss is {train_m['loss']} at epoch {epoch}; lower the learning rate"
            )
        if is_better(monitored, best_metric, config.monitor):
            best_metric, best_epoch, bad_epochs = monitored, epoch, 0
            best_state = copy.deepcopy(model.state_dict())
        else:
            bad_epochs += 1
        metrics["best_epoch"] = best_epoch
        history.append(metrics)
        stopped_early = bad_epochs >= config.early_stopping_patience
        if checkpoint_path:
            _atomic_save(
                {
                    "model": model.state_dict(),
                    "optimizer": optimizer.state_dict(),
                    "scheduler": scheduler.state_dict() if scheduler is not None else None,
                    "scaler": scaler.state_dict() if scaler is not None else None,
                    "history": history,
                    "best_state": best_state,
                    "best_metric": best_metric,
                    "best_epoch": best_epoch,
                    "bad_epochs": bad_epochs,
                    "rng": _rng_state(generator),
                    "fingerprint": fingerprint,
                },
                checkpoint_path,
            )
        if progress:
            tqdm.write(
                f"epoch {epoch}: train loss {metrics['train_loss']:.3f} "
                f"acc {metrics['train_accuracy']:.3f} | "
                f"val loss {metrics['val_loss']:.3f} acc {metrics['val_accuracy']:.3f} "
                f"macro-F1 {metrics['val_macro_f1']:.3f} | {train_m['images_per_s']:.0f} img/s"
            )
        for callback in callbacks:
            callback.on_epoch_end(epoch, metrics)

    # 6. The best checkpoint, not the last epoch, is what the caller gets.
    model.load_state_dict(best_state)
    best = float(best_metric or 0.0)
    return FitResult(history, best_epoch, best, stopped_early, str(settings.device), settings.precision)
