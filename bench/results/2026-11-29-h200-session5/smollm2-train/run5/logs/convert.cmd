python3 -m sglang_dflash.smollm2 --out /tmp/w/smollm2
