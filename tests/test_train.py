"""The train job, its model and its bundled data: a smoke run of a few seconds, not a benchmark."""

import hashlib

import numpy as np
import pytest
import torch
from helpers import DEFAULT_TOL, assert_close, requires_cuda_sim
from torch.utils._python_dispatch import TorchDispatchMode

import dlkernels
from dlkernels import datasets, models, train
from dlkernels.testing import cuda_sim

# Recorded in dlkernels/data/README.md when the file was made; guards against a damaged file.
ARRAYS_SHA256 = "a24784b1a3ccf641d0f71f6bbacb430f1de904ffba8c95aedf329e677b0628bc"


def test_data_file_is_the_recorded_one():
    h = hashlib.sha256()
    with np.load(datasets.FASHION_MNIST_FILE) as npz:
        for name in sorted(npz.files):
            h.update(name.encode() + np.ascontiguousarray(npz[name]).tobytes())
    assert h.hexdigest() == ARRAYS_SHA256


def test_loader_shapes_dtypes_labels():
    d = datasets.load_fashion_mnist()
    assert d.x_train.shape == (8000, 1, 28, 28) and d.x_test.shape == (2000, 1, 28, 28)
    assert d.x_train.dtype == d.x_test.dtype == torch.float32
    assert d.x_train.is_contiguous() and d.x_test.is_contiguous()
    assert d.y_train.dtype == d.y_test.dtype == torch.int64
    assert d.y_train.shape == (8000,) and d.y_test.shape == (2000,)
    assert torch.bincount(d.y_train).tolist() == [800] * 10
    assert torch.bincount(d.y_test).tolist() == [200] * 10
    # standardised with the training statistics only
    assert abs(d.x_train.mean().item()) < 1e-4 and abs(d.x_train.std().item() - 1) < 1e-4
    assert abs(d.x_test.mean().item()) < 0.1


def test_loader_is_deterministic_and_raw_range():
    a, b = datasets.load_fashion_mnist(), datasets.load_fashion_mnist()
    for x, y in zip(a, b):
        assert torch.equal(x, y)
    raw = datasets.load_fashion_mnist(normalize=False)
    assert raw.x_train.min() == 0 and raw.x_train.max() == 1


@pytest.mark.parametrize("channels,size,flat", [(1, 28, 800), (3, 32, 1152), (1, 10, 32)])
def test_convnet_flatten_size(channels, size, flat):
    model = models.ConvNet(in_channels=channels, image_size=size)
    assert model.flat_features == flat  # the article's 7*7*32 would not fit 32x32 inputs
    assert model(torch.zeros(2, channels, size, size)).shape == (2, 10)


def test_convnet_rejects_too_small_images():
    with pytest.raises(ValueError):
        models.ConvNet(image_size=9)


@pytest.mark.parametrize("use_dlkernels", [True, False], ids=["dlkernels", "torch"])
def test_he_initialisation(use_dlkernels):
    torch.manual_seed(0)
    model = train.make_model(use_dlkernels, 28)
    for layer in (model.conv1, model.conv2, model.fc1, model.fc2):
        fan_in = layer.weight[0].numel()
        assert layer.weight.std().item() == pytest.approx((2 / fan_in) ** 0.5, rel=0.15)
        assert torch.count_nonzero(layer.bias) == 0
    # reproducible from the seed
    torch.manual_seed(0)
    assert torch.equal(train.make_model(use_dlkernels, 28).fc1.weight, model.fc1.weight)


def test_dlkernels_model_has_only_dlkernels_layers_and_init():
    torch.manual_seed(0)
    dl = train.make_model(True, 28)
    torch.manual_seed(0)
    ref = train.make_model(False, 28)
    assert dl.state_dict().keys() == ref.state_dict().keys()
    for (name, m), (_, r) in zip(dl.named_modules(), ref.named_modules()):
        if name:
            assert train.is_dlkernels_class(m) and not train.is_dlkernels_class(r), name
    # the weights are dlkernels.init's draws from the seed, not torch.nn.init's
    torch.manual_seed(0)
    probe = models.ConvNet(init=dlkernels.init)  # torch's layers, dlkernels.init's draws
    assert torch.equal(probe.conv1.weight, dl.conv1.weight)
    assert not torch.equal(ref.conv1.weight, dl.conv1.weight)


def table_rows(out: str) -> dict:
    rows = [[c.strip() for c in line.split("|")] for line in out.splitlines() if line.count("|") == 3]
    return {row[0]: row[1:] for row in rows}


