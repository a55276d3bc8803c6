"""Auto-checks for the book's code exercises.

Each ``check_*`` function takes the learner's answer, compares it with the library's own
implementation, and either returns a short confirmation or raises :class:`ExerciseError` whose
message says what is wrong and gives a hint -- never the solution.  An answer that is still the
student template (``raise NotImplementedError``) gets a message that says so.
"""
from __future__ import annotations

import copy

import torch

from .analysis import count_conv_weights, count_parameters
from .models import PlainBlock, cifar_resnet
from .models.surgery import make_identity_


class ExerciseError(AssertionError):
    """A wrong answer, with a hint."""


def _call(fn, *args):
    try:
        return fn(*args)
    except NotImplementedError as err:
        raise ExerciseError("This exercise is not implemented yet: replace `raise NotImplementedError` with your "
                            "answer and run the cell again.") from err


def _expect_int(got, want: int, where: str, hint: str) -> None:
    """One wrong-answer message for the counting exercises: the type first, then the difference."""
    if isinstance(got, bool) or not isinstance(got, int):
        raise ExerciseError(f"return an int; got {type(got).__name__} ({where})")
    if got != want:
        raise ExerciseError(f"{where}: you returned {got:,}, which is off by {got - want:+,}. Hint: {hint}")


def check_cifar_parameter_count(fn) -> str:
    """``fn(n)`` must return the parameter count of the CIFAR plain net with ``6n + 2`` layers
    (convolutions without bias, BN with gamma and beta, a 64 -> 10 fully-connected layer)."""
    for n in (1, 3, 9, 18):
        want = count_parameters(cifar_resnet(6 * n + 2, residual=False))
        _expect_int(_call(fn, n), want, f"for n={n} (depth {6 * n + 2})",
                    "count per stage: the first block of stages 2 and 3 changes the width, the others do not. "
                    "Each 3x3 convolution has in*out*9 weights and each BN 2*channels parameters; "
                    "do not forget the first convolution, its BN, and the classifier's bias.")
    return "Correct: your formula matches the library for depths 8, 20, 56 and 110."


def check_identity_block(fn) -> str:
    """``fn(block)`` must modify a shape-keeping :class:`PlainBlock` in place so that, in eval
    mode, it returns its (non-negative) input unchanged."""
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
    err = (y - x).abs().max().item()
    if err > 1e-5:
        reference = make_identity_(copy.deepcopy(block))
        for name in ("conv1", "conv2"):
            if not torch.equal(getattr(block, name).weight, getattr(reference, name).weight):
                raise ExerciseError(f"{name} is not an identity convolution yet (max output error {err:.3g}). "
                                    "Hint: torch.nn.init.dirac_ makes a kernel that copies channel i to channel i.")
        raise ExerciseError(f"the convolutions are right, but BN still changes the signal (max error {err:.3g}). "
                            "Hint: in eval mode BN computes gamma * (x - running_mean) / sqrt(running_var + eps) + beta.")
    return f"Correct: the block returns its input (max difference {err:.1e})."


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
        return "Correct: relu(F(x) + x)."
    with torch.no_grad():
        f = block.residual_branch(x)
    if torch.allclose(got, f + x, atol=1e-6):
        raise ExerciseError("Close: the sum is right, but the block applies a ReLU after the addition (paper Fig. 2).")
    if torch.allclose(got, torch.relu(f), atol=1e-6):
        raise ExerciseError("That is the plain block's output relu(F(x)): the shortcut is missing.")
    raise ExerciseError("The output differs from relu(F(x) + x). Hint: block.residual_branch(x) computes F(x).")


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
    want = sorted(f"{name}.bn2.weight" for name, _ in blocks(model))
    if changed == want and all(torch.count_nonzero(after[k]) == 0 for k in want):
        return "Correct: every residual branch starts at zero, so every block starts as the identity."
    extra = [k for k in changed if k not in want]
    missing = [k for k in want if k not in changed or torch.count_nonzero(after[k]) != 0]
    msg = []
    if missing:
        msg.append(f"not zeroed: {missing[:3]}{'...' if len(missing) > 3 else ''} (the BN that ends each branch is bn2)")
    if extra:
        msg.append(f"changed but should not be: {extra[:3]}{'...' if len(extra) > 3 else ''}")
    raise ExerciseError("; ".join(msg))


