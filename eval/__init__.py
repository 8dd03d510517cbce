"""The generalization benchmark: models answer characters they never trained on, an LLM judge scores them (rubrics,
GSB) and judge-free metrics check them; `dramatis eval eval/recipes/demo.yaml` (= make eval)."""
