r"""The native engine's block evaluation on torch, for a GPU: every row of a block in one pass.

:class:`TorchSpectralBlock` computes what :class:`~ulyss_ann.fitting.native_engine.block.SpectralBlock`
computes — for L rows (spectrum × guess) the χ² = Σr², Jᵀr, JᵀJ and the float32 best fit
of the paper's Eq. 8 with ULySS's sampled LOSVD and the variable projection of the
multiplicative polynomial — with the same formulas, in float64, as a few batched torch
operations over all L rows at once (no chunks: a GPU wants thousands of rows). The
optimiser (:func:`~ulyss_ann.fitting.native_engine.lockstep.levenberg_marquardt`) stays on the CPU;
each round sends θ (L × P numbers) and gets back χ², Jᵀr and JᵀJ; the best fits stay on
the device until the end (:meth:`TorchSpectralBlock.host`).

The sampled LOSVD of each row is ULySS's kernel (:func:`~ulyss_ann.fitting.native_engine.sampled_losvd.losvd_kernel`)
written over the widest row's taps: taps beyond a row's own ``dx`` are beyond 5σ of it,
where ULySS's kernel is zero, so each row's convolution is its own; the edge values
repeat as IDL's ``CONVOL(/EDGE_TRUNCATE)`` repeats them.

The engine uses it with ``device="cuda"`` (or ``"auto"`` where torch sees a GPU);
``device="torch-cpu"`` runs this same code on the CPU, which is how the tests check
that it gives the CPU path's answers on a machine without a GPU.

Units: v, σ and ``voff`` in pixels of the ln-λ grid; θ[2:] in the network's units.
"""

import numpy as np

__all__ = ["TorchSpectralBlock", "torch_device", "gpu_requested", "GPU_BLOCK_SPECTRA"]

#: Spectra of one grid fitted together on a GPU (the CPU path takes 32): a GPU needs thousands
#: of rows to be busy. Not tuned: no GPU has been lent to measure it on.
GPU_BLOCK_SPECTRA = 2048


def gpu_requested(device, losvd="sampled"):
    """Whether ``device`` (with ``losvd``) will run the torch path, told without importing torch
    (for sizing tasks): never with the analytic LOSVD, which the torch block does not have."""
    if losvd == "analytic":
        return False
    if device == "auto":
        import importlib.util

        return _nvidia_driver() and importlib.util.find_spec("torch") is not None
    return device != "cpu"


def torch_device(device):
    """The torch device for the engine's ``device`` option, or None for the NumPy path.

    ``cpu``: None (NumPy and numba); ``auto``: ``cuda`` when an NVIDIA driver is loaded
    (``/proc/driver/nvidia/version``; not under WSL2: name the device there) and torch
    imports and sees a GPU, else None; ``torch-cpu``: torch on the CPU; ``cuda``,
    ``cuda:N``: that GPU (ValueError, one line, when torch or the GPU is missing).
    """
    if device == "cpu" or (device == "auto" and not _nvidia_driver()):
        return None  # no GPU to look for: torch (seconds to import) is not imported
    try:
        import torch
    except Exception as exc:  # not installed, or broken (a CUDA library missing: OSError)
        if device == "auto":
            return None
        raise ValueError(f"device (--device) '{device}' needs torch, which does not import here "
                         f"({type(exc).__name__}: {exc}): pip install torch (the train extra)") from None
    if device == "auto":
        return torch.device("cuda") if torch.cuda.is_available() else None
    if device == "torch-cpu":
        return torch.device("cpu")
    if not device.startswith("cuda"):
        raise ValueError(f"device (--device) '{device}': choose auto, cpu, cuda, cuda:N or torch-cpu")
    if not torch.cuda.is_available():
        raise ValueError(f"device (--device) '{device}': torch sees no GPU here (torch {torch.__version__}); use cpu")
    if ":" in device and int(device.split(":")[1]) >= torch.cuda.device_count():
        raise ValueError(f"device (--device) '{device}': torch sees {torch.cuda.device_count()} GPU(s), "
                         f"cuda:0 to cuda:{torch.cuda.device_count() - 1}")
    return torch.device(device)


