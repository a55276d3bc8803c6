"""Auto-checks for the book's code exercises.

Each ``check_*`` function takes the learner's answer and compares it with the library's own
implementation.  A right answer prints a short confirmation (and the check returns ``None``: a
notebook shows no quoted string, and nbgrader reads nothing as partial credit).  A wrong one raises
:class:`ExerciseError`, whose message says *which property* of the answer is wrong (the type, the
direction, the part of the network that is counted wrong, a typical mistake it recognises) --
never the expected value, a difference from it, or the formula.  An answer that is still the
student template (``raise NotImplementedError``) gets a message that says so.

What a learner sees of a failed check is its message and nothing else.  IPython (a notebook, and
so nbgrader's autograde and nbval, which record what the kernel shows) prints a traceback with the
source lines around every frame, and in ``%xmode Verbose`` their local variables; a check's frames
hold the expected values.  So :class:`ExerciseError` renders itself (IPython honours an exception's
``_render_traceback_``) as its message alone, and :func:`exercise_check` raises it afresh from a
frame that holds no answer, with no exception of the check chained to it.  When the learner's own
code raises, the traceback shown is that of the learner's code only (the check's frames are
removed), above the message.

Writing a new check
-------------------
Follow this pattern (``tests/test_exercises.py`` enforces it for every ``check_*``)::

    @functools.lru_cache(maxsize=None)
    def widget_cases() -> list[tuple[tuple, int]]:
        # ((args...), expected): the expected values computed by the library, never typed
        return [((n,), library_count(n)) for n in (1, 3, 9)]


    @exercise_check
    def check_widget(fn) -> str:
        # docstring: what fn(n) must return (what is asked, never its value or formula)
        cases = widget_cases()
        for (n,), want in cases:
            got = _call(fn, n)                 # the learner's code: only ever called through _call
            _require_int(got, f"for n={n}")
            if got == want:
                continue
            hint = "which part is counted wrong, or the typical mistake recognised"
            raise ExerciseError(f"for n={n} your count is {_direction(got, want)}: {hint}")
        return f"Correct: ... {cases[0][1]:,} ..."   # built from the cases; printed, never returned

1. Decorate it with :func:`exercise_check` (the message-only failure and the printed success).
2. Expected values come from the library (a ``*_cases()`` function or a reference module); no
   answer, formula or value of one is typed anywhere in the check's source, and the success
   message is built from the computed values.
3. A failure message names the failed property (:func:`_require_int`, :func:`_require_number`,
   :func:`_direction`, the part, a recognised mistake) and never the expected value, a difference
   from it, a ratio to it, or the formula.
4. Call the learner's code only through :func:`_call` (or :func:`_same_module` for modules): it
   turns ``NotImplementedError`` into "not implemented yet" and the learner's own errors into an
   :class:`ExerciseError` that shows the learner's frames only.
5. Register the check in ``tests/test_exercises.py``: in ``NUMERIC_CHECKS`` (its cases function
   and a mistakes function), or with a few typical wrong answers in ``_wrong_answers``; and the
   words of its answer (the formula, the key line of the solution) in ``FORMULAS``.  The notebook
   solution that calls it is its right answer.  The test renders every failure as IPython shows it
   (Context and Verbose) and asserts that no expected value, formula, line of the check's source or
   "Correct" appears; ``test_every_check_is_covered_by_the_rendering_test`` fails until the new
   check is registered.
"""
from __future__ import annotations

import copy
import functools
import math
import traceback
import types

import torch

from .analysis import count_conv_weights, count_parameters
from .data import DataNotFoundError
from .models import PlainBlock, cifar_resnet
from .models.surgery import make_identity_
from .published import MeasurementError
from .weights import WeightsError


class ExerciseError(AssertionError):
    """A wrong answer, with a hint.

    IPython shows it as its message alone (``_render_traceback_``); if the learner's code raised,
    ``answer_error`` is that exception (its traceback cut to the learner's frames), shown above.
    """

    def __init__(self, message: str, answer_error: BaseException | None = None):
        super().__init__(message)
        self.answer_error = answer_error

    def _render_traceback_(self) -> list[str]:
        lines = []
        if self.answer_error is not None:
            lines = [*_format_answer_error(self.answer_error), ""]
        return lines + [f"\x1b[31m{type(self).__name__}\x1b[39m: {self}"]


def _format_answer_error(err: BaseException) -> list[str]:
    """The learner's exception as IPython would show it (its traceback holds the learner's frames only)."""
    try:
        from IPython import get_ipython

        shell = get_ipython()
        if shell is not None:
            return list(shell.InteractiveTB.structured_traceback(type(err), err, err.__traceback__))
        from IPython.core.ultratb import FormattedTB

        return list(FormattedTB(mode="Context").structured_traceback(type(err), err, err.__traceback__))
    except Exception:  # noqa: BLE001 -- a rendering failure must not hide the message
        return [line.rstrip("\n") for line in traceback.format_exception(type(err), err, err.__traceback__)]


def _learner_frames(tb: types.TracebackType | None) -> types.TracebackType | None:
    """``tb`` without the frames of this module: what is left is the learner's code and what it called."""
    kept = []
    while tb is not None:
        if tb.tb_frame.f_code.co_filename != _THIS_FILE:
            kept.append(tb)
        tb = tb.tb_next
    out = None
    for t in reversed(kept):
        out = types.TracebackType(out, t.tb_frame, t.tb_lasti, t.tb_lineno)
    return out


def _first_line(err: BaseException) -> str:
    text = str(err).strip().splitlines()
    return f"{type(err).__name__}: {text[0][:200]}" if text else type(err).__name__


def exercise_check(body):
    """Make ``body`` a check: ``body(answer)`` returns its success message or raises ExerciseError.

    The check prints the success message and returns ``None``.  A failure is raised here afresh, so
    the traceback holds no frame of ``body`` (whose source lines and local variables know the
    answer) and chains no exception of the check; an error the check itself hits on an odd answer
    becomes a plain ExerciseError.  IPython shows only the message either way.
    """
    @functools.wraps(body)
    def check(answer) -> None:
        failure = interrupted = None
        try:
            message = body(answer)
        except ExerciseError as err:
            failure = ExerciseError(str(err), err.answer_error)
        except KeyboardInterrupt:
            interrupted = True
        except (DataNotFoundError, WeightsError, MeasurementError) as err:
            failure = ExerciseError(f"the check cannot run here, whatever your answer: {_first_line(err)}")
        except Exception as err:  # noqa: BLE001 -- the check could not use the answer
            failure = ExerciseError(f"the check could not use your answer ({_first_line(err)}): check the type "
                                    "and shape of what you return.")
        if interrupted:
            raise KeyboardInterrupt
        if failure is not None:
            raise failure from failure.answer_error  # plain Python shows the learner's frames, not ours
        print(message)

    return check


