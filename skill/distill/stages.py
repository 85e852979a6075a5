"""The stages of a quick distill, in order; each reads and fills one `Run` (the runner lists them on one screen)."""

from __future__ import annotations

import math
import statistics
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np
import torch
import torch.nn.functional as F

from skill.distill import nets, topologies
from skill.distill.config import DistillConfig
from skill.distill.data import Dataset, load_dataset
from skill.distill.evaluate import latency, logits_of, model_metrics
from skill.distill.prepare import Scaler, check_leaks, fit_scaler, standardise
from skill.distill.report import ModelMetrics, Trial, WallTime
from skill.distill.targets import EnsembleTeacher, PeerTargets, TeacherTargets, split_outputs
from skill.distill.budget import check_run_size
from skill.distill.teacher import load_logits, load_teacher_module
from skill.distill.threads import choose_threads
from skill.distill.train import Clock, Member, Recipe, Result, Stopped, TrainSpec, train
from skill.errors import InputError
from skill.rules import get_rules

ProgressFn = Callable[[float, float, str], None]
MAX_STACKED_WEIGHTS = 50_000_000  # all students of a run train at once: with Adam's state about 800 MB of float32 at most
CONV_TEACHER_DEFAULT = [32, 32]  # a conv teacher with the MLP default of 256 channels would not fit a CPU budget


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
            best = {r: max(v for v, rr in zip(val, roles) if rr == r) for r in dict.fromkeys(roles)}
            accs = " ".join(f"{r} {v:.4f}" for r, v in best.items())
            self.say(f"{phase}: epoch {epoch}/{epochs} loss {loss:.4f} val_acc {accs}")

        return on_epoch


@dataclass
class Run:
    """Everything the stages share. Student inputs are standardised; `to_teacher` maps them back for a user teacher."""

    cfg: DistillConfig
    clock: Clock
    progress: Progress
    wall: WallTime = field(default_factory=WallTime)
    warnings: list[str] = field(default_factory=list)
    stop_reason: str = "finished"
    data: Dataset | None = None
    scaler: Scaler | None = None
    arch: str = "mlp"
    teacher_hidden: list[int] | None = None
    student_hidden: list[int] = field(default_factory=list)
    teacher_params: int = 0
    student_params: int = 0
    external_teacher: torch.nn.Module | None = None
    cached_logits: dict[str, np.ndarray] = field(default_factory=dict)
    method: str = "response"
    method_reason: str = ""
    grid: topologies.Grid | None = None
    teacher_epochs: int = 0
    epochs: int = 0
    threads: int = 1
    threads_reason: str = ""
    time_estimate_s: float | None = None
    teacher: torch.nn.Module | None = None  # internal teacher (student input space) or the user's module
    members: list[Member] = field(default_factory=list)
    results: list[Result] = field(default_factory=list)
    generations: list[tuple[list[Member], list[Result]]] = field(default_factory=list)  # self topology: one stack per generation
    tensors: dict[str, torch.Tensor] = field(default_factory=dict)
    hint_dim: int | None = None

    # ---- small helpers the stages share ----
    def build_student(self) -> torch.nn.Module:
        d = self.data
        return nets.build(self.arch, d.X_train.shape[1], self.student_hidden, d.num_classes, d.image_side)  # type: ignore[union-attr]

    def build_teacher(self) -> torch.nn.Module:
        d = self.data
        return nets.build(self.arch, d.X_train.shape[1], self.teacher_hidden, d.num_classes, d.image_side)  # type: ignore[union-attr,arg-type]

    def to_teacher(self, x: torch.Tensor) -> torch.Tensor:
        """A user's teacher sees raw features; the runner's own teacher was trained on the student's inputs."""
        s = self.scaler
        if self.external_teacher is None or s is None or s.kind == "none":
            return x
        return x * _t(s.std) + _t(s.mean)

    def spec(self, members: list[Member], epochs: int, phase: str, **kw) -> TrainSpec:  # type: ignore[no-untyped-def]
        t = self.tensors
        return TrainSpec(build=kw.pop("build", self.build_student), members=members, X=t["X"], y=t["y"], has_label=t["has_label"],
                         X_val=t["X_val"], y_val=t["y_val"], epochs=epochs, batch_size=self.cfg.batch_size, patience=self.cfg.patience,
                         clock=self.clock, on_epoch=self.progress.hook(phase, epochs, [m.role for m in members]) if phase else None, **kw)

    @property
    def learner_roles(self) -> tuple[str, ...]:
        return ("distilled", "peer", "generation")