def _nvidia_driver():
    """Whether an NVIDIA driver is loaded here (a cheap test before importing torch)."""
    import os

    return os.path.exists("/proc/driver/nvidia/version")


def _activation(torch, name):
    """(σ(z), σ'(z, σ(z))) in torch, as :data:`~ulyss_ann.model.network.ACTIVATIONS` has them."""
    if name == "logistic":  # exp's argument capped at 700, as the NumPy one
        return (lambda z: 1.0 / (1.0 + torch.exp(torch.clamp(-z, max=700.0))), lambda z, h: h * (1.0 - h))
    if name == "tanh":
        return torch.tanh, lambda z, h: 1.0 - h * h
    if name == "relu":
        return torch.relu, lambda z, h: (z > 0).to(z.dtype)
    if name == "linear":
        return (lambda z: z), None
    raise ValueError(f"activation '{name}' has no torch form")


class TorchSpectralBlock:
    """S spectra on one ln-λ grid evaluated for many rows at once on a torch device.

    The parameters are those of :class:`~ulyss_ann.fitting.native_engine.block.SpectralBlock`
    (``losvd`` must be ``sampled``), plus ``device`` (a ``torch.device``).
    """

    def __init__(self, network, layer, data, weights, mdegree, voff, losvd, free, device):
        import torch
        from numpy.polynomial import legendre

        from ulyss_ann.fitting.native_engine.block import legendre_products  # here: numba stays out of the driver

        if losvd != "sampled":
            raise ValueError("the torch block has ULySS's sampled LOSVD only; use device='cpu' for the analytic one")
        self.torch, self.device = torch, device
        n = np.shape(data)[1]

        def put(array):
            return torch.tensor(np.asarray(array, dtype=np.float64), device=device)  # a copy: cached arrays are read-only

        self.layers = [put(w) for w in network.hidden] + [put(np.asarray(layer)[:, :n])]
        self.activations = [_activation(torch, name) for name in network.activations]
        self.means, self.scales = put(network.means), put(network.scales)
        self.free = np.asarray(free, bool)
        if not self.free[:2].all():
            raise ValueError("the native engine always fits v and σ")
        self.free_net = put(np.flatnonzero(self.free[2:])).long()
        self.voff, self.n = float(voff), n
        self.weights = put(weights)
        self.scaled_data = put(np.asarray(data, float) * np.asarray(weights, float))
        x = 2.0 * np.arange(n) / n - 1.0
        self.legendre = put(legendre.legvander(x, mdegree))
        self.legendre_double = put(legendre.legvander(x, 2 * mdegree))
        self.pair_coefficients = put(legendre_products(mdegree))

    def _network(self, x):
        """f (L, n) and ∂f/∂p_free (L, F', n) at standardised inputs x (L, n_in)."""
        torch = self.torch
        rows = x.shape[0]
        h = x
        jac = torch.zeros((rows, self.free_net.numel(), x.shape[1]), dtype=x.dtype, device=self.device)
        jac[:, torch.arange(self.free_net.numel(), device=self.device), self.free_net] = 1.0 / self.scales[self.free_net]
        for w, (activate, derivative) in zip(self.layers, self.activations):
            z = w[0] + h @ w[1:]
            h = activate(z)
            jac = jac @ w[1:]
            if derivative is not None:
                jac = jac * derivative(z, h)[:, None, :]
        return h, jac

    def _losvd(self, stack, vel, sigma):
        """ULySS's sampled LOSVD of each row: t (L, n) and ∂t/∂(v, σ, p_free) (L, 2 + F', n)."""
        torch = self.torch
        n = self.n
        dx = np.ceil(np.abs(self.voff) + np.abs(vel.cpu().numpy()) + 5 * sigma.cpu().numpy()).max()
        dx = int(min(dx, (n - 1) / 2))
        x = dx - torch.arange(2 * dx + 1, dtype=stack.dtype, device=self.device)        # taps, ULySS's order
        sig = torch.clamp(sigma, min=0.1)[:, None]
        w = (x[None, :] - (self.voff + vel)[:, None]) / sig
        g = torch.where(w.abs() <= 5, torch.exp(-0.5 * w * w), torch.zeros_like(w))
        total = g.sum(dim=1, keepdim=True)
        kern = g / total
        dg_dv = g * w / sig
        dg_ds = torch.where((sigma > 0.1)[:, None], g * w * w / sig, torch.zeros_like(g))
        dk_dv = (dg_dv - kern * dg_dv.sum(dim=1, keepdim=True)) / total
        dk_ds = (dg_ds - kern * dg_ds.sum(dim=1, keepdim=True)) / total
        padded = stack[:, :, torch.clamp(torch.arange(-dx, n + dx, device=self.device), 0, n - 1)]  # EDGE_TRUNCATE
        conv = torch.zeros_like(stack)
        d_v = torch.zeros_like(stack[:, 0])
        d_s = torch.zeros_like(stack[:, 0])
        for k in range(2 * dx + 1):  # tap by tap: memory of a few copies of the block, whatever the width
            shifted = padded[:, :, k:k + n]
            conv += kern[:, k, None, None] * shifted
            d_v += dk_dv[:, k, None] * shifted[:, 0]
            d_s += dk_ds[:, k, None] * shifted[:, 0]
        return conv[:, 0], torch.cat([d_v[:, None], d_s[:, None], conv[:, 1:]], dim=1)

    def evaluate(self, thetas, owners):
        """χ² (L,), Jᵀr (L, F), JᵀJ (L, F, F) as NumPy arrays, and the float32 best fits (L, n) on the device."""
        torch = self.torch
        theta = torch.as_tensor(np.asarray(thetas, float), device=self.device)
        owners = torch.as_tensor(np.asarray(owners), device=self.device)
        f, df = self._network((theta[:, 2:] - self.means) / self.scales)
        t, dt = self._losvd(torch.cat([f[:, None], df], dim=1), theta[:, 0], theta[:, 1])
        weights, y = self.weights[owners], self.scaled_data[owners]
        tw, dt = t * weights, dt * weights[:, None]
        rows, size = len(theta), self.legendre.shape[1]
        normal = (((tw * tw) @ self.legendre_double) @ self.pair_coefficients).reshape(rows, size, size)
        chol, info = torch.linalg.cholesky_ex(normal)
        if bool((info != 0).any()):
            raise np.linalg.LinAlgError("a polynomial's normal matrix is singular")
        coef = torch.cholesky_solve(((tw * y) @ self.legendre)[:, :, None], chol)[:, :, 0]
        poly = coef @ self.legendre.T
        bestfit = (t * poly).to(torch.float32)                  # ULySS keeps it in float32
        model = tw * poly
        r = y - model
        # Golub–Pereyra, as SpectralBlock: ∂r/∂θ = −[∂B c − B (BᵀB)⁻¹ Lᵀ(∂t/e ∘ (2Bc − y))]
        rhs = (dt * (2 * model - y)[:, None]) @ self.legendre                       # (L, F, K)
        correction = torch.cholesky_solve(rhs.transpose(1, 2), chol).transpose(1, 2)
        jac = tw[:, None] * (correction @ self.legendre.T) - dt * poly[:, None]      # (L, F, n)
        grad = (jac @ r[:, :, None])[:, :, 0]
        jtj = jac @ jac.transpose(1, 2)
        cost = (r * r).sum(dim=1)
        return cost.cpu().numpy(), grad.cpu().numpy(), jtj.cpu().numpy(), bestfit

    def host(self, bestfit):
        """Best fits from the device, as the NumPy path gives them (float64 holding float32 values)."""
        return bestfit.cpu().numpy().astype(np.float64)
