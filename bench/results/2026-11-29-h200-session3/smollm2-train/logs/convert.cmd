python3 -m sglang_dflash.smollm2 --out /tmp/tw1/smollm2
