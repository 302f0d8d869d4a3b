"""The explorer application (ipywidgets): the explorer and its tabs, the run, constraint and
potential controls, the Why and Compare panels, and the session guard that keeps one run at a
time."""
