"""Pydantic request and response models shared by the library, the CLI and the MCP server.

Field names here are the public contract; the MCP tools' JSON Schemas are generated from them.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated, Any, Literal

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, WithJsonSchema, field_validator, model_validator

from skill.rules import get_rules


def _refuse_percentage(value: Any) -> Any:
    """Accuracies are fractions; 91.2 is almost surely a percentage, so say so."""
    if isinstance(value, (int, float)) and not isinstance(value, bool) and 1 < value <= 100:
        raise ValueError(f"{value} looks like a percentage; pass a fraction in [0, 1] (for example {value / 100:g})")
    return value


# What a rule compares or reports: any JSON value (a number, a string, a list of allowed values, a small record).
# Declared as a flat anyOf of plain types rather than a nested union of typed lists and records: clients
# validate every trace entry against the output schema, and the nested form made an advisory round trip
# about 40% slower; a `type` array would be shorter but is less portable across model providers.
Value = Annotated[
    Any, WithJsonSchema({"anyOf": [{"type": t} for t in ("number", "string", "boolean", "array", "object", "null")]})
]

Fraction = Annotated[float, Field(ge=0, le=1, allow_inf_nan=False)]
Accuracy = Annotated[float, BeforeValidator(_refuse_percentage), Field(ge=0, le=1, allow_inf_nan=False)]
PositiveFloat = Annotated[float, Field(gt=0, allow_inf_nan=False)]


class Strict(BaseModel):
    """Requests refuse unknown fields so a typo is an error, not a silently ignored input."""

    model_config = ConfigDict(extra="forbid")


# ---- the envelope every advisory answer carries -------------------------------------------


class TraceEntry(BaseModel):
    """One comparison a rule made: the input, the operator, the threshold and the outcome."""

    rule: str = Field(description="Rule (tree branch, warning or gate) that made the comparison")
    field: str = Field(description="Input compared")
    op: str = Field(description="Operator: gt, ge, lt, le, eq, ne, in, is_true, is_false, nonempty, is_number")
    value: Value = Field(default=None, description="The input's value (null when missing)")
    threshold: Value = Field(default=None, description="What it was compared with")
    result: Literal["true", "false", "unknown"]


class AdviceWarning(BaseModel):
    id: str
    message: str
    references: list[str] = Field(default_factory=list)


class MissingInput(BaseModel):
    field: str
    effect: str = Field(description="What the answer would have considered with this input")


class NextStep(BaseModel):
    tool: str = Field(description="MCP tool to call next")
    cli: str = Field(description="Equivalent kd-skill command")
    why: str


class Delegation(BaseModel):
    skill: str
    reason: str
    installed: bool | None = None
    fallback: str = ""


class Advice(BaseModel):
    """Fields every advisory answer carries, so an agent can act and a person can check."""

    rule_trace: list[TraceEntry] = Field(default_factory=list)
    warnings: list[AdviceWarning] = Field(default_factory=list)
    missing_inputs: list[MissingInput] = Field(default_factory=list)
    next_steps: list[NextStep] = Field(default_factory=list)
    delegations: list[Delegation] = Field(default_factory=list)
    references: list[str] = Field(default_factory=list)


class RunValue(BaseModel):
    """One input filled from a run folder, and where in the folder it came from."""

    field: str
    source: str = Field(description="The file (and key) the value was read or computed from")


class RunEvidence(BaseModel):
    """Which numbers came from the run folder (from_run), which the caller's own numbers replaced, and what the run
    cannot supply, with the reason."""

    run_dir: str
    kind: Literal["classification", "generation"]
    filled: list[RunValue] = Field(default_factory=list)
    overridden: list[str] = Field(
        default_factory=list, description="Fields the run supplies that the numbers you passed replaced"
    )
    missing: list[MissingInput] = Field(
        default_factory=list, description="Inputs the run cannot supply, with the reason"
    )


RUN_DIR_DESCRIPTION = (
    "A run folder written by an exported recipe (evidence.json + predictions.npz, or generation_evidence.json): fills "
    "every input the run supplies; numbers you pass override the run's (over MCP it must lie under the data root or "
    "the output root)"
)


# ---- recommend_method ----------------------------------------------------------------------

# The guidance's own names for some inputs. Same meaning and values: accepted as our name. Different meaning
# (a yes/no where we ask for a count): refused, naming the input to pass instead.
_GUIDANCE_ALIASES = {"abstraction_level_needed": "abstraction_level"}
_GUIDANCE_RENAMED = {
    "multiple_experts_available": "num_teachers (how many expert teachers; more than 1 selects ensemble distillation)"
}


def _guidance_names(data: Any) -> Any:
    """Map the guidance's field names onto ours before validation, or say which of ours to use."""
    if not isinstance(data, dict):
        return data
    for old, new in _GUIDANCE_RENAMED.items():
        if old in data:
            raise ValueError(f"{old} is the guidance's yes/no question; this tool asks it as {new}: pass that instead")
    renamed = dict(data)
    for old, new in _GUIDANCE_ALIASES.items():
        if old in renamed:
            if new in renamed:
                raise ValueError(f"{old} (the guidance's name) and {new} are the same input; pass only {new}")
            renamed[new] = renamed.pop(old)
    return renamed


