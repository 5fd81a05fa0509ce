"""Train one stage or a whole stack and write one result record per stage.

    tunebench train --stack "cpt:full,sft:lora,dpo:lora" --model tiny-llama --task smoke --max-steps 3
    tunebench train stack.yaml --db DIR

Each stage loads the current model folder (quantized if its parameterization says so), applies
the parameterization, trains with its objective, saves what trained, and — when another stage
follows — merges the update into a plain HF folder the next stage starts from (a quantized
stage is merged onto the full-precision base, the usual merge-then-requantize path). An ``rm``
stage produces a reward model for a later ``ppo`` stage and leaves the policy untouched.
"""
from __future__ import annotations

import json
import os
import shutil
import signal
import time
import traceback
from pathlib import Path

import torch

from bench import taskdata
from bench.home import home
from bench.models import model_path
from bench.progress import Progress
from bench.quality import baseline, general_text_loss, task_loss, task_metric
from bench.stack import StackSpec, StageSpec, stage_hp, validate
from methods import objective, parameterization
from methods._common import trainable_counts
from methods._trl import StageContext
from common.errors import UserError


def quiet_libraries() -> None:
    """Library progress bars and deprecation chatter would drown our own progress output."""
    import warnings

    import datasets
    import transformers

    os.environ.setdefault("TRL_EXPERIMENTAL_SILENCE", "1")
    warnings.filterwarnings("ignore", category=FutureWarning)
    warnings.filterwarnings("ignore", category=UserWarning, module="trl")
    transformers.logging.set_verbosity_error()
    transformers.logging.disable_progress_bar()
    datasets.disable_progress_bars()


class Cancelled(Exception):
    """SIGTERM/SIGINT during a run: recorded as status 'cancelled'."""


def _on_signal(signum, frame):
    raise Cancelled(f"cancelled by signal {signal.Signals(signum).name}")


def is_oom(e: BaseException) -> bool:
    text = str(e).lower()
    return any(m in text for m in ("can't allocate memory", "not enough memory", "out of memory"))


def dir_bytes(path: Path) -> int:
    return sum(f.stat().st_size for f in Path(path).rglob("*") if f.is_file())


def load_model(model_dir: Path, head: str, load_kwargs: dict):
    from transformers import AutoModelForCausalLM, AutoModelForSequenceClassification

    kw = dict(dtype=torch.float32, **load_kwargs)
    if head == "seq_cls":
        model = AutoModelForSequenceClassification.from_pretrained(model_dir, num_labels=1, **kw)
    else:
        model = AutoModelForCausalLM.from_pretrained(model_dir, **kw)
    if torch.cuda.is_available() and "quantization_config" not in load_kwargs:
        model = model.to("cuda")
    return model


def load_tokenizer(model_dir: Path):
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(model_dir)
    if tok.pad_token is None:
        tok.pad_token = tok.eos_token
    return tok


def step_hooks(par, model) -> list:
    """A trainer callback running the parameterization's per-step hook (e.g. AdaLoRA budgets)."""
    if par.step_hook is None:
        return []
    from transformers import TrainerCallback

    class StepHook(TrainerCallback):
        def on_optimizer_step(self, args, state, control, **kw):
            par.step_hook(model, state.global_step)

    return [StepHook()]


def _records(task: str, split: str, fmt: str, limit: int | None) -> list[dict]:
    return taskdata.load_records(task, split, fmt, limit)


def _hash(payload: dict) -> str:
    from bench.metrics import config_hash

    return config_hash(payload)


