"""One module per task: prompts, post-processing and what a good answer is. No LSP here."""
