"""An example Django project deployed by the SAM stack: replace it with your own."""
