import os

import torch

# Without a GPU, Triton kernels run in Triton's interpreter. Set before any test module loads,
# so that no earlier import of Triton (e.g. through a training test) fixes the compiled mode.
if not torch.cuda.is_available():
    os.environ.setdefault("TRITON_INTERPRET", "1")

# Tiny models run fastest on one thread; more threads only fight each other on a 2-core machine.
torch.set_num_threads(int(os.environ.get("SGLANG_DFLASH_TEST_THREADS", "1")))
