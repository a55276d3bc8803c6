"""The training step: precision choice, fp16 loss scaling, and the CUDA-graph step (GPU tests are
skipped without CUDA; the parts of the graph step that are plain tensor logic run on the CPU)."""
import copy
import time

import pytest
import torch
import torch.nn.functional as nnf

from resnet_book import step as step_mod
from resnet_book.step import CUDAGraphStep, EagerStep, Precision, TrainingSnapshot, choose_precision, resolve_precision
from resnet_book.train import TrainConfig, build_network, make_optimizer, train

cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")


@pytest.mark.parametrize("device, capability, want", [
    ("cpu", None, "fp32"),
    ("cuda", (7, 5), "fp16"),  # T4 (Colab's free GPU): no native bf16
    ("cuda", (7, 0), "fp16"),  # V100
    ("cuda", (8, 0), "bf16"),  # A100
    ("cuda", (8, 6), "bf16"),  # RTX 30xx
    ("cuda", (9, 0), "bf16"),  # H100
    ("cuda", (12, 0), "bf16"),
    ("mps", None, "fp32"),
])
def test_auto_precision_is_bf16_only_where_the_gpu_has_it(device, capability, want):
    assert choose_precision("auto", device, capability) == want


def test_explicit_precision_is_kept_and_unknown_is_refused():
    for p in ("fp32", "bf16", "fp16"):
        assert choose_precision(p, "cuda", (7, 5)) == p and choose_precision(p, "cpu") == p
    with pytest.raises(ValueError, match="allowed: auto, fp32, bf16, fp16"):
        choose_precision("fp8", "cpu")
    with pytest.raises(ValueError, match="allowed: auto, fp32, bf16, fp16"):
        TrainConfig(precision="half")


def test_resolve_precision_asks_the_device_for_its_capability(monkeypatch):
    asked = []

    def capability(device):
        asked.append(device)
        return (7, 5)

    monkeypatch.setattr(torch.cuda, "get_device_capability", capability)
    p = resolve_precision("auto", torch.device("cuda", 0))
    assert p == Precision("fp16", "cuda") and asked == [torch.device("cuda", 0)]
    assert p.label == "fp16 autocast + GradScaler" and Precision("fp16", "cpu").grad_scaler().is_enabled()
    monkeypatch.setattr(torch.cuda, "get_device_capability", lambda d: (9, 0))
    assert resolve_precision("auto", torch.device("cuda")).label == "bf16 autocast"
    cpu = resolve_precision("auto", torch.device("cpu"))
    assert cpu.label == "fp32" and not cpu.grad_scaler().is_enabled()


def test_fp16_with_loss_scaling_trains_and_resumes_exactly_on_the_cpu(tiny, tmp_path):
    cfg = TrainConfig(model="resnet8", budget="smoke", precision="fp16", iterations=6, batch_size=16)
    full = train(cfg, data=tiny, progress=False)
    assert full["provenance"]["precision"] == "fp16 autocast + GradScaler"
    assert all(0 <= e <= 1 for e in full["curves"]["train_error"]) and full["final"]["train_loss"] < 10
    ckpt = tmp_path / "run.pt"
    part = train(cfg, data=tiny, checkpoint=ckpt, progress=False, deadline=0)
    assert torch.load(ckpt, weights_only=True)["scaler"]["scale"] > 1  # the scaler's state is kept
    while part["status"] == "paused":
        part = train(cfg, data=tiny, checkpoint=ckpt, resume=True, progress=False, deadline=time.time() + 0.5)
    assert part["final"] == full["final"] and part["curves"] == full["curves"]


def test_eager_step_accumulates_on_the_device_and_scales_fp16_losses():
    torch.manual_seed(0)
    x, y = torch.randn(8, 3, 32, 32), torch.randint(0, 10, (8,))
    cfg = TrainConfig(model="resnet8")
    results = {}
    for name in ("fp32", "fp16"):
        model = build_network(cfg, torch.device("cpu"))
        opt = make_optimizer(model, cfg)
        precision = Precision(name, "cpu")
        scaler = precision.grad_scaler()
        window = torch.zeros(2, dtype=torch.float64)
        step = EagerStep(model, opt, precision, scaler, window)
        stats = [step(x, y, 0.1).clone() for _ in range(3)]
        assert torch.equal(window, sum(stats)), name  # the window is the sum of the iterations' (loss, error)
        results[name] = (stats, scaler)
    # fp16 scales the loss (by 2**16) and unscales the gradients: the same first loss, close updates
    assert results["fp16"][1].get_scale() == 2.0 ** 16 and not results["fp32"][1].is_enabled()
    assert abs(results["fp16"][0][0][0] - results["fp32"][0][0][0]) < 1e-2
    assert abs(results["fp16"][0][2][0] - results["fp32"][0][2][0]) < 0.1


def test_warmup_iterations_before_a_capture_leave_no_trace():
    """What CUDAGraphStep does around its warm-up, on the CPU: snapshot, run iterations, restore;
    the next iteration is then bit-identical to the first iteration of an untouched copy."""
    cfg = TrainConfig(model="resnet8")
    torch.manual_seed(1)
    x, y = torch.randn(8, 3, 32, 32).contiguous(memory_format=torch.channels_last), torch.randint(0, 10, (8,))

    def iteration(model, opt):
        opt.zero_grad(set_to_none=True)
        nnf.cross_entropy(model(x), y).backward()
        opt.step()

    for resumed in (False, True):  # before SGD's first step (no momentum buffers) and after some steps
        model = build_network(cfg, torch.device("cpu"))
        opt = make_optimizer(model, cfg, fused=True)
        if resumed:
            iteration(model, opt)
        reference = copy.deepcopy((model, opt))
        window = torch.tensor([1.5, 0.25], dtype=torch.float64)
        snapshot = TrainingSnapshot(model, opt, extra=(window,))
        for _ in range(3):
            iteration(model, opt)
            window += 1
        snapshot.restore()
        assert window.tolist() == [1.5, 0.25]
        iteration(model, opt)
        iteration(*reference)
        for (k, a), b in zip(model.state_dict().items(), reference[0].state_dict().values()):
            assert torch.equal(a, b), (resumed, k)


