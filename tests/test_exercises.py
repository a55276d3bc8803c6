"""Exercises: the solutions in the notebooks pass their checks, wrong answers get hints, and the
student versions (make student) keep everything but the solutions."""
import json
import re
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest
import torch

from resnet_book import analysis, exercises
from resnet_book.models.surgery import make_identity_

REPO = Path(__file__).resolve().parents[1]
CHAPTERS = sorted((REPO / "notebooks").glob("*.ipynb"))
sys.path.insert(0, str(REPO / "tools"))
import make_student  # noqa: E402


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
    for solution, check in pairs:
        ns = {"torch": torch, "exercises": exercises, "analysis": analysis}
        exec(solution, ns)
        check = re.sub(r"^from resnet_book import exercises\s*$", "", check, flags=re.M)
        exec(check, ns)


def test_wrong_answers_get_hints_not_solutions():
    with pytest.raises(exercises.ExerciseError, match="off by"):
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
    assert "Correct" in exercises.check_identity_block(make_identity_)
    with pytest.raises(exercises.ExerciseError, match="ReLU after the addition"):
        exercises.check_residual_forward(lambda b, x: b.residual_branch(x) + x)
    with pytest.raises(exercises.ExerciseError, match="shortcut is missing"):
        exercises.check_residual_forward(lambda b, x: torch.relu(b.residual_branch(x)))

    def zero_everything(model):
        with torch.no_grad():
            for m in model.modules():
                if isinstance(m, torch.nn.BatchNorm2d):
                    m.weight.zero_()

    with pytest.raises(exercises.ExerciseError, match="should not be"):
        exercises.check_zero_init(zero_everything)


def test_chapter_3_checks_give_hints():
    with pytest.raises(exercises.ExerciseError, match="2\\*\\*2 = 4 paths"):
        exercises.check_path_counts(lambda n: [1] * (n + 1))
    with pytest.raises(exercises.ExerciseError, match="return 3 counts"):
        exercises.check_path_counts(lambda n: [1, 1] if n == 2 else [1] * (n + 1) if n < 2 else [])
    with pytest.raises(exercises.ExerciseError, match="but are wrong"):
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