def test_quick_run_learns_and_reports_provenance(capsys):
    assert train.main(["--quick"]) == 0
    out = capsys.readouterr().out
    rows = table_rows(out)
    expected = {
        **dict.fromkeys(("conv1", "conv2"), ["dlkernels.nn.Conv2d", "dlkernels", "conv2d"]),
        **dict.fromkeys(("relu1", "relu2", "relu3"), ["dlkernels.nn.ReLU", "dlkernels", "relu"]),
        **dict.fromkeys(
            ("pool1", "pool2"), ["dlkernels.nn.MaxPool2d", "dlkernels", "max_pool2d_with_indices"]
        ),
        **dict.fromkeys(("fc1", "fc2"), ["dlkernels.nn.Linear", "dlkernels", "linear"]),
        "loss": ["dlkernels.nn.CrossEntropyLoss", "dlkernels", "cross_entropy_forward"],
    }
    assert {k: v for k, v in rows.items() if k != "layer"} == expected
    assert "10 of 10 (loss included) ran dlkernels ops" in out
    assert "He-initialised by dlkernels.init" in out
    for op in (
        "conv2d_backward x2",
        "max_pool2d_backward x2",
        "relu_backward x3",
        "cross_entropy_backward x1",
    ):
        assert f"dlkernels::{op}" in out
    assert "learned:" in out


def test_quick_run_loss_decreases():
    hist = train.run(train.parse_args(["--quick"]), log=lambda *a: None)
    losses = [e["train_loss"] for e in hist.epochs]
    assert len(losses) == 2 and losses[1] < losses[0]
    assert hist.backward_ops["dlkernels::relu_backward"] == 3
    assert hist.test_accuracy > 0.5


def test_torch_reference_run_uses_no_dlkernels_op():
    hist = train.run(train.parse_args(["--quick", "--torch"]), log=lambda *a: None)
    assert all(row[2] == "torch" and row[3] == "" for row in hist.rows)
    assert not hist.backward_ops
    losses = [e["train_loss"] for e in hist.epochs]
    assert losses[1] < losses[0] and hist.test_accuracy > 0.5  # the reference learns too


def test_table_reports_what_ran_not_the_class_name(monkeypatch):
    # a dlkernels-named layer that still computes with torch must not be reported as dlkernels
    fake = type("Linear", (torch.nn.Linear,), {"__module__": "dlkernels.nn.linear"})
    monkeypatch.setattr(dlkernels.nn, "Linear", fake)
    hist = train.run(train.parse_args(["--quick", "--epochs", "1"]), log=lambda *a: None)
    rows = {row[0]: row[1:] for row in hist.rows}
    assert rows["fc1"][1].startswith("torch (no dlkernels op ran")
    assert rows["relu1"][1] == "dlkernels"


def test_not_learning_fails_loudly():
    with pytest.raises(SystemExit) as exc:
        train.main(["--quick", "--epochs", "1", "--min-accuracy", "0.999"])
    assert exc.value.code not in (0, None)


@pytest.mark.cuda_sim
@requires_cuda_sim
def test_training_step_runs_every_layer_on_the_emulated_cuda_kernels():
    """The seed ConvNet's forward, loss and backward with every dlkernels op on its CUDA kernel (the
    emulator: the op log sees only the emulated namespace), equal to the CPU kernels' step in
    float64 to torch.testing's tolerance."""

    class Log(TorchDispatchMode):
        def __init__(self):
            super().__init__()
            self.ops = set()

        def __torch_dispatch__(self, func, types, args=(), kwargs=None):
            self.ops.add(f"{func.namespace}::{func._opname}")
            return func(*args, **(kwargs or {}))

    torch.manual_seed(0)
    model = train.make_model(True, 28).double()
    loss_fn = train.make_loss(True)
    x = torch.randn(4, 1, 28, 28, dtype=torch.float64)
    y = torch.tensor([0, 3, 7, 9])

    def step():
        model.zero_grad(set_to_none=True)
        loss = loss_fn(model(x), y)
        loss.backward()
        return loss.detach(), [p.grad.clone() for p in model.parameters()]

    ref_loss, ref_grads = step()
    log = Log()
    with log, cuda_sim():
        loss, grads = step()
    ours = {o for o in log.ops if o.startswith("dlkernels")}
    assert not {o for o in ours if o.startswith("dlkernels::")}, "an op ran its CPU kernel"
    names = {o.split("::")[1] for o in ours}
    assert {"conv2d", "relu", "max_pool2d_with_indices", "linear", "cross_entropy_forward"} <= names
    assert {"conv2d_backward", "cross_entropy_backward"} <= names
    assert_close(loss, ref_loss, DEFAULT_TOL[torch.float64], "loss")
    for i, (g, r) in enumerate(zip(grads, ref_grads)):
        assert_close(g, r, DEFAULT_TOL[torch.float64], f"gradient of parameter {i}")
