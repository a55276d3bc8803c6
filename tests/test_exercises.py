"""Exercises: the solutions in the notebooks pass their checks, wrong answers get hints, and the
student versions (make student) keep everything but the solutions."""
import contextlib
import io
import json
import re
import statistics
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest
import torch

from resnet_book import analysis, exercises
from resnet_book.models import cifar_resnet
from resnet_book.models.surgery import make_identity_

REPO = Path(__file__).resolve().parents[1]
CHAPTERS = sorted((REPO / "notebooks").glob("*.ipynb"))
sys.path.insert(0, str(REPO / "tools"))
import make_student  # noqa: E402


def _passes(check, answer):
    """A right answer: the check prints its confirmation and returns None (nothing for nbgrader to
    read as partial credit, no quoted string under the cell)."""
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        assert check(answer) is None
    assert out.getvalue().startswith("Correct"), out.getvalue()
    return out.getvalue()


def _failure(check, answer):
    """The ExerciseError a wrong answer raises (None if it passes); its traceback starts here."""
    try:
        with contextlib.redirect_stdout(io.StringIO()):
            check(answer)
    except exercises.ExerciseError as err:
        return err
    return None


def _solution_and_check_cells(path):
    cells = json.loads(path.read_text())["cells"]
    for i, c in enumerate(cells):
        src = "".join(c["source"])
        if c["cell_type"] == "code" and "### BEGIN SOLUTION" in src:
            check = next("".join(d["source"]) for d in cells[i + 1:] if d["cell_type"] == "code")
            assert "exercises.check_" in check, f"{path.name}: the cell after a solution must call its check"
            yield src, check


@pytest.mark.parametrize("path", CHAPTERS, ids=lambda p: p.name)
def test_notebook_solutions_pass_their_checks(path):
    pairs = list(_solution_and_check_cells(path))
    assert pairs, f"{path.name} has no code exercise"
    ns = {"torch": torch, "exercises": exercises, "analysis": analysis}  # shared: 2.6 uses 2.5's block
    for solution, check in pairs:
        exec(solution, ns)
        check = re.sub(r"^from resnet_book import exercises\s*$", "", check, flags=re.M)
        exec(check, ns)


def test_wrong_answers_get_hints_not_solutions():
    with pytest.raises(exercises.ExerciseError, match="too small: what each step of n adds is wrong"):
        exercises.check_cifar_parameter_count(lambda n: 1000 * n)
    with pytest.raises(exercises.ExerciseError, match="return an int"):
        exercises.check_cifar_parameter_count(lambda n: 1.5)
    with pytest.raises(exercises.ExerciseError, match="dirac_"):
        exercises.check_identity_block(lambda block: block)

    def convs_only(block):
        with torch.no_grad():
            torch.nn.init.dirac_(block.conv1.weight)
            torch.nn.init.dirac_(block.conv2.weight)

    with pytest.raises(exercises.ExerciseError, match="BN still changes"):
        exercises.check_identity_block(convs_only)
    _passes(exercises.check_identity_block, make_identity_)
    with pytest.raises(exercises.ExerciseError, match="ReLU after the addition"):
        exercises.check_residual_forward(lambda b, x: b.residual_branch(x) + x)
    with pytest.raises(exercises.ExerciseError, match="shortcut is missing"):
        exercises.check_residual_forward(lambda b, x: torch.relu(b.residual_branch(x)))

    def zero_everything(model):
        with torch.no_grad():
            for m in model.modules():
                if isinstance(m, torch.nn.BatchNorm2d):
                    m.weight.zero_()

    with pytest.raises(exercises.ExerciseError, match="must stay as they are"):
        exercises.check_zero_init(zero_everything)


def _plain_parameters(n):
    return analysis.count_parameters(cifar_resnet(6 * n + 2, residual=False))


def _bn(n):
    model = cifar_resnet(6 * n + 2, residual=False)
    return sum(p.numel() for m in model.modules() if isinstance(m, torch.nn.BatchNorm2d) for p in m.parameters())


def test_parameter_count_recognises_typical_mistakes():
    with pytest.raises(exercises.ExerciseError, match="too large: did you count the BN parameters twice"):
        exercises.check_cifar_parameter_count(lambda n: _plain_parameters(n) + _bn(n))
    with pytest.raises(exercises.ExerciseError, match="too small: did you leave out the BN"):
        exercises.check_cifar_parameter_count(lambda n: _plain_parameters(n) - _bn(n))
    with pytest.raises(exercises.ExerciseError, match="but the classifier is right: look at its bias"):
        exercises.check_cifar_parameter_count(lambda n: _plain_parameters(n) - 10)
    # stage 2's first block counted as if it kept the width (32 -> 32 instead of 16 -> 32)
    with pytest.raises(exercises.ExerciseError, match="too large: what each step of n adds is right.*first block of stage 2"):
        exercises.check_cifar_parameter_count(lambda n: _plain_parameters(n) + 16 * 32 * 9)


