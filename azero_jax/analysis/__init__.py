"""Analysis tools: evolution versus random search, hand-designed baselines, plots."""
