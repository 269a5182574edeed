"""Results as people read them: markdown and CSV documents, the paper's tables, figures and the
HTML report."""