TaskType = Literal["classification", "regression", "detection", "segmentation", "generation", "ranking", "other"]


class RecommendMethodRequest(Strict):
    task_type: TaskType = Field(description="What the model predicts")
    task_similarity: Fraction | None = Field(
        None, description="How alike the student's and teacher's tasks are, 0 to 1"
    )
    abstraction_level: Literal["low", "medium", "high"] | None = Field(
        None, description="Level of abstraction the task needs"
    )
    compression_ratio: float | None = Field(
        None, ge=1, le=1e6, allow_inf_nan=False, description="Teacher size / student size (1 or more)"
    )
    teacher_params: int | None = Field(
        None, ge=1, le=10**13, description="Teacher parameter count (with student_params, gives the compression ratio)"
    )
    student_params: int | None = Field(None, ge=1, le=10**13, description="Student parameter count")
    environment_stability: Literal["static", "dynamic"] | None = Field(
        None, description="Whether the deployment environment changes"
    )
    task_distribution_known: bool | None = Field(
        None, description="Whether the input/task distribution is known in advance"
    )
    num_teachers: int | None = Field(None, ge=1, le=1000, description="How many expert teachers are available")
    need_continuous_adaptation: bool | None = Field(
        None, description="Whether models must keep adapting after deployment"
    )
    same_architecture_family: bool | None = Field(
        None, description="Whether student and teacher share an architecture family"
    )
    planned_temperature: float | None = Field(
        None, ge=0.1, le=100, allow_inf_nan=False, description="Distillation temperature you plan to use, if any"
    )
    # generative models (task_type generation) only
    same_tokenizer: bool | None = Field(
        None, description="Generation: whether teacher and student use the same tokenizer (token-level KD needs it)"
    )
    teacher_access: Literal["logits", "outputs_only"] | None = Field(
        None,
        description="Generation: logits (full next-token distributions) or outputs_only (generated text, e.g. an API)",
    )
    on_policy_affordable: bool | None = Field(
        None, description="Generation: whether sampling from the student during training is affordable"
    )
    open_ended_generation: bool | None = Field(
        None, description="Generation: whether open-ended generation quality (chat, long answers) matters"
    )
    dataset_tokens: int | None = Field(
        None, ge=1, le=10**15, description="Generation: training tokens to distil on (sizes the teacher-logit storage)"
    )
    vocab_size: int | None = Field(
        None, ge=2, le=10**7, description="Generation: vocabulary size of the teacher's tokenizer"
    )
    student_vocab_size: int | None = Field(
        None,
        ge=2,
        le=10**7,
        description=(
            "Generation: the student's vocab_size (config.json: embedding rows, which may exceed the tokenizer's "
            "length)"
        ),
    )
    teacher_vocab_size: int | None = Field(
        None,
        ge=2,
        le=10**7,
        description=(
            "Generation: the teacher's vocab_size (config.json); one tokenizer can come with two sizes (Qwen2.5 "
            "0.5B-3B 151,936, 7B+ 152,064)"
        ),
    )
    same_vocab_size: bool | None = Field(
        None,
        description=(
            "Generation: whether teacher and student configs have the same vocab_size (instead of giving both sizes)"
        ),
    )
    purpose: Literal["general", "chat", "code", "reasoning", "draft_model", "summarisation", "translation"] | None = (
        Field(
            None,
            description=(
                "Generation: what the student is for; reasoning selects answer-checked chain-of-thought distillation, "
                "draft_model a speculative-decoding draft (DistillSpec)"
            ),
        )
    )
    teacher_serving: Literal["local", "vllm_server", "api"] | None = Field(
        None,
        description=(
            "Generation: where the teacher runs: local (beside the student), vllm_server (scores over the network, "
            "top-k log-probs), api (a hosted model: text only)"
        ),
    )
    student_finetuned: bool | None = Field(
        None,
        description=(
            "Generation: whether the student was already fine-tuned on the task (on-policy KD wants a warm-started "
            "student)"
        ),
    )
    teacher_active_params: int | None = Field(
        None,
        ge=1,
        le=10**13,
        description=(
            "Generation: active parameters per token of a mixture-of-experts teacher (teacher_params stays the total)"
        ),
    )
    student_source: Literal["pretrained", "prune_teacher", "scratch"] | None = Field(
        None,
        description=(
            "Generation: where the student comes from; prune_teacher cuts it from the teacher (Minitron "
            "prune-then-distil)"
        ),
    )
    language_model: bool | None = Field(
        None,
        description=(
            "Whether teacher and student are language models; with task_type classification or regression it means a "
            "head on a language model (distilled on its class logits)"
        ),
    )

    @model_validator(mode="before")
    @classmethod
    def _accept_guidance_names(cls, data: Any) -> Any:
        return _guidance_names(data)

    @model_validator(mode="after")
    def _params_consistent(self) -> RecommendMethodRequest:
        # a served or API teacher may be of unknown size: student_params alone still sizes the student
        unknown_teacher = self.teacher_serving in ("api", "vllm_server") or self.teacher_access == "outputs_only"
        if (self.teacher_params is None) != (self.student_params is None) and not (
            unknown_teacher and self.teacher_params is None
        ):
            raise ValueError(
                "teacher_params and student_params go together; pass both or neither (student_params alone only for a "
                "teacher of unknown size: teacher_serving api or vllm_server, or teacher_access outputs_only)"
            )
        if self.teacher_params is not None and self.student_params is not None:
            if self.student_params > self.teacher_params:
                raise ValueError(
                    f"student_params ({self.student_params}) is larger than teacher_params ({self.teacher_params}); "
                    "the student must be the smaller model"
                )
            ratio = (self.teacher_active_params or self.teacher_params) / self.student_params
            if self.compression_ratio is not None and abs(ratio - self.compression_ratio) > 0.01 * ratio:
                raise ValueError(
                    f"compression_ratio ({self.compression_ratio}) disagrees with teacher_params / student_params "
                    f"({ratio:.3g}); pass one of them"
                )
        return self

    @model_validator(mode="after")
    def _llm_inputs_consistent(self) -> RecommendMethodRequest:
        if self.teacher_active_params is not None:
            if self.teacher_params is None:
                raise ValueError(
                    "teacher_active_params needs teacher_params (the total) and student_params; pass all three"
                )
            if self.teacher_active_params > self.teacher_params:
                raise ValueError(
                    f"teacher_active_params ({self.teacher_active_params}) exceeds teacher_params "
                    f"({self.teacher_params}); teacher_params is the total over all experts"
                )
        sizes = (self.student_vocab_size, self.teacher_vocab_size)
        if self.same_vocab_size is not None and None not in sizes and (sizes[0] == sizes[1]) != self.same_vocab_size:
            raise ValueError(
                f"same_vocab_size {self.same_vocab_size} disagrees with student_vocab_size {sizes[0]} and "
                f"teacher_vocab_size {sizes[1]}; pass one of them"
            )
        return self

    def effective_compression(self) -> float | None:
        if self.compression_ratio is not None:
            return self.compression_ratio
        if self.teacher_params and self.student_params:
            # a mixture-of-experts teacher is sized by the parameters it runs per token
            return (self.teacher_active_params or self.teacher_params) / self.student_params
        return None