def check_path_counts(fn) -> str:
    """``fn(n)`` must return ``[c_0, ..., c_n]``: how many of the ``2**n`` paths through ``n``
    residual blocks pass through exactly ``k`` residual branches (Veit et al. 2016)."""
    from .analysis import path_length_counts

    for n in (0, 1, 2, 3, 10, 54):
        want = path_length_counts(n)
        got = _call(fn, n)
        if not isinstance(got, (list, tuple)) or not all(isinstance(v, int) for v in got):
            raise ExerciseError(f"return a list of ints; got {type(got).__name__} for n={n}")
        got = list(got)
        if len(got) != n + 1:
            raise ExerciseError(f"for n={n} return {n + 1} counts (k = 0..{n}); got {len(got)}")
        if sum(got) != 2 ** n:
            raise ExerciseError(f"for n={n} your counts add up to {sum(got):,}, but there are 2**{n} = {2 ** n:,} "
                                "paths: each block is either passed through its branch or skipped.")
        if got != want:
            raise ExerciseError(f"for n={n} the counts add up to 2**n but are wrong (e.g. k=1: {got[min(1, n)]}). "
                                "Hint: a new block turns every path of length k into one of length k (skip) and "
                                "one of length k+1 (branch).")
    return "Correct: the counts are the binomial coefficients C(n, k); for 54 blocks most paths use about 27."


def check_lesion_errors(fn) -> str:
    """``fn(model, error)`` must return ``{block name: error(model) with that block dropped}`` for
    every block :func:`resnet_book.analysis.lesion` can drop, and leave the model intact."""
    from .analysis import blocks, droppable, lesion

    torch.manual_seed(3)
    model = cifar_resnet(14).eval()
    x = torch.randn(4, 3, 32, 32)
    with torch.no_grad():
        reference_out = model(x)

    def error(m) -> float:
        with torch.no_grad():
            return (m(x) - reference_out).pow(2).mean().item()  # 0 for the intact model

    want = {}
    for name in droppable(model):
        with lesion(model, [name]):
            want[name] = error(model)
    got = _call(fn, model, error)
    if error(model) != 0.0 or any(b.dropped for _, b in blocks(model)):
        raise ExerciseError("the model is not intact after your function: use `with analysis.lesion(model, [name]):` "
                            "so every block is restored, even if something fails.")
    if not isinstance(got, dict):
        raise ExerciseError(f"return a dict {{block name: error}}; got {type(got).__name__}")
    if set(got) != set(want):
        missing, extra = sorted(set(want) - set(got)), sorted(set(got) - set(want))
        raise ExerciseError(f"wrong block names (missing {missing[:3]}, unexpected {extra[:3]}). "
                            "Hint: analysis.droppable(model) lists the blocks that can be dropped.")
    wrong = [n for n in want if not abs(got[n] - want[n]) <= 1e-9 + 1e-6 * abs(want[n])]
    if wrong:
        raise ExerciseError(f"the error for {wrong[0]} is {got[wrong[0]]:.4g}, expected {want[wrong[0]]:.4g}: "
                            "drop one block at a time, and measure inside the `with`.")
    return f"Correct: {len(want)} blocks, each dropped alone."


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


