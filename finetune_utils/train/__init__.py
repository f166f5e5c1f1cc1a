"""Fine-tune the course's encoder on your own data, from the command line, on ``transformers.Trainer``.

    python -m finetune_utils.train --data support_sentiment --output_dir runs/sentiment
    python -m finetune_utils.train --data reviews.csv --text_column review --label_column stars --output_dir runs/reviews
    accelerate launch --multi_gpu --num_processes 2 -m finetune_utils.train --data ... --output_dir runs/2p
    finetune-train --help                                   # the same command, as a console script

Options follow ``TrainingArguments`` (``--learning_rate``, ``--num_train_epochs``, ``--per_device_train_batch_size``,
``--gradient_accumulation_steps``, ``--bf16``, ``--report_to`` ...) as in transformers' examples; the earlier names
(``--lr``, ``--epochs``, ``--batch-size``, ``--output`` ...) still work. What ends up in the output folder:
``finetune-run.json`` (the mark, written first; at the end the list of files the run wrote), ``model/`` (safetensors,
LoRA merged in, with its tokenizer), ``labels.json``, ``metrics.json`` (options, per-epoch validation scores, test
scores, where the validation split came from, the epoch kept, the precision and why, seconds per phase),
``curve.png``, and while it runs ``checkpoints/`` (Trainer's ``checkpoint-N``, sealed with checksums).

The command is in four parts: :mod:`.options` (the options and their checks), :mod:`.userdata` (reading the
user's data, the label rule, the validation carve-out), :mod:`.output` (the output folder's safety and the
checkpoints' seals) and :mod:`.run` (Trainer and its callbacks). It imports the lessons' library; the library
never imports it.
"""

from .options import (DEFAULT_LR, LABEL_RULE, MIXED_PRECISION_FROM, STOPPED_EXIT_CODE, NonFiniteError, TrainError, build_parser,
                      check_model, check_options, choose_precision, parse_args)
from .output import (BEST_FILE, CHECKPOINT_DIR, CHECKSUMS, LATEST, RUN_MARK, STATE_FILE, OutputPlan, check_resumable,
                     finish_output, foreign_files, latest_checkpoint, plan_output, prepare_output, read_best, read_mark,
                     remove_checkpoints, seal_checkpoint, write_mark)
from .run import RESUME_KEYS, main, run
from .userdata import Loaded, carve_validation, fingerprint, load_splits, normalise_label, read_table