# ---- 1. load --------------------------------------------------------------------------------------------------------
def load(run: Run) -> None:
    cfg, t0 = run.cfg, time.monotonic()
    run.progress.say("loading data")
    data = load_dataset(cfg.dataset, label_column=cfg.label_column, test_fraction=cfg.test_fraction, val_fraction=cfg.val_fraction,
                        labeled_fraction=cfg.labeled_fraction, seed=cfg.seed)
    if run.clock.stop():  # a cancel during the imports and the data load takes effect here
        raise Stopped("cancelled")
    run.warnings += check_leaks(data)
    kind = cfg.standardize
    if kind == "auto":
        kind = "global" if (cfg.input_layout == "sequence" or data.image_side) else "per_feature"
    run.scaler = fit_scaler(kind, data.X_train, data.X_unlabeled)
    run.data = standardise(data, run.scaler)
    d = run.data
    X = np.concatenate([d.X_train, d.X_unlabeled]) if len(d.X_unlabeled) else d.X_train
    y = np.concatenate([d.y_train, np.zeros(len(d.X_unlabeled), np.int64)]) if len(d.X_unlabeled) else d.y_train
    has_label = torch.zeros(len(X), dtype=torch.bool)
    has_label[: len(d.X_train)] = True
    run.tensors = {"X": _t(X), "y": _t(y), "has_label": has_label, "X_val": _t(d.X_val), "y_val": _t(d.y_val), "X_test": _t(d.X_test)}
    run.wall.data = time.monotonic() - t0


# ---- 2. architecture and sizes ----------------------------------------------------------------------------------------
def architecture(run: Run) -> None:
    cfg, d = run.cfg, run.data
    assert d is not None
    arch = cfg.arch
    if arch == "auto":
        arch = ("cnn1d" if cfg.input_layout == "sequence" else
                "cnn" if (cfg.method == "feature" and cfg.feature_loss == "attention" and d.image_side) else "mlp")
    if arch == "cnn" and d.image_side is None:
        raise InputError("arch", f"cnn needs square image inputs; this dataset has {d.X_train.shape[1]} features")
    if cfg.feature_loss == "attention" and cfg.method == "feature" and arch == "mlp":
        raise InputError("feature_loss", "attention transfer needs convolutional nets: set arch to cnn (square images) or cnn1d (sequences)")
    run.arch = arch
    run.teacher_hidden = list(cfg.teacher_hidden) if ("teacher_hidden" in cfg.model_fields_set or arch == "mlp") else list(CONV_TEACHER_DEFAULT)
    check_run_size(cfg, arch, d, teacher_hidden=run.teacher_hidden)  # every parameter and the work per step, against the budget
    if cfg.teacher != "train":
        _load_user_teacher(run, Path(cfg.teacher))
    elif cfg.topology in ("teacher_student", "ensemble"):
        run.teacher_params = nets.count_params(run.build_teacher())
    if cfg.student_hidden:
        run.student_hidden = list(cfg.student_hidden)
    elif run.teacher_params:
        run.student_hidden = nets.student_hidden_for(arch, d.X_train.shape[1], run.teacher_params, cfg.target_compression, d.num_classes,
                                                     d.image_side, depth=1 if arch == "mlp" else 2)
    elif cfg.topology in ("online", "self"):
        # no teacher here: size the student from what a teacher of teacher_hidden would be
        run.student_hidden = nets.student_hidden_for(arch, d.X_train.shape[1], nets.count_params(run.build_teacher()), cfg.target_compression,
                                                     d.num_classes, d.image_side, depth=1 if arch == "mlp" else 2)
    else:
        raise InputError("student_hidden", "the teacher's size is unknown (precomputed logits); give student_hidden")
    run.student_params = nets.count_params(run.build_student())


