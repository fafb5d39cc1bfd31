"""``nnscratch train``: data in, a trained, saved and plotted network out."""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

from .. import Network, TrainingDivergedError
from ..callbacks import EarlyStopping
from ..extras import MissingExtraError, require
from ..io import save
from ..optimizers import get_optimizer
from ..schedules import CosineDecay, ExponentialDecay, InverseScaling, StepDecay
from .args import CommandError
from .data import Prepared, parse_label, prepare


def build_optimizer(args: argparse.Namespace, steps_per_epoch: int) -> Any:
    total = max(1, args.epochs * steps_per_epoch)
    schedules = {
        "constant": lambda lr: lr,
        "cosine": lambda lr: CosineDecay(lr, decay_steps=total),
        "step": lambda lr: StepDecay(lr, step_size=max(1, total // 3), gamma=0.1),
        "exponential": lambda lr: ExponentialDecay(lr, decay_rate=0.01, decay_steps=total),
        "inverse_scaling": lambda lr: InverseScaling(lr),
    }
    rate = schedules[args.lr_schedule](args.lr)
    if args.momentum and args.optimizer != "sgd":  # it was ignored without a word
        raise CommandError(f"--momentum is SGD's; --optimizer {args.optimizer} has no momentum. Use --optimizer sgd "
                           "--momentum M, or leave --momentum out.")  # fmt: skip
    extra = {"momentum": args.momentum} if args.optimizer == "sgd" and args.momentum else {}
    return get_optimizer(args.optimizer, learning_rate=rate, **extra)


def build_network(args: argparse.Namespace, data: Prepared) -> Network:
    task = data.meta["task"]
    n_out = len(data.meta["classes"]) if task == "classification" else 1
    loss = args.loss or ("cross_entropy" if task == "classification" else "mse")
    if task == "classification" and loss not in ("cross_entropy", "quadratic", "mse"):
        raise CommandError(f"--loss {loss} does not suit classification; use cross_entropy.")
    output = "softmax" if task == "classification" else "identity"
    batch = args.batch_size or len(data.X_train)
    steps = -(-len(data.X_train) // batch)
    targets = "index"
    if loss != "cross_entropy" and task == "classification":
        targets = "onehot"  # quadratic/MSE on one-hot targets, as in Nielsen's network
    from ..losses import LOSSES

    loss_obj = LOSSES.get(loss)(**({"targets": targets} if loss == "cross_entropy" else {}))
    sizes = [data.X_train.shape[1], *args.hidden, n_out]
    try:
        return Network.from_sizes(
            sizes,
            args.activation,
            output if loss == "cross_entropy" or task == "regression" else "sigmoid",
            loss=loss_obj,
            optimizer=build_optimizer(args, steps),
            l2=args.l2,
            dropout=args.dropout,
            dtype=args.dtype,
            seed=args.seed,
        )
    except MemoryError:
        raise CommandError(_too_big(sizes, args.dtype)) from None


def _too_big(sizes: list[int], dtype: str) -> str:
    """Why a network did not fit in memory, with how big it would be."""
    n = sum(a * b + b for a, b in zip(sizes[:-1], sizes[1:], strict=True))
    gib = n * np.dtype(dtype).itemsize / 2**30
    return (
        f"the network {'-'.join(map(str, sizes))} does not fit in memory: its {n:,} parameters take "
        f"{gib:,.1f} GiB in {dtype}, and training keeps about six arrays of that size (the weights, their "
        "gradients, the optimizer's state, two backups). Use fewer or smaller --hidden layers."
    )


def _targets(net: Network, y: np.ndarray) -> np.ndarray:
    """Class indices for cross-entropy; one-hot rows for a quadratic/MSE classifier."""
    from ..functional import one_hot
    from ..losses import CrossEntropy

    if isinstance(net.loss, CrossEntropy) or not np.issubdtype(y.dtype, np.integer):
        return y
    return one_hot(y, net.n_outputs)


def held_out_report(net: Network, X: np.ndarray, y: np.ndarray, task: str) -> dict[str, float]:
    """Accuracy (classification) or RMSE (regression) on held-out data."""
    out = net.predict(X)
    if task == "classification":
        return {"accuracy": float(np.mean(out.argmax(axis=1) == y))}
    return {"rmse": float(np.sqrt(np.mean((out.ravel() - y.ravel()) ** 2)))}


def write_plots(net: Network, history: Any, data: Prepared, folder: Path) -> list[Path]:
    """The plots that make sense for this data; returns the files written."""
    from .. import plots

    folder.mkdir(parents=True, exist_ok=True)
    written = [folder / "history.png"]
    plots.plot_history(history, path=written[-1], title=f"training on {data.name}")
    if data.meta["task"] != "classification":
        return _drop_stale(folder, written)
    proba = net.predict(data.X_test)
    predicted = proba.argmax(axis=1)
    classes = data.meta["classes"]
    written.append(folder / "confusion_matrix.png")
    plots.plot_confusion_matrix(
        [classes[i] for i in data.y_test], [classes[i] for i in predicted], labels=classes, path=written[-1],
        title=f"{data.name}: held-out confusion matrix",
    )  # fmt: skip
    if data.X_test.shape[1] == 2:
        written.append(folder / "decision_boundary.png")
        plots.plot_decision_boundary(
            net, data.X_test, data.y_test, path=written[-1], title=f"{data.name}: held-out data"
        )
    shape = data.meta.get("image_shape")
    if shape:
        written.append(folder / "first_layer_weights.png")
        plots.plot_first_layer_weights(net, tuple(shape), path=written[-1])
        written.append(folder / "mistakes.png")
        plots.plot_mistakes(data.X_test, data.y_test, proba, tuple(shape), classes=classes, path=written[-1])
    return _drop_stale(folder, written)


PLOT_FILES = ("history.png", "confusion_matrix.png", "decision_boundary.png", "first_layer_weights.png",
              "mistakes.png")  # fmt: skip


def _drop_stale(folder: Path, written: list[Path]) -> list[Path]:
    """Remove the plots an earlier run left that this run did not make (a moons boundary beside digits plots)."""
    for name in PLOT_FILES:
        if folder / name not in written:
            (folder / name).unlink(missing_ok=True)
    return written


GRID_KEYS = {"hidden", "lr", "activation", "l2", "dropout", "optimizer", "batch_size", "epochs", "momentum"}


def parse_grid(items: list[str]) -> dict[str, list[Any]]:
    """``["hidden=16,32x32", "lr=0.001,0.01"]`` -> ``{"hidden": [[16], [32, 32]], "lr": [0.001, 0.01]}``."""
    space: dict[str, list[Any]] = {}
    for item in items:
        key, sep, values = item.partition("=")
        key = key.strip().replace("-", "_")
        if not sep or not values or key not in GRID_KEYS:
            raise CommandError(
                f"--grid takes KEY=V1,V2,... with KEY one of {', '.join(sorted(GRID_KEYS))}; got {item!r}."
            )
        if key in space:  # "lr=0.1 lr=0.01" used to keep the last silently
            raise CommandError(f"--grid names {key} twice ({item!r} after an earlier {key}=...); give all its values "
                               f"once, separated by commas: {key}=V1,V2.")  # fmt: skip
        parsed: list[Any] = []
        for text in values.split(","):
            try:
                if key == "hidden":
                    parsed.append([int(v) for v in text.split("x") if v] if text.strip() != "none" else [])
                elif key in ("activation", "optimizer"):
                    parsed.append(text)
                else:
                    number = float(text)
                    parsed.append(int(number) if key in ("batch_size", "epochs") else number)
            except ValueError:
                kind = "widths such as 64 or 32x32" if key == "hidden" else "numbers"
                raise CommandError(f"--grid {key}: {text!r} is not valid; {key} takes {kind}. Got {item!r}.") from None
        space[key] = parsed
    return space


def _select(args: argparse.Namespace, data: Prepared, targets: np.ndarray, say: Any) -> tuple[Network, Any]:
    """Train several candidates in parallel (restarts or a grid) and keep the best on validation data."""
    from ..data import train_test_split
    from ..selection import grid, restarts, select_best

    stratify = data.y_train if data.meta["task"] == "classification" else None
    fraction = args.validation_split or 0.1
    X_tr, X_val, y_tr, y_val = train_test_split(data.X_train, targets, test_size=fraction, seed=args.seed,
                                                stratify=stratify)  # fmt: skip
    if getattr(args, "grid", None):
        candidates = grid(parse_grid(args.grid), seeds=range(args.seed, args.seed + max(1, args.restarts)))
    else:
        candidates = restarts({}, args.restarts, seed=args.seed)
    base = vars(args).copy()

    def build(config: Any, seed: int) -> Network:
        return build_network(argparse.Namespace(**{**base, **config, "seed": seed}), data)

    def fit_params(config: Any) -> dict[str, Any]:
        settings = {**base, **config}
        callbacks = [EarlyStopping("val_loss", patience=args.early_stopping, restore_best_weights=True)] \
            if args.early_stopping else []  # fmt: skip
        return {"epochs": settings["epochs"], "batch_size": settings["batch_size"], "callbacks": callbacks,
                "validation_data": (X_val, y_val) if args.early_stopping else None}  # fmt: skip

    say(
        f"Training {len(candidates)} candidates with {args.jobs} job(s)"
        + (f" on Dask ({args.dask})" if args.dask else "")
    )
    result = select_best(
        build, X_tr, y_tr, candidates, (X_val, y_val), fit_params=fit_params, n_jobs=args.jobs,
        backend="dask" if args.dask else "loky", scheduler=args.dask, progress=not args.quiet,
    )  # fmt: skip
    print(result.format_table())
    if result.best is None:
        raise CommandError("every candidate failed; nothing was saved. See the table above.")
    best_row = result.table[[r["index"] for r in result.table].index(result.best_index)]
    print(f"Best: #{result.best_index} ({best_row['config_text'] or 'seed ' + str(best_row['seed'])})")
    history = result.best.history
    if result.interrupted:
        history.stop_reason = "interrupted"
    return result.best, history


def save_or_fallback(net: Network, out: Path, meta: dict[str, Any]) -> Path:
    """Save to ``out``; if that fails after all (the disk filled, the folder went away), save to
    a file in the temporary folder and say where, so the trained model is not lost. A Ctrl-C
    during the save waits for it to finish, then says where the model is and stops."""
    import signal
    import threading

    if threading.current_thread() is not threading.main_thread():
        return _save(net, out, meta)
    interrupts: list[int] = []
    previous = signal.signal(signal.SIGINT, lambda signum, frame: interrupts.append(signum))
    try:
        saved = _save(net, out, meta)
    finally:
        signal.signal(signal.SIGINT, previous)
    if interrupts:
        print(f"Interrupted while saving: the save was finished first; the model is in {saved}", file=sys.stderr)
        raise KeyboardInterrupt
    return saved


def _save(net: Network, out: Path, meta: dict[str, Any]) -> Path:
    try:
        save(net, out, extra=meta)
        return out
    except OSError as err:
        fallback = Path(tempfile.gettempdir()) / f"nnscratch-{out.stem}-{int(time.time())}.safetensors"
        save(net, fallback, extra=meta)
        print(f"error: could not save to {out} ({err.strerror or err}); saved the model to {fallback} instead",
              file=sys.stderr)  # fmt: skip
        return fallback


def cmd_train(args: argparse.Namespace) -> int:
    """Train a network on DATA, report held-out performance, save it and its plots."""
    if args.restarts > 1 or getattr(args, "grid", None):
        require("joblib", "parallel")  # said before the data is read or anything is announced
    data = prepare(
        args.data,
        task=args.task,
        test_size=args.test_size,
        seed=args.seed,
        label=parse_label(args.label),
        scale=args.scale,
    )
    net = build_network(args, data)
    out = Path(args.out or f"models/{data.name}.safetensors")
    from .args import check_writable

    # Before training, not after: a trained model must not be lost to a bad --out.
    check_writable(out, "--out", model=True, inputs=[args.data], force=args.force)
    plots_dir = Path(args.plots or out.with_name(out.stem + "_plots"))
    say = (lambda *a: None) if args.quiet else print
    say(f"Training {net.layers} on {len(data.X_train):,} samples of {data.name} ({len(data.X_test):,} held out)")
    callbacks = []
    if args.early_stopping:
        callbacks.append(EarlyStopping("val_loss", patience=args.early_stopping, restore_best_weights=True))
        if not args.validation_split:
            args.validation_split = 0.1
    start = time.perf_counter()
    targets = _targets(net, data.y_train)
    if args.restarts > 1 or getattr(args, "grid", None):
        net, history = _select(args, data, targets, say)
    else:
        try:
            history = net.fit(
                data.X_train, targets, epochs=args.epochs, batch_size=args.batch_size,
                validation_split=args.validation_split, callbacks=callbacks, verbose=not args.quiet,
            )  # fmt: skip
        except TrainingDivergedError as err:
            raise CommandError(f"{err} Nothing was saved.") from None
    seconds = time.perf_counter() - start
    scores = held_out_report(net, data.X_test, data.y_test, data.meta["task"])
    meta = {**data.meta, "epochs_trained": len(history.epoch), "held_out": scores, "train_seconds": seconds,
            "history": history.history, "stop_reason": history.stop_reason}  # fmt: skip
    saved = save_or_fallback(net, out, meta)
    fell_back, out = saved != out, saved
    interrupted = history.stop_reason == "interrupted"
    written = []
    if not args.no_plots:
        try:
            written = write_plots(net, history, data, plots_dir)
        except MissingExtraError as err:
            print(f"note: no plots ({err}); --no-plots to skip them", file=sys.stderr)
    whole = data.meta.get("split", {}).get("whole", False)
    part = "Training" if whole else "Test"
    metric = (f"{part} accuracy: {scores['accuracy']:.2%}" if "accuracy" in scores
              else f"{part} RMSE: {scores['rmse']:.4g}")  # fmt: skip
    where = "samples it was trained on (nothing held out)" if whole else "held-out samples"
    print(f"{metric} on {len(data.X_test):,} {where}; {len(history.epoch)} epochs in {seconds:.1f} s; "
          f"{net.n_params:,} parameters.")  # fmt: skip
    if interrupted:
        print(f"Interrupted: saved the model trained so far ({len(history.epoch)} complete epochs) to {out}")
        return 130
    print(f"Model saved to {out}" + (f"; plots in {plots_dir}/" if written else ""))
    return 1 if fell_back else 0


def add_train_parser(sub: Any, formatter: Any) -> None:
    p = sub.add_parser(
        "train",
        help="train a network on a dataset or a CSV file",
        description=cmd_train.__doc__,
        formatter_class=formatter,
        epilog="""examples:
  nnscratch train digits
  nnscratch train moons --hidden 16 16 --activation tanh --epochs 200 --batch-size 16
  nnscratch train mnist --hidden 256 128 --dropout 0.2 --epochs 20 --batch-size 128 --lr-schedule cosine
  nnscratch train data.csv --label target --hidden 32 --early-stopping 5
  nnscratch train houses.csv --task regression --loss mse --hidden 64 --epochs 100
  nnscratch train digits --restarts 8 --jobs 2             # 8 seeds in parallel, keep the best
  nnscratch train digits --restarts 8 --dask tcp://scheduler:8786
""",
    )
    _add_training_options(p)
    p.set_defaults(func=cmd_train, grid=None)
    s = sub.add_parser(
        "search",
        help="train a grid of configurations in parallel and keep the best",
        description="Train every combination of the --grid values (and --restarts seeds each) in parallel, "
        "print the table of validation scores, and save the best network.",
        formatter_class=formatter,
        epilog="""examples:
  nnscratch search digits --grid hidden=16,64,32x32 lr=0.001,0.01 --jobs 2
  nnscratch search digits --grid hidden=32,128 --restarts 3 --epochs 30 --dask local --jobs 2
  nnscratch search data.csv --label y --grid l2=0,0.001,0.01 dropout=0,0.2
""",
    )
    _add_training_options(s)
    s.add_argument("--grid", nargs="+", required=True, metavar="KEY=V1,V2",
                   help="values to try: hidden (e.g. 64 or 32x32), lr, activation, l2, dropout, optimizer, "
                   "batch_size, epochs, momentum")  # fmt: skip
    s.set_defaults(func=cmd_train)


def _add_training_options(p: Any) -> None:
    from .args import fraction, jobs_count, non_negative_float, positive_float, positive_int, seed

    p.add_argument("data", help="dataset name (digits, mnist, moons, circles, xor) or a CSV file")
    p.add_argument("--hidden", type=positive_int, nargs="*", default=[64], help="hidden layer sizes (default: 64)")
    p.add_argument(
        "--activation",
        default="relu",
        choices=["relu", "leaky_relu", "tanh", "sigmoid", "identity"],
        help="hidden layers' activation",
    )
    p.add_argument("--loss", choices=["cross_entropy", "mse", "quadratic"], help="default: cross_entropy, or mse")
    p.add_argument(
        "--task",
        choices=["classification", "regression"],
        default="classification",
        help="classes, or numbers to predict",
    )
    p.add_argument(
        "--optimizer", default="adam", choices=["sgd", "adagrad", "rmsprop", "adam", "adamw"], help="the update rule"
    )
    p.add_argument("--lr", type=positive_float, default=1e-3, help="learning rate (default 1e-3)")
    p.add_argument("--momentum", type=fraction, default=0.0, help="SGD momentum, in [0, 1) (default 0)")
    p.add_argument(
        "--lr-schedule",
        default="constant",
        choices=["constant", "cosine", "step", "exponential", "inverse_scaling"],
        help="how the learning rate changes over the epochs",
    )
    p.add_argument("--epochs", type=positive_int, default=20, help="passes over the training data")
    p.add_argument("--batch-size", type=positive_int, default=32, help="samples per gradient step")
    p.add_argument("--l2", type=non_negative_float, default=0.0, help="L2 on weights: adds l2/2 ||W||^2 to the loss")
    p.add_argument("--dropout", type=fraction, default=0.0, help="dropout rate after each hidden layer, in [0, 1)")
    p.add_argument("--seed", type=seed, default=0, help="seed of the initial weights, shuffling and split")
    p.add_argument("--dtype", default="float32", choices=["float32", "float64"], help="floating-point precision")
    p.add_argument("--validation-split", type=fraction, default=0.0, help="fraction of training data for val_loss")
    p.add_argument("--early-stopping", type=positive_int, metavar="PATIENCE", help="stop when val_loss stalls")
    p.add_argument(
        "--test-size",
        type=fraction,
        default=0.2,
        help="held-out fraction; 0: train and evaluate on every row (MNIST: its test set)",
    )
    p.add_argument("--label", default="-1", help="CSV label column, by name or index (default: last)")
    p.add_argument("--scale", default="auto", choices=["auto", "standard", "none"], help="auto: standardise CSVs")
    p.add_argument("--out", help="model file (default: models/DATA.safetensors)")
    p.add_argument("--force", action="store_true", help="replace --out even if it is not an nnscratch model")
    p.add_argument("--plots", help="plots folder (default: beside the model)")
    p.add_argument("--no-plots", action="store_true", help="write no plots")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.add_argument("--restarts", type=positive_int, default=1, help="train K seeds (each grid point), keep the best")
    p.add_argument("--jobs", type=jobs_count, default=1, help="parallel workers for restarts/search (-1: all cores)")
    p.add_argument("--dask", metavar="ADDRESS", help="run restarts/search on a Dask scheduler, or 'local'")
