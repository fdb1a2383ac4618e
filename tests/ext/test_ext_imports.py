"""Declaring a transformers, torch-by-path or ColBERT component imports no torch or transformers."""

from __future__ import annotations

import json
import subprocess
import sys

SCRIPT = """
import json, sys
import pinnacle
from pinnacle.ext.transformers import TextEncoder, Pipeline
from pinnacle.ext.torch import TorchModel
from pinnacle.ext.colbert import ColBERT
TextEncoder("enc", model="/nowhere")
Pipeline("pipe", task="feature-extraction", model="/nowhere")
ColBERT("colbert", model_name_or_path="/nowhere", pool_factor=2)
heavy = ("torch", "transformers", "sentence_transformers", "scipy", "safetensors")
print(json.dumps(sorted(m for m in sys.modules if m.split(".")[0] in heavy)))
"""


def test_declaring_components_loads_nothing_heavy(tmp_path):
    out = subprocess.run([sys.executable, "-c", SCRIPT], capture_output=True, text=True, check=True, cwd=tmp_path)
    assert json.loads(out.stdout.strip().splitlines()[-1]) == []