def _load_user_teacher(run: Run, path: Path) -> None:
    cfg, d = run.cfg, run.data
    assert d is not None
    if cfg.topology != "teacher_student":
        raise InputError("topology", f"{cfg.topology} trains its own nets here; a given teacher needs topology teacher_student")
    hidden = list(run.teacher_hidden or cfg.teacher_hidden)
    run.teacher_hidden = None
    if path.suffix == ".npz":
        n_total = len(d.train_index) + len(d.val_index) + len(d.unlabeled_from_train_index)  # type: ignore[arg-type]
        cached = load_logits(path, n_total, len(d.X_test), d.num_classes)
        if cfg.method in ("feature", "relation") or cfg.augment != "none":
            raise InputError("teacher", "precomputed logits support method response or cascade without augmentation; feature, relation and augmented runs need a teacher module")
        tl = cached["logits_train"]
        unl = np.concatenate([tl[d.unlabeled_from_train_index], cached.get("logits_unlabeled", np.zeros((0, d.num_classes), np.float32))])
        if len(unl) != len(d.X_unlabeled):
            raise InputError("teacher", f"logits_unlabeled must have {len(d.X_unlabeled) - len(d.unlabeled_from_train_index)} rows aligned with X_unlabeled")  # type: ignore[arg-type]
        run.cached_logits = {"kd": np.concatenate([tl[d.train_index], unl]), "test": cached["logits_test"]}
        return
    run.external_teacher = load_teacher_module(path, run.arch, hidden, d.X_train.shape[1], d.num_classes, d.image_side)
    run.teacher_params = nets.count_params(run.external_teacher)
    try:  # a teacher that cannot answer two training rows in the expected shape is refused here, not mid-run
        with torch.no_grad():
            logits = split_outputs(run.external_teacher(run.to_teacher(run.tensors["X"][:2])))[0]
    except Exception as exc:
        raise InputError("teacher", f"{path.name} failed on two training rows: {str(exc).splitlines()[0][:200] if str(exc) else type(exc).__name__}") from exc
    if not isinstance(logits, torch.Tensor) or tuple(logits.shape) != (2, d.num_classes) or not logits.is_floating_point():
        shape = tuple(logits.shape) if isinstance(logits, torch.Tensor) else type(logits).__name__
        raise InputError("teacher", f"{path.name} must return logits of shape (rows, {d.num_classes}) (or a tuple starting with them); got {shape}")


# ---- 3. method ------------------------------------------------------------------------------------------------------------
def method(run: Run) -> None:
    cfg = run.cfg
    compression = run.teacher_params / run.student_params if run.teacher_params else cfg.target_compression
    if cfg.method != "auto":
        # only a method the caller named is "fixed"; the default is not a choice anyone made
        run.method, run.method_reason = cfg.method, ("fixed by the caller" if "method" in cfg.model_fields_set
                                                     else "the default method (method auto asks kd_recommend_method)")
    else:
        from skill.models import RecommendMethodRequest
        from skill.recommend import recommend_method

        # in a quick distill teacher and student solve the very same task (similarity 1) with the same family of net
        answer = recommend_method(RecommendMethodRequest(task_type="classification", task_similarity=1.0, compression_ratio=max(compression, 1.0),
                                                         same_architecture_family=True))
        warnings = "; ".join(w.id for w in answer.warnings)
        run.method, run.method_reason = answer.method.id, f"recommend_method: {answer.method.reason}" + (f" (warnings: {warnings})" if warnings else "")
    if cfg.topology in ("online", "self") and run.method in ("feature", "relation"):
        if cfg.method != "auto":
            raise InputError("method", f"the {cfg.topology} topology distils the peers' or the previous generation's outputs (as published); "
                             f"use method response or cascade, or topology teacher_student for {cfg.method}")
        run.method, run.method_reason = "response", run.method_reason + f"; {cfg.topology} distils outputs only, so response is used"
    if run.external_teacher is not None and run.method in ("feature", "relation"):
        with torch.no_grad():
            _, feat, maps = split_outputs(run.external_teacher(run.to_teacher(run.tensors["X"][:2])))
        if run.method == "feature" and (feat is None if cfg.feature_loss == "fitnet" else not maps):
            wanted = "(logits, features)" if cfg.feature_loss == "fitnet" else "(logits, features, [conv maps])"
            raise InputError("method", f"the teacher returns logits only, so the feature method ({cfg.feature_loss}) has nothing to match; "
                             f"use method response or relation, or export a teacher whose forward returns {wanted}")
        if run.method == "relation" and feat is None:
            run.method_reason += "; the teacher returns logits only, so relations are computed on its logits"
    hp = get_rules().method["methods"]
    response = hp["response"]["hyperparameters"]
    default_w = cfg.kd_loss_weight if cfg.kd_loss_weight is not None else float(response["kd_loss_weight"])
    if cfg.temperature is not None:
        settings = [(cfg.temperature, default_w)]
    else:
        settings = [(T, w) for T in cfg.temperature_grid for w in ([cfg.kd_loss_weight] if cfg.kd_loss_weight is not None else cfg.weight_grid)]
    aux = 0.0
    if run.method == "feature":
        aux = float(hp["feature"]["hyperparameters"]["hint_loss_weight" if cfg.feature_loss == "fitnet" else "attention_loss_weight"])
    elif run.method == "relation":
        aux = 1.0  # the relation losses carry their rule weights themselves
    run.grid = topologies.Grid(settings=settings, aux_weight=aux)
    run.teacher_epochs, run.epochs = cfg.teacher_epochs, cfg.epochs


