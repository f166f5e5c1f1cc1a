"""Output safety: the command never deletes or changes a file it did not write.

Output folders carry a mark (``finetune-run.json``, written first, listing at the end every file the run wrote);
``--overwrite_output_dir`` replaces only a marked folder holding nothing else, by writing the new run beside it
(``.<name>.incoming``) and swapping it in at the end. Checkpoints are Trainer's ``checkpoints/checkpoint-N``,
sealed by :func:`seal_checkpoint` before the ``latest`` pointer names them.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import sys
from dataclasses import dataclass, field
from pathlib import Path

from .. import data as course_data
from .. import integrity
from .options import TrainError

#: The mark of an output folder this command wrote.
RUN_MARK = "finetune-run.json"
_WRITER = "finetune_utils.train"
CHECKPOINT_DIR = "checkpoints"
LATEST = "latest"
CHECKSUMS = "checksums.json"
STATE_FILE = "finetune-state.json"
BEST_FILE = "best.safetensors"
#: The files Trainer and the command write into a checkpoint (checksums.json lists them).
CHECKPOINT_FILE = re.compile(
    r"((model|adapter_model)(-\d+-of-\d+)?\.safetensors|model\.safetensors\.index\.json|(config|adapter_config|"
    r"generation_config|trainer_state)\.json|(optimizer|scheduler|scaler)\.pt|rng_state(_\d+)?\.pth|training_args\.bin|"
    r"README\.md|tokenizer(_config)?\.json|special_tokens_map\.json|vocab\.(txt|json)|merges\.txt|added_tokens\.json|" + "|".join(re.escape(f) for f in (BEST_FILE, CHECKSUMS, STATE_FILE)) + ")")
CHECKPOINT_NAME = re.compile(r"checkpoint-\d+")
_OWN_CHECKPOINT_PATH = re.compile(rf"checkpoints/(latest|\.latest\.tmp|checkpoint-\d+/{CHECKPOINT_FILE.pattern})")
#: What a run writes besides checkpoints (``logs/``: TensorBoard's files with ``--report_to tensorboard``).
_UNFINISHED_OUTPUT = re.compile(r"^(labels\.json|metrics\.json|curve\.png|model/[^/]+|logs/.+)$")


def _real(path) -> Path:
    """``path`` made absolute with symbolic links resolved (also for a path that does not exist yet)."""
    return Path(os.path.abspath(os.path.expanduser(str(path)))).resolve()


def _within(inner: Path, outer: Path) -> bool:
    """True if ``inner`` is ``outer`` or lies inside it."""
    return inner == outer or outer in inner.parents


def read_mark(folder: Path) -> dict | None:
    """The run mark in ``folder`` (None if there is none, or it is not this command's)."""
    return integrity.read_mark(folder, RUN_MARK, _WRITER)


def foreign_files(folder: Path) -> list[str] | None:
    """Files and folders in ``folder`` that this command did not write; None if it has no run mark.

    Ours: the mark, the files it lists (at their sizes), the checkpoints' files and, while the run has not finished,
    the outputs' names. Anything else, symbolic links included, is foreign; a folder holding it is never deleted.
    """
    mark = read_mark(folder)
    if mark is None:
        return None
    listed = mark.get("files") if isinstance(mark.get("files"), dict) else {}
    # a run that did not finish (a crash while writing its outputs) has not listed them yet
    unlisted = _UNFINISHED_OUTPUT if mark.get("finished") is not True else None
    own_dirs = {CHECKPOINT_DIR} | ({"model", "logs"} if unlisted else set())
    for rel in listed:
        own_dirs.update(str(p.as_posix()) for p in Path(rel).parents if str(p) != ".")
    foreign = []
    for root, dirs, files in os.walk(folder):
        base = Path(root).relative_to(folder)
        for name in sorted(dirs):
            rel = (base / name).as_posix()
            if (Path(root) / name).is_symlink() or not (rel in own_dirs or rel.startswith(CHECKPOINT_DIR + "/")
                                                    or (unlisted and rel.startswith("logs/"))):
                foreign.append(rel + "/")
        dirs[:] = [d for d in dirs if (base / d).as_posix() + "/" not in foreign]
        for name in sorted(files):
            rel = (base / name).as_posix()
            path = Path(root) / name
            if rel in (RUN_MARK, RUN_MARK + ".tmp") and not path.is_symlink():
                continue
            if path.is_symlink():
                foreign.append(rel)
            elif rel in listed:
                if path.stat().st_size != listed[rel]:
                    foreign.append(rel + " (changed since the run wrote it)")
            elif not _OWN_CHECKPOINT_PATH.fullmatch(rel) and not (unlisted and unlisted.match(rel)):
                foreign.append(rel)
    return foreign


def write_mark(folder: Path, files: dict | None = None, finished: bool = False) -> None:
    integrity.write_mark(folder, RUN_MARK, _WRITER, format=1, finished=finished, files=files or {},
                         note="this folder was written by python -m finetune_utils.train; --overwrite replaces it "
                              "only while it holds no other files")


def listing(items: list[str], n: int = 5) -> str:
    return ", ".join(items[:n]) + (f" and {len(items) - n} more" if len(items) > n else "")


@dataclass
class OutputPlan:
    """Where a run writes: ``work`` is ``output`` itself, or a sibling swapped in at the end."""

    output: Path
    work: Path
    replace: bool = False  # work is a staging folder that replaces output at the end
    resume: bool = False
    created: bool = False  # this run creates the folder (so a failed run may remove it again)
    foreign: list = field(default_factory=list)  # with --resume: files in it the command did not write (left alone)


def protected_paths(data: str) -> list[Path]:
    """The data the options name: an output must never be or contain them."""
    out = []
    name = data[len("course:"):] if data.startswith("course:") else data
    if name in course_data.names():
        try:
            out.append(_real(course_data.folder(name)))
        except course_data.DataError:
            pass
    if Path(data).exists():  # a local folder of a course set's name is protected too
        out.append(_real(data))
    return out


def plan_output(output: str, data: str, overwrite: bool = False, resume: bool = False) -> OutputPlan:
    """Decide where the run writes, refusing every unsafe --output; writes nothing."""
    given = output
    output = _real(given)
    shown = f"--output {given}" + (f" (a link to {output})" if Path(given).is_symlink() else "")
    for data_path in protected_paths(data):
        if _within(data_path, output):
            what = "is the data" if data_path == output else f"contains the data ({data_path})"
            raise TrainError(f"{shown} {what}; the command would write over your data. Choose a new folder for "
                             "--output, outside the data (e.g. runs/my-run)")
    if _within(_real(Path.cwd()), output):
        raise TrainError(f"{shown} is the current folder" + ("" if output == _real(Path.cwd()) else " or contains it")
                         + "; choose a new subfolder for the run, e.g. --output runs/my-run")
    home = _real(Path.home())
    if _within(home, output):
        raise TrainError(f"{shown} is your home folder" + ("" if output == home else " or contains it")
                         + "; choose a new subfolder for the run, e.g. --output runs/my-run")
    if output.exists() and not output.is_dir():
        raise TrainError(f"{shown} is a file, not a folder; name a folder")
    if not output.exists():
        if resume:
            raise TrainError(f"nothing to resume in {given}: the folder does not exist. Start the run without --resume.")
        ancestor = output.parent
        while not ancestor.exists():
            ancestor = ancestor.parent
        if not ancestor.is_dir():
            raise TrainError(f"{shown} cannot be created: {ancestor} is a file, not a folder; choose another --output")
        if not os.access(ancestor, os.W_OK | os.X_OK):
            raise TrainError(f"{shown} cannot be created: no permission to write in {ancestor}; choose another --output")
        return OutputPlan(output, output, created=True)
    foreign = foreign_files(output)
    if resume:
        if foreign is None:
            raise TrainError(f"nothing to resume in {given}: it was not written by this command (no {RUN_MARK}). "
                             "Start the run without --resume, in a new --output.")
        if not (output / CHECKPOINT_DIR / LATEST).is_file():
            if (output / "metrics.json").is_file():
                raise TrainError(f"the run in {given} has finished (its metrics.json is there): nothing to resume. "
                                 "Use --overwrite to train it again, or choose another --output.")
            raise TrainError(f"nothing to resume in {given}: it has no {CHECKPOINT_DIR}/{LATEST}. "
                             "Start the run without --resume (add --overwrite to replace it).")
        return OutputPlan(output, output, resume=True, foreign=foreign)
    if not any(output.iterdir()):
        return OutputPlan(output, output)
    if foreign is None or foreign:
        if foreign is None:  # no mark: nothing in it is ours
            foreign = sorted(p.name + ("/" if p.is_dir() and not p.is_symlink() else "") for p in output.iterdir())
        why = f"holds files this command did not write ({listing(foreign)})"
        raise TrainError(f"the output folder {given} exists and is not empty: it {why}. Nothing was changed, and "
                         "--overwrite would not delete it either: choose a new --output (or move your files away).")
    if not overwrite:
        interrupted = (output / CHECKPOINT_DIR / LATEST).is_file()
        raise TrainError(f"the output folder {given} exists and is not empty: it holds "
                         + ("an interrupted run of this command" if interrupted else "a previous run of this command")
                         + "; nothing was changed. Pass --overwrite to replace it"
                         + (", --resume to continue it" if interrupted else "") + ", or choose another --output.")
    staging = output.parent / f".{output.name}.incoming"
    if staging.exists() and foreign_files(staging) != []:
        raise TrainError(f"{staging} is in the way (the command writes the new run there before swapping it in) and "
                         "holds files it did not write; move it away")
    if not os.access(output.parent, os.W_OK | os.X_OK):
        raise TrainError(f"{shown} cannot be replaced: no permission to write in {output.parent}")
    old = output.parent / f".{output.name}.replaced"  # the swap moves the old run there: checked before training
    if old.exists() and (not old.is_dir() or foreign_files(old) != []):
        raise TrainError(f"{old} is in the way (the command moves the previous run there while it swaps the new one "
                         "in) and was not written by it; move it away")
    return OutputPlan(output, staging, replace=True)


def prepare_output(plan: OutputPlan) -> None:
    """Create the folder the run writes to and mark it first (main process only)."""
    if plan.resume:
        return
    try:
        if plan.replace and plan.work.exists():
            # a leftover of an earlier failed --overwrite; checked again here, right before deleting it
            if foreign_files(plan.work) != []:
                raise TrainError(f"{plan.work} is in the way (the command writes the new run there before swapping "
                                 "it in) and holds files it did not write; move it away")
            shutil.rmtree(plan.work)
        plan.work.mkdir(parents=True, exist_ok=True)
        write_mark(plan.work)
    except OSError as err:
        raise TrainError(f"--output {plan.output} cannot be created: {err.strerror or err}; choose another --output") from None


def _our_files(folder: Path) -> dict:
    files = {}
    for path in sorted(folder.rglob("*")):
        rel = path.relative_to(folder).as_posix()
        if path.is_file() and not path.is_symlink() and _UNFINISHED_OUTPUT.match(rel):
            files[rel] = path.stat().st_size
    return files


class SwapError(TrainError):
    """The new run is complete in its staging folder but could not be swapped in: it is kept, not discarded."""


def finish_output(plan: OutputPlan) -> None:
    """Record what the run wrote in its mark; with --overwrite, swap the new run in for the old one."""
    write_mark(plan.work, _our_files(plan.work), finished=True)
    if not plan.replace:
        return
    foreign = foreign_files(plan.output)
    if foreign != []:  # None: its run mark is gone, so nothing in it can be known to be ours
        what = f"files were added to {plan.output} ({listing(foreign)})" if foreign else \
            f"the run mark {RUN_MARK} of {plan.output} was removed"
        raise SwapError(f"while the run trained, {what}, so it was not replaced; the new run is in {plan.work}")
    old = plan.output.parent / f".{plan.output.name}.replaced"
    if old.exists() and foreign_files(old) == []:
        shutil.rmtree(old)
    try:
        os.rename(plan.output, old)
    except OSError as err:
        raise SwapError(f"the previous run in {plan.output} could not be moved aside ({err.strerror or err}); it is "
                         f"unchanged, and the new run is complete in {plan.work}: move it into place by hand") from None
    os.rename(plan.work, plan.output)
    shutil.rmtree(old)


def discard_output(plan: OutputPlan) -> None:
    """After a failed run: remove what this run wrote, and only that."""
    if plan.resume or not plan.work.exists() or foreign_files(plan.work) != []:
        return
    if plan.replace or plan.created:
        shutil.rmtree(plan.work)
    else:  # an empty folder the user made: leave it empty
        for path in plan.work.iterdir():
            shutil.rmtree(path) if path.is_dir() else path.unlink()



# --------------------------------------------------------------------------- checkpoints


def trainable_weights(model) -> dict:
    """A CPU copy of the parameters that train (how the best epoch's weights are kept)."""
    return {n: p.detach().cpu().clone().contiguous() for n, p in model.named_parameters() if p.requires_grad}


def seal_checkpoint(path: Path, state: dict, best: dict | None = None) -> None:
    """Seal a checkpoint Trainer wrote: the command's ``state``, ``best`` (the best epoch's trainable weights) unless
    they are this step's own, checksums of every file; then ``latest`` names it and the older checkpoints go."""
    from safetensors.torch import save_file

    if best is not None and (state.get("best") or {}).get("step") != state["step"]:
        save_file(best, str(path / BEST_FILE))
    (path / STATE_FILE).write_text(json.dumps(state, indent=1))
    files = sorted(p.name for p in path.iterdir() if p.is_file() and not p.is_symlink() and p.name != CHECKSUMS
                   and CHECKPOINT_FILE.fullmatch(p.name))
    sums = integrity.file_sums(path, files)
    (path / f".{CHECKSUMS}.tmp").write_text(json.dumps(sums, indent=1))
    os.replace(path / f".{CHECKSUMS}.tmp", path / CHECKSUMS)
    pointer = path.parent / f".{LATEST}.tmp"
    pointer.write_text(path.name)
    os.replace(pointer, path.parent / LATEST)
    remove_checkpoints(path.parent, keep=path.name)


def _remove_checkpoint(path: Path) -> None:
    """Delete the files a checkpoint folder holds, then the folder; a file the command did not write stays."""
    for child in path.iterdir():
        if child.is_file() and not child.is_symlink() and (CHECKPOINT_FILE.fullmatch(child.name)
                                                           or child.name == f".{CHECKSUMS}.tmp"):
            child.unlink()
    try:
        path.rmdir()
    except OSError:
        raise TrainError(f"{path} holds files this command did not write ({listing(sorted(os.listdir(path)))}); "
                         "they were left as they are: move them away and run the command again") from None


def remove_checkpoints(folder: Path, keep: str | None = None) -> None:
    """Remove the known files of the ``checkpoint-N`` folders but ``keep`` (without it, the pointer and the folder
    too); anything else, and a folder holding it, stays."""
    if not folder.is_dir() or folder.is_symlink():
        return
    for old in sorted(folder.iterdir()):
        if old.is_dir() and not old.is_symlink() and old.name != keep and CHECKPOINT_NAME.fullmatch(old.name):
            try:
                _remove_checkpoint(old)
            except TrainError as err:
                print(f"note: {err}", file=sys.stderr)
    if keep is None:
        for name in (LATEST, f".{LATEST}.tmp"):
            if (folder / name).is_file() and not (folder / name).is_symlink():
                (folder / name).unlink()
        try:
            folder.rmdir()
        except OSError:
            print(f"note: {folder} holds files this command did not write; they were left as they are", file=sys.stderr)


def latest_checkpoint(folder: Path) -> Path:
    """The checkpoint ``folder/latest`` names, checked to be complete and undamaged (checksums)."""
    pointer = folder / LATEST
    if not pointer.is_file():
        raise TrainError(f"no checkpoint in {folder}: {LATEST} is missing; start the run without --resume")
    name = pointer.read_text(errors="replace").strip()
    fix = "it cannot be resumed: start the run again with --overwrite (the same options, without --resume)"
    if not CHECKPOINT_NAME.fullmatch(name):
        raise TrainError(f"the checkpoint pointer {pointer} is damaged (it names {name[:40]!r}); {fix}")
    path = folder / name
    missing = [f for f in (CHECKSUMS, STATE_FILE, "trainer_state.json") if not (path / f).is_file()]
    if missing:
        raise TrainError(f"the checkpoint {path} is incomplete (missing {missing}); {fix}")
    try:
        sums = json.loads((path / CHECKSUMS).read_text())
        expected = {f: (s["size"], s["digest"]) for f, s in sums.items()}
    except (ValueError, KeyError, TypeError, AttributeError):
        raise TrainError(f"the checkpoint {path} is damaged ({CHECKSUMS} is unreadable); {fix}") from None
    for f, (size, digest) in expected.items():
        if not (path / f).is_file():
            raise TrainError(f"the checkpoint {path} is incomplete (missing {f}); {fix}")
        actual = (path / f).stat().st_size
        if actual != size:
            raise TrainError(f"the checkpoint {path} is damaged: {f} has {actual} bytes, {CHECKSUMS} says {size}; {fix}")
        if not integrity.digest_matches(path / f, digest):
            raise TrainError(f"the checkpoint {path} is damaged: {f} does not match its checksum; {fix}")
    return path


def read_best(path: Path) -> dict | None:
    """The best epoch's trainable weights a checkpoint carries (None: they are its own weights, or there are none)."""
    from safetensors.torch import load_file

    if not (path / BEST_FILE).is_file():
        return None
    try:
        return load_file(str(path / BEST_FILE))
    except Exception as err:  # a file damaged before its checksum was taken
        raise TrainError(f"the checkpoint {path} cannot be read ({type(err).__name__}: {str(err)[:120]}); "
                         "start the run again with --overwrite") from None


def check_resumable(path: Path, options: dict, processes: int, data_fingerprint: str, names: list,
                    spelling: dict | None = None) -> dict:
    """Refuse a resume with other options, other data or other labels than the checkpoint's; returns its state."""
    try:
        saved = json.loads((path / STATE_FILE).read_text())
        saved_options = saved["options"]
    except (ValueError, KeyError, TypeError, OSError):
        raise TrainError(f"the checkpoint {path} is damaged ({STATE_FILE} is unreadable); start again with --overwrite") from None
    unrecorded = [(spelling or {}).get(k, k) for k in options if k != "data" and k not in saved_options]
    if unrecorded:  # an option this version added: the checkpoint cannot say what it was
        raise TrainError(f"the checkpoint in {path.parent} was written by an earlier version of this command, which did "
                         f"not record {', '.join(unrecorded)}; this version cannot check that resuming would continue "
                         "the same run. Finish it with the version that started it, or start anew with --overwrite")
    # --data may name the same data at another place (a moved folder): its content is compared below instead
    changed = {(spelling or {}).get(k, k): (saved_options.get(k), v) for k, v in options.items()
               if k != "data" and saved_options.get(k) != v}
    if saved.get("processes") != processes:
        changed["processes"] = (saved.get("processes"), processes)
    if changed:
        listed = ", ".join(f"{k}: checkpoint {a!r}, now {b!r}" for k, (a, b) in changed.items())
        raise TrainError(f"the checkpoint in {path.parent} was made with other options ({listed}); "
                         "resume with the same options, or start anew with --overwrite")
    if saved.get("labels") != names:
        raise TrainError(f"the checkpoint in {path.parent} was trained with the labels {saved.get('labels')}, the data now has "
                         f"{names}; a resumed run must see the same data. Restore the data the run started with, or "
                         "start anew with --overwrite")
    if saved.get("data_fingerprint") != data_fingerprint:
        raise TrainError(f"the data changed since the checkpoint in {path.parent} was written (content fingerprint "
                         f"{saved.get('data_fingerprint')}, now {data_fingerprint}): resuming would mix two data sets. "
                         "Restore the data the run started with, or start anew with --overwrite")
    return saved


class OutputLock:
    """One writer per output folder: ``.NAME.lock`` beside it, created atomically and removed on any exit.
    A second run on the same folder is refused at once; a lock whose process is gone (on this machine) is stale
    and replaced, with a note."""

    def __init__(self, output: Path):
        self.path = output.parent / f".{output.name}.lock"
        self.held = False

    def __enter__(self):
        import socket
        import time

        me = {"pid": os.getpid(), "host": socket.gethostname(), "started": time.strftime("%Y-%m-%d %H:%M:%S")}
        for _ in range(2):
            try:
                fd = os.open(self.path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
            except FileExistsError:
                other = self._read()
                if other.get("host") == me["host"] and not _alive(other.get("pid")):
                    print(f"note: {self.path} was left by a run (pid {other.get('pid')}) that no longer exists; "
                          "replacing it", file=sys.stderr)
                    self.path.unlink(missing_ok=True)
                    continue
                raise TrainError(f"another run (pid {other.get('pid', '?')} on {other.get('host', '?')}, started "
                                 f"{other.get('started', '?')}) is writing to {self.path.parent / self.path.name[1:-5]};"
                                 f" wait for it to finish or choose another --output_dir. If no such run exists, "
                                 f"delete {self.path}") from None
            except OSError as err:
                raise TrainError(f"cannot create the lock {self.path}: {err.strerror or err}; --output_dir must be in "
                                 "a folder you can write to") from None
            with os.fdopen(fd, "w") as f:
                json.dump(me, f)
            self.held = True
            return self
        raise TrainError(f"cannot take the lock {self.path}: another run took it at the same moment; try again")

    def _read(self) -> dict:
        try:
            return json.loads(self.path.read_text())
        except (OSError, ValueError):
            return {}

    def __exit__(self, *exc):
        if self.held and self._read().get("pid") == os.getpid():
            self.path.unlink(missing_ok=True)
        self.held = False
        return False


def _alive(pid) -> bool:
    if not isinstance(pid, int) or pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
