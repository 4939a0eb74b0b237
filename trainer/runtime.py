"""Process set-up every command shares: TensorFlow's log level, thread pools and precision.

TensorFlow reads its log level when it is imported and fixes its thread pools at the first op,
so both happen here, before anything else touches TensorFlow.
"""

from __future__ import annotations

import contextlib
import importlib.abc
import importlib.util
import logging
import os
import sys
import warnings

VERBOSE_ENV = "TRAINER_VERBOSE"  # set to 1 to see TensorFlow's own log lines again


def quiet_tf(verbose: bool | None = None) -> None:
    """Silences TensorFlow's C++ and Python logging (errors from our code still print).

    Must run before TensorFlow is imported to reach the C++ start-up lines; `trainer/__init__.py`
    calls it, so every `python -m trainer.X` is quiet from its first line.
    """
    if verbose is None:
        verbose = os.environ.get(VERBOSE_ENV, "") not in ("", "0")
    if verbose:
        os.environ["TF_CPP_MIN_LOG_LEVEL"] = "0"
        return
    os.environ["TF_CPP_MIN_LOG_LEVEL"] = "3"
    os.environ.setdefault("GRPC_VERBOSITY", "ERROR")
    if "tensorflow" not in sys.modules and not any(isinstance(f, _QuietTensorFlowImport) for f in sys.meta_path):
        sys.meta_path.insert(0, _QuietTensorFlowImport())
    logging.getLogger("tensorflow").setLevel(logging.ERROR)
    logging.getLogger("absl").setLevel(logging.ERROR)
    warnings.filterwarnings("ignore", module="tensorflow")
    warnings.filterwarnings("ignore", module="keras")


@contextlib.contextmanager
def _stderr_silenced():
    """Points file descriptor 2 at /dev/null: C++ writes to stderr go nowhere meanwhile."""
    sys.stderr.flush()
    saved, devnull = os.dup(2), os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(devnull, 2)
        yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)
        os.close(devnull)


class _SilentLoader(importlib.abc.Loader):
    def __init__(self, inner):
        self.inner = inner

    def create_module(self, spec):
        return self.inner.create_module(spec)

    def exec_module(self, module):
        with _stderr_silenced():
            self.inner.exec_module(module)

    def __getattr__(self, name):  # everything else (resources, source) from the real loader
        return getattr(self.inner, name)


class _QuietTensorFlowImport(importlib.abc.MetaPathFinder):
    """Silences stderr while `import tensorflow` runs, once.

    Where TensorFlow turns oneDNN on (recent Intel CPUs) it logs start-up lines through absl before
    logging is initialised, which TF_CPP_MIN_LOG_LEVEL does not reach in TF 2.21. A failed import
    still raises its Python error, printed after stderr is back.
    """

    def find_spec(self, name, path=None, target=None):
        if name != "tensorflow":
            return None
        sys.meta_path.remove(self)
        spec = importlib.util.find_spec(name)
        if spec is not None and spec.loader is not None:
            spec.loader = _SilentLoader(spec.loader)
        return spec


def set_verbose() -> None:
    """Brings TensorFlow's logs back (the commands' --tf-logs flag), for lines logged from now on."""
    os.environ[VERBOSE_ENV] = "1"
    quiet_tf(True)
    logging.getLogger("tensorflow").setLevel(logging.INFO)
    logging.getLogger("absl").setLevel(logging.INFO)


# --precision: Keras's dtype policy while training. "bfloat16" is Keras mixed precision: layers
# compute in bfloat16 and keep float32 weights, so the trained weights load into a float32 twin.
PRECISIONS = {"float32": "float32", "bfloat16": "mixed_bfloat16"}


def set_precision(precision: str) -> None:
    """Sets the dtype policy of the layers built after this call."""
    import keras

    if precision not in PRECISIONS:
        raise ValueError(f"unknown precision {precision!r}; choose from {sorted(PRECISIONS)}")
    keras.mixed_precision.set_global_policy(PRECISIONS[precision])


def configure(threads: int = 0, precision: str | None = None) -> None:
    """Thread pools (0 = TF's default, all cores) and, if given, the dtype policy.

    Call before the first TensorFlow op: TF fixes its pools then, and a later call has no effect.
    """
    if threads < 0:
        raise ValueError(f"threads must be >= 0, got {threads}")
    import tensorflow as tf

    if threads > 0:
        tf.config.threading.set_intra_op_parallelism_threads(threads)
        tf.config.threading.set_inter_op_parallelism_threads(threads)
    if precision is not None:
        set_precision(precision)
