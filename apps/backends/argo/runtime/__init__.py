"""What runs inside Canal's Argo Workflows: ``driver.py``, shipped into each Workflow as text
(standard library only, never imported by Canal at run time except by its tests)."""