def _call(fn, *args, failed: str | None = None):
    """The learner's ``fn(*args)``; its errors become ExerciseErrors that show the learner's frames only
    (``failed``: the message, where ``{error}`` stands for the learner's error)."""
    try:
        return fn(*args)
    except NotImplementedError:
        raise ExerciseError("This exercise is not implemented yet: replace `raise NotImplementedError` with your "
                            "answer and run the cell again.") from None
    except Exception as err:  # noqa: BLE001 -- the learner's bug, shown as the learner's traceback
        err = err.with_traceback(_learner_frames(err.__traceback__))
        message = (failed or "your code raised {error} (traceback above).").replace("{error}", _first_line(err))
        raise ExerciseError(message, err) from None


_THIS_FILE = _call.__code__.co_filename


def _require_int(got, where: str) -> None:
    if isinstance(got, bool) or not isinstance(got, int):
        raise ExerciseError(f"return an int; got {type(got).__name__} ({where})")


def _require_number(got, where: str) -> None:
    if isinstance(got, bool) or not isinstance(got, (int, float)) or not math.isfinite(got):
        raise ExerciseError(f"return a finite number; got {got!r} of type {type(got).__name__} ({where})")


def _direction(got, want) -> str:
    """Which side of the answer a wrong number lies on -- the only thing said about its size."""
    if want > 0 and got <= 0:
        return "it must be positive"
    return "too large" if got > want else "too small"


def _and(items) -> str:
    items = [str(i) for i in items]
    return items[0] if len(items) == 1 else ", ".join(items[:-1]) + " and " + items[-1]


# --- chapter 1 ---------------------------------------------------------------------------------

@functools.lru_cache(maxsize=None)
def cifar_parameter_cases() -> list[tuple[tuple, int]]:
    """``((n,), parameters of plain-(6n+2))`` for the depths the check tries."""
    return [((n,), count_parameters(cifar_resnet(6 * n + 2, residual=False))) for n in (1, 3, 9, 18)]


@functools.lru_cache(maxsize=None)
def _bn_parameters(n: int) -> int:
    model = cifar_resnet(6 * n + 2, residual=False)
    return sum(p.numel() for m in model.modules() if isinstance(m, torch.nn.BatchNorm2d) for p in m.parameters())


@exercise_check
def check_cifar_parameter_count(fn) -> str:
    """``fn(n)`` must return the parameter count of the CIFAR plain net with ``6n + 2`` layers
    (convolutions without bias, BN with gamma and beta, a 64 -> 10 fully-connected layer)."""
    cases = cifar_parameter_cases()
    want_of = {n: want for (n,), want in cases}
    for n, want in want_of.items():
        got = _call(fn, n)
        _require_int(got, f"for n={n}")
        if got == want:
            continue
        bn = _bn_parameters(n)
        msg = f"for n={n} (depth {6 * n + 2}) your count is {_direction(got, want)}"
        if got == want + bn:
            hint = ("did you count the BN parameters twice? Each BN layer has a scale and a shift per channel; its "
                    "running mean and variance are buffers, not parameters.")
        elif got == want - bn:
            hint = "did you leave out the BN layers' scale and shift?"
        elif got in (want - 10, want + 10):
            hint = "everything but the classifier is right: look at its bias."
        else:
            other = 3 if n == 1 else 1
            got_other = _call(fn, other)
            _require_int(got_other, f"for n={other}")
            if got - got_other == want - want_of[other]:
                hint = ("what each step of n adds is right, so a part that does not repeat is counted wrong: the first "
                        "convolution and its BN, the first block of stage 2 or 3 (they change the width), or the "
                        "classifier.")
            else:
                hint = ("what each step of n adds is wrong: look at the blocks that repeat within a stage, how many "
                        "layers each stage has, and how wide each stage is.")
        raise ExerciseError(f"{msg}: {hint}")
    return f"Correct: your formula matches the library for depths {_and(6 * n + 2 for n in want_of)}."


@exercise_check
def check_identity_block(fn) -> str:
    """``fn(block)`` must modify a shape-keeping :class:`PlainBlock` in place so that, in eval
    mode, it returns its (non-negative) input unchanged.

    Tolerance: BN divides by ``sqrt(running_var + eps)``, so the natural answer ``running_var = 1``
    scales each BN's output by ``1 / sqrt(1 + eps)``; over the block's two BNs the output is off by
    a relative ``eps`` at most (3.8e-5 on this input).  Every exact answer (``running_var =
    1 - eps``, or a scale ``sqrt(1 + eps)``) and every such answer pass; a wrong answer is off by
    order one.
    """
    torch.manual_seed(0)
    block = PlainBlock(16, 16)
    with torch.no_grad():
        for bn in (block.bn1, block.bn2):
            bn.running_mean.uniform_(-1, 1)
            bn.running_var.uniform_(0.5, 2)
    _call(fn, block)
    block.eval()
    x = torch.relu(torch.randn(4, 16, 8, 8))
    with torch.no_grad():
        y = block(x)
    if y.shape != x.shape:
        raise ExerciseError("the block no longer returns a tensor shaped like its input: change its layers' values, "
                            "not the layers themselves.")
    eps = max(block.bn1.eps, block.bn2.eps)
    err = (y - x).abs().max().item()
    if torch.allclose(y, x, rtol=2 * eps, atol=1e-6):
        return f"Correct: the block returns its input (max difference {err:.1e})."
    reference = make_identity_(copy.deepcopy(block))
    for name in ("conv1", "conv2"):
        if not torch.equal(getattr(block, name).weight, getattr(reference, name).weight):
            raise ExerciseError(f"{name} is not an identity convolution yet (max output error {err:.3g}). "
                                "Hint: torch.nn.init.dirac_ makes a kernel that copies channel i to channel i.")
    raise ExerciseError(f"the convolutions are right, but BN still changes the signal (max error {err:.3g}). "
                        "Hint: write down what BN computes in eval mode, and which of its four tensors you can set.")


# --- chapter 2 ---------------------------------------------------------------------------------

