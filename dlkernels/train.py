"""``python -m dlkernels train``: trains the seed article's ConvNet on the bundled Fashion-MNIST
subset on dlkernels alone: ``dlkernels.nn`` layers, ``dlkernels.init.he_normal_`` weights and
dlkernels' cross-entropy loss. ``--torch`` trains the same model on ``torch.nn`` and
``torch.nn.init`` from the same seed, the reference to compare with.

The provenance table printed first says, per layer, whose kernels ran it in a traced training
step (observed, not read from class names). The run ends with a verdict: it exits non-zero when
the network did not learn.
"""

import argparse
import sys
import time
from collections import Counter
from dataclasses import dataclass, field

import torch

from . import _build_info, datasets, models
from . import init as dlinit
from . import nn as dlnn
from .cpu import cpu_isa

# Threads: torch's own default (one per core) unless --threads says otherwise. On an idle
# 2-core machine 2 threads train 1.6x faster than 1 (8.6k vs 5.3k images/s); on cores busy with
# other work, threads waiting at barriers can make epochs many times slower: pass --threads 1.
NUM_CLASSES = len(datasets.FASHION_MNIST_CLASSES)


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        prog="python -m dlkernels train",
        description="Train the seed ConvNet on the bundled Fashion-MNIST subset with dlkernels layers.",
    )
    p.add_argument(
        "--epochs", type=int, default=None, help="passes over the training set (default 10; 2 with --quick)"
    )
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument(
        "--lr", type=float, default=None, help="learning rate (default 0.01 for sgd, 0.001 for adam)"
    )
    p.add_argument("--optimizer", choices=("sgd", "adam"), default="sgd", help="sgd uses momentum 0.9")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument(
        "--threads",
        type=int,
        default=None,
        help="CPU threads (default: torch's, one per core; use 1 on a machine busy with other work)",
    )
    p.add_argument("--device", choices=("cpu", "cuda"), default="cpu")
    p.add_argument(
        "--quick",
        action="store_true",
        help="smoke run of a few seconds: a quarter of the training set, 2 epochs",
    )
    p.add_argument(
        "--torch", action="store_true", help="the reference run: torch.nn layers and torch.nn.init"
    )
    p.add_argument(
        "--min-accuracy",
        type=float,
        default=None,
        help="test accuracy that counts as learned (default 0.80; 0.50 with --quick; chance is 0.10)",
    )
    args = p.parse_args(argv)
    if args.epochs is None:
        args.epochs = 2 if args.quick else 10
    if args.lr is None:
        args.lr = 0.01 if args.optimizer == "sgd" else 0.001
    if args.min_accuracy is None:
        args.min_accuracy = 0.50 if args.quick else 0.80
    if args.epochs < 1 or args.batch_size < 1:
        p.error("--epochs and --batch-size must be at least 1")
    return args


def is_dlkernels_class(module) -> bool:
    return type(module).__module__.split(".")[0] == "dlkernels"


def type_name(module) -> str:
    """``torch.nn.Conv2d`` / ``dlkernels.nn.ReLU`` where the class is exported there."""
    cls = type(module)
    for prefix, namespace in (("dlkernels.nn", dlnn), ("torch.nn", torch.nn)):
        if getattr(namespace, cls.__name__, None) is cls:
            return f"{prefix}.{cls.__name__}"
    return f"{cls.__module__}.{cls.__qualname__}"


def observe(model, loss_fn, x, y) -> tuple:
    """Runs one forward and backward and records which dlkernels operators ran, per layer in the
    forward pass and in total in the backward pass. The table is built from this, not from class
    names, so it shows what ran rather than what should have. A dispatch mode sees every operator
    call, including those made inside autograd Functions and their backward passes."""
    from torch.utils._python_dispatch import TorchDispatchMode

    layers = [(n, m) for n, m in model.named_modules() if n and not list(m.children())]
    layers.append(("loss", loss_fn))
    forward = {name: Counter() for name, _ in layers}
    backward = Counter()
    current = [None]  # the layer whose forward is running, None outside

    class CountOps(TorchDispatchMode):
        def __torch_dispatch__(self, func, types, args=(), kwargs=None):
            if func.namespace == "dlkernels":
                (forward[current[0]] if current[0] else backward)[func.name()] += 1
            return func(*args, **(kwargs or {}))

    def enter(name):
        return lambda *_: current.__setitem__(0, name)

    hooks = []
    for name, m in layers:
        hooks.append(m.register_forward_pre_hook(enter(name)))
        hooks.append(m.register_forward_hook(enter(None)))
    try:
        with CountOps():
            loss_fn(model(x), y).backward()
    finally:
        for h in hooks:
            h.remove()
    model.zero_grad(set_to_none=True)
    rows = []
    for name, m in layers:
        ops = forward[name]
        kernels = "dlkernels" if ops else "torch"
        if is_dlkernels_class(m) and not ops:
            kernels = "torch (no dlkernels op ran!)"
        rows.append((name, type_name(m), kernels, ", ".join(sorted(o.split("::")[1] for o in ops))))
    return rows, backward


