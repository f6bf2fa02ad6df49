import pytest


@pytest.fixture(autouse=True)
def fast_password_hashing(settings):
    """Argon2 takes a fifth of a second per user on purpose; these tests make many users."""
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