def test_identity_check_accepts_every_correct_answer():
    """Issue 10 item 7: `running_var = 1` (BN's eps left in) is correct, and so is the exact
    `1 - eps`; a BN left with a small shift is not."""
    def identity(var, shift=0.0):
        def fn(block):
            with torch.no_grad():
                for conv in (block.conv1, block.conv2):
                    torch.nn.init.dirac_(conv.weight)
                for bn in (block.bn1, block.bn2):
                    bn.weight.fill_(1.0)
                    bn.bias.fill_(shift)
                    bn.running_mean.zero_()
                    bn.running_var.fill_(var(bn.eps))
        return fn

    _passes(exercises.check_identity_block, identity(lambda eps: 1.0))
    _passes(exercises.check_identity_block, identity(lambda eps: 1.0 - eps))
    with pytest.raises(exercises.ExerciseError, match="BN still changes"):
        exercises.check_identity_block(identity(lambda eps: 1.0, shift=1e-3))
    with pytest.raises(exercises.ExerciseError, match="BN still changes"):
        exercises.check_identity_block(identity(lambda eps: 1.1))


def test_chapter_3_checks_give_hints():
    with pytest.raises(exercises.ExerciseError, match="add up to too small a total"):
        exercises.check_path_counts(lambda n: [1] * (n + 1))
    with pytest.raises(exercises.ExerciseError, match="return 3 counts"):
        exercises.check_path_counts(lambda n: [1, 1] if n == 2 else [1] * (n + 1) if n < 2 else [])
    with pytest.raises(exercises.ExerciseError, match="spread wrongly.*k=0 is too large"):
        exercises.check_path_counts(lambda n: [2 ** n] + [0] * n)  # the right total, all on one length

    def leaves_blocks_dropped(model, error):
        out = {}
        for name in analysis.droppable(model):
            dict(analysis.blocks(model))[name].dropped = True  # dropped by hand, never restored
            out[name] = error(model)
        return out

    with pytest.raises(exercises.ExerciseError, match="not intact"):
        exercises.check_lesion_errors(leaves_blocks_dropped)

    def all_at_once(model, error):
        names = analysis.droppable(model)
        with analysis.lesion(model, names):
            e = error(model)
        return {n: e for n in names}

    with pytest.raises(exercises.ExerciseError, match="one block at a time"):
        exercises.check_lesion_errors(all_at_once)
    with pytest.raises(exercises.ExerciseError, match="wrong block names"):
        exercises.check_lesion_errors(lambda model, error: {"layer1.0": 0.0})


def test_costliest_block_check_finds_the_typical_mistakes():
    def costs(model, error):
        out = {}
        for name in analysis.droppable(model):
            with analysis.lesion(model, [name]):
                out[name] = error(model)
        return out

    exercises.check_costliest_block(lambda model, error: max(costs(model, error), key=costs(model, error).get))
    answers = {family: exercises._lesion_case(20, seed=seed, residual=family == "resnet")[2] for family, seed in exercises.costliest_block_cases()}
    assert len({max(c, key=c.get) for c in answers.values()}) > 1  # the cases do not share one answer
    with pytest.raises(exercises.ExerciseError, match="costs the least: you want the most"):
        exercises.check_costliest_block(lambda model, error: min(costs(model, error), key=costs(model, error).get))
    with pytest.raises(exercises.ExerciseError, match="another block's removal costs more"):
        exercises.check_costliest_block(lambda model, error: analysis.droppable(model)[-1])
    with pytest.raises(exercises.ExerciseError, match="not a block this plain network can drop"):
        exercises.check_costliest_block(lambda model, error: "layer2.0" if model.layer2[0].residual is False
                                        else max(costs(model, error), key=costs(model, error).get))
    with pytest.raises(exercises.ExerciseError, match="return the block's name, a str"):
        exercises.check_costliest_block(lambda model, error: ["layer1.0"])


def test_chapter_4_checks_give_hints():
    right = {"basic": lambda p: 18 * p * p, "bottleneck": lambda p: 17 * p * p, "bottleneck+projection": lambda p: 33 * p * p}
    _passes(exercises.check_block_weights, lambda kind, p: right[kind](p))
    with pytest.raises(exercises.ExerciseError, match="kind=.bottleneck., p=1 your count is too large: recount the layers"):
        exercises.check_block_weights(lambda kind, p: 20 * p * p if kind == "bottleneck" else right[kind](p))
    with pytest.raises(exercises.ExerciseError, match="shortcut is not the identity"):
        exercises.check_block_weights(lambda kind, p: 17 * p * p if kind != "basic" else 18 * p * p)
    with pytest.raises(exercises.ExerciseError, match="square of the width"):
        exercises.check_block_weights(lambda kind, p: right[kind](p) if p == 1 and kind == "basic" else 18 * p)
    with pytest.raises(exercises.ExerciseError, match="return an int"):
        exercises.check_block_weights(lambda kind, p: 18.0 * p * p)

    macs = exercises._macs_variant
    _passes(exercises.check_conv_macs, macs)
    with pytest.raises(exercises.ExerciseError, match="7, 7.* on 224x224 your count is too large: your count does not see the stride"):
        exercises.check_conv_macs(lambda conv, h, w: conv.weight.numel() * h * w)
    with pytest.raises(exercises.ExerciseError, match="does not see the stride"):
        exercises.check_conv_macs(lambda conv, h, w: macs(conv, h, w, stride=False))
    with pytest.raises(exercises.ExerciseError, match="does not see the padding"):
        exercises.check_conv_macs(lambda conv, h, w: macs(conv, h, w, padding=False))
    with pytest.raises(exercises.ExerciseError, match="one input channel"):
        exercises.check_conv_macs(lambda conv, h, w: macs(conv, h, w, in_channels=False))