def format_table(rows: list) -> str:
    header = ("layer", "type", "kernels", "dlkernels ops in forward")
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]

    def line(row):
        return " | ".join(c.ljust(w) for c, w in zip(row, widths)).rstrip()

    return "\n".join([line(header), "-+-".join("-" * w for w in widths), *map(line, rows)])


def make_model(use_dlkernels: bool, image_size: int) -> models.ConvNet:
    layers, init = (dlnn, dlinit) if use_dlkernels else (torch.nn, torch.nn.init)
    return models.ConvNet(
        in_channels=1, image_size=image_size, num_classes=NUM_CLASSES, layers=layers, init=init
    )


def make_loss(use_dlkernels: bool) -> torch.nn.Module:
    return (dlnn.CrossEntropyLoss if use_dlkernels else torch.nn.CrossEntropyLoss)()


def set_threads(requested) -> int:
    if requested:
        torch.set_num_threads(requested)
    return torch.get_num_threads()


def evaluate(model, x, y, batch_size: int = 1000) -> float:
    model.eval()
    correct = torch.zeros((), dtype=torch.int64, device=x.device)
    with torch.no_grad():
        for i in range(0, len(x), batch_size):
            correct += (model(x[i : i + batch_size]).argmax(1) == y[i : i + batch_size]).sum()
    model.train()
    return correct.item() / len(x)


@dataclass
class History:
    rows: list = field(default_factory=list)  # (layer, type, kernels, dlkernels ops in forward)
    backward_ops: Counter = field(default_factory=Counter)  # dlkernels ops in one backward pass
    epochs: list = field(default_factory=list)  # one dict per epoch
    seconds: float = 0.0

    @property
    def test_accuracy(self) -> float:
        return self.epochs[-1]["test_acc"]


def run(args: argparse.Namespace, log=print) -> History:
    """Trains as ``args`` say, logging as it goes. Torch's thread count, random state and cuDNN
    flags are restored afterwards, so calling it inside a larger program changes nothing there."""
    device = torch.device(args.device)
    if device.type == "cuda":
        if not torch.cuda.is_available():
            raise SystemExit("--device cuda: torch sees no CUDA device here")
        if not _build_info.WITH_CUDA and not args.torch:
            raise SystemExit(
                "--device cuda: this dlkernels build has no CUDA kernels (rebuild with "
                "DLKERNELS_CUDA=1), or add --torch for the torch-only run"
            )
    cudnn = torch.backends.cudnn
    saved = torch.get_num_threads(), cudnn.deterministic, cudnn.benchmark
    rng_devices = [torch.cuda.current_device()] if device.type == "cuda" else []
    try:
        with torch.random.fork_rng(devices=rng_devices):
            cudnn.deterministic, cudnn.benchmark = True, False
            return _train(args, device, set_threads(args.threads), log)
    finally:
        torch.set_num_threads(saved[0])
        cudnn.deterministic, cudnn.benchmark = saved[1:]


