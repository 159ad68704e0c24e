"""Many GPUs: the memory of one data-parallel training step, per rank — predicted
from the single-process step and the layout, and measured on a real multi-process
run.

* :mod:`~complexity.cost.parallel.layout` — the layouts (DDP, FSDP, FSDP without
  resharding), the FSDP units a glob picks, and each rank's shard of a parameter
  (dim 0, padded as ``fully_shard`` pads it).
* :mod:`~complexity.cost.parallel.policy` — FSDP2's policies: :class:`Precision`
  (``MixedPrecisionPolicy`` by dtype names, ``--mixed-precision``), the dtypes a
  parameter is gathered and reduced in, and the copy of the model FSDP2's forward
  computes with; CPU offload is a flag of the layout.
* :mod:`~complexity.cost.parallel.prediction` — :func:`predict_ranks`: what each
  rank holds and its peak, from the single-process prediction and the layout
  (with mixed precision, and the device's and the host's bytes when offloaded).
* :mod:`~complexity.cost.parallel.timeline` — FSDP2's peak: the single-process
  step's log replayed with the shards, and FSDP2's gathers, reduce-scatters and
  their buffers inserted where its hooks run.

The layout, the prediction, the timeline and the answers never import the measurement
(``tests/test_layers.py``).
* :mod:`~complexity.cost.parallel.answers` — :func:`rank_fit`: does a step fit
  per rank, the largest per-rank batch and the fewest GPUs, each proved at the
  answer and one past it.
* :mod:`~complexity.cost.parallel.tracker` — :class:`RankBytes`, the live-bytes
  tracker made to follow FSDP2's storage resizes and ``DTensor``\\ s.
* :mod:`~complexity.cost.parallel.gloo_step` — the truth: a real step of N
  processes over gloo on the CPU, each rank watched by :class:`RankBytes`, by
  PyTorch's ``FSDPMemTracker`` / ``MemTracker`` and, if asked, by
  ``torch.profiler``'s memory events.
* :mod:`~complexity.cost.parallel.fake_group` — the second instrument at any N:
  one rank on a fake process group with fake tensors (an 8B model on 8 ranks).
"""
