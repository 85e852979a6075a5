"""The stages of a quick distill, in order. Each takes the results of the stages before it and returns a small frozen
result, so the data flow is in the signatures (runner.py lists the stages on one screen):

load -> Data; architecture -> Nets; method -> MethodChoice; plan -> Plan; teachers -> Teachers; students -> Trials.
"""

from __future__ import annotations

import copy
import math
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, NamedTuple, TypedDict

import numpy as np
import torch
import torch.nn.functional as F

from skill.distill import nets as netlib
from skill.distill import topologies
from skill.distill.budget import _forward_flops, check_run_size, measured_flops_per_s
from skill.distill.config import DistillConfig
from skill.distill.data import Dataset, load_dataset
from skill.distill.equal_terms import CutShort, cut_short, ended_by_share, learner_epoch_cap, share_clock
from skill.distill.evaluate import latency, logits_of, model_metrics
from skill.distill.plan import (
    BudgetRules,
    Costs,
    Infeasible,
    Shape,
    fit_students,
    plateau_epoch,
    restorable_trials,
    robust_step_s,
    seed_floor,
    smallest_budget,
    teacher_share,
)
from skill.distill.prepare import Scaler, check_leaks, class_gaps, fit_scaler, standardise
from skill.distill.report import ModelMetrics, Trial, WallTime
from skill.distill.report import Plan as PlanReport
from skill.distill.targets import EnsembleTeacher, PeerTargets, SoftTargets, TeacherTargets, split_outputs
from skill.distill.teacher import load_logits, load_teacher_module, teacher_kind
from skill.distill.threads import choose_threads
from skill.distill.train import Clock, Member, Recipe, Result, Stopped, TrainSpec, train
from skill.errors import InputError
from skill.rules import get_rules

ProgressFn = Callable[[float, float, str], None]
MAX_STACKED_WEIGHTS = (
    50_000_000  # all students of a run train at once: with Adam's state about 800 MB of float32 at most
)
CONV_TEACHER_DEFAULT = [32, 32]  # a conv teacher with the MLP default of 256 channels would not fit a CPU budget
PROBE_STEPS = 28  # steps per cost probe: the lower quartile of the last 24 (four warm-up steps), see plan.robust_step_s
PROBE_WARMUP = 4
LEARNER_ROLES = ("distilled", "peer", "generation")