# every method the skill recommends and exports (the method rules' ids; tests/test_rules checks they agree)
MethodId = Literal[
    "response",
    "feature",
    "cascade",
    "relation",
    "token_kd",
    "on_policy_kd",
    "sequence_kd",
    "reasoning_trace_kd",
    "draft_model_kd",
    "prune_then_distil",
]


class MethodChoice(BaseModel):
    id: MethodId
    name: str
    reason: str
    hyperparameters: dict[str, Value]
    assumed: bool = Field(
        False, description="True when an input an earlier branch needs is missing, so the answer may change"
    )
    questions: list[str] = Field(default_factory=list, description="What to ask the user to settle an assumed answer")


class TopologyChoice(BaseModel):
    id: Literal["hierarchical", "ensemble", "online", "self"]
    name: str
    reason: str
    runner_topology: str = Field(description="Value of kd_run_quick_distill's topology argument")
    assumed: bool = Field(
        False, description="True when an input an earlier branch needs is missing, so the answer may change"
    )
    questions: list[str] = Field(default_factory=list, description="What to ask the user to settle an assumed answer")


class RecommendMethodResponse(Advice):
    method: MethodChoice
    topology: TopologyChoice
    compression_ratio: float | None = None


# ---- choose_alpha --------------------------------------------------------------------------