def recipe(run: Run) -> Recipe:
    cfg = run.cfg
    hp = get_rules().method["methods"]["response"]["hyperparameters"]
    return Recipe(method="response" if run.method == "cascade" else run.method, response_loss=cfg.response_loss, feature_loss=cfg.feature_loss,
                  relation_loss=cfg.relation_loss, augment=cfg.augment, dkd_alpha=float(hp["dkd_alpha"]), dkd_beta=float(hp["dkd_beta"]))


# ---- 4. plan: members, threads, time estimate ----------------------------------------------------------------------------
def plan(run: Run) -> None:
    cfg, grid, t0 = run.cfg, run.grid, time.monotonic()
    assert grid is not None
    seeds = [cfg.seed + s for s in range(cfg.seeds)]
    if cfg.topology == "online":
        T = cfg.temperature if cfg.temperature is not None else 1.0  # DML's published setting: KL between peers at T = 1
        run.members, groups = topologies.online(seeds, cfg.learning_rate, cfg.num_peers, T)
        run.tensors["groups"] = torch.tensor([-1 if g is None else g for g in groups])
    elif cfg.topology == "self":
        run.members = topologies.self_scratch(seeds, cfg.learning_rate, cfg.generations)
    else:
        run.members = topologies.teacher_student(seeds, cfg.learning_rate, grid)
    stacked = run.student_params * len(run.members)
    if stacked > MAX_STACKED_WEIGHTS:
        raise InputError("seeds", f"{len(run.members)} students of {run.student_params:,} weights each ({stacked:,} in all) exceed the "
                         f"{MAX_STACKED_WEIGHTS:,} a quick distill trains at once: reduce seeds, temperature_grid, weight_grid or the student size")
    n_teachers = cfg.num_teachers if cfg.topology == "ensemble" else 1
    trains_teacher = cfg.teacher == "train" and cfg.topology in ("teacher_student", "ensemble")
    rows = len(run.tensors["X"])
    macs = cfg.batch_size * 3 * max(run.student_params * len(run.members), run.teacher_params * n_teachers if trains_teacher else 0)
    run.threads, run.threads_reason = choose_threads(cfg.threads, macs * (run.data.X_train.shape[1] if run.arch != "mlp" else 1))  # type: ignore[union-attr]
    torch.set_num_threads(run.threads)  # the runner restores the caller's setting when the run ends
    # time estimate: a few real steps of each stack, extrapolated to the planned epochs (early stopping only shortens it)
    steps_per_epoch = math.ceil(rows / cfg.batch_size)
    teacher_step = _probe(run, [Member("teacher", cfg.seed + 1000 + i, cfg.learning_rate) for i in range(n_teachers)], run.build_teacher) if trains_teacher else 0.0
    student_step = _probe(run, run.members, run.build_student, probe_targets=True)
    stacks = 1 + (cfg.generations if cfg.topology == "self" else 0)
    estimate = steps_per_epoch * (run.teacher_epochs * teacher_step + run.epochs * student_step * stacks) * 1.1 + 1.0
    run.time_estimate_s = round(estimate, 1)
    left = run.clock.left()
    if estimate > left:
        if cfg.fit_to_budget:
            scale = left / estimate
            run.teacher_epochs = max(1, int(run.teacher_epochs * scale))
            run.epochs = max(1, int(run.epochs * scale))
            run.warnings.append(f"estimated {estimate:.0f} s for the requested epochs but the budget leaves {left:.0f} s: epochs scaled to "
                                f"{run.epochs} (teacher {run.teacher_epochs}); raise time_budget_s for the full schedule")
        else:
            run.warnings.append(f"estimated {estimate:.0f} s but the budget leaves {left:.0f} s: the run will stop part-way (fit_to_budget is off)")
    run.progress.total = float((run.teacher_epochs if trains_teacher else 0) + run.epochs * stacks)
    run.wall.plan = time.monotonic() - t0
    run.progress.say(f"plan: {len(run.members)} students per stack, {run.threads} thread(s), about {min(estimate, left):.0f} s")


