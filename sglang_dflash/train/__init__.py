"""DFlash drafter trainer: `python -m sglang_dflash.train --help`."""
