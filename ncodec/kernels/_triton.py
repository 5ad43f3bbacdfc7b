"""Whether Triton can be used here, without importing it more than once or failing loudly."""
from __future__ import annotations

import functools
import importlib.util
import os


def interpreting() -> bool:
    """Whether ``TRITON_INTERPRET=1``: kernels then run on CPU tensors through Triton's interpreter."""
    return os.environ.get("TRITON_INTERPRET", "0").strip().lower() in ("1", "true", "yes", "on")


@functools.cache
def triton_missing_reason() -> str | None:
    """None when ``import triton`` works, else why it does not (for skip and error messages)."""
    if importlib.util.find_spec("triton") is None:
        return "triton is not installed (pip install 'ncodec[gpu]', or a CUDA build of torch that ships it)"
    try:
        import triton.language  # noqa: F401  (the import is the check)
    except Exception as e:  # noqa: BLE001  (a broken install must not break ncodec)
        return f"triton cannot be imported: {type(e).__name__}: {e}"
    return None


def triton_available() -> bool:
    """Whether Triton imports here."""
    return triton_missing_reason() is None
