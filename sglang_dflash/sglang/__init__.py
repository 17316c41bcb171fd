"""sglang-dflash inside SGLang 0.5.17: plugin hooks, drafter model, DFlashWorker.

Import the submodules explicitly; this package imports nothing by itself so that the
plugin entry point stays cheap.
"""