@exercise_check
def check_residual_forward(fn) -> str:
    """``fn(block, x)`` must compute a residual block's output ``relu(F(x) + x)`` from
    ``block.residual_branch`` (identity shortcut)."""
    from .models import BasicBlock

    torch.manual_seed(1)
    block = BasicBlock(8, 8).eval()
    x = torch.relu(torch.randn(2, 8, 6, 6))
    with torch.no_grad():
        want = block(x)
        got = _call(fn, block, x)
    if not isinstance(got, torch.Tensor) or got.shape != want.shape:
        raise ExerciseError(f"return a tensor shaped like x {tuple(x.shape)}; got {getattr(got, 'shape', type(got))}")
    if torch.allclose(got, want, atol=1e-6):
        return "Correct: your output is the library's BasicBlock's, for every element."
    with torch.no_grad():
        branch = block.residual_branch(x)
        without_last_relu, plain = block.residual_branch(x) + x, torch.relu(branch)
    if torch.allclose(got, without_last_relu, atol=1e-6):
        raise ExerciseError("Close: the sum is right, but the block applies a ReLU after the addition (paper Fig. 2).")
    if torch.allclose(got, plain, atol=1e-6):
        raise ExerciseError("That is the plain block's output: the shortcut is missing.")
    raise ExerciseError("Your output differs from the block's. Hint: block.residual_branch(x) computes F(x); "
                        "look at paper Fig. 2 for where x comes in and what follows.")


@exercise_check
def check_zero_init(fn) -> str:
    """``fn(model)`` must zero the last BN scale of every residual branch, so every block starts
    as the identity; nothing else may change."""
    from .analysis import blocks

    torch.manual_seed(2)
    model = cifar_resnet(20).eval()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    _call(fn, model)
    after = model.state_dict()
    changed = sorted(k for k in before if not torch.equal(before[k], after[k]))
    want = sorted(f"{name}.{_last_bn_name(block)}.weight" for name, block in blocks(model))
    if changed == want and all(torch.count_nonzero(after[k]) == 0 for k in want):
        return "Correct: every residual branch starts at zero, so every block starts as the identity."
    extra = [k for k in changed if k not in want]
    missing = [k.rsplit(".", 2)[0] for k in want if k not in changed or torch.count_nonzero(after[k]) != 0]
    msg = []
    if extra:
        msg.append(f"you changed {len(extra)} tensor(s) that must stay as they are, e.g. {extra[0]}")
    if missing:
        msg.append(f"in {len(missing)} of {len(want)} blocks (e.g. {missing[0]}) the residual branch does not start at "
                   "zero yet: which layer ends the branch, and which of its tensors scales the output?")
    raise ExerciseError("; ".join(msg))


def _last_bn_name(block) -> str:
    return next(name for name, m in block.named_children() if m is block.last_bn)


@functools.lru_cache(maxsize=None)
def branch_response_cases() -> list[tuple[tuple, float]]:
    """((published net name, images), expected): the median over blocks of the std of ``F(x)``
    measured by the library (:func:`resnet_book.analysis.layer_responses`, ``which="branch"``) on
    fixed random uint8 images, for two published nets."""
    from statistics import median as _median

    from .analysis import layer_responses
    from .weights import published

    images = torch.randint(0, 256, (48, 3, 32, 32), dtype=torch.uint8, generator=torch.Generator().manual_seed(7))
    cases = []
    for name in ("resnet20", "resnet32"):
        net = published(name)
        cases.append(((name, images), _median(layer_responses(net.model, net.normalize(images), which="branch").values())))
    return cases


@exercise_check
def check_branch_response_median(fn) -> str:
    """``fn(net, images)`` (a :class:`~resnet_book.weights.Published` net and uint8 images) must
    return the median, over the net's residual blocks, of the standard deviation of each block's
    residual function ``F(x)`` (its last BN's output), in evaluation mode, on the images
    normalised as the net expects, as one float."""
    from statistics import median as _median

    from .analysis import layer_responses
    from .weights import published

    for (name, images), want in branch_response_cases():
        net = published(name)
        got = _call(fn, net, images.clone())
        if isinstance(got, torch.Tensor) and got.numel() == 1:
            got = got.item()
        _require_number(got, f"for {name}")
        if math.isclose(got, want, rel_tol=1e-4):
            continue
        x = net.normalize(images)
        every_layer = _median(layer_responses(net.model, x, which="bn").values())
        branches = list(layer_responses(net.model, x, which="branch").values())
        raw = _median(layer_responses(net.model, images.float(), which="branch").values())
        if math.isclose(got, every_layer, rel_tol=1e-4):
            hint = "you took every 3×3 layer's response; only the end of each residual branch, F(x), is asked"
        elif math.isclose(got, sum(branches) / len(branches), rel_tol=1e-4):
            hint = "you averaged over the blocks; the median is asked"
        elif math.isclose(got, raw, rel_tol=1e-4):
            hint = "the images must first be normalised as the net was trained (net.normalize)"
        else:
            hint = "check which layer you hook, that the net is in eval mode and that the std is over all entries"
        raise ExerciseError(f"for {name} your median is {_direction(got, want)}: {hint}")
    return (f"Correct: your measurement matches the library's on {len(branch_response_cases())} published nets "
            f"({len(branch_response_cases()[0][0][1])} images each).")


# --- chapter 3 ---------------------------------------------------------------------------------

@exercise_check
def check_path_counts(fn) -> str:
    """``fn(n)`` must return ``[c_0, ..., c_n]``: how many of the ``2**n`` paths through ``n``
    residual blocks pass through exactly ``k`` residual branches (Veit et al. 2016)."""
    from .analysis import path_length_counts

    ns = (0, 1, 2, 3, 10, 54)
    for n in ns:
        want = path_length_counts(n)
        got = _call(fn, n)
        if not isinstance(got, (list, tuple)) or not all(isinstance(v, int) and not isinstance(v, bool) for v in got):
            raise ExerciseError(f"return a list of ints; got {type(got).__name__} for n={n}")
        got = list(got)
        if len(got) != n + 1:
            raise ExerciseError(f"for n={n} return {n + 1} counts (k = 0..{n}); got {len(got)}")
        if sum(got) != sum(want):
            raise ExerciseError(f"for n={n} your counts add up to {_direction(sum(got), sum(want))} a total: every path "
                                "either passes through a block's branch or skips it, for each of the n blocks.")
        if got != want:
            k = next(i for i, (a, b) in enumerate(zip(got, want)) if a != b)
            raise ExerciseError(f"for n={n} the total is right but the counts are spread wrongly over the lengths "
                                f"(k={k} is {_direction(got[k], want[k])}). Hint: what does one more block do to a "
                                "path of length k?")
    longest = max(range(n + 1), key=want.__getitem__)
    return (f"Correct: your counts match the library's for n = {_and(ns)}; for {n} blocks the commonest path "
            f"passes through {longest} of them.")