def check_block_weights(fn) -> str:
    """``fn(kind, p)`` must return the number of convolution weights of one block of paper Fig. 5
    at width ``p``: ``"basic"`` (two 3x3 on p channels), ``"bottleneck"`` (1x1 from 4p to p, 3x3,
    1x1 back to 4p) or ``"bottleneck+projection"`` (the same with a 1x1 projection shortcut)."""
    for p in (1, 16, 64):
        for kind in BLOCK_KINDS:
            want = count_conv_weights(_block_for(kind, p))
            hint = {
                "basic": "two 3x3 convolutions from p to p channels: each has p * p * 3 * 3 weights.",
                "bottleneck": "the block's input and output have 4p channels; count the 1x1 reduce (4p -> p), "
                              "the 3x3 (p -> p) and the 1x1 restore (p -> 4p).",
                "bottleneck+projection": "the bottleneck's weights plus a 1x1 convolution on the shortcut, "
                                         "from 4p to 4p channels.",
            }[kind]
            _expect_int(_call(fn, kind, p), want, f"for kind={kind!r}, p={p}", hint)
    return ("Correct: 18p² for the basic block, 17p² for the bottleneck on four times the width, and 33p² once "
            "its shortcut is a projection.")


def check_conv_macs(fn) -> str:
    """``fn(conv, height, width)`` must return the multiply-adds of ``conv`` (an ``nn.Conv2d``
    without groups) applied to one image of ``height`` x ``width`` pixels."""
    from .analysis import count_macs

    cases = [(3, 64, 7, 2, 3, 224, 224), (64, 64, 3, 1, 1, 56, 56), (256, 64, 1, 1, 0, 56, 56),
             (256, 128, 1, 2, 0, 56, 56), (128, 128, 3, 2, 1, 56, 56), (16, 32, 3, 2, 1, 32, 32), (5, 7, 3, 1, 0, 9, 11)]
    for c_in, c_out, k, stride, pad, h, w in cases:
        conv = torch.nn.Conv2d(c_in, c_out, k, stride=stride, padding=pad, bias=False)
        want = count_macs(conv, torch.zeros(1, c_in, h, w))
        got = _call(fn, conv, h, w)
        if stride > 1 and got == want * stride * stride:
            hint = "you counted every input position: with a stride, the output is smaller than the input."
        else:
            hint = ("one multiply-add per weight per output position: out_channels * in_channels * kernel "
                    "height * kernel width * output height * output width, with output size "
                    "(size + 2*padding - kernel) // stride + 1.")
        _expect_int(got, want, f"for {conv} on {h}x{w}", hint)
    return "Correct: your count agrees with torch.utils.flop_counter on all seven layers, strided ones included."


def check_zero_pad_shortcut(fn) -> str:
    """``fn(x, out_channels, stride)`` must compute option A's shortcut: ``x`` subsampled by taking
    every ``stride``-th pixel, with zero channels appended up to ``out_channels``."""
    from .models.blocks import ShortcutA

    torch.manual_seed(0)
    for c_in, c_out, stride, size in ((16, 32, 2, 8), (32, 64, 2, 7), (16, 16, 1, 5), (3, 8, 2, 6)):
        x = torch.randn(2, c_in, size, size)
        want = ShortcutA(c_in, c_out, stride)(x)
        got = _call(fn, x.clone(), c_out, stride)
        if not isinstance(got, torch.Tensor):
            raise ExerciseError(f"return a tensor; got {type(got).__name__}")
        if got.shape != want.shape:
            raise ExerciseError(f"for input {tuple(x.shape)}, out_channels={c_out}, stride={stride} the shortcut must "
                                f"have shape {tuple(want.shape)}; yours has {tuple(got.shape)}.")
        if torch.equal(got, want):
            continue
        if torch.allclose(got[:, :c_in], want[:, :c_in]):
            hint = "the first channels are right, but the new ones must be exactly zero (option A adds no parameters)."
        elif torch.allclose(got[:, c_out - c_in:], want[:, :c_in]):
            hint = "the zeros go after the input's channels, not before (channel i of the input stays channel i)."
        elif stride > 1 and torch.allclose(got[:, :c_in], torch.nn.functional.avg_pool2d(x, stride, ceil_mode=True)):
            hint = "the paper subsamples (takes every stride-th pixel, x[:, :, ::s, ::s]); it does not average."
        else:
            hint = "take x[:, :, ::stride, ::stride], then append out_channels - in_channels zero channels."
        raise ExerciseError(f"for input {tuple(x.shape)}, out_channels={c_out}, stride={stride} the values are wrong: {hint}")
    return "Correct: identical to the library's ShortcutA, for strided and unstrided blocks."


