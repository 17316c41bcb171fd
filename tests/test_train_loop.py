"""The trainer on a tiny random target: the training forward matches inference, a few steps
lower the loss, and an exported drafter loads back with the same outputs."""
import torch

from sglang_dflash.model import DFlashDrafter, gather_target_hidden
from sglang_dflash.reference import target_generate
from sglang_dflash.testing import random_drafter, tiny_target
from sglang_dflash.train.blocks import block_attention_mask, block_inputs
from sglang_dflash.train.cli import export
from sglang_dflash.train.data import Example
from sglang_dflash.train.loop import LoopConfig, train_loop
from sglang_dflash.train.step import block_loss, collate, target_features

MASK = 1


def test_training_forward_equals_inference_forward():
    """Two anchors in one packed training forward give the same block hidden states as two
    separate inference forwards, each over the target features of the tokens before its anchor."""
    target = tiny_target("llama", dtype=torch.float32)
    drafter = random_drafter(target, layers=2, block_size=4, mask_token_id=MASK).float()
    ids = torch.randint(2, 256, (1, 12), generator=torch.Generator().manual_seed(0))
    batch = collate([Example(ids[0].tolist(), [True] * 12)], pad_id=0)
    anchors, valid = torch.tensor([[3, 8]]), torch.tensor([[True, True]])
    blk, pos = block_inputs(ids, anchors, 4, MASK)
    feats = target_features(target, batch, drafter.config.target_layer_ids)
    embed = target.get_input_embeddings()
    with torch.no_grad():
        ctx = drafter.project_context(feats)
        kv = drafter.context_kv(ctx, torch.arange(12)[None])
        packed = drafter(embed(blk.flatten(1)), pos.flatten(1), kv, block_attention_mask(anchors, valid, 12, 4))
        for n, a in enumerate([3, 8]):
            hs = target(input_ids=ids[:, :a], output_hidden_states=True).hidden_states
            c = drafter.project_context(gather_target_hidden(hs, drafter.config.target_layer_ids))
            alone = drafter(embed(blk[:, n]), pos[:, n], drafter.context_kv(c, torch.arange(a)[None]))
            torch.testing.assert_close(packed[:, 4 * n: 4 * n + 4], alone, atol=1e-5, rtol=1e-4)


def greedy_examples(target, n=24, prompt_len=6, new=24, seed=0):
    """Prompts + the target's own greedy continuations: the self-distilled data of a tiny model."""
    g = torch.Generator().manual_seed(seed)
    prompts = [torch.randint(2, 256, (prompt_len,), generator=g).tolist() for _ in range(n)]
    outs = target_generate(target, prompts, max_new_tokens=new)
    return [Example(p + o, [False] * len(p) + [True] * len(o)) for p, o in zip(prompts, outs)]


def fixed_loss(drafter, target, batch):
    with torch.no_grad():
        g = torch.Generator().manual_seed(123)
        return block_loss(drafter, target, batch, num_anchors=16, gamma=2.0, generator=g).loss.item()


def test_blocks_cut_to_a_length_train_like_that_block_size():
    """A block-8 drafter trained on blocks cut to 4 has exactly the loss of the same weights as a
    block-4 drafter: the cut-off mask tokens are invisible and untrained."""
    target = tiny_target("llama", dtype=torch.float32, seed=3)
    batch = collate(greedy_examples(target, n=4), pad_id=0)
    torch.manual_seed(0)
    wide = random_drafter(target, layers=1, block_size=8, mask_token_id=MASK).float()
    narrow = random_drafter(target, layers=1, block_size=4, mask_token_id=MASK).float()
    narrow.load_state_dict(wide.state_dict())
    with torch.no_grad():
        cut = block_loss(wide, target, batch, num_anchors=8, gamma=2.0, generator=torch.Generator().manual_seed(5),
                         block_sizes=(4,))
        small = block_loss(narrow, target, batch, num_anchors=8, gamma=2.0,
                           generator=torch.Generator().manual_seed(5))
        full = block_loss(wide, target, batch, num_anchors=8, gamma=2.0, generator=torch.Generator().manual_seed(5))
    torch.testing.assert_close(cut.loss, small.loss)
    assert cut.n_targets == small.n_targets < full.n_targets