def _t(a: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(np.ascontiguousarray(a))


class Progress:
    """Counts stack epochs against the plan so callers can show a bar; messages say phase, epoch, loss, val acc."""

    def __init__(self, fn: ProgressFn | None) -> None:
        self.fn, self.total, self.done = fn, 1.0, 0.0

    def say(self, message: str) -> None:
        if self.fn:
            self.fn(min(self.done, self.total), self.total, message)

    def hook(self, phase: str, epochs: int, roles: list[str]) -> Callable[[int, float, list[float]], None]:
        def on_epoch(epoch: int, loss: float, val: list[float]) -> None:
            self.done += 1
            best = {r: max(v for v, rr in zip(val, roles, strict=True) if rr == r) for r in dict.fromkeys(roles)}
            accs = " ".join(f"{r} {v:.4f}" for r, v in best.items())
            self.say(f"{phase}: epoch {epoch}/{epochs} loss {loss:.4f} val_acc {accs}")

        return on_epoch


@dataclass(frozen=True)
class Context:
    """What every stage reads: the request, the clock, the progress sink and the device; `wall` collects stage times."""

    cfg: DistillConfig
    clock: Clock
    progress: Progress
    device: torch.device
    device_reason: str
    wall: WallTime = field(default_factory=WallTime)
    rules: BudgetRules = field(default_factory=lambda: BudgetRules.from_rules(get_rules().runner))

    @property
    def selection(self) -> Mapping[str, Any]:
        return get_rules().runner["selection"]


# ---- 1. load ---------------------------------------------------------------------------------------------------------
class TrainingTensors(TypedDict):
    """The tensors of a TrainSpec that come from the data (passed as **data.training())."""

    X: torch.Tensor
    y: torch.Tensor
    has_label: torch.Tensor
    X_val: torch.Tensor
    y_val: torch.Tensor


@dataclass(frozen=True)
class Data:
    """The standardised split, its scaler, and the tensors training reads (on the run's device; X_test stays on the
    CPU)."""

    dataset: Dataset
    scaler: Scaler
    tensors: Mapping[str, torch.Tensor]
    warnings: tuple[str, ...]

    @property
    def n_labelled(self) -> int:
        return len(self.dataset.X_train)

    def training(self) -> TrainingTensors:
        """What every training stack reads: the transfer set with its labels and mask, and the validation split."""
        t = self.tensors
        return TrainingTensors(X=t["X"], y=t["y"], has_label=t["has_label"], X_val=t["X_val"], y_val=t["y_val"])


def load(ctx: Context) -> Data:
    cfg, t0 = ctx.cfg, time.monotonic()
    ctx.progress.say("loading data")
    raw = load_dataset(
        cfg.dataset,
        label_column=cfg.label_column,
        test_fraction=cfg.test_fraction,
        val_fraction=cfg.val_fraction,
        labeled_fraction=cfg.labeled_fraction,
        seed=cfg.seed,
    )
    if ctx.clock.stop():  # a cancel during the imports and the data load takes effect here
        raise Stopped("cancelled")
    warnings = check_leaks(raw) + class_gaps(raw)
    kind = cfg.standardize
    if kind == "auto":
        kind = "global" if (cfg.input_layout == "sequence" or raw.image_side) else "per_feature"
    scaler = fit_scaler(kind, raw.X_train, raw.X_unlabeled)
    d = standardise(raw, scaler)
    X = np.concatenate([d.X_train, d.X_unlabeled]) if len(d.X_unlabeled) else d.X_train
    y = np.concatenate([d.y_train, np.zeros(len(d.X_unlabeled), np.int64)]) if len(d.X_unlabeled) else d.y_train
    has_label = torch.zeros(len(X), dtype=torch.bool)
    has_label[: len(d.X_train)] = True
    dev = ctx.device
    tensors = {
        "X": _t(X).to(dev),
        "y": _t(y).to(dev),
        "has_label": has_label.to(dev),
        "X_val": _t(d.X_val).to(dev),
        "y_val": _t(d.y_val).to(dev),
        "X_test": _t(d.X_test),
    }
    ctx.wall.data = time.monotonic() - t0
    return Data(d, scaler, tensors, tuple(warnings))


# ---- 2. architecture and sizes ---------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Nets:
    """The architecture, both sizes (and why the student has its size), and a given teacher when there is one."""

    arch: str
    in_features: int
    num_classes: int
    side: int | None
    scaler: Scaler
    teacher_hidden: list[int] | None
    student_hidden: list[int]
    student_reason: str
    teacher_params: int
    student_params: int
    teacher_source: str
    external: torch.nn.Module | None = None  # the user's teacher module (raw inputs)
    cached_logits: Mapping[str, np.ndarray] = field(
        default_factory=dict
    )  # the user's logits: "kd" aligned with X, "test"

    def build_student(self) -> netlib.StudentNet:
        return netlib.build(self.arch, self.in_features, self.student_hidden, self.num_classes, self.side)

    def build_teacher(self) -> netlib.StudentNet:
        return netlib.build(self.arch, self.in_features, self.teacher_hidden or [], self.num_classes, self.side)

    def to_teacher(self, x: torch.Tensor) -> torch.Tensor:
        """A user's teacher sees raw features; the runner's own teacher was trained on the student's inputs."""
        s = self.scaler
        if self.external is None or s.kind == "none":
            return x
        return x * _t(s.std).to(x.device) + _t(s.mean).to(x.device)


def architecture(ctx: Context, data: Data) -> Nets:
    cfg, d = ctx.cfg, data.dataset
    arch = cfg.arch
    if arch == "auto":
        arch = (
            "cnn1d"
            if cfg.input_layout == "sequence"
            else "cnn"
            if (cfg.method == "feature" and cfg.feature_loss == "attention" and d.image_side)
            else "mlp"
        )
    if arch == "cnn" and d.image_side is None:
        raise InputError("arch", f"cnn needs square image inputs; this dataset has {d.X_train.shape[1]} features")
    if cfg.feature_loss == "attention" and cfg.method == "feature" and arch == "mlp":
        raise InputError(
            "feature_loss",
            "attention transfer needs convolutional nets: set arch to cnn (square images) or cnn1d (sequences)",
        )
    hidden = (
        list(cfg.teacher_hidden)
        if ("teacher_hidden" in cfg.model_fields_set or arch == "mlp")
        else list(CONV_TEACHER_DEFAULT)
    )
    if cfg.teacher != "train":
        teacher_kind(Path(cfg.teacher))  # an unknown extension is refused before any work
    # every parameter and the work per step, against the budget
    check_run_size(cfg, arch, d, teacher_hidden=hidden)
    teacher_hidden: list[int] | None = hidden  # None when a given teacher takes the place of one trained here
    external: torch.nn.Module | None = None
    cached: dict[str, np.ndarray] = {}
    source, teacher_params = "trained here", 0
    if cfg.teacher != "train":
        external, cached, source = _load_user_teacher(cfg, data, arch, hidden, Path(cfg.teacher))
        teacher_hidden = None
        teacher_params = netlib.count_params(external) if external is not None else 0
    elif cfg.topology in ("teacher_student", "ensemble"):
        teacher_params = netlib.count_params(
            netlib.build(arch, d.X_train.shape[1], hidden, d.num_classes, d.image_side)
        )
    depth = 1 if arch == "mlp" else 2
    if cfg.student_hidden:
        student_hidden, reason = list(cfg.student_hidden), "given (student_hidden)"
    else:
        reference = teacher_params or (
            netlib.count_params(netlib.build(arch, d.X_train.shape[1], teacher_hidden, d.num_classes, d.image_side))
            if cfg.topology in ("online", "self") and teacher_hidden
            else 0
        )
        if reference:
            student_hidden = netlib.student_hidden_for(
                arch, d.X_train.shape[1], reference, cfg.target_compression, d.num_classes, d.image_side, depth
            )
            reason = (
                f"target_compression {cfg.target_compression:g}x of "
                f"{'the teacher' if teacher_params else 'a teacher of teacher_hidden'} ({reference:,} parameters)"
            )
        else:
            student_hidden, reason = _student_for_unknown_teacher(ctx, data, arch)
    student_params = netlib.count_params(
        netlib.build(arch, d.X_train.shape[1], student_hidden, d.num_classes, d.image_side)
    )
    return Nets(
        arch,
        d.X_train.shape[1],
        d.num_classes,
        d.image_side,
        data.scaler,
        teacher_hidden,
        student_hidden,
        reason,
        teacher_params,
        student_params,
        source,
        external=external,
        cached_logits=cached,
    )


def _student_for_unknown_teacher(ctx: Context, data: Data, arch: str) -> tuple[list[int], str]:
    """A teacher given as logits has no size to divide: the largest candidate (runner rules) with at most
    params_per_row parameters per training row that also fits the students' budget (work per step measured)."""
    cfg, d = ctx.cfg, data.dataset
    rules = get_rules().runner["student_size"]
    rows = len(data.tensors["X"])
    cap = rows * float(rules["params_per_row"])
    trials = (
        1
        if cfg.temperature is not None
        else len(cfg.temperature_grid) * (1 if cfg.kd_loss_weight is not None else len(cfg.weight_grid))
    )
    members = 2 * trials * cfg.seeds
    steps = math.ceil(rows / cfg.batch_size) * cfg.epochs
    speed = measured_flops_per_s()
    budget = cfg.time_budget_s  # a given teacher trains nothing here: the students get the whole budget
    chosen, why = None, ""
    candidates = [list(c) for c in rules["candidates"][arch]]
    for hidden in candidates:
        net = netlib.build(arch, d.X_train.shape[1], hidden, d.num_classes, d.image_side)
        params = netlib.count_params(net)
        seconds = _forward_flops(net, cfg.batch_size, d.X_train.shape[1]) * 3 * members * steps / speed
        if params <= cap and seconds <= budget:
            chosen = hidden
            why = (
                f"the teacher was given as logits (size unknown), so the student is the largest {arch} of "
                f"{[list(c) for c in candidates]} with at most {float(rules['params_per_row']):g} parameters per "
                f"training row ({params:,} <= {cap:,.0f} for {rows:,} rows) whose {members} trials x {cfg.epochs} "
                f"epochs fit the budget by their arithmetic (about {seconds:.0f} s)"
            )
            break
    if chosen is None:
        chosen = candidates[-1]
        why = (
            f"the teacher was given as logits (size unknown); no candidate of {candidates} fits {rows:,} training "
            "rows and the budget, so the smallest"
        )
    return chosen, why


def _load_user_teacher(
    cfg: DistillConfig, data: Data, arch: str, hidden: list[int], path: Path
) -> tuple[torch.nn.Module | None, dict[str, np.ndarray], str]:
    d = data.dataset
    if cfg.topology != "teacher_student":
        raise InputError(
            "topology", f"{cfg.topology} trains its own nets here; a given teacher needs topology teacher_student"
        )
    if teacher_kind(path) == "logits":
        n_total = len(d.train_index) + len(d.val_index) + len(d.unlabeled_from_train_index)
        cached = load_logits(path, n_total, len(d.X_test), d.num_classes)
        if cfg.method in ("feature", "relation") or cfg.augment != "none":
            raise InputError(
                "teacher",
                "precomputed logits support method response or cascade without augmentation; feature, relation and "
                "augmented runs need a teacher module",
            )
        tl = cached["logits_train"]
        unl = np.concatenate(
            [tl[d.unlabeled_from_train_index], cached.get("logits_unlabeled", np.zeros((0, d.num_classes), np.float32))]
        )
        if len(unl) != len(d.X_unlabeled):
            raise InputError(
                "teacher",
                f"logits_unlabeled must have {len(d.X_unlabeled) - len(d.unlabeled_from_train_index)} rows aligned "
                "with X_unlabeled",
            )
        return (
            None,
            {"kd": np.concatenate([tl[d.train_index], unl]), "test": cached["logits_test"]},
            "given: precomputed logits",
        )
    module = load_teacher_module(path, arch, hidden, d.X_train.shape[1], d.num_classes, d.image_side)
    nets = Nets(
        arch, d.X_train.shape[1], d.num_classes, d.image_side, data.scaler, None, [1], "", 0, 0, "", external=module
    )
    try:  # a teacher that cannot answer two training rows in the expected shape is refused here, not mid-run
        with torch.no_grad():
            logits = split_outputs(module(nets.to_teacher(data.tensors["X"][:2].cpu())))[0]
    except Exception as exc:
        raise InputError(
            "teacher",
            f"{path.name} failed on two training rows: "
            f"{str(exc).splitlines()[0][:200] if str(exc) else type(exc).__name__}",
        ) from exc
    if (
        not isinstance(logits, torch.Tensor)
        or tuple(logits.shape) != (2, d.num_classes)
        or not logits.is_floating_point()
    ):
        shape = tuple(logits.shape) if isinstance(logits, torch.Tensor) else type(logits).__name__
        raise InputError(
            "teacher",
            f"{path.name} must return logits of shape (rows, {d.num_classes}) (or a tuple starting with them); got "
            f"{shape}",
        )
    kind = "safetensors weights" if teacher_kind(path) == "safetensors" else "TorchScript"
    return module, {}, f"given: {kind} ({path.name})"


# ---- 3. method -------------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class MethodChoice:
    name: str
    reason: str
    settings: tuple[tuple[float, float], ...]  # the distilled side's (T, kd weight) grid, the rule's default first
    aux_weight: float


def method(ctx: Context, data: Data, nets: Nets) -> MethodChoice:
    cfg = ctx.cfg
    compression = nets.teacher_params / nets.student_params if nets.teacher_params else cfg.target_compression
    name: str  # the caller's method, or the one recommend_method names
    if cfg.method != "auto":
        # only a method the caller named is "fixed"; the default is not a choice anyone made
        name, reason = (
            cfg.method,
            (
                "fixed by the caller"
                if "method" in cfg.model_fields_set
                else "the default method (method auto asks kd_recommend_method)"
            ),
        )
    else:
        from skill.models import RecommendMethodRequest
        from skill.recommend import recommend_method

        # in a quick distill teacher and student solve the very same task (similarity 1) with the same family of net
        answer = recommend_method(
            RecommendMethodRequest(
                task_type="classification",
                task_similarity=1.0,
                compression_ratio=max(compression, 1.0),
                same_architecture_family=True,
            )
        )
        warnings = "; ".join(w.id for w in answer.warnings)
        name, reason = (
            answer.method.id,
            f"recommend_method: {answer.method.reason}" + (f" (warnings: {warnings})" if warnings else ""),
        )
    if cfg.topology in ("online", "self") and name in ("feature", "relation"):
        if cfg.method != "auto":
            raise InputError(
                "method",
                f"the {cfg.topology} topology distils the peers' or the previous generation's outputs (as published); "
                f"use method response or cascade, or topology teacher_student for {cfg.method}",
            )
        name, reason = "response", reason + f"; {cfg.topology} distils outputs only, so response is used"
    if nets.external is not None and name in ("feature", "relation"):
        with torch.no_grad():
            _, feat, maps = split_outputs(nets.external(nets.to_teacher(data.tensors["X"][:2].cpu())))
        if name == "feature" and (feat is None if cfg.feature_loss == "fitnet" else not maps):
            wanted = "(logits, features)" if cfg.feature_loss == "fitnet" else "(logits, features, [conv maps])"
            raise InputError(
                "method",
                f"the teacher returns logits only, so the feature method ({cfg.feature_loss}) has nothing to match; "
                f"use method response or relation, or export a teacher whose forward returns {wanted}",
            )
        if name == "relation" and feat is None:
            reason += "; the teacher returns logits only, so relations are computed on its logits"
    hp = get_rules().method["methods"]
    response = hp["response"]["hyperparameters"]
    default_w = cfg.kd_loss_weight if cfg.kd_loss_weight is not None else float(response["kd_loss_weight"])
    if cfg.temperature is not None:
        settings = [(cfg.temperature, default_w)]
    else:
        settings = [
            (T, w)
            for T in cfg.temperature_grid
            for w in ([cfg.kd_loss_weight] if cfg.kd_loss_weight is not None else cfg.weight_grid)
        ]
        T0, w0 = float(response["default_temperature"]), float(response["kd_loss_weight"])
        # when the plan cuts trials it keeps the first ones: the rule's default T and weight first
        settings.sort(key=lambda tw: (abs(math.log(tw[0] / T0)), abs(tw[1] - w0)))
    aux = 0.0
    if name == "feature":
        aux = float(
            hp["feature"]["hyperparameters"][
                "hint_loss_weight" if cfg.feature_loss == "fitnet" else "attention_loss_weight"
            ]
        )
    elif name == "relation":
        aux = 1.0  # the relation losses carry their rule weights themselves
    return MethodChoice(name, reason, tuple((float(T), float(w)) for T, w in settings), aux)


def recipe(cfg: DistillConfig, choice: MethodChoice) -> Recipe:
    hp = get_rules().method["methods"]["response"]["hyperparameters"]
    return Recipe(
        method="response" if choice.name == "cascade" else choice.name,
        response_loss=cfg.response_loss,
        feature_loss=cfg.feature_loss,
        relation_loss=cfg.relation_loss,
        augment=cfg.augment,
        dkd_alpha=float(hp["dkd_alpha"]),
        dkd_beta=float(hp["dkd_beta"]),
    )


def scratch_rates(base: float, trials: int, factors: tuple[float, ...]) -> list[float]:
    """The scratch side's learning rates: the rules' factors of the base, the base first (a cut keeps it); more
    trials than factors get rates spaced by factors of two around the base."""
    if trials <= len(factors):
        return [float(base * f) for f in factors[:trials]]
    return topologies.scratch_learning_rates(base, trials)


def trials_full(cfg: DistillConfig, choice: MethodChoice) -> int:
    """Trials per side before any cut: the distilled grid's size (online: the peers; self: the generations)."""
    return {"online": cfg.num_peers, "self": cfg.generations}.get(cfg.topology, len(choice.settings))


# ---- 4. plan: threads, costs from measured steps, the teacher's share, the student experiment that fits --------------
@dataclass(frozen=True)
class Plan:
    threads: int
    threads_reason: str
    shape: Shape
    full: Shape  # what was asked for, before any cut
    teacher_epochs: int  # the cap (early stopping ends it sooner); 0 when no teacher trains here
    teacher_share_s: float | None
    costs: Costs
    estimate_s: float
    report: PlanReport
    warnings: tuple[str, ...]
    learner_step_ratio: float = 1.0  # a learner stack's step over a scratch stack's of as many members (measured)


def _trains_teacher(cfg: DistillConfig) -> bool:
    return cfg.teacher == "train" and cfg.topology in ("teacher_student", "ensemble")


def _stacks(cfg: DistillConfig) -> Callable[[int, int], list[int]]:
    generations = cfg.generations if cfg.topology == "self" else 0

    def stacks(trials: int, seeds: int) -> list[int]:
        if cfg.topology == "self":
            return [trials * seeds] + [seeds] * generations
        return [trials * seeds, trials * seeds]

    return stacks


def plan(ctx: Context, data: Data, nets: Nets, choice: MethodChoice) -> Plan:
    cfg, rules, t0 = ctx.cfg, ctx.rules, time.monotonic()
    full = Shape(trials_full(cfg, choice), cfg.seeds, cfg.epochs)
    n_teachers = cfg.num_teachers if cfg.topology == "ensemble" else 1
    trains_teacher = _trains_teacher(cfg)
    if nets.student_params * full.trials * full.seeds * 2 > MAX_STACKED_WEIGHTS:
        stacked = nets.student_params * full.trials * full.seeds * 2
        raise InputError(
            "seeds",
            f"{full.trials * full.seeds * 2} students of {nets.student_params:,} weights each ({stacked:,} in all) "
            f"exceed the {MAX_STACKED_WEIGHTS:,} a quick distill trains at once: reduce seeds, temperature_grid, "
            "weight_grid or the student size",
        )
    macs = (
        cfg.batch_size
        * 3
        * max(nets.student_params * full.trials * full.seeds, nets.teacher_params * n_teachers if trains_teacher else 0)
    )
    threads, threads_reason = choose_threads(cfg.threads, macs * (nets.in_features if nets.arch != "mlp" else 1))
    torch.set_num_threads(threads)  # the runner restores the caller's setting when the run ends
    # costs: a few real steps of each kind of stack (the median: a shared machine delays single steps many times over)
    teacher_step = (
        _probe(
            ctx,
            data,
            nets,
            choice,
            [Member("teacher", cfg.seed + 1000 + i, cfg.learning_rate) for i in range(n_teachers)],
            teacher=True,
        )
        if trains_teacher
        else 0.0
    )
    big = _learners_for_probe(cfg, choice, full.trials * full.seeds)
    t_big = _probe(ctx, data, nets, choice, big)
    t_one = _probe(ctx, data, nets, choice, big[:1]) if len(big) > 1 else t_big
    per_member = max(0.0, (t_big - t_one) / (len(big) - 1)) if len(big) > 1 else 0.0
    rows = len(data.tensors["X"])
    ratio = _learner_step_ratio(ctx, data, nets, choice, big, t_big)
    costs = Costs(
        steps_per_epoch=math.ceil(rows / cfg.batch_size),
        fixed_s=max(t_one - per_member, 0.0),
        per_member_s=per_member,
        stacks=_stacks(cfg),
        teacher_epoch_s=math.ceil(data.n_labelled / cfg.batch_size) * teacher_step,
        safety=rules.safety_factor,
        # the probe measured learners for teacher_student and ensemble (scratch priced as learners: on the safe side);
        # for online and self it measured scratch, and peers and generations cost more a step
        learner_factor=1.0 if cfg.topology in ("teacher_student", "ensemble") else ratio,
    )
    reserve = rules.reserve_s(cfg.time_budget_s)
    left = ctx.clock.left() - reserve
    teacher_need = costs.teacher_s(cfg.teacher_epochs) if trains_teacher else 0.0
    students_full = costs.students_s(full)
    share = (
        teacher_share(left, teacher_need, students_full, rules.teacher_share_min, cfg.time_budget_s)
        if trains_teacher
        else None
    )
    warnings: list[str] = []
    floor = seed_floor(cfg.seeds, rules.seed_floor_for_verdict)
    if cfg.fit_to_budget:
        fitted = fit_students(
            full,
            left - (share or 0.0),
            costs,
            floor,
            lambda: _plateau(ctx, data, nets, choice),
            trials_cuttable=cfg.topology in ("teacher_student", "ensemble"),
            order=rules.cut_order,
            patience=cfg.patience,
        )
        if isinstance(fitted, Infeasible):
            spent = cfg.time_budget_s - ctx.clock.left()
            needed = (
                smallest_budget(spent, reserve, fitted.needed_s, rules.teacher_share_min)
                if trains_teacher
                else float(math.ceil((spent + reserve + fitted.needed_s) / 5) * 5)
            )
            more = (
                ""
                if needed <= 600
                else " (more than the 600 s a quick distill allows: use a smaller student, fewer rows or a larger "
                "batch_size, or run the full job with kd_export_recipe)"
            )
            at = "at least" if fitted.lower_bound else "about"
            raise InputError(
                "time_budget_s",
                f"{cfg.time_budget_s:g} s cannot fit "
                + (
                    f"the teacher's guaranteed share ({rules.teacher_share_min:.0%} of the budget: it trains until "
                    "validation stops improving or the share ends, and a slow teacher converges only with more) and "
                    if trains_teacher
                    else ""
                )
                + f"{fitted.reason}: "
                f"measured steps put that at {at} {needed:.0f} s{more}; nothing was trained. Raise time_budget_s to "
                f"{needed:.0f}" + (" or more" if fitted.lower_bound else "") + ", "
                "or lower seeds, temperature_grid or epochs yourself",
            )
        shape, cuts, plateau = fitted.shape, list(fitted.cuts), fitted.plateau_epoch
        costs = replace(costs, expected_epochs=fitted.expected_epochs)
        students_full = costs.students_s(full)  # at the epochs early stopping is expected to use
        if cuts:
            warnings.append(
                f"the full experiment needs about {students_full + teacher_need:.0f} s but the budget leaves "
                f"{left:.0f} s: cut "
                + "; ".join(cuts)
                + (" (the teacher was not cut: it keeps its share)" if trains_teacher else "")
            )
    else:
        shape, cuts, plateau = full, [], None
        if students_full + teacher_need > left:
            warnings.append(
                f"estimated {students_full + teacher_need:.0f} s but the budget leaves {left:.0f} s: the run will "
                "stop part-way (fit_to_budget is off; each side of the comparison trains within its share of the time "
                "left, the learners for no more epochs than scratch reached)"
            )
    estimate = round((min(teacher_need, share) if share is not None else 0.0) + costs.students_s(shape), 1)
    ctx.progress.total = float(
        (cfg.teacher_epochs if trains_teacher else 0) + shape.epochs * len(costs.stacks(shape.trials, shape.seeds))
    )
    ctx.wall.plan = time.monotonic() - t0
    ctx.progress.say(
        f"plan: teacher first ({'up to ' + format(share, '.0f') + ' s' if share is not None else 'given'}), then "
        f"{shape.trials} trial(s) per side x {shape.seeds} seed(s) x {shape.epochs} epochs, {threads} thread(s), "
        f"about {estimate:.0f} s"
    )
    report = PlanReport(
        budget_s=cfg.time_budget_s,
        teacher_share_s=None if share is None else round(share, 1),
        teacher_estimate_s=round(teacher_need, 1) if trains_teacher else None,
        students_estimate_s=round(costs.students_s(shape), 1),
        full_estimate_s=round(students_full + teacher_need, 1),
        seeds=shape.seeds,
        trials_per_side=shape.trials,
        epochs=shape.epochs,
        plateau_epoch=plateau,
        cuts=cuts,
        expected_epochs=costs.expected_epochs,
    )
    return Plan(
        threads,
        threads_reason,
        shape,
        full,
        cfg.teacher_epochs if trains_teacher else 0,
        share,
        costs,
        estimate,
        report,
        tuple(warnings),
        ratio,
    )


def _learners_for_probe(cfg: DistillConfig, choice: MethodChoice, count: int) -> list[Member]:
    """The costlier of the two stacks: learners (soft targets) for teacher_student and ensemble, scratch otherwise."""
    if cfg.topology in ("teacher_student", "ensemble"):
        T, w = choice.settings[0]
        return [
            Member(
                "distilled",
                cfg.seed + i,
                cfg.learning_rate,
                temperature=T,
                ce_weight=1 - w,
                kd_weight=w,
                aux_weight=choice.aux_weight,
            )
            for i in range(count)
        ]
    return [Member("scratch", cfg.seed + i, cfg.learning_rate) for i in range(count)]


def _learner_step_ratio(
    ctx: Context, data: Data, nets: Nets, choice: MethodChoice, probed: list[Member], probed_s: float
) -> float:
    """A learner stack's seconds per step over a scratch stack's of as many members: the scratch students' share of
    the time (equal_terms) needs both, and the plan probed one kind only (learners for teacher_student and ensemble,
    scratch for online and self, whose peers and generations cost more a step than scratch)."""
    cfg, count = ctx.cfg, len(probed)
    if cfg.topology in ("teacher_student", "ensemble"):
        scratch_s = _probe(
            ctx, data, nets, choice, [Member("scratch", cfg.seed + i, cfg.learning_rate) for i in range(count)]
        )
        return probed_s / scratch_s if scratch_s > 0 else 1.0
    n = min(len(data.tensors["X"]), PROBE_STEPS * cfg.batch_size)
    targets: SoftTargets
    if cfg.topology == "online":
        members = [
            Member("peer", cfg.seed + i, cfg.learning_rate, temperature=1.0, kd_weight=1.0) for i in range(count)
        ]
        targets = PeerTargets([i // max(cfg.num_peers, 1) for i in range(count)])
    else:  # self: each generation learns from the one before, a student-sized net
        members = [
            Member("generation", cfg.seed + i, cfg.learning_rate, temperature=4.0, ce_weight=0.5, kd_weight=0.5)
            for i in range(count)
        ]
        previous = nets.build_student().to(ctx.device).eval()
        targets = TeacherTargets([previous], [0] * count, data.tensors["X"][:n], cache=cfg.augment == "none")
    learner_s = _probe(ctx, data, nets, choice, members, targets=targets)
    return learner_s / probed_s if probed_s > 0 else 1.0


def _probe(
    ctx: Context,
    data: Data,
    nets: Nets,
    choice: MethodChoice,
    members: list[Member],
    teacher: bool = False,
    targets: SoftTargets | None = None,
) -> float:
    """Seconds per step of this stack: the lower quartile of real steps after the warm-up, on the first rows only."""
    cfg, t = ctx.cfg, data.tensors
    n = min(len(t["X"]), PROBE_STEPS * cfg.batch_size)
    rows = {"X": t["X"][:n], "y": t["y"][:n], "has_label": torch.ones(n, dtype=torch.bool, device=ctx.device)}
    hint_dim = None
    if targets is None and not teacher and any(m.learns_from_targets for m in members):
        source = nets.external if nets.external is not None else (None if nets.cached_logits else nets.build_teacher())
        targets, hint_dim = _teacher_targets(
            ctx, data, nets, choice, source, rows["X"], precomputed=_probe_logits(nets, n, ctx.device)
        )
    spec = TrainSpec(
        build=nets.build_teacher if teacher else nets.build_student,
        members=members,
        X=rows["X"],
        y=rows["y"],
        has_label=rows["has_label"],
        X_val=t["X_val"][:64],
        y_val=t["y_val"][:64],
        epochs=1,
        batch_size=cfg.batch_size,
        patience=cfg.patience,
        clock=Clock(
            deadline=time.monotonic() + 120, stop=ctx.clock.stop
        ),  # a measurement: its own clock, even past the budget
        recipe=recipe(cfg, choice),
        targets=targets,
        hint_dim=hint_dim,
        device=ctx.device,
    )
    spec.max_steps = PROBE_STEPS
    train(spec)
    return robust_step_s(spec.step_seconds, PROBE_WARMUP)


def _probe_logits(nets: Nets, n: int, device: torch.device) -> torch.Tensor | None:
    return _t(nets.cached_logits["kd"][:n]).to(device) if nets.cached_logits else None


def _plateau(ctx: Context, data: Data, nets: Nets, choice: MethodChoice) -> tuple[int, int | None, bool]:
    """The fewest student epochs the plan may cut to: where one scratch student's validation accuracy plateaus
    (within tie_rows rows of its best), times the rules' factor: distillation needs the longer schedule."""
    cfg, rules, t = ctx.cfg, ctx.rules, data.tensors
    # with a given teacher its soft targets exist already: probe a distilled student, the side that needs the longer
    # schedule (on a transfer set it keeps improving long after a scratch student on few labels has peaked)
    given = (nets.external is not None or bool(nets.cached_logits)) and cfg.topology == "teacher_student"
    member, targets, hint_dim = Member("scratch", cfg.seed, cfg.learning_rate), None, None
    if given:
        T, w = choice.settings[0]
        member = Member(
            "distilled",
            cfg.seed,
            cfg.learning_rate,
            temperature=T,
            ce_weight=1 - w,
            kd_weight=w,
            aux_weight=choice.aux_weight,
        )
        targets, hint_dim = _teacher_targets(
            ctx, data, nets, choice, nets.external, t["X"], precomputed=_probe_logits(nets, len(t["X"]), ctx.device)
        )
    ctx.progress.say(f"plan: probing where validation accuracy plateaus (one {member.role} student)")
    seconds = max(rules.probe_min_s, rules.probe_share_max * cfg.time_budget_s)
    sub = Clock(deadline=time.monotonic() + seconds, stop=ctx.clock.stop)  # planning: even past the budget
    spec = TrainSpec(
        build=nets.build_student,
        members=[member],
        **data.training(),
        epochs=min(rules.probe_max_epochs, cfg.epochs),
        batch_size=cfg.batch_size,
        patience=rules.teacher_patience,
        clock=sub,
        device=ctx.device,
        recipe=recipe(cfg, choice),
        targets=targets,
        hint_dim=hint_dim,
        epoch_rows=len(t["X"]),
    )
    result = train(spec)[0]
    if result.stopped == "cancelled":
        raise Stopped("cancelled")
    plateau = plateau_epoch(list(result.curve))
    if plateau is None:
        return max(1, cfg.epochs // 4), None, True
    # stopped by its clock with the best at the last epoch: the plateau is later than this (a lower bound)
    still_improving = result.stopped == "time_budget" and plateau >= len(result.curve) - 1
    return max(1, math.ceil(plateau * rules.plateau_epoch_factor)), plateau, still_improving


def tie_rows(ctx: Context) -> int:
    """Validation rows within which trials are tied (runner rules)."""
    return int(ctx.selection["tie_rows"])


# ---- 5. teachers -----------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Teachers:
    """The teacher the students learn from (None for online/self and for given logits) and how its training ended."""

    module: torch.nn.Module | None
    epochs_run: int | None
    stopped_by: str | None  # early_stopping, epoch_cap or budget_share (trained here only)
    warnings: tuple[str, ...] = ()


def teachers(ctx: Context, data: Data, nets: Nets, plan: Plan) -> Teachers:
    cfg, t0 = ctx.cfg, time.monotonic()
    if nets.external is not None:
        nets.external.eval()
        return Teachers(nets.external, None, None)
    if not _trains_teacher(cfg):
        return Teachers(None, None, None)
    count = cfg.num_teachers if cfg.topology == "ensemble" else 1
    members = [Member("teacher", cfg.seed + 1000 + i, cfg.learning_rate) for i in range(count)]
    # its own clock: the teacher trains until validation stops improving, within its share of the budget
    # its share is guaranteed; beyond it, it may use whatever the planned students do not need
    spare = ctx.clock.left() - ctx.rules.reserve_s(cfg.time_budget_s) - plan.costs.students_s(plan.shape)
    share = max(plan.teacher_share_s or 0.0, spare)
    ctx.progress.say(
        f"teacher: trains until validation stops improving ({ctx.rules.teacher_patience} epochs without a gain), "
        f"at most {plan.teacher_epochs} epochs and {share:.0f} s"
    )
    clock = Clock(deadline=min(ctx.clock.deadline, time.monotonic() + share), stop=ctx.clock.stop)
    phase = "teacher" if count == 1 else f"{count} teachers"
    results = train(
        TrainSpec(
            build=nets.build_teacher,
            members=members,
            **data.training(),
            epochs=plan.teacher_epochs,
            batch_size=cfg.batch_size,
            patience=ctx.rules.teacher_patience,
            clock=clock,
            on_epoch=ctx.progress.hook(phase, plan.teacher_epochs, ["teacher"] * count),
            device=ctx.device,
        )
    )
    first = results[0]
    if first.stopped == "cancelled":
        raise Stopped("cancelled")
    if first.val_accuracy < 0:
        raise Stopped("time_budget")
    stopped_by = "budget_share" if first.stopped else first.stopped_by
    warnings = []
    if stopped_by == "budget_share":
        warnings.append(
            f"the teacher used its whole budget share ({share:.0f} s, {first.epochs_run} epochs) while validation "
            "accuracy was still improving: it may be under-trained; a larger time_budget_s lets it train until it "
            "converges"
        )
    elif stopped_by == "epoch_cap":
        warnings.append(
            f"the teacher reached teacher_epochs ({plan.teacher_epochs}) before validation stopped improving: raise "
            "teacher_epochs"
        )
    module = (
        EnsembleTeacher([r.model for r in results], list(cfg.ensemble_weights or [r.val_accuracy for r in results]))
        if cfg.topology == "ensemble"
        else first.model
    )
    module.eval()
    # the students' progress bar counts the teacher's planned epochs: the ones early stopping saved are done too
    ctx.progress.done += plan.teacher_epochs - first.epochs_run
    ctx.wall.teacher = time.monotonic() - t0
    return Teachers(module, first.epochs_run, stopped_by, tuple(warnings))


# ---- 6. students: the scratch search, then the learners at the learning rate scratch selected ------------------------
class TrialRun(NamedTuple):
    member: Member
    result: Result
    generation: int | None = None

    @property
    def seed(self) -> int:
        return self.member.order_seed if self.member.order_seed is not None else self.member.seed


class Pair(NamedTuple):
    """One seed's selected scratch student and selected learner (distilled, peer or generation)."""

    seed: int
    scratch: TrialRun
    learner: TrialRun


@dataclass(frozen=True)
class Trials:
    runs: tuple[TrialRun, ...]
    shape: Shape
    stop_reason: str
    scratch_search: tuple[float, ...]
    distilled_search: tuple[tuple[float, float], ...]
    replanned: tuple[str, ...] = ()
    cut_short: CutShort | None = None  # the budget stopped the learners short of the scratch students' epochs

    def selected(self, seed: int, roles: tuple[str, ...]) -> TrialRun:
        """The trial of `seed` with the best validation accuracy among `roles` (the first in search order on equal
        accuracy)."""
        candidates = [r for r in self.runs if r.member.role in roles and r.seed == seed and r.result.val_accuracy >= 0]
        if not candidates:
            raise LookupError(seed)
        return max(candidates, key=lambda c: c.result.val_accuracy)

    def pairs(self, seeds: list[int]) -> list[Pair]:
        """Every seed where both sides finished an epoch."""
        out = []
        for seed in seeds:
            try:
                out.append(Pair(seed, self.selected(seed, ("scratch",)), self.selected(seed, LEARNER_ROLES)))
            except LookupError:
                continue
        return out


def _stop_of(results: list[Result]) -> str:
    """Why a stack ended for the run: the budget or a cancel stop it; early stopping, the cap and a side's share of
    the time (`budget_share`, after at least one epoch) do not."""
    reason = results[0].stopped if results else None
    if reason == "budget_share":
        return "finished" if ended_by_share(results) else "time_budget"
    return reason if reason in ("time_budget", "cancelled") else "finished"


def _scratch_stack(
    ctx: Context, data: Data, nets: Nets, plan: Plan, shape: Shape, members: list[Member], phase: str, left_s: float
) -> list[Result]:
    """One scratch stack within its share of `left_s`: the learners' stacks after it get the rest. They train last
    and so bear every estimate's error: their measured cost counts with the plan's safety factor."""
    learner_stacks = plan.costs.stacks(shape.trials, shape.seeds)[1:]
    weight = plan.learner_step_ratio * plan.costs.safety
    costs = [plan.costs.step_s(len(members))] + [weight * plan.costs.step_s(m) for m in learner_stacks]
    clock = share_clock(ctx.clock, left_s, costs)
    return train(_spec(ctx, data, nets, members, shape.epochs, phase, clock=clock))


def students(ctx: Context, data: Data, nets: Nets, choice: MethodChoice, plan: Plan, teacher: Teachers) -> Trials:
    cfg, t0 = ctx.cfg, time.monotonic()
    shape, replanned = _replan(ctx, plan)
    seeds = [cfg.seed + s for s in range(shape.seeds)]
    rates = scratch_rates(cfg.learning_rate, shape.trials, tuple(ctx.selection["lr_factors"]))
    settings = choice.settings[: shape.trials] if cfg.topology in ("teacher_student", "ensemble") else choice.settings
    scratch = [Member("scratch", seed, lr) for seed in seeds for lr in rates]
    runs: list[TrialRun] = []
    stop, short = "finished", None
    try:
        t_scratch = time.monotonic()
        left = ctx.clock.left() - ctx.rules.reserve_s(cfg.time_budget_s)
        phase = f"scratch students ({len(rates)} learning rates x {len(seeds)} seed(s))"
        results = _scratch_stack(ctx, data, nets, plan, shape, scratch, phase, left)
        runs += [TrialRun(m, r) for m, r in zip(scratch, results, strict=True)]
        stop = _stop_of(results)
        if stop == "finished" and not ended_by_share(results) and cfg.topology in ("teacher_student", "ensemble"):
            restored = _restore_trials(
                ctx, data, nets, plan, shape, seeds, rates, results, time.monotonic() - t_scratch
            )
            if restored is not None:
                extra_runs, shape, rates, note = restored
                runs += extra_runs
                replanned += (note,)
                settings = choice.settings[: shape.trials]
                stop = _stop_of([r.result for r in extra_runs])
        if stop != "finished":
            ctx.wall.students = time.monotonic() - t0
            return Trials(tuple(runs), shape, stop, tuple(rates), tuple(settings), replanned)
        scratch_results = [r.result for r in runs]
        cap = learner_epoch_cap(results, shape.epochs)
        if cap < shape.epochs:
            replanned += (
                f"the scratch students reached their share of the time after {cap} epoch(s): the learners train at "
                f"most {cap} epochs too, so neither side gets more",
            )
        t_learners = time.monotonic()
        learner_runs = _learners(ctx, data, nets, choice, teacher, runs, shape._replace(epochs=cap), settings)
        runs += learner_runs
        stop = learner_runs[-1].result.stopped or ("budget_share" if cap < shape.epochs else "finished")
        short = cut_short(
            scratch_results,
            _stacks_of(learner_runs),
            cfg.generations if cfg.topology == "self" else 1,
            time.monotonic() - t_learners,
            cfg.time_budget_s,
            plan.costs.safety,
            {"self": "born-again generations", "online": "online peers"}.get(cfg.topology, "distilled students"),
        )
    except Stopped as exc:
        stop = exc.reason
    ctx.wall.students = time.monotonic() - t0
    return Trials(tuple(runs), shape, stop, tuple(rates), tuple(settings), replanned, short)


def _stacks_of(runs: list[TrialRun]) -> list[list[Result]]:
    """The learners' results per stack, in training order (born-again generations train one stack each)."""
    stacks: dict[int | None, list[Result]] = {}
    for run in runs:
        stacks.setdefault(run.generation, []).append(run.result)
    return list(stacks.values())


def _learners(
    ctx: Context,
    data: Data,
    nets: Nets,
    choice: MethodChoice,
    teacher: Teachers,
    scratch: list[TrialRun],
    shape: Shape,
    settings: tuple[tuple[float, float], ...] | list[tuple[float, float]],
) -> list[TrialRun]:
    """The learners of the topology (born-again generations, online peers, or distilled students), each seed at the
    learning rate its scratch search selected, for at most shape.epochs."""
    cfg = ctx.cfg
    seeds = sorted({r.seed for r in scratch})
    chosen = {seed: Trials(tuple(scratch), shape, "finished", (), ()).selected(seed, ("scratch",)) for seed in seeds}
    lr = {seed: chosen[seed].member.lr for seed in seeds}
    if cfg.topology == "self":
        return _generations(ctx, data, nets, choice, seeds, lr, chosen, shape)
    if cfg.topology == "online":
        return _peers(ctx, data, nets, choice, seeds, lr, shape)
    learners = [
        Member("distilled", seed, lr[seed], temperature=T, ce_weight=1 - w, kd_weight=w, aux_weight=choice.aux_weight)
        for seed in seeds
        for T, w in settings
    ]
    targets, hint_dim = _teacher_targets(
        ctx,
        data,
        nets,
        choice,
        teacher.module,
        data.tensors["X"],
        precomputed=_probe_logits(nets, len(data.tensors["X"]), ctx.device),
    )
    phase = (
        f"distilled students ({choice.name}, {len(settings)} setting(s) x {len(seeds)} seed(s), at scratch's "
        "learning rate)"
    )
    spec = _spec(
        ctx, data, nets, learners, shape.epochs, phase, recipe=recipe(cfg, choice), targets=targets, hint_dim=hint_dim
    )
    return [TrialRun(m, r) for m, r in zip(learners, train(spec), strict=True)]


def _peers(
    ctx: Context,
    data: Data,
    nets: Nets,
    choice: MethodChoice,
    seeds: list[int],
    lr: dict[int, float],
    shape: Shape,
) -> list[TrialRun]:
    """Online (deep mutual learning): num_peers peers per seed learn from each other, KL at T = 1 as published."""
    cfg = ctx.cfg
    T = cfg.temperature if cfg.temperature is not None else 1.0
    peers, groups = [], []
    for seed in seeds:
        for i in range(cfg.num_peers):
            peers.append(
                Member("peer", seed + i * 7919, lr[seed], order_seed=seed, temperature=T, ce_weight=1.0, kd_weight=1.0)
            )
            groups.append(seed)
    spec = _spec(
        ctx,
        data,
        nets,
        peers,
        shape.epochs,
        f"online peers ({cfg.num_peers} per seed)",
        recipe=recipe(cfg, choice),
        targets=PeerTargets(groups),
    )
    return [TrialRun(m, r) for m, r in zip(peers, train(spec), strict=True)]


def _restore_trials(
    ctx: Context,
    data: Data,
    nets: Nets,
    plan: Plan,
    shape: Shape,
    seeds: list[int],
    rates: list[float],
    results: list[Result],
    scratch_s: float,
) -> tuple[list[TrialRun], Shape, list[float], str] | None:
    """The second re-plan, between the scratch and the distilled stacks: when the plan cut trials and the scratch
    students finished early, the cut learning rates train now as one more scratch stack and the distilled side gets
    as many settings, so both sides stay the best of the same number of trials. The scratch stack's real pace
    (seconds per step, against the probe's prediction) prices the rest, at the epochs the plan's estimate counts
    but never fewer than the scratch stack ran, so a restore never plans past the budget the way the plan prices it."""
    cfg = ctx.cfg
    if not cfg.fit_to_budget or shape.trials >= plan.full.trials:
        return None
    epochs_run = max(r.epochs_run for r in results)
    steps = epochs_run * plan.costs.steps_per_epoch
    members = len(results)
    predicted = plan.costs.step_s(members)
    pace = (scratch_s / steps) / predicted if steps and predicted > 0 else 1.0  # measured / predicted seconds per step

    # epochs: those the plan's estimate counts (early stopping expected), but never fewer than the scratch stack used
    epochs = min(shape.epochs, max(epochs_run, plan.costs.epochs_of(shape)))

    def stack_s(m: int) -> float:
        return epochs * plan.costs.steps_per_epoch * plan.costs.step_s(m) * pace * plan.costs.safety

    left = ctx.clock.left() - ctx.rules.reserve_s(cfg.time_budget_s)
    # the learners priced as the share prices them (equal_terms): a restore the share cannot fund is never started
    learner_weight = plan.learner_step_ratio * plan.costs.safety
    trials = restorable_trials(shape.trials, plan.full.trials, len(seeds), left, stack_s, learner_weight)
    if trials <= shape.trials:
        return None
    all_rates = scratch_rates(cfg.learning_rate, trials, tuple(ctx.selection["lr_factors"]))
    extra_rates = [lr for lr in all_rates if lr not in rates][: trials - shape.trials]
    if not extra_rates:
        return None
    extra = [Member("scratch", seed, lr) for seed in seeds for lr in extra_rates]
    ctx.progress.total += shape.epochs * 2  # one more scratch stack; the distilled stack was counted already
    note = (
        f"trials per side {shape.trials} -> {shape.trials + len(extra_rates)}: the scratch students finished in "
        f"{scratch_s:.1f} s ({epochs_run} of {shape.epochs} epochs), leaving {left:.0f} s; the cut learning rates "
        f"{', '.join(format(lr, 'g') for lr in extra_rates)} trained as a second scratch stack"
    )
    restored = shape._replace(trials=shape.trials + len(extra_rates))
    phase = f"scratch students, restored ({len(extra_rates)} learning rate(s) x {len(seeds)} seed(s))"
    results2 = _scratch_stack(ctx, data, nets, plan, restored, extra, phase, left)
    if results2[0].stopped == "budget_share":  # cut trials would be a handicap to scratch's search, not trials
        lrs, reached = ", ".join(format(lr, "g") for lr in extra_rates), max(r.epochs_run for r in results2)
        dropped = (
            f"the cut learning rates {lrs} started as a second scratch stack, but their share of the time ended "
            f"after {reached} epoch(s): dropped, so each side stays the best of {shape.trials} trial(s)"
        )
        return [], shape, list(rates), dropped
    runs = [TrialRun(m, r) for m, r in zip(extra, results2, strict=True)]
    return runs, restored, list(rates) + extra_rates, note


def _replan(ctx: Context, plan: Plan) -> tuple[Shape, tuple[str, ...]]:
    """Time the teacher did not use goes back to the students: what the plan cut is restored, in reverse cut order
    (epochs, seeds, trials), as far as the measured costs say it now fits."""
    if not ctx.cfg.fit_to_budget or plan.shape == plan.full:
        return plan.shape, ()
    left = ctx.clock.left() - ctx.rules.reserve_s(ctx.cfg.time_budget_s)
    shape, changes = plan.shape, []
    for name in reversed(ctx.rules.cut_order):
        field_ = {"student_epochs": "epochs"}.get(name, name)
        current, target = getattr(shape, field_), getattr(plan.full, field_)
        if field_ == "epochs" and plan.costs.expected_epochs is not None:
            # epochs beyond those early stopping is expected to use are priced as free: restore no further than them
            target = max(current, min(target, plan.costs.expected_epochs))
        for value in range(target, current, -1):
            candidate = shape._replace(**{field_: value})
            if plan.costs.students_s(candidate) <= left:
                changes.append(f"{field_} {current} -> {value}: the teacher finished early and left the time")
                shape = candidate
                break
    stacks = len(plan.costs.stacks(shape.trials, shape.seeds))
    ctx.progress.total += (shape.epochs - plan.shape.epochs) * stacks
    return shape, tuple(changes)


def _spec(ctx: Context, data: Data, nets: Nets, members: list[Member], epochs: int, phase: str, **kw: Any) -> TrainSpec:
    t = data.tensors
    return TrainSpec(
        build=nets.build_student,
        members=members,
        **data.training(),
        epochs=epochs,
        batch_size=ctx.cfg.batch_size,
        patience=ctx.cfg.patience,
        clock=kw.pop("clock", ctx.clock),
        on_epoch=ctx.progress.hook(phase, epochs, [m.role for m in members]),
        device=ctx.device,
        epoch_rows=len(t["X"]),
        **kw,
    )  # scratch and learner stacks train apart: the same steps per epoch (step-matched)


def _teacher_targets(
    ctx: Context,
    data: Data,
    nets: Nets,
    choice: MethodChoice,
    teacher: torch.nn.Module | None,
    X: torch.Tensor,
    precomputed: torch.Tensor | None,
) -> tuple[SoftTargets, int | None]:
    """Soft targets of a fixed teacher (outputs once when inputs are not augmented) and the FitNets hint width."""
    cfg = ctx.cfg
    if nets.cached_logits:
        return TeacherTargets([], [0], X, cache=True, precomputed=precomputed), None
    assert teacher is not None
    if ctx.device.type != "cpu":
        teacher = copy.deepcopy(teacher).to(ctx.device)  # the CPU copy stays for evaluation
    need_maps = choice.name == "feature" and cfg.feature_loss == "attention"
    targets = TeacherTargets(
        [teacher],
        [0],
        X,
        cache=cfg.augment == "none",
        to_teacher=nets.to_teacher if nets.external is not None else None,
        need_maps=need_maps,
    )
    hint_dim = None
    if choice.name == "feature" and cfg.feature_loss == "fitnet":
        with torch.no_grad():
            feat = split_outputs(teacher(nets.to_teacher(X[:2])))[1]
        assert feat is not None, "method() refuses the FitNets hint for a teacher without features"
        hint_dim = feat.shape[-1]
    return targets, hint_dim


def _generations(
    ctx: Context,
    data: Data,
    nets: Nets,
    choice: MethodChoice,
    seeds: list[int],
    lr: dict[int, float],
    chosen: dict[int, TrialRun],
    shape: Shape,
) -> list[TrialRun]:
    """Born-again generations: generation 0 is each seed's selected scratch student, g learns from g - 1."""
    cfg = ctx.cfg
    previous = [chosen[seed].result.model for seed in seeds]
    response = get_rules().method["methods"]["response"]["hyperparameters"]
    T = cfg.temperature if cfg.temperature is not None else float(response["default_temperature"])
    w = cfg.kd_loss_weight if cfg.kd_loss_weight is not None else float(response["kd_loss_weight"])
    runs: list[TrialRun] = []
    for g in range(cfg.generations):
        members = [Member("generation", seed, lr[seed], temperature=T, ce_weight=1 - w, kd_weight=w) for seed in seeds]
        teachers_ = [copy.deepcopy(p).to(ctx.device) for p in previous] if ctx.device.type != "cpu" else previous
        targets = TeacherTargets(teachers_, list(range(len(seeds))), data.tensors["X"], cache=cfg.augment == "none")
        results = train(
            _spec(
                ctx,
                data,
                nets,
                members,
                shape.epochs,
                f"born-again generation {g + 1}/{cfg.generations}",
                recipe=recipe(cfg, choice),
                targets=targets,
            )
        )
        runs += [TrialRun(m, r, g + 1) for m, r in zip(members, results, strict=True)]
        if results[0].stopped:
            break
        previous = [r.model for r in results]
    return runs


# ---- rows for the report ---------------------------------------------------------------------------------------------
def _rows_right(accuracy: float, n_val: int) -> int:
    """Validation rows a trial got right: accuracies are float32 means (94/95 - 92/95 = 2.0000026 rows), so ties are
    decided on whole rows, never on a fraction with a tolerance."""
    return int(round(accuracy * n_val))


def trial_rows(trials: Trials, seeds: list[int], tie_rows: int, n_val: int) -> list[Trial]:
    chosen: dict[int, bool] = {}  # id of a selected result -> tied
    for seed in seeds:
        for roles in (("scratch",), LEARNER_ROLES):
            try:
                best = trials.selected(seed, roles)
            except LookupError:
                continue
            others = [
                r.result.val_accuracy
                for r in trials.runs
                if r.member.role in roles and r.seed == seed and r is not best and r.result.val_accuracy >= 0
            ]
            gap = _rows_right(best.result.val_accuracy, n_val) - _rows_right(max(others), n_val) if others else None
            chosen[id(best.result)] = gap is not None and gap <= tie_rows
    return [
        Trial(
            role=r.member.role,
            seed=r.seed,
            learning_rate=r.member.lr,
            temperature=r.member.temperature if r.member.role != "scratch" else None,
            kd_loss_weight=r.member.kd_weight if r.member.role != "scratch" else None,
            generation=r.generation,
            val_accuracy=r.result.val_accuracy,
            epochs=r.result.epochs_run,
            stopped_by=r.result.stopped_by,
            steps=r.result.steps,
            selected=id(r.result) in chosen,
            tied=chosen.get(id(r.result), False),
        )
        for r in trials.runs
    ]


def probs_on(model: torch.nn.Module, X: torch.Tensor) -> np.ndarray:
    return F.softmax(logits_of(model, X), 1).numpy()


def metrics_of(data: Data, nets: Nets, probs: np.ndarray, model: torch.nn.Module | None, params: int) -> ModelMetrics:
    X = data.tensors["X_test"]
    timing = latency(model, nets.to_teacher(X) if model is nets.external else X) if model is not None else (0.0, 0.0)
    size = netlib.size_bytes(model) if model is not None else 0
    return model_metrics(probs, data.dataset.y_test, data.dataset.num_classes, params, size, timing)
