"""Train one stage or a whole stack and write one result record per stage.

    tunebench train --stack "cpt:full,sft:lora,dpo:lora" --model tiny-llama --task smoke --max-steps 3
    tunebench train stack.yaml --db DIR

Each stage loads the current model folder (quantized if its parameterization says so), measures
the model before, applies the parameterization, trains with its objective, measures after, saves
what trained and — when another stage follows — merges the update into a plain HF folder the
next stage starts from (a quantized stage is merged onto the full-precision base, the usual
merge-then-requantize path). A stage whose objective card ``provides`` something (``rm``: a
reward model) leaves it for later stages that ``need`` it and leaves the policy untouched; what
a card needs is supplied by name (``SUPPLIERS``, bench/stack.py ``SUPPLIES``).
"""
from __future__ import annotations

import json
import os
import shutil
import signal
import time
import traceback
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import torch

from bench import taskdata, tracking, userdata
from bench.home import home
from bench.models import model_path
from bench.progress import Progress
from bench.quality import baseline, general_text_loss, task_loss, task_metric
from bench.stack import SUPPLIES, stage_hp, validate
from common.errors import UserError
from common.stack import HyperParams, StackSpec, StageSpec
from methods import objective, parameterization
from methods._common import trainable_counts
from methods.context import StageContext, StageResult


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
    if "quantization_config" in load_kwargs:
        from methods._quant import keep_training_layout

        # Before the first no-grad forward (the before-training evaluation): bitsandbytes would
        # otherwise repack NF4 layers for CPU inference, and QLoRA then trains through the
        # repacked layout and learns far less (tests/methods/test_parameterizations.py).
        keep_training_layout(model)
    elif torch.cuda.is_available():
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


def settle_meter(meter) -> list:
    """A trainer callback that lets the memory meter drop its saved-tensor hooks after a step
    once it has sampled what it needs (bench/metrics.py ``Meter.settle``)."""
    if meter is None:
        return []
    from transformers import TrainerCallback

    class SettleMeter(TrainerCallback):
        def on_step_end(self, args, state, control, **kw):
            meter.settle()

    return [SettleMeter()]


def failure(e: Exception) -> dict:
    """A crash as a result record's status and error (the stack stops after it)."""
    if isinstance(e, Cancelled):
        return dict(status="cancelled", error=str(e))
    # torch's CPU allocator raises a plain RuntimeError when memory runs out
    if isinstance(e, (torch.OutOfMemoryError, MemoryError)) or (isinstance(e, RuntimeError) and is_oom(e)):
        return dict(status="oom", error=f"{type(e).__name__}: {str(e)[:500]}")
    return dict(status="error", error=f"{type(e).__name__}: {e}"[:800] + "\n" + traceback.format_exc(limit=3)[-1200:])


def _hash(payload: dict) -> str:
    from bench.metrics import config_hash

    return config_hash(payload)


def split_records(task: str, fmt: str, hp: HyperParams) -> tuple[list[dict], list[dict]]:
    """A prepared task's training and scoring records. ``eval_split: validation`` scores the last
    ``eval_limit`` train records and trains on the ones before them (then ``train_limit``)."""
    if hp.eval_split == "test" or not hp.eval_limit:
        return (taskdata.load_records(task, "train", fmt, hp.train_limit),
                taskdata.load_records(task, "test", fmt, hp.eval_limit) if hp.eval_limit else [])
    records = taskdata.load_records(task, "train", fmt)
    if len(records) <= hp.eval_limit:
        raise UserError(f"task {task} has {len(records)} train records: eval_split=validation cannot hold out "
                        f"eval_limit={hp.eval_limit} of them and still train; lower eval_limit")
    train, held = records[:-hp.eval_limit], records[-hp.eval_limit:]
    return (train[:hp.train_limit] if hp.train_limit else train), held


