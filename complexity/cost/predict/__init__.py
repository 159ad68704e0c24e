"""How one training step is predicted from the model's structure, without running
it (the meta device: nothing allocated; only a forward that reads values, such as
its token ids, has those values computed on the CPU). Never imports
:mod:`complexity.cost.measure`.

* :mod:`~complexity.cost.predict.graph` — the record of a traced forward: values,
  storages, calls, checkpointed segments.
* :mod:`~complexity.cost.predict.trace` — the tracer that fills it, one call per
  functional call of the forward and the loss.
* :mod:`~complexity.cost.predict.meta_cache` — the results of meta kernels
  remembered by their arguments' metadata (a trace's slow Python kernels, such as
  batch norm's, run once per size; autograd still records every node).
* :mod:`~complexity.cost.predict.leaves` — pytree's flatten and map, faster on the
  plain tuples, lists and dicts a traced call's arguments are made of.
* :mod:`~complexity.cost.predict.custom` — custom ``torch.autograd.Function``\ s
  (which no ``TorchFunctionMode`` sees) recorded as one node each, their backward's
  FLOPs and temporaries read off one run of it.
* :mod:`~complexity.cost.predict.shadow` — the CPU values of the traced tensors
  that depend on no weight (the batch, buffers, constants), computed only when a
  call needs them (``Tensor.item()`` on the ids): the trace takes the real step's path.
* :mod:`~complexity.cost.predict.rules` — per-call rules (a registry keyed by the
  call's name): what each call keeps for backward and what it costs in FLOPs.
* :mod:`~complexity.cost.predict.schedule` — the liveness schedule: forward,
  backward and the update walked in order, every storage made and freed; the peak.
* :mod:`~complexity.cost.predict.recompute` — which calls of a checkpointed
  segment save tensors, and which backward replays them.
* :mod:`~complexity.cost.predict.log` — the schedule's typed step log (events with
  a kind, a key and the category of the peak they belong to) and
  :class:`~complexity.cost.predict.log.StepLog`, which the formulas and the
  allocator model read by field.
* :mod:`~complexity.cost.predict.prediction` — :func:`predict`: the step's
  quantities (:data:`complexity.cost.keys.KEYS`), and which calls were unmodelled.
* :mod:`~complexity.cost.predict.symbolic` — the same prediction traced once on
  symbolic input sizes (B, S, H, W, T): every quantity a sympy expression with the
  floors of strided layers, the peak the maximum of the schedule's readings.
"""