class ChooseAlphaRequest(Strict):
    deployment_environment: Literal["mobile", "edge", "embedded", "server", "cloud", "desktop", "other"] | None = Field(
        None, description="Where the student runs"
    )
    application_domain: Literal["safety_critical", "medical", "financial", "general", "other"] | None = Field(
        None, description="What is at stake when the student is wrong"
    )
    can_dynamically_route: bool | None = Field(
        None, description="Whether requests can be routed to models by difficulty"
    )


class ChooseAlphaResponse(Advice):
    branch: str
    alpha_range: list[float] = Field(min_length=2, max_length=2)
    alpha: float
    checkpoints: list[float] | None = None
    reason: str


# ---- score_distillation --------------------------------------------------------------------

_MAX_CANDIDATES = int(get_rules().score["max_candidates"])


class Candidate(Strict):
    name: str = Field(min_length=1, max_length=200)
    size: PositiveFloat = Field(description="Student size, same unit as teacher_size")
    accuracy: Accuracy


class ScoreDistillationRequest(Strict):
    alpha: Fraction | None = Field(
        None,
        description=(
            "Size-versus-accuracy priority (kd_choose_alpha), not a loss weight (required unless from_run supplies it)"
        ),
    )
    teacher_size: PositiveFloat | None = Field(
        None,
        description=(
            "Teacher size (MB, parameters: any unit, the same for students) (required unless from_run supplies it)"
        ),
    )
    teacher_accuracy: Accuracy | None = Field(
        None, description="Teacher accuracy as a fraction (required unless from_run supplies it)"
    )
    student_size: PositiveFloat | None = None
    student_accuracy: Accuracy | None = None
    candidates: list[Candidate] | None = Field(
        None, min_length=1, max_length=_MAX_CANDIDATES, description="Several students to rank"
    )
    min_student_accuracy: Accuracy | None = Field(
        None,
        description="Accuracy floor a student must reach (the guidance's 'maintain > 90%' is 0.9); students below it "
        "are marked and ranked after every student that meets it",
    )
    from_run: str | None = Field(
        None,
        min_length=1,
        max_length=1000,
        description=RUN_DIR_DESCRIPTION + "; scores the student at the plan's alpha",
    )

    @model_validator(mode="after")
    def _one_form(self) -> ScoreDistillationRequest:
        if self.from_run is not None:
            return self  # checked again once the run's numbers are filled in
        absent = [name for name in ("alpha", "teacher_size", "teacher_accuracy") if getattr(self, name) is None]
        if absent:
            raise ValueError(f"{', '.join(absent)} required (or from_run, a run folder that supplies them)")
        assert self.teacher_size is not None and self.teacher_accuracy is not None
        single = self.student_size is not None or self.student_accuracy is not None
        if single and self.candidates is not None:
            raise ValueError("pass either student_size + student_accuracy or candidates, not both")
        if not single and self.candidates is None:
            raise ValueError("missing student: pass student_size + student_accuracy, or candidates")
        if single and (self.student_size is None or self.student_accuracy is None):
            raise ValueError("student_size and student_accuracy go together; pass both")
        if self.teacher_accuracy == 0:
            raise ValueError("teacher_accuracy is 0; the score divides by it, pass the teacher's real accuracy")
        limit = get_rules().score["max_size_ratio"]
        sizes = (
            [("student_size", self.student_size)]
            if self.student_size is not None
            else [(f"candidates.{c.name}.size", c.size) for c in self.candidates or []]
        )
        for field, size in sizes:
            if not size / self.teacher_size <= limit:  # also catches an overflow to infinity
                raise ValueError(
                    f"{field} ({size:g}) is more than {limit:g} times teacher_size ({self.teacher_size:g}); "
                    "give both sizes in the same unit (MB, parameters)"
                )
        return self