@dataclass
class StagePlan:
    """One stage's inputs, loaded before anything trains."""

    task: str
    hp: HyperParams
    train: list[dict]
    eval: list[dict]
    checker: Callable[[str, str], float] | None = None
    user_data: bool = False  # the user's own files, not a prepared task (no checksum to key a cache on)


@dataclass
class Stage:
    """One stage as it runs: what it is, then what load / measure / train fill in."""

    index: int
    spec: StageSpec
    plan: StagePlan
    obj: Any  # methods.registry.Objective
    par: Any  # methods.registry.Parameterization
    ocfg: Any
    pcfg: Any
    dir: Path
    model_dir: Path  # the folder it starts from
    tok: Any = None
    model: Any = None
    total_params: int = 0
    trainable: int = 0
    before: dict = field(default_factory=dict)  # loss, metric, general (None where not measured)
    after: dict = field(default_factory=dict)
    result: StageResult | None = None

    @property
    def causal(self) -> bool:
        return self.obj.head == "causal_lm"


# ---- what a card needs, supplied by name (bench/stack.py SUPPLIES says where each may come from) ----


def _teacher(run: StackRun, s: Stage, provided: dict[str, Path]):
    hp = s.plan.hp
    path = model_path(hp.teacher) if hp.teacher else run.auto_teacher(s.model_dir, s.plan.task, hp)
    return load_model(path, "causal_lm", {}).eval()


def _reward_model(run: StackRun, s: Stage, provided: dict[str, Path]):
    rm = s.plan.hp.reward_model or provided.get("reward_model")
    return load_model(model_path(str(rm)), "seq_cls", {}).eval() if rm else None


def _judge(run: StackRun, s: Stage, provided: dict[str, Path]):
    # None: the objective judges with the stage's own starting model
    return load_model(model_path(s.plan.hp.judge), "causal_lm", {}).eval() if s.plan.hp.judge else None


def _checker(run: StackRun, s: Stage, provided: dict[str, Path]):
    return s.plan.checker


