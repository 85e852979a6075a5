"""The workflow over the tools as text an agent reads: the MCP server's instructions and the plan_distillation prompt.

Kept in the library beside SKILL.md, whose workflow they restate; the adapter serves them unchanged.
"""

from __future__ import annotations

INSTRUCTIONS = (
    "Knowledge distillation advisor. Start with kd_route_request, then kd_recommend_method and kd_choose_alpha; "
    "run kd_run_quick_distill for evidence, then kd_export_recipe for the full-scale run; score students with "
    "kd_score_distillation, check them with kd_diagnose_failure and kd_check_quality_gates. "
    "Read kd://skill for the workflow."
)

# The steps the agent follows, one paragraph each.
_STEPS = (
    "Follow these steps, calling the tools of the knowledge-distillation server and showing the user each answer's "
    "decision, its rule trace and warnings:\n"
    "1. kd_route_request with the request text, plus what the conversation already tells you (primary_goal, "
    "is_ml_model, has_size_or_latency_budget, is_prototype, model_params, latency_budget_ms). If the verdict is "
    "delegate or out_of_scope, relay the reason, the fallback and whether the sibling skill is installed, and ask the "
    "user whether to hand over, follow the fallback or distil anyway; never drop the task silently. If confidence is "
    "not high, ask the returned question first.\n"
    "2. kd_recommend_method with task_type, task_similarity, abstraction_level, compression_ratio (or teacher_params "
    "and student_params), environment_stability, task_distribution_known, num_teachers, need_continuous_adaptation, "
    "same_architecture_family. Ask the user for any field listed in missing_inputs that would change the answer. For a "
    "language model (task_type generation) give teacher_access, same_tokenizer, open_ended_generation, "
    "on_policy_affordable, dataset_tokens and vocab_size instead (and, when known, purpose such as reasoning or "
    "draft_model, teacher_serving, student_finetuned, teacher_active_params for a mixture-of-experts teacher, "
    "student_vocab_size and teacher_vocab_size, student_source; a classification head on a language model is task_type "
    "classification with language_model true), skip steps 3 and 4 (the deployment alpha and the quick distill are for "
    "small classifiers) (the quick distill trains small classifiers) and write the run with kd_export_recipe, engine "
    "trl and the recommended method.\n"
    "3. kd_choose_alpha with deployment_environment, application_domain, can_dynamically_route. Treat any warning as a "
    "question for the user.\n"
    '4. kd_run_quick_distill with the recommended method and topology (method "auto" asks step 2 itself) on the '
    "bundled data or the user's own, to see the gain over a from-scratch student and the calibration before spending "
    "real compute.\n"
    "5. kd_diagnose_failure on the result (the quick distill reports its own diagnosis; for the real model pass its "
    "per-class accuracy, error confidences, size/accuracy curve and parity ratios).\n"
    "6. kd_score_distillation with the chosen alpha, then kd_check_quality_gates; list every gate that is fail or "
    "unknown with its fix.\n"
    "7. After the full-scale run of kd_export_recipe's folder (with --baseline and --student-sizes), kd_release_check "
    "on the run folder: relay its decision and summary, ask the user for the deployment facts listed as conditions, "
    "and call it again with them.\n"
)


def plan_distillation(model_description: str, constraints: str = "none stated") -> str:
    """Walk through route -> recommend -> alpha -> quick distill -> diagnose -> gates for one model."""
    return f"Plan a knowledge distillation for this model: {model_description}\nConstraints: {constraints}\n\n" + _STEPS
