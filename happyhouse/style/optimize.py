"""The optimisers of the generated image: one compiled Adam step (:func:`make_train_step`),
L-BFGS over the pixels (:func:`lbfgs_minimize`), and :func:`optimise`, the loop that prints the
costs as the course, saves pictures, records a :class:`CostHistory` and stops on request."""
from __future__ import annotations

import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np
from tqdm import tqdm

from happyhouse.precision import check_choice, choose_precision, compute_precision
from happyhouse.runtime import import_tensorflow
from happyhouse.style import checkpoint, contact_sheet, images
from happyhouse.style.choices import OPTIMIZERS

tf = import_tensorflow()



def make_train_step(cost, variable, optimizer, precision="auto"):
    """One compiled optimiser step on ``variable``: returns (J, J_content, J_style) before it.
    ``precision`` "bfloat16" runs the loss network in bfloat16, "auto" where this CPU gains by it
    (see happyhouse.precision)."""
    precision = choose_precision(precision, "style")

    @tf.function
    def train_step():
        with tf.GradientTape() as tape:
            J, J_content, J_style = cost(variable)
        optimizer.apply_gradients([(tape.gradient(J, variable), variable)])
        return J, J_content, J_style
    if precision == "float32":
        return train_step

    def step_in_precision():
        with compute_precision(precision):
            return train_step()
    return step_in_precision


def lbfgs_minimize(cost, start, max_iterations=200, max_evals=None, target=None, callback=None,
                   bounds=None, precision="float32") -> dict:
    """Minimise ``cost`` over the image with L-BFGS (scipy's L-BFGS-B, as Gatys et al. and
    jcjohnson/neural-style do), from ``start`` (1, H, W, 3).

    One compiled function gives the cost and its gradient (one forward + backward pass per
    evaluation), its convolutions in ``precision`` ("float32" or "bfloat16": the costs stay float32
    sums; bfloat16 tracked float32's costs within 10% over 60 iterations, docs/style_transfer.md).
    ``bounds``: (low, high), each broadcast to the image's shape (images.pixel_range: the
    pixels a picture can hold), kept by L-BFGS-B and the start clipped into them; None: unbounded.
    Stops after ``max_iterations`` iterations, ``max_evals`` evaluations (default 10 per
    iteration), or once the total cost is <= ``target``. ``callback(i, image, (J, Jc, Js))``
    runs after each iteration. Returns a dict: ``image`` (1, H, W, 3) float32, ``costs``
    [(J, J_content, J_style)] after each iteration, ``iterations``, ``evaluations``, ``seconds``,
    ``message`` and ``status`` (scipy's: 0 converged, 1 a limit reached, 2 the line search failed,
    99 the target reached).
    """
    import scipy.optimize
    start = np.asarray(start, dtype=np.float32)
    shape = start.shape
    box = None
    if bounds is not None:
        low, high = (np.broadcast_to(np.asarray(b, np.float32), shape) for b in bounds)
        start, box = np.clip(start, low, high), scipy.optimize.Bounds(low.ravel(), high.ravel())

    @tf.function(autograph=False)  # no Python control flow to convert
    def value_and_grad(x):
        with tf.GradientTape() as tape:
            tape.watch(x)
            J, J_content, J_style = cost(x)
        return (J, J_content, J_style), tape.gradient(J, x)

    last, costs = {}, []

    def fun(flat):
        with compute_precision(precision):
            values, grad = value_and_grad(tf.constant(flat.reshape(shape), tf.float32))
        last["costs"] = tuple(float(c) for c in values)
        return last["costs"][0], grad.numpy().astype(np.float64).ravel()

    def on_iteration(intermediate_result):
        image = intermediate_result.x.reshape(shape).astype(np.float32)
        costs.append(last["costs"] if last["costs"][0] == intermediate_result.fun else
                     (float(intermediate_result.fun), float("nan"), float("nan")))
        if callback is not None:
            callback(len(costs) - 1, image, costs[-1])
        if target is not None and intermediate_result.fun <= target:
            raise StopIteration

    t0 = time.perf_counter()
    result = scipy.optimize.minimize(
        fun, start.ravel().astype(np.float64), jac=True, method="L-BFGS-B", callback=on_iteration, bounds=box,
        options={"maxiter": max_iterations, "maxfun": max_evals or 10 * max_iterations})
    return {"image": result.x.reshape(shape).astype(np.float32), "costs": costs,
            "iterations": int(result.nit), "evaluations": int(result.nfev),
            "seconds": time.perf_counter() - t0, "message": str(result.message), "status": int(result.status)}