class ScoredCandidate(BaseModel):
    rank: int
    name: str
    size: float
    accuracy: float
    score: float
    size_term: float
    accuracy_term: float
    meets_accuracy_floor: bool | None = Field(
        None, description="accuracy >= min_student_accuracy (null when no floor was given)"
    )


class ScoreDistillationResponse(Advice):
    score: float = Field(
        description="DS for the student, or for the best candidate; lower is better; comparable only at the same alpha"
    )
    size_term: float
    accuracy_term: float
    formula: str
    ranking: list[ScoredCandidate] | None = None
    interpretation: str
    run_evidence: RunEvidence | None = Field(None, description="With from_run: which numbers came from the run")


# ---- diagnose_failure ----------------------------------------------------------------------


class CurvePoint(Strict):
    params: int = Field(ge=1, le=10**13)
    accuracy: Accuracy


class DiagnoseFailureRequest(Strict):
    overall_accuracy: Accuracy | None = Field(None, description="Student accuracy on the whole test set")
    per_class_accuracy: dict[str, Accuracy] | None = Field(
        None, max_length=10000, description="Class name to student accuracy"
    )
    class_support: dict[str, Annotated[int, Field(ge=0)]] | None = Field(
        None, max_length=10000, description="Class name to test count"
    )
    labels: list[int] | None = Field(
        None, description="True class ids for raw diagnosis (bounded; see the error for limits)"
    )
    class_names: list[Annotated[str, Field(max_length=200)]] | None = Field(
        None, max_length=10000, description="Name of each class id 0..k-1, shown beside the id in the report"
    )
    student_probs: list[list[float]] | None = Field(None, description="Student class probabilities, one row per label")
    teacher_probs: list[list[float]] | None = Field(None, description="Teacher class probabilities, one row per label")
    groups: list[str] | None = Field(None, description="Group id per label, for the parity check from raw outputs")
    positive_class: int | None = Field(
        None, ge=0, description="Class counted as the favourable outcome for parity (default 1)"
    )
    student_error_confidence: Fraction | None = Field(
        None, description="Student's mean top probability on its wrong predictions"
    )
    teacher_error_confidence: Fraction | None = Field(
        None, description="Teacher's mean top probability on its wrong predictions"
    )
    training_temperature: float | None = Field(None, ge=0.01, le=1000, allow_inf_nan=False)
    size_accuracy_curve: list[CurvePoint] | None = Field(
        None, max_length=1000, description="Students of different sizes"
    )
    teacher_parity_ratio: Fraction | None = Field(None, description="Lowest over highest group selection rate, teacher")
    student_parity_ratio: Fraction | None = Field(None, description="Same for the student")
    teacher_group_accuracy: dict[str, Accuracy] | None = Field(
        None, max_length=10000, description="Group name to teacher accuracy within that group"
    )
    student_group_accuracy: dict[str, Accuracy] | None = Field(
        None, max_length=10000, description="Group name to student accuracy (same groups as the teacher's)"
    )
    student_finds_edge_cases: bool | None = None
    feedback_to_teacher: bool | None = None
    from_run: str | None = Field(None, min_length=1, max_length=1000, description=RUN_DIR_DESCRIPTION)