def _require_intact(model, error) -> None:
    """After a learner's lesion function: no block left dropped (the test error back to the intact
    model's, which :func:`_lesion_case` makes 0)."""
    from .analysis import blocks

    if error(model) != 0.0 or any(b.dropped for _, b in blocks(model)):
        raise ExerciseError("the model is not intact after your function: drop blocks inside "
                            "`with analysis.lesion(model, [name]):` so that each is restored, even if "
                            "something fails.")


@exercise_check
def check_lesion_errors(fn) -> str:
    """``fn(model, error)`` must return ``{block name: error(model) with that block dropped}`` for
    every block :func:`resnet_book.analysis.lesion` can drop, and leave the model intact."""
    model, error, want = _lesion_case(14, seed=3)
    got = _call(fn, model, error)
    _require_intact(model, error)
    if not isinstance(got, dict):
        raise ExerciseError(f"return a dict {{block name: error}}; got {type(got).__name__}")
    if set(got) != set(want):
        missing, extra = sorted(set(want) - set(got)), sorted(set(got) - set(want))
        raise ExerciseError(f"wrong block names ({len(missing)} missing, unexpected {extra[:3]}). "
                            "Hint: analysis.droppable(model) lists the blocks that can be dropped.")
    wrong = [n for n in want if not (isinstance(got[n], (int, float)) and abs(got[n] - want[n]) <= 1e-9 + 1e-6 * abs(want[n]))]
    if wrong:
        raise ExerciseError(f"the error you report for {wrong[0]} is not the error with that block alone dropped "
                            f"({len(wrong)} of {len(want)} blocks are wrong): drop one block at a time, and measure "
                            "inside the `with`.")
    return f"Correct: {len(want)} blocks, each dropped alone."


@functools.lru_cache(maxsize=None)
def costliest_block_cases() -> list[tuple[str, int]]:
    """``(family, seed)`` of the networks :func:`check_costliest_block` tries: 20-layer ResNets and a
    20-layer plain net (whose downsampling blocks cannot be dropped), randomly initialised; seeds
    chosen so that the costliest block differs between them and is never simply the last."""
    return [("resnet", 2), ("resnet", 1), ("plain", 2)]


def _lesion_case(depth: int, *, seed: int, residual: bool = True):
    """A randomly initialised CIFAR network, its error function (how far its output moves from the
    intact network's on 4 random images) and the library's lesion costs, one block at a time."""
    from .analysis import droppable, lesion

    torch.manual_seed(seed)
    model = cifar_resnet(depth, residual=residual).eval()
    x = torch.randn(4, 3, 32, 32)
    with torch.no_grad():
        reference_out = model(x)

    def error(m) -> float:
        with torch.no_grad():
            return (m(x) - reference_out).pow(2).mean().item()  # 0 for the intact model

    costs = {}
    for name in droppable(model):
        with lesion(model, [name]):
            costs[name] = error(model)
    return model, error, costs


@exercise_check
def check_costliest_block(fn) -> str:
    """``fn(model, error)`` must return the name of the block whose removal alone raises
    ``error(model)`` the most, among the blocks :func:`resnet_book.analysis.lesion` can drop, and
    leave the model intact."""
    cases = costliest_block_cases()
    for family, seed in cases:
        model, error, costs = _lesion_case(20, seed=seed, residual=family == "resnet")
        got = _call(fn, model, error)
        _require_intact(model, error)
        if not isinstance(got, str):
            raise ExerciseError(f"return the block's name, a str such as 'layer1.0'; got {type(got).__name__}")
        if got not in costs:
            raise ExerciseError(f"{got!r} is not a block this {family} network can drop: choose among "
                                "analysis.droppable(model).")
        if costs[got] == min(costs.values()):
            raise ExerciseError(f"in the {family} network your block is the one whose removal costs the least: "
                                "you want the most.")
        if costs[got] < max(costs.values()):
            raise ExerciseError(f"in the {family} network another block's removal costs more than {got!r}'s: "
                                "measure every droppable block, each dropped alone, and keep the largest error.")
    return (f"Correct: in the {len(cases)} test networks your function finds the block whose removal costs the "
            "most.")


# --- chapter 4 ---------------------------------------------------------------------------------

BLOCK_KINDS = ("basic", "bottleneck", "bottleneck+projection")


def _block_for(kind: str, p: int) -> torch.nn.Module:
    """Paper Fig. 5: a basic block on p channels, a bottleneck on 4p channels (identity shortcut,
    or a 1x1 projection on its shortcut, as option C would put there)."""
    from .models.blocks import BasicBlock, Bottleneck, projection

    if kind == "basic":
        return BasicBlock(p, p)
    if kind == "bottleneck":
        return Bottleneck(4 * p, p)
    return Bottleneck(4 * p, p, downsample=projection(4 * p, 4 * p))


@functools.lru_cache(maxsize=None)
def block_weight_cases() -> list[tuple[tuple, int]]:
    """``((kind, p), convolution weights)`` for the blocks the check tries."""
    return [((kind, p), count_conv_weights(_block_for(kind, p))) for p in (1, 16, 64) for kind in BLOCK_KINDS]


@exercise_check
def check_block_weights(fn) -> str:
    """``fn(kind, p)`` must return the number of convolution weights of one block of paper Fig. 5
    at width ``p``: ``"basic"`` (two 3x3 on p channels), ``"bottleneck"`` (1x1 from 4p to p, 3x3,
    1x1 back to 4p) or ``"bottleneck+projection"`` (the same with a 1x1 projection shortcut)."""
    for (kind, p), want in block_weight_cases():
        got = _call(fn, kind, p)
        _require_int(got, f"kind={kind!r}, p={p}")
        if got == want:
            continue
        msg = f"for kind={kind!r}, p={p} your count is {_direction(got, want)}"
        doubled = _call(fn, kind, 2 * p)
        if isinstance(doubled, int) and doubled != 4 * got:
            hint = ("every layer's weights grow with the square of the width (twice p, four times the weights); "
                    "yours do not: is a channel count missing from one of the layers?")
        elif kind == "bottleneck+projection" and got == _call(fn, "bottleneck", p):
            hint = "this block's shortcut is not the identity: does your count include it?"
        else:
            hint = {
                "basic": "is every convolution of the block in your count, each with its own kernel?",
                "bottleneck": "recount the layers one at a time against the exercise's description of each.",
                "bottleneck+projection": "the bottleneck's part is counted wrong here, or the shortcut's: check "
                                         "the shortcut's layer against chapter 5's projection.",
            }[kind]
        raise ExerciseError(f"{msg}: {hint}")
    per_p2 = {kind: want for (kind, p), want in block_weight_cases() if p == 1}
    return (f"Correct: {per_p2['basic']}p² for the basic block, {per_p2['bottleneck']}p² for the bottleneck on four "
            f"times the width, and {per_p2['bottleneck+projection']}p² once its shortcut is a projection.")


