"""One optimizer step on a ResNet-20-sized list of parameters (0.27M in 65 tensors): INNA and Step-Tuned SGD
against torch.optim.SGD with momentum (foreach), measured side by side in one run, on the CPU and on a GPU if
present. Gradients are fixed tensors, so only the optimizers' own work is timed; for Step-Tuned SGD the closure
does nothing (its two gradient evaluations are not counted), which leaves its extra work.

Goals (issue 3): INNA <= 1.3x SGD with momentum; Step-Tuned SGD's extra work <= 1.5x one SGD step.
"""

import time

import torch

from optrepro.optim import INNA, StepTunedSGD


def resnet20_shapes() -> list[tuple[int, ...]]:
    shapes = [(16, 3, 3, 3), (16,), (16,)]
    c_in = 16
    for c in (16, 32, 64):
        for block in range(3):
            shapes += [(c, c_in if block == 0 else c, 3, 3), (c,), (c,), (c, c, 3, 3), (c,), (c,)]
        c_in = c
    return shapes + [(10, 64), (10,)]


def time_step(make, device: torch.device, repeats: int) -> float:
    torch.manual_seed(0)
    params = [torch.nn.Parameter(torch.randn(s, device=device) * 0.1) for s in resnet20_shapes()]
    for p in params:
        p.grad = torch.randn_like(p) * 0.01
    opt = make(params)

    def closure():
        return torch.zeros((), device=device)

    def step():
        opt.step(closure)

    for _ in range(10):
        step()
    sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)
    sync()
    start = time.perf_counter()
    for _ in range(repeats):
        step()
    sync()
    return (time.perf_counter() - start) / repeats


def main() -> None:
    devices = [torch.device("cpu")] + ([torch.device("cuda")] if torch.cuda.is_available() else [])
    n = sum(torch.Size(s).numel() for s in resnet20_shapes())
    print(f"torch {torch.__version__}; {n} parameters in {len(resnet20_shapes())} tensors")
    print(f"{'device':7s} {'SGD+momentum us':>16s} {'INNA us':>9s} {'ratio':>6s} {'StepTuned us':>13s} {'ratio':>6s}")
    for device in devices:
        sgd = time_step(lambda p: torch.optim.SGD(p, lr=0.1, momentum=0.9, foreach=True), device, 200)
        inna = time_step(lambda p: INNA(p, lr=0.1, foreach=True), device, 200)
        stsgd = time_step(lambda p: StepTunedSGD(p, lr=0.1), device, 200)
        print(
            f"{device.type:7s} {sgd * 1e6:16.0f} {inna * 1e6:9.0f} {inna / sgd:6.2f} {stsgd * 1e6:13.0f} "
            f"{stsgd / sgd:6.2f}"
        )


if __name__ == "__main__":
    main()