class Evidence(BaseModel):
    metric: str
    value: Value
    threshold: Value
    comparison: str = Field(description="How value and threshold were compared, in words")


class Finding(BaseModel):
    id: Literal[
        "accuracy_mirage", "temperature_blindness", "capacity_cliff", "hierarchical_rigidity", "bias_amplification"
    ]
    name: str
    status: Literal["detected", "clear", "not_evaluated"]
    evidence: list[Evidence] = Field(default_factory=list)
    diagnosis: str
    fix: str
    references: list[str] = Field(default_factory=list)
    source: str | None = Field(None, description="Where the thresholds come from, or 'unsourced starting point'")


class ComputedMetrics(BaseModel):
    n_samples: int
    overall_accuracy: float
    per_class_accuracy: dict[str, float]
    class_support: dict[str, int]
    student_ece: float
    student_mean_confidence: float
    student_error_confidence: float | None
    teacher_accuracy: float | None = None
    teacher_ece: float | None = None
    teacher_error_confidence: float | None = None
    student_parity_ratio: float | None = None
    teacher_parity_ratio: float | None = None
    student_group_accuracy: dict[str, float] | None = None
    teacher_group_accuracy: dict[str, float] | None = None


class DiagnoseFailureResponse(Advice):
    findings: list[Finding]
    detected: list[str]
    metrics: ComputedMetrics | None = None
    run_evidence: RunEvidence | None = Field(None, description="With from_run: which numbers came from the run")


# ---- check_quality_gates -------------------------------------------------------------------


class QualityGatesRequest(Strict):
    alpha: Fraction | None = Field(None, description="Alpha used for the distillation score")
    alpha_reason: str | None = Field(None, max_length=2000, description="Why this alpha")
    distillation_score: float | None = Field(None, ge=-100, le=100, allow_inf_nan=False)
    stratified_validation: bool | None = None
    per_class_thresholds_met: bool | None = None
    temperature: float | None = Field(
        None, ge=0.01, le=1000, allow_inf_nan=False, description="Distillation temperature used"
    )
    temperature_tuned: bool | None = None
    calibration_validated: bool | None = None
    capacity_analysis_done: bool | None = None
    bias_monitoring: bool | None = None
    edge_case_monitoring: bool | None = None
    robustness_suite: bool | None = Field(
        None, description="Adversarial / out-of-distribution / minority-class tests exist"
    )
    compression_ratio: float | None = Field(None, ge=1, le=1e6, allow_inf_nan=False)
    cascade_evaluated: bool | None = None
    multi_agent: bool | None = None
    coordination_pattern: str | None = Field(None, max_length=500)
    feedback_loops: bool | None = None
    latency_ms: float | None = Field(None, ge=0, le=1e7, allow_inf_nan=False)
    latency_budget_ms: float | None = Field(None, ge=0, le=1e7, allow_inf_nan=False)
    memory_mb: float | None = Field(None, ge=0, le=1e9, allow_inf_nan=False)
    memory_budget_mb: float | None = Field(None, ge=0, le=1e9, allow_inf_nan=False)
    accuracy: Accuracy | None = None
    accuracy_target: Accuracy | None = None
    rollback_plan: bool | None = None
    degradation_alerts: bool | None = None
    from_run: str | None = Field(None, min_length=1, max_length=1000, description=RUN_DIR_DESCRIPTION)


class GateResult(BaseModel):
    id: str
    title: str
    status: Literal["pass", "fail", "unknown"]
    reason: str
    missing: list[str] = Field(default_factory=list)
    fix: str
    references: list[str] = Field(default_factory=list)
    source: str | None = Field(None, description="Where the gate comes from, or 'unsourced starting point'")


class QualityGatesResponse(Advice):
    gates: list[GateResult]
    passed: int
    failed: int
    unknown: int
    ready_to_ship: bool
    run_evidence: RunEvidence | None = Field(None, description="With from_run: which numbers came from the run")


# ---- route_request -------------------------------------------------------------------------