def _probe(run: Run, members: list[Member], build, probe_targets: bool = False) -> float:  # type: ignore[no-untyped-def]
    """Seconds per step of this stack: the median of 10 real steps after 2 warm-up steps. The median, because on a
    shared machine single steps can be delayed many times over by other processes."""
    targets = None
    if probe_targets and run.cfg.topology != "self":
        targets = _targets(run, members)
    spec = run.spec(members, 1, "", build=build, recipe=recipe(run), targets=targets, hint_dim=run.hint_dim)
    spec.max_steps = 12
    train(spec)
    times = spec.step_seconds[2:] or spec.step_seconds
    return statistics.median(times) if times else 0.0


def _targets(run: Run, members: list[Member]):  # type: ignore[no-untyped-def]
    """The soft targets for the first student stack of this topology."""
    cfg = run.cfg
    if cfg.topology == "online":
        return PeerTargets([None if int(g) < 0 else int(g) for g in run.tensors["groups"]])
    if run.cached_logits:
        return TeacherTargets([], [0] * len(members), run.tensors["X"], cache=True, precomputed=_t(run.cached_logits["kd"]))
    teacher = run.teacher if run.teacher is not None else (run.external_teacher or run.build_teacher())
    need_maps = run.method == "feature" and cfg.feature_loss == "attention"
    targets = TeacherTargets([teacher], [0] * len(members), run.tensors["X"], cache=cfg.augment == "none",
                             to_teacher=run.to_teacher if run.external_teacher is not None else None, need_maps=need_maps)
    if run.method == "feature" and cfg.feature_loss == "fitnet":
        with torch.no_grad():
            run.hint_dim = split_outputs(teacher(run.to_teacher(run.tensors["X"][:2])))[1].shape[-1]  # type: ignore[union-attr]
    return targets


# ---- 5. teachers ----------------------------------------------------------------------------------------------------------
def teachers(run: Run) -> None:
    cfg, t0 = run.cfg, time.monotonic()
    if run.external_teacher is not None:
        run.teacher = run.external_teacher
    elif cfg.teacher == "train" and cfg.topology in ("teacher_student", "ensemble"):
        count = cfg.num_teachers if cfg.topology == "ensemble" else 1
        members = [Member("teacher", cfg.seed + 1000 + i, cfg.learning_rate) for i in range(count)]
        results = train(run.spec(members, run.teacher_epochs, "teacher" if count == 1 else f"{count} teachers", build=run.build_teacher))
        if results[0].val_accuracy < 0:
            raise Stopped(results[0].stopped or "time_budget")
        if results[0].stopped:
            run.stop_reason = results[0].stopped
        if cfg.topology == "ensemble":
            run.teacher = EnsembleTeacher([r.model for r in results], list(cfg.ensemble_weights or [r.val_accuracy for r in results]))
        else:
            run.teacher = results[0].model
    if run.teacher is not None:
        run.teacher.eval()
    run.wall.teacher = time.monotonic() - t0