class StackRun:
    """Executes a validated StackSpec; see the module docstring."""

    def __init__(self, spec: StackSpec, out: Path, db: Path | None, events: str | None = None,
                 matrix: str | None = None, run_id: str | None = None, quiet: bool = False,
                 save_steps: int | None = None, resume: bool = False):
        self.spec, self.out, self.db, self.matrix, self.run_id = spec, out, db, matrix, run_id
        # save_steps: Trainer checkpoints every N steps in each stage's trainer/ folder; resume:
        # keep the stages ``out`` already finished and continue the next from its last checkpoint.
        self.save_steps, self.resume = save_steps, resume
        self.progress = Progress(events, quiet=quiet)

    def prepare_inputs(self) -> list[dict]:
        """Load every stage's records up front, so a missing task fails before training starts."""
        plans = []
        for st in self.spec.stages:
            obj = objective(st.objective)
            hp = stage_hp(self.spec, st)
            task = st.task or self.spec.task
            plans.append({
                "task": task, "hp": hp,
                "train": _records(task, "train", obj.data, hp.train_limit),
                "eval": _records(task, "test", obj.data, hp.eval_limit or None) if hp.eval_limit else [],
                "checker": taskdata.checker(task) if obj.data == "prompt_with_checker" else None,
            })
        return plans

    def run(self) -> list[dict]:
        quiet_libraries()
        validate(self.spec)
        base_dir = model_path(self.spec.model)
        for st in self.spec.stages:
            for key in ("teacher", "reward_model", "judge"):
                ref = getattr(stage_hp(self.spec, st), key)
                if ref:
                    model_path(ref)
        plans = self.prepare_inputs()
        self.out.mkdir(parents=True, exist_ok=True)
        (self.out / "stack.json").write_text(self.spec.model_dump_json(indent=2))
        old = {s: signal.signal(s, _on_signal) for s in (signal.SIGTERM, signal.SIGINT)}
        records, current, reward_model_dir, status = [], base_dir, None, "ok"
        try:
            for i, (st, plan) in enumerate(zip(self.spec.stages, plans)):
                if self.resume and self.finished(i, st):
                    done = self.stage_dir(i, st)
                    if objective(st.objective).head == "seq_cls":
                        reward_model_dir = done / "reward_model"
                    elif i < len(self.spec.stages) - 1:
                        current = done / "merged"
                    continue
                rec, next_dir, rm_dir = self.run_stage(i, st, plan, current, reward_model_dir)
                records.append(rec)
                status = rec["status"]
                if status != "ok":
                    break
                current, reward_model_dir = next_dir or current, rm_dir or reward_model_dir
        finally:
            for s, h in old.items():
                signal.signal(s, h)
            self.progress.close(status)
        return records

    def stage_dir(self, i: int, st: StageSpec) -> Path:
        return self.out / f"stage{i}-{st.objective}-{st.method}"

    def finished(self, i: int, st: StageSpec) -> bool:
        """A stage whose outputs are all in place (what the next stage or the user reads)."""
        d = self.stage_dir(i, st)
        if not (d / "adapter").is_dir() or not any((d / "adapter").iterdir()):
            return False
        if objective(st.objective).head == "seq_cls":
            return (d / "reward_model" / "config.json").exists()
        return i == len(self.spec.stages) - 1 or (d / "merged" / "config.json").exists()

    def run_stage(self, i: int, st: StageSpec, plan: dict, model_dir: Path, reward_model_dir: Path | None):
        from bench.metrics import Meter, fingerprint

        obj, par = objective(st.objective), parameterization(st.method)
        hp = plan["hp"]
        derived = par.run_defaults(hp.model_dump()) if par.run_defaults else {}
        ocfg, pcfg = obj.make_config(st.cfg), par.make_config({**derived, **st.method_cfg})
        stage_dir = self.stage_dir(i, st)
        stage_dir.mkdir(parents=True, exist_ok=True)
        torch.manual_seed(hp.seed)
        payload = {"model": self.spec.model, "stack": self.spec.label, "stage_index": i, "stage": st.model_dump(),
                   "task": plan["task"], "hp": hp.model_dump()}
        base = dict(
            config_hash=_hash(payload), matrix=self.matrix, stack=self.spec.label, stage_index=i, stage=st.label,
            objective=obj.name, method=par.name, model=self.spec.model, task=plan["task"], seed=hp.seed,
            hyperparams=json.dumps({"hp": hp.model_dump(), "cfg": ocfg.model_dump(), "method_cfg": pcfg.model_dump()}),
            output_dir=str(stage_dir),
            run_id=f"{self.run_id}-{i}" if self.run_id else None, **fingerprint(),
        )
        self.progress.start_stage(st.label, i, hp.max_steps, hp.batch_size * hp.grad_accum)
        t0 = time.perf_counter()
        values, next_dir, rm_dir = {}, None, None
        try:
            with Meter() as meter:
                tok = load_tokenizer(model_dir)
                model = load_model(model_dir, obj.head, par.load_kwargs(pcfg) if par.load_kwargs else {})
                _, total_before = trainable_counts(model)
                fmt = obj.data
                causal = obj.head == "causal_lm"
                loss_before = task_loss(model, tok, plan["eval"], fmt, hp.max_length) if causal else None
                # a quantized base scores differently from the same folder in full precision
                variant = par.name if par.load_kwargs else "fp32"
                metric_before = baseline(model_dir, f"metric-{variant}", plan["task"], hp.metric_limit, lambda: task_metric(
                    model, tok, plan["task"], hp.metric_limit)) if causal and hp.metric_limit else None
                general_before = baseline(model_dir, f"general-{variant}", "general-text", hp.eval_limit,
                                          lambda: general_text_loss(model, hp.eval_limit)) if causal and hp.eval_limit else None
                torch.manual_seed(hp.seed)  # lm-eval reseeds the global RNGs; cached baselines skip it
                model = par.apply(model, pcfg)
                trainable, _ = trainable_counts(model)
                extra = self._extra_models(hp, reward_model_dir, model_dir, obj.name, plan["task"])
                ctx = StageContext(model=model, tokenizer=tok, train=plan["train"], eval=plan["eval"],
                                   hp=hp.model_dump(), config=ocfg, out_dir=stage_dir, parameterization=par.name,
                                   callbacks=[self.progress.callback(), *step_hooks(par, model)], extra={**extra, "checker": plan["checker"]},
                                   save_steps=self.save_steps, resume=self.resume,
                                   emit=lambda e: self.progress.step(e["step"], e.get("loss"), e.get("tokens", 0),
                                                                     e.get("step_time_s")))
                result = obj.train(ctx)
                model = ctx.model
                loss_after = task_loss(model, tok, plan["eval"], fmt, hp.max_length) if causal else None
                metric_after = task_metric(model, tok, plan["task"], hp.metric_limit) if causal else None
                general_after = general_text_loss(model, hp.eval_limit) if general_before is not None else None
            art = stage_dir / "adapter"
            par.save(model, str(art))
            tok.save_pretrained(art)
            if obj.head == "seq_cls":
                rm_dir = self._merge(par, pcfg, model, model_dir, stage_dir / "reward_model", obj.head)
            elif i < len(self.spec.stages) - 1:
                next_dir = self._merge(par, pcfg, model, model_dir, stage_dir / "merged", obj.head)
            # The task's lm-eval metric where requested; else the objective's own (rm: pairwise
            # accuracy); else the task loss on the test split.
            metric = result.get("metric")
            if metric_before and metric_after:
                metric = (metric_before[0], metric_before[1], metric_after[1])
            values = dict(
                status="ok", total_params=total_before, trainable_params=trainable,
                trainable_share=trainable / total_before if total_before else None, adapter_bytes=dir_bytes(art),
                steps=result.get("steps"), train_loss=result.get("train_loss"), eval_loss=loss_after,
                metric_name=metric[0] if metric else ("eval_loss" if loss_before is not None else None),
                metric_before=metric[1] if metric else loss_before, metric_after=metric[2] if metric else loss_after,
                general_loss_before=general_before, general_loss_after=general_after,
                forgetting=general_after - general_before if general_after is not None else None,
                extra=json.dumps({"eval_loss_before": loss_before, **(result.get("extra") or {})}, default=str),
                model_params=total_before, **meter.result(), **self.progress.summary(),
            )
        except (torch.OutOfMemoryError, MemoryError) as e:
            values = dict(status="oom", error=f"{type(e).__name__}: {str(e)[:500]}")
        except RuntimeError as e:
            if not is_oom(e):
                values = dict(status="error", error=f"{type(e).__name__}: {e}"[:800] + "\n" +
                              traceback.format_exc(limit=3)[-1200:])
            else:  # torch's CPU allocator raises a plain RuntimeError when memory runs out
                values = dict(status="oom", error=f"{type(e).__name__}: {str(e)[:500]}")
        except Cancelled as e:
            values = dict(status="cancelled", error=str(e))
        except UserError:
            raise
        except Exception as e:  # a crash is a result: recorded, then the stack stops
            tb = traceback.format_exc(limit=3)
            values = dict(status="error", error=f"{type(e).__name__}: {e}"[:800] + "\n" + tb[-1200:])
        values["wall_time_s"] = time.perf_counter() - t0
        rec = self._write({**base, **values})
        self.progress.end_stage(rec["status"], rec["run_id"])
        return rec, next_dir, rm_dir

    def _extra_models(self, hp, reward_model_dir, model_dir, obj_name: str, task: str) -> dict:
        extra = {}
        if obj_name == "distill" and not hp.teacher:
            extra["teacher"] = load_model(self._auto_teacher(model_dir, task, hp), "causal_lm", {}).eval()
        rm = hp.reward_model or reward_model_dir
        if rm:
            extra["reward_model"] = load_model(model_path(str(rm)), "seq_cls", {}).eval()
        if hp.teacher:
            extra["teacher"] = load_model(model_path(hp.teacher), "causal_lm", {}).eval()
        if hp.judge:
            extra["judge"] = load_model(model_path(hp.judge), "causal_lm", {}).eval()
        return extra

    def _auto_teacher(self, model_dir: Path, task: str, hp) -> Path:
        """No teacher given: train one (sft:full on the task, 2x the stage's steps) and cache it."""
        from bench.metrics import config_hash

        steps = max(10, 2 * hp.max_steps)
        key = config_hash({"model": str(model_dir), "task": task, "steps": steps, "seed": hp.seed})[:12]
        dest = home() / "models" / "teachers" / key
        if (dest / "config.json").exists():
            return dest
        spec = StackSpec(model=str(model_dir), task=task, seed=hp.seed,
                         hp={"max_steps": steps, "learning_rate": 1e-4, "batch_size": hp.batch_size,
                             "max_length": hp.max_length, "eval_limit": 0},
                         stages=[StageSpec(objective="sft", method="full")])
        work = dest.with_name(dest.name + ".work")
        StackRun(spec, work, db=None, quiet=True).run()
        stage = work / "stage0-sft-full" / "adapter"
        if not (stage / "config.json").exists():
            raise RuntimeError("training the distillation teacher failed")
        os.replace(stage, dest)
        shutil.rmtree(work, ignore_errors=True)
        return dest

    def _merge(self, par, pcfg, model, model_dir: Path, dest: Path, head: str) -> Path:
        """Fold the stage's update into a plain HF folder for the next stage."""
        if par.load_kwargs:  # quantized base: re-load full precision, attach the adapter, merge
            fresh = load_model(model_dir, head, {})
            model = par.load(fresh, str(dest.parent / "adapter"), pcfg)
        merged = par.merge(model)
        if merged is None:
            raise UserError(f"{par.name} cannot be merged into the base")
        tmp = dest.with_name(dest.name + ".tmp")
        shutil.rmtree(tmp, ignore_errors=True)
        merged.save_pretrained(tmp, safe_serialization=True)
        load_tokenizer(model_dir).save_pretrained(tmp)
        os.replace(tmp, dest)
        return dest

    def _write(self, values: dict) -> dict:
        from bench.schema import new_record

        rec = new_record(**values)
        if self.db is not None:
            from bench.results import write_record

            write_record(self.db, rec)
        return rec


def default_out() -> Path:
    return home() / "runs" / time.strftime("%Y%m%d-%H%M%S")
