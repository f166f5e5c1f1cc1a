"""Fine-tune the course's encoder on your own data from the command line, on ``transformers.Trainer``.

    python -m finetune_utils.train --data support_sentiment --output_dir runs/sentiment
    accelerate launch --multi_gpu --num_processes 2 -m finetune_utils.train --data ... --output_dir runs/2p
    finetune-train --help                                   # the same command, as a console script

Options follow ``TrainingArguments`` as transformers' examples do; the earlier names (``--lr``, ``--epochs``,
``--batch-size``, ``--output`` ...) still work. Four parts: :mod:`.options` (options and their checks),
:mod:`.userdata` (the user's data, the label rule, the validation carve-out), :mod:`.output` (the output folder's
safety, the checkpoints' seals) and :mod:`.run` (Trainer and its callbacks). It imports the lessons' library; the
library never imports it. The README's section on the command lists what it writes and guarantees.
"""

from .options import (DEFAULT_LR, LABEL_RULE, MIXED_PRECISION_FROM, STOPPED_EXIT_CODE, NonFiniteError, TrainError, build_parser,
                      check_model, check_options, choose_precision, parse_args)
from .output import (BEST_FILE, CHECKPOINT_DIR, CHECKSUMS, LATEST, RUN_MARK, STATE_FILE, OutputPlan, check_resumable,
                     finish_output, foreign_files, latest_checkpoint, plan_output, prepare_output, read_best, read_mark,
                     remove_checkpoints, seal_checkpoint, write_mark)
from .run import RESUME_KEYS, main, run
from .userdata import Loaded, carve_validation, fingerprint, load_splits, normalise_label, read_table
