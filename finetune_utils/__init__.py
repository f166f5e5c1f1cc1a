"""finetune_utils: the shared code of the fine-tuning course.

One concept per module; import the module you need, for example::

    from finetune_utils import env, models
    device = env.pick_device()
    encoder, tokenizer = models.load_encoder()

Importing this package is cheap: torch, transformers and datasets are imported
only inside the functions that need them.
"""

__version__ = "0.1.0"

#: The course repository on GitHub ("owner/name"). This is the one place it is
#: set: README links, Colab badges and the Colab set-up cell are generated from it
#: (``python tools/sync_notebooks.py``).
REPO = "finetune-course/finetune-course"
REPO_BRANCH = "main"