def test_chapter_4_checks_give_hints():
    right = {"basic": lambda p: 18 * p * p, "bottleneck": lambda p: 17 * p * p, "bottleneck+projection": lambda p: 33 * p * p}
    assert "Correct" in exercises.check_block_weights(lambda kind, p: right[kind](p))
    with pytest.raises(exercises.ExerciseError, match="kind=.bottleneck., p=1: .*off by \\+3.*1x1 reduce"):
        exercises.check_block_weights(lambda kind, p: 20 * p * p if kind == "bottleneck" else right[kind](p))
    with pytest.raises(exercises.ExerciseError, match="projection.*plus a 1x1"):
        exercises.check_block_weights(lambda kind, p: 17 * p * p if kind != "basic" else 18 * p * p)
    with pytest.raises(exercises.ExerciseError, match="return an int"):
        exercises.check_block_weights(lambda kind, p: 18.0 * p * p)

    def macs(conv, h, w, strided=True, padded=True):
        (kh, kw), (sh, sw), (ph, pw) = conv.kernel_size, conv.stride, conv.padding
        sh, sw = (sh, sw) if strided else (1, 1)
        ph, pw = (ph, pw) if padded else (0, 0)
        return conv.out_channels * conv.in_channels * kh * kw * ((h + 2 * ph - kh) // sh + 1) * ((w + 2 * pw - kw) // sw + 1)

    assert "Correct" in exercises.check_conv_macs(macs)
    with pytest.raises(exercises.ExerciseError, match="7, 7.* on 224x224: .*counted every input position"):
        exercises.check_conv_macs(lambda conv, h, w: conv.weight.numel() * h * w)
    with pytest.raises(exercises.ExerciseError, match="counted every input position"):
        exercises.check_conv_macs(lambda conv, h, w: macs(conv, h, w, strided=False))
    with pytest.raises(exercises.ExerciseError, match="one multiply-add per weight per output position"):
        exercises.check_conv_macs(lambda conv, h, w: macs(conv, h, w, padded=False))


def test_chapter_5_checks_give_hints():
    def zero_pad(x, c, s):
        x = x[:, :, ::s, ::s]
        return torch.cat([x, x.new_zeros(x.shape[0], c - x.shape[1], *x.shape[2:])], 1)

    assert "Correct" in exercises.check_zero_pad_shortcut(zero_pad)
    with pytest.raises(exercises.ExerciseError, match="zeros go after"):
        exercises.check_zero_pad_shortcut(lambda x, c, s: zero_pad(x, c, s).roll(c - x.shape[1], dims=1))
    with pytest.raises(exercises.ExerciseError, match="does not average"):
        exercises.check_zero_pad_shortcut(
            lambda x, c, s: zero_pad(torch.nn.functional.avg_pool2d(x, s, ceil_mode=True) if s > 1 else x, c, 1))
    with pytest.raises(exercises.ExerciseError, match="must be exactly zero"):
        exercises.check_zero_pad_shortcut(lambda x, c, s: zero_pad(x, c, s) + 0.1 * (torch.arange(c) >= x.shape[1]).view(1, -1, 1, 1))
    with pytest.raises(exercises.ExerciseError, match="must have shape"):
        exercises.check_zero_pad_shortcut(lambda x, c, s: zero_pad(x, c, 1))

    right = {"A": lambda n: 0, "B": lambda n: 2752, "C": lambda n: 5600 * n - 2560}
    assert "Correct" in exercises.check_shortcut_parameters(lambda n, o: right[o](n))
    with pytest.raises(exercises.ExerciseError, match="option B: .*off by -192.*BN"):
        exercises.check_shortcut_parameters(lambda n, o: 2560 if o == "B" else right[o](n))  # BN forgotten
    with pytest.raises(exercises.ExerciseError, match="option C.*n per stage"):
        exercises.check_shortcut_parameters(lambda n, o: 2752 if o == "C" else right[o](n))


def test_chapter_6_checks_give_hints():
    def lr(it, warming_up, second=48_000):
        return 0.01 if warming_up else 0.1 * 0.1 ** ((it >= 32_000) + (it >= second))

    assert "Correct" in exercises.check_paper_schedule(lr)
    with pytest.raises(exercises.ExerciseError, match="iteration 32,000 .*drops AT"):
        exercises.check_paper_schedule(lambda it, w: 0.01 if w else 0.1 * 0.1 ** ((it > 32_000) + (it > 48_000)))
    with pytest.raises(exercises.ExerciseError, match="warming up"):
        exercises.check_paper_schedule(lambda it, w: lr(it, False))
    with pytest.raises(exercises.ExerciseError, match="0.1 until iteration 32k"):
        exercises.check_paper_schedule(lambda it, w: lr(it, w, second=40_000))  # fails at 40,000
    assert "Correct" in exercises.check_training_epochs(lambda b: b.iterations * b.batch_size / (b.train_size or 50_000))
    with pytest.raises(exercises.ExerciseError, match="'paper' budget .*all 50,000"):
        exercises.check_training_epochs(lambda b: b.iterations * b.batch_size / (b.train_size or 45_000))
    with pytest.raises(exercises.ExerciseError, match="'smoke' budget.*batch_size images"):
        exercises.check_training_epochs(lambda b: b.iterations / (b.train_size or 50_000))


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


def test_student_version_removes_solutions_only():
    for path in CHAPTERS:
        full = nbformat.read(path, as_version=4)
        student = make_student.student_version(full)
        assert len(student.cells) == len(full.cells)
        text = "\n".join(c.source for c in student.cells)
        assert "### BEGIN SOLUTION" not in text and "{solution}" not in text
        assert text.count("raise NotImplementedError") >= sum("### BEGIN SOLUTION" in c.source for c in full.cells)
        assert text.count("{exercise}") == "\n".join(c.source for c in full.cells).count("{exercise}")


@pytest.mark.slow
def test_student_notebooks_run_up_to_the_exercises(tmp_path):
    from nbclient import NotebookClient

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