_ROUTE = get_rules().boundaries
# primary_goal values: distillation, then each sibling's and each boundary's goal, as the rule file names them
if TYPE_CHECKING:
    RouteGoal = str  # a type checker cannot read the rule file, so it sees the values as text
else:
    RouteGoal = Literal[
        ("distill", *(s["goal"] for s in _ROUTE["siblings"]), *(b["goal"] for b in _ROUTE["boundaries"]))
    ]


class RouteRequest(Strict):
    """The user's words, plus what the calling agent already knows from the conversation (it takes precedence)."""

    request: str = Field(
        min_length=1, max_length=int(_ROUTE["max_request_chars"]), description="The user's request, as written"
    )
    model_params: int | None = Field(
        None, ge=0, le=10**13, description="Parameter count of the model to compress, if known"
    )
    latency_budget_ms: float | None = Field(
        None, ge=0, le=1e7, allow_inf_nan=False, description="Latency budget per request, if any"
    )
    primary_goal: RouteGoal | None = Field(
        None,
        description="What the user mainly wants done, if the conversation makes it clear: distill (a smaller student "
        "from a teacher); deploy_or_quantize (quantise, prune for a chip, export, serve); architecture_search; "
        "explain_predictions; distributed_training (federated or multi-node); adversarial_robustness; "
        "interpretable_model (a model people can read); hard_real_time (a guaranteed latency under 10 ms); "
        "tiny_or_rule_based (rules or under ~1000 parameters); prototype (no performance requirement yet); "
        "ample_compute (one task, no size or latency limit); other (not about a machine-learning model). Overrides the "
        "text.",
    )
    is_ml_model: bool | None = Field(
        None,
        description=(
            "Whether the request is about a machine-learning model at all (false: 'compress my backups'; true: read "
            "'teacher', 'compress', 'temperature' in their ML sense)"
        ),
    )
    has_size_or_latency_budget: bool | None = Field(
        None,
        description=(
            "Whether a size, memory or latency budget exists (true lifts the prototype and ample-compute boundaries)"
        ),
    )
    is_prototype: bool | None = Field(
        None, description="Whether the work is a prototype with no performance requirement yet"
    )

    @field_validator("request")
    @classmethod
    def _normalised_length(cls, value: str) -> str:
        """The size limit holds for the text routing reads: after Unicode normalisation one character can become 18."""
        from skill.routing.text import normalise

        limit = int(_ROUTE["max_request_chars"])
        length = len(normalise(value))
        if length > limit:
            raise ValueError(
                f"is {length:,} characters once Unicode is normalised (NFKC); at most {limit:,}: shorten it"
            )
        return value


class IntentScore(BaseModel):
    """How strongly the request asks for one kind of work, and the words that said so."""

    intent: str = Field(description="in_scope, a sibling skill, a boundary id, or budget")
    score: float
    evidence: list[str] = Field(
        default_factory=list, description="Each term: the words, its group, whether it counted (or why not), its weight"
    )


RouteVerdict = Literal["in_scope", "delegate", "out_of_scope"]
RouteConfidence = Literal["high", "medium", "low"]


class RouteResponse(Advice):
    verdict: RouteVerdict
    skill: str | None = Field(None, description="Sibling skill that should handle it")
    boundary: str | None = Field(
        None, description="Not-for boundary that applies (not_ml: not about a machine-learning model)"
    )
    reason: str
    installed: bool | None = Field(None, description="Whether the sibling skill was found in a skills folder")
    installed_path: str | None = None
    fallback: str | None = Field(
        None, description="What to do when the sibling is not installed, or instead of distilling"
    )
    confidence: RouteConfidence = Field(description="low: the text leaves it open; ask `question` before acting")
    question: str | None = Field(None, description="What to ask the user when confidence is not high")
    decided_by: str = Field(
        description="The step that decided: structured input, a numeric boundary, or which scores compared"
    )
    learned_reading: str | None = Field(
        None,
        description=(
            "What the learned reader (trained on labelled requests) reads, with its probability; none when structured "
            "inputs decided"
        ),
    )
    intents: list[IntentScore] = Field(default_factory=list, description="Scores read from the text, highest first")
    matched: list[str] = Field(default_factory=list, description="Terms and numbers that decided it")
