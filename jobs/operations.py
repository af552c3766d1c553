"""A migration operation Django lacks: make an existing model a child of another (multi-table inheritance).

Used only in the state half of SeparateDatabaseAndState, after jobs/migrations/0002 moved the rows.
"""

from django.db.migrations.operations.base import Operation


class AlterModelBases(Operation):
    reduces_to_sql = False
    reversible = False

    def __init__(self, name: str, bases: tuple):
        self.name, self.bases = name, bases

    def deconstruct(self):
        return self.__class__.__qualname__, [], {"name": self.name, "bases": self.bases}

    def state_forwards(self, app_label, state):
        state.models[app_label, self.name.lower()].bases = self.bases
        state.reload_model(app_label, self.name.lower(), delay=False)

    def database_forwards(self, app_label, schema_editor, from_state, to_state):
        pass

    def database_backwards(self, app_label, schema_editor, from_state, to_state):
        pass

    def describe(self):
        return f"Make {self.name} a child of {', '.join(map(str, self.bases))}"


def adopt_into_job(model: str, *, constraints: list[str], fields: list[str]) -> list:
    """The state operations that turn `model` into a child of jobs.Job whose shared columns moved there."""
    import django.db.models.deletion
    from django.db import migrations, models

    return [
        *[migrations.RemoveConstraint(model_name=model, name=name) for name in constraints],
        *[migrations.RemoveField(model_name=model, name=name) for name in fields],
        migrations.RemoveField(model_name=model, name="id"),
        AlterModelBases(model, ("jobs.job",)),
        migrations.AddField(
            model_name=model,
            name="job_ptr",
            field=models.OneToOneField(
                auto_created=True,
                on_delete=django.db.models.deletion.CASCADE,
                parent_link=True,
                primary_key=True,
                serialize=False,
                to="jobs.job",
            ),
            preserve_default=False,
        ),
    ]