def test_cuda_graph_is_refused_where_it_cannot_run(tiny):
    with pytest.raises(ValueError, match="needs a CUDA device"):
        train(TrainConfig(model="resnet8", budget="smoke"), data=tiny, device="cpu", cuda_graph=True, progress=False)
    model = build_network(TrainConfig(model="resnet8"), torch.device("cpu"))
    with pytest.raises(ValueError, match="CUDA device"):
        CUDAGraphStep(model, make_optimizer(model, TrainConfig()), Precision("fp32", "cpu"), torch.zeros(2))


# --- on a GPU --------------------------------------------------------------------------------------

@cuda
def test_cuda_graph_step_matches_the_eager_step():
    dev = torch.device("cuda")
    torch.backends.cudnn.benchmark = False
    cfg = TrainConfig(model="resnet8")
    torch.manual_seed(0)
    batches = [(torch.randn(32, 3, 32, 32, device=dev), torch.randint(0, 10, (32,), device=dev)) for _ in range(6)]
    runs = {}
    for graph in (False, True):
        model = build_network(cfg, dev)
        opt = make_optimizer(model, cfg, fused=True)
        precision = Precision("fp32", "cuda")
        window = torch.zeros(2, dtype=torch.float64, device=dev)
        step = (CUDAGraphStep(model, opt, precision, window) if graph
                else EagerStep(model, opt, precision, precision.grad_scaler(), window))
        lrs = [0.1, 0.1, 0.01, 0.01, 0.001, 0.001]
        stats = [step(x, y, lr).clone() for (x, y), lr in zip(batches, lrs)]
        torch.cuda.synchronize()
        runs[graph] = ({k: v.clone() for k, v in model.state_dict().items()}, torch.stack(stats), window.clone())
        if graph:
            assert step.captures == 1
            step(batches[0][0][:16], batches[0][1][:16], 0.001)  # another batch shape: captured again
            assert step.captures == 2
    (wa, sa, ga), (wb, sb, gb) = runs[False], runs[True]
    assert torch.allclose(sa, sb, rtol=1e-4, atol=1e-5), (sa, sb)
    assert torch.allclose(ga, gb, rtol=1e-4, atol=1e-5) and torch.allclose(gb, sb.sum(0))
    for k in wa:
        assert torch.allclose(wa[k].float(), wb[k].float(), rtol=1e-3, atol=1e-4), k


@cuda
@pytest.mark.parametrize("precision", ["fp32", "bf16"])
def test_training_with_a_cuda_graph_follows_the_recipe(tiny, tmp_path, precision):
    if precision == "bf16" and torch.cuda.get_device_capability() < (8, 0):
        pytest.skip("no native bf16 on this GPU")
    cfg = TrainConfig(model="resnet8", budget="smoke", precision=precision)
    eager = train(cfg, data=tiny, device="cuda", progress=False)
    graph = train(cfg, data=tiny, device="cuda", progress=False, cuda_graph=True)
    assert graph["provenance"]["cuda_graph"] is True and eager["provenance"]["cuda_graph"] is False
    assert graph["curves"]["step"] == eager["curves"]["step"] and graph["curves"]["lr"] == eager["curves"]["lr"]
    tol = 0.02 if precision == "fp32" else 0.1
    for a, b in zip(eager["curves"]["train_loss"], graph["curves"]["train_loss"]):
        assert abs(a - b) < tol * max(1, a), (a, b)
    # paused and resumed with the graph: the same recipe, and the pieces say how it ran
    ckpt = tmp_path / "run.pt"
    part = train(cfg, data=tiny, device="cuda", checkpoint=ckpt, deadline=0, progress=False, cuda_graph=True)
    while part["status"] == "paused":
        part = train(cfg, data=tiny, device="cuda", checkpoint=ckpt, resume=True, progress=False, cuda_graph=True,
                     deadline=time.time() + 1)
    assert part["provenance"]["resumed"] and all(p["cuda_graph"] for p in part["provenance"]["pieces"])
    assert part["curves"]["lr"] == eager["curves"]["lr"]


@cuda
def test_cuda_graph_with_fp16_is_refused_with_the_way_out(tiny, monkeypatch):
    monkeypatch.setattr(step_mod.torch.cuda, "get_device_capability", lambda d=None: (7, 5))
    with pytest.raises(ValueError, match="precision='fp32'"):
        train(TrainConfig(model="resnet8", budget="smoke"), data=tiny, device="cuda", cuda_graph=True, progress=False)


def test_the_step_timing_tool_times_the_eager_step_on_the_cpu():
    import importlib.util
    from pathlib import Path

    path = Path(__file__).resolve().parents[1] / "tools" / "time_step.py"
    spec = importlib.util.spec_from_file_location("time_step", path)
    tool = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(tool)
    row = tool.time_step("resnet8", "eager", device=torch.device("cpu"), precision="auto", batch_size=8, warmup=1,
                         iterations=2, repeats=2)
    assert row["precision"] == "fp32" and len(row["repeats_ms"]) == 2
    assert row["ms_per_iteration"] > 0 and min(row["repeats_ms"]) <= row["ms_per_iteration"] <= max(row["repeats_ms"])
