"""Routing: the policy file, the signals it reads, and the decision it makes."""