def test_a_few_steps_lower_the_loss(tmp_path):
    target = tiny_target("llama", dtype=torch.float32, seed=3)
    examples = greedy_examples(target)
    torch.manual_seed(0)
    drafter = random_drafter(target, layers=1, block_size=4, mask_token_id=MASK).float()
    batch = collate(examples[:8], pad_id=0)
    before = fixed_loss(drafter, target, batch)
    cfg = LoopConfig(steps=30, batch_size=8, num_anchors=8, lr=3e-3, warmup=2, log_every=10, save_every=0)
    summary = train_loop(drafter, target, examples, tmp_path, cfg, pad_id=0, device="cpu", log=lambda *_: None)
    after = fixed_loss(drafter, target, batch)
    assert summary["steps"] == 30
    assert after < 0.8 * before, (before, after)
    assert (tmp_path / "checkpoint.pt").is_file() and (tmp_path / "train_log.jsonl").is_file()


def test_resume_continues_from_checkpoint(tmp_path):
    target = tiny_target("llama", dtype=torch.float32, seed=3)
    examples = greedy_examples(target, n=8)
    drafter = random_drafter(target, layers=1, block_size=4, mask_token_id=MASK).float()
    quiet = dict(pad_id=0, device="cpu", log=lambda *_: None)
    train_loop(drafter, target, examples, tmp_path, LoopConfig(steps=3, batch_size=4, save_every=0), **quiet)
    again = random_drafter(target, layers=1, block_size=4, mask_token_id=MASK, seed=9).float()
    s = train_loop(again, target, examples, tmp_path, LoopConfig(steps=5, batch_size=4, save_every=0),
                   resume=True, **quiet)
    assert s["steps"] == 5


def test_export_then_load_gives_same_outputs(tmp_path):
    target = tiny_target("llama", dtype=torch.float32)
    drafter = random_drafter(target, layers=2, block_size=4, mask_token_id=MASK).float()
    export(drafter, tmp_path, torch.float32, target.config)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["config.json", "model.safetensors"]
    loaded = DFlashDrafter.from_pretrained(str(tmp_path), target_config=target.config)
    assert loaded.config == drafter.config
    feats = torch.randn(2, 5, len(drafter.config.target_layer_ids) * 64)
    x, pos = torch.randn(2, 4, 64), torch.arange(5, 9).expand(2, 4)
    with torch.no_grad():
        outs = [m(x, pos, m.context_kv(m.project_context(feats), torch.arange(5).expand(2, 5)))
                for m in (drafter, loaded)]
    torch.testing.assert_close(outs[0], outs[1], rtol=0, atol=0)


def test_target_labels_are_the_targets_greedy_tokens():
    """On the target's own greedy text the target labels equal the text; on other text they are
    the target's argmax after each prefix, and training on them runs."""
    target = tiny_target("llama", dtype=torch.float32, seed=3)
    examples = greedy_examples(target, n=4)
    batch = collate(examples, pad_id=0)
    layer_ids = [0, 1]
    feats, labels = target_features(target, batch, layer_ids, with_labels=True, chunk_rows=7)
    torch.testing.assert_close(feats, target_features(target, batch, layer_ids))
    assert torch.equal(labels[batch.loss_mask], batch.input_ids[batch.loss_mask])
    noisy = collate([Example(list(range(3, 23)), [False] * 5 + [True] * 15)], pad_id=0)
    _, lab = target_features(target, noisy, layer_ids, with_labels=True)
    with torch.no_grad():
        want = target(input_ids=noisy.input_ids).logits.argmax(-1)
    assert torch.equal(lab[0, 1:], want[0, :-1]) and lab[0, 0] == 3
    drafter = random_drafter(target, layers=1, block_size=4, mask_token_id=MASK).float()
    res = block_loss(drafter, target, noisy, num_anchors=4, gamma=2.0, target_labels=True)
    assert torch.isfinite(res.loss) and 1.0 <= float(res.tau) <= 4.0


def test_eval_prompts_zero_means_none():
    from sglang_dflash.train.cli import eval_prompts

    assert eval_prompts([{"messages": [{"role": "user", "content": "hi"}]}], None, 0) == []


def test_stop_request_ends_the_loop_with_a_checkpoint(tmp_path):
    from sglang_dflash.train import loop

    target = tiny_target("llama", dtype=torch.float32, seed=3)
    examples = greedy_examples(target, n=8)
    drafter = random_drafter(target, layers=1, block_size=4, mask_token_id=MASK).float()
    loop.request_stop()
    try:
        s = train_loop(drafter, target, examples, tmp_path, LoopConfig(steps=50, batch_size=4, save_every=0),
                       pad_id=0, device="cpu", log=lambda *_: None)
    finally:
        loop._STOP["requested"] = False
    assert s["steps"] == 1 and s["stop"] == "signal" and (tmp_path / "checkpoint.pt").is_file()
