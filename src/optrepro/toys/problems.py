"""The thesis's toy objectives and their (sub)gradients, on plain tensors.

Two-dimensional problems take ``[..., 2]`` tensors (one point per row, many starting points at once) and return
``[...]`` values or ``[..., 2]`` gradients. The non-convex regression of TH section 4.7 takes ``[..., P]`` parameter
rows. Everything here is exact math on tensors: no autograd, no optimizer; the loops live in ``experiments.py``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import Tensor

# ---- TH Figure 2.1: non-smooth Rosenbrock-like valley ---------------------------------------------------------


def rosenbrock_ns(t: Tensor) -> Tensor:
    """TH section 2.6.1: J = 100 (t2 - |t1|)^2 + |1 - t1|, a V-shaped valley with one critical point, (1, 1)."""
    return 100 * (t[..., 1] - t[..., 0].abs()) ** 2 + (1 - t[..., 0]).abs()


def rosenbrock_ns_grad(t: Tensor) -> Tensor:
    """A Clarke subgradient of ``rosenbrock_ns``: the gradient where J is differentiable (|t1| != 0, t1 != 1);
    at the kinks the selection sign(0) = 0, which is what automatic differentiation returns (TH section 2.3.3)."""
    r = t[..., 1] - t[..., 0].abs()
    g1 = -200 * r * torch.sign(t[..., 0]) - torch.sign(1 - t[..., 0])
    return torch.stack([g1, 200 * r], dim=-1)


# ---- TH Figure 3.2: a convex quadratic ------------------------------------------------------------------------


def quadratic(t: Tensor) -> Tensor:
    """TH section 3.3.2.3: J = t1^2 + 2 t2^2, Hessian diag(2, 4), minimizer (0, 0)."""
    return t[..., 0] ** 2 + 2 * t[..., 1] ** 2


def quadratic_grad(t: Tensor) -> Tensor:
    return torch.stack([2 * t[..., 0], 4 * t[..., 1]], dim=-1)


# ---- TH Table 3.1: a strict saddle ------------------------------------------------------------------------------

SADDLE_POINTS = {"(-sqrt2, 0)": (-math.sqrt(2), 0.0), "(sqrt2, 0)": (math.sqrt(2), 0.0), "(0, 0)": (0.0, 0.0)}
"""The critical points of ``saddle``: two minimizers and the strict saddle (TH section 3.4.4)."""


def saddle(t: Tensor) -> Tensor:
    """TH section 3.4.4: J = t1^4 - 4 t1^2 + t2^2; its stable manifold at (0, 0) is the line t1 = 0."""
    return t[..., 0] ** 4 - 4 * t[..., 0] ** 2 + t[..., 1] ** 2


def saddle_grad(t: Tensor) -> Tensor:
    return torch.stack([4 * t[..., 0] ** 3 - 8 * t[..., 0], 2 * t[..., 1]], dim=-1)


def saddle_points(dtype: torch.dtype = torch.float64) -> Tensor:
    """``SADDLE_POINTS`` as a [3, 2] tensor, in the dict's order."""
    return torch.tensor(list(SADDLE_POINTS.values()), dtype=dtype)


# ---- TH section 4.7: non-convex regression (Carmon et al. 2017) ------------------------------------------------


def phi(t: Tensor) -> Tensor:
    """phi(t) = t^2 / (1 + t^2): convex for |t| < 1/sqrt(3), concave beyond (TH eq. 4.21)."""
    return t**2 / (1 + t**2)


def phi_prime(t: Tensor) -> Tensor:
    return 2 * t / (1 + t**2) ** 2


def phi_second(t: Tensor) -> Tensor:
    return (2 - 6 * t**2) / (1 + t**2) ** 3


@dataclass(frozen=True)
class Regression:
    """J(theta) = 1/N sum_n phi(A_n theta - b_n) (TH eq. 4.21), for one or many parameter rows [..., P].

    ``rows`` (an index tensor) restricts the sum to a minibatch: J_B = 1/|B| sum_{n in B} (TH eq. 4.9).
    """

    A: Tensor  # [N, P]
    b: Tensor  # [N]

    @property
    def n(self) -> int:
        return self.A.shape[0]

    def _data(self, rows: Tensor | None) -> tuple[Tensor, Tensor]:
        return (self.A, self.b) if rows is None else (self.A[rows], self.b[rows])

    def residuals(self, theta: Tensor, rows: Tensor | None = None) -> Tensor:
        A, b = self._data(rows)
        return theta @ A.T - b

    def value(self, theta: Tensor, rows: Tensor | None = None) -> Tensor:
        return phi(self.residuals(theta, rows)).mean(-1)

    def grad(self, theta: Tensor, rows: Tensor | None = None) -> Tensor:
        """grad J_B(theta) = 1/|B| sum_n phi'(r_n) A_n."""
        A, b = self._data(rows)
        r = theta @ A.T - b
        return phi_prime(r) @ A / A.shape[0]

    def expected_curvature(self, theta: Tensor, batch: int) -> Tensor:
        """E[C_{J_A}(theta)] = E[grad^2 J_A(theta) grad J_A(theta)] over A, a subset of ``batch`` rows drawn
        uniformly without replacement (TH eq. 4.11-4.12, used by Expected-GV, Algorithm 6).

        With m = batch, g_i = phi'(r_i) A_i and H_i = phi''(r_i) A_i A_i^T: C_A = 1/m^2 sum_{i, j in A} H_i g_j,
        and P(i in A) = m / N, P(i, j in A) = m (m - 1) / (N (N - 1)) for i != j, so
        E[C_A] = 1/m^2 [m/N D + m (m-1) / (N (N-1)) (S_H S_g - D)], D = sum_i H_i g_i, S_H = sum_i H_i,
        S_g = sum_i g_i. With m = N this is grad^2 J grad J.
        """
        n, m = self.n, batch
        r = self.residuals(theta)
        d1, d2 = phi_prime(r), phi_second(r)  # [..., N]
        sq = (self.A**2).sum(-1)  # ||A_i||^2
        diag = (d2 * d1 * sq) @ self.A  # D
        s_g = d1 @ self.A  # S_g, [..., P]
        cross = (d2 * (s_g @ self.A.T)) @ self.A  # S_H S_g
        pair = m * (m - 1) / (n * (n - 1)) if n > 1 else 0.0
        return ((m / n) * diag + pair * (cross - diag)) / m**2


def carmon_regression(n: int, p: int, seed: int, dtype: torch.dtype = torch.float64) -> Regression:
    """The robust-regression data of Carmon et al. (2017, section 5.1), which TH section 4.7 refers to:
    A with i.i.d. N(0, 1) entries, z ~ N(0, 4 I_P), b = A z + 3 nu_1 + nu_2 with nu_1 ~ N(0, I_N) and nu_2 i.i.d.
    Bernoulli(0.3). Drawn from ``seed`` with torch's generator (the thesis does not give its seed or draw)."""
    g = torch.Generator().manual_seed(seed)
    A = torch.randn(n, p, generator=g, dtype=dtype)
    z = 2 * torch.randn(p, generator=g, dtype=dtype)
    nu1 = torch.randn(n, generator=g, dtype=dtype)
    nu2 = torch.bernoulli(torch.full((n,), 0.3, dtype=dtype), generator=g)
    return Regression(A=A, b=A @ z + 3 * nu1 + nu2)
