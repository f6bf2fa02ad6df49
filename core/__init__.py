"""What every app stands on and that knows no app (``../shared/DESIGN.md``'s lowest tier): it imports Django and
libraries only."""
