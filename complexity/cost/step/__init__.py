"""What one training step is, before anything is predicted or measured.

* :mod:`~complexity.cost.step.options` — :class:`StepOptions`, every choice of a
  step in one object (optimizer, dtype, autocast, checkpointing, zero-grad,
  gradient accumulation, loss scaling) that prediction and measurement both take.
* :mod:`~complexity.cost.step.optimizers` — SGD, SGD with momentum, Adam, AdamW,
  Adafactor: their state per trainable tensor and the temporaries of their update.
* :mod:`~complexity.cost.step.adafactor` — Adafactor's factored state (by shape)
  and its update played statement by statement.
* :mod:`~complexity.cost.step.trainable` — which parameters train: ``full``,
  ``last``, or parameter-name globs.
* :mod:`~complexity.cost.step.lora` — low-rank adapters as ``peft`` adds them.
* :mod:`~complexity.cost.step.checkpointing` — which modules run under
  ``torch.utils.checkpoint``.
* :mod:`~complexity.cost.step.autocast` — autocast regions, also for CUDA on a
  machine without a GPU.
* :mod:`~complexity.cost.step.grad_scaler` — ``torch.amp.GradScaler``'s resident
  storages.
* :mod:`~complexity.cost.step.batch` — the input, the logits a model returns, the
  target and the cross-entropy loss of the step.
* :mod:`~complexity.cost.step.state` — the model's tensors swapped for the step's
  own (fake or real copies) without ``functional_call``'s pitfalls.
"""
