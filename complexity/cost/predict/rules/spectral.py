"""Fourier transforms and complex numbers (no FLOPs counted: ``FlopCounterMode``
has no formula for them): FNet's token mixing ``fft_fftn(x).real``, Llama 4's
rotary embedding ``view_as_complex(x) * polar(ones, angles)`` then
``view_as_real``.

Kept (``tools/autograd/derivatives.yaml``):

* the transforms of :data:`FFTS`: ATen (``SpectralOps.cpp``) runs each as
  ``_fft_r2c``, ``_fft_c2r`` or ``_fft_c2c``, whose backward is another transform
  of the gradient (``fft_r2c_backward(grad, dim, normalization, onesided,
  self.sym_size(dim.back()))``, ``fft_c2r_backward(grad, dim, normalization)``,
  ``_fft_c2c(grad, dim, normalization, !forward)``). ``_fft_r2c`` (a real input
  to ``rfft``, ``rfft2``, ``rfftn``, ``ihfft``, and to the 1-D ``fft`` and
  ``ifft``) keeps its input, which the derivative reads for a size; the others
  keep nothing. The n-dimensional
  complex-to-complex ones (``fftn``, ``ifftn``, ``fft2``, ``ifft2``) given a real
  input first copy it to complex (``promote_tensor_fft``): a transient of twice
  the input's bytes, alive while the transform's result is made (the 1-D ``fft``
  and ``ifft`` of a real input go through ``_fft_r2c`` without a copy). With ``s``
  or ``n`` (a padded or cut signal) they are declined.
* ``polar(abs, angle)``: the result (``polar_backward(grad, result)``).
* ``view_as_real``, ``view_as_complex``, ``fftshift``, ``ifftshift`` (a ``roll``):
  views or size-only backward, nothing kept; the two views hand the output
  gradient on (:attr:`complexity.cost.predict.graph.Call.shares_grad`).
"""
from __future__ import annotations

from typing import Optional

from complexity.cost.predict.rules.registry import Context, rule

#: Transforms whose backward is another transform of the gradient.
FFTS = ("fft_fft", "fft_ifft", "fft_rfft", "fft_irfft", "fft_ihfft", "fft_fft2", "fft_ifft2",
        "fft_rfft2", "fft_irfft2", "fft_fftn", "fft_ifftn", "fft_rfftn", "fft_irfftn")

#: Complex-to-complex transforms that copy a real input to complex first.
PROMOTING = ("fft_fft2", "fft_ifft2", "fft_fftn", "fft_ifftn")


@rule(*FFTS)
def fft(ctx: Context) -> Optional[bool]:
    """A real input: kept by ``_fft_r2c``, copied to complex (a transient) by the
    :data:`PROMOTING` ones; a complex one: nothing kept."""
    if ctx.arg(1, "s" if ctx.name[-1] in "2n" else "n") is not None:
        return False  # a padded or cut signal: another copy, not modelled
    if ctx.ins[0].is_complex():
        return None
    if ctx.name in PROMOTING:
        ctx.call.transient = 2 * ctx.input_bytes(0)
    else:  # _fft_r2c
        ctx.call.kept = [ctx.input_storage(0)]
    return None


@rule("polar")
def polar(ctx: Context) -> None:
    """The result kept."""
    ctx.call.kept = [ctx.output_storage(0)]


@rule("view_as_real", "view_as_complex", "fft_fftshift", "fft_ifftshift")
def complex_view(ctx: Context) -> None:
    """Nothing kept; the views hand their gradient on."""
    ctx.call.shares_grad = ctx.name.startswith("view_as")
