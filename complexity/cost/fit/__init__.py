"""Whether a training step fits in a memory budget, and the formulas that say so.

* :mod:`~complexity.cost.fit.step_formula` — the step's quantities as exact
  formulas in the batch size ``B`` (one input size), fitted from two traced steps
  and verified at held-out batches.
* :mod:`~complexity.cost.fit.traced` — the steps a formula was traced from and
  checked on, kept with it: a proof at one of those batches reads that trace.
* :mod:`~complexity.cost.fit.size_formula` — the same in ``B``, ``H`` and ``W``,
  interpolated on the lattice of sizes the strided layers allow.
* :mod:`~complexity.cost.fit.lattice` — that lattice found (on which steps of the
  sizes every number is a polynomial), the interpolation basis, and the pruning of
  the peak's ``Max`` to the terms that can be largest.
* :mod:`~complexity.cost.fit.lm_formula` — a language model's step as formulas in
  the batch ``B`` and the sequence length ``S`` (``fit --formula``): one trace on
  symbolic sizes, the peak's readings pruned by an LP, checked at held-out points.
* :mod:`~complexity.cost.fit.proofs` — will it fit: the verdict at a batch and the
  peak's parts, the largest batch and square input size that fit, each proved on
  steps traced afresh (it fits, one more does not).
* :mod:`~complexity.cost.fit.verdict` — what ``fit`` answers for a model by name:
  one :class:`FitResult` per trainable set (plain, globs, LoRA), ``--size auto``
  included; :func:`complexity.fit` returns them.
* :mod:`~complexity.cost.fit.allocator` — a model of PyTorch's CUDA caching
  allocator replaying a step's log: ``max_memory_reserved`` on a GPU.
* :mod:`~complexity.cost.fit.closed_forms` — hand-derived formulas of the course's
  stack, CNN and UNet (sympy), checked against the prediction.
"""