# ---- 6. students: the learning-rate grid, the T x weight grid and every seed in one stack --------------------------------
def students(run: Run) -> None:
    if run.stop_reason != "finished":
        return
    cfg, t0 = run.cfg, time.monotonic()
    targets = _targets(run, run.members)
    phase = f"students (scratch + {run.method if cfg.topology == 'teacher_student' else cfg.topology}, {cfg.seeds} seed(s), {len(run.members)} nets)"
    run.results = train(run.spec(run.members, run.epochs, phase, recipe=recipe(run), targets=targets, hint_dim=run.hint_dim))
    _note_stop(run, run.results)
    if cfg.topology == "self" and run.stop_reason == "finished":
        _generations(run)
    run.wall.students = time.monotonic() - t0


def _note_stop(run: Run, results: list[Result]) -> None:
    if results and results[0].stopped:
        run.stop_reason = results[0].stopped


def _generations(run: Run) -> None:
    """Born-again generations: generation 0 is each seed's selected scratch student, g learns from g - 1."""
    cfg = run.cfg
    seeds = [cfg.seed + s for s in range(cfg.seeds)]
    previous = [selected(run, seed, ("scratch",))[1].model for seed in seeds]
    response = get_rules().method["methods"]["response"]["hyperparameters"]
    T = cfg.temperature if cfg.temperature is not None else float(response["default_temperature"])
    w = cfg.kd_loss_weight if cfg.kd_loss_weight is not None else float(response["kd_loss_weight"])
    for g in range(cfg.generations):
        members = topologies.self_generation(seeds, cfg.learning_rate, T, w)
        targets = TeacherTargets(previous, list(range(len(seeds))), run.tensors["X"], cache=cfg.augment == "none")
        results = train(run.spec(members, run.epochs, f"born-again generation {g + 1}/{cfg.generations}", recipe=recipe(run), targets=targets))
        run.generations.append((members, results))
        _note_stop(run, results)
        if run.stop_reason != "finished":
            break
        previous = [r.model for r in results]


def all_trials(run: Run) -> list[tuple[Member, Result, int | None]]:
    out = [(m, r, None) for m, r in zip(run.members, run.results)]
    for g, (members, results) in enumerate(run.generations):
        for m, r in zip(members, results):
            out.append((m, r, g + 1))
    return out


def selected(run: Run, seed: int, roles: tuple[str, ...]) -> tuple[Member, Result, int | None]:
    """The trial of `seed` with the best validation accuracy among `roles` (peers count for their order seed)."""
    candidates = [(m, r, g) for m, r, g in all_trials(run) if m.role in roles and (m.order_seed if m.order_seed is not None else m.seed) == seed
                  and r.val_accuracy >= 0]
    if not candidates:
        raise LookupError(seed)
    return max(candidates, key=lambda c: c[1].val_accuracy)


def trial_rows(run: Run) -> list[Trial]:
    chosen = set()
    for s in range(run.cfg.seeds):
        for roles in (("scratch",), run.learner_roles):
            try:
                m, r, g = selected(run, run.cfg.seed + s, roles)
                chosen.add(id(r))
            except LookupError:
                pass
    return [Trial(role=m.role, seed=m.order_seed if m.order_seed is not None else m.seed, learning_rate=m.lr,
                  temperature=m.temperature if m.role != "scratch" else None, kd_loss_weight=m.kd_weight if m.role != "scratch" else None,
                  generation=g, val_accuracy=r.val_accuracy, epochs=r.epochs_run, steps=r.steps, selected=id(r) in chosen)
            for m, r, g in all_trials(run)]


def probs_on(model: torch.nn.Module, X: torch.Tensor) -> np.ndarray:
    return F.softmax(logits_of(model, X), 1).numpy()


def metrics_of(run: Run, probs: np.ndarray, model: torch.nn.Module | None, params: int) -> ModelMetrics:
    d = run.data
    X = run.tensors["X_test"]
    timing = latency(model, run.to_teacher(X) if model is run.external_teacher else X) if model is not None else (0.0, 0.0)
    size = nets.size_bytes(model) if model is not None else 0
    return model_metrics(probs, d.y_test, d.num_classes, params, size, timing)  # type: ignore[union-attr]