def check_shortcut_parameters(fn) -> str:
    """``fn(n, option)`` must return how many parameters options ``"B"`` and ``"C"`` add to the
    CIFAR ResNet of depth ``6n + 2`` compared with option A (1x1 convolution without bias plus BN
    with gamma and beta for each projection)."""
    from .analysis import count_parameters

    for n in (1, 3, 5, 9):
        base = count_parameters(cifar_resnet(6 * n + 2, shortcut="A"))
        for option in ("A", "B", "C"):
            want = count_parameters(cifar_resnet(6 * n + 2, shortcut=option)) - base
            hint = {
                "A": "option A is the reference: it adds nothing.",
                "B": "B projects only where the shape changes: once into stage 2 (16 -> 32) and once into "
                     "stage 3 (32 -> 64); each projection is a 1x1 convolution plus a BN (2 parameters per channel).",
                "C": "C puts a projection on every block: n per stage; in each stage the first one may change the "
                     "width, the others map the stage's width to itself.",
            }[option]
            _expect_int(_call(fn, n, option), want, f"for n={n} (depth {6 * n + 2}), option {option}", hint)
    return "Correct: B adds 2,752 parameters at every depth; C adds 5,600n - 2,560."


def check_paper_schedule(fn) -> str:
    """``fn(iteration, warming_up)`` must return the learning rate of the paper's CIFAR-10 recipe
    for ResNet-110 (Sec. 4.2): 0.1, divided by 10 at 32k and 48k iterations; 0.01 while warming up."""
    from .train import BUDGETS, TrainConfig, learning_rate

    config, budget = TrainConfig(model="resnet110", budget="paper"), BUDGETS["paper"]
    cases = [(s, False) for s in (0, 1, 400, 31_999, 32_000, 40_000, 47_999, 48_000, 63_999)] + [(0, True), (350, True)]
    for step, warming_up in cases:
        want = learning_rate(config, budget, step, warming_up)
        got = _call(fn, step, warming_up)
        if not isinstance(got, (int, float)):
            raise ExerciseError(f"return a number; got {type(got).__name__}")
        if abs(got - want) > 1e-12:
            if warming_up:
                hint = "while warming up (until the training error falls below 80%) the rate is 0.01, whatever the iteration."
            elif step in (31_999, 32_000, 47_999, 48_000):
                hint = "the rate drops AT iterations 32,000 and 48,000: iteration 31,999 still uses the old rate."
            else:
                hint = "0.1 until iteration 32k, 0.01 until 48k, 0.001 until the end at 64k."
            raise ExerciseError(f"at iteration {step:,} (warming_up={warming_up}) you returned {got}, expected {want:g}. "
                                f"Hint: {hint}")
    return "Correct: your schedule matches the library's for every iteration tested, warm-up included."


def check_training_epochs(fn) -> str:
    """``fn(budget)`` must return how many passes over its training images a budget makes:
    iterations x batch size / training images (all 50,000 when ``budget.train_size`` is None)."""
    from .train import BUDGETS

    for budget in BUDGETS.values():
        want = budget.iterations * budget.batch_size / (budget.train_size or 50_000)
        got = _call(fn, budget)
        if not isinstance(got, (int, float)):
            raise ExerciseError(f"return a number; got {type(got).__name__}")
        if abs(got - want) > 1e-9 * want:
            hint = ("train_size is None for the paper's budget: it trains on all 50,000 images."
                    if budget.train_size is None else
                    "every iteration shows batch_size images; divide the images shown by the training set's size.")
            raise ExerciseError(f"for the {budget.name!r} budget you returned {got:g}, expected {want:g}. Hint: {hint}")
    return "Correct: smoke 2.4, cpu 7.68 and paper 163.84 epochs; the cpu budget sees 0.47% of the paper's images."
