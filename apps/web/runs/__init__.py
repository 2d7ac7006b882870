"""The run and execution pages: views, the runs table, and their URL confs."""
