import os

import torch

# Tiny models run fastest on one thread; more threads only fight each other on a 2-core machine.
torch.set_num_threads(int(os.environ.get("SGLANG_DFLASH_TEST_THREADS", "1")))