def _train(args: argparse.Namespace, device: torch.device, threads: int, log) -> History:
    start = time.perf_counter()
    # Both inits draw from torch's global generator: the same seed, comparable starting weights.
    torch.manual_seed(args.seed)

    data = datasets.load_fashion_mnist()
    x_train, y_train = data.x_train, data.y_train
    if args.quick:
        x_train, y_train = x_train[::4], y_train[::4]  # every 4th image keeps the classes balanced
    x_train, y_train = x_train.to(device), y_train.to(device)
    x_test, y_test = data.x_test.to(device), data.y_test.to(device)

    model = make_model(not args.torch, x_train.shape[-1]).to(device)
    loss_fn = make_loss(not args.torch)
    if args.optimizer == "sgd":
        opt = torch.optim.SGD(model.parameters(), lr=args.lr, momentum=0.9)
    else:
        opt = torch.optim.Adam(model.parameters(), lr=args.lr)
    # Cosine decay to zero: the last epochs settle instead of bouncing around the minimum.
    schedule = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=args.epochs)

    hist = History()
    where = f"cpu, {threads} thread(s), CPU ISA {cpu_isa()}" if device.type == "cpu" else str(device)
    log(f"dlkernels {_build_info.VERSION}, torch {torch.__version__}, device {where}")
    log(
        f"data: Fashion-MNIST subset, {len(x_train)} train / {len(x_test)} test images "
        f"{tuple(x_train.shape[1:])}, {NUM_CLASSES} classes (chance {1 / NUM_CLASSES:.0%})"
    )
    log(
        f"model: seed ConvNet on {'torch.nn' if args.torch else 'dlkernels.nn'}, flatten "
        f"{model.flat_features}, He-initialised by {'torch.nn.init' if args.torch else 'dlkernels.init'}, "
        f"{sum(p.numel() for p in model.parameters()):,} parameters; optimizer {type(opt).__name__} "
        f"lr {args.lr} (cosine decay), batch {args.batch_size}, seed {args.seed}\n"
    )
    hist.rows, hist.backward_ops = observe(model, loss_fn, x_train[:8], y_train[:8])
    log(format_table(hist.rows))
    n_dl = sum(row[2] == "dlkernels" for row in hist.rows)
    backward = ", ".join(f"{op} x{n}" for op, n in sorted(hist.backward_ops.items())) or "none"
    log(f"{n_dl} of {len(hist.rows)} (loss included) ran dlkernels ops in a traced step, the rest torch's.")
    log(f"dlkernels ops in backward: {backward}; the flatten (a view) and the optimizer run on torch.\n")
    gen = torch.Generator().manual_seed(args.seed)  # shuffling order, independent of the init draws
    n = len(x_train)
    for epoch in range(1, args.epochs + 1):
        perm = torch.randperm(n, generator=gen).to(device)
        loss_sum = torch.zeros((), device=device)
        correct = torch.zeros((), dtype=torch.int64, device=device)
        t0 = time.perf_counter()
        for i in range(0, n, args.batch_size):
            idx = perm[i : i + args.batch_size]
            xb, yb = x_train[idx], y_train[idx]
            logits = model(xb)
            loss = loss_fn(logits, yb)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            # accumulated on the device: no host sync per step
            loss_sum += loss.detach() * len(idx)
            correct += (logits.detach().argmax(1) == yb).sum()
        schedule.step()
        if device.type == "cuda":
            torch.cuda.synchronize()
        train_s = time.perf_counter() - t0
        stats = {
            "epoch": epoch,
            "train_loss": loss_sum.item() / n,
            "train_acc": correct.item() / n,
            "test_acc": evaluate(model, x_test, y_test),
            "images_per_s": n / train_s,
            "seconds": train_s,
        }
        hist.epochs.append(stats)
        log(
            f"epoch {epoch:2d}/{args.epochs}  train loss {stats['train_loss']:.4f}  "
            f"train acc {stats['train_acc']:6.2%}  test acc {stats['test_acc']:6.2%}  "
            f"{stats['images_per_s']:7.0f} img/s  ({train_s:.1f} s)"
        )
    hist.seconds = time.perf_counter() - start
    return hist


def main(argv=None) -> int:
    """Returns 0 when the network learned; raises SystemExit(1) with the reason when it did not,
    so the command fails loudly however it is called."""
    args = parse_args(argv)
    hist = run(args)
    acc = hist.test_accuracy
    summary = (
        f"test accuracy {acc:.2%} after {args.epochs} epoch(s) (chance {1 / NUM_CLASSES:.0%}, "
        f"required {args.min_accuracy:.0%}), {hist.seconds:.1f} s in all"
    )
    if acc < args.min_accuracy:
        raise SystemExit(f"FAILED: the network did not learn: {summary}")
    print(f"\nlearned: {summary}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
