"""Entry point the Pulumi CLI runs (``python <pack dir>``): assemble the pack, nothing else.

The CLI runs this file as a script, so the pack directory (whatever it is called once
published) is on ``sys.path`` but is not a package yet: load it as the package ``policies``
first, so its modules' relative imports work the same here, in tests and in ``preflight``.
"""

import importlib.util
import sys
from pathlib import Path

from pulumi_policy import PolicyPack

if __package__ in (None, ""):
    _here = Path(__file__).resolve().parent
    _spec = importlib.util.spec_from_file_location(
        "policies", _here / "__init__.py", submodule_search_locations=[str(_here)]
    )
    if _spec is None or _spec.loader is None:
        raise ImportError(f"cannot load the policy pack from {_here}")
    sys.modules["policies"] = importlib.util.module_from_spec(_spec)
    _spec.loader.exec_module(sys.modules["policies"])

from policies.pack import DEFAULT_LEVEL, PACK_NAME, POLICIES

PolicyPack(name=PACK_NAME, policies=list(POLICIES), enforcement_level=DEFAULT_LEVEL)
