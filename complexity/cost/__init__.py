"""One training step — forward, loss, backward, the optimizer's update — and what
it costs in memory and FLOPs: predicted from the model's structure, measured on a
real or fake run, and turned into answers ("will it fit?").

The package is laid out by the four questions it answers; imports point down
this list, and prediction never imports measurement (``tests/test_layers.py``):

* :mod:`~complexity.cost.step` — what a step *is*: its options, the optimizers,
  which parameters train, LoRA, activation checkpointing, autocast, the GradScaler,
  the batch, the loss and its target, and the stand-in tensors a step runs on.
* :mod:`~complexity.cost.predict` — how a step is *predicted*: the graph of a
  traced forward, the per-call rules, the liveness schedule,
  and :func:`~complexity.cost.predict.prediction.predict`.
* :mod:`~complexity.cost.measure` — how a step is *measured*: the live-bytes
  tracker, the fake or real CPU step, the float16 CUDA replay and the real GPU step.
* :mod:`~complexity.cost.fit` — whether it *fits*: exact formulas in the batch and
  in the input's size, the CUDA caching-allocator model, budget verdicts and their
  proofs, and the closed forms of the course's networks.

:mod:`~complexity.cost.parallel` answers the same questions per rank of a
data-parallel step (DDP, FSDP2) over N GPUs: its prediction stands on
:mod:`~complexity.cost.predict`, its truth is a real multi-process run on the CPU.

Shared by all four: :mod:`~complexity.cost.keys` (the names of the quantities) and
:mod:`~complexity.cost.flops` (PyTorch's FLOP counter, corrected for grouped
convolutions). :mod:`~complexity.cost.finetune` is the sweep behind the
``finetune`` command: grids of models, sizes, batches and trainable sets,
predicted and measured.
"""
