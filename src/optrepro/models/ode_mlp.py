"""The neural ODE of GC section 3.2 (Figures 6, 7): dx/dt = MLP([x, mu]), integrated over the data's time grid.

The authors' code (GC App. F, not in our copy; PAPERS.md): a fully connected field of ``layers`` linear layers, 50
hidden units, ReLU after each hidden layer, no output activation, Xavier-uniform weights (biases zero: not stated in
the paper); the trajectory starts at the data's initial state and is integrated with an adaptive solver (dopri5).
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from optrepro.extras import require
from optrepro.models.mlp import linear_stack


class VectorField(nn.Module):
    def __init__(self, net: nn.Module, mu: Tensor):
        super().__init__()
        self.net, self.mu = net, mu

    def forward(self, t: Tensor, x: Tensor) -> Tensor:
        return self.net(torch.cat([x, self.mu], -1))


class NeuralODE(nn.Module):
    """``((mu [B, p], x0 [B, d])) -> trajectory [B, T, d]`` on the fixed grid of ``n_times`` points on [0, t_end].

    ``layers`` counts linear layers (Lotka-Volterra 5: 4 -> 50 x 4 -> 2; Lorenz 20). ``adjoint`` integrates the
    backward pass with torchdiffeq's adjoint method (less memory; gradients through the solver otherwise).
    """

    def __init__(
        self,
        state_dim: int,
        param_dim: int,
        t_end: float,
        n_times: int,
        hidden: int = 50,
        layers: int = 5,
        method: str = "dopri5",
        rtol: float = 1e-4,
        atol: float = 1e-6,
        adjoint: bool = False,
    ):
        super().__init__()
        require("torchdiffeq", "ode", "model=gc_neural_ode")  # forward() integrates with it
        if layers < 1:
            raise ValueError(f"model.layers={layers} must be >= 1")
        self.net = linear_stack([state_dim + param_dim] + [hidden] * (layers - 1) + [state_dim], "relu", "xavier")
        self.register_buffer("times", torch.linspace(0.0, float(t_end), int(n_times)), persistent=False)
        self.method, self.rtol, self.atol, self.adjoint = method, float(rtol), float(atol), bool(adjoint)

    def forward(self, inputs: tuple[Tensor, Tensor]) -> Tensor:
        from torchdiffeq import odeint, odeint_adjoint

        mu, x0 = inputs
        field = VectorField(self.net, mu)
        opts = {"rtol": self.rtol, "atol": self.atol, "method": self.method}
        if self.adjoint:
            traj = odeint_adjoint(field, x0, self.times, adjoint_params=tuple(self.net.parameters()), **opts)
        else:
            traj = odeint(field, x0, self.times, **opts)
        return traj.transpose(0, 1)
