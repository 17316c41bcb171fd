"""The sync-debug switch (sglang_dflash.sglang.sync_debug) logs each synchronising call stack
once, with its frames, and leaves other warnings alone. torch raises the warnings itself on a
GPU; here they are raised by hand, and the CUDA calls are stood in for."""
import logging
import warnings

import torch

from sglang_dflash.sglang import sync_debug


def sync_site_a():
    warnings.warn("called a synchronizing CUDA operation (Triggered internally at x.cpp:1.)")


def sync_site_b():
    warnings.warn("called a synchronizing CUDA operation")


def test_each_stack_logged_once(monkeypatch, caplog):
    modes = []
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "set_sync_debug_mode", modes.append)
    saved, other = warnings.showwarning, []
    try:
        with warnings.catch_warnings(), caplog.at_level(logging.WARNING, logger=sync_debug.__name__):
            warnings.showwarning = lambda message, *rest: other.append(message)  # what was there
            sync_debug.enable()
            for _ in range(3):
                sync_site_a()
            sync_site_b()
            warnings.simplefilter("always", UserWarning)
            warnings.warn("something else")
    finally:
        warnings.showwarning = saved
    lines = [r.getMessage() for r in caplog.records if r.getMessage().startswith("sync-debug: called")]
    assert modes == ["warn"]
    assert len(lines) == 2, lines
    assert "sync_site_a" in lines[0] and "test_each_stack_logged_once" in lines[0]
    assert "Triggered" not in lines[0] and "sync_site_b" in lines[1]
    assert [str(m) for m in other] == ["something else"]  # passed on to the previous hook


def test_without_cuda_it_says_so(monkeypatch, caplog):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with caplog.at_level(logging.WARNING, logger=sync_debug.__name__):
        sync_debug.enable()
    assert "no CUDA device" in caplog.text
