"""The helpers submissions import, under the name they import them by (``from harness.toolkit
import rebatch``); they live in ``harness.methods.toolkit``."""

from harness.methods.toolkit import *  # noqa: F403
from harness.methods.toolkit import __all__  # noqa: F401