def test_chapter_5_checks_give_hints():
    def zero_pad(x, c, s):
        x = x[:, :, ::s, ::s]
        return torch.cat([x, x.new_zeros(x.shape[0], c - x.shape[1], *x.shape[2:])], 1)

    _passes(exercises.check_zero_pad_shortcut, zero_pad)
    with pytest.raises(exercises.ExerciseError, match="zeros go after"):
        exercises.check_zero_pad_shortcut(lambda x, c, s: zero_pad(x, c, s).roll(c - x.shape[1], dims=1))
    with pytest.raises(exercises.ExerciseError, match="does not average"):
        exercises.check_zero_pad_shortcut(
            lambda x, c, s: zero_pad(torch.nn.functional.avg_pool2d(x, s, ceil_mode=True) if s > 1 else x, c, 1))
    with pytest.raises(exercises.ExerciseError, match="must be exactly zero"):
        exercises.check_zero_pad_shortcut(lambda x, c, s: zero_pad(x, c, s) + 0.1 * (torch.arange(c) >= x.shape[1]).view(1, -1, 1, 1))
    with pytest.raises(exercises.ExerciseError, match="height and width are too large"):
        exercises.check_zero_pad_shortcut(lambda x, c, s: zero_pad(x, c, 1))

    right = {"A": lambda n: 0, "B": lambda n: 2752, "C": lambda n: 5600 * n - 2560}
    _passes(exercises.check_shortcut_parameters, lambda n, o: right[o](n))
    with pytest.raises(exercises.ExerciseError, match="option B your count is too small: did you count the BN"):
        exercises.check_shortcut_parameters(lambda n, o: 2560 if o == "B" else right[o](n))  # BN forgotten
    with pytest.raises(exercises.ExerciseError, match="option C your count is too small: what each step of n adds is wrong"):
        exercises.check_shortcut_parameters(lambda n, o: 2752 if o == "C" else right[o](n))
    with pytest.raises(exercises.ExerciseError, match="option B.*only where the shape changes, not on every block"):
        exercises.check_shortcut_parameters(lambda n, o: right["C"](n) if o == "B" else right[o](n))


def test_chapter_6_checks_give_hints():
    def lr(it, warming_up, second=48_000):
        return 0.01 if warming_up else 0.1 * 0.1 ** ((it >= 32_000) + (it >= second))

    _passes(exercises.check_paper_schedule, lr)
    with pytest.raises(exercises.ExerciseError, match="iteration 32,000 .*too large: your rate drops one iteration too late"):
        exercises.check_paper_schedule(lambda it, w: 0.01 if w else 0.1 * 0.1 ** ((it > 32_000) + (it > 48_000)))
    with pytest.raises(exercises.ExerciseError, match="iteration 31,999 .*too early"):
        exercises.check_paper_schedule(lambda it, w: 0.01 if w else 0.1 * 0.1 ** ((it >= 31_999) + (it >= 47_999)))
    with pytest.raises(exercises.ExerciseError, match="warming up"):
        exercises.check_paper_schedule(lambda it, w: lr(it, False))
    with pytest.raises(exercises.ExerciseError, match="iteration 40,000 .*too small: paper Sec. 4.2"):
        exercises.check_paper_schedule(lambda it, w: lr(it, w, second=40_000))
    _passes(exercises.check_training_epochs, lambda b: b.iterations * b.batch_size / (b.train_size or 50_000))
    with pytest.raises(exercises.ExerciseError, match="'paper' budget .*too large: train_size None"):
        exercises.check_training_epochs(lambda b: b.iterations * b.batch_size / (b.train_size or 45_000))
    with pytest.raises(exercises.ExerciseError, match="'smoke' budget.*too small: each iteration shows a whole batch"):
        exercises.check_training_epochs(lambda b: b.iterations / (b.train_size or 50_000))


# --- no check gives the answer away (issue 10 item 9) ------------------------------------------

def _forms(value):
    """How an expected value could appear in a message: as int (with separators) or float."""
    if isinstance(value, int) or float(value).is_integer():
        i = int(value)
        if abs(i) < 100:  # 0, 1, 10... occur in any message (n=10, k=1, 1x1)
            return set()
        return {str(i), f"{i:,}", f"{i:_}", f"{i:,}".replace(",", " "), f"{i:.3g}", f"{i:.4g}", f"{float(i):g}",
                f"{i:.2e}", f"{i / 1e6:.2f} million", f"{i / 1e6:.1f} million"}
    v = float(value)
    return {repr(v), f"{v:g}", f"{v:.4g}", f"{v:.3g}", f"{v:.2g}", f"{v:.1e}", f"{v:.2e}", f"{v:.0e}", f"{v:%}"}


