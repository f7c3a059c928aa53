"""ImageNet weights the way torchvision gets them: downloaded once into the hub cache when online,
a clear fallback that trains every layer when not. The "internet" is a server on 127.0.0.1."""

from __future__ import annotations

import functools
import http.server
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
import torch

from neuroflux_lib.data.normalization import InputNormalization
from neuroflux_lib.models import IMAGENET_NORMALIZATION, build_model, imagenet_weight_paths
from neuroflux_lib.models import resnet as resnet_module
from neuroflux_lib.models.resnet import ResNet50Classifier

FILE_NAME = "resnet50-test.pth"


@pytest.fixture
def weights_server(tmp_path: Path) -> Iterator[tuple[str, dict, list[str]]]:
    """Serves a ResNet-50-shaped state dict (fp16 to keep it small); yields (url, state, requests)."""
    served = tmp_path / "served"
    served.mkdir()
    state = {
        k: v.half() if v.is_floating_point() else v for k, v in ResNet50Classifier(5).state_dict().items()
    }
    state = {k: v for k, v in state.items() if not k.startswith("fc.")}
    torch.save(state, served / FILE_NAME)
    requests: list[str] = []

    class Handler(http.server.SimpleHTTPRequestHandler):
        def log_message(self, *args: object) -> None:
            requests.append(self.path)

    server = http.server.ThreadingHTTPServer(
        ("127.0.0.1", 0), functools.partial(Handler, directory=str(served))
    )
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_port}/{FILE_NAME}", state, requests
    finally:
        server.shutdown()
        server.server_close()


@pytest.fixture
def online(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, weights_server) -> tuple[str, dict, list[str]]:
    url, state, requests = weights_server
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch_home"))
    monkeypatch.delenv("NEUROFLUX_OFFLINE")
    monkeypatch.setattr(resnet_module, "IMAGENET_SOURCES", (("ResNet50_Weights.TEST", url),))
    return url, state, requests


def test_imagenet_weights_are_downloaded_into_the_hub_cache_once(online) -> None:
    url, state, requests = online
    built = build_model("resnet50", 5)
    cached = imagenet_weight_paths()[0]
    assert cached.is_file() and cached.name == FILE_NAME
    assert requests == [f"/{FILE_NAME}"]
    assert built.weights_origin == "imagenet" and built.weights_name == "ResNet50_Weights.TEST"
    assert built.normalization == InputNormalization.fixed(*IMAGENET_NORMALIZATION)
    assert built.frozen == ("conv1", "layer1", "layer2", "layer3")
    assert torch.equal(built.model.state_dict()["conv1.weight"], state["conv1.weight"].float())

    again = build_model("resnet50", 5)  # second use: from the cache, no request
    assert requests == [f"/{FILE_NAME}"] and again.weights_origin == "imagenet"


def test_a_failed_download_falls_back_to_training_every_layer(
    online, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    url, _, _ = online
    monkeypatch.setattr(resnet_module, "IMAGENET_SOURCES", (("ResNet50_Weights.TEST", url + ".missing"),))
    built = build_model("resnet50", 5, {"freeze_until": "layer2"})
    assert built.weights_origin == "random" and built.frozen == ()
    assert all(p.requires_grad for p in built.model.parameters())
    assert "downloading" in built.weights_note and "freeze_until 'layer2' ignored" in built.weights_note
    assert "404" in built.weights_note
    assert built.normalization.method == "per_image"
    assert not list(Path(torch.hub.get_dir()).rglob("*.pth"))  # no half-written file left behind


def test_offline_setting_never_contacts_the_server(online, monkeypatch: pytest.MonkeyPatch) -> None:
    _, _, requests = online
    monkeypatch.setenv("NEUROFLUX_OFFLINE", "1")
    built = build_model("resnet50", 5)
    assert requests == [] and built.weights_origin == "random" and "NEUROFLUX_OFFLINE" in built.weights_note
