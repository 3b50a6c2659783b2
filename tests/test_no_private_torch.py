"""No module of src/rnnkit reaches a private torch name (issue #18): nothing imported from a ``torch._*``
module, no ``torch._x`` attribute (through any alias: ``nn._x``, ``F._x``), no ``getattr(torch, "_x")``
or ``import_module("torch._x")``. The fused backend reaches cuDNN and oneDNN through ``torch.nn``'s
public layers, so a torch upgrade that moves an internal cannot break rnnkit unnoticed.

The sources are parsed (``ast``), not grepped: a comment or a docstring that names ``torch._VF`` is no
use of it, and ``from torch import _VF as fused`` is one although the text ``torch._`` is nowhere.
"""

import ast
from pathlib import Path

SRC = Path(__file__).resolve().parents[1] / "src" / "rnnkit"


def _private(dotted: str) -> bool:
    """A dotted name with a part that starts with one underscore (dunders such as ``__version__`` are
    public)."""
    return any(part.startswith("_") and not part.endswith("__") for part in dotted.split("."))


def _is_torch(module: str) -> bool:
    return module == "torch" or module.startswith("torch.")


def _dotted(node: ast.expr) -> str | None:
    """``a.b.c`` for a chain of attributes on a name; ``None`` for anything else (a call, a subscript)."""
    if isinstance(node, ast.Name):
        return node.id
    if isinstance(node, ast.Attribute):
        base = _dotted(node.value)
        return None if base is None else f"{base}.{node.attr}"
    return None


def _resolve(node: ast.expr, aliases: dict[str, str]) -> str | None:
    """The torch name that ``node`` (a chain of attributes on an imported torch name) stands for."""
    dotted = _dotted(node)
    if dotted is None:
        return None
    root, dot, rest = dotted.partition(".")
    return aliases[root] + dot + rest if root in aliases else None


def _text_of(node: ast.expr) -> str | None:
    return node.value if isinstance(node, ast.Constant) and isinstance(node.value, str) else None


def private_torch_uses(source: str, filename: str = "<string>") -> list[str]:
    """Every use of a private torch name in ``source``, as ``line: name``."""
    tree = ast.parse(source, filename)
    aliases: dict[str, str] = {}  # a name bound by an import -> the torch object it names
    found: list[tuple[int, str]] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                if _is_torch(alias.name):
                    if _private(alias.name):
                        found.append((node.lineno, alias.name))
                    # `import torch.nn` binds `torch`; `import torch.nn as nn` binds `nn` to torch.nn
                    aliases[alias.asname or "torch"] = alias.name if alias.asname else "torch"
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module and _is_torch(node.module):
            for alias in node.names:
                name = f"{node.module}.{alias.name}"
                if _private(name):
                    found.append((node.lineno, name))
                aliases[alias.asname or alias.name] = name
    for node in ast.walk(tree):
        if isinstance(node, ast.Attribute) and _private(node.attr):
            name = _resolve(node, aliases)
            if name is not None:
                found.append((node.lineno, name))
        elif isinstance(node, ast.Call) and node.args:
            func, first = _dotted(node.func) or "", node.args[0]
            text = [
                a.value for a in node.args[1:2] if isinstance(a, ast.Constant) and isinstance(a.value, str)
            ]
            if func == "getattr" and text and _private(text[0]):
                target = _resolve(first, aliases)
                if target is not None:
                    found.append((node.lineno, f"{target}.{text[0]}"))
            elif func.split(".")[-1] in ("import_module", "__import__") and _text_of(first) is not None:
                module = _text_of(first) or ""
                if _is_torch(module) and _private(module):
                    found.append((node.lineno, module))
    return [f"{line}: {name}" for line, name in sorted(set(found))]


BAD = """
import torch
import torch._dynamo
import torch.nn as nn
from torch import _VF, Tensor
from torch import _VF as fused
from torch._C import _get_tracing_state
from torch.nn import functional as F
import importlib

def f(x):
    torch._foreach_lerp_([x], [x], 0.5)
    nn.modules.rnn._VF.lstm(x)
    F._canonical_mask(x)
    getattr(torch, "_use_cudnn_rnn_flatten_weight")()
    importlib.import_module("torch._inductor")
"""

GOOD = '''
"""Docstrings may name torch._VF and torch._foreach_lerp_: they are no use of them."""
import torch
from torch import Tensor, nn
from torch.nn import functional as F

class Layer(nn.Module):
    def _apply(self, fn, recurse=True):  # our own underscore names are fine
        return super()._apply(fn, recurse)

    def forward(self, x: Tensor) -> Tensor:
        self._twin = nn.LSTM(2, 3, device="meta")
        print(torch.__version__, x._version, getattr(torch, "lstm"))
        return F.relu(torch.nn.functional.linear(x, x))  # torch._VF in a comment
'''


def test_the_checker_finds_every_kind_of_private_use():
    found = private_torch_uses(BAD)
    names = {line.split(": ", 1)[1] for line in found}
    assert names == {
        "torch._dynamo",
        "torch._VF",
        "torch._C._get_tracing_state",
        "torch._foreach_lerp_",
        "torch.nn.modules.rnn._VF",
        "torch.nn.functional._canonical_mask",
        "torch._use_cudnn_rnn_flatten_weight",
        "torch._inductor",
    }, found
    assert sum(name.endswith(": torch._VF") for name in found) == 2  # both imports of it, one a rename


def test_the_checker_passes_public_uses_and_text():
    assert private_torch_uses(GOOD) == []


def test_no_source_file_uses_a_private_torch_name():
    files = sorted(SRC.rglob("*.py"))
    assert len(files) > 20  # the package was found
    uses = [
        f"{path.relative_to(SRC.parent)}:{use}"
        for path in files
        for use in private_torch_uses(path.read_text(), str(path))
    ]
    assert not uses, "private torch names (reach torch through its public API):\n" + "\n".join(uses)