@dataclass
class CostHistory:
    """Costs per iteration (Adam: before each step; L-BFGS: after each iteration) and the network that
    measured them; over several scales, each scale's costs at its own size."""
    network: str = ""
    total: list = field(default_factory=list)
    content: list = field(default_factory=list)
    style: list = field(default_factory=list)
    seconds: float = 0.0  # wall time of the loop

    @property
    def seconds_per_step(self) -> float:
        return self.seconds / max(len(self.total), 1)

    def add(self, costs) -> None:
        """Append one iteration's (J, J_content, J_style)."""
        for series, value in zip((self.total, self.content, self.style), costs):
            series.append(float(value))

    def extend(self, other: "CostHistory") -> None:
        """Append another pass's costs and seconds (coarse to fine)."""
        for mine, theirs in ((self.total, other.total), (self.content, other.content), (self.style, other.style)):
            mine.extend(theirs)
        self.seconds += other.seconds

    def plot(self, ax=None, alpha=10, beta=40):
        """Plot J, alpha*J_content and beta*J_style against the iteration (log scale); the Axes."""
        import matplotlib.pyplot as plt
        ax = ax or plt.subplots(figsize=(6, 3.5))[1]
        ax.semilogy(self.total, label="J (total)")
        ax.semilogy(alpha * np.asarray(self.content), label=f"{alpha} × J_content")
        ax.semilogy(beta * np.asarray(self.style), label=f"{beta} × J_style")
        ax.set(xlabel="iteration", ylabel="cost", title=f"cost ({self.network})")
        ax.legend()
        return ax


@dataclass
class LoopOptions:
    """How :func:`optimise` runs. ``optimizer``: None or "adam" (the course's, ``learning_rate``
    2.0), "lbfgs" (:func:`lbfgs_minimize`), or a Keras optimizer. Every ``print_every``
    iterations the costs are printed as the course; every ``save_every`` ``output_dir/<i>.png``
    is saved, at the end ``output_dir/generated_image.jpg`` (None: nothing saved). To go on from
    an earlier pass: ``first_iteration`` numbers the first step, ``optimizer_state`` (from
    checkpoint.optimizer_state) restores Adam's moments. ``precision``: "auto" (see
    happyhouse.precision), "float32" or "bfloat16" (Adam and L-BFGS alike). ``stop``: asked before each step;
    True raises checkpoint.Interrupted with the image, the step count and the optimiser state."""
    optimizer: object = None
    learning_rate: float = 2.0
    output_dir: object = None
    save_every: int = 20
    print_every: int = 20
    progress: bool = True
    precision: str = "auto"
    first_iteration: int = 0
    optimizer_state: list | None = None
    stop: Callable[[], bool] | None = None


def optimise(model, start, cost, steps: int, options: LoopOptions | None = None):
    """Put ``start`` (1, H, W, 3) into ``model["input"]`` and minimise ``cost`` (image ->
    (J, J_content, J_style)) over it for ``steps`` iterations, as ``options`` say.
    Returns (generated image (1, H, W, 3) normalised, CostHistory)."""
    options = options or LoopOptions()
    _check(steps, options)
    model.set_input_size(*np.shape(start)[1:3])
    model["input"].assign(start)
    output_dir = Path(options.output_dir) if options.output_dir is not None else None
    run = _lbfgs_loop if options.optimizer == "lbfgs" else _adam_loop
    generated, history = run(model, cost, steps, options, output_dir)
    if not np.isfinite(generated).all():  # the last step's update (its cost is only known before it)
        check_finite_cost(options.first_iteration + steps, float("nan"))
    if output_dir is not None:
        images.save_image(output_dir / contact_sheet.RESULT_NAME, generated)
    return generated, history


class NonFiniteCost(ValueError):
    """The cost became NaN or infinite: the picture would come out blank."""


def check_finite_cost(i, total) -> None:
    """NonFiniteCost when the total cost ``total`` of iteration ``i`` is not a finite number."""
    if not np.isfinite(total):
        raise NonFiniteCost(f"the cost became {float(total)} at iteration {i}, so the picture would come out "
                            "blank: check --alpha, --beta, --style-weights, --tv-weight and the loss network's "
                            "weights file (finite numbers only)")


