"""Runtime settings, the ground floor every layer may use: it imports no other package here.

- :mod:`~seq2seq.runtime.device`: the device (``auto`` | ``cpu`` | ``cuda``), CPU threads,
  native bf16, TF32 and peak GPU memory;
- :mod:`~seq2seq.runtime.precision`: ``auto`` | ``fp32`` | ``bf16`` | ``fp16`` resolved to a
  :class:`~seq2seq.runtime.precision.Precision` (autocast, gradient scaler), for training and
  decoding alike;
- :mod:`~seq2seq.runtime.dropout`: the dropout used by the models (a cheaper CPU mask);
- :mod:`~seq2seq.runtime.allocator`: glibc malloc keeping freed blocks in the process.
"""
