python3 -m sglang_dflash.train.distill_static --target /tmp/w/smollm2 --data /tmp/w/train.jsonl --out /tmp/w/distill.jsonl --max-new-tokens 256 --seed 1 --max-seconds 217 --batch-size 1024