def _int_mistakes(w):
    return [0, w + 1, w - 1, w + 2, w - 10, w * 2, w // 2, -w]


def _float_mistakes(w):
    return [0, w * 1.01, w * 0.99, w * 10, w / 10, w + 1e-3, -w, 1.0]


def _key(name, args):
    if name == "check_conv_macs":
        conv, h, w = args
        return conv.in_channels, conv.out_channels, conv.kernel_size, conv.stride, conv.padding, h, w
    return args


def _truth(name):
    """The right answer for any arguments, from the library (checks also probe e.g. width 2p)."""
    from resnet_book.train import BUDGETS, TrainConfig, learning_rate

    config = TrainConfig(model="resnet110", budget="paper")
    fn = {
        "check_cifar_parameter_count": _plain_parameters,
        "check_block_weights": lambda kind, p: analysis.count_conv_weights(exercises._block_for(kind, p)),
        "check_conv_macs": lambda conv, h, w: analysis.count_macs(conv, torch.zeros(1, conv.in_channels, h, w)),
        "check_shortcut_parameters": lambda n, o: (analysis.count_parameters(cifar_resnet(6 * n + 2, shortcut=o))
                                                   - analysis.count_parameters(cifar_resnet(6 * n + 2))),
        "check_paper_schedule": lambda it, w: learning_rate(config, BUDGETS["paper"], it, w),
        "check_training_epochs": lambda b: b.iterations * b.batch_size / (b.train_size or 50_000),
    }[name]
    memo = {}

    def truth(*args):
        key = _key(name, args)
        if key not in memo:
            memo[key] = fn(*args)
        return memo[key]
    return truth


NUMERIC_CHECKS = {
    "check_cifar_parameter_count": (exercises.cifar_parameter_cases, _int_mistakes),
    "check_block_weights": (exercises.block_weight_cases, _int_mistakes),
    "check_conv_macs": (exercises.conv_macs_cases, _int_mistakes),
    "check_shortcut_parameters": (exercises.shortcut_parameter_cases, _int_mistakes),
    "check_paper_schedule": (exercises.paper_schedule_cases, _float_mistakes),
    "check_training_epochs": (exercises.training_epoch_cases, _float_mistakes),
}


def _wrong_answer_errors(name):
    """The ExerciseErrors of many wrong answers: each mistake at one case (right elsewhere), and everywhere."""
    cases, mistakes = NUMERIC_CHECKS[name]
    check, truth = getattr(exercises, name), _truth(name)
    cases = cases()
    expected = [want for _, want in cases]
    n_mistakes = len(mistakes(expected[0]))
    errors = []
    for args, _ in cases:                          # wrong at one case, right elsewhere ...
        wrong_key = _key(name, args)
        for m in range(n_mistakes):
            def answer(*a, _k=wrong_key, _m=m):
                want = truth(*a)
                return mistakes(want)[_m] if _key(name, a) == _k else want
            errors.append(_failure(check, answer))
    for m in range(n_mistakes):                    # ... and wrong everywhere
        errors.append(_failure(check, lambda *a, _m=m: mistakes(truth(*a))[_m]))
    return expected, [e for e in errors if e is not None]


@pytest.mark.parametrize("name", list(NUMERIC_CHECKS))
def test_no_numeric_check_gives_the_expected_value_away(name):
    expected, errors = _wrong_answer_errors(name)
    messages = [str(e) for e in errors]
    assert len(messages) >= len(expected), "the wrong answers must fail the check"
    leaks = [(msg, form) for msg in messages for want in expected for form in _forms(want) if form in msg]
    assert not leaks, f"{name} gives the answer away: {leaks[:3]}"
    assert not [m for m in messages if re.search(r"off by|expected|should be \d", m)], messages[:3]


def test_path_counts_and_lesion_give_no_values_away():
    from resnet_book.analysis import path_length_counts
    from resnet_book.data import jpeg_round_trip

    messages = []
    for wrong in (lambda n: [0] * (n + 1), lambda n: [1] * (n + 1), lambda n: path_length_counts(n)[::-1][:-1] + [0],
                  lambda n: [c + 1 for c in path_length_counts(n)], lambda n: [2 ** n] + [0] * n,
                  lambda n: [c * 2 for c in path_length_counts(n)]):
        with pytest.raises(exercises.ExerciseError) as err:
            exercises.check_path_counts(lambda n, w=wrong: w(n) if n >= 2 else path_length_counts(n))
        messages.append(str(err.value))
    for msg in messages:
        for n in (2, 3, 10, 54):
            for c in [*path_length_counts(n), 2 ** n]:
                assert not _forms(c) & {t for t in re.findall(r"[\d,_.e+-]+", msg)}, (msg, c)

    def scaled(factor, offset):
        def fn(model, error):
            out = {}
            for name in analysis.droppable(model):
                with analysis.lesion(model, [name]):
                    out[name] = error(model) * factor + offset
            return out
        return fn

    for factor, offset in ((0, 0), (1.01, 1e-3)):
        with pytest.raises(exercises.ExerciseError) as err:
            exercises.check_lesion_errors(scaled(factor, offset))
        without_block_names = re.sub(r"layer\d\.\d+", "", str(err.value))
        assert not re.search(r"\d\.\d|\de-\d", without_block_names), str(err.value)


def test_unimplemented_answers_say_so():
    def todo(*args):
        raise NotImplementedError

    for check in (exercises.check_cifar_parameter_count, exercises.check_identity_block,
                  exercises.check_residual_forward, exercises.check_zero_init, exercises.check_path_counts,
                  exercises.check_lesion_errors, exercises.check_block_weights, exercises.check_conv_macs,
                  exercises.check_zero_pad_shortcut, exercises.check_shortcut_parameters,
                  exercises.check_paper_schedule, exercises.check_training_epochs):
        with pytest.raises(exercises.ExerciseError, match="not implemented yet"):
            check(todo)


@pytest.mark.slow
def test_student_notebooks_run_up_to_the_exercises(tmp_path, monkeypatch):
    from nbclient import NotebookClient

    monkeypatch.setenv("RESNET_BOOK_RESULTS", str(REPO / "data" / "results"))  # the chapters read the stored runs

    r = subprocess.run([sys.executable, str(REPO / "tools" / "make_student.py")], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    for path in sorted((REPO / "_build" / "student").glob("*.ipynb")):
        nb = nbformat.read(path, as_version=4)
        NotebookClient(nb, timeout=600, allow_errors=True, resources={"metadata": {"path": str(REPO / "notebooks")}},
                       kernel_name="python3").execute()
        first_exercise = next(i for i, c in enumerate(nb.cells) if "NotImplementedError" in c.source)
        for i, c in enumerate(nb.cells):
            errors = [o for o in c.get("outputs", []) if o.get("output_type") == "error"]
            if i < first_exercise:
                assert not errors, f"{path.name} cell {i} fails before the exercises: {errors}"
            elif c.cell_type == "code" and "exercises.check_" in c.source:
                assert errors and errors[0]["ename"] == "ExerciseError", f"{path.name} cell {i}"
                assert "not implemented yet" in errors[0]["evalue"]


# --- build-it exercises --------------------------------------------------------------------------



def _cells_defining(name):
    for path in CHAPTERS:
        for solution, check in _solution_and_check_cells(path):
            if f"class {name}" in solution or f"def {name}" in solution:
                return solution
    raise AssertionError(f"no chapter defines {name}")


def test_build_it_checks_name_the_failed_property():
    from torch import nn

    ns = {"torch": torch, "nn": nn, "exercises": exercises, "analysis": analysis}
    exec(_cells_defining("MyBasicBlock"), ns)
    wrong = _wrong_basic_blocks(ns["MyBasicBlock"])
    matches = ("state-dict keys differ.*conv1.bias", "output differs.*ReLU",
               "running statistics update differently", "forward pass fails.*strides")
    for bad, match in zip(wrong, matches, strict=True):
        with pytest.raises(exercises.ExerciseError, match=match) as err:
            exercises.check_basic_block(bad)
        assert not re.search(r"\d\.\d", str(err.value))  # no values of the library's output



# --- what a learner sees of a failed check (issue 24) --------------------------------------------
# A notebook (and nbgrader's autograde and nbval, which record what the kernel shows) prints an
# exception with IPython's traceback formatter: the source lines around every frame and, in
# `%xmode Verbose`, their local variables. For every check and wrong answers of every kind, the
# failure is rendered the way the shell renders it (Context and Verbose), and also with IPython's
# formatter ignoring `_render_traceback_` (a frontend that does not honour it); none may show an
# expected value, a formula, the check's own source, or its "Correct" line.

from IPython.core.interactiveshell import InteractiveShell  # noqa: E402
from IPython.core.ultratb import FormattedTB  # noqa: E402
from IPython.utils.capture import capture_output  # noqa: E402

ANSI = re.compile(r"\x1b\[[0-9;]*m")


def _shown(err) -> list[str]:
    """What the shell prints for ``err`` in Context and Verbose mode, and IPython's Verbose
    formatting of its traceback as if ``_render_traceback_`` did not exist."""
    shell = InteractiveShell.instance()
    texts = []
    try:
        for mode in ("Context", "Verbose"):
            shell.InteractiveTB.set_mode(mode)
            with capture_output() as cap:
                shell.showtraceback((type(err), err, err.__traceback__))
            texts.append(cap.stdout + cap.stderr)
    finally:
        shell.InteractiveTB.set_mode("Context")
    raw = FormattedTB(mode="Verbose").structured_traceback(type(err), err, err.__traceback__)
    texts.append("\n".join(raw))
    return [ANSI.sub("", t) for t in texts]


def _notebook_answers() -> dict:
    """{check name: the notebooks' solution it is called with} -- the right answers."""
    ns = {"torch": torch, "exercises": exercises, "analysis": analysis}
    answers = {}
    for path in CHAPTERS:
        for solution, check in _solution_and_check_cells(path):
            exec(solution, ns)
            for name, arg in re.findall(r"exercises\.(check_\w+)\((\w+)\)", check):
                answers[name] = ns[arg]
    return answers


# Words of each check's answer that no failure may show (besides the expected values of the
# numeric checks, found by _forms). A new check adds its formula's words here.
FORMULAS = {
    "check_cifar_parameter_count": ["9 *", "* 9", "16 * 16", "6n"],
    "check_identity_block": ["1 - eps", "running_var = 1", "fill_(1", "zero_()"],
    "check_residual_forward": ["F(x) + x", "relu(F", "residual_branch(x) + x", "block(x)"],
    "check_zero_init": ["bn2.weight", ".zero_()", "last_bn", "init_paper_"],
    "check_path_counts": ["binomial", "C(n, k)", "comb(", "choose", "most paths"],
    "check_lesion_errors": ["with lesion(model, [name])"],
    "check_costliest_block": ["max(costs", "key=costs.get"],
    "check_block_weights": ["18p", "17p", "33p", "18 *", "17 *", "33 *"],
    "check_conv_macs": ["// stride", "+ 2 *", "out_channels *", "numel() *"],
    "check_zero_pad_shortcut": ["torch.cat", "::stride", "new_zeros"],
    "check_shortcut_parameters": ["2,752", "2752", "5,600", "5600", "2,560", "2560"],
    "check_padded_zero_share": ["register_forward_hook", "in_planes, ", "== 0).float().mean()"],
    "check_paper_schedule": ["0.1 *", "** ("],
    "check_training_epochs": ["163.84", "7.68", "0.47%", "iterations * batch"],
    "check_basic_block": ["torch.relu(f + ", "f + shortcut"],
    "check_bottleneck_block": ["4 * width", "torch.relu(f + "],
    "check_resnet20": ["MyBasicBlock(channels"],
    "check_jpeg_round_trip": ['format="JPEG"', "quality=quality", "Image.fromarray", "permute(1, 2, 0)"],
    "check_branch_response_median": ['which="branch"', "statistics.median", "net.normalize(images)"],
}


def _learner_bug(*args):
    raise TypeError("my own bug")


GENERIC_WRONG = [lambda *a: None, lambda *a: "42", _learner_bug]


def _identity_like(var, shift=0.0, convs=True):
    def fn(block):
        with torch.no_grad():
            if convs:
                for conv in (block.conv1, block.conv2):
                    torch.nn.init.dirac_(conv.weight)
            for bn in (block.bn1, block.bn2):
                bn.weight.fill_(1.0)
                bn.bias.fill_(shift)
                bn.running_mean.zero_()
                bn.running_var.fill_(var)
    return fn


def _zero_bn(which):
    def fn(model):
        with torch.no_grad():
            for name, m in model.named_modules():
                if isinstance(m, torch.nn.BatchNorm2d) and which(name):
                    m.weight.zero_()
        return model
    return fn


def _costliest_answer(pick, restore=True):
    """Lesion costs of every droppable block, then ``pick`` (``max``: right; ``min``: the cheapest);
    with ``restore=False`` the blocks are dropped by hand and left dropped."""
    def fn(model, error):
        out = {}
        for name in analysis.droppable(model):
            if restore:
                with analysis.lesion(model, [name]):
                    out[name] = error(model)
            else:
                dict(analysis.blocks(model))[name].dropped = True
                out[name] = error(model)
        return pick(out, key=out.get)
    return fn


def _lesion_answer(factor=1.0, offset=0.0, restore=True, together=False):
    def fn(model, error):
        names = analysis.droppable(model)
        if together:
            with analysis.lesion(model, names):
                e = error(model)
            return {n: e for n in names}
        out = {}
        for name in names:
            if restore:
                with analysis.lesion(model, [name]):
                    out[name] = error(model) * factor + offset
            else:
                dict(analysis.blocks(model))[name].dropped = True
                out[name] = error(model)
        return out
    return fn


def _zero_pad(x, c, s):
    x = x[:, :, ::s, ::s]
    return torch.cat([x, x.new_zeros(x.shape[0], c - x.shape[1], *x.shape[2:])], 1)


def _wrong_basic_blocks(block):
    """Four wrong versions of a right ``BasicBlock`` answer: a bias in conv1, no final ReLU, BN
    applied twice, no stride."""
    from torch import nn

    class WithBias(block):
        def __init__(self, i, o, s=1):
            super().__init__(i, o, s)
            self.conv1 = nn.Conv2d(i, o, 3, stride=s, padding=1, bias=True)

    class NoFinalReLU(block):
        def forward(self, x):
            f = self.bn2(self.conv2(torch.relu(self.bn1(self.conv1(x)))))
            return f + (x if self.downsample is None else self.downsample(x))

    class BNTwice(block):
        def forward(self, x):
            self.bn1(self.conv1(x))
            return super().forward(x)

    class NoStride(block):
        def __init__(self, i, o, s=1):
            super().__init__(i, o, s)
            self.conv1 = nn.Conv2d(i, o, 3, stride=1, padding=1, bias=False)

    return [WithBias, NoFinalReLU, BNTwice, NoStride]


def _build_it_variants(answers):
    from torch import nn

    bottleneck = answers["check_bottleneck_block"]

    class StrideOnFirst1x1(bottleneck):  # the paper's placement: a different block
        def __init__(self, i, w, s=1):
            super().__init__(i, w, s)
            self.conv1 = nn.Conv2d(i, w, 1, stride=s, bias=False)
            self.conv2 = nn.Conv2d(w, w, 3, padding=1, bias=False)

    class ProjectionAlways(bottleneck):
        def __init__(self, i, w, s=1):
            super().__init__(i, w, s)
            self.downsample = nn.Sequential(nn.Conv2d(i, 4 * w, 1, stride=s, bias=False), nn.BatchNorm2d(4 * w))

    class NoShortcut(bottleneck):
        def forward(self, x):
            return torch.relu(self.bn3(self.conv3(torch.relu(self.bn2(self.conv2(torch.relu(self.bn1(self.conv1(x)))))))))

    return {
        "check_basic_block": _wrong_basic_blocks(answers["check_basic_block"]),
        "check_bottleneck_block": [StrideOnFirst1x1, ProjectionAlways, NoShortcut],
        "check_resnet20": [lambda: cifar_resnet(20, residual=False), lambda: cifar_resnet(32),
                           lambda: cifar_resnet(20, shortcut="B"), lambda: torch.nn.Linear(3, 10)],
    }


def _padded_share_mistakes(right):
    def channels(which):
        def fn(model, x, block):
            out = {}
            b = model.get_submodule(block)
            handle = b.register_forward_hook(lambda m, i, o: out.__setitem__("h", o))
            with torch.no_grad():
                model.eval()(x)
            handle.remove()
            c_in, c_out = b.downsample.in_planes, b.downsample.out_planes
            idx = {"copied": list(range(c_in)), "all": list(range(c_out))}[which]
            return float((out["h"][:, idx] == 0).float().mean())
        return fn

    return [channels("copied"), channels("all"), lambda m, x, b: 1 - right(m, x, b),
            lambda m, x, b: 100 * right(m, x, b), lambda m, x, b: right(m, x, b) * 0.9,
            lambda m, x, b: [right(m, x, b)]]


def _wrong_answers(answers) -> dict:
    """Typical wrong answers of every check that is not in NUMERIC_CHECKS."""
    from resnet_book.analysis import path_length_counts

    branch = lambda b, x: b.residual_branch(x)  # noqa: E731
    return {
        "check_identity_block": [_identity_like(1.0, convs=False), _identity_like(1.1), _identity_like(1.0, 1e-3),
                                 lambda b: torch.nn.init.dirac_(b.conv1.weight),
                                 lambda b: setattr(b, "conv1", torch.nn.Conv2d(16, 8, 3, padding=1, bias=False))],
        "check_residual_forward": [lambda b, x: branch(b, x) + x, lambda b, x: torch.relu(branch(b, x)),
                                   lambda b, x: x, lambda b, x: torch.relu(branch(b, x)) + x,
                                   lambda b, x: torch.relu(branch(b, x) + 2 * x), lambda b, x: (branch(b, x) + x).numpy(),
                                   lambda b, x: torch.relu(branch(b, x) + x)[0]],
        "check_zero_init": [_zero_bn(lambda n: True), _zero_bn(lambda n: n.endswith("bn1")),
                            _zero_bn(lambda n: n.startswith("layer1") and n.endswith("bn2"))],
        "check_path_counts": [lambda n: [0] * (n + 1), lambda n: [1] * (n + 1), lambda n: [2 ** n] + [0] * n,
                              lambda n: [c * 2 for c in path_length_counts(n)], lambda n: path_length_counts(n)[:-1],
                              lambda n: path_length_counts(n)[::-1][:-1] + [0], lambda n: [float(c) for c in path_length_counts(n)]],
        "check_costliest_block": [_costliest_answer(min), _costliest_answer(max, restore=False),
                                  lambda model, error: analysis.droppable(model)[-1],
                                  lambda model, error: analysis.droppable(model)[0],
                                  lambda model, error: "layer2.0", lambda model, error: ["layer1.0"]],
        "check_lesion_errors": [_lesion_answer(restore=False), _lesion_answer(together=True), _lesion_answer(0, 0),
                                _lesion_answer(1.01, 1e-3), lambda model, error: {"layer1.0": 0.0},
                                lambda model, error: [0.0]],
        "check_zero_pad_shortcut": [lambda x, c, s: _zero_pad(x, c, s).roll(c - x.shape[1], dims=1),
                                    lambda x, c, s: _zero_pad(torch.nn.functional.avg_pool2d(x, s, ceil_mode=True)
                                                              if s > 1 else x, c, 1),
                                    lambda x, c, s: _zero_pad(x, c, s) + 0.1 * (torch.arange(c) >= x.shape[1]).view(1, -1, 1, 1),
                                    lambda x, c, s: _zero_pad(x, c, 1), lambda x, c, s: x[:, :, ::s, ::s],
                                    lambda x, c, s: _zero_pad(x, c, s)[0]],
        "check_jpeg_round_trip": [lambda i, q: i, lambda i, q: jpeg_round_trip(i, 75), lambda i, q: jpeg_round_trip(i, q).float(),
                                  lambda i, q: jpeg_round_trip(i, q).permute(0, 2, 3, 1), lambda i, q: jpeg_round_trip(i, q) // 2,
                                  lambda i, q: jpeg_round_trip(i.flip(1), q).flip(1), lambda i, q: jpeg_round_trip(i, q).numpy()],
        "check_padded_zero_share": _padded_share_mistakes(answers["check_padded_zero_share"]),
        "check_branch_response_median": [_responses_answer("branch", statistics.mean),
                                         _responses_answer("bn", statistics.median),
                                         _responses_answer("branch", statistics.median, normalize=False),
                                         lambda net, images: [0.5]],
        **_build_it_variants(answers),
    }


def _library_answers() -> dict:
    """Right answers from the library, for checks whose exercise is not in a notebook yet (none now:
    exercise 6.6 holds check_jpeg_round_trip's)."""
    return {}


def _responses_answer(which, summary, normalize=True):
    """A wrong answer to exercise 2.7: another layer set, summary or input scale."""
    from resnet_book.analysis import layer_responses

    def answer(net, images):
        x = net.normalize(images) if normalize else images.float()
        return summary(layer_responses(net.model, x, which=which).values())
    return answer


@pytest.fixture(scope="module")
def answers():
    return {**_library_answers(), **_notebook_answers()}


def test_every_check_is_covered_by_the_rendering_test(answers):
    checks = {n for n in dir(exercises) if n.startswith("check_")}
    covered = set(NUMERIC_CHECKS) | set(_wrong_answers(answers))
    assert checks <= covered, f"add wrong answers for {sorted(checks - covered)} to _wrong_answers or NUMERIC_CHECKS"
    assert checks <= set(FORMULAS), f"add the answer's words of {sorted(checks - set(FORMULAS))} to FORMULAS"
    assert checks <= set(answers), (f"no notebook solution calls {sorted(checks - set(answers))}; until one does, "
                                    "give a right answer in _library_answers")
    for name in checks:
        assert hasattr(getattr(exercises, name), "__wrapped__"), f"{name} must be decorated with @exercise_check"


@pytest.mark.parametrize("name", sorted(n for n in dir(exercises) if n.startswith("check_")))
def test_a_failed_check_shows_the_learner_nothing_of_the_answer(name, answers):
    import inspect

    check = getattr(exercises, name)
    success = _passes(check, answers[name]).strip()
    if name in NUMERIC_CHECKS:
        expected, errors = _wrong_answer_errors(name)
        errors = errors[::7] + errors[-len(NUMERIC_CHECKS[name][1](expected[0])):]  # every kind, not every case
    else:
        expected, errors = [], [_failure(check, a) for a in _wrong_answers(answers)[name]]
        assert all(errors), f"{name}: a wrong answer passes"
    errors += [_failure(check, a) for a in GENERIC_WRONG]
    assert all(errors), f"{name}: a generic wrong answer passes"
    body = {line.strip() for line in inspect.getsource(check.__wrapped__).splitlines() if len(line.strip()) >= 20}
    forbidden = {success, "Correct", *FORMULAS[name], *(f for want in expected for f in _forms(want))}
    for err in errors:
        shell_context, shell_verbose, raw_verbose = _shown(err)
        for text in (shell_context, shell_verbose):
            assert f"ExerciseError: {err}" in text
            assert exercises.__file__ not in text, f"{name}: a frame of the check is shown:\n{text}"
        for text in (shell_context, shell_verbose, raw_verbose):
            shown = [f for f in forbidden if f in text] + [line for line in body if line in text]
            assert not shown, f"{name} shows {shown} on a wrong answer:\n{text}"


def test_a_wrong_answer_cannot_spoil_a_check_for_the_right_one(answers):
    """The padded-share check keeps its networks between calls: a wrong answer that switches one to
    training mode and runs it (moving its BN statistics) must not make the right answer fail later."""
    right = answers["check_padded_zero_share"]

    def in_train_mode(model, x, block):
        model.train()
        with torch.no_grad():
            model(x)
        return right(model, x, block)

    assert _failure(exercises.check_padded_zero_share, in_train_mode) is not None  # its BN statistics moved
    _passes(exercises.check_padded_zero_share, right)


def test_a_check_that_cannot_run_says_so_instead_of_blaming_the_answer(monkeypatch):
    from resnet_book.weights import WeightsError

    def missing(*args, **kwargs):
        raise WeightsError("resnet20-12fca82f.th is not in data/weights/akamaster-cifar10")

    monkeypatch.setattr(exercises, "branch_response_cases", missing)
    err = str(_failure(exercises.check_branch_response_median, lambda net, images: 0.5))
    assert err.startswith("the check cannot run here, whatever your answer: WeightsError: resnet20-12fca82f.th"), err


def test_a_learners_own_error_shows_the_learners_frames_only():
    shell = InteractiveShell.instance()
    shell.run_cell("from resnet_book import exercises", silent=True)
    source = "def buggy(n):\n    return undefined_name * n\n\nexercises.check_cifar_parameter_count(buggy)"
    for mode in ("Context", "Verbose"):
        shell.run_line_magic("xmode", mode)
        with capture_output() as cap:
            result = shell.run_cell(source)
        text = ANSI.sub("", cap.stdout + cap.stderr)
        assert isinstance(result.error_in_exec, exercises.ExerciseError)
        assert "return undefined_name * n" in text and "NameError: name 'undefined_name' is not defined" in text
        assert "ExerciseError: your code raised NameError" in text
        assert exercises.__file__ not in text and "want" not in text, text
    shell.run_line_magic("xmode", "Context")


def test_a_check_run_in_the_shell_prints_its_confirmation_and_returns_nothing():
    shell = InteractiveShell.instance()
    shell.run_cell("from resnet_book import exercises", silent=True)
    with capture_output() as cap:
        result = shell.run_cell("exercises.check_path_counts(__import__('resnet_book').analysis.path_length_counts)")
    assert result.success and result.result is None
    assert cap.stdout.startswith("Correct") and "'" not in cap.stdout.splitlines()[0][:2]


def test_jpeg_round_trip_reference_and_the_trained_network_table():
    import types

    from resnet_book.data import jpeg_round_trip
    from resnet_book.train import error_rate
    from resnet_book.weights import published

    images = torch.randint(0, 256, (6, 3, 32, 32), generator=torch.Generator().manual_seed(0), dtype=torch.uint8)
    out = jpeg_round_trip(images, 75)
    assert out.dtype == torch.uint8 and out.shape == images.shape and not torch.equal(out, images)
    assert torch.equal(jpeg_round_trip(images, 75), out)
    with pytest.raises(ValueError, match="uint8 tensor of shape"):
        jpeg_round_trip(images.float())
    with pytest.raises(ValueError, match="quality must be an integer from 1 to 95"):
        jpeg_round_trip(images, 100)
    data = types.SimpleNamespace(test_images=images, test_labels=torch.arange(6) % 10, source="fake")
    table = exercises.jpeg_cost_table(lambda x, q: x.flip(3), n_images=4, data=data)
    net = published("resnet20")
    want = [100 * error_rate(net.model, x, data.test_labels[:4], net.normalize) for x in (images[:4], images[:4].flip(3))]
    assert table.column("test error (%)") == [f"{want[0]:.1f}", f"{want[1]:.1f}", f"{want[1] - want[0]:+.1f}"]
    assert "not by this book" in table.caption and "first 4 test images of fake" in table.caption