def _check(steps, options):
    if steps < 1:
        raise ValueError(f"num_iterations must be at least 1, got {steps}")
    if isinstance(options.optimizer, str) and options.optimizer not in OPTIMIZERS:
        raise ValueError(f"optimizer must be one of {OPTIMIZERS} or a Keras optimizer, got {options.optimizer!r}")
    check_choice(options.precision)


def _report(i, costs, image, options, output_dir):
    """The course's printout every ``print_every`` iterations, the picture every ``save_every``."""
    if options.print_every and i % options.print_every == 0:
        Jt, Jc, Js = costs() if callable(costs) else costs
        tqdm.write(f"Iteration {i} :\ntotal cost = {Jt:.6g}\ncontent cost = {Jc:.6g}\n"
                   f"style cost = {Js:.6g}", file=sys.stdout)
    if output_dir is not None and options.save_every and i % options.save_every == 0:
        images.save_image(output_dir / f"{i}.png", image() if callable(image) else image)
        contact_sheet.record(output_dir, output_dir / f"{i}.png")


def _adam_loop(model, cost, steps, options, output_dir):
    """Adam (or the given Keras optimizer), one compiled step per iteration."""
    import keras
    optimizer = options.optimizer
    if optimizer is None or optimizer == "adam":
        optimizer = keras.optimizers.Adam(options.learning_rate, epsilon=1e-8)
    if options.optimizer_state is not None:
        checkpoint.restore_optimizer(optimizer, model["input"], options.optimizer_state)
    train_step = make_train_step(cost, model["input"], optimizer, options.precision)
    evaluate = tf.function(lambda: cost(model["input"]))
    history = CostHistory(model.name)
    t0 = time.perf_counter()
    bar = tqdm(range(steps), desc=f"style transfer ({model.name})", disable=not options.progress,
               mininterval=2, file=sys.stderr)
    for i in bar:
        if options.stop is not None and options.stop():
            bar.close()
            fresh = i == 0 and options.optimizer_state is None  # no step yet: nothing to keep (nor built)
            raise checkpoint.Interrupted(options.first_iteration + i, model["input"].numpy(),
                                         None if fresh else checkpoint.optimizer_state(optimizer))
        history.add(train_step())
        check_finite_cost(options.first_iteration + i, history.total[-1])
        _report(options.first_iteration + i, lambda: [float(v) for v in evaluate()], model["input"].numpy,
                options, output_dir)
    history.seconds = time.perf_counter() - t0
    return model["input"].numpy(), history


def _lbfgs_loop(model, cost, steps, options, output_dir):
    """L-BFGS in the run's precision: the same printing, saving and history. Where bfloat16's
    line search gives up before ``steps`` iterations, the rest run in float32 (said in one line)."""
    history = CostHistory(model.name)
    precision = choose_precision(options.precision, "style")
    bar = tqdm(total=steps, desc=f"style transfer ({model.name}, L-BFGS)", disable=not options.progress,
               file=sys.stderr)
    done = 0

    def on_iteration(i, image, costs):
        i += options.first_iteration + done
        history.add(costs)
        check_finite_cost(i, costs[0])
        _report(i, costs, image, options, output_dir)
        bar.update()
        if options.stop is not None and options.stop():  # L-BFGS keeps no state worth saving
            raise checkpoint.Interrupted(i + 1, image)

    try:
        result = lbfgs_minimize(cost, model["input"].numpy(), steps, callback=on_iteration,
                                bounds=images.pixel_range(), precision=precision)
        if precision == "bfloat16" and result["status"] == 2 and result["iterations"] < steps:
            done, seconds = result["iterations"], result["seconds"]
            tqdm.write(f"L-BFGS: the line search gave up in bfloat16 after {done} iterations "
                       f"({result['message']}); the other {steps - done} run in float32", file=sys.stderr)
            result = lbfgs_minimize(cost, result["image"], steps - done, callback=on_iteration,
                                    bounds=images.pixel_range(), precision="float32")
            result["seconds"] += seconds
    finally:
        bar.close()
    if not history.total:  # L-BFGS stopped before its first iteration (already at a minimum)
        on_iteration(0, result["image"], tuple(float(c) for c in cost(tf.constant(result["image"]))))
    history.seconds = result["seconds"]
    model["input"].assign(result["image"])
    return result["image"], history
