"""Evaluation harness: FIM quality per tier and the escalation cost-quality curve."""