SUPPLIERS: dict[str, Callable[[StackRun, Stage, dict[str, Path]], Any]] = {
    "teacher": _teacher, "reward_model": _reward_model, "judge": _judge, "checker": _checker,
}
assert set(SUPPLIERS) == set(SUPPLIES)


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
        self.meter = None  # the running stage's memory meter

    def prepare_inputs(self) -> list[StagePlan]:
        """Load every stage's records up front, so a missing task fails before training starts."""
        plans = []
        for st in self.spec.stages:
            obj = objective(st.objective)
            hp = stage_hp(self.spec, st)
            source = userdata.stage_source(self.spec, st)
            if source is not None:  # the user's own data, split and converted for this objective
                ud = userdata.stage_data(source, obj, hp, st.label)
                plans.append(StagePlan(task=ud.label, hp=hp, train=ud.train, eval=ud.eval, checker=ud.checker,
                                       user_data=True))
                continue
            task = st.task or self.spec.task
            train, held = split_records(task, obj.data, hp)
            plans.append(StagePlan(task=task, hp=hp, train=train, eval=held,
                                   checker=taskdata.checker(task) if "checker" in obj.card.needs else None))
        return plans

    def check_model_refs(self) -> None:
        """Every model a stage's hp names (teacher, reward_model, judge) exists before anything trains."""
        for st in self.spec.stages:
            hp = stage_hp(self.spec, st)
            for sup in SUPPLIES.values():
                if sup.hp and getattr(hp, sup.hp):
                    model_path(getattr(hp, sup.hp))

    def run(self) -> list[dict]:
        quiet_libraries()
        validate(self.spec)
        tracking.check(self.spec.report_to)
        base_dir = model_path(self.spec.model)
        self.check_model_refs()
        plans = self.prepare_inputs()
        self.out.mkdir(parents=True, exist_ok=True)
        (self.out / "stack.json").write_text(self.spec.model_dump_json(indent=2))
        old = {s: signal.signal(s, _on_signal) for s in (signal.SIGTERM, signal.SIGINT)}
        records, status = [], "ok"
        try:
            records = self.run_stages(plans, base_dir)
            status = records[-1]["status"] if records else "ok"
        finally:
            for s, h in old.items():
                signal.signal(s, h)
            self.progress.close(status)
        return records

    def run_stages(self, plans: list[StagePlan], base_dir: Path) -> list[dict]:
        """Stage after stage, each from the previous one's merge; stops at the first failure."""
        records, current, provided = [], base_dir, {}
        for i, (st, plan) in enumerate(zip(self.spec.stages, plans)):
            if self.resume and self.finished(i, st):
                next_dir, made = self.outputs(i, st)
            else:
                rec, next_dir, made = self.run_stage(i, st, plan, current, provided)
                records.append(rec)
                if rec["status"] != "ok":
                    break
            current, provided = next_dir or current, {**provided, **made}
        return records

    def stage_dir(self, i: int, st: StageSpec) -> Path:
        return self.out / f"stage{i}-{st.objective}-{st.method}"

    def outputs(self, i: int, st: StageSpec) -> tuple[Path | None, dict[str, Path]]:
        """Where stage i leaves what later stages read: (merged policy folder, {provided: folder})."""
        d, provides = self.stage_dir(i, st), objective(st.objective).card.provides
        if provides:  # e.g. rm: the stage's merged model is the reward model; the policy is untouched
            mergeable = parameterization(st.method).merge is not None
            return None, ({p: d / provides[0] for p in provides} if mergeable else {})
        return (None if i == len(self.spec.stages) - 1 else d / "merged"), {}

    def finished(self, i: int, st: StageSpec) -> bool:
        """A stage whose outputs are all in place (what the next stage or the user reads)."""
        d = self.stage_dir(i, st)
        if not (d / "adapter").is_dir() or not any((d / "adapter").iterdir()):
            return False
        next_dir, made = self.outputs(i, st)
        return all((f / "config.json").exists() for f in [next_dir, *made.values()] if f is not None)

    def run_stage(self, i: int, st: StageSpec, plan: StagePlan, model_dir: Path, provided: dict[str, Path]):
        """load -> measure before -> train -> measure after -> persist; one result record either way."""
        from bench.metrics import Meter

        s = self.stage(i, st, plan, model_dir)
        ident = self.identity(s)
        hp = plan.hp
        if "teacher" in s.obj.card.needs and not hp.teacher:
            # train (and cache) the automatic teacher before this stage's meter opens: its training
            # steps would be sampled as the stage's forward->backward boundaries
            self.auto_teacher(model_dir, plan.task, hp)
        self.progress.start_stage(st.label, i, hp.max_steps, hp.batch_size * hp.grad_accum)
        t0 = time.perf_counter()
        next_dir, made = None, {}
        try:
            with Meter() as meter:
                self.meter = meter
                self.progress.paused = lambda: meter.paused_s
                self.load(s)
                self.measure_before(s)
                self.train(s, provided)
                self.measure_after(s)
            next_dir, made = self.persist(s)
            values = {**self.values(s), **meter.result(), **self.progress.summary()}
        except UserError:
            raise
        except Exception as e:  # a crash is a result: recorded, then the stack stops
            values = failure(e)
        values["wall_time_s"] = time.perf_counter() - t0
        rec = self._write({**ident, **values})
        self.progress.end_stage(rec["status"], rec["run_id"])
        return rec, next_dir, made

    def stage(self, i: int, st: StageSpec, plan: StagePlan, model_dir: Path) -> Stage:
        obj, par = objective(st.objective), parameterization(st.method)
        derived = par.run_defaults(plan.hp) if par.run_defaults else {}
        d = self.stage_dir(i, st)
        d.mkdir(parents=True, exist_ok=True)
        return Stage(index=i, spec=st, plan=plan, obj=obj, par=par, ocfg=obj.make_config(st.cfg),
                     pcfg=par.make_config({**derived, **st.method_cfg}), dir=d, model_dir=model_dir)

    def identity(self, s: Stage) -> dict:
        """The record fields that say which run this is (also written when it fails)."""
        from bench.metrics import fingerprint

        hp = s.plan.hp
        payload = {"model": self.spec.model, "stack": self.spec.label, "stage_index": s.index,
                   "stage": s.spec.model_dump(), "task": s.plan.task, "hp": hp.model_dump()}
        return dict(
            config_hash=_hash(payload), matrix=self.matrix, stack=self.spec.label, stage_index=s.index,
            stage=s.spec.label, objective=s.obj.name, method=s.par.name, model=self.spec.model, task=s.plan.task,
            seed=hp.seed, output_dir=str(s.dir), run_id=f"{self.run_id}-{s.index}" if self.run_id else None,
            hyperparams=json.dumps({"hp": hp.model_dump(), "cfg": s.ocfg.model_dump(),
                                    "method_cfg": s.pcfg.model_dump()}),
            **fingerprint(),
        )

    def load(self, s: Stage) -> None:
        torch.manual_seed(s.plan.hp.seed)
        s.tok = load_tokenizer(s.model_dir)
        s.model = load_model(s.model_dir, s.obj.head, s.par.load_kwargs(s.pcfg) if s.par.load_kwargs else {})
        _, s.total_params = trainable_counts(s.model)

    def measure_before(self, s: Stage) -> None:
        """Task loss, lm-eval metric and general-text loss of the untouched model (policies only)."""
        hp, task, model, tok = s.plan.hp, s.plan.task, s.model, s.tok
        s.before = dict(loss=None, metric=None, general=None)
        if not s.causal:
            return
        # a quantized base scores differently from the same folder in full precision
        variant = s.par.name if s.par.load_kwargs else "fp32"
        score = lambda: task_loss(model, tok, s.plan.eval, s.obj.data, hp.max_length)  # noqa: E731
        # Every run of a matrix scores the same untouched base on the same items: cache it for prepared
        # tasks (their checksum is in the key); the user's own data is scored every time.
        held = "" if hp.eval_split == "test" else f"-{hp.eval_split}"
        s.before["loss"] = (baseline(s.model_dir, f"task-loss-{variant}-{s.obj.data}-{hp.max_length}{held}", task,
                                     hp.eval_limit, score)
                             if not s.plan.user_data and taskdata.manifest(task) else score())
        if hp.metric_limit:
            s.before["metric"] = baseline(s.model_dir, f"metric-{variant}", task, hp.metric_limit,
                                          lambda: task_metric(model, tok, task, hp.metric_limit))
        if hp.eval_limit:
            s.before["general"] = baseline(s.model_dir, f"general-{variant}", "general-text", hp.eval_limit,
                                           lambda: general_text_loss(model, hp.eval_limit))

    def train(self, s: Stage, provided: dict[str, Path]) -> None:
        """Apply the parameterization, supply what the card needs, run the objective."""
        hp = s.plan.hp
        torch.manual_seed(hp.seed)  # lm-eval reseeds the global RNGs; cached baselines skip it
        s.model = s.par.apply(s.model, s.pcfg)
        s.trainable, _ = trainable_counts(s.model)
        self.meter.watch(s.model)
        extra = {need: v for need in s.obj.card.needs if need in SUPPLIERS
                 and (v := SUPPLIERS[need](self, s, provided)) is not None}
        ctx = StageContext(model=s.model, tokenizer=s.tok, train=s.plan.train, eval=s.plan.eval, hp=hp,
                           config=s.ocfg, out_dir=s.dir, parameterization=s.par.name, extra=extra,
                           callbacks=[self.progress.callback(), *step_hooks(s.par, s.model),
                                      *tracking.callbacks(self.spec.report_to, s.dir),
                                      *settle_meter(self.meter)],
                           save_steps=self.save_steps, resume=self.resume,
                           emit=lambda e: self.progress.step(e["step"], e.get("loss"), e.get("tokens", 0),
                                                             e.get("step_time_s")))
        s.result = s.obj.train(ctx)
        s.model = ctx.model

    def measure_after(self, s: Stage) -> None:
        hp, model, tok = s.plan.hp, s.model, s.tok
        s.after = dict(loss=None, metric=None, general=None)
        if not s.causal:
            return
        s.after["loss"] = task_loss(model, tok, s.plan.eval, s.obj.data, hp.max_length)
        s.after["metric"] = task_metric(model, tok, s.plan.task, hp.metric_limit)
        if s.before["general"] is not None:
            s.after["general"] = general_text_loss(model, hp.eval_limit)

    def persist(self, s: Stage) -> tuple[Path | None, dict[str, Path]]:
        """Save what trained; merge into the folder(s) later stages read. Returns outputs()."""
        art = s.dir / "adapter"
        s.par.save(s.model, str(art))
        s.tok.save_pretrained(art)
        next_dir, made = self.outputs(s.index, s.spec)
        for folder in dict.fromkeys(f for f in [next_dir, *made.values()] if f is not None):
            self._merge(s, folder)
        return next_dir, made

    def values(self, s: Stage) -> dict:
        """The result record's measurements of a stage that trained."""
        before, after, result = s.before, s.after, s.result
        # The task's lm-eval metric where requested; else the objective's own (rm: pairwise
        # accuracy); else the task loss on the test split.
        metric = result.metric
        if before["metric"] and after["metric"]:
            metric = (before["metric"][0], before["metric"][1], after["metric"][1])
        general = (before["general"], after["general"])
        return dict(
            status="ok", total_params=s.total_params, trainable_params=s.trainable,
            trainable_share=s.trainable / s.total_params if s.total_params else None,
            adapter_bytes=dir_bytes(s.dir / "adapter"), steps=result.steps, train_loss=result.train_loss,
            eval_loss=after["loss"],
            metric_name=metric[0] if metric else ("eval_loss" if before["loss"] is not None else None),
            metric_before=metric[1] if metric else before["loss"], metric_after=metric[2] if metric else after["loss"],
            general_loss_before=general[0], general_loss_after=general[1],
            forgetting=general[1] - general[0] if general[1] is not None else None,
            extra=json.dumps({"eval_loss_before": before["loss"], **result.extra,
                              "background_cpu_share": self.meter.background_share(),
                              "boundary_batches": self.meter.boundary_batches or None,
                              **tracking.record_extra(self.spec.report_to, s.dir)}, default=str),
            model_params=s.total_params,
        )

    def auto_teacher(self, model_dir: Path, task: str, hp: HyperParams) -> Path:
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

    def _merge(self, s: Stage, dest: Path) -> Path:
        """Fold the stage's update into a plain HF folder for the next stage."""
        model = s.model
        if s.par.load_kwargs:  # quantized base: re-load full precision, attach the adapter, merge
            fresh = load_model(s.model_dir, s.obj.head, {})
            model = s.par.load(fresh, str(s.dir / "adapter"), s.pcfg)
        merged = s.par.merge(model)
        if merged is None:
            raise UserError(f"{s.par.name} cannot be merged into the base")
        tmp = dest.with_name(dest.name + ".tmp")
        shutil.rmtree(tmp, ignore_errors=True)
        merged.save_pretrained(tmp, safe_serialization=True)
        load_tokenizer(s.model_dir).save_pretrained(tmp)
        os.replace(tmp, dest)
        return dest

    def _write(self, values: dict) -> dict:
        from bench.schema import new_record

        rec = new_record(**values)
        if self.db is not None:
            from bench.results import write_record

            write_record(self.db, rec)
        return rec