_CONV_CASES = [(3, 64, 7, 2, 3, 224, 224), (64, 64, 3, 1, 1, 56, 56), (256, 64, 1, 1, 0, 56, 56),
               (256, 128, 1, 2, 0, 56, 56), (128, 128, 3, 2, 1, 56, 56), (16, 32, 3, 2, 1, 32, 32), (5, 7, 3, 1, 0, 9, 11)]


@functools.lru_cache(maxsize=None)
def conv_macs_cases() -> list[tuple[tuple, int]]:
    """``((conv, height, width), multiply-adds)`` from ``torch.utils.flop_counter``."""
    from .analysis import count_macs

    out = []
    for c_in, c_out, k, stride, pad, h, w in _CONV_CASES:
        conv = torch.nn.Conv2d(c_in, c_out, k, stride=stride, padding=pad, bias=False)
        out.append(((conv, h, w), count_macs(conv, torch.zeros(1, c_in, h, w))))
    return out


def _macs_variant(conv, h, w, *, stride=True, padding=True, in_channels=True) -> int:
    """Multiply-adds with one ingredient left out: the mistakes the check recognises."""
    (kh, kw), (sh, sw), (ph, pw) = conv.kernel_size, conv.stride, conv.padding
    sh, sw = (sh, sw) if stride else (1, 1)
    ph, pw = (ph, pw) if padding else (0, 0)
    positions = ((h + 2 * ph - kh) // sh + 1) * ((w + 2 * pw - kw) // sw + 1)
    return conv.out_channels * (conv.in_channels if in_channels else 1) * kh * kw * positions


@exercise_check
def check_conv_macs(fn) -> str:
    """``fn(conv, height, width)`` must return the multiply-adds of ``conv`` (an ``nn.Conv2d``
    without groups) applied to one image of ``height`` x ``width`` pixels."""
    for (conv, h, w), want in conv_macs_cases():
        got = _call(fn, conv, h, w)
        _require_int(got, f"for {conv} on {h}x{w}")
        if got == want:
            continue
        strided, padded = conv.stride != (1, 1), conv.padding != (0, 0)
        if strided and got in (_macs_variant(conv, h, w, stride=False), conv.weight.numel() * h * w):
            hint = "your count does not see the stride."
        elif padded and got == _macs_variant(conv, h, w, padding=False):
            hint = "your count does not see the padding."
        elif got == _macs_variant(conv, h, w, in_channels=False):
            hint = "your count treats the layer as if it had one input channel."
        elif got == conv.weight.numel():
            hint = "that is the number of the layer's weights, not of the multiply-adds it performs on an image."
        else:
            hint = ("none of the usual mistakes: compare your function with analysis.count_macs on a small layer of "
                    "your own, changing one of kernel, stride, padding and channels at a time.")
        raise ExerciseError(f"for {conv} on {h}x{w} your count is {_direction(got, want)}: {hint}")
    return (f"Correct: your count agrees with torch.utils.flop_counter on all {len(conv_macs_cases())} layers, "
            "strided ones included.")


# --- chapter 5 ---------------------------------------------------------------------------------

@exercise_check
def check_zero_pad_shortcut(fn) -> str:
    """``fn(x, out_channels, stride)`` must compute option A's shortcut: ``x`` subsampled by taking
    every ``stride``-th pixel, with zero channels appended up to ``out_channels``."""
    from .models.blocks import ShortcutA

    torch.manual_seed(0)
    for c_in, c_out, stride, size in ((16, 32, 2, 8), (32, 64, 2, 7), (16, 16, 1, 5), (3, 8, 2, 6)):
        x = torch.randn(2, c_in, size, size)
        want = ShortcutA(c_in, c_out, stride)(x)
        got = _call(fn, x.clone(), c_out, stride)
        case = f"for input {tuple(x.shape)}, out_channels={c_out}, stride={stride}"
        if not isinstance(got, torch.Tensor):
            raise ExerciseError(f"return a tensor; got {type(got).__name__}")
        if got.dim() != 4 or got.shape[0] != x.shape[0]:
            raise ExerciseError(f"{case}: return a batch shaped N x C x H x W with the input's N; yours has shape "
                                f"{tuple(got.shape)}.")
        if got.shape[1] != want.shape[1]:
            raise ExerciseError(f"{case}: your result has {got.shape[1]} channels; it must have out_channels.")
        if got.shape[2:] != want.shape[2:]:
            raise ExerciseError(f"{case}: your result's height and width are {_direction(got.shape[2], want.shape[2])}"
                                ": keep every stride-th pixel, starting with the first.")
        if torch.equal(got, want):
            continue
        if torch.allclose(got[:, :c_in], want[:, :c_in]):
            hint = "the first channels are right, but the new ones must be exactly zero (option A adds no parameters)."
        elif torch.allclose(got[:, c_out - c_in:], want[:, :c_in]):
            hint = "the zeros go after the input's channels, not before (channel i of the input stays channel i)."
        elif stride > 1 and torch.allclose(got[:, :c_in], torch.nn.functional.avg_pool2d(x, stride, ceil_mode=True)):
            hint = "the paper subsamples (keeps single pixels); it does not average."
        else:
            hint = ("compare your result with the input: which channels should be copies of it, which should be zero, "
                    "and which pixels are kept?")
        raise ExerciseError(f"{case} the values are wrong: {hint}")
    return "Correct: identical to the library's ShortcutA, for strided and unstrided blocks."


@functools.lru_cache(maxsize=None)
def _projection_parts(n: int, option: str) -> tuple[int, int, int]:
    """(convolution weights, BN parameters, output channels) of option ``option``'s projections."""
    model = cifar_resnet(6 * n + 2, shortcut=option)
    conv = bn = channels = 0
    for m in model.modules():
        if isinstance(m, torch.nn.Sequential) and len(m) == 2 and isinstance(m[0], torch.nn.Conv2d):
            conv += m[0].weight.numel()
            bn += sum(p.numel() for p in m[1].parameters())
            channels += m[0].out_channels
    return conv, bn, channels


@functools.lru_cache(maxsize=None)
def shortcut_parameter_cases() -> list[tuple[tuple, int]]:
    """``((n, option), parameters that option adds to the CIFAR ResNet of depth 6n+2 over A)``."""
    out = []
    for n in (1, 3, 5, 9):
        base = count_parameters(cifar_resnet(6 * n + 2, shortcut="A"))
        out += [((n, o), count_parameters(cifar_resnet(6 * n + 2, shortcut=o)) - base) for o in ("A", "B", "C")]
    return out


@exercise_check
def check_shortcut_parameters(fn) -> str:
    """``fn(n, option)`` must return how many parameters options ``"B"`` and ``"C"`` add to the
    CIFAR ResNet of depth ``6n + 2`` compared with option A (1x1 convolution without bias plus BN
    with gamma and beta for each projection)."""
    cases = shortcut_parameter_cases()
    want_of = dict(cases)
    for (n, option), want in cases:
        got = _call(fn, n, option)
        _require_int(got, f"n={n}, option {option}")
        if got == want:
            continue
        msg = f"for n={n} (depth {6 * n + 2}), option {option} your count is {_direction(got, want)}"
        if option == "A":
            raise ExerciseError(f"{msg}: option A is the network you compare with.")
        conv, bn, channels = _projection_parts(n, option)
        other = 3 if n == 1 else 1
        if got == conv:
            hint = "did you count the BN after each projection (a scale and a shift per channel)?"
        elif got == conv + 2 * bn:
            hint = "BN's running mean and variance are buffers, not parameters."
        elif got == want + channels:
            hint = "the projections' convolutions have no bias."
        elif option == "B" and got == want_of[(n, "C")]:
            hint = "B projects only where the shape changes, not on every block."
        elif option == "B":
            hint = ("B projects only where the shape changes; count its projections, and for each one the "
                    "channels going in and out.")
        elif got - _call(fn, other, option) == want - want_of[(other, option)]:
            hint = ("what each step of n adds is right, so the projections that do not repeat are counted wrong: "
                    "those of the first block of each stage, where the width may change.")
        else:
            hint = ("what each step of n adds is wrong: in C every block of a stage has a projection, including "
                    "those that keep the width.")
        raise ExerciseError(f"{msg}: {hint}")
    slope = (want_of[(3, "C")] - want_of[(1, "C")]) // 2
    offset = want_of[(1, "C")] - slope
    b_adds = {want for (_, option), want in cases if option == "B"}
    b_text = f"{b_adds.pop():,} parameters at every depth" if len(b_adds) == 1 else "a number that grows with depth"
    return f"Correct: B adds {b_text}; C adds {slope:,}n {'-' if offset < 0 else '+'} {abs(offset):,}."


def _padded_zero_reference(model, x, block: str) -> dict[str, float]:
    """The share of exactly-zero output entries of ``block`` over ``x``, in its padded channels and
    in its copied ones (:func:`analysis.padded_channel_stats`), and over all its channels."""
    from .analysis import padded_channel_stats

    stats = padded_channel_stats(model, [x])[block]
    n = {g: len(stats["channels"][g]) for g in ("padded", "copied")}
    shares = {g: stats[g]["out_zero_share"] for g in n}
    shares["all"] = sum(shares[g] * n[g] for g in n) / sum(n.values())
    return shares


@functools.lru_cache(maxsize=None)
def _padded_zero_models() -> dict[str, torch.nn.Module]:
    """The networks the check measures: a trained ResNet-20 (published weights) if its file is here,
    and freshly initialised option-A ResNet-20s, one with zero-initialised branches."""
    from .weights import published

    torch.manual_seed(0)
    models = {"a new ResNet-20": cifar_resnet(20).eval(),
              "a new ResNet-20 with zero-initialised branches": cifar_resnet(20, zero_init_residual=True).eval()}
    try:
        models["the trained ResNet-20"] = published("resnet20").model
    except (FileNotFoundError, OSError, ValueError):
        pass
    return models


@functools.lru_cache(maxsize=None)
def padded_zero_cases() -> list[tuple[tuple[str, str], float]]:
    """``((model name, block), share of exact zeros in the padded channels)`` over a fixed batch."""
    x = _padded_zero_input()
    return [((name, block), _padded_zero_reference(model, x, block)["padded"])
            for name, model in _padded_zero_models().items() for block in ("layer2.0", "layer3.0")]


@functools.lru_cache(maxsize=None)
def _padded_zero_input() -> torch.Tensor:
    return torch.randn(16, 3, 32, 32, generator=torch.Generator().manual_seed(0))


@exercise_check
def check_padded_zero_share(fn) -> str:
    """``fn(model, x, block)`` must return the share (a float from 0 to 1) of the entries of the
    output of the block named ``block`` of ``model``, in the channels its option-A shortcut fills
    with zeros, that are exactly 0 on the images ``x`` (eval mode)."""
    x, models = _padded_zero_input(), _padded_zero_models()
    for (name, block), want in padded_zero_cases():
        model = models[name]
        yours = copy.deepcopy(model)  # the cached model stays as the cases measured it, whatever fn does
        got = _call(fn, yours, x.clone(), block)
        if isinstance(got, torch.Tensor) and got.numel() == 1:
            got = got.item()
        _require_number(got, f"{name}, {block}")
        if not 0 <= got <= 1:
            raise ExerciseError(f"for {name}, {block}: a share is a number from 0 to 1 (not a percentage or a count).")
        if math.isclose(got, want, rel_tol=1e-5, abs_tol=1e-7):
            continue
        if yours.training:
            raise ExerciseError("leave the model in eval mode: your function switched it to training mode.")
        ref = _padded_zero_reference(model, x, block)
        if math.isclose(got, ref["copied"], rel_tol=1e-5, abs_tol=1e-7):
            hint = "those are the channels the shortcut copies from the block's input, not the padded ones."
        elif math.isclose(got, ref["all"], rel_tol=1e-5, abs_tol=1e-7):
            hint = "you counted over all of the block's channels; count only those the shortcut pads with zeros."
        elif math.isclose(got, 1 - want, rel_tol=1e-5, abs_tol=1e-7):
            hint = "you counted the entries that are not zero."
        else:
            hint = "check which tensor you read (the block's output, after its last ReLU) and which channels you count."
        raise ExerciseError(f"for {name}, {block} your share is {_direction(got, want)}: {hint}")
    names = _and(sorted({name for (name, _), _ in padded_zero_cases()}))
    return f"Correct: your shares agree with the library's measurement on {names}."


# --- chapter 6 ---------------------------------------------------------------------------------

@functools.lru_cache(maxsize=None)
def paper_schedule_cases() -> list[tuple[tuple, float]]:
    """``((iteration, warming_up), learning rate)`` of the paper's ResNet-110 recipe."""
    from .train import BUDGETS, TrainConfig, learning_rate

    config, budget = TrainConfig(model="resnet110", budget="paper"), BUDGETS["paper"]
    steps = [(s, False) for s in (0, 1, 400, 31_999, 32_000, 40_000, 47_999, 48_000, 63_999)] + [(0, True), (350, True)]
    return [((s, w), learning_rate(config, budget, s, w)) for s, w in steps]


@exercise_check
def check_paper_schedule(fn) -> str:
    """``fn(iteration, warming_up)`` must return the learning rate of the paper's CIFAR-10 recipe
    for ResNet-110 (Sec. 4.2), with its warm-up."""
    cases = paper_schedule_cases()
    want_of = dict(cases)
    for (step, warming_up), want in cases:
        got = _call(fn, step, warming_up)
        _require_number(got, f"iteration {step:,}, warming_up={warming_up}")
        if abs(got - want) <= 1e-12:
            continue
        msg = f"at iteration {step:,} (warming_up={warming_up}) your rate is {_direction(got, want)}"
        if warming_up:
            hint = ("while warming up the rate does not depend on the iteration: paper Sec. 4.2 says what ResNet-110 "
                    "uses until the training error is below 80%.")
        elif step in (31_999, 47_999) and abs(got - want_of[(step + 1, False)]) <= 1e-12:
            hint = f"your rate drops one iteration too early: iterations count from 0, and {step:,} is the last one before the drop."
        elif step in (32_000, 48_000) and abs(got - want_of[(step - 1, False)]) <= 1e-12:
            hint = f"your rate drops one iteration too late: {step:,} is the first iteration after the drop."
        else:
            hint = "paper Sec. 4.2 gives the starting rate, when it is divided, and by how much."
        raise ExerciseError(f"{msg}: {hint}")
    return "Correct: your schedule matches the library's for every iteration tested, warm-up included."


@functools.lru_cache(maxsize=None)
def training_epoch_cases() -> list[tuple[tuple, float]]:
    """``((budget,), passes over the training images)`` for every budget."""
    from .train import BUDGETS

    return [((b,), b.iterations * b.batch_size / (b.train_size or 50_000)) for b in BUDGETS.values()]


@exercise_check
def check_training_epochs(fn) -> str:
    """``fn(budget)`` must return how many passes over its training images a budget makes."""
    for (budget,), want in training_epoch_cases():
        got = _call(fn, budget)
        _require_number(got, f"the {budget.name!r} budget")
        if abs(got - want) <= 1e-9 * want:
            continue
        images = budget.train_size or 50_000
        if abs(got * budget.batch_size - want) <= 1e-9 * want:
            hint = "each iteration shows a whole batch of images, not one."
        elif budget.train_size is None:
            hint = "train_size None means the paper's budget trains on every training image of CIFAR-10."
        elif abs(got * images / budget.batch_size - want) <= 1e-9 * want:
            hint = "count images shown, not iterations, and divide by the images available."
        else:
            hint = "how many images does the budget show in all, and how many different images does it have?"
        raise ExerciseError(f"for the {budget.name!r} budget your number is {_direction(got, want)}: {hint}")
    epochs = _and(f"{b.name} {want:g}" for (b,), want in training_epoch_cases())
    images = {b.name: b.iterations * b.batch_size for (b,), _ in training_epoch_cases()}
    return (f"Correct: {epochs} epochs; the cpu budget shows {images['cpu'] / images['paper']:.2%} as many images "
            "as the paper's.")


# --- build it: blocks and a network from nn layers ---------------------------------------------

def _same_module(got, ref: torch.nn.Module, x: torch.Tensor, what: str) -> None:
    """``got`` must be an ``nn.Module`` with ``ref``'s state-dict keys and shapes, load ``ref``'s
    weights and statistics, and then compute what ``ref`` computes (eval mode, and in train mode
    the same output and the same updated BN statistics)."""
    if not isinstance(got, torch.nn.Module):
        raise ExerciseError(f"{what}: return an nn.Module; got {type(got).__name__}")
    ref_sd, got_sd = ref.state_dict(), got.state_dict()
    missing, extra = [k for k in ref_sd if k not in got_sd], [k for k in got_sd if k not in ref_sd]
    if missing or extra:
        raise ExerciseError(f"{what}: the state-dict keys differ from the library's ({len(missing)} missing, e.g. "
                            f"{missing[:2]}; {len(extra)} unexpected, e.g. {extra[:2]}). Name the layers as the "
                            "exercise says (torchvision's names), and give convolutions no bias: BN follows them.")
    wrong = [k for k in ref_sd if got_sd[k].shape != ref_sd[k].shape]
    if wrong:
        raise ExerciseError(f"{what}: {wrong[0]} has the wrong shape ({len(wrong)} tensors in all): check that "
                            "layer's input and output channels and its kernel size.")
    n_got, n_ref = count_parameters(got), count_parameters(ref)
    if n_got != n_ref:
        raise ExerciseError(f"{what}: your module has parameters {_direction(n_got, n_ref)} in number beyond its state "
                            "dict's; every layer must be registered once (no unused layers).")
    got.load_state_dict(ref_sd)
    for mode in ("eval", "train"):
        ref.train(mode == "train")
        got.train(mode == "train")
        with torch.no_grad():
            want = ref(x.clone())
            out = _call(got, x.clone(), failed=f"{what}: your forward pass fails on an input of shape "
                        f"{tuple(x.shape)} ({{error}}; traceback above): check the strides, the channels and the shortcut.")
        if not isinstance(out, torch.Tensor) or out.shape != want.shape:
            raise ExerciseError(f"{what}: for an input of shape {tuple(x.shape)} the output's shape is wrong "
                                f"({tuple(getattr(out, 'shape', ()))}): check the strides and the shortcut.")
        if not torch.allclose(out, want, rtol=1e-4, atol=1e-5):
            raise ExerciseError(f"{what}: with the library's weights your output differs ({mode} mode): check the "
                                "order of the layers, where the ReLUs are (one after the addition), the strides and "
                                "paddings, and the shortcut.")
        if mode == "train":
            stats = [k for k, v in ref.state_dict().items() if "running" in k and not torch.allclose(got.state_dict()[k], v)]
            if stats:
                raise ExerciseError(f"{what}: in train mode BN's running statistics update differently ({stats[0]}): "
                                    "is every BN layer used exactly once, in its place?")
    ref.eval()
    got.eval()


@exercise_check
def check_basic_block(cls) -> str:
    """``cls(in_channels, out_channels, stride)`` must build a basic residual block from ``nn``
    layers, with the library's (torchvision's) layer names, an identity shortcut when the shape is
    kept and option A's (``ShortcutA``, named ``downsample``) when it changes."""
    from .models import BasicBlock
    from .models.blocks import make_shortcut

    torch.manual_seed(4)
    for c_in, c_out, stride in ((16, 16, 1), (16, 32, 2), (32, 64, 2)):
        ref = BasicBlock(c_in, c_out, stride, make_shortcut("A", c_in, c_out, stride))
        with torch.no_grad():
            for m in ref.modules():
                if isinstance(m, torch.nn.BatchNorm2d):  # non-trivial BN, so a missing BN shows
                    m.weight.uniform_(0.5, 1.5), m.bias.uniform_(-0.5, 0.5)
                    m.running_mean.uniform_(-0.5, 0.5), m.running_var.uniform_(0.5, 2)
        got = _call(cls, c_in, c_out, stride)
        _same_module(got, ref, torch.randn(4, c_in, 8, 8), f"{cls.__name__}({c_in}, {c_out}, stride={stride})")
    return "Correct: your block matches the library's BasicBlock, weights, outputs and BN statistics."


@exercise_check
def check_bottleneck_block(cls) -> str:
    """``cls(in_channels, width, stride)`` must build a bottleneck block (1x1 to ``width``, 3x3 with
    the stride, 1x1 to ``4 * width``) with a projection shortcut (``downsample``: 1x1 convolution +
    BN) exactly where the shape changes, as torchvision's ResNet-50 has it."""
    from .models.blocks import Bottleneck, projection

    torch.manual_seed(5)
    for c_in, width, stride in ((64, 16, 1), (64, 32, 2), (16, 4, 1)):
        changes = stride != 1 or c_in != 4 * width
        ref = Bottleneck(c_in, width, stride, projection(c_in, 4 * width, stride) if changes else None)
        got = _call(cls, c_in, width, stride)
        _same_module(got, ref, torch.randn(3, c_in, 8, 8), f"{cls.__name__}({c_in}, {width}, stride={stride})")
    return "Correct: your bottleneck matches the library's (and torchvision's) block, shortcut included."


@exercise_check
def check_resnet20(fn) -> str:
    """``fn()`` must return a CIFAR ResNet-20 assembled from the learner's blocks that loads the
    library's ``cifar_resnet(20)`` state dict and computes the same logits."""
    torch.manual_seed(6)
    ref = cifar_resnet(20)
    got = _call(fn)
    _same_module(got, ref, torch.randn(4, 3, 32, 32), "your ResNet-20")
    return "Correct: your ResNet-20 loads the library's weights and gives identical outputs."


# --- chapter 6: the trained networks ------------------------------------------------------------

@functools.lru_cache(maxsize=None)
def jpeg_round_trip_cases() -> list[tuple[tuple, torch.Tensor]]:
    """((images, quality), images after the library's round trip): noise and smooth images, two qualities."""
    from .data import jpeg_round_trip

    g = torch.Generator().manual_seed(6)
    noise = torch.randint(0, 256, (3, 3, 32, 32), generator=g, dtype=torch.uint8)
    ramp = torch.linspace(0, 255, 32).round().to(torch.uint8)
    smooth = torch.stack([ramp.view(1, 32).expand(32, 32), ramp.view(32, 1).expand(32, 32),
                          ramp.flip(0).view(1, 32).expand(32, 32)]).unsqueeze(0)
    images = torch.cat([noise, smooth])
    return [((images, q), jpeg_round_trip(images, q)) for q in (75, 30)]


@exercise_check
def check_jpeg_round_trip(fn) -> str:
    """``fn(images, quality)`` must return ``images`` (uint8, N x 3 x H x W) after each has been
    encoded as JPEG by Pillow at ``quality`` and decoded again."""
    cases = jpeg_round_trip_cases()
    for (images, quality), want in cases:
        got = _call(fn, images.clone(), quality)
        where = f"for {len(images)} images at quality {quality}"
        if not isinstance(got, torch.Tensor):
            raise ExerciseError(f"return a torch tensor; got {type(got).__name__} ({where})")
        if got.dtype != torch.uint8:
            raise ExerciseError(f"return uint8 pixels (0 to 255), as the input; got {got.dtype} ({where})")
        if tuple(got.shape) != tuple(images.shape):
            hint = (": Pillow works on height x width x 3 arrays; give the channels their first place back"
                    if got.dim() == 4 and got.shape[-1] == 3 else "")
            raise ExerciseError(f"return the input's shape, images x channels x height x width; got "
                                f"{tuple(got.shape)} ({where}){hint}")
        if torch.equal(got, want):
            continue
        if torch.equal(got, images):
            raise ExerciseError(f"your images come back unchanged ({where}): each must be encoded as JPEG and decoded")
        if any(torch.equal(got, other) for (_, q), other in cases if q != quality):
            raise ExerciseError(f"your round trip does not use the quality it is given ({where})")
        raise ExerciseError(f"your images differ from a JPEG round trip through Pillow at that quality ({where}): "
                            "encode each image on its own, as an RGB image of height x width x 3 uint8 values, "
                            "and decode it back to the input's layout")
    return (f"Correct: your round trip matches Pillow's JPEG encoding and decoding on {len(cases[0][0][0])} test "
            f"images at qualities {_and(q for (_, q), _ in cases)}.")


def jpeg_cost_table(round_trip, *, net: str = "resnet20", n_images: int = 1000, quality: int = 75, data=None):
    """A published, fully trained network (third-party weights, :func:`resnet_book.weights.published`)
    on the first ``n_images`` test images of ``data`` (default: ``RESNET_BOOK_DATA``), as stored and
    after ``round_trip(images, quality)``: a :class:`~resnet_book.tables.Table` of the two test
    errors and their difference."""
    from .data import load_cifar10
    from .tables import Table
    from .train import error_rate
    from .weights import published

    trained = published(net)
    data = data if data is not None else load_cifar10(progress=False)
    images, labels = data.test_images[:n_images], data.test_labels[:n_images]
    errors = [100 * error_rate(trained.model, x, labels, trained.normalize)
              for x in (images, _call(round_trip, images, quality))]
    rows = [["as stored", f"{errors[0]:.1f}"], [f"after your JPEG round trip (quality {quality})", f"{errors[1]:.1f}"],
            ["difference (points)", f"{errors[1] - errors[0]:+.1f}"]]
    return Table(["test images", "test error (%)"], rows, align="lr",
                 caption=f"ResNet-{trained.depth}, {trained.credit}: the first {len(labels):,} test images of "
                         f"{data.source}")
