"""Backup policies as ccmigrate makes them, one room for the rule engine, the planner and the
wave runner alike (so planning and migration share them without importing each other):

- ``naming``: target and rollback names from the user's templates, Azure's name rule;
- ``bodies``: the crash-consistent and Enhanced app-consistent clone bodies of a source policy,
  and how a policy reads in one line;
- ``compare``: which settings differ between two policies, which retentions shrink;
- ``ensure``: create a missing policy or reuse a matching one in a vault, never change one.

Import the module you need (``from tasks.policies.naming import target_policy_name``): this
package re-exports nothing, so the rule engine's import of ``naming`` does not load the Azure
SDK that ``ensure`` needs.
"""
