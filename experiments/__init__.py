"""absl entry points and flag files of the shipped experiment configurations."""
