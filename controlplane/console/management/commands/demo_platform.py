"""``manage.py demo_platform``: set up the demo platform of the embedded default (``make run`` does it too).

Idempotent: what exists is left as it is, what is missing is created through the services. See
``docs/embedded.md``.
"""

from dataclasses import replace

from django.core.management.base import BaseCommand

from controlplane.embedded.demo import DemoConfig, demo_platform_setup, login_lines, platform_lines


class Command(BaseCommand):
    help = "Create whatever is missing of the demo platform (users admin and demo, tenant, pool, gateway, model)."

    def add_arguments(self, parser):
        parser.add_argument(
            "--train-steps", type=int, default=None, help="Training steps of the demo model if it must be built."
        )

    def handle(self, *args, train_steps: int | None, **options):
        config = DemoConfig.from_environment()
        if train_steps is not None:
            config = replace(config, model_train_steps=train_steps)
        platform = demo_platform_setup(config, log=self.stdout.write)
        self.stdout.write("created: " + (", ".join(platform.created) or "nothing (the demo platform exists)"))
        for line in platform_lines(platform) + login_lines(platform, config):
            self.stdout.write(line)
