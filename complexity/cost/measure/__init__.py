"""How one training step is measured: run for real or on fake tensors, each
quantity by its own instrument in its own pass. The truth the predictions of
:mod:`complexity.cost.predict` are checked against.

* :mod:`~complexity.cost.measure.live_bytes` — :class:`LiveBytes`, the dispatch-level
  tracker of every storage alive (the peak).
* :mod:`~complexity.cost.measure.cpu_step` — :func:`measure`: one step on fake or
  real CPU tensors, with FLOPs (``FlopCounterMode``), the peak (:class:`LiveBytes`)
  and the saved activations (``saved_tensors_hooks``) each in a pass of its own.
* :mod:`~complexity.cost.measure.cuda_replay` — a float16 autocast (CUDA) forward
  recorded on fake CUDA tensors and replayed on fake CPU ones, so its backward runs
  without a GPU.
* :mod:`~complexity.cost.measure.cuda_step` — one real step on a GPU, where one is
  at hand (``torch.cuda.max_memory_allocated`` and ``max_memory_reserved``).
"""
